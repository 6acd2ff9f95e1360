"""What the server holds comes back down: nodes of reaped pids are released even when their
files were in use at the reap, and ``user.pidfs.memory`` (``client.held_counts``) says so."""

from __future__ import annotations

import contextlib
import os
import time

from pidfs_fuse import client


def _held(mnt) -> dict[str, int]:
    return client.held_counts(mnt.path)


def _wait_for(mnt, key: str, value: int, seconds: float = 10.0) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    while True:
        held = _held(mnt)
        if held[key] == value or time.monotonic() > deadline:
            return held
        time.sleep(0.1)


def test_held_counts_name_the_table_and_the_nodes(mnt):
    before = _held(mnt)
    assert set(before) == {"tasks", "nodes", "nodes_of_freed_pids", "node_groups", "open_files",
                           "open_dirs", "stand_ins"}
    pid = mnt.new(1, "comm=counted")
    with open(mnt / str(pid) / "status") as f:
        held = _held(mnt)
        assert held["tasks"] == before["tasks"] + 1
        assert held["open_files"] == before["open_files"] + 1
        assert held["nodes"] >= before["nodes"] + 2  # /<pid> and its status
        f.read()


def test_nodes_of_a_pid_reaped_while_its_files_were_open_are_released(mnt):
    """A reap drops the dentry /<pid>, but children in use then (a status being read, a pidfd a
    reader waits on) stay in the kernel's cache once closed, pinning the node and the dead task
    until memory runs short. The server invalidates each of them again a second after the reap
    (and at doubling delays while the kernel holds them)."""
    base = _held(mnt)
    pids = [mnt.new(1, f"comm=held{i}") for i in range(5)]
    with contextlib.ExitStack() as stack:
        for p in pids:
            for name in ("status", "stat", "pidfd"):
                stack.enter_context(open(mnt / str(p) / name))
        for p in pids:
            mnt.ctl("exit_group", str(p), "0")
            assert mnt.ctl("wait", "1", f"pid={p}") == f"{p} exited 0\n"
        assert _held(mnt)["nodes_of_freed_pids"] >= 15  # still open: the kernel holds them
    held = _wait_for(mnt, "nodes_of_freed_pids", 0)
    assert held["nodes_of_freed_pids"] == 0, held
    assert held["node_groups"] == base["node_groups"] and held["tasks"] == base["tasks"]
    assert not any(os.path.exists(mnt / str(p)) for p in pids)
