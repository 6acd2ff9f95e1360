"""Mount lifecycle through the real command: mount, unmount, signals, stale mounts, bad input."""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest

from .conftest import force_cleanup, run_cli, server_pid


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def _mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


def test_mount_returns_ready_and_unmount_removes_it(tmp_path):
    d = str(tmp_path / "m")
    os.mkdir(d)
    try:
        run_cli("mount", d)
        assert _mounted(d)
        assert "1" in os.listdir(d)  # answers at once, no sleep
        pid = server_pid(d)
        assert pid is not None
        run_cli("unmount", d)
        assert not _mounted(d)
        assert _wait_gone(pid)
        assert os.listdir(d) == []
    finally:
        force_cleanup(d)


def test_sigterm_and_sigint_unmount_cleanly(tmp_path):
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = str(tmp_path / f"m{sig}")
        os.mkdir(d)
        try:
            run_cli("mount", d)
            pid = server_pid(d)
            os.kill(pid, sig)
            assert _wait_gone(pid)
            assert not _mounted(d)
        finally:
            force_cleanup(d)


def test_stale_mount_of_a_killed_server_is_cleared_by_the_next_mount(tmp_path):
    d = str(tmp_path / "m")
    os.mkdir(d)
    try:
        run_cli("mount", d)
        pid = server_pid(d)
        os.kill(pid, signal.SIGKILL)
        assert _wait_gone(pid)
        with pytest.raises(OSError) as e:  # a mount whose server died must not answer
            os.listdir(d)
        assert e.value.errno == errno.ENOTCONN  # Transport endpoint is not connected
        r = run_cli("mount", d)
        assert "stale" in r.stderr
        assert "1" in os.listdir(d)
        run_cli("unmount", d)
    finally:
        force_cleanup(d)


def test_missing_directory_fails_with_one_sentence_and_mounts_nothing(tmp_path):
    d = str(tmp_path / "nope")
    r = run_cli("mount", d, check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"pidfs-fuse: mount point {d} does not exist (create it with mkdir first)"
    assert not os.path.exists(d)


def test_busy_mount_point_is_refused(mount_table):
    m = mount_table()
    r = run_cli("mount", m.path, check=False)
    assert r.returncode == 1
    assert "already a mount point" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "1" in os.listdir(m.path)  # the first mount still serves


def test_bad_option_fails_and_leaves_nothing_mounted(tmp_path):
    d = str(tmp_path / "m")
    os.mkdir(d)
    try:
        r = run_cli("mount", d, "-o", "hidepid=7", check=False)
        assert r.returncode == 1
        assert "hidepid" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not _mounted(d)
        r = run_cli("mount", d, "--tgid-scan", "sideways", check=False)
        assert r.returncode == 2 and "invalid choice" in r.stderr
        assert not _mounted(d)
    finally:
        force_cleanup(d)


def test_unmount_of_something_not_mounted_says_so(tmp_path):
    r = run_cli("unmount", str(tmp_path), check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"pidfs-fuse: {tmp_path} is not mounted"
