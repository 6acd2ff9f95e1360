"""Root listing through raw getdents64: stable offsets across exits, tagged vs linear."""

from __future__ import annotations

import ctypes
import os
import platform
import struct

import pytest

SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61}[platform.machine()]
_libc = ctypes.CDLL(None, use_errno=True)


def getdents64(fd: int, size: int) -> list[tuple[int, int, str]]:
    """One getdents64 call: [(d_ino, d_off, name)]."""
    buf = ctypes.create_string_buffer(size)
    n = _libc.syscall(SYS_GETDENTS64, fd, buf, size)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    out, pos, raw = [], 0, buf.raw[:n]
    while pos < n:
        ino, off, reclen, _typ = struct.unpack_from("<QqHB", raw, pos)
        name = raw[pos + 19: pos + reclen].split(b"\0", 1)[0].decode()
        out.append((ino, off, name))
        pos += reclen
    return out


def _pids(names):
    return [int(n) for n in names if n.isdigit()]


def test_resumed_listing_neither_skips_nor_repeats_a_surviving_leader(mnt):
    # a table with room to churn: 40 extra processes
    extra = [mnt.new(1, "comm=churn") for _ in range(40)]
    before = sorted(_pids(os.listdir(mnt.path)))
    fd = os.open(mnt.path, os.O_RDONLY | os.O_DIRECTORY)
    seen: list[str] = []
    removed: set[int] = set()
    try:
        step = 0
        while True:
            ents = getdents64(fd, 40)  # room for exactly one entry
            if not ents:
                break
            assert len(ents) == 1
            seen.append(ents[0][2])
            step += 1
            if seen[-1].isdigit() and step % 3 == 0:
                cur = int(seen[-1])
                # reap one already listed and one not yet listed, and create a new one
                listed_already = [p for p in extra if p < cur][:1]
                not_yet = [p for p in extra if p > cur][-1:]
                for victim in listed_already + not_yet:
                    mnt.ctl("exit_group", str(victim), "0")
                    mnt.ctl("wait", "1", f"pid={victim}")
                    removed.add(victim)
                    extra.remove(victim)
                mnt.new(1, "comm=late")
    finally:
        os.close(fd)
    listed = _pids(seen)
    assert len(listed) == len(set(listed)), "a pid was listed twice"
    assert listed == sorted(listed), "pids must come in ascending order"
    survivors = [p for p in before if p not in removed]
    missing = [p for p in survivors if p not in listed]
    assert missing == [], f"surviving leaders skipped: {missing}"
    # no entry of any kind comes twice, and the order is procfs's (fs/proc/base.c
    # proc_pid_readdir): the fixed entries, then self and thread-self at TGID_OFFSET - 2 and - 1,
    # right before the first pid, then only pids (as `ls -f /proc` shows on this machine)
    assert len(seen) == len(set(seen)), "an entry was listed twice"
    first = next(i for i, name in enumerate(seen) if name.isdigit())
    assert seen[first - 2:first] == ["self", "thread-self"], seen[:first]
    assert all(name.isdigit() for name in seen[first:]), seen[first:]
    assert ".control" in seen[:first]


def test_pid_entries_carry_the_kernels_tgid_offsets(mnt):
    fd = os.open(mnt.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ents = []
        while chunk := getdents64(fd, 4096):
            ents += chunk
    finally:
        os.close(fd)
    offs = {name: off for _ino, off, name in ents}
    # d_off of an entry is the offset of the next one: TGID_OFFSET (258) + tgid + 1
    assert offs["1"] == 258 + 1 + 1
    for name, off in offs.items():
        if name.isdigit():
            assert off == 258 + int(name) + 1


@pytest.mark.parametrize("scan", ["tagged", "linear"])
def test_threads_are_not_listed_but_can_be_looked_up(mount_table, scan):
    m = mount_table("--tgid-scan", scan)
    leader = m.new(1, "comm=threaded")
    tids = [int(x) for x in m.ctl("clone", str(leader), "thread", "count=5").split()]
    names = os.listdir(m.path)
    assert str(leader) in names
    assert not any(str(t) in names for t in tids)
    for t in tids:
        assert os.path.isdir(os.path.join(m.path, str(t)))
        assert sorted(int(x) for x in os.listdir(os.path.join(m.path, str(leader), "task"))) == sorted([leader, *tids])


@pytest.mark.parametrize("rel", ["", "1", "1/task", "1/fd"], ids=["root", "pid", "task", "fd"])
def test_every_directory_lists_dot_and_dotdot_first(mnt, rel):
    fd = os.open(os.path.join(mnt.path, rel), os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = [name for _ino, _off, name in getdents64(fd, 4096)]
    finally:
        os.close(fd)
    assert names[:2] == [".", ".."]


@pytest.mark.parametrize("rel", ["", "1", "1/task", "1/task/1", "1/fd", "1/fdinfo", "1/ns", "sys",
                                 "sys/kernel"])
def test_every_directory_lists_dot_and_dotdot_first_with_procfs_inodes(mnt, rel):
    """dir_emit_dots(): ``.`` (d_off 1) is the directory's own inode, ``..`` (d_off 2) its
    parent's (the root's is the root itself, as /proc's); nothing else is called . or .."""
    path = os.path.join(mnt.path, rel)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = getdents64(fd, 65536)
    finally:
        os.close(fd)
    parent = os.stat(os.path.dirname(path.rstrip("/"))).st_ino if rel else os.stat(path).st_ino
    assert got[:2] == [(os.stat(path).st_ino, 1, "."), (parent, 2, "..")]
    assert [n for _, _, n in got[2:]] == sorted(os.listdir(path), key=[n for _, _, n in got].index)
    assert all(off > 2 for _, off, _ in got[2:])  # every entry follows the dots
    if rel in ("", "1", "1/task/1", "1/ns", "sys", "sys/kernel"):  # tables: the first row at 3
        assert got[2][1] == 3
