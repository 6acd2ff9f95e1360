"""The tagged TGID scan of seed 000 ("pid: tag pids associated with group leader tasks").

Every pid allocated by a clone without CLONE_THREAD is tagged in the id map of every level;
threads are not. Listing thread-group leaders walks tagged ids only (find_get_tgid_task) and
skips tagged pids without a TGID task (false positives: the daemonize pattern leaves its pid
alive as a session/group id). False negatives never happen: attaching a TGID task to an untagged
pid is an internal error. Exec by a non-leader keeps the leader's tagged pid. The linear scan
(fs/proc/base.c next_tgid with find_ge_pid) must list exactly the same leaders everywhere.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_PARENT, CLONE_THREAD, P_PID, ModelBug
from pidfs_fuse.kernel.idr import Idr
from pidfs_fuse.kernel.signals import SIGKILL
from pidfs_fuse.tests.conftest import assert_scans_agree, new_kernel, raises, reap_all, spawn, tgids


class StepCounter:
    """Counts how many ids each walk examines (calls of the idr successor queries)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tagged = self.linear = 0
        real_tagged, real_used = Idr.next_tagged, Idr.next_used

        def next_tagged(idr: Idr, nr: int) -> int:
            self.tagged += 1
            return real_tagged(idr, nr)

        def next_used(idr: Idr, nr: int) -> int:
            self.linear += 1
            return real_used(idr, nr)

        monkeypatch.setattr(Idr, "next_tagged", next_tagged)
        monkeypatch.setattr(Idr, "next_used", next_used)

    def reset(self) -> None:
        self.tagged = self.linear = 0


def test_processes_are_tagged_at_every_level_and_threads_nowhere() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    p = k.clone(n).task
    sib = k.clone(p, CLONE_PARENT).task
    th = k.clone(p, CLONE_THREAD).task
    for t in (k.init, n, p, sib):
        for lvl, nr in enumerate(t.pid.numbers):
            assert t.pid.ns.ancestors[lvl].idr.is_tagged(nr), (t, lvl)
    for lvl, nr in enumerate(th.pid.numbers):
        assert not th.pid.ns.ancestors[lvl].idr.is_tagged(nr)
    assert k.root_ns.idr.tagged_count == 4 and len(k.root_ns.idr) == 5
    assert tgids(k) == [1, 2, 3, 4] and tgids(k, n.pid.ns) == [1, 2, 3]


def test_tagged_walk_does_not_pay_for_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    k = new_kernel()
    spawn(k, k.init, 3)  # 2, 3, 4
    busy = k.clone(k.init).task  # 5
    for _ in range(1000):
        k.clone(busy, CLONE_THREAD)
    last = k.clone(k.init).task  # 1006
    steps = StepCounter(monkeypatch)
    tagged = list(k.iter_tgids(k.root_ns))
    assert [nr for nr, _ in tagged] == [1, 2, 3, 4, 5, last.pid.nr]
    assert (steps.tagged, steps.linear) == (7, 0)  # 6 leaders + the final miss
    steps.reset()
    assert list(k.iter_tgids(k.root_ns, linear=True)) == tagged
    assert (steps.tagged, steps.linear) == (0, 1007)  # every allocated id + the final miss


def test_tagged_walk_cost_is_the_same_with_or_without_a_thousand_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    costs = []
    for threads in (0, 1000):
        k = new_kernel()
        p = k.clone(k.init).task
        for _ in range(threads):
            k.clone(p, CLONE_THREAD)
        spawn(k, k.init, 5)
        steps = StepCounter(monkeypatch)
        assert len(list(k.iter_tgids(k.root_ns))) == 7
        costs.append(steps.tagged)
        monkeypatch.undo()
    assert costs[0] == costs[1] == 8


