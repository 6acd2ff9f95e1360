"""Changes to the tree get the errnos the real /proc gives (issue 9, point 10).

Measured on this machine (Linux 6.18, as root) with the same calls on /proc: creating anything
(open O_CREAT, mknod, mkdir, symlink, link) gives ENOENT, as does renaming to a new name;
unlink, rmdir and renaming onto an existing entry give EPERM. Checked at the root, in a pid
directory, task/, a thread's directory, fd/, fdinfo/, sys/kernel/ and the mount's own .pidfs/
and .pidns/. (The kernel itself answers EEXIST for an existing name, ENOTDIR/EISDIR for the
wrong kind and EXDEV across file systems before the server is asked, on any FUSE mount.)
"""

from __future__ import annotations

import errno
import os

import pytest

from .conftest import Mount, write_once

DIRS = ["", "{pid}", "{pid}/task", "{pid}/task/{pid}", "{pid}/fd", "{pid}/fdinfo", "sys/kernel",
        ".pidfs", ".pidns"]


def errno_of(fn, *args) -> int:
    try:
        fn(*args)
    except OSError as e:
        return e.errno or -1
    return 0


def _create(path: str) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


@pytest.mark.parametrize("where", DIRS, ids=lambda d: d or "root")
def test_creating_anything_gives_enoent(shared_mnt: Mount, where):
    pid = shared_mnt.client.ps()[-1].pid
    d = os.path.join(shared_mnt.path, where.format(pid=pid))
    new = os.path.join(d, "new-name")
    got = {"create": errno_of(_create, new), "mknod": errno_of(os.mknod, new),
           "mkdir": errno_of(os.mkdir, new), "symlink": errno_of(os.symlink, "/tmp", new),
           "link": errno_of(os.link, os.path.join(shared_mnt.path, "uptime"), new),
           "rename": errno_of(os.rename, os.path.join(shared_mnt.path, "uptime"), new),
           "unlink": errno_of(os.unlink, new), "rmdir": errno_of(os.rmdir, new)}
    assert got == dict.fromkeys(got, errno.ENOENT)


@pytest.mark.parametrize("entry,onto", [("uptime", "version"), ("{pid}/status", "{pid}/stat"),
                                        ("{pid}/task", "{pid}/fd")])
def test_removing_or_renaming_an_entry_gives_eperm(shared_mnt: Mount, entry, onto):
    pid = shared_mnt.client.ps()[-1].pid
    path = os.path.join(shared_mnt.path, entry.format(pid=pid))
    other = os.path.join(shared_mnt.path, onto.format(pid=pid))
    remove = os.rmdir if os.path.isdir(path) else os.unlink
    assert errno_of(remove, path) == errno.EPERM
    assert errno_of(os.rename, path, other) == errno.EPERM
    assert errno_of(os.rename, path, path + "-new") == errno.ENOENT
    assert os.path.exists(path) and os.path.exists(other)


def test_the_real_proc_gives_the_same_errnos():
    """The figures the mount copies, measured again on this kernel's /proc."""
    me = os.getpid()
    assert errno_of(_create, f"/proc/{me}/new-name") == errno.ENOENT
    assert errno_of(os.mkdir, "/proc/new-name") == errno.ENOENT
    assert errno_of(os.symlink, "/tmp", f"/proc/{me}/task/new-name") == errno.ENOENT
    assert errno_of(os.unlink, "/proc/uptime") == errno.EPERM
    assert errno_of(os.rmdir, f"/proc/{me}/task") == errno.EPERM
    assert errno_of(os.rename, "/proc/uptime", "/proc/version") == errno.EPERM
    assert errno_of(os.rename, "/proc/uptime", "/proc/new-name") == errno.ENOENT


def test_comm_is_cut_at_15_bytes_not_characters(mnt: Mount):
    pid = int(mnt.ctl("clone", "1", "comm=" + "é" * 9).split()[0])
    assert (mnt / str(pid) / "comm").read_bytes() == ("é" * 7 + "\n").encode()
    mnt.ctl("exec", str(pid), "comm=" + "aé" * 9)
    assert (mnt / str(pid) / "comm").read_bytes() == ("aé" * 5 + "\n").encode()
    with open("/proc/self/comm", "rb") as f:  # the same cut on this kernel
        real = f.read()
    try:
        with open("/proc/self/comm", "wb") as f:
            f.write(("aé" * 9).encode())
        with open("/proc/self/comm", "rb") as f:
            assert f.read() == ("aé" * 5 + "\n").encode()
    finally:
        with open("/proc/self/comm", "wb") as f:
            f.write(real.rstrip(b"\n"))


def test_a_number_too_large_is_out_of_range(mnt: Mount):
    big = "9" * 30
    err, reply = mnt.ctl_raw(f"clone {big}\n")
    assert err == errno.EINVAL
    assert reply.startswith(f"error: EINVAL: clone: PARENT '{big}' is out of range "
                            "(outside 1..2147483647)")
    err, reply = mnt.ctl_raw("clone 1x\n")
    assert "is not a decimal number" in reply


def test_root_writing_a_read_only_file_fails_where_linux_fails(mnt: Mount):
    """Root passes the mode check, so the file's own code answers: a per-pid file without a
    write method opens and the write is EINVAL, a global one's EIO; net/ files and read-only
    sysctls refuse the open with EACCES. Each beside the same file of this machine's /proc."""
    pid = int(mnt.ctl("clone", "1").split()[0])
    mnt.ctl("clone", str(pid), "pidfd")
    me = os.getpid()
    pairs = [(f"{pid}/status", f"{me}/status"), (f"{pid}/task/{pid}/stat", f"{me}/task/{me}/stat"),
             (f"{pid}/environ", f"{me}/environ"), (f"{pid}/maps", f"{me}/maps"),
             (f"{pid}/fdinfo/3", f"{me}/fdinfo/0"), (f"{pid}/net/dev", f"{me}/net/dev"),
             ("stat", "stat"), ("meminfo", "meminfo"), ("uptime", "uptime"),
             ("sys/kernel/osrelease", "sys/kernel/osrelease")]
    got = {ours: write_once(os.path.join(mnt.path, ours), b"x") for ours, _ in pairs}
    real = {ours: write_once(f"/proc/{theirs}", b"x") for ours, theirs in pairs}
    assert got == real
    assert got[f"{pid}/status"] == "write EINVAL" and got["stat"] == "write EIO"
    assert got[f"{pid}/net/dev"] == got["sys/kernel/osrelease"] == "open EACCES"
