"""Sessions, process groups and child subreapers (kernel/sys.c setsid/setpgid,
prctl(PR_SET_CHILD_SUBREAPER)).

setpgid errnos as in kernel/sys.c: EINVAL for a negative pgid or a thread; ESRCH when the target
is neither the caller nor its child; EPERM for a child in another session, a session leader, or
a group that does not exist in the caller's session; EACCES for a child that has exec'd.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_THREAD, P_PID
from pidfs_fuse.kernel.signals import SIGSTOP
from pidfs_fuse.tests.conftest import expect_error, new_kernel, reap_all, spawn


def test_setsid_makes_a_new_session_and_group_without_a_terminal() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    p.group.tty_nr = 0x8801
    assert k.setsid(p) == 2
    g = p.group
    assert g.session_leader and g.session is p.pid and g.pgrp is p.pid
    assert g.tty_nr == 0
    assert p in p.pid.session_tasks and p in p.pid.pgrp_tasks
    assert p not in k.init.pid.pgrp_tasks and p not in k.init.pid.session_tasks
    c = k.clone(p).task
    assert c.group.session is p.pid and c.group.pgrp is p.pid and not c.group.session_leader


def test_setsid_from_a_thread_uses_the_process_id() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    assert k.setsid(th) == 2 and p.group.session is p.pid


def test_setsid_returns_the_number_in_the_callers_namespace() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    c = k.clone(n).task
    assert k.setsid(c) == 2 and c.group.session.numbers == (3, 2)


def test_setsid_refuses_session_and_group_leaders() -> None:
    k = new_kernel()
    expect_error(k, errno.EPERM, k.setsid, k.init)
    p = k.clone(k.init).task
    k.setsid(p)
    expect_error(k, errno.EPERM, k.setsid, p)
    q = k.clone(k.init).task
    k.setpgid(q, 0, 0)  # q leads group 3
    e = expect_error(k, errno.EPERM, k.setsid, q)
    assert "3" in str(e)


def test_setsid_is_refused_while_another_process_uses_the_id_as_its_group() -> None:
    k = new_kernel()
    p = k.clone(k.init).task  # 2
    k.setpgid(p, 0, 0)
    member = k.clone(p).task  # group 2
    k.setpgid(p, 0, 1)  # p goes back to group 1; member keeps group 2
    assert member.group.pgrp is p.pid and p not in p.pid.pgrp_tasks
    expect_error(k, errno.EPERM, k.setsid, p)


# -- setpgid -----------------------------------------------------------------------------------


def test_setpgid_zero_zero_makes_the_caller_a_group_leader() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    k.setpgid(p, 0, 0)
    assert p.group.pgrp is p.pid and p.group.session is k.init.pid


def test_parent_moves_its_child_into_a_new_group_and_an_existing_one() -> None:
    k = new_kernel()
    sh = k.clone(k.init).task  # 2
    k.setsid(sh)
    a, b = spawn(k, sh, 2)  # 3, 4
    k.setpgid(sh, 3, 3)  # a leads a job
    k.setpgid(sh, 4, 3)  # b joins it
    assert a.group.pgrp is a.pid and b.group.pgrp is a.pid
    k.setpgid(b, 0, 0)  # b makes its own
    assert b.group.pgrp is b.pid
    th = k.clone(b, CLONE_THREAD).task
    k.setpgid(th, 0, 3)  # a thread acts for its process
    assert b.group.pgrp is a.pid


def test_moving_out_of_a_group_frees_a_group_id_with_no_task() -> None:
    k = new_kernel()
    sh = k.clone(k.init).task
    k.setsid(sh)
    a = k.clone(sh).task  # 3
    b = k.clone(sh).task  # 4
    k.setpgid(sh, 3, 3)
    k.setpgid(sh, 4, 3)
    k.exit(a)
    k.waitid(sh, P_PID, 3)
    pgid3 = k.find_pid(k.root_ns, 3)
    assert pgid3 is not None and b.group.pgrp is pgid3  # b still uses 3 as its group
    k.setpgid(sh, 4, 4)
    assert k.find_pid(k.root_ns, 3) is None and b.group.pgrp is b.pid


@pytest.mark.parametrize(("case", "err"), [
    ("negative-pgid", errno.EINVAL),
    ("thread", errno.EINVAL),
    ("unknown-pid", errno.ESRCH),
    ("grandchild", errno.ESRCH),
    ("sibling", errno.ESRCH),
    ("parent", errno.ESRCH),
    ("child-in-another-session", errno.EPERM),
    ("session-leader-self", errno.EPERM),
    ("group-not-in-session", errno.EPERM),
    ("group-does-not-exist", errno.EPERM),
    ("child-has-execd", errno.EACCES),
], ids=lambda v: v if isinstance(v, str) else errno.errorcode[v])
def test_setpgid_errors(case: str, err: int) -> None:
    k = new_kernel()
    sh = k.clone(k.init).task  # 2
    k.setsid(sh)
    child = k.clone(sh).task  # 3
    grandchild = k.clone(child).task  # 4
    sib = k.clone(k.init).task  # 5
    other_session = k.clone(k.init).task  # 6
    k.setsid(other_session)
    th = k.clone(child, CLONE_THREAD).task  # 7
    # case -> (caller, pid, pgid, the number the message must name)
    call = {
        "negative-pgid": (sh, 3, -1, "-1"),
        "thread": (sh, th.pid.nr, 0, "7"),
        "unknown-pid": (sh, 99, 0, "99"),
        "grandchild": (sh, grandchild.pid.nr, 0, "4"),
        "sibling": (sh, sib.pid.nr, 0, "5"),
        "parent": (child, 2, 0, "2"),
        "child-in-another-session": (sh, 3, 3, "3"),
        "session-leader-self": (sh, 0, 0, "2"),
        "group-not-in-session": (sh, 3, other_session.pid.nr, "6"),
        "group-does-not-exist": (sh, 3, 50, "50"),
        "child-has-execd": (sh, 3, 3, "3"),
    }[case]
    if case == "child-in-another-session":
        k.setsid(child)
    elif case == "child-has-execd":
        k.execve(child, "x")
    caller, pid_nr, pgid_nr, named = call
    e = expect_error(k, err, k.setpgid, caller, pid_nr, pgid_nr)
    assert named in str(e)


def test_setpgid_numbers_are_read_in_the_callers_namespace() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    c = k.clone(n).task  # root 3, ns 2
    k.setpgid(n, 2, 2)
    assert c.group.pgrp is c.pid
    expect_error(k, errno.ESRCH, k.setpgid, n, 3, 3)  # 3 means nothing in n's namespace


# -- child subreaper ---------------------------------------------------------------------------


def test_subreaper_flag_reaches_existing_and_future_descendants() -> None:
    k = new_kernel()
    s = k.clone(k.init).task
    a = k.clone(s).task
    b = k.clone(a).task
    assert not b.group.has_child_subreaper
    k.set_child_subreaper(s)
    assert s.group.is_child_subreaper and a.group.has_child_subreaper and b.group.has_child_subreaper
    assert not s.group.has_child_subreaper and not k.init.group.has_child_subreaper
    assert k.clone(b).task.group.has_child_subreaper
    k.exit(a)
    assert b.group.parent is s
    k.set_child_subreaper(s, False)
    c = k.clone(b).task
    k.exit(b)
    assert c.group.parent is k.init
    reap_all(k, s)


def test_a_zombie_child_can_still_change_group_like_in_linux() -> None:
    # find_task_by_vpid() finds a zombie until it is reaped; setpgid() does not look at exit_state
    k = new_kernel()
    sh = k.clone(k.init).task
    k.setsid(sh)
    c = k.clone(sh).task
    k.exit(c)
    k.setpgid(sh, 3, 3)
    assert c.group.pgrp is c.pid and c in c.pid.pgrp_tasks
    k.waitid(sh)
    assert k.find_pid(k.root_ns, 3) is None


# -- orphaned process groups (kernel/exit.c kill_orphaned_pgrp, get_signal) ------------------


def shell_with_job(k):
    """sh leads a session; job (its child) leads group J; worker is job's child, also in J."""
    sh = k.clone(k.init).task  # 2
    k.setsid(sh)
    job = k.clone(sh).task  # 3
    k.setpgid(sh, 3, 3)
    worker = k.clone(job).task  # 4, group 3
    assert worker.group.pgrp is job.pid
    return sh, job, worker


