"""Bad input to every entry point of the model: a wrong type (a string, a float, a bool where an
int is due, None where a task is due) or a value out of range gets a KernelError whose message
names the offending value, and the model is exactly as before (``expect_error`` compares
snapshots). Anything else escaping the model would be a bug.

Lookups (find_pid, find_task, find_pidfs) answer "nothing there" instead of raising.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_PIDFD, CLONE_THREAD, P_ALL, P_PIDFD, WEXITED, Kernel, KernelError
from pidfs_fuse.tests.conftest import expect_error, new_kernel

EINVAL, EBADF = errno.EINVAL, errno.EBADF


def world() -> SimpleNamespace:
    k = new_kernel()
    p = k.clone(k.init).task  # 2
    th = k.clone(p, CLONE_THREAD).task  # 3
    r = k.clone(p, CLONE_PIDFD)  # 4, descriptor 3 of p
    n = k.clone(k.init, CLONE_NEWPID).task  # 5
    k.setxattr(r.task.pid, "trusted.x", b"1")
    return SimpleNamespace(k=k, p=p, th=th, c=r.task, cpid=r.task.pid, fd=r.pidfd, n=n, ns=n.pid.ns)


Call = Callable[[SimpleNamespace], tuple[Callable[..., Any], tuple, dict]]


def c(fn: str, *args: Any, **kw: Any) -> Call:
    """A call of ``k.<fn>``; arguments written '@p', '@ns'... are taken from the world."""
    def build(w: SimpleNamespace):
        def val(a: Any) -> Any:
            return getattr(w, a[1:]) if isinstance(a, str) and a.startswith("@") else a
        return getattr(w.k, fn), tuple(val(a) for a in args), {key: val(v) for key, v in kw.items()}
    return build


# (id, call, errno, text the message must contain)
CASES: list[tuple[str, Call, int, str]] = [
    # clone
    ("clone-flags-str", c("clone", "@p", "1"), EINVAL, "'1'"),
    ("clone-flags-bool", c("clone", "@p", True), EINVAL, "True"),
    ("clone-flags-float", c("clone", "@p", 1.5), EINVAL, "1.5"),
    ("clone-flags-negative", c("clone", "@p", -1), EINVAL, "-0x1"),
    ("clone-flags-unknown-bit", c("clone", "@p", 1 << 40), EINVAL, "0x10000000000"),
    ("clone-parent-none", c("clone", None), EINVAL, "None"),
    ("clone-parent-str", c("clone", "init"), EINVAL, "'init'"),
    ("clone-exit-signal-str", c("clone", "@p", exit_signal="17"), EINVAL, "'17'"),
    ("clone-exit-signal-bool", c("clone", "@p", exit_signal=True), EINVAL, "True"),
    ("clone-exit-signal-65", c("clone", "@p", exit_signal=65), EINVAL, "65"),
    ("clone-exit-signal-negative", c("clone", "@p", exit_signal=-1), EINVAL, "-1"),
    ("clone-set-tid-int", c("clone", "@p", set_tid=5), EINVAL, "5"),
    ("clone-set-tid-str", c("clone", "@p", set_tid="12"), EINVAL, "'12'"),
    ("clone-set-tid-bool-entry", c("clone", "@p", set_tid=[True]), EINVAL, "True"),
    ("clone-set-tid-str-entry", c("clone", "@p", set_tid=["2"]), EINVAL, "'2'"),
    ("clone-set-tid-float-entry", c("clone", "@p", set_tid=[2.0]), EINVAL, "2.0"),
    ("clone-comm-int", c("clone", "@p", comm=5), EINVAL, "5"),
    ("clone-argv-str", c("clone", "@p", argv="prog"), EINVAL, "'prog'"),
    ("clone-argv-int-item", c("clone", "@p", argv=["a", 1]), EINVAL, "['a', 1]"),
    ("clone-uid-str", c("clone", "@p", uid="0"), EINVAL, "'0'"),
    ("clone-uid-bool", c("clone", "@p", uid=True), EINVAL, "True"),
    ("clone-uid-negative", c("clone", "@p", uid=-1), EINVAL, "-1"),
    ("clone-uid-2-32", c("clone", "@p", uid=2**32), EINVAL, "4294967296"),
    ("clone-gid-max", c("clone", "@p", gid=2**32 - 1), EINVAL, "4294967295"),
    # exit, exit_group
    ("exit-code-str", c("exit", "@th", "1"), EINVAL, "'1'"),
    ("exit-code-bool", c("exit", "@th", True), EINVAL, "True"),
    ("exit-code-float", c("exit", "@th", 1.0), EINVAL, "1.0"),
    ("exit-code-256", c("exit", "@th", 256), EINVAL, "256"),
    ("exit-code-negative", c("exit", "@th", -1), EINVAL, "-1"),
    ("exit-task-none", c("exit", None), EINVAL, "None"),
    ("exit-group-code-300", c("exit_group", "@p", 300), EINVAL, "300"),
    ("exit-group-task-int", c("exit_group", 2), EINVAL, "2"),
    # kill
    ("kill-sig-str", c("kill", "@p", "9"), EINVAL, "'9'"),
    ("kill-sig-bool", c("kill", "@p", True), EINVAL, "True"),
    ("kill-sig-65", c("kill", "@p", 65), EINVAL, "65"),
    ("kill-sig-negative", c("kill", "@p", -1), EINVAL, "-1"),
    ("kill-uid-str", c("kill", "@p", 15, uid="0"), EINVAL, "'0'"),
    ("kill-uid-bool", c("kill", "@p", 15, uid=False), EINVAL, "False"),
    ("kill-uid-negative", c("kill", "@p", 15, uid=-5), EINVAL, "-5"),
    ("kill-task-none", c("kill", None, 15), EINVAL, "None"),
    ("kill-sender-str", c("kill", "@p", 15, sender="init"), EINVAL, "'init'"),
    # waitid
    ("waitid-idtype-str", c("waitid", "@p", "0"), EINVAL, "'0'"),
    ("waitid-idtype-bool", c("waitid", "@p", True, 4), EINVAL, "True"),
    ("waitid-id-str", c("waitid", "@p", 1, "4"), EINVAL, "'4'"),
    ("waitid-options-str", c("waitid", "@p", P_ALL, 0, "4"), EINVAL, "'4'"),
    ("waitid-options-bool", c("waitid", "@p", P_ALL, 0, True), EINVAL, "True"),
    ("waitid-options-negative", c("waitid", "@p", P_ALL, 0, -1), EINVAL, "-0x1"),
    ("waitid-pidfd-not-a-pidfd", c("waitid", "@p", P_PIDFD, 3, WEXITED, pidfd=3), EBADF, "3"),
    ("waitid-parent-none", c("waitid", None), EINVAL, "None"),
    # pidfds
    ("pidfd-open-ns-none", c("pidfd_open", None, 2), EINVAL, "None"),
    ("pidfd-open-nr-str", c("pidfd_open", "@ns", "2"), EINVAL, "'2'"),
    ("pidfd-open-nr-bool", c("pidfd_open", "@ns", True), EINVAL, "True"),
    ("pidfd-open-nr-float", c("pidfd_open", "@ns", 2.0), EINVAL, "2.0"),
    ("pidfd-open-flags-str", c("pidfd_open", "@ns", 1, "0"), EINVAL, "'0'"),
    ("pidfd-open-flags-bool", c("pidfd_open", "@ns", 1, True), EINVAL, "True"),
    ("pidfd-get-not-a-pid", c("pidfd_get", "pid"), EINVAL, "'pid'"),
    ("pidfd-close-not-a-pidfd", c("pidfd_close", "x"), EBADF, "'x'"),
    ("pidfd-poll-not-a-pidfd", c("pidfd_poll", 3), EBADF, "3"),
    ("send-signal-not-a-pidfd", c("pidfd_send_signal", 3, 9), EBADF, "3"),
    ("send-signal-sig-str", c("pidfd_send_signal", "@fd", "9"), EINVAL, "'9'"),
    ("send-signal-uid-str", c("pidfd_send_signal", "@fd", 9, uid="0"), EINVAL, "'0'"),
    ("fd-close-str", c("fd_close", "@p", "3"), EINVAL, "'3'"),
    ("fd-close-unknown", c("fd_close", "@p", 99), EBADF, "99"),
    # sysctls
    ("pid-max-str", c("set_pid_max", "@ns", "400"), EINVAL, "'400'"),
    ("pid-max-bool", c("set_pid_max", "@ns", True), EINVAL, "True"),
    ("pid-max-float", c("set_pid_max", "@ns", 400.0), EINVAL, "400.0"),
    ("pid-max-uid-str", c("set_pid_max", "@ns", 400, uid="0"), EINVAL, "'0'"),
    ("pid-max-uid-bool", c("set_pid_max", "@ns", 400, uid=False), EINVAL, "False"),
    ("pid-max-ns-none", c("set_pid_max", None, 400), EINVAL, "None"),
    ("last-pid-bool", c("set_last_pid", "@ns", True), EINVAL, "True"),
    ("last-pid-str", c("set_last_pid", "@ns", "5"), EINVAL, "'5'"),
    ("last-pid-float", c("set_last_pid", "@ns", 5.0), EINVAL, "5.0"),
    ("last-pid-negative", c("set_last_pid", "@ns", -1), EINVAL, "-1"),
    ("last-pid-uid-bool", c("set_last_pid", "@ns", 5, uid=True), EINVAL, "True"),
    ("last-pid-ns-str", c("set_last_pid", "ns", 5), EINVAL, "'ns'"),
    # sessions, exec, namespaces
    ("setpgid-pid-str", c("setpgid", "@p", "2"), EINVAL, "'2'"),
    ("setpgid-pid-bool", c("setpgid", "@p", True), EINVAL, "True"),
    ("setpgid-pgid-str", c("setpgid", "@p", 0, "0"), EINVAL, "'0'"),
    ("setpgid-pgid-negative", c("setpgid", "@p", 0, -3), EINVAL, "-3"),
    ("setpgid-caller-none", c("setpgid", None), EINVAL, "None"),
    ("setsid-task-none", c("setsid", None), EINVAL, "None"),
    ("execve-comm-int", c("execve", "@p", 5), EINVAL, "5"),
    ("execve-comm-empty", c("execve", "@p", ""), EINVAL, "''"),
    ("execve-argv-str", c("execve", "@p", "x", "x y"), EINVAL, "'x y'"),
    ("execve-exe-int", c("execve", "@p", "x", exe=5), EINVAL, "5"),
    ("subreaper-on-str", c("set_child_subreaper", "@p", "off"), EINVAL, "'off'"),
    ("subreaper-task-none", c("set_child_subreaper", None), EINVAL, "None"),
    ("unshare-task-str", c("unshare_pid_ns", "p"), EINVAL, "'p'"),
    ("setns-ns-str", c("setns_pid", "@p", "ns"), EINVAL, "'ns'"),
    ("setns-ns-none", c("setns_pid", "@p", None), EINVAL, "None"),
    ("set-ctty-task-str", c("set_ctty", "p", 34816), EINVAL, "'p'"),
    ("set-ctty-dev-str", c("set_ctty", "@p", "pts/0"), EINVAL, "'pts/0'"),
    ("set-ctty-dev-zero", c("set_ctty", "@p", 0), EINVAL, "0"),
    ("set-ctty-dev-huge", c("set_ctty", "@p", 2**32), EINVAL, "4294967296"),
    ("tcsetpgrp-task-none", c("tcsetpgrp", None, 2), EINVAL, "None"),
    ("clone-many-count-str", c("clone_many", "@p", "5"), EINVAL, "'5'"),
    ("clone-many-count-bool", c("clone_many", "@p", True), EINVAL, "True"),
    ("clone-many-flags-unknown-bit", c("clone_many", "@p", 3, 1 << 40), EINVAL, "0x10000000000"),
    ("clone-many-parent-str", c("clone_many", "init", 3), EINVAL, "'init'"),
    ("tcsetpgrp-pgid-str", c("tcsetpgrp", "@p", "2"), EINVAL, "'2'"),
    ("unshare-ns-task-str", c("unshare_ns", "p", "net"), EINVAL, "'p'"),
    ("unshare-ns-type-unknown", c("unshare_ns", "@p", "newnet"), EINVAL, "'newnet'"),
    ("unshare-ns-type-none", c("unshare_ns", "@p", None), EINVAL, "None"),
    ("setns-ns-type-unknown", c("setns_ns", "@p", "pid", "@c"), EINVAL, "'pid'"),
    ("setns-ns-other-str", c("setns_ns", "@p", "net", "c"), EINVAL, "'c'"),
    ("setns-ns-other-none", c("setns_ns", "@p", "net", None), EINVAL, "None"),
    ("get-task-nr-str", c("get_task", "@ns", "1"), EINVAL, "'1'"),
    ("get-task-ns-none", c("get_task", None, 1), EINVAL, "None"),
    ("next-tgid-nr-str", c("next_tgid", "@ns", "1"), EINVAL, "'1'"),
    ("scan-tgids-nr-str", c("scan_tgids", "@ns", "1"), EINVAL, "'1'"),
    # xattrs
    ("setxattr-name-int", c("setxattr", "@cpid", 5, b"v"), EINVAL, "5"),
    ("setxattr-value-str", c("setxattr", "@cpid", "trusted.y", "v"), EINVAL, "'v'"),
    ("setxattr-uid-str", c("setxattr", "@cpid", "trusted.y", b"v", uid="0"), EINVAL, "'0'"),
    ("getxattr-name-none", c("getxattr", "@cpid", None), EINVAL, "None"),
    ("getxattr-uid-bool", c("getxattr", "@cpid", "trusted.x", uid=True), EINVAL, "True"),
    ("listxattr-uid-str", c("listxattr", "@cpid", uid="0"), EINVAL, "'0'"),
    ("removexattr-name-bytes", c("removexattr", "@cpid", b"trusted.x"), EINVAL, "b'trusted.x'"),
]


@pytest.mark.parametrize(("build", "err", "named"), [x[1:] for x in CASES], ids=[x[0] for x in CASES])
def test_bad_argument_is_refused_by_name_and_changes_nothing(build: Call, err: int, named: str) -> None:
    w = world()
    fn, args, kw = build(w)
    e = expect_error(w.k, err, fn, *args, **kw)
    assert named in str(e), f"{str(e)!r} does not name {named}"


def test_every_public_entry_point_is_in_the_table() -> None:
    w = world()
    tested = {build(w)[0].__name__ for _, build, _, _ in CASES}
    public = {n for n in dir(Kernel) if not n.startswith("_") and callable(getattr(Kernel, n))}
    lookups = {"find_pid", "find_task", "find_pidfs", "iter_tgids", "namespaces", "exit_info",
               "fd_install", "notify_changed", "foreground", "tpgid_in"}  # answer None / take model objects only
    assert public - lookups - tested == set()


@pytest.mark.parametrize("nr", [True, False, "1", 1.0, None, -1, 0, 10**12], ids=repr)
def test_lookups_answer_nothing_for_bad_numbers(nr: Any) -> None:
    w = world()
    assert w.k.find_pid(w.k.root_ns, nr) is None
    assert w.k.find_task(w.k.root_ns, nr) is None
    assert w.k.find_pidfs(nr) is None


@pytest.mark.parametrize("pid_max", [True, "32768", 300, 4194305, 1.0e4], ids=repr)
def test_kernel_refuses_a_bad_pid_max_at_boot(pid_max: Any) -> None:
    with pytest.raises(KernelError) as info:
        Kernel(pid_max=pid_max)
    assert info.value.errno == EINVAL and repr(pid_max) in str(info.value)


def test_a_stale_task_after_a_failed_call_still_works() -> None:
    w = world()
    with pytest.raises(KernelError):
        w.k.clone(w.p, 1 << 40)
    assert w.k.clone(w.p).task.pid.numbers == (6,)
