"""The non-pid namespaces as identities (kernel/namespaces.py), their ns/ links, the control
commands and scenario keys that change them."""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse import scenario
from pidfs_fuse.control import Control
from pidfs_fuse.kernel import CLONE_THREAD, Kernel, KernelError
from pidfs_fuse.procfs import files as F
from pidfs_fuse.procfs.view import View

INIT = {"cgroup": 4026531835, "ipc": 4026531839, "mnt": 4026531832, "net": 4026531833,
        "pid": 4026531836, "pid_for_children": 4026531836, "time": 4026531834,
        "time_for_children": 4026531834, "user": 4026531837, "uts": 4026531838}


def test_init_namespaces_are_this_machines_initial_inums() -> None:
    k = Kernel()
    assert F.ns_inums(k.init) == INIT


def test_clone_inherits_and_unshare_changes_one_type() -> None:
    k = Kernel()
    a = k.clone(k.init).task
    inum = k.unshare_ns(a, "net")
    assert inum == 4026532092  # the counter pid namespaces use (PROC_PID_INIT_INO + 0x100)
    child = k.clone(a).task
    thread = k.clone(a, CLONE_THREAD).task
    for t in (a, child, thread):
        assert F.ns_inums(t) == {**INIT, "net": inum}
    assert F.ns_inums(k.init) == INIT


def test_time_unshare_is_for_children_only() -> None:
    k = Kernel()
    a = k.clone(k.init).task
    inum = k.unshare_ns(a, "time")
    assert (a.nsproxy.time, a.nsproxy.time_for_children) == (INIT["time"], inum)
    child = k.clone(a).task
    assert (child.nsproxy.time, child.nsproxy.time_for_children) == (inum, inum)
    th = k.clone(a, CLONE_THREAD).task  # a thread shares the nsproxy
    assert th.nsproxy.time == INIT["time"]


def test_setns_joins_another_tasks_namespace() -> None:
    k = Kernel()
    a = k.clone(k.init).task
    b = k.clone(k.init).task
    inum = k.unshare_ns(a, "uts")
    k.setns_ns(b, "uts", a)
    assert b.nsproxy.uts == inum
    k.setns_ns(b, "uts", k.init)
    assert b.nsproxy.uts == INIT["uts"]


def test_unprivileged_and_bad_calls_fail_and_change_nothing() -> None:
    k = Kernel()
    u = k.clone(k.init, uid=1000).task
    before = u.nsproxy
    with pytest.raises(KernelError) as e:
        k.unshare_ns(u, "net")
    assert e.value.errno == errno.EPERM
    with pytest.raises(KernelError) as e:
        k.setns_ns(u, "mnt", k.init)
    assert e.value.errno == errno.EPERM
    with pytest.raises(KernelError) as e:
        k.unshare_ns(u, "bogus")
    assert e.value.errno == errno.EINVAL and "not a namespace type" in str(e.value)
    assert u.nsproxy is before
    assert k.unshare_ns(u, "user") == 4026532092  # anyone may create a user namespace
    k.clone(u, CLONE_THREAD)
    with pytest.raises(KernelError) as e:
        k.unshare_ns(u, "user")
    assert e.value.errno == errno.EINVAL and "single-threaded" in str(e.value)
    r = k.clone(k.init).task
    with pytest.raises(KernelError) as e:
        k.setns_ns(r, "user", k.init)  # the user namespace it is already in
    assert e.value.errno == errno.EINVAL


def test_zombie_keeps_only_pid_and_user_links() -> None:
    # checked on this machine: a zombie's ns/pid and ns/user read, the rest are ENOENT
    k = Kernel()
    z = k.clone(k.init).task
    k.exit_group(z, 0)
    view = View(k, k.root_ns)
    assert F.ns_inums(z) == {"pid": INIT["pid"], "user": INIT["user"]}
    assert F.readlink_ns("user")(view, z) == "user:[4026531837]"
    for name in ("net", "time_for_children", "mnt"):
        with pytest.raises(KernelError) as e:
            F.readlink_ns(name)(view, z)
        assert e.value.errno == errno.ENOENT


def test_links_name_the_type() -> None:
    k = Kernel()
    view = View(k, k.root_ns)
    assert F.readlink_ns("time_for_children")(view, k.init) == "time:[4026531834]"
    assert F.readlink_ns("mnt")(view, k.init) == "mnt:[4026531832]"


def test_control_unshare_and_setns() -> None:
    k = Kernel()
    c = Control(k, k.root_ns)
    a = k.clone(k.init).task
    b = k.clone(k.init).task
    assert c.parse(f"unshare {a.pid.nr} ipc").run() == "4026532092\n"
    assert c.parse(f"setns {b.pid.nr} {a.pid.nr} ipc").run() == ""
    assert b.nsproxy.ipc == 4026532092
    before = b.nsproxy
    with pytest.raises(KernelError) as e:
        c.parse(f"unshare {b.pid.nr} bogus")
    assert e.value.errno == errno.EINVAL and "is not a namespace type" in str(e.value)
    with pytest.raises(KernelError):
        c.parse(f"setns {b.pid.nr} {a.pid.nr} nope")
    assert b.nsproxy is before
    assert c.parse(f"unshare {a.pid.nr} newpid").run() == "4026532093\n"  # pid as before


def test_scenario_keys_unshare_and_setns() -> None:
    sc = scenario.loads('[[process]]\nname = "a"\nunshare = ["net", "uts"]\n'
                        '[[process]]\nname = "b"\nparent = "a"\n'
                        '[[process]]\nname = "c"\nsetns = {net = "a"}\n')
    a, b, c = (sc.tasks[n] for n in "abc")
    assert (a.nsproxy.net, a.nsproxy.uts) == (4026532092, 4026532093)
    assert b.nsproxy == a.nsproxy
    assert (c.nsproxy.net, c.nsproxy.uts) == (4026532092, INIT["uts"])
    for bad, msg in (('unshare = ["bogus"]', 'process[1].unshare[0]: "bogus" is not a namespace type'),
                     ('setns = {net = "zz"}', 'process[1].setns.net: no earlier process named "zz"')):
        with pytest.raises(scenario.ScenarioError) as e:
            scenario.loads(f'[[process]]\nname = "a"\n[[process]]\nname = "x"\n{bad}\n')
        assert msg in str(e.value)