def test_daemonize_leaves_a_tagged_pid_that_both_scans_skip() -> None:
    # setsid(); fork(); the session leader exits: its pid lives on as the session and process
    # group id of the daemon, tagged, without a TGID task (seed 000's false positive)
    k = new_kernel()
    d = k.clone(k.init).task  # 2
    assert k.setsid(d) == 2
    daemon = k.clone(d).task  # 3
    k.exit(d)
    assert k.waitid(k.init, P_PID, 2).kind == "exited"
    pid2 = k.find_pid(k.root_ns, 2)
    assert pid2 is not None and pid2.allocated and k.root_ns.idr.is_tagged(2)
    assert pid2.task is None and pid2.tgid_task is None
    assert daemon.group.session is pid2 and daemon.group.pgrp is pid2
    assert tgids(k) == [1, 3]
    assert k.next_tgid(k.root_ns, 2) == (3, daemon)
    raises(errno.ESRCH, k.pidfd_open, k.root_ns, 2)
    k.exit(daemon)
    k.waitid(k.init, P_PID, 3)
    assert k.find_pid(k.root_ns, 2) is None  # freed with its last user


def test_process_group_only_pid_is_skipped_too() -> None:
    k = new_kernel()
    leader = k.clone(k.init).task  # 2
    k.setpgid(leader, 0, 0)
    member = k.clone(leader).task  # 3, in group 2
    k.exit(leader)
    k.waitid(k.init, P_PID, 2)
    assert member.group.pgrp.numbers == (2,) and member.group.parent is k.init
    assert tgids(k) == [1, 3]


def test_attaching_a_tgid_task_to_an_untagged_pid_is_a_model_bug() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    with pytest.raises(ModelBug, match="untagged"):
        k._attach_tgid(th.pid, th)


def test_exec_by_a_thread_keeps_the_tagged_leader_pid() -> None:
    k = new_kernel()
    p = k.clone(k.init).task  # 2
    th = k.clone(p, CLONE_THREAD).task  # 3
    other = k.clone(p, CLONE_THREAD).task  # 4
    k.execve(th, "newprog")
    assert th.pid.numbers == (2,) and th.is_leader and k.root_ns.idr.is_tagged(2)
    assert k.find_pid(k.root_ns, 3) is None and k.find_pid(k.root_ns, 4) is None
    assert other.exit_state.name == "DEAD"
    assert tgids(k) == [1, 2]
    assert k.next_tgid(k.root_ns, 2) == (2, th)


def test_scan_lists_zombies_until_reaped_and_zombie_leaders_with_live_threads() -> None:
    k = new_kernel()
    z = k.clone(k.init).task  # 2
    p = k.clone(k.init).task  # 3
    th = k.clone(p, CLONE_THREAD).task  # 4
    k.exit(z)
    k.exit(p)
    assert tgids(k) == [1, 2, 3]
    k.waitid(k.init, P_PID, 2)
    assert tgids(k) == [1, 3]
    k.exit(th)
    reap_all(k, k.init)
    assert tgids(k) == [1]


@pytest.mark.parametrize(("start", "expected"), [
    (-5, [1, 2, 5, 9]), (0, [1, 2, 5, 9]), (2, [2, 5, 9]), (3, [5, 9]), (9, [9]), (10, []),
    (4_194_304, []),
], ids=lambda v: str(v))
def test_scan_resumes_from_any_number(start: int, expected: list[int]) -> None:
    k = new_kernel()
    p = k.clone(k.init).task  # 2
    for _ in range(2):
        k.clone(p, CLONE_THREAD)  # 3, 4
    q = k.clone(k.init).task  # 5
    for _ in range(3):
        k.clone(q, CLONE_THREAD)  # 6, 7, 8
    k.clone(k.init)  # 9
    for linear in (False, True):
        assert [nr for nr, _ in k.iter_tgids(k.root_ns, start, linear=linear)] == expected
        assert [nr for nr, _ in k.scan_tgids(k.root_ns, start, linear=linear)] == expected


def test_scans_agree_through_a_busy_life() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    procs = spawn(k, n, 20)
    for i, p in enumerate(procs):
        for _ in range(i % 4):
            k.clone(p, CLONE_THREAD)
        if i % 3 == 0:
            k.setsid(p)
            k.clone(p)
    assert_scans_agree(k)
    for i, p in enumerate(procs):
        if i % 2:
            k.kill(p, SIGKILL)
        elif i % 5 == 0:
            k.execve(list(p.group.threads)[-1], "x")
    assert_scans_agree(k)
    reap_all(k, n)
    assert_scans_agree(k)
    k.exit_group(n)
    assert_scans_agree(k)
    reap_all(k, k.init)
    assert tgids(k) == [1]
