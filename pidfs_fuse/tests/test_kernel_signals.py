"""Signals with default actions (kernel/signal.c): terminate, dump core, stop, continue, ignore.

A stopped process only takes SIGKILL at once (wants_signal() is false for stopped threads);
other fatal signals wait in the queue and act when SIGCONT resumes the group. SIGCONT resumes
even when ignored (prepare_signal() runs before the ignore check). SIGKILL and SIGSTOP cannot be
ignored. Permission: uid 0, or the same uid as the target.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import CLONE_THREAD, P_ALL, WCONTINUED, WEXITED, WNOHANG, WSTOPPED, ExitState
from pidfs_fuse.kernel.signals import SIGCHLD, SIGCONT, SIGKILL, SIGSEGV, SIGSTOP, SIGTERM
from pidfs_fuse.tests.conftest import expect_error, job, new_kernel

# (signal, what happens to a running process: "killed" | "dumped" | "stopped" | "nothing")
DEFAULTS = [
    (1, "killed"), (2, "killed"), (3, "dumped"), (4, "dumped"), (5, "dumped"), (6, "dumped"),
    (7, "dumped"), (8, "dumped"), (9, "killed"), (10, "killed"), (11, "dumped"), (12, "killed"),
    (13, "killed"), (14, "killed"), (15, "killed"), (16, "killed"), (17, "nothing"),
    (18, "nothing"), (19, "stopped"), (20, "stopped"), (21, "stopped"), (22, "stopped"),
    (23, "nothing"), (24, "dumped"), (25, "dumped"), (26, "killed"), (27, "killed"),
    (28, "nothing"), (29, "killed"), (30, "killed"), (31, "dumped"), (34, "killed"),
    (64, "killed"), (0, "nothing"),
]


@pytest.mark.parametrize(("sig", "outcome"), DEFAULTS, ids=[f"sig{s}-{o}" for s, o in DEFAULTS])
def test_default_action(sig: int, outcome: str) -> None:
    k = new_kernel()
    sh, c = job(k)
    th = k.clone(c, CLONE_THREAD).task
    k.kill(th, sig)  # a default action is process-wide, whichever thread is named
    res = k.waitid(sh, P_ALL, 0, WEXITED | WSTOPPED | WNOHANG)
    if outcome == "nothing":
        assert res is None and c.alive and th.alive and not c.group.stopped
    elif outcome == "stopped":
        assert (res.kind, res.code) == ("stopped", sig) and c.display_state == "T"
    else:
        assert (res.kind, res.code) == (outcome, sig)
        assert th.exit_state is ExitState.DEAD and c.exit_state is ExitState.DEAD


@pytest.mark.parametrize("sig", [1, 2, 10, 15, 11, 20, 34], ids=lambda s: f"sig{s}")
def test_ignored_signals_do_nothing(sig: int) -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    c.group.sigign |= 1 << sig
    k.kill(c, sig)
    assert c.alive and not c.group.stopped


@pytest.mark.parametrize(("sig", "kind"), [(SIGKILL, "killed"), (SIGSTOP, "stopped")],
                         ids=["sigkill", "sigstop"])
def test_sigkill_and_sigstop_cannot_be_ignored(sig: int, kind: str) -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    c.group.sigign = (1 << 65) - 1
    k.kill(c, sig)
    assert k.waitid(k.init, P_ALL, 0, WEXITED | WSTOPPED).kind == kind


# -- stop and continue -----------------------------------------------------------------------


def test_term_sent_to_a_stopped_process_acts_after_cont() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.kill(c, SIGSTOP)
    k.kill(c, SIGTERM)
    assert c.alive and c.group.stopped
    assert k.waitid(k.init, P_ALL, 0, WEXITED | WNOHANG) is None
    k.kill(c, SIGCONT)
    res = k.waitid(k.init)
    assert (res.kind, res.code) == ("killed", SIGTERM)


def test_sigkill_acts_at_once_on_a_stopped_process() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.kill(c, SIGSTOP)
    k.kill(c, SIGTERM)
    k.kill(c, SIGKILL)
    res = k.waitid(k.init)
    assert (res.kind, res.code) == ("killed", SIGKILL) and not c.group.stopped


def test_pending_signals_act_lowest_first_and_core_dumps_survive_the_stop() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.kill(c, SIGSTOP)
    k.kill(c, SIGTERM)
    k.kill(c, SIGSEGV)
    k.kill(c, SIGCONT)
    res = k.waitid(k.init)
    assert (res.kind, res.code, res.status) == ("dumped", SIGSEGV, SIGSEGV | 0x80)


def test_a_second_stop_signal_is_not_reported_again() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.kill(c, SIGSTOP)
    assert k.waitid(k.init, P_ALL, 0, WSTOPPED).code == SIGSTOP
    k.kill(c, 20)
    assert k.waitid(k.init, P_ALL, 0, WSTOPPED | WNOHANG) is None


def test_sigcont_on_a_running_process_reports_nothing() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.kill(c, SIGCONT)
    assert k.waitid(k.init, P_ALL, 0, WCONTINUED | WNOHANG) is None and c.alive


def test_ignored_sigcont_still_resumes() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    c.group.sigign |= 1 << SIGCONT
    k.kill(c, SIGSTOP)
    k.kill(c, SIGTERM)
    k.kill(c, SIGCONT)
    assert not c.group.stopped
    res = k.waitid(k.init, P_ALL, 0, WEXITED | WCONTINUED)
    assert (res.kind, res.code) == ("killed", SIGTERM)  # the queued TERM acted on resume


def test_ignored_fatal_signal_sent_while_stopped_is_dropped() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    c.group.sigign |= 1 << SIGTERM
    k.kill(c, SIGSTOP)
    k.kill(c, SIGTERM)
    k.kill(c, SIGCONT)
    assert c.alive


def test_children_of_a_stopped_thread_group_share_its_stop() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    th = k.clone(c, CLONE_THREAD).task
    k.kill(c, SIGSTOP)
    assert th.display_state == "T" and c.display_state == "T"


# -- permission and targets ------------------------------------------------------------------


@pytest.mark.parametrize(("sender_uid", "target_uid", "err"), [
    (0, 1000, None), (1000, 1000, None), (1000, 0, errno.EPERM), (1000, 1001, errno.EPERM),
], ids=["root-to-user", "same-uid", "user-to-root", "user-to-other-user"])
def test_kill_permission(sender_uid: int, target_uid: int, err: int | None) -> None:
    k = new_kernel()
    sender = k.clone(k.init, uid=sender_uid).task
    target = k.clone(k.init, uid=target_uid).task
    if err is None:
        k.kill(target, SIGTERM, sender=sender)
        assert not target.alive
    else:
        e = expect_error(k, err, k.kill, target, SIGTERM, sender=sender)
        assert str(sender_uid) in str(e)
        expect_error(k, err, k.kill, target, 0, uid=sender_uid)  # the probe is checked too


def test_signalling_a_zombie_succeeds_and_does_nothing() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.exit(c, 2)
    k.kill(c, SIGKILL)
    k.kill(c, 0)
    assert k.waitid(k.init).code == 2


def test_signalling_a_reaped_task_is_esrch() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.exit(c)
    k.waitid(k.init)
    expect_error(k, errno.ESRCH, k.kill, c, 0)


@pytest.mark.parametrize("sig", [-1, 65, 1000], ids=lambda s: f"sig{s}")
def test_invalid_signal_is_einval(sig: int) -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    e = expect_error(k, errno.EINVAL, k.kill, c, sig)
    assert str(sig) in str(e)


def test_sigchld_default_is_ignore_and_does_not_touch_the_parent() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    k.kill(p, SIGCHLD)
    assert p.alive


def test_a_reaped_target_is_esrch_before_the_signal_is_checked() -> None:
    # kill_pid_info(): no task -> ESRCH; check_kill_permission() (valid_signal) comes later
    k = new_kernel()
    c = k.clone(k.init).task
    fd = k.pidfd_open(k.root_ns, 2)
    k.exit(c)
    k.waitid(k.init)
    expect_error(k, errno.ESRCH, k.kill, c, 65)
    expect_error(k, errno.ESRCH, k.pidfd_send_signal, fd, 65)
