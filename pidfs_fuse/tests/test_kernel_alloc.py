"""Pid allocation (kernel/pid.c alloc_pid, lib/idr.c idr_alloc_cyclic) and the pid_max limits of
every level, after tools/testing/selftests/pid_namespace/pid_max.c and regression_enomem.c.

Numbers in comments are the kernel's: RESERVED_PIDS = 300, PID_MAX_LIMIT = 4194304, 32 nested
levels at most. A failed allocation gives back every number it took and, unlike Linux (out_free
removes the ids but only rewinds the cursor of a namespace whose first allocation failed), also
rewinds every cursor it moved, so a failed clone changes nothing (a documented departure in
kernel/core.py). A namespace whose first allocation failed therefore still starts at 1.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import (
    CLONE_NEWPID,
    CLONE_THREAD,
    MAX_PID_NS_LEVEL,
    P_PID,
    PID_MAX_LIMIT,
    RESERVED_PIDS,
    WEXITED,
    Kernel,
    KernelError,
)
from pidfs_fuse.tests.conftest import expect_error, new_kernel, ns_chain, raises, reap_all, spawn, tgids


def fork_and_reap(k: Kernel, parent, **kw):
    """clone + exit + waitid: returns the dead child's pid numbers."""
    t = k.clone(parent, **kw).task
    k.exit(t, 0)
    res = k.waitid(parent, P_PID, t.pid.nr_in(parent.pid.ns), WEXITED)
    assert res is not None and res.task is t
    return t.pid.numbers


def fill(k: Kernel, parent) -> list:
    """Clone children of ``parent`` until some level runs out (EAGAIN); returns them."""
    out = []
    while True:
        try:
            out.append(k.clone(parent).task)
        except KernelError as e:
            assert e.errno == errno.EAGAIN, e
            return out


# -- the first pid, cyclic order --------------------------------------------------------------


def test_first_pid_of_the_root_namespace_is_1_and_the_next_is_2() -> None:
    k = new_kernel()
    assert k.init.pid.numbers == (1,)
    assert k.root_ns.child_reaper is k.init
    assert k.clone(k.init).task.pid.numbers == (2,)
    assert k.root_ns.last_pid == 2


def test_first_pid_of_a_new_namespace_is_1_at_its_level() -> None:
    k = new_kernel()
    child = k.clone(k.init, CLONE_NEWPID).task
    assert child.pid.numbers == (2, 1)
    assert child.pid.ns.child_reaper is child
    assert k.clone(child).task.pid.numbers == (3, 2)


def test_alloc_is_cyclic_and_never_reuses_a_number_at_once() -> None:
    k = new_kernel()
    assert fork_and_reap(k, k.init) == (2,)
    assert fork_and_reap(k, k.init) == (3,)  # 2 is free again but the cursor is past it
    assert k.clone(k.init).task.pid.numbers == (4,)


def test_alloc_wraps_to_reserved_pids_and_300_is_allocatable() -> None:
    k = new_kernel(pid_max=400)
    kids = spawn(k, k.init, 398)
    assert [t.pid.nr for t in kids] == list(range(2, 400))
    for t in kids:
        k.exit(t)
    reap_all(k, k.init)
    assert len(k.root_ns.idr) == 1
    assert fork_and_reap(k, k.init) == (RESERVED_PIDS,)
    assert fork_and_reap(k, k.init) == (301,)


def test_after_a_wrap_1_to_299_are_never_handed_out_again() -> None:
    k = new_kernel(pid_max=400)
    seen = [fork_and_reap(k, k.init)[0] for _ in range(1000)]
    assert seen[:398] == list(range(2, 400))
    assert seen[398:498] == list(range(300, 400))
    assert min(seen[398:]) == 300 and max(seen) == 399


def test_wrap_skips_numbers_still_in_use() -> None:
    k = new_kernel(pid_max=400)
    kids = spawn(k, k.init, 398)
    keep = {300, 301, 350}
    for t in kids:
        if t.pid.nr not in keep:
            k.exit(t)
            k.waitid(k.init, P_PID, t.pid.nr)
    assert [t.pid.nr for t in spawn(k, k.init, 3)] == [302, 303, 304]
    assert tgids(k) == [1, 300, 301, 302, 303, 304, 350]


def test_full_namespace_gives_eagain_and_changes_nothing() -> None:
    k = new_kernel(pid_max=400)
    spawn(k, k.init, 398)
    e = expect_error(k, errno.EAGAIN, k.clone, k.init)
    assert "pid_max 400" in str(e)


