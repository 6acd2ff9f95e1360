"""Listings keep nothing per entry (issue 13 point 1): pid and thread directories are listed
under inode numbers derived from ids, without a node in the server; what a client does next with
a listed entry (stat, list, read) reaches the same inode, and a reap or an owner change after the
listing is seen although no node marked it stale."""

from __future__ import annotations

import errno
import os

import pytest

from .conftest import server_pid
from .test_listing import getdents64


def _listing(path: str) -> dict[str, int]:
    """name -> d_ino of one directory, read with getdents64 only (no stat, no lookup)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    out: dict[str, int] = {}
    try:
        while ents := getdents64(fd, 65536):
            out.update((name, ino) for ino, _off, name in ents)
    finally:
        os.close(fd)
    return out


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_listed_pid_and_thread_directories_are_what_stat_list_and_read_reach(mnt):
    procs = [mnt.new(1, "comm=p") for _ in range(20)]
    leader = procs[0]
    tids = [int(t) for t in mnt.ctl("clone", str(leader), "thread", "count=30").split()]
    root = _listing(mnt.path)
    listed = sorted(int(n) for n in root if n.isdigit())
    assert set(procs) <= set(listed) and len(listed) == len(set(root[str(p)] for p in listed))
    for p in listed:
        path = f"{mnt.path}/{p}"
        assert os.stat(path).st_ino == root[str(p)]
        assert "status" in os.listdir(path)
        with open(f"{path}/status") as f:
            line = f.readline()
        assert line == "Name:\tp\n" if p in procs else line.startswith("Name:\t")
    task = _listing(f"{mnt.path}/{leader}/task")
    assert sorted(int(n) for n in task if n.isdigit()) == [leader, *tids]
    for t in [leader, *tids]:
        path = f"{mnt.path}/{leader}/task/{t}"
        assert os.stat(path).st_ino == task[str(t)]
        with open(f"{path}/stat") as f:
            assert f.read().split()[0] == str(t)
    # pid and thread directories of one task are two inodes, and none is a handle's (pidfs) one
    assert root[str(leader)] != task[str(leader)]
    assert os.stat(f"{mnt.path}/{leader}/pidfd").st_ino not in (root[str(leader)], task[str(leader)])


def test_a_reap_or_an_owner_change_after_a_listing_is_seen(mnt):
    leader = mnt.new(1, "comm=owner")
    gone = mnt.new(1, "comm=gone")
    tids = [int(t) for t in mnt.ctl("clone", str(leader), "thread", "count=3").split()]
    _listing(mnt.path)
    _listing(f"{mnt.path}/{leader}/task")
    before = os.stat(f"{mnt.path}/{leader}/task/{tids[1]}")
    assert (before.st_uid, os.stat(f"{mnt.path}/{gone}").st_uid) == (0, 0)
    mnt.ctl("exit_group", str(gone), "0")
    mnt.ctl("wait", "1", f"pid={gone}")
    mnt.ctl("exit", str(tids[0]))
    mnt.ctl("set", str(leader), "uid=4321", "gid=99")
    for path in (f"{mnt.path}/{gone}", f"{mnt.path}/{leader}/task/{tids[0]}"):
        with pytest.raises(OSError) as e:
            os.stat(path)
        assert e.value.errno == errno.ENOENT, path
    for path in (f"{mnt.path}/{leader}", f"{mnt.path}/{leader}/task/{tids[1]}",
                 f"{mnt.path}/{leader}/task/{tids[2]}"):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (4321, 99), path
    assert sorted(int(n) for n in _listing(f"{mnt.path}/{leader}/task") if n.isdigit()) == \
        [leader, tids[1], tids[2]]


def test_listing_a_hundred_thousand_processes_keeps_no_memory(mnt):
    mnt.ctl("pid_max", "1", "4194304")
    table = len([n for n in os.listdir(mnt.path) if n.isdigit()])
    mnt.ctl("clone", "1", "comm=many", "count=100000")
    server = server_pid(mnt.path)
    assert server is not None
    os.listdir(f"{mnt.path}/1")  # the server has served a listing and a lookup before
    rss = _rss_kib(server)
    for _ in range(2):
        assert len([n for n in _listing(mnt.path) if n.isdigit()]) == table + 100_000
    # a node per listed entry cost ~600 bytes: 60 MB for these; now nothing per entry stays
    assert _rss_kib(server) - rss < 16 * 1024
