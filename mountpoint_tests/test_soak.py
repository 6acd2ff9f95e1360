"""A short run of the soak (``make soak`` runs it for 300 s): readers, a churning writer,
blocked handle readers killed at random and snapshots, on a real mount. See ``soak.py``."""

from __future__ import annotations

import os

from . import soak

#: seconds of the CI run; PIDFS_SOAK_SECONDS overrides it
SECONDS = float(os.environ.get("PIDFS_SOAK_SECONDS", "20"))


def test_soak(capsys) -> None:
    fig = soak.soak(SECONDS)
    with capsys.disabled():
        print("\n" + fig.report())
    assert soak.problems(fig) == []
    assert fig.requests["ctl"] > 100 and fig.requests["ls -R"] and fig.requests["ps"] and fig.requests["cat pidfd"]
    assert fig.killed_readers > 0 and fig.snapshots > 0
    assert fig.held_after["nodes_of_freed_pids"] == 0
