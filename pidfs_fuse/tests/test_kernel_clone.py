"""clone3 flags and their errnos (kernel/fork.c clone3_args_valid, copy_process), and the newest
flags' selftests (tools/testing/selftests/pidfd/pidfd_autoreap_test.c): CLONE_AUTOREAP,
CLONE_NNP, CLONE_PIDFD_AUTOKILL. CLONE_WAIT_PID follows seed 003 (only with CLONE_PIDFD).
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import (
    CLONE_AUTOREAP,
    CLONE_NEWPID,
    CLONE_NNP,
    CLONE_PARENT,
    CLONE_PIDFD,
    CLONE_PIDFD_AUTOKILL,
    CLONE_THREAD,
    CLONE_WAIT_PID,
    P_PID,
    POLLHUP,
    POLLIN,
    POLLRDNORM,
    WEXITED,
    WNOHANG,
    ExitInfo,
    ExitState,
    TaskFlag,
)
from pidfs_fuse.kernel.signals import SIGCHLD, SIGKILL
from pidfs_fuse.tests.conftest import expect_error, new_kernel, raises, spawn, tgids

SIGUSR1 = 10
AUTOKILL = CLONE_PIDFD | CLONE_PIDFD_AUTOKILL | CLONE_AUTOREAP | CLONE_NNP

# (id, flags, clone keyword arguments, who calls: "proc" | "init" | "autoreap" | "unshared" |
#  "user", errno)
INVALID = [
    ("thread-newpid", CLONE_THREAD | CLONE_NEWPID, {}, "proc", errno.EINVAL),
    ("thread-after-unshare", CLONE_THREAD, {}, "unshared", errno.EINVAL),
    ("newpid-after-unshare", CLONE_NEWPID, {}, "unshared", errno.EINVAL),
    ("parent-from-root-init", CLONE_PARENT, {}, "init", errno.EINVAL),
    ("parent-from-ns-init", CLONE_PARENT, {}, "ns_init", errno.EINVAL),
    ("thread-with-exit-signal", CLONE_THREAD, {"exit_signal": SIGCHLD}, "proc", errno.EINVAL),
    ("parent-with-exit-signal", CLONE_PARENT, {"exit_signal": SIGCHLD}, "proc", errno.EINVAL),
    ("exit-signal-65", 0, {"exit_signal": 65}, "proc", errno.EINVAL),
    ("exit-signal-negative", 0, {"exit_signal": -1}, "proc", errno.EINVAL),
    ("wait-pid-without-pidfd", CLONE_WAIT_PID, {}, "proc", errno.EINVAL),
    ("autoreap-with-sigchld", CLONE_AUTOREAP, {"exit_signal": SIGCHLD}, "proc", errno.EINVAL),
    ("autoreap-with-parent", CLONE_AUTOREAP | CLONE_PARENT, {}, "proc", errno.EINVAL),
    ("autoreap-with-thread", CLONE_AUTOREAP | CLONE_THREAD, {}, "proc", errno.EINVAL),
    ("parent-from-an-autoreap-process", CLONE_PARENT, {}, "autoreap", errno.EINVAL),
    ("nnp-with-thread", CLONE_NNP | CLONE_THREAD, {}, "proc", errno.EINVAL),
    ("autokill-without-pidfd", CLONE_PIDFD_AUTOKILL | CLONE_AUTOREAP, {}, "proc", errno.EINVAL),
    ("autokill-without-autoreap", CLONE_PIDFD_AUTOKILL | CLONE_PIDFD, {}, "proc", errno.EINVAL),
    ("autokill-with-thread", CLONE_PIDFD_AUTOKILL | CLONE_PIDFD | CLONE_THREAD, {}, "proc",
     errno.EINVAL),
    ("autokill-unprivileged-without-nnp", CLONE_PIDFD | CLONE_PIDFD_AUTOKILL | CLONE_AUTOREAP, {},
     "user", errno.EPERM),
    ("newpid-unprivileged", CLONE_NEWPID, {}, "user", errno.EPERM),
    ("other-uid-unprivileged", 0, {"uid": 0}, "user", errno.EPERM),
    ("thread-with-other-uid", CLONE_THREAD, {"uid": 5}, "proc", errno.EINVAL),
    ("unknown-flag-bit", 1 << 40, {}, "proc", errno.EINVAL),
    ("legacy-flag-the-model-lacks", 0x100, {}, "proc", errno.EINVAL),
    ("too-many-set-tid-entries", 0, {"set_tid": [1] * 33}, "proc", errno.EINVAL),
]


def caller(k, who: str):
    if who == "init":
        return k.init
    if who == "ns_init":
        return k.clone(k.init, CLONE_NEWPID).task
    if who == "autoreap":
        return k.clone(k.init, CLONE_AUTOREAP, exit_signal=0).task
    if who == "user":
        return k.clone(k.init, uid=1000).task
    p = k.clone(k.init).task
    if who == "unshared":
        k.unshare_pid_ns(p)
    return p


@pytest.mark.parametrize(("flags", "kw", "who", "err"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_clone_combinations(flags: int, kw: dict, who: str, err: int) -> None:
    k = new_kernel()
    parent = caller(k, who)
    expect_error(k, err, k.clone, parent, flags, **kw)


def test_clone_from_an_exited_task_is_esrch() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    k.exit(p)
    expect_error(k, errno.ESRCH, k.clone, p)


# -- what each flag does ----------------------------------------------------------------------


def test_plain_clone_makes_a_child_process_with_sigchld() -> None:
    k = new_kernel()
    k.init.group.sigign |= 1 << SIGUSR1
    c = k.clone(k.init, comm="a-very-long-command-name", uid=7, gid=8).task
    assert c.is_leader and c.group is not k.init.group and c.group.parent is k.init
    assert c.exit_signal == SIGCHLD and c in k.init.children
    assert c.comm == "a-very-long-com"  # TASK_COMM_LEN - 1
    assert (c.group.uid, c.group.gid) == (7, 8)
    assert c.group.sigign == 1 << SIGUSR1  # ignored signals stay ignored across fork
    assert c.group.pgrp is k.init.pid and c.group.session is k.init.pid
    assert c.flags & TaskFlag.FORKNOEXEC
    assert k.clone(c).task.group.uid == 7  # inherited
    assert c.start_time >= k.init.start_time


def test_clone_thread_joins_the_group() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    assert th.group is p.group and not th.is_leader and th.leader is p
    assert th.exit_signal == -1 and th not in k.init.children
    assert list(p.group.threads) == [p, th] and p.group.live == 2
    assert th.tgid_in(k.root_ns) == 2 and th.tid_in(k.root_ns) == 3
    th2 = k.clone(th, CLONE_THREAD).task  # threads may create threads
    assert th2.group is p.group


def test_clone_parent_makes_a_sibling_with_the_leader_exit_signal() -> None:
    k = new_kernel()
    p = k.clone(k.init, exit_signal=SIGUSR1).task
    sib = k.clone(p, CLONE_PARENT).task
    assert sib.group.parent is k.init and sib in k.init.children and sib not in (p.children or ())
    assert sib.exit_signal == SIGUSR1
    th = k.clone(p, CLONE_THREAD).task
    assert k.clone(th, CLONE_PARENT).task.group.parent is k.init


def test_clone_newpid_makes_the_init_of_a_new_namespace() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    assert n.pid.numbers == (2, 1) and n.pid.ns.child_reaper is n and n.group.unkillable
    assert n.pid.ns.parent is k.root_ns and n.pid.ns.creator is k.init
    assert k.init.ns_for_children is k.root_ns  # the caller itself is unaffected


def test_clone_pidfd_returns_a_handle_installed_in_the_parent() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    r1 = k.clone(p, CLONE_PIDFD)
    r2 = k.clone(p, CLONE_PIDFD | CLONE_THREAD)
    assert (r1.fd, r2.fd) == (3, 4)
    assert p.group.files == {3: r1.pidfd, 4: r2.pidfd}
    assert r1.pidfd.pid is r1.task.pid and not r1.pidfd.thread
    assert r2.pidfd.thread  # CLONE_PIDFD | CLONE_THREAD gives a PIDFD_THREAD handle (6.9+)
    assert r1.pidfd.ino == r1.task.pid.ino
    assert k.clone(p).pidfd is None


def test_nnp_is_set_on_the_child_only_and_inherited_from_there() -> None:
    k = new_kernel()
    c = k.clone(k.init, CLONE_NNP).task
    assert c.flags & TaskFlag.NO_NEW_PRIVS and not k.init.flags & TaskFlag.NO_NEW_PRIVS
    assert k.clone(c).task.flags & TaskFlag.NO_NEW_PRIVS
    assert k.clone(c, CLONE_THREAD).task.flags & TaskFlag.NO_NEW_PRIVS
    plain = k.clone(k.init, CLONE_AUTOREAP, exit_signal=0).task
    assert not plain.flags & TaskFlag.NO_NEW_PRIVS  # autoreap_no_new_privs_unset


# -- CLONE_AUTOREAP (pidfd_autoreap_test.c) ------------------------------------------------------


def test_autoreap_without_pidfd_is_released_at_exit() -> None:
    k = new_kernel()
    c = k.clone(k.init, CLONE_AUTOREAP, exit_signal=0).task
    assert c.exit_signal == 0
    k.exit(c, 42)
    assert c.exit_state is ExitState.DEAD and k.find_pid(k.root_ns, 2) is None
    raises(errno.ECHILD, k.waitid, k.init, P_PID, 2, WEXITED | WNOHANG)


def test_autoreap_basic_exit_info_through_the_pidfd() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_AUTOREAP | CLONE_PIDFD, exit_signal=0)
    k.exit(r.task, 42)
    assert k.pidfd_poll(r.pidfd) == POLLIN | POLLRDNORM | POLLHUP
    assert k.exit_info(r.pidfd.pid) == ExitInfo(42 << 8)
    raises(errno.ECHILD, k.waitid, k.init, P_PID, 2)


def test_autoreap_signaled() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_AUTOREAP | CLONE_PIDFD, exit_signal=0)
    k.pidfd_send_signal(r.pidfd, SIGKILL)
    assert k.pidfd_poll(r.pidfd) & POLLIN
    assert k.exit_info(r.pidfd.pid) == ExitInfo(SIGKILL)
    raises(errno.ECHILD, k.waitid, k.init)


def test_autoreap_survives_reparenting_to_a_subreaper() -> None:
    k = new_kernel()
    grand = k.clone(k.init).task
    k.set_child_subreaper(grand)
    middle = k.clone(grand).task
    r = k.clone(middle, CLONE_AUTOREAP | CLONE_PIDFD, exit_signal=0)
    k.exit(middle)
    assert r.task.group.parent is grand
    assert r.task.exit_signal == SIGCHLD  # reparent_leader() resets it; the flag stays
    k.kill(r.task, SIGKILL)
    assert r.task.exit_state is ExitState.DEAD
    assert k.waitid(grand).task is middle  # only the middle process is left to reap
    raises(errno.ECHILD, k.waitid, grand)


def test_autoreap_multithreaded_waits_for_the_whole_group() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_AUTOREAP | CLONE_PIDFD, exit_signal=0)
    th = k.clone(r.task, CLONE_THREAD).task
    k.exit(r.task, 99)
    assert k.pidfd_poll(r.pidfd) == 0 and r.task.exit_state is ExitState.ZOMBIE
    k.exit(th, 1)
    assert k.pidfd_poll(r.pidfd) == POLLIN | POLLRDNORM | POLLHUP
    assert k.exit_info(r.pidfd.pid) == ExitInfo(99 << 8)
    raises(errno.ECHILD, k.waitid, k.init)


def test_autoreap_is_not_inherited() -> None:
    k = new_kernel()
    a = k.clone(k.init, CLONE_AUTOREAP, exit_signal=0).task
    g = k.clone(a).task
    assert not g.flags & TaskFlag.AUTOREAP
    k.exit(g, 77)
    assert g.exit_state is ExitState.ZOMBIE
    res = k.waitid(a, P_PID, g.pid.nr)
    assert (res.kind, res.code, res.status) == ("exited", 77, 77 << 8)


# -- CLONE_PIDFD_AUTOKILL ------------------------------------------------------------------


def test_autokill_closing_the_clone_handle_kills_the_child() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    r = k.clone(p, AUTOKILL)
    other = k.pidfd_open(k.root_ns, r.task.pid.nr)
    assert r.pidfd.autokill and not other.autokill
    k.fd_close(p, r.fd)
    assert r.task.exit_state is ExitState.DEAD  # killed and autoreaped
    assert k.pidfd_poll(other) == POLLIN | POLLRDNORM | POLLHUP
    assert k.exit_info(other.pid) == ExitInfo(SIGKILL)
    raises(errno.ECHILD, k.waitid, p)


def test_autokill_closing_a_pidfd_open_handle_does_nothing() -> None:
    k = new_kernel()
    r = k.clone(k.init, AUTOKILL)
    other = k.pidfd_open(k.root_ns, r.task.pid.nr)
    k.pidfd_close(other)
    assert r.task.alive and k.pidfd_poll(r.pidfd) == 0
    k.pidfd_close(r.pidfd)
    assert not r.task.alive


def test_autokill_fires_when_the_parent_exits() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    r = k.clone(p, AUTOKILL)
    k.exit(p)
    assert r.task.exit_state is ExitState.DEAD


def test_autokill_by_an_unprivileged_caller_with_nnp_is_allowed() -> None:
    k = new_kernel()
    u = k.clone(k.init, uid=1000).task
    r = k.clone(u, AUTOKILL)
    assert r.task.flags & TaskFlag.NO_NEW_PRIVS and r.pidfd.autokill


def test_clone_results_are_visible_to_both_scans() -> None:
    k = new_kernel()
    spawn(k, k.init, 2)
    k.clone(k.init, AUTOKILL)
    k.clone(k.init, CLONE_PIDFD | CLONE_WAIT_PID)
    assert tgids(k) == [1, 2, 3, 4, 5]
