"""The life of a detached mount through the real command: relative paths, what ``unmount``
refuses and when it returns, lazy unmounts, two mounts racing for one directory, and the run
directory (records and logs) that a mount leaves behind only while it lives."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from pidfs_fuse import client, rundir

from .conftest import CLI, force_cleanup, run_cli, server_pid


def _gone_within(pid: int, starttime: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while rundir.process_starttime(pid) == starttime:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _until_blocked_in(pid: int, path: str, timeout: float = 20) -> None:
    """Until process ``pid`` holds ``path`` open and sleeps in a FUSE request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fds = [os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")]
            with open(f"/proc/{pid}/wchan") as f:
                wchan = f.read()
        except OSError:
            fds, wchan = [], ""
        if path in fds and wchan == "request_wait_answer":
            return
        time.sleep(0.02)
    raise AssertionError(f"{pid} never blocked in {path} (wchan {wchan!r})")


@pytest.fixture
def mdir(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    yield d
    force_cleanup(str(d))


def test_relative_mount_point_works_for_mount_ctl_tree_and_unmount(mdir):
    cwd = mdir.parent
    r = run_cli("mount", "m", cwd=cwd)
    pid = server_pid(str(mdir))
    assert r.stderr == f"pidfs-fuse: mounted at {mdir} (server pid {pid})\n"
    assert (mdir / "1" / "comm").read_text() == "systemd\n"
    new = run_cli("ctl", "m", "clone", "1", "comm=rel", cwd=cwd).stdout.strip()
    assert (mdir / new / "comm").read_text() == "rel\n"
    assert f"{new} rel" in run_cli("tree", "m", "--color", "never", cwd=cwd).stdout
    run_cli("unmount", "m", cwd=cwd)
    assert rundir.mount_at(str(mdir)) is None
    assert rundir.process_starttime(pid) is None


def test_unmount_refuses_a_mount_that_is_not_ours_and_leaves_it(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pidfs-test-tmpfs", str(d)], check=True)
    try:
        (d / "keep").write_text("x")
        r = run_cli("unmount", str(d), check=False)
        assert r.returncode == 1
        assert r.stderr == (f"pidfs-fuse: {d} is not a pidfs-fuse mount (it is a tmpfs mount "
                            f"(pidfs-test-tmpfs)); refusing to unmount it\n")
        assert rundir.mount_at(str(d)).fstype == "tmpfs"
        assert (d / "keep").read_text() == "x"
        r = run_cli("mount", str(d), check=False)
        assert r.returncode == 1
        assert r.stderr == f"pidfs-fuse: {d} is already a mount point (a tmpfs mount (pidfs-test-tmpfs))\n"
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_unmount_returns_after_the_server_has_exited_and_the_run_dir_is_empty_of_it(mdir):
    run_cli("mount", str(mdir))
    rec = rundir.find_record(str(mdir))
    assert rec is not None and rec.mountpoint == str(mdir) and rec.server_alive()
    assert rec.log == rundir.default_log_path(str(mdir)) and os.path.exists(rec.log)
    run_cli("unmount", str(mdir))
    assert rundir.process_starttime(rec.pid) is None  # at once: unmount waited for it
    assert not os.path.exists(rundir.record_path(str(mdir)))
    assert not os.path.exists(rec.log)
    key = rundir.mount_key(str(mdir))
    assert [n for n in os.listdir(rundir.run_dir_path()) if n.startswith(key)] == []


def test_unmount_says_so_when_the_server_does_not_exit(mdir):
    run_cli("mount", str(mdir))
    rec = rundir.find_record(str(mdir))
    os.kill(rec.pid, signal.SIGSTOP)
    try:
        r = run_cli("unmount", str(mdir), "--timeout", "0.5", check=False)
        assert (r.returncode, r.stderr) == (1, (
            f"pidfs-fuse: unmounted {mdir}, but its server (pid {rec.pid}) is still running after "
            f"0.5 s (stop it with: kill {rec.pid})\n"))
        assert rundir.mount_at(str(mdir)) is None
    finally:
        os.kill(rec.pid, signal.SIGCONT)
    assert _gone_within(rec.pid, rec.starttime, 10)  # going on, it finds its mount gone
    assert not os.path.exists(rundir.record_path(str(mdir)))


def test_lazy_unmount_ends_the_server_and_releases_a_blocked_reader(mdir):
    run_cli("mount", str(mdir))
    rec = rundir.find_record(str(mdir))
    pid = int(run_cli("ctl", str(mdir), "clone", "1").stdout)
    reader = subprocess.Popen(["cat", str(mdir / str(pid) / "pidfd")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        _until_blocked_in(reader.pid, str(mdir / str(pid) / "pidfd"))
        assert reader.poll() is None  # blocked: the process runs
        subprocess.run(["fusermount3", "-u", "-z", str(mdir)], check=True)
        assert _gone_within(rec.pid, rec.starttime, 5), "the server lives on after a lazy unmount"
        out, err = reader.communicate(timeout=5)
        assert reader.returncode == 1 and out == ""
        assert "Transport endpoint is not connected" in err or "Software caused connection abort" in err, err
        assert not os.path.exists(rundir.record_path(str(mdir)))
        assert not os.path.exists(rec.log)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_lazy_unmount_releases_a_blocking_ctl_wait(mdir):
    run_cli("mount", str(mdir))
    rec = rundir.find_record(str(mdir))
    pid = run_cli("ctl", str(mdir), "clone", "1").stdout.strip()
    waiter = subprocess.Popen([*CLI, "ctl", str(mdir), "wait", "1", f"pid={pid}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _until_blocked_in(waiter.pid, str(mdir / ".control"))
        assert waiter.poll() is None  # blocked: the child runs
        subprocess.run(["umount", "-l", str(mdir)], check=True)
        out, err = waiter.communicate(timeout=5)
        assert (waiter.returncode, out) == (1, "")
        assert err == "pidfs-fuse: wait: ECONNABORTED: Software caused connection abort\n", err
        assert _gone_within(rec.pid, rec.starttime, 5)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_unmount_with_a_blocked_reader_detaches_and_waits_for_the_server(mdir):
    run_cli("mount", str(mdir))
    rec = rundir.find_record(str(mdir))
    pid = int(run_cli("ctl", str(mdir), "clone", "1").stdout)
    reader = subprocess.Popen(["cat", str(mdir / str(pid) / "pidfd")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        _until_blocked_in(reader.pid, str(mdir / str(pid) / "pidfd"))
        assert reader.poll() is None
        run_cli("unmount", str(mdir))
        assert rundir.process_starttime(rec.pid) is None
        assert reader.wait(timeout=5) == 1
        assert rundir.mount_at(str(mdir)) is None
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_two_concurrent_mounts_of_one_directory_one_wins(mdir):
    procs = [subprocess.Popen([*CLI, "mount", str(mdir)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
        p.stdout.close()
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 1], results
    pid = server_pid(str(mdir))
    loser = next(err for rc, err in results if rc == 1)
    assert loser in (
        f"pidfs-fuse: {mdir} is being mounted by another pidfs-fuse mount right now\n",
        f"pidfs-fuse: {mdir} is already a mount point: a pidfs-fuse table, server pid {pid} "
        f"(unmount it first: pidfs-fuse unmount {mdir})\n"), loser
    assert [m.fstype for m in rundir.mountinfo() if m.mountpoint == str(mdir)] == [rundir.FSTYPE]
    run_cli("unmount", str(mdir))
    assert rundir.mount_at(str(mdir)) is None


def test_a_killed_servers_record_is_swept_once_its_mount_is_cleared(mdir, tmp_path):
    run_cli("mount", str(mdir))
    rec = rundir.find_record(str(mdir))
    os.kill(rec.pid, signal.SIGKILL)
    assert _gone_within(rec.pid, rec.starttime, 5)
    r = run_cli("status")
    assert f"stale: its server was killed; clear it with: pidfs-fuse unmount {mdir}" in r.stdout
    run_cli("unmount", str(mdir))
    assert rundir.mount_at(str(mdir)) is None
    assert not os.path.exists(rundir.record_path(str(mdir)))
    assert not os.path.exists(rec.log)


def test_log_file_level_and_keep_log(mdir, tmp_path):
    log = tmp_path / "server.log"
    run_cli("mount", str(mdir), "--log", str(log), "--log-level", "info")
    pid = server_pid(str(mdir))
    run_cli("unmount", str(mdir))
    text = log.read_text()
    assert f"serving {mdir} (pid {pid})" in text and f"{mdir} is unmounted; exiting" in text
    run_cli("mount", str(mdir), "--keep-log")
    default = rundir.default_log_path(str(mdir))
    run_cli("unmount", str(mdir))
    assert os.path.exists(default)  # kept, as asked
    os.unlink(default)
    r = run_cli("mount", str(mdir), "--log-level", "loud", check=False)
    assert r.returncode == 2 and "invalid choice: 'loud'" in r.stderr
    assert rundir.mount_at(str(mdir)) is None


@pytest.mark.parametrize("clock", ["frozen", "real"])
def test_status_shows_the_clock_each_mount_runs(mdir, clock):
    args = ["mount", str(mdir)] + (["--clock", clock] if clock == "real" else [])
    run_cli(*args)
    try:
        [st] = [m for m in client.mount_status() if m.mountpoint == str(mdir)]
        assert (st.clock, st.problem) == (clock, "")
    finally:
        run_cli("unmount", str(mdir))
