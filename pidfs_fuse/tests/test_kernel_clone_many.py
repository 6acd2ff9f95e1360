"""``Kernel.clone_many``: the same table, events and errors as ``clone`` called that many times
(a snapshot of both tables compares every number, link and field)."""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_PIDFD, CLONE_THREAD, Event, Kernel, KernelError, Task
from pidfs_fuse.snapshot import dump


def _pair(setup=None, **kw):
    """Two kernels built alike (``setup(k) -> parent``), with recorded events."""
    out = []
    for _ in range(2):
        events: list[tuple[str, tuple[int, ...], str | None]] = []

        def listen(ev: Event, events=events) -> None:
            events.append((ev.kind.value, ev.pid.numbers, ev.task.comm if ev.task else None))

        k = Kernel(listener=listen, **kw)
        parent = setup(k) if setup is not None else k.init
        out.append((k, parent, events))
    return out


def _one_by_one(k: Kernel, parent: Task, count: int, flags: int = 0, **kw) -> list[Task]:
    made = []
    for _ in range(count):
        made.append(k.clone(parent, flags, **kw).task)
    return made


def _same(a, b) -> None:
    (ka, _, ea), (kb, _, eb) = a, b
    assert dump(ka) == dump(kb)
    assert ea == eb


@pytest.mark.parametrize("flags", [0, CLONE_THREAD, CLONE_PIDFD])
def test_same_table_as_clone_loop(flags: int) -> None:
    def setup(k: Kernel) -> Task:
        p = k.clone(k.init, comm="svc").task
        k.setsid(p)
        return p

    a, b = _pair(setup)
    kw = dict(comm="worker", argv=["/bin/w", "-x"]) if not flags & CLONE_THREAD else {}
    got = a[0].clone_many(a[1], 500, flags, **kw)
    want = _one_by_one(b[0], b[1], 500, flags, **kw)
    assert [t.pid.numbers for t in got] == [t.pid.numbers for t in want]
    assert len(got) == 500
    _same(a, b)


def test_nested_namespace_and_wrap() -> None:
    """Three levels, a cursor that wraps past pid_max and numbers taken on the way."""
    def setup(k: Kernel) -> Task:
        t = k.init
        for _ in range(3):
            t = k.clone(t, CLONE_NEWPID).task
        k.set_pid_max(t.pid.ns, 400)
        k.set_last_pid(t.pid.ns, 390)
        for _ in range(5):
            k.clone(t)  # 391..395 taken before the wrap comes back to them
        k.set_last_pid(t.pid.ns, 380)
        return t

    a, b = _pair(setup)
    got = a[0].clone_many(a[1], 60)
    want = _one_by_one(b[0], b[1], 60)
    assert [t.pid.numbers for t in got] == [t.pid.numbers for t in want]
    assert 301 in [t.pid.numbers[-1] for t in got]  # wrapped to RESERVED_PIDS + 1
    _same(a, b)


def test_stops_at_the_first_failure_keeping_what_it_made() -> None:
    a, b = _pair(max_threads=60)
    made: list[Task] = []
    with pytest.raises(KernelError) as e:
        a[0].clone_many(a[1], 100, made=made)
    assert e.value.errno == errno.EAGAIN
    assert len(made) == 60 - 1  # init is the first of the 60
    n = 0
    with pytest.raises(KernelError) as e2:
        for _ in range(100):
            b[0].clone(b[1])
            n += 1
    assert n == len(made)
    assert str(e.value) == str(e2.value)
    _same(a, b)


def test_full_namespace_fails_as_clone_does() -> None:
    def setup(k: Kernel) -> Task:
        t = k.clone(k.init, CLONE_NEWPID).task
        k.set_pid_max(t.pid.ns, 310)
        return t

    a, b = _pair(setup)
    with pytest.raises(KernelError) as e:
        a[0].clone_many(a[1], 400)
    with pytest.raises(KernelError) as e2:
        _one_by_one(b[0], b[1], 400)
    assert e.value.errno == e2.value.errno == errno.EAGAIN
    assert str(e.value) == str(e2.value)
    _same(a, b)


def test_bad_arguments_change_nothing() -> None:
    a, b = _pair()
    with pytest.raises(KernelError) as e:
        a[0].clone_many(a[1], 10, CLONE_THREAD | CLONE_NEWPID)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as e:
        a[0].clone_many(a[1], "ten")
    assert e.value.errno == errno.EINVAL
    assert a[0].clone_many(a[1], 0) == []
    _same(a, b)


def test_restored_threads_with_one_inode_twice_say_so() -> None:
    """A run of ordinary threads in one record, two of them with one pidfs inode: the restore
    names the second, as it did thread by thread."""
    import json

    from pidfs_fuse.snapshot import SnapshotError, restore

    k = Kernel()
    p = k.clone(k.init).task
    for _ in range(5):
        k.clone(p, CLONE_THREAD)
    doc = dump(k)
    rec = next(r for r in doc["records"] if r.get("process") == p.pid.ino)
    rec["threads"][4][0] = rec["threads"][2][0]
    with pytest.raises(SnapshotError) as e:
        restore(json.loads(json.dumps(doc)))
    assert e.value.errno == errno.EINVAL
    assert ".threads[4][0] (ino)" in str(e.value) and "used twice" in str(e.value)
    rec["threads"][4][0] = rec["threads"][5][0] + 100  # a free inode, numbers taken twice
    rec["threads"][4][1] = rec["threads"][3][1]
    doc["next_ino"] += 200
    with pytest.raises(SnapshotError) as e:
        restore(json.loads(json.dumps(doc)))
    assert e.value.errno == errno.EINVAL
    assert ".threads[4]: clone (thread) with set_tid" in str(e.value) and "EEXIST" in str(e.value)
