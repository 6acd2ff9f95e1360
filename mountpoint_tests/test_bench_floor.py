"""The replay floor (``bench/replay_server.py``) that the tools benchmark measures pidfs_fuse
against (issue 13 point 2): warm, a tool sees the same tree through it and makes the same
requests, so the two times differ only by what pidfs_fuse does above pyfuse3 and trio."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.floor import Replay
from pidfs_fuse.client import request_counts, request_delta

from .conftest import in_private_proc

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ["ps -ef", "ps -eLf", "pstree -p", "top -b -n 1 -H -w 512 | tail -n +6"]
#: requests a tool makes per process or thread: these must agree exactly
PER_TASK = ("open", "release", "readlink", "opendir", "readdir", "releasedir")


def _counts(rp: Replay) -> dict[str, int]:
    return {k: v for k, v in rp.counts().items() if k != "fetched"}


@pytest.mark.parametrize("tool", TOOLS)
def test_a_tool_sees_the_same_tree_through_the_replay_and_makes_the_same_requests(mnt, tool):
    with Replay(mnt.path) as rp:
        for _ in range(2):  # the first runs fill the replay and both kernels' caches
            ours, theirs = in_private_proc(mnt, tool), in_private_proc(rp.path, tool)
        assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
        assert theirs.stdout == ours.stdout
        assert len(ours.stdout.splitlines()) > 30
        before, rbefore = request_counts(mnt.path), _counts(rp)
        in_private_proc(mnt, tool)
        in_private_proc(rp.path, tool)
        got, replayed = request_delta(before, request_counts(mnt.path)), \
            request_delta(rbefore, _counts(rp))
        assert {k: got.get(k, 0) for k in PER_TASK} == {k: replayed.get(k, 0) for k in PER_TASK}
        assert got["open"] > 60
        # the rest (a few lookups and getattrs about the caller itself) within a handful
        assert abs(sum(got.values()) - sum(replayed.values())) <= 20, (got, replayed)


def test_the_replay_answers_what_the_mount_answered_once_the_mount_changes(mnt):
    """It is a copy: what it fetched stays as it was (that is what makes it do nothing)."""
    with Replay(mnt.path) as rp:
        status = os.path.join(rp.path, "1", "status")
        with open(status) as f:
            first = f.read()
        mnt.ctl("exec", "1", "comm=renamed")  # pidfs_fuse's own view changes
        assert "renamed" in (mnt / "1" / "status").read_text()
        with open(status) as f:
            assert f.read() == first
        assert "Name:\tsystemd" in first


KILLED = """
import sys, time
from bench.floor import Floor, Replay
f = (Replay(sys.argv[1]) if len(sys.argv) > 1 else Floor()).__enter__()
print(f.path, f.proc.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("replay", [False, True])
def test_a_benchmark_killed_with_its_floor_mounted_leaves_no_mount(mnt, replay):
    """SIGTERM skips the benchmark's ``with`` blocks: the floor's server unmounts itself when
    the process that started it dies (PR_SET_PDEATHSIG, then its SIGTERM handler)."""
    args = [sys.executable, "-c", KILLED] + ([mnt.path] if replay else [])
    bench = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        path, server = bench.stdout.readline().split()
        assert os.path.ismount(path)
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=10) == -signal.SIGTERM
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{server}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{server}"), "the floor server outlived its benchmark"
        assert not os.path.ismount(path)
        os.rmdir(path)  # the directory is what remains (Floor.__exit__ would have removed it)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        if "path" in locals() and os.path.ismount(path):
            subprocess.run(["fusermount3", "-u", "-z", path], check=False)
