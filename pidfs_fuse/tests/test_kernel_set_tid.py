"""clone3's set_tid: choose the number at each level, innermost first (kernel/pid.c alloc_pid).

The first table is tools/testing/selftests/clone3/clone3_set_tid.c case by case (its numbering
kept in the ids), translated to the model: the test program is a root-namespace process P with
uid 0; "pid" is a number P forked and reaped earlier; "unshared" is P after
unshare(CLONE_NEWPID); "in_ns" is the init P then forked into that namespace.

Errors (kernel 6.18 order, checked level by level from the innermost): more entries than levels
or than 32 -> EINVAL; an entry < 1 or >= that level's pid_max -> EINVAL; a number other than 1
in a namespace without init -> EINVAL; no privilege -> EPERM; number taken -> EEXIST. Every
failure leaves the model exactly as it was (``expect_error`` compares snapshots).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_THREAD, P_PID, Kernel, Task
from pidfs_fuse.tests.conftest import expect_error, new_kernel, tgids

EINVAL, EEXIST, EPERM = errno.EINVAL, errno.EEXIST, errno.EPERM


@dataclass
class World:
    k: Kernel
    caller: Task
    pid: int  # a root-namespace number that was used and is free again
    pid_max: int


def make_world(where: str, uid: int = 0) -> World:
    k = new_kernel()
    p = k.clone(k.init, uid=uid).task  # 2
    gone = k.clone(p).task  # 3
    k.exit(gone)
    assert k.waitid(p, P_PID, 3) is not None
    caller = p
    if where in ("unshared", "in_ns"):
        k.unshare_pid_ns(p)
    if where == "in_ns":
        caller = k.clone(p).task  # root 4, pid 1 of the new namespace
        assert caller.pid.numbers == (4, 1)
    return World(k, caller, 3, k.root_ns.pid_max)


Ids = Callable[[World], list[int]]

# (id, world, set_tid, flags, expected errno or expected numbers of the child)
SELFTEST: list[tuple[str, str, Ids, int, Any]] = [
    ("01-zeros-33", "host", lambda w: [0] * 33, 0, EINVAL),
    ("02-zeros-64", "host", lambda w: [0] * 64, 0, EINVAL),
    ("03-zeros-65", "host", lambda w: [0] * 65, 0, EINVAL),
    ("04-zeros-1344", "host", lambda w: [0] * 1344, 0, EINVAL),
    ("05-zeros-31", "host", lambda w: [0] * 31, 0, EINVAL),  # 31 > level 0 + 1
    ("06-minus1-33", "host", lambda w: [-1] * 33, 0, EINVAL),
    ("07-minus1-64", "host", lambda w: [-1] * 64, 0, EINVAL),
    ("08-minus1-65", "host", lambda w: [-1] * 65, 0, EINVAL),
    ("09-minus1-1344", "host", lambda w: [-1] * 1344, 0, EINVAL),
    ("10-minus1-31", "host", lambda w: [-1] * 31, 0, EINVAL),
    ("11-zero", "host", lambda w: [0], 0, EINVAL),
    ("12-minus1", "host", lambda w: [-1], 0, EINVAL),
    ("13-two-entries-one-level", "host", lambda w: [-1, 0], 0, EINVAL),
    ("14-minus1-newpid", "host", lambda w: [-1], CLONE_NEWPID, EINVAL),
    ("15-pid1-taken", "host", lambda w: [1], 0, EEXIST),
    ("16-pid1-newpid", "host", lambda w: [1], CLONE_NEWPID, lambda w: (4, 1)),
    ("17-pid_max", "host", lambda w: [w.pid_max], 0, EINVAL),
    ("18-pid_max-newpid-no-init", "host", lambda w: [w.pid_max], CLONE_NEWPID, EINVAL),
    ("19-reaped-pid", "host", lambda w: [w.pid], 0, lambda w: (w.pid,)),
    ("20-reaped-pid-newpid-no-init", "host", lambda w: [w.pid], CLONE_NEWPID, EINVAL),
    ("21-one-and-pid-newpid", "host", lambda w: [1, w.pid], CLONE_NEWPID, lambda w: (w.pid, 1)),
    ("22-unshared-ns-has-no-init", "unshared", lambda w: [w.pid], 0, EINVAL),
    ("23-two-inside", "in_ns", lambda w: [2], 0, lambda w: (5, 2)),
    ("24-invalid-middle-level", "in_ns", lambda w: [1, -1, w.pid], CLONE_NEWPID, EINVAL),
    ("25-four-entries-three-levels", "in_ns", lambda w: [1, 42, w.pid, 0], CLONE_NEWPID, EINVAL),
    ("26-27-three-levels-nspid", "in_ns", lambda w: [1, 42, w.pid], CLONE_NEWPID,
     lambda w: (w.pid, 42, 1)),
]


@pytest.mark.parametrize(("where", "set_tid", "flags", "expected"),
                         [c[1:] for c in SELFTEST], ids=[c[0] for c in SELFTEST])
def test_clone3_set_tid_selftest(where: str, set_tid: Ids, flags: int, expected: Any) -> None:
    w = make_world(where)
    k = w.k
    tids = set_tid(w)
    if isinstance(expected, int):
        expect_error(k, expected, k.clone, w.caller, flags, set_tid=tids)
        return
    cursors = [ns.idr.cursor for ns in w.caller.ns_for_children.ancestors]
    child = k.clone(w.caller, flags, set_tid=tids).task
    assert child.pid.numbers == expected(w)
    # levels given a number explicitly keep their cursor (idr_alloc, not idr_alloc_cyclic)
    levels = child.pid.ns.ancestors
    for lvl in range(len(cursors)):
        if len(levels) - 1 - lvl < len(tids):
            assert levels[lvl].idr.cursor == cursors[lvl]
    tgids(k)


# -- privilege ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("set_tid", "err"), [
    ([5000], EPERM),
    ([1], EPERM),  # privilege is checked before the number is looked up (EEXIST)
    ([0], EINVAL),  # the range is checked before privilege
    ([32768], EINVAL),
], ids=["free-number", "taken-number", "zero", "pid_max"])
def test_set_tid_without_privilege(set_tid: list[int], err: int) -> None:
    w = make_world("host", uid=1000)
    e = expect_error(w.k, err, w.k.clone, w.caller, set_tid=set_tid)
    assert str(set_tid[0]) in str(e)


def test_set_tid_order_is_per_level_innermost_first() -> None:
    # kernel 6.18 checks and allocates level by level, so EEXIST at the inner level is reported
    # even though the outer entry (0) is invalid; 6.19+ would report EINVAL (validation first).
    w = make_world("in_ns")
    e = expect_error(w.k, EEXIST, w.k.clone, w.caller, set_tid=[1, 0])
    assert "set_tid[0]=1" in str(e)


def test_eexist_at_an_outer_level_gives_back_the_inner_number() -> None:
    w = make_world("in_ns")
    k = w.k
    e = expect_error(k, EEXIST, k.clone, w.caller, set_tid=[5, 2])  # root 2 is the caller's P
    assert "set_tid[1]=2" in str(e)
    assert k.find_pid(w.caller.pid.ns, 5) is None
    assert k.clone(w.caller, set_tid=[5]).task.pid.numbers == (5, 5)


def test_set_tid_may_cover_only_the_inner_levels() -> None:
    w = make_world("in_ns")
    child = w.k.clone(w.caller, set_tid=[7]).task
    assert child.pid.numbers == (5, 7)  # root number from the cursor


def test_set_tid_checks_each_level_against_its_own_pid_max() -> None:
    w = make_world("in_ns")
    k = w.k
    k.set_pid_max(w.caller.pid.ns, 500)
    e = expect_error(k, EINVAL, k.clone, w.caller, set_tid=[600])
    assert "1..499" in str(e)
    k.set_pid_max(k.root_ns, 400)
    expect_error(k, EINVAL, k.clone, w.caller, set_tid=[6, 450])
    assert k.clone(w.caller, set_tid=[6, 399]).task.pid.numbers == (399, 6)


# -- the cursor ------------------------------------------------------------------------------


def test_set_tid_does_not_move_the_cursor() -> None:
    w = make_world("host")
    k = w.k
    assert k.root_ns.last_pid == 3
    assert k.clone(w.caller, set_tid=[5000]).task.pid.nr == 5000
    assert k.root_ns.last_pid == 3
    assert k.clone(w.caller).task.pid.nr == 4


def test_cyclic_allocation_steps_over_a_number_taken_by_set_tid() -> None:
    w = make_world("host")
    k = w.k
    k.clone(w.caller, set_tid=[4])
    assert [k.clone(w.caller).task.pid.nr for _ in range(2)] == [5, 6]


def test_set_tid_for_a_thread_and_for_a_new_namespace_with_an_explicit_root_number() -> None:
    w = make_world("host")
    k = w.k
    th = k.clone(w.caller, CLONE_THREAD, set_tid=[777]).task
    assert th.pid.numbers == (777,) and th.group is w.caller.group
    n = k.clone(w.caller, CLONE_NEWPID, set_tid=[1, 5000]).task
    assert n.pid.numbers == (5000, 1) and n.pid.ns.child_reaper is n
    assert tgids(k) == [1, 2, 5000]


@pytest.mark.parametrize(("set_tid", "err"), [
    ([1, 1, 1], EEXIST),  # level 2's 1 is the caller
    ([2, 3, 0], EINVAL),  # levels 2 and 1 allocated, then the root entry is invalid
    ([2, 99, 2], EEXIST),  # root 2 is P
    ([2, 3, 40000], EINVAL),  # root pid_max is 32768
    ([2, 2], EEXIST),  # level 1's 2 is the caller's own pid there
    ([2, 3, 4, 5], EINVAL),  # four entries, three levels
], ids=["inner-taken", "root-zero", "root-taken", "root-too-big", "middle-taken", "too-many"])
def test_set_tid_failure_in_a_three_level_tree_changes_nothing(set_tid: list[int], err: int) -> None:
    w = make_world("in_ns")
    k = w.k
    deeper = k.clone(w.caller, CLONE_NEWPID).task
    assert deeper.pid.numbers == (5, 2, 1)
    expect_error(k, err, k.clone, deeper, set_tid=set_tid)
    assert k.clone(deeper, set_tid=[2, 3, 6]).task.pid.numbers == (6, 3, 2)
