"""execve and de_thread (fs/exec.c), after pidfd_test.c poll_exec and pidfd_info_test.c
thread_group_exec / thread_group_exec_thread.

Exec kills the other threads (they exit with status 0). From a non-leader, exchange_tids() gives
the exec'ing thread the leader's struct pid (number, tag, handles, start time, parent, children,
session and group links) and the old leader is released silently with the thread's old pid: no
EXITED for the leader's pid, no notification of the parent; handles on the old tid see POLLHUP
and an exit record of WIFEXITED(0). After exec the exit signal is SIGCHLD.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import (
    CLONE_NEWPID,
    CLONE_PIDFD,
    CLONE_THREAD,
    CLONE_WAIT_PID,
    P_ALL,
    P_PID,
    P_PIDFD,
    PIDFD_THREAD,
    POLLHUP,
    POLLIN,
    POLLRDNORM,
    WEXITED,
    WNOHANG,
    EventKind,
    ExitInfo,
    ExitState,
    TaskFlag,
)
from pidfs_fuse.kernel.signals import SIGCHLD, SIGKILL
from pidfs_fuse.tests.conftest import expect_error, new_kernel, raises, tgids

SIGUSR1 = 10
READY = POLLIN | POLLRDNORM
GONE = POLLIN | POLLRDNORM | POLLHUP


def test_exec_by_the_leader_kills_the_other_threads_and_keeps_the_pid() -> None:
    k, rec = new_kernel(events=True)
    p = k.clone(k.init, exit_signal=SIGUSR1).task
    ths = [k.clone(p, CLONE_THREAD).task for _ in range(2)]
    rec.clear()
    k.execve(p, "a-rather-long-program", ["prog", "-x"], exe="/bin/prog")
    assert p.pid.numbers == (2,) and p.alive and p.is_leader
    assert all(t.exit_state is ExitState.DEAD for t in ths)
    assert [rec.kinds(t.pid) for t in ths] == [[EventKind.EXITED, EventKind.REAPED, EventKind.FREED]] * 2
    assert p.comm == "a-rather-long-p" and p.group.argv == ("prog", "-x") and p.group.exe == "/bin/prog"
    assert p.exit_signal == SIGCHLD and not p.flags & TaskFlag.FORKNOEXEC
    assert rec.pids(EventKind.CHILD) == []  # the parent hears nothing
    assert rec.kinds(p.pid) == [EventKind.CHANGED]


def test_exec_by_a_thread_takes_over_the_leader_pid_silently() -> None:
    k, rec = new_kernel(events=True)
    p = k.clone(k.init).task  # 2
    th = k.clone(p, CLONE_THREAD).task  # 3
    other = k.clone(p, CLONE_THREAD).task  # 4
    sib = k.clone(k.init).task  # 5
    kid_of_leader = k.clone(p).task  # 6
    kid_of_thread = k.clone(th).task  # 7
    lpid, tpid = p.pid, th.pid
    tgid_fd = k.pidfd_open(k.root_ns, 2)
    old_tid_fd = k.pidfd_open(k.root_ns, 3, PIDFD_THREAD)
    start = p.start_time
    rec.clear()
    k.execve(th, "newprog")
    assert th.pid is lpid and th.pid.numbers == (2,) and th.is_leader and th.start_time == start
    assert p.pid is tpid and p.exit_state is ExitState.DEAD and other.exit_state is ExitState.DEAD
    assert list(k.init.children) == [th, sib]  # same place in the parent's list
    assert th.group.parent is k.init
    assert set(th.children) == {kid_of_leader, kid_of_thread}
    assert kid_of_leader.group.parent is th and kid_of_thread.group.parent is th
    assert EventKind.EXITED not in rec.kinds(lpid)
    assert rec.kinds(tpid) == [EventKind.REAPED, EventKind.FREED]
    assert rec.pids(EventKind.CHILD) == []
    assert k.find_pid(k.root_ns, 3) is None
    assert k.pidfd_poll(tgid_fd) == 0 and k.pidfd_poll(old_tid_fd) == GONE
    assert k.exit_info(old_tid_fd.pid) == ExitInfo(0) and k.exit_info(tgid_fd.pid) is None
    assert tgid_fd.ino == th.pid.ino
    assert th.exit_signal == SIGCHLD
    assert tgids(k) == [1, 2, 5, 6, 7]


def test_exec_after_the_leader_exited_early() -> None:
    # pidfd_info_test.c thread_group_exec: the leader exit(0)s, then the thread execs
    k, rec = new_kernel(events=True)
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    leader_fd = k.pidfd_open(k.root_ns, 2)
    leader_thread_fd = k.pidfd_open(k.root_ns, 2, PIDFD_THREAD)
    thread_fd = k.pidfd_open(k.root_ns, 3, PIDFD_THREAD)
    k.exit(p, 0)
    assert p.exit_state is ExitState.ZOMBIE
    assert k.pidfd_poll(leader_fd) == k.pidfd_poll(leader_thread_fd) == 0
    k.execve(th, "pidfd_exec_helper")
    assert k.pidfd_poll(leader_fd) == k.pidfd_poll(leader_thread_fd) == 0
    assert k.pidfd_poll(thread_fd) == GONE and k.exit_info(thread_fd.pid) == ExitInfo(0)
    assert k.exit_info(leader_fd.pid) is None and leader_fd.pid.task is th
    assert EventKind.EXITED not in rec.kinds(leader_fd.pid)
    k.pidfd_send_signal(leader_fd, SIGKILL)
    assert k.pidfd_poll(leader_thread_fd) == READY  # a zombie: POLLIN without POLLHUP
    res = k.waitid(k.init, P_PIDFD, 4, WEXITED, pidfd=leader_fd)
    assert (res.pid, res.kind, res.code) == (2, "killed", SIGKILL)
    assert k.exit_info(leader_fd.pid) == ExitInfo(SIGKILL)
    assert k.pidfd_poll(leader_thread_fd) == GONE


def test_exec_by_a_thread_while_the_leader_lives() -> None:
    # pidfd_info_test.c thread_group_exec_thread: the leader pause()s and is killed by the exec
    k, rec = new_kernel(events=True)
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    leader_fd = k.pidfd_open(k.root_ns, 2, PIDFD_THREAD)
    thread_fd = k.pidfd_open(k.root_ns, 3, PIDFD_THREAD)
    k.execve(th, "helper")
    assert k.pidfd_poll(leader_fd) == 0 and k.pidfd_poll(thread_fd) == GONE
    assert k.exit_info(thread_fd.pid) == ExitInfo(0)
    assert EventKind.EXITED not in rec.kinds(leader_fd.pid)
    assert k.waitid(k.init, P_ALL, 0, WEXITED | WNOHANG) is None
    k.exit(th, 6)
    assert k.pidfd_poll(leader_fd) == READY
    assert k.waitid(k.init, P_PID, 2).code == 6


def test_exec_by_a_thread_of_a_namespace_init_moves_the_child_reaper() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    th = k.clone(n, CLONE_THREAD).task
    k.execve(th, "init2")
    ns = th.pid.ns
    assert th.pid.numbers == (2, 1) and ns.child_reaper is th and th.group.unkillable
    c = k.clone(th).task
    orphan = k.clone(c).task
    k.exit(c)
    assert orphan.group.parent is th


def test_exec_by_a_thread_keeps_session_and_group_links() -> None:
    k = new_kernel()
    p = k.clone(k.init).task  # 2
    k.setsid(p)
    th = k.clone(p, CLONE_THREAD).task
    member = k.clone(p).task  # same session and group (2)
    k.execve(th, "x")
    assert th.group.session_leader and th.group.session is th.pid and th.group.pgrp is th.pid
    assert th in th.pid.pgrp_tasks and th in th.pid.session_tasks and p not in th.pid.pgrp_tasks
    assert member.group.session is th.pid
    expect_error(k, errno.EPERM, k.setsid, th)  # still the session leader


def test_exec_keeps_wait_pid_and_autoreap_on_the_new_leader() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD | CLONE_WAIT_PID)
    th = k.clone(r.task, CLONE_THREAD).task
    k.execve(th, "x")
    assert th.flags & TaskFlag.WAIT_PID
    k.exit(th)
    raises(errno.ECHILD, k.waitid, k.init)
    assert k.waitid(k.init, P_PIDFD, r.fd, pidfd=r.pidfd).task is th


def test_exec_resets_a_custom_exit_signal() -> None:
    k = new_kernel()
    c = k.clone(k.init, exit_signal=0).task
    k.execve(c, "x")
    k.exit(c)
    assert k.waitid(k.init).task is c  # a plain wait sees it now: SIGCHLD


@pytest.mark.parametrize(("comm", "argv"), [
    ("", None), ("a\nb", None), ("a\0b", None), (5, None), (None, None), ("ok", [1]), ("ok", 5),
    ("ok", "not-a-list"),
], ids=["empty", "newline", "nul", "int", "none", "argv-int-item", "argv-int", "argv-str"])
def test_exec_rejects_bad_names_and_changes_nothing(comm, argv) -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    k.clone(p, CLONE_THREAD)
    e = expect_error(k, errno.EINVAL, k.execve, p, comm, argv)
    assert repr(comm) in str(e) or repr(argv) in str(e)


def test_exec_by_an_exited_task_is_esrch() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    k.exit(th)
    expect_error(k, errno.ESRCH, k.execve, th, "x")
    k.exit(p)
    expect_error(k, errno.ESRCH, k.execve, p, "x")


def test_exec_by_a_thread_of_the_root_init_keeps_kernel_init_current() -> None:
    k = new_kernel()
    th = k.clone(k.init, CLONE_THREAD).task
    k.execve(th, "systemd")
    assert k.init is th and th.pid.numbers == (1,) and k.root_ns.child_reaper is th
    expect_error(k, errno.EPERM, k.exit_group, th)
    c = k.clone(th).task
    k.exit(c)
    assert k.waitid(th).task is c
