"""Stand-in entries for callers not in the table are freed once their caller is gone
(issue 9, point 9): ``mount/observers.py`` and ``PidFs.sweep_observers``, in process."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pyfuse3

from pidfs_fuse.kernel import Kernel
from pidfs_fuse.mount.fs import PidFs
from pidfs_fuse.mount.observers import Observers, host_starttime


def _fake_proc(root: Path, pid: int, start: int) -> None:
    (root / str(pid)).mkdir(exist_ok=True)
    # pid (comm with spaces) state, then fields 4..21, then starttime (field 22)
    (root / str(pid) / "stat").write_text(f"{pid} (a b) S " + "0 " * 18 + f"{start} 0 0\n")


def test_host_starttime_reads_field_22(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 42, 777)
    assert host_starttime(42, str(tmp_path)) == 777
    assert host_starttime(43, str(tmp_path)) is None
    assert host_starttime(1) is not None  # the real /proc


def test_sweep_frees_exited_and_reused_callers_only(tmp_path: Path) -> None:
    obs = Observers(str(tmp_path))
    # keyed by (namespace, the number the caller knows itself by, its host tgid)
    for pid in (10, 11, 12):
        _fake_proc(tmp_path, pid, 100 + pid)
        obs.add((1, 4_000_000, pid), f"task{pid}")
    (tmp_path / "10" / "stat").unlink()
    (tmp_path / "10").rmdir()  # exited
    _fake_proc(tmp_path, 11, 999)  # the pid now names another process
    assert sorted(obs.sweep()) == [(1, 4_000_000, 10), (1, 4_000_000, 11)]
    assert list(obs) == [(1, 4_000_000, 12)] and obs.get((1, 4_000_000, 12)) == "task12"
    assert obs.get((1, 4_000_000, 10)) is None
    assert obs.next_sweep == 64 and not obs.due()
    obs.discard_number(4_000_000)
    assert len(obs) == 0


def test_without_a_real_proc_nothing_is_read_and_every_sweep_frees_all(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 10, 5)
    obs = Observers(str(tmp_path / "missing"), real=False)
    obs.add((1, 10, 10), "task")
    assert obs.sweep() == [(1, 10, 10)] and len(obs) == 0


def test_sweeps_come_when_the_count_doubles(tmp_path: Path) -> None:
    obs = Observers(str(tmp_path))
    for pid in range(100, 200):  # all alive
        _fake_proc(tmp_path, pid, 5)
        obs.add((1, pid, pid), pid)
        if obs.due():
            assert obs.sweep() == []
    assert len(obs) == 100 and obs.next_sweep == 128


def test_a_mount_keeps_no_stand_in_of_a_caller_that_exited() -> None:
    """300 short-lived host processes look themselves up (as ``ps`` does): the stand-ins of
    those that exited are freed as new ones come, and their entries are queued for the kernel
    to drop."""
    fs = PidFs(Kernel())
    peak = 0
    for _ in range(300):
        p = subprocess.Popen(["sleep", "0"])
        ctx = SimpleNamespace(uid=0, gid=0, pid=p.pid)
        node = fs._lookup(fs._node(pyfuse3.ROOT_INODE), str(p.pid).encode(), ctx)
        assert node is not None and node.name == str(p.pid).encode()
        p.wait()
        peak = max(peak, len(fs.observers))
    assert peak <= 64  # swept at 64: every one before had exited
    fs.sweep_observers()
    assert len(fs.observers) == 0
    assert len(fs.changes.stale_entries) >= 300 - 64  # the freed ones' dentries


def test_a_live_caller_keeps_its_stand_in() -> None:
    fs = PidFs(Kernel())
    p = subprocess.Popen(["sleep", "30"])
    try:
        ctx = SimpleNamespace(uid=0, gid=0, pid=p.pid)
        fs._lookup(fs._node(pyfuse3.ROOT_INODE), str(p.pid).encode(), ctx)
        fs.sweep_observers()
        t = fs.observers.get((fs.root_view.ns.inum, p.pid, p.pid))
        assert t is not None and t.pid.nr == p.pid
    finally:
        p.kill()
        p.wait()
    fs.sweep_observers()
    assert fs.observers.get((fs.root_view.ns.inum, p.pid, p.pid)) is None
