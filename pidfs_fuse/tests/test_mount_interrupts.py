"""mount/interrupts.py's decision: which pending signals end a blocked read with EINTR.

The masks are /proc/<tid>/status's, bit (signo - 1); the cases are the states measured on this
machine while a reader was blocked in the server (SIGTERM to a process without a handler shows
as SIGKILL in SigPnd; a SIGSTOP waits in ShdPnd; SIGCONT clears it).
"""

from __future__ import annotations

import pytest

from pidfs_fuse.mount.interrupts import _LIB, _PYFUSE3_CONTAINER, _Container, deliverable


def status(pnd: int = 0, shd: int = 0, blk: int = 0, cgt: int = 0) -> str:
    return (f"Name:\tcat\nState:\tD (disk sleep)\nSigQ:\t0/1\nSigPnd:\t{pnd:016x}\n"
            f"ShdPnd:\t{shd:016x}\nSigBlk:\t{blk:016x}\nSigIgn:\t0000000000000000\n"
            f"SigCgt:\t{cgt:016x}\n")


def bit(sig: int) -> int:
    return 1 << (sig - 1)


@pytest.mark.parametrize("text,ends", [
    (status(), False),
    (status(pnd=bit(9), shd=bit(15)), True),  # SIGTERM, fatal: the kernel added SIGKILL
    (status(pnd=bit(9)), True),  # SIGKILL
    (status(shd=bit(2), cgt=bit(2)), True),  # SIGINT with a handler
    (status(pnd=bit(14), cgt=bit(14)), True),  # SIGALRM to the thread, handled
    (status(shd=bit(10), blk=bit(10)), False),  # blocked: not deliverable
    (status(shd=bit(19)), False),  # SIGSTOP: no EINTR, the stop waits for the answer
    (status(shd=bit(20)), False),  # SIGTSTP without a handler: a stop too
    (status(shd=bit(20), cgt=bit(20)), True),  # SIGTSTP with a handler: the handler must run
    (status(shd=bit(19) | bit(9)), True),  # stopped, then killed
], ids=["none", "term", "kill", "int-handled", "alrm-thread", "blocked", "stop", "tstp",
        "tstp-handled", "stop-then-kill"])
def test_which_pending_signals_end_a_blocked_read(text, ends):
    assert deliverable(text) is ends


def test_the_request_record_layout_matches_this_pyfuse3():
    """The ctypes mirror of pyfuse3's _Container: fh after a 144-byte struct stat, req after
    the file info (pyfuse3 3.5, x86_64). A different layout only means the fallback."""
    import ctypes

    assert _LIB is not None
    assert _Container.req.offset == 80 and _Container.off.offset == 96
    assert _Container.fh.offset == 256
    c = _PYFUSE3_CONTAINER()
    raw = _Container.from_address(id(c))
    assert raw.ob_type == id(_PYFUSE3_CONTAINER) and raw.req is None and raw.fh == 0
    assert ctypes.sizeof(_Container) <= type(c).__basicsize__
