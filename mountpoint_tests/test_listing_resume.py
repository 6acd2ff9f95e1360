"""Every listing resumes stably (issue 9 point 8): ``task/``, ``fd/`` and ``.pidns/`` read with
raw getdents64 and a one-entry buffer while entries are created and removed between calls: no
surviving entry is skipped or repeated, and each entry's offset comes from its id."""

from __future__ import annotations

import os
import re

from .test_listing import getdents64


def _one_at_a_time(path: str, between) -> list[tuple[int, int, str]]:
    """List ``path`` one entry per getdents64 call, calling ``between(name)`` after each."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    seen: list[tuple[int, int, str]] = []
    try:
        while ents := getdents64(fd, 40):  # room for exactly one entry
            assert len(ents) == 1
            seen.append(ents[0])
            if ents[0][2] not in (".", ".."):
                between(ents[0][2])
    finally:
        os.close(fd)
    assert [name for _ino, _off, name in seen[:2]] == [".", ".."]  # every listing starts so
    return seen[2:]


def _numbers(seen) -> list[int]:
    return [int(name) for _ino, _off, name in seen if name.isdigit()]


def test_task_listing_resumed_while_threads_come_and_go(mnt):
    leader = mnt.new(1, "comm=threaded")
    tids = [int(x) for x in mnt.ctl("clone", str(leader), "thread", "count=30").split()]
    before = [leader, *tids]
    removed: set[int] = set()
    late: list[int] = []
    listed_so_far: list[int] = []

    def churn(name: str) -> None:
        if not name.isdigit():
            return
        listed_so_far.append(int(name))
        if len(listed_so_far) % 3 or int(name) not in before:
            return
        # reap one thread already listed and one not yet listed, then create one
        cur = int(name)
        pos = before.index(cur)
        done = [t for t in before[1:pos] if t not in removed][:1]
        ahead = [t for t in before[pos + 1:] if t not in removed][-1:]
        for victim in done + ahead:
            mnt.ctl("exit", str(victim))
            removed.add(victim)
        late.append(mnt.new(leader, "thread"))

    seen = _one_at_a_time(os.path.join(mnt.path, str(leader), "task"), churn)
    listed = _numbers(seen)
    assert len(listed) == len(set(listed)), f"a thread was listed twice: {listed}"
    survivors = [t for t in before if t not in removed]
    assert [t for t in listed if t in before] == [t for t in before if t in listed], \
        "threads come in creation order"
    assert [t for t in survivors if t not in listed] == [], "surviving threads were skipped"
    assert listed[0] == leader
    # threads created during the listing come after the ones it started with (creation order)
    assert listed == [t for t in before if t in listed] + [t for t in late if t in listed]
    assert removed and late
    # each d_off is 2 + the thread's pidfs inode number + 1: read them from the handle files
    for _ino, off, name in seen:
        t = int(name)
        if t in removed:
            continue
        handle_ino = os.stat(os.path.join(mnt.path, str(leader), "task", name, "pidfd")).st_ino
        assert off == 2 + handle_ino + 1, (name, off, handle_ino)


def test_task_listing_of_a_big_group_resumes_where_it_stopped(mnt):
    # big enough that the ordered pids are kept between calls (piddir.CACHED_GROUP)
    leader = mnt.new(1, "comm=big")
    tids = [int(x) for x in mnt.ctl("clone", str(leader), "thread", "count=200").split()]
    gone = tids[100:150]
    state = {"n": 0}

    def reap_ahead(name: str) -> None:
        state["n"] += 1
        if state["n"] == 50:
            for t in gone:
                mnt.ctl("exit", str(t))

    listed = _numbers(_one_at_a_time(os.path.join(mnt.path, str(leader), "task"), reap_ahead))
    assert listed == [leader] + [t for t in tids if t not in gone]
    # and a whole listing after the churn shows exactly the survivors, in order
    assert [int(n) for n in os.listdir(os.path.join(mnt.path, str(leader), "task"))] == listed


def test_fd_listing_resumed_while_descriptors_come_and_go(mnt):
    parent = mnt.new(1, "comm=holder")
    for _ in range(12):
        mnt.ctl("clone", str(parent), "pidfd")
    fd_dir = os.path.join(mnt.path, str(parent), "fd")
    before = sorted(int(n) for n in os.listdir(fd_dir))
    assert len(before) == 12
    removed: set[int] = set()

    def churn(name: str) -> None:
        cur = int(name)
        ahead = [f for f in before if f > cur and f not in removed][-1:]
        behind = [f for f in before if f < cur and f not in removed][:1]
        for f in ahead + behind:
            mnt.ctl("close", str(parent), str(f))
            removed.add(f)

    seen = _one_at_a_time(fd_dir, churn)
    listed = _numbers(seen)
    assert listed == sorted(set(listed))
    assert [f for f in before if f not in removed and f not in listed] == []
    for _ino, off, name in seen:
        assert off == 2 + int(name) + 1  # fs/proc/fd.c: fd at position fd + 2


def test_pidns_listing_resumed_while_namespaces_are_created(mnt):
    def new_ns() -> int:
        p = mnt.new(1, "comm=nsholder")
        mnt.ctl("unshare", str(p), "newpid")
        mnt.new(p)  # the namespace's init
        out = os.readlink(os.path.join(mnt.path, str(p), "ns", "pid_for_children"))
        m = re.fullmatch(r"pid:\[(\d+)\]", out)
        assert m is not None, out
        return int(m.group(1))

    for _ in range(4):
        new_ns()
    pidns = os.path.join(mnt.path, ".pidns")
    before = sorted(int(n) for n in os.listdir(pidns))
    added: list[int] = []

    def churn(name: str) -> None:
        if len(added) < 3:  # each new namespace sorts last: a bounded number, or no end
            added.append(new_ns())

    seen = _one_at_a_time(pidns, churn)
    listed = _numbers(seen)
    assert len(listed) == len(set(listed))
    assert listed == sorted(listed)
    assert [n for n in before if n not in listed] == []
    assert listed == sorted(before + added)  # the new ones have higher numbers: listed too
    for _ino, off, name in seen:
        assert off == 2 + int(name) + 1
    assert sorted(int(n) for n in os.listdir(pidns)) == sorted(before + added)
