"""Pid namespaces: numbers per level and their visibility (pid_nr_ns), unshare/setns of
pid_for_children (kernel/pid_namespace.c, kernel/nsproxy.c), the namespace init (child reaper,
SIGNAL_UNKILLABLE) and what its death does (zap_pid_ns_processes: SIGKILL to every member,
nested namespaces included, then ENOMEM for new pids).
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_THREAD, P_PID, PIDFD_THREAD, WEXITED, ExitInfo, ExitState
from pidfs_fuse.kernel.signals import SIGKILL, SIGSTOP, SIGTERM
from pidfs_fuse.tests.conftest import expect_error, new_kernel, raises, spawn, tgids


def test_pid_numbers_are_visible_from_the_own_namespace_and_its_ancestors_only() -> None:
    k = new_kernel()
    n1 = k.clone(k.init, CLONE_NEWPID).task  # root 2
    n2 = k.clone(k.init, CLONE_NEWPID).task  # root 3
    c = k.clone(n1).task
    assert c.pid.numbers == (4, 2)
    assert c.pid.nr_in(k.root_ns) == 4
    assert c.pid.nr_in(n1.pid.ns) == 2
    assert c.pid.nr_in(n2.pid.ns) == 0  # a sibling namespace does not see it
    assert k.init.pid.nr_in(n1.pid.ns) == 0  # nor does a child see its ancestors' pids
    assert k.find_task(n1.pid.ns, 2) is c and k.find_task(k.root_ns, 4) is c
    assert k.find_task(n2.pid.ns, 2) is None
    assert [u.nr for u in c.pid.upids()] == [4, 2]
    assert tgids(k, n1.pid.ns) == [1, 2] and tgids(k, n2.pid.ns) == [1]


def test_namespaces_nest_and_are_listed_parent_first() -> None:
    k = new_kernel()
    a = k.clone(k.init, CLONE_NEWPID).task
    b = k.clone(a, CLONE_NEWPID).task
    c = k.clone(k.init, CLONE_NEWPID).task
    levels = [(ns.level, ns.inum) for ns in k.namespaces()]
    assert levels == [(0, k.root_ns.inum), (1, a.pid.ns.inum), (2, b.pid.ns.inum), (1, c.pid.ns.inum)]
    assert b.pid.ns.ancestors == (k.root_ns, a.pid.ns, b.pid.ns)
    assert len({ns.inum for ns in k.namespaces()}) == 4


# -- unshare(CLONE_NEWPID) ---------------------------------------------------------------------


def test_unshare_moves_only_the_children_into_the_new_namespace() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    ns = k.unshare_pid_ns(p)
    assert ns.level == 1 and ns in k.root_ns.children
    assert p.pid.ns is k.root_ns and p.active_ns is k.root_ns and p.ns_for_children is ns
    first = k.clone(p).task
    second = k.clone(p).task
    assert (first.pid.numbers, second.pid.numbers) == ((3, 1), (4, 2))
    assert ns.child_reaper is first and first.group.unkillable and not second.group.unkillable
    assert first.group.parent is p and second.group.parent is p


@pytest.mark.parametrize(("flags", "what"), [
    (CLONE_NEWPID, "a second namespace for children"),
    (CLONE_THREAD, "a thread after unshare"),
], ids=["newpid", "thread"])
def test_after_unshare_clone_refuses(flags: int, what: str) -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    k.unshare_pid_ns(p)
    expect_error(k, errno.EINVAL, k.clone, p, flags)


def test_second_unshare_is_einval_and_unprivileged_unshare_is_eperm() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    k.unshare_pid_ns(p)
    expect_error(k, errno.EINVAL, k.unshare_pid_ns, p)
    u = k.clone(k.init, uid=1000).task
    expect_error(k, errno.EPERM, k.unshare_pid_ns, u)
    expect_error(k, errno.EPERM, k.clone, u, CLONE_NEWPID)


# -- setns(CLONE_NEWPID) -----------------------------------------------------------------------


def test_setns_into_a_descendant_namespace_puts_the_next_children_there() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    p = k.clone(k.init).task
    k.setns_pid(p, n.pid.ns)
    c = k.clone(p).task
    assert c.pid.numbers == (4, 2) and c.group.parent is p
    assert c.pid.nr_in(n.pid.ns) == 2 and p.pid.nr_in(n.pid.ns) == 0
    expect_error(k, errno.EINVAL, k.clone, p, CLONE_THREAD)
    k.setns_pid(p, k.root_ns)  # back to its own namespace
    assert p.pid_ns_for_children is None
    assert k.clone(p).task.pid.numbers == (5,)
    k.clone(p, CLONE_THREAD)


def test_setns_refuses_ancestors_siblings_and_the_unprivileged() -> None:
    k = new_kernel()
    a = k.clone(k.init, CLONE_NEWPID).task
    b = k.clone(k.init, CLONE_NEWPID).task
    inner = k.clone(a).task
    expect_error(k, errno.EINVAL, k.setns_pid, inner, k.root_ns)  # an ancestor
    expect_error(k, errno.EINVAL, k.setns_pid, inner, b.pid.ns)  # a sibling
    u = k.clone(k.init, uid=1000).task
    expect_error(k, errno.EPERM, k.setns_pid, u, a.pid.ns)


# -- the namespace init ----------------------------------------------------------------------


def test_namespace_init_takes_only_sigkill_and_sigstop_from_an_ancestor() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    inside = k.clone(n).task
    for sig, sender in [(SIGTERM, inside), (SIGKILL, inside), (SIGTERM, k.init), (SIGTERM, None)]:
        k.kill(n, sig, sender=sender)
        assert n.alive, (sig, sender)
    k.kill(n, SIGSTOP, sender=k.init)
    assert n.group.stopped
    k.kill(n, SIGKILL, sender=k.init)
    assert n.exit_state is ExitState.ZOMBIE and n.group.group_exit_code == SIGKILL


def test_root_init_ignores_every_signal() -> None:
    k = new_kernel()
    for sig in (SIGTERM, SIGKILL, SIGSTOP):
        k.kill(k.init, sig)
    assert k.init.alive and not k.init.group.stopped


def test_namespace_init_death_kills_every_member_and_nested_namespaces() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    a = k.clone(n).task
    b = k.clone(n).task
    b_thread = k.clone(b, CLONE_THREAD).task
    nested = k.clone(n, CLONE_NEWPID).task
    d = k.clone(nested).task
    grandchild = k.clone(a).task
    handles = {t: k.pidfd_open(k.root_ns, t.pid.numbers[0], 0 if t.is_leader else PIDFD_THREAD)
               for t in (a, b, b_thread, nested, d, grandchild)}
    k.exit_group(n, 3)
    for t in handles:
        assert t.exit_state is ExitState.DEAD, t
    for t, fd in handles.items():
        assert k.exit_info(fd.pid) == ExitInfo(SIGKILL), t
    assert not n.pid.ns.adding and not nested.pid.ns.adding
    assert len(nested.pid.ns.idr) == 0
    assert [nr for nr, _ in n.pid.ns.idr.items()] == [1]  # only the zombie init is left
    res = k.waitid(k.init, P_PID, n.pid.numbers[0], WEXITED)
    assert (res.kind, res.code) == ("exited", 3)
    assert tgids(k) == [1]


def test_clone_into_a_dead_namespace_through_setns_gives_enomem() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    ns = n.pid.ns
    k.exit(n)
    p = k.clone(k.init).task
    k.setns_pid(p, ns)
    e = raises(errno.ENOMEM, k.clone, p)
    assert str(ns.inum) in str(e)


def test_zombie_members_whose_parent_is_outside_stay_for_that_parent() -> None:
    # documented departure: Linux's dying init would wait in zap_pid_ns_processes until the
    # outside parent reaps them; the model lets init finish and leaves the zombies to that parent
    k = new_kernel()
    p = k.clone(k.init).task
    k.unshare_pid_ns(p)
    init = k.clone(p).task
    member = k.clone(p).task  # pid 2 of the namespace, but p's child
    k.exit(init, 0)
    assert member.exit_state is ExitState.ZOMBIE and member.group.parent is p
    got = sorted((r.pid, r.kind, r.code) for r in (k.waitid(p), k.waitid(p)))
    assert got == [(3, "exited", 0), (4, "killed", SIGKILL)]


def test_namespace_init_with_threads_hands_the_reaper_role_to_a_thread() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    th = k.clone(n, CLONE_THREAD).task
    c = k.clone(n).task
    orphan_parent = k.clone(c).task
    orphan = k.clone(orphan_parent).task
    k.exit(n)  # the leader only: the namespace lives on
    assert n.pid.ns.child_reaper is th and n.pid.ns.adding
    k.exit(orphan_parent)
    assert orphan.group.parent is th
    assert k.clone(th).task.pid.nr_in(n.pid.ns) == 6
    k.exit(th)
    assert not n.pid.ns.adding and orphan.exit_state is ExitState.DEAD


def test_unkillable_flag_follows_pid_1_only() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    assert k.init.group.unkillable and n.group.unkillable
    assert not any(t.group.unkillable for t in spawn(k, n, 3))
