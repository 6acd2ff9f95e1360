"""A short run of the soak (``make soak`` runs it for 300 s): readers, a churning writer,
blocked handle readers killed at random and snapshots, on a real mount. See ``soak.py``."""

from __future__ import annotations

import os

import pytest

from . import soak

#: seconds of the CI run; PIDFS_SOAK_SECONDS overrides it
SECONDS = float(os.environ.get("PIDFS_SOAK_SECONDS", "20"))


def test_soak(capsys) -> None:
    fig = soak.soak(SECONDS)
    with capsys.disabled():
        print("\n" + fig.report())
    problems = soak.problems(fig)
    rss = [p for p in problems if p.startswith("server RSS")]
    assert [p for p in problems if p not in rss] == []
    assert fig.requests["ctl"] > 100 and fig.requests["ls -R"] and fig.requests["ps"] and fig.requests["cat pidfd"]
    assert fig.killed_readers > 0 and fig.snapshots > 0
    if rss:  # reported as a known failure, never as a pass; make soak (300 s) fails on it
        pytest.xfail(f"{rss[0]}: what the server holds comes back (see 'server holds'), but its "
                     "heap stays fragmented after churn (issue 9 point 9 is open)")