def test_shell_exit_hangs_up_its_stopped_job() -> None:
    k = new_kernel()
    sh, job, worker = shell_with_job(k)
    k.kill(job, 20)  # SIGTSTP: the group is not orphaned (sh is in the session), so it stops
    assert job.group.stopped
    k.exit(sh)
    assert not job.alive and not worker.alive
    got = sorted((r.pid, r.kind, r.code) for r in reap_all(k, k.init))
    assert got == [(2, "exited", 0), (3, "killed", 1), (4, "killed", 1)]  # SIGHUP


def test_orphaned_group_without_a_stopped_member_is_left_alone() -> None:
    k = new_kernel()
    sh, job, worker = shell_with_job(k)
    k.exit(sh)
    assert job.alive and worker.alive and job.group.parent is k.init


def test_member_ignoring_sighup_is_continued_and_lives() -> None:
    k = new_kernel()
    sh, job, worker = shell_with_job(k)
    job.group.sigign |= 1 << 1
    worker.group.sigign |= 1 << 1
    k.kill(job, SIGSTOP)
    k.exit(sh)
    assert job.alive and not job.group.stopped
    assert k.waitid(k.init, P_PID, 3, 8).kind == "continued"  # WCONTINUED
    assert worker.alive


def test_exit_of_the_groups_last_outside_link_hangs_up_the_rest() -> None:
    k = new_kernel()
    _sh, job, worker = shell_with_job(k)
    k.kill(worker, SIGSTOP)
    k.exit(job)  # worker goes to init; nobody in group 3 has a parent in the session any more
    assert not worker.alive
    assert sorted((r.pid, r.code) for r in reap_all(k, k.init)) == [(4, 1)]


def test_a_subreaper_in_the_session_keeps_the_group_attached() -> None:
    k = new_kernel()
    sh, job, worker = shell_with_job(k)
    k.set_child_subreaper(sh)
    k.kill(worker, SIGSTOP)
    k.exit(job)
    assert worker.group.parent is sh and worker.alive and worker.group.stopped


@pytest.mark.parametrize("sig", [20, 21, 22], ids=["SIGTSTP", "SIGTTIN", "SIGTTOU"])
def test_job_control_stops_are_discarded_in_an_orphaned_group(sig: int) -> None:
    k = new_kernel()
    c = k.clone(k.init).task  # group 1 with init, whose parent links do not count
    k.kill(c, sig)
    assert not c.group.stopped
    k.kill(c, SIGSTOP)  # always stops
    assert c.group.stopped
