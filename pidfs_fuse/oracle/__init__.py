"""A differential oracle: the same operation sequences on the model and on real processes in a
fresh pid namespace, compared field by field after every step (issue 14).

Linux itself is the test oracle. ``Oracle`` (``driver``) applies each ``Op`` (``ops``: one line
of text, so a sequence is a replayable script) to ``ModelSide`` (a ``Kernel`` rendered by the
``procfs`` renderers, seen from the model namespace that stands for the real one) and to
``RealSide`` (agents, ``agent.py``, in ``unshare --pid --fork --mount-proc``, read through that
namespace's /proc), then compares results, errnos and the snapshot of ``compare``. ``machine``
is the hypothesis state machine that generates sequences and shrinks a mismatch to a minimal
script; ``python -m pidfs_fuse.oracle`` (``make difftest``) runs it and prints the coverage
report.

Needs root (unshare --pid, clone3 set_tid, ns_last_pid); nothing here imports pyfuse3 or trio.
What the real side cannot be driven to do is listed in ``driver.SKIPPED``.
"""

from .driver import SKIPPED, Coverage, Mismatch, Oracle, replay
from .ops import Op, op, parse
from .real_side import available

__all__ = ["SKIPPED", "Coverage", "Mismatch", "Op", "Oracle", "available", "op", "parse", "replay"]