def test_free_number_below_300_does_not_help_once_the_cursor_wrapped() -> None:
    # cursor 400 > RESERVED_PIDS, so idr_alloc_cyclic only looks at 300..399
    k = new_kernel(pid_max=400)
    kids = spawn(k, k.init, 398)
    k.exit(kids[3])
    k.waitid(k.init, P_PID, 5)
    assert k.find_pid(k.root_ns, 5) is None
    expect_error(k, errno.EAGAIN, k.clone, k.init)


def test_threads_take_numbers_from_the_same_map() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    assert (p.pid.nr, th.pid.nr) == (2, 3)
    assert k.clone(k.init).task.pid.nr == 4


# -- pid_max at every level (pid_max.c) --------------------------------------------------------


def test_parent_level_refuses_even_when_the_child_namespace_allows_more() -> None:
    k = new_kernel(pid_max=400)
    ns_init = k.clone(k.init, CLONE_NEWPID).task  # root 2, child 1
    ns = ns_init.pid.ns
    assert ns.pid_max == PID_MAX_LIMIT
    spawn(k, k.init, 397)  # root 3..399: root is full
    e = expect_error(k, errno.EAGAIN, k.clone, ns_init)
    assert f"namespace {k.root_ns.inum}" in str(e) and "level 0" in str(e)
    assert len(ns.idr) == 1 and ns.last_pid == 1  # the child-level number 2 was given back
    k.set_pid_max(k.root_ns, 500)
    assert k.clone(ns_init).task.pid.numbers == (400, 2)


def test_nested_limit_outer_level_runs_out_first() -> None:
    # pid_max.c nested_limit: the outer namespace writes 400, the nested one 500 (above its
    # parent's, accepted); forks in the nested one fail once the outer level is full.
    k = new_kernel()
    outer = k.clone(k.init, CLONE_NEWPID).task
    k.set_pid_max(outer.pid.ns, 400)
    inner = k.clone(outer, CLONE_NEWPID).task
    k.set_pid_max(inner.pid.ns, 500)
    assert inner.pid.ns.pid_max == 500
    kids = fill(k, inner)
    assert len(kids) == 397  # outer numbers 3..399
    assert kids[-1].pid.numbers[1:] == (399, 398)
    assert max(t.pid.numbers[2] for t in kids) < 400


def test_nested_last_outer_number_then_refusal_then_everything_wraps() -> None:
    # pid_max.c nested: outer (pid_max 400) pre-creates 396 children; the nested namespace
    # gets the last free outer number for its first fork, its second fork fails.
    k = new_kernel()
    outer = k.clone(k.init, CLONE_NEWPID).task
    k.set_pid_max(outer.pid.ns, 400)
    pre = spawn(k, outer, 396)  # outer 2..397
    inner = k.clone(outer, CLONE_NEWPID).task  # outer 398
    k.set_pid_max(inner.pid.ns, 500)
    first = k.clone(inner).task
    assert first.pid.numbers[1:] == (399, 2)
    expect_error(k, errno.EAGAIN, k.clone, inner)
    k.exit(first)
    k.waitid(inner, P_PID, 2)
    for t in pre:
        k.exit(t)
    reap_all(k, outer)
    seen = [fork_and_reap(k, inner)[1:] for _ in range(510)]
    assert all(o < 400 and i < 500 for o, i in seen)
    assert {o for o, _ in seen} >= {300, 399}  # the outer level wrapped too


def test_simple_namespace_wraps_instead_of_failing() -> None:
    # pid_max.c simple: pid_max 400, then 401 sequential fork+reap never exceed it
    k = new_kernel()
    ns_init = k.clone(k.init, CLONE_NEWPID).task
    k.set_pid_max(ns_init.pid.ns, 400)
    seen = [fork_and_reap(k, ns_init)[1] for _ in range(401)]
    assert max(seen) == 399 and seen[-3:] == [300, 301, 302]


def test_lowering_pid_max_below_the_cursor_wraps_at_the_next_clone() -> None:
    k = new_kernel()
    spawn(k, k.init, 600)
    k.set_pid_max(k.root_ns, 500)
    assert k.find_pid(k.root_ns, 601) is not None  # existing numbers stay
    expect_error(k, errno.EAGAIN, k.clone, k.init)  # 300..499 are all taken
    k.set_pid_max(k.root_ns, 700)
    assert k.clone(k.init).task.pid.nr == 602


# -- nesting depth, dead namespaces -------------------------------------------------------------


