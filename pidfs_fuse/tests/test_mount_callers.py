"""Who asks (``mount/callers.py``): a caller's numbers from the host's /proc, and where it finds a
real procfs for its ``fd/`` links, from its mountinfo (issue 10, point 5)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pidfs_fuse.mount.callers import HOST_PROC_DIR, Caller, Callers


def test_a_caller_in_this_namespace_is_its_process_and_thread() -> None:
    c = Callers()
    assert c.enabled
    me = os.getpid()
    assert c.who(me) == Caller(me, me, me, me)
    got: list[object] = []

    def in_thread() -> None:  # asked while the thread lives
        tid = threading.get_native_id()
        got.extend([tid, c.who(tid), c.self_numbers(tid),
                    (c.is_caller(tid, me), c.is_caller(tid, tid), c.is_caller(tid, 1))])

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    tid = got[0]
    assert tid != me and got[1] == Caller(me, tid, me, tid)
    assert got[2] == (me, tid)  # self names the process, thread-self the thread
    assert got[3] == (True, True, False)


def test_without_a_real_procfs_nothing_is_read(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "status").write_text("Tgid:\t7\nNStgid:\t7\t1\nNSpid:\t42\t2\n")
    c = Callers(str(tmp_path))  # a directory, not a procfs: never read
    assert not c.enabled
    assert c.who(42) == Caller(42, 42, 42, 42, real=False)


MOUNTINFO = """\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
"""
BOUND = """\
22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
90 22 0:60 / /tmp/m rw,nosuid - fuse.pidfs pidfs_fuse rw,user_id=0
91 90 0:21 / /tmp/m/.host-proc rw,nosuid - proc proc rw
92 23 0:60 / /proc rw,nosuid - fuse.pidfs pidfs_fuse rw,user_id=0
93 92 0:21 / /proc/.host-proc rw,nosuid - proc proc rw
"""
BOUND_BARE = """\
22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
92 23 0:60 / /proc rw,nosuid - fuse.pidfs pidfs_fuse rw,user_id=0
"""
ELSEWHERE = """\
22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
92 22 0:60 / /proc rw,nosuid - fuse.pidfs pidfs_fuse rw,user_id=0
95 22 0:61 / /mnt rw - tmpfs tmpfs rw
96 95 0:21 / /mnt/.host-proc rw,nosuid - proc proc rw
"""


@pytest.mark.parametrize(("mountinfo", "where"), [
    (MOUNTINFO, "/proc"),
    (BOUND, HOST_PROC_DIR),
    (BOUND_BARE, None),
    (ELSEWHERE, None),  # a procfs on a .host-proc that is not on a pidfs-fuse mount
], ids=["proc-is-procfs", "exec-bound", "bound-without-host-proc", "host-proc-not-on-ours"])
def test_real_proc_is_found_in_the_callers_mountinfo(tmp_path: Path, mountinfo: str,
                                                      where: str | None) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "mountinfo").write_text(mountinfo)
    c = Callers(str(tmp_path))
    assert c.real_proc(42) == where
    assert c.real_proc(43) is None  # no such process


def test_the_host_answers_for_this_process() -> None:
    c = Callers()
    me = os.getpid()
    assert c.real_proc(me) == "/proc"
    assert c.readlink(me, "exe") == os.readlink("/proc/self/exe")
    assert c.read(me, "mounts") == Path("/proc/self/mounts").read_bytes()
    lines = c.status_lines(me)
    want = [line for line in Path("/proc/self/status").read_bytes().splitlines()
            if line.split(b"\t")[0] in (b"Uid:", b"Gid:", b"Groups:")]
    assert sorted(lines.values()) == sorted(want) and len(want) == 3
    r, w = os.pipe()
    try:
        assert {r, w} <= set(c.fds(me))
    finally:
        os.close(r)
        os.close(w)
    assert c.threads(c.who(me))[0] == (me, me)


def test_a_descriptor_is_named_by_its_path_only_where_that_path_is_the_file(tmp_path: Path) -> None:
    c = Callers()
    me = os.getpid()
    (tmp_path / "kept").write_text("x")
    kept = os.open(tmp_path / "kept", os.O_RDONLY)
    gone = os.open(tmp_path / "gone", os.O_RDWR | os.O_CREAT)
    os.unlink(tmp_path / "gone")
    r, w = os.pipe()
    try:
        assert c.fd_path(me, kept) == str(tmp_path / "kept")
        assert c.fd_path(me, gone) is None  # "... (deleted)"
        assert c.fd_path(me, r) is None  # "pipe:[N]"
        with pytest.raises(FileNotFoundError):
            c.fd_path(me, 9999)
    finally:
        for fd in (kept, gone, r, w):
            os.close(fd)
