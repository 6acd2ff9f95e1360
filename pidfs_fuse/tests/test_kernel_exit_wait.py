"""Exit, zombies, reaping and waitid (kernel/exit.c), after the pidfd_wait.c and
pidfd_info_test.c selftests and the research notes on do_wait / wait_consider_task.

Wait status words are the kernel's: exit(n) -> n << 8; killed by sig -> sig, | 0x80 when a core
was dumped; stopped -> (sig << 8) | 0x7f; continued -> 0xffff. ``waitid`` returns None where
the kernel would block or return 0 with WNOHANG.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import (
    CLONE_PIDFD,
    CLONE_THREAD,
    CLONE_WAIT_PID,
    P_ALL,
    P_PGID,
    P_PID,
    P_PIDFD,
    PIDFD_NONBLOCK,
    PIDFD_THREAD,
    WALL,
    WCLONE,
    WCONTINUED,
    WEXITED,
    WNOHANG,
    WNOTHREAD,
    WNOWAIT,
    WSTOPPED,
    ExitInfo,
    ExitState,
    describe_status,
)
from pidfs_fuse.kernel.signals import SIGCHLD, SIGCONT, SIGKILL, SIGSEGV, SIGSTOP, SIGTERM
from pidfs_fuse.tests.conftest import expect_error, job, new_kernel, raises, spawn, tgids

SIGQUIT, SIGUSR1, SIGTSTP, SIGHUP = 3, 10, 20, 1


def test_exited_child_is_a_zombie_until_waited_then_gone() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.exit(c, 3)
    assert c.exit_state is ExitState.ZOMBIE and c.pid.task is c
    assert tgids(k) == [1, 2]
    res = k.waitid(k.init)
    assert (res.pid, res.kind, res.code, res.status, res.task) == (2, "exited", 3, 0x300, c)
    assert c.exit_state is ExitState.DEAD and k.find_pid(k.root_ns, 2) is None
    expect_error(k, errno.ECHILD, k.waitid, k.init)


# (id, how the child ends, wait options, expected (kind, code, status))
OUTCOMES = [
    ("exit-0", lambda k, c: k.exit(c, 0), WEXITED, ("exited", 0, 0)),
    ("exit-3", lambda k, c: k.exit(c, 3), WEXITED, ("exited", 3, 3 << 8)),
    ("exit-255", lambda k, c: k.exit_group(c, 255), WEXITED, ("exited", 255, 0xFF00)),
    ("sigkill", lambda k, c: k.kill(c, SIGKILL), WEXITED, ("killed", 9, 9)),
    ("sigterm", lambda k, c: k.kill(c, SIGTERM), WEXITED, ("killed", 15, 15)),
    ("sighup", lambda k, c: k.kill(c, SIGHUP), WEXITED, ("killed", 1, 1)),
    ("sigsegv-dumps", lambda k, c: k.kill(c, SIGSEGV), WEXITED, ("dumped", 11, 11 | 0x80)),
    ("sigquit-dumps", lambda k, c: k.kill(c, SIGQUIT), WEXITED, ("dumped", 3, 3 | 0x80)),
    ("sigstop", lambda k, c: k.kill(c, SIGSTOP), WSTOPPED, ("stopped", 19, (19 << 8) | 0x7F)),
    ("sigtstp", lambda k, c: k.kill(c, SIGTSTP), WSTOPPED, ("stopped", 20, (20 << 8) | 0x7F)),
    ("sigcont", lambda k, c: (k.kill(c, SIGSTOP), k.kill(c, SIGCONT)), WCONTINUED,
     ("continued", 18, 0xFFFF)),
]


@pytest.mark.parametrize(("end", "options", "expected"), [o[1:] for o in OUTCOMES],
                         ids=[o[0] for o in OUTCOMES])
def test_wait_status_encoding(end, options: int, expected: tuple) -> None:
    k = new_kernel()
    sh, c = job(k)  # a job in its own group: SIGTSTP stops it (it would not in an orphaned one)
    end(k, c)
    res = k.waitid(sh, P_ALL, 0, options)
    assert (res.kind, res.code, res.status) == expected
    assert describe_status(res.status) == expected[:2]


# -- thread groups -----------------------------------------------------------------------------


def test_leader_with_live_threads_is_an_unreapable_zombie() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    k.exit(p, 5)
    assert p.exit_state is ExitState.ZOMBIE and th.alive
    assert k.waitid(k.init, P_ALL, 0, WEXITED | WNOHANG) is None  # not ECHILD
    assert k.waitid(k.init, P_PID, 2, WEXITED) is None  # would block
    assert k.waitid(k.init, P_ALL, 0, WSTOPPED | WNOHANG) is None  # live threads may stop
    k.exit(th, 7)
    res = k.waitid(k.init)
    assert (res.pid, res.kind, res.code) == (2, "exited", 5)  # the leader's code, no group exit


def test_non_leader_threads_are_released_at_once() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    k.exit(th, 1)
    assert th.exit_state is ExitState.DEAD and k.find_pid(k.root_ns, 3) is None
    assert list(p.group.threads) == [p] and p.alive
    expect_error(k, errno.ECHILD, k.waitid, k.init, P_PID, 3)


def test_exit_group_from_a_thread_ends_every_thread_with_the_group_code() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    ths = [k.clone(p, CLONE_THREAD).task for _ in range(3)]
    k.exit_group(ths[1], 4)
    assert all(t.exit_state is ExitState.DEAD for t in ths)
    res = k.waitid(k.init)
    assert (res.kind, res.code) == ("exited", 4)


def test_leader_exit_info_is_the_group_code_but_a_thread_keeps_its_own() -> None:
    # pidfd_info_test.c thread_group: the leader exit(0)s while a thread lives, then SIGKILL via
    # the leader's handle; the leader's record is SIGKILL. A thread that exit(3)ed earlier keeps
    # 3 << 8 in its own record.
    k = new_kernel()
    p = k.clone(k.init).task
    early = k.clone(p, CLONE_THREAD).task
    late = k.clone(p, CLONE_THREAD).task
    fd_leader = k.pidfd_open(k.root_ns, 2)
    fd_leader_thread = k.pidfd_open(k.root_ns, 2, PIDFD_THREAD)
    fd_early = k.pidfd_open(k.root_ns, early.pid.nr, PIDFD_THREAD)
    fd_late = k.pidfd_open(k.root_ns, late.pid.nr, PIDFD_THREAD)
    raises(errno.ENOENT, k.pidfd_open, k.root_ns, late.pid.nr, 0)
    k.exit(early, 3)
    k.exit(p, 0)
    assert k.pidfd_poll(fd_leader_thread) == 0 and k.pidfd_poll(fd_leader) == 0
    assert k.exit_info(fd_leader.pid) is None
    k.pidfd_send_signal(fd_leader, SIGKILL)
    res = k.waitid(k.init, P_PIDFD, 3, WEXITED, pidfd=fd_leader)
    assert (res.kind, res.code) == ("killed", SIGKILL)
    assert k.exit_info(fd_leader.pid) == ExitInfo(SIGKILL)
    assert k.exit_info(fd_leader_thread.pid) == ExitInfo(SIGKILL)
    assert k.exit_info(fd_early.pid) == ExitInfo(3 << 8)
    assert k.exit_info(fd_late.pid) == ExitInfo(SIGKILL)


# -- which children a wait looks at ------------------------------------------------------------


def test_p_pid_waits_for_that_child_only() -> None:
    k = new_kernel()
    a, b = spawn(k, k.init, 2)
    k.exit(a, 1)
    k.exit(b, 2)
    assert k.waitid(k.init, P_PID, 3).task is b
    assert k.waitid(k.init, P_PID, 2).task is a


@pytest.mark.parametrize(("target", "err"), [
    (99, errno.ECHILD),  # no such pid
    (1, errno.ECHILD),  # exists, not a child
    (4, errno.ECHILD),  # a thread of a child (only leaders are waited for)
    (0, errno.EINVAL),
    (-1, errno.EINVAL),
], ids=["unknown", "not-a-child", "thread-of-a-child", "zero", "negative"])
def test_p_pid_errors(target: int, err: int) -> None:
    k = new_kernel()
    c = k.clone(k.init).task  # 2
    gc = k.clone(c).task  # 3
    k.clone(c, CLONE_THREAD)  # 4
    k.exit(gc)
    parent = k.init if target != 1 else c
    expect_error(k, err, k.waitid, parent, P_PID, target)


def test_p_pgid_waits_for_children_in_that_group_and_0_means_own_group() -> None:
    k = new_kernel()
    p = k.clone(k.init).task  # 2, in init's group 1
    k.setpgid(p, 0, 0)  # p leads group 2
    a = k.clone(p).task  # 3, group 2
    b = k.clone(p).task  # 4, group 2 -> moved to 4
    k.setpgid(p, 4, 4)
    for t in (a, b):
        k.exit(t)
    assert k.waitid(p, P_PGID, 4).task is b
    expect_error(k, errno.ECHILD, k.waitid, p, P_PGID, 4)
    assert k.waitid(p, P_PGID, 0).task is a  # own group: 2
    expect_error(k, errno.ECHILD, k.waitid, p, P_PGID, 0)
    expect_error(k, errno.ECHILD, k.waitid, p, P_PGID, 77)
    expect_error(k, errno.EINVAL, k.waitid, p, P_PGID, -1)


def test_p_pidfd_reaps_through_the_handle() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD)
    k.exit(r.task, 0)
    res = k.waitid(k.init, P_PIDFD, r.fd, WEXITED, pidfd=r.pidfd)
    assert (res.pid, res.kind, res.code) == (2, "exited", 0)
    expect_error(k, errno.ECHILD, k.waitid, k.init, P_PIDFD, r.fd, pidfd=r.pidfd)


def test_p_pidfd_bad_handles() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD)
    expect_error(k, errno.EBADF, k.waitid, k.init, P_PIDFD, 7)
    expect_error(k, errno.EINVAL, k.waitid, k.init, P_PIDFD, -1, pidfd=r.pidfd)
    k.fd_close(k.init, r.fd)
    expect_error(k, errno.EBADF, k.waitid, k.init, P_PIDFD, r.fd, pidfd=r.pidfd)
    self_fd = k.pidfd_open(k.root_ns, 1, PIDFD_NONBLOCK)
    expect_error(k, errno.ECHILD, k.waitid, k.init, P_PIDFD, 5, pidfd=self_fd)  # not a child


def test_nonblocking_handle_gives_eagain_only_without_wnohang() -> None:
    # pidfd_wait.c wait_nonblock
    k = new_kernel()
    c = k.clone(k.init).task
    fd = k.pidfd_open(k.root_ns, 2, PIDFD_NONBLOCK)
    k.kill(c, SIGSTOP)
    expect_error(k, errno.EAGAIN, k.waitid, k.init, P_PIDFD, 3, WEXITED, pidfd=fd)
    assert k.waitid(k.init, P_PIDFD, 3, WEXITED | WNOHANG, pidfd=fd) is None
    blocking = k.pidfd_open(k.root_ns, 2)
    assert k.waitid(k.init, P_PIDFD, 4, WSTOPPED, pidfd=blocking).kind == "stopped"
    k.kill(c, SIGCONT)
    k.exit(c)
    assert k.waitid(k.init, P_PIDFD, 4, WEXITED, pidfd=blocking).kind == "exited"


def test_wait_states_through_a_pidfd() -> None:
    # pidfd_wait.c wait_states: stop, continue, stop again, kill
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD)
    c, fd = r.task, r.pidfd
    k.kill(c, SIGSTOP)
    assert k.waitid(k.init, P_PIDFD, 3, WSTOPPED, pidfd=fd).kind == "stopped"
    k.pidfd_send_signal(fd, SIGCONT)
    assert k.waitid(k.init, P_PIDFD, 3, WCONTINUED, pidfd=fd).kind == "continued"
    k.kill(c, SIGSTOP)
    assert k.waitid(k.init, P_PIDFD, 3, WSTOPPED, pidfd=fd).kind == "stopped"
    k.pidfd_send_signal(fd, SIGKILL)
    res = k.waitid(k.init, P_PIDFD, 3, WEXITED, pidfd=fd)
    assert (res.kind, res.code) == ("killed", SIGKILL)


# -- options -----------------------------------------------------------------------------------


def test_wnowait_reports_without_reaping() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.exit(c, 9)
    for _ in range(2):
        res = k.waitid(k.init, P_ALL, 0, WEXITED | WNOWAIT)
        assert (res.kind, res.code) == ("exited", 9) and c.exit_state is ExitState.ZOMBIE
    assert k.waitid(k.init).task is c and c.exit_state is ExitState.DEAD


def test_stopped_and_continued_are_reported_once_unless_wnowait() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.kill(c, SIGSTOP)
    assert k.waitid(k.init, P_ALL, 0, WSTOPPED | WNOWAIT).kind == "stopped"
    assert k.waitid(k.init, P_ALL, 0, WSTOPPED).kind == "stopped"
    assert k.waitid(k.init, P_ALL, 0, WSTOPPED | WNOHANG) is None
    k.kill(c, SIGCONT)
    assert k.waitid(k.init, P_ALL, 0, WCONTINUED | WNOWAIT).kind == "continued"
    assert k.waitid(k.init, P_ALL, 0, WCONTINUED).kind == "continued"
    assert k.waitid(k.init, P_ALL, 0, WCONTINUED | WNOHANG) is None
    assert k.waitid(k.init, P_ALL, 0, WEXITED | WNOHANG) is None  # still alive


def test_a_stop_is_not_reported_without_wstopped() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.kill(c, SIGSTOP)
    assert k.waitid(k.init, P_ALL, 0, WEXITED | WNOHANG) is None
    assert k.waitid(k.init, P_ALL, 0, WEXITED | WSTOPPED).task is c


def test_zombie_with_only_wstopped_is_echild() -> None:
    # wait_task_zombie() needs WEXITED and the zombie does not clear notask_error
    k = new_kernel()
    c = k.clone(k.init).task
    k.exit(c)
    expect_error(k, errno.ECHILD, k.waitid, k.init, P_ALL, 0, WSTOPPED)
    expect_error(k, errno.ECHILD, k.waitid, k.init, P_ALL, 0, WCONTINUED | WNOHANG)


@pytest.mark.parametrize(("idtype", "options"), [
    (P_ALL, 0),  # none of WEXITED/WSTOPPED/WCONTINUED
    (P_ALL, WNOHANG),
    (P_ALL, WEXITED | 0x10),  # unknown bit
    (P_ALL, WEXITED | 0x100),
    (4, WEXITED),  # unknown idtype
    (-1, WEXITED),
], ids=["no-event", "only-wnohang", "bit-0x10", "bit-0x100", "idtype-4", "idtype-minus-1"])
def test_waitid_einval(idtype: int, options: int) -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.exit(c)
    expect_error(k, errno.EINVAL, k.waitid, k.init, idtype, 0, options)


def test_no_children_at_all_is_echild() -> None:
    k = new_kernel()
    expect_error(k, errno.ECHILD, k.waitid, k.init)
    expect_error(k, errno.ECHILD, k.waitid, k.init, P_ALL, 0, WEXITED | WNOHANG)


# (id, exit_signal of the child, options, reaped?)
CLONE_CHILDREN = [
    ("sigchld-plain", SIGCHLD, WEXITED, True),
    ("sigchld-wclone", SIGCHLD, WEXITED | WCLONE, False),
    ("sigchld-wall", SIGCHLD, WEXITED | WALL, True),
    ("sigusr1-plain", SIGUSR1, WEXITED, False),
    ("sigusr1-wclone", SIGUSR1, WEXITED | WCLONE, True),
    ("sigusr1-wall", SIGUSR1, WEXITED | WALL, True),
    ("zero-plain", 0, WEXITED, False),
    ("zero-wclone", 0, WEXITED | WCLONE, True),
    ("zero-wall-wclone", 0, WEXITED | WALL | WCLONE, True),
]


@pytest.mark.parametrize(("exit_signal", "options", "reaped"), [c[1:] for c in CLONE_CHILDREN],
                         ids=[c[0] for c in CLONE_CHILDREN])
def test_wclone_and_wall_select_children_by_exit_signal(exit_signal: int, options: int,
                                                         reaped: bool) -> None:
    k = new_kernel()
    c = k.clone(k.init, exit_signal=exit_signal).task
    k.exit(c)
    if reaped:
        assert k.waitid(k.init, P_ALL, 0, options).task is c
    else:
        expect_error(k, errno.ECHILD, k.waitid, k.init, P_ALL, 0, options)
        expect_error(k, errno.ECHILD, k.waitid, k.init, P_PID, 2, options)


def test_wnothread_limits_the_wait_to_the_calling_thread_children() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    c = k.clone(th).task  # th's child
    assert c.group.parent is th
    k.exit(c)
    expect_error(k, errno.ECHILD, k.waitid, p, P_ALL, 0, WEXITED | WNOTHREAD)
    expect_error(k, errno.ECHILD, k.waitid, p, P_PID, 4, WEXITED | WNOTHREAD)
    assert k.waitid(p).task is c  # any thread of the group reaps the group's children


def test_a_thread_can_reap_the_leader_children() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    c = k.clone(p).task
    k.exit(c, 6)
    assert k.waitid(th, P_PID, 4).code == 6


# -- CLONE_WAIT_PID (seed 003) ---------------------------------------------------------------


def test_wait_pid_child_is_skipped_by_p_all_and_p_pgid() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    hidden = k.clone(p, CLONE_PIDFD | CLONE_WAIT_PID)
    k.exit(hidden.task)
    expect_error(k, errno.ECHILD, k.waitid, p)
    expect_error(k, errno.ECHILD, k.waitid, p, P_PGID, 0)
    expect_error(k, errno.ECHILD, k.waitid, p, P_ALL, 0, WEXITED | WALL)
    visible = k.clone(p).task
    assert k.waitid(p, P_ALL, 0, WEXITED | WNOHANG) is None  # only visible is considered
    k.exit(visible)
    assert k.waitid(p).task is visible
    assert k.waitid(p, P_PID, hidden.task.pid.nr).task is hidden.task


def test_wait_pid_child_is_reaped_through_its_pidfd() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD | CLONE_WAIT_PID)
    k.exit(r.task, 2)
    res = k.waitid(k.init, P_PIDFD, r.fd, WEXITED, pidfd=r.pidfd)
    assert (res.kind, res.code) == ("exited", 2)


# -- ignored SIGCHLD ---------------------------------------------------------------------------


def test_ignored_sigchld_autoreaps_sigchld_children_but_not_exit_signal_0_ones() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    # SIGUSR1 ignored too: a child's exit signal is sent to its parent, and SIGUSR1's default
    # action would kill it (Linux does; the differential oracle found the model did not)
    p.group.sigign |= 1 << SIGCHLD | 1 << SIGUSR1
    plain = k.clone(p).task
    quiet = k.clone(p, exit_signal=0).task
    other = k.clone(p, exit_signal=SIGUSR1).task
    for t in (plain, quiet, other):
        k.exit(t)
    assert plain.exit_state is ExitState.DEAD
    assert quiet.exit_state is other.exit_state is ExitState.ZOMBIE
    expect_error(k, errno.ECHILD, k.waitid, p)
    assert {k.waitid(p, P_ALL, 0, WEXITED | WCLONE).task for _ in range(2)} == {quiet, other}


# -- reparenting -------------------------------------------------------------------------------


def test_orphans_go_to_a_live_thread_of_the_group_first() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    c = k.clone(p, exit_signal=SIGUSR1).task
    k.set_child_subreaper(k.clone(k.init).task)  # unrelated subreaper
    k.exit(p)
    assert c.group.parent is th and c in th.children
    assert c.exit_signal == SIGUSR1  # same group: kept


def test_orphans_go_to_the_nearest_live_subreaper_ancestor() -> None:
    k = new_kernel()
    far = k.clone(k.init).task
    k.set_child_subreaper(far)
    near = k.clone(far).task
    k.set_child_subreaper(near)
    plain = k.clone(near).task
    father = k.clone(plain).task
    c = k.clone(father, exit_signal=SIGUSR1).task
    k.exit(father)
    assert c.group.parent is near and c.exit_signal == SIGCHLD
    k.set_child_subreaper(near, False)
    c2 = k.clone(plain).task
    k.exit(plain)
    assert c2.group.parent is far


def test_orphans_go_to_the_namespace_init_not_a_subreaper_outside() -> None:
    k = new_kernel()
    from pidfs_fuse.kernel import CLONE_NEWPID
    outside = k.clone(k.init).task
    k.set_child_subreaper(outside)
    n = k.clone(outside, CLONE_NEWPID).task
    father = k.clone(n).task
    c = k.clone(father, exit_signal=SIGUSR1).task
    k.exit(father)
    assert c.group.parent is n and c.exit_signal == SIGCHLD


def test_orphans_without_subreaper_go_to_init_which_can_reap_them() -> None:
    k = new_kernel()
    father = k.clone(k.init).task
    c = k.clone(father, exit_signal=SIGUSR1).task
    z = k.clone(father).task
    k.exit(z, 8)
    k.exit(father)
    assert c.group.parent is k.init and z.group.parent is k.init
    assert c.exit_signal == SIGCHLD
    k.exit(c, 4)
    got = sorted((r.pid, r.code) for r in (k.waitid(k.init), k.waitid(k.init), k.waitid(k.init)))
    assert got == [(2, 0), (3, 4), (4, 8)]


def test_reparented_zombie_is_autoreaped_by_a_new_parent_ignoring_sigchld() -> None:
    k = new_kernel()
    sub = k.clone(k.init).task
    k.set_child_subreaper(sub)
    father = k.clone(sub, exit_signal=0).task
    z = k.clone(father).task
    sub.group.sigign |= 1 << SIGCHLD  # after the forks: ignoring is inherited
    k.exit(z)
    assert z.exit_state is ExitState.ZOMBIE  # father does not ignore SIGCHLD
    k.exit(father)
    assert z.exit_state is ExitState.DEAD  # reparent_leader() notified sub, which ignores it
    assert father.exit_state is ExitState.ZOMBIE  # exit_signal 0: never autoreaped


def test_waitid_by_an_exited_task_is_esrch() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    k.exit(p)
    expect_error(k, errno.ESRCH, k.waitid, p)
