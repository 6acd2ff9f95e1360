"""kernel.pid_max and kernel.ns_last_pid, one of each per pid namespace (kernel/pid.c pid_table,
kernel/pid_namespace.c pid_ns_ctl_handler, "pid: allow pid_max to be set per pid namespace" and
"pid: Do not set pid_max in new pid namespaces").

pid_max accepts 301..4194304 (pid_max_min = RESERVED_PIDS + 1 on a small machine, PID_MAX_LIMIT),
is not capped by the parent's value, and a new namespace reads PID_MAX_LIMIT. ns_last_pid reads
the cursor minus one, accepts 0..pid_max, and the next cyclic allocation starts right after the
value written. Writing either needs privilege; ns_last_pid checks privilege before the value.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, P_PID, PID_MAX_DEFAULT, PID_MAX_LIMIT, PID_MAX_MIN
from pidfs_fuse.tests.conftest import expect_error, new_kernel, spawn


def test_root_namespace_reads_32768_and_a_new_namespace_reads_the_limit() -> None:
    k = new_kernel(pid_max=400)
    assert new_kernel().root_ns.pid_max == PID_MAX_DEFAULT == 32768
    n = k.clone(k.init, CLONE_NEWPID).task
    assert n.pid.ns.pid_max == PID_MAX_LIMIT == 4194304  # not inherited from the parent (400)
    assert k.unshare_pid_ns(n).pid_max == PID_MAX_LIMIT


@pytest.mark.parametrize("value", [PID_MAX_MIN, 400, 32768, PID_MAX_LIMIT], ids=lambda v: f"{v}")
def test_pid_max_accepts_301_to_4194304(value: int) -> None:
    k = new_kernel()
    k.set_pid_max(k.root_ns, value)
    assert k.root_ns.pid_max == value


@pytest.mark.parametrize("value", [-1, 0, 1, 300, PID_MAX_LIMIT + 1, 2**31],
                         ids=lambda v: f"{v}")
def test_pid_max_outside_301_to_4194304_is_einval(value: int) -> None:
    k = new_kernel()
    e = expect_error(k, errno.EINVAL, k.set_pid_max, k.root_ns, value)
    assert repr(value) in str(e) and "301..4194304" in str(e)


@pytest.mark.parametrize("uid", [1, 1000], ids=lambda v: f"uid{v}")
def test_pid_max_write_needs_uid_0(uid: int) -> None:
    k = new_kernel()
    e = expect_error(k, errno.EPERM, k.set_pid_max, k.root_ns, 500, uid=uid)
    assert str(uid) in str(e)


def test_child_namespace_may_set_a_higher_pid_max_than_its_parent() -> None:
    k = new_kernel(pid_max=400)
    n = k.clone(k.init, CLONE_NEWPID).task
    k.set_pid_max(n.pid.ns, 100_000)
    assert (k.root_ns.pid_max, n.pid.ns.pid_max) == (400, 100_000)


def test_pid_max_of_a_level_limits_only_numbers_at_that_level() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    k.set_pid_max(n.pid.ns, 301)
    kids = spawn(k, n, 299)  # ns numbers 2..300
    assert kids[-1].pid.numbers == (301, 300)
    expect_error(k, errno.EAGAIN, k.clone, n)
    assert k.clone(k.init).task.pid.nr == 302  # the root level is unaffected


# -- ns_last_pid -------------------------------------------------------------------------------


def test_ns_last_pid_reads_the_last_allocated_number() -> None:
    k = new_kernel()
    assert k.root_ns.last_pid == 1
    spawn(k, k.init, 5)
    assert k.root_ns.last_pid == 6


@pytest.mark.parametrize(("written", "next_pid"), [(0, 2), (1, 2), (99, 100), (4999, 5000),
                                                   (32767, 300), (32768, 300)],
                         ids=["0", "1-taken", "99", "4999", "pid_max-1", "pid_max"])
def test_next_clone_gets_ns_last_pid_plus_one(written: int, next_pid: int) -> None:
    k = new_kernel()
    k.set_last_pid(k.root_ns, written)
    assert k.root_ns.last_pid == written
    assert k.clone(k.init).task.pid.nr == next_pid


@pytest.mark.parametrize("value", [-1, 32769, 10**9], ids=lambda v: f"{v}")
def test_ns_last_pid_outside_0_to_pid_max_is_einval(value: int) -> None:
    k = new_kernel()
    e = expect_error(k, errno.EINVAL, k.set_last_pid, k.root_ns, value)
    assert repr(value) in str(e) and "0..32768" in str(e)


def test_ns_last_pid_bound_is_the_namespace_own_pid_max() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    k.set_last_pid(n.pid.ns, 100_000)  # above the root's 32768, within its own limit
    assert k.clone(n).task.pid.numbers == (3, 100_001)
    k.set_pid_max(n.pid.ns, 500)
    expect_error(k, errno.EINVAL, k.set_last_pid, n.pid.ns, 501)


@pytest.mark.parametrize("value", [5, -1, 10**9], ids=["valid", "negative", "huge"])
def test_ns_last_pid_checks_privilege_before_the_value(value: int) -> None:
    k = new_kernel()
    expect_error(k, errno.EPERM, k.set_last_pid, k.root_ns, value, uid=1000)


def test_ns_last_pid_is_per_namespace() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task  # root 2, ns 1
    k.set_last_pid(n.pid.ns, 41)
    assert k.root_ns.last_pid == 2
    assert k.clone(n).task.pid.numbers == (3, 42)
    k.set_last_pid(k.root_ns, 999)
    assert n.pid.ns.last_pid == 42
    assert k.clone(n).task.pid.numbers == (1000, 43)


def test_ns_last_pid_skips_taken_numbers_from_the_written_value() -> None:
    k = new_kernel()
    spawn(k, k.init, 10)  # 2..11
    k.set_last_pid(k.root_ns, 4)
    assert [t.pid.nr for t in spawn(k, k.init, 2)] == [12, 13]


def test_ns_last_pid_below_300_reopens_low_numbers_after_a_wrap() -> None:
    # pid_min is RESERVED_PIDS only while the cursor is above it
    k = new_kernel(pid_max=400)
    kids = spawn(k, k.init, 398)
    k.exit(kids[8])
    k.waitid(k.init, P_PID, 10)
    k.set_last_pid(k.root_ns, 9)
    assert k.clone(k.init).task.pid.nr == 10