def test_32_nested_levels_then_enospc() -> None:
    k = new_kernel()
    inits = ns_chain(k, MAX_PID_NS_LEVEL)
    deepest = inits[-1]
    assert deepest.pid.ns.level == 32
    assert deepest.pid.numbers == tuple(range(33, 0, -1))  # one number per level, 33 levels
    e = expect_error(k, errno.ENOSPC, k.clone, deepest, CLONE_NEWPID)
    assert "32" in str(e)
    expect_error(k, errno.ENOSPC, k.unshare_pid_ns, deepest)
    assert k.clone(deepest).task.pid.numbers[-1] == 2  # plain children still fit


def test_clone_into_a_namespace_whose_init_died_gives_enomem() -> None:
    # regression_enomem.c: unshare(CLONE_NEWPID); fork() -> pid 1, which exits and is reaped;
    # the next fork fails with ENOMEM (zap_pid_ns_processes disabled allocation)
    k = new_kernel()
    parent = k.clone(k.init).task
    ns = k.unshare_pid_ns(parent)
    child = k.clone(parent).task
    assert child.pid.numbers == (3, 1)
    k.exit(child)
    res = k.waitid(parent, P_PID, 3)
    assert res is not None and res.kind == "exited" and res.code == 0
    assert not ns.adding and len(ns.idr) == 0
    e = expect_error(k, errno.ENOMEM, k.clone, parent)
    assert "no longer admits" in str(e)
    assert len(ns.idr) == 0 and len(k.root_ns.idr) == 2
    assert ns.last_pid == 1 and k.root_ns.last_pid == 3
    expect_error(k, errno.ENOMEM, k.clone, parent, set_tid=[1])  # even the init number


def test_failed_first_allocation_resets_the_namespace_cursor() -> None:
    k = new_kernel(pid_max=400)
    parent = k.clone(k.init).task  # 2
    ns = k.unshare_pid_ns(parent)
    kids = spawn(k, k.init, 397)  # 3..399: root full
    raises(errno.EAGAIN, k.clone, parent)
    assert ns.idr.cursor == 0 and len(ns.idr) == 0 and ns.adding
    assert kids[297].pid.nr == 300
    k.exit(kids[297])
    k.waitid(k.init, P_PID, 300)
    child = k.clone(parent).task
    assert child.pid.numbers == (300, 1)  # root wrapped; the new namespace still starts at 1
    assert ns.child_reaper is child


def test_failed_later_allocation_rewinds_the_namespace_cursor() -> None:
    # Linux would leave this cursor at 3 (2 taken and given back); the model rewinds it
    k = new_kernel(pid_max=400)
    parent = k.clone(k.init).task
    ns = k.unshare_pid_ns(parent)
    k.clone(parent)  # ns pid 1
    spawn(k, k.init, 396)
    expect_error(k, errno.EAGAIN, k.clone, parent)
    assert ns.idr.cursor == 2


# -- pidfs inode numbers of struct pid ---------------------------------------------------------


def test_pidfs_inode_numbers_start_at_2_count_threads_and_are_never_reused() -> None:
    k = new_kernel()
    assert k.init.pid.ino == 2
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    n = k.clone(k.init, CLONE_NEWPID).task
    assert [p.pid.ino, th.pid.ino, n.pid.ino] == [3, 4, 5]
    k.exit_group(p)
    k.waitid(k.init, P_PID, p.pid.nr)
    inos = []
    for _ in range(3):
        inos.append(k.clone(k.init).task.pid.ino)
        k.exit(k.find_task(k.root_ns, k.root_ns.last_pid))
        k.waitid(k.init, P_PID, k.root_ns.last_pid)
    assert inos == [6, 7, 8]  # strictly increasing, one per struct pid, none reused
    assert k.clone(k.init).task.pid.ino == 9


def test_failed_clones_do_not_consume_pidfs_inode_numbers() -> None:
    k = new_kernel(pid_max=400)
    spawn(k, k.init, 397)
    last = k.clone(k.init).task.pid.ino
    raises(errno.EAGAIN, k.clone, k.init)
    raises(errno.EINVAL, k.clone, k.init, set_tid=[0])
    k.set_pid_max(k.root_ns, 401)
    assert k.clone(k.init).task.pid.ino == last + 1


@pytest.mark.parametrize("pid_max", [301, 400, 32768, PID_MAX_LIMIT], ids=lambda v: f"pid_max={v}")
def test_kernel_boots_with_any_valid_pid_max(pid_max: int) -> None:
    k = Kernel(pid_max=pid_max)
    assert k.root_ns.pid_max == pid_max and k.init.pid.nr == 1
