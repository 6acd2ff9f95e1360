"""pidfds and pidfs (kernel/pid.c pidfd_open, fs/pidfs.c), after pidfd_open_test.c,
pidfd_test.c, pidfd_poll_test.c, pidfd_info_test.c and pidfd_xattr_test.c.

Poll mask: 0 while the task runs (and for a leader whose threads still run); POLLIN|POLLRDNORM
once it exited; plus POLLHUP once it was reaped. Exit information is written at reap for every
pid that ever had a handle and stays readable through the struct pid. pidfs inode numbers come
from one global counter starting at 2 (threads included) and are never reused. trusted.* xattrs
live on the struct pid.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import (
    CLONE_NEWPID,
    CLONE_PIDFD,
    CLONE_THREAD,
    P_PID,
    PIDFD_NONBLOCK,
    PIDFD_THREAD,
    POLLHUP,
    POLLIN,
    POLLRDNORM,
    ExitInfo,
)
from pidfs_fuse.kernel.signals import SIGCONT, SIGKILL, SIGSEGV, SIGSTOP, SIGTERM
from pidfs_fuse.tests.conftest import expect_error, new_kernel, reap_all, spawn

READY = POLLIN | POLLRDNORM
GONE = POLLIN | POLLRDNORM | POLLHUP


# -- pidfd_open --------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "err"), [
    ("flag-1", errno.EINVAL),
    ("flags-negative", errno.EINVAL),
    ("pid-0", errno.EINVAL),
    ("pid-negative", errno.EINVAL),
    ("unknown-pid", errno.ESRCH),
    ("reaped", errno.ESRCH),
    ("group-id-only", errno.ESRCH),
    ("not-visible-from-ns", errno.ESRCH),
    ("thread-without-pidfd_thread", errno.ENOENT),
], ids=lambda v: v if isinstance(v, str) else errno.errorcode[v])
def test_pidfd_open_errors(case: str, err: int) -> None:
    k = new_kernel()
    p = k.clone(k.init).task  # 2
    k.clone(p, CLONE_THREAD)  # 3
    gone = k.clone(k.init).task  # 4
    k.exit(gone)
    k.waitid(k.init, P_PID, 4)
    d = k.clone(k.init).task  # 5: daemonizes, leaving 5 as a session id only
    k.setsid(d)
    k.clone(d)  # 6
    k.exit(d)
    k.waitid(k.init, P_PID, 5)
    n = k.clone(k.init, CLONE_NEWPID).task  # 7, ns 1
    # case -> (namespace, number, flags, what the message must name)
    ns, nr, flags, named = {
        "flag-1": (k.root_ns, 2, 1, "0o1"),
        "flags-negative": (k.root_ns, 2, -1, "-0o1"),
        "pid-0": (k.root_ns, 0, 0, "0"),
        "pid-negative": (k.root_ns, -1, 0, "-1"),
        "unknown-pid": (k.root_ns, 99, 0, "99"),
        "reaped": (k.root_ns, 4, 0, "4"),
        "group-id-only": (k.root_ns, 5, 0, "5"),
        "not-visible-from-ns": (n.pid.ns, 2, 0, "2"),
        "thread-without-pidfd_thread": (k.root_ns, 3, 0, "3"),
    }[case]
    e = expect_error(k, err, k.pidfd_open, ns, nr, flags)
    assert named in str(e)


def test_pidfd_open_a_thread_with_pidfd_thread_and_a_zombie() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    fd = k.pidfd_open(k.root_ns, 3, PIDFD_THREAD)
    assert fd.pid is th.pid and fd.thread and not fd.nonblock
    assert k.pidfd_open(k.root_ns, 2, PIDFD_NONBLOCK).nonblock
    k.exit_group(p, 1)
    z = k.pidfd_open(k.root_ns, 2)
    assert z.pid is p.pid and k.pidfd_poll(z) == READY


def test_pidfd_open_reads_the_number_in_the_given_namespace() -> None:
    k = new_kernel()
    n = k.clone(k.init, CLONE_NEWPID).task
    c = k.clone(n).task  # root 3, ns 2
    assert k.pidfd_open(n.pid.ns, 2).pid is c.pid
    assert k.pidfd_open(k.root_ns, 3).pid is c.pid


# -- poll mask ---------------------------------------------------------------------------------


def test_poll_mask_through_a_process_life() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD)
    c, fd = r.task, r.pidfd
    assert k.pidfd_poll(fd) == 0
    k.kill(c, SIGSTOP)
    assert k.pidfd_poll(fd) == 0
    k.kill(c, SIGCONT)
    k.kill(c, SIGTERM)
    assert k.pidfd_poll(fd) == READY
    k.waitid(k.init)
    assert k.pidfd_poll(fd) == GONE


def test_poll_mask_of_a_leader_that_exits_early() -> None:
    # pidfd_test.c poll_leader_exit and pidfd_info_test.c thread_group
    k = new_kernel()
    p = k.clone(k.init).task
    th = [k.clone(p, CLONE_THREAD).task for _ in range(2)]
    tgid = k.pidfd_open(k.root_ns, 2)
    leader_thread = k.pidfd_open(k.root_ns, 2, PIDFD_THREAD)
    thread = k.pidfd_open(k.root_ns, 3, PIDFD_THREAD)
    k.exit(p, 0)
    assert k.pidfd_poll(tgid) == k.pidfd_poll(leader_thread) == 0
    k.exit(th[0])
    assert k.pidfd_poll(thread) == GONE  # a thread is released at once
    assert k.pidfd_poll(tgid) == 0
    k.exit(th[1])
    assert k.pidfd_poll(tgid) == k.pidfd_poll(leader_thread) == READY
    k.waitid(k.init)
    assert k.pidfd_poll(tgid) == k.pidfd_poll(leader_thread) == GONE


def test_poll_after_kill_sees_pollin_every_time() -> None:
    # pidfd_poll_test.c, shortened: fork, pidfd_open, SIGKILL, poll, waitpid
    k = new_kernel()
    for _ in range(200):
        c = k.clone(k.init).task
        fd = k.pidfd_open(k.root_ns, c.pid.nr)
        k.pidfd_send_signal(fd, SIGKILL)
        assert k.pidfd_poll(fd) & POLLIN
        assert k.waitid(k.init, P_PID, c.pid.nr).code == SIGKILL
        k.pidfd_close(fd)


# -- pidfd_send_signal -------------------------------------------------------------------------


def test_send_signal_to_a_zombie_is_0_and_esrch_after_reap() -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD)
    k.exit(r.task, 1)
    k.pidfd_send_signal(r.pidfd, 0)
    k.pidfd_send_signal(r.pidfd, SIGKILL)
    k.waitid(k.init)
    e = expect_error(k, errno.ESRCH, k.pidfd_send_signal, r.pidfd, 0)
    assert "2" in str(e)


def test_send_signal_never_reaches_a_process_that_reused_the_number() -> None:
    # pidfd_test.c recycled_pid
    k = new_kernel(pid_max=400)
    victim = k.clone(k.init).task  # 2
    fd = k.pidfd_open(k.root_ns, 2)
    k.exit(victim)
    k.waitid(k.init)
    k.set_last_pid(k.root_ns, 1)
    newcomer = k.clone(k.init).task
    assert newcomer.pid.nr == 2 and newcomer.pid is not fd.pid
    expect_error(k, errno.ESRCH, k.pidfd_send_signal, fd, SIGKILL)
    assert newcomer.alive


@pytest.mark.parametrize(("case", "err"), [
    ("other-uid", errno.EPERM), ("closed", errno.EBADF), ("signal-65", errno.EINVAL),
    ("signal-negative", errno.EINVAL), ("not-a-pidfd", errno.EBADF),
], ids=lambda v: v if isinstance(v, str) else errno.errorcode[v])
def test_send_signal_errors(case: str, err: int) -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD)
    fd, sig, uid = r.pidfd, SIGTERM, 0
    if case == "other-uid":
        uid = 1000
    elif case == "closed":
        k.fd_close(k.init, r.fd)
    elif case == "signal-65":
        sig = 65
    elif case == "signal-negative":
        sig = -3
    elif case == "not-a-pidfd":
        fd = 3
    expect_error(k, err, k.pidfd_send_signal, fd, sig, uid=uid)
    assert r.task.alive


def test_send_signal_through_a_thread_handle_ends_the_process() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    r = k.clone(p, CLONE_PIDFD | CLONE_THREAD)
    k.pidfd_send_signal(r.pidfd, SIGTERM)
    assert not p.alive and not r.task.alive


# -- exit information --------------------------------------------------------------------------


def test_exit_info_appears_only_at_reap_and_survives_closing_every_handle() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    fd = k.pidfd_open(k.root_ns, 2)
    pid = fd.pid
    k.pidfd_close(fd)
    k.pidfd_close(fd)  # closing twice is harmless
    again = k.pidfd_open(k.root_ns, 2)
    k.pidfd_close(again)
    k.kill(c, SIGSEGV)
    assert k.exit_info(pid) is None  # a zombie: no record yet
    k.waitid(k.init)
    assert k.exit_info(pid) == ExitInfo(SIGSEGV | 0x80, coredumped=True)
    assert pid.handles == 0 and not pid.allocated


def test_no_exit_info_for_a_pid_that_never_had_a_handle() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    pid = c.pid
    k.exit(c, 4)
    k.waitid(k.init)
    assert k.exit_info(pid) is None


@pytest.mark.parametrize(("end", "record"), [
    (lambda k, t: k.exit(t, 0), ExitInfo(0)),
    (lambda k, t: k.exit(t, 200), ExitInfo(200 << 8)),
    (lambda k, t: k.kill(t, SIGKILL), ExitInfo(SIGKILL)),
    (lambda k, t: k.kill(t, SIGSEGV), ExitInfo(SIGSEGV | 0x80, coredumped=True)),
], ids=["exit-0", "exit-200", "sigkill", "sigsegv"])
def test_exit_info_is_the_raw_wait_status(end, record: ExitInfo) -> None:
    k = new_kernel()
    r = k.clone(k.init, CLONE_PIDFD)
    end(k, r.task)
    k.waitid(k.init)
    assert k.exit_info(r.pidfd.pid) == record


# -- pidfs identity ----------------------------------------------------------------------------


def test_every_handle_of_one_process_has_the_same_inode_and_reuse_gets_a_new_one() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    a, b = k.pidfd_open(k.root_ns, 2), k.pidfd_open(k.root_ns, 2, PIDFD_NONBLOCK)
    assert a.ino == b.ino == c.pid.ino == 3
    assert k.find_pidfs(3) is c.pid
    k.exit(c)
    k.waitid(k.init)
    assert k.find_pidfs(3) is None  # the handle lookup fails once reaped
    k.set_last_pid(k.root_ns, 1)
    c2 = k.clone(k.init).task
    assert c2.pid.nr == 2 and c2.pid.ino == 4 and k.pidfd_open(k.root_ns, 2).ino == 4


def test_pidfs_inode_numbers_are_strictly_increasing_over_many_lives() -> None:
    k = new_kernel()
    seen = [k.init.pid.ino]
    for i in range(300):
        t = k.clone(k.init).task
        seen.append(t.pid.ino)
        if i % 3 == 0:
            seen.append(k.clone(t, CLONE_THREAD).task.pid.ino)
        k.exit_group(t)
        k.waitid(k.init)
    assert seen == list(range(2, 2 + len(seen)))
    assert k.find_pidfs(seen[-1]) is None and k.find_pidfs(2) is k.init.pid


def test_find_pidfs_finds_live_pids_of_threads_too() -> None:
    k = new_kernel()
    ps = spawn(k, k.init, 100)
    th = k.clone(ps[51], CLONE_THREAD).task  # an odd one: it stays
    for p in ps[::2]:
        k.exit(p)
    reap_all(k, k.init)
    assert k.find_pidfs(th.pid.ino) is th.pid
    assert all(k.find_pidfs(p.pid.ino) is (None if i % 2 == 0 else p.pid) for i, p in enumerate(ps))
    assert k.find_pidfs(10**9) is None


# -- xattrs (pidfd_xattr_test.c) ---------------------------------------------------------------


def test_set_get_list_remove_many_trusted_xattrs() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.exit(c)  # the selftest's child is a zombie during the test
    fd = k.pidfd_open(k.root_ns, 2)
    names = [f"trusted.testattr{i}" for i in range(10)]
    for i, name in enumerate(names):
        k.setxattr(fd.pid, name, b"value%d" % i)
    assert [k.getxattr(fd.pid, n) for n in names] == [b"value%d" % i for i in range(10)]
    assert k.listxattr(fd.pid) == sorted(names)
    k.removexattr(fd.pid, names[3])
    expect_error(k, errno.ENODATA, k.getxattr, fd.pid, names[3])
    expect_error(k, errno.ENODATA, k.removexattr, fd.pid, names[3])
    k.setxattr(fd.pid, names[0], b"")
    assert k.getxattr(fd.pid, names[0]) == b""


def test_xattrs_persist_after_every_handle_is_closed() -> None:
    k = new_kernel()
    k.clone(k.init)
    fd = k.pidfd_open(k.root_ns, 2)
    k.setxattr(fd.pid, "trusted.persistent", b"hello")
    k.pidfd_close(fd)
    again = k.pidfd_open(k.root_ns, 2)
    assert again.pid is fd.pid
    assert k.getxattr(again.pid, "trusted.persistent") == b"hello"
    assert k.listxattr(again.pid) == ["trusted.persistent"]


def test_xattrs_on_a_pid_without_any() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    assert k.listxattr(c.pid) == []
    expect_error(k, errno.ENODATA, k.getxattr, c.pid, "trusted.none")
    expect_error(k, errno.ENODATA, k.removexattr, c.pid, "trusted.none")


@pytest.mark.parametrize(("name", "err"), [
    ("user.x", errno.EOPNOTSUPP), ("security.x", errno.EOPNOTSUPP), ("system.x", errno.EOPNOTSUPP),
    ("trustedx", errno.EOPNOTSUPP), ("trusted.", errno.EINVAL), ("", errno.ERANGE),
    ("trusted." + "a" * 248, errno.ERANGE), (b"trusted.x", errno.EINVAL), (None, errno.EINVAL),
], ids=["user", "security", "system", "no-dot", "empty-suffix", "empty", "256-bytes", "bytes-name",
        "none"])
def test_xattr_names_pidfs_refuses(name, err: int) -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    for call in (lambda: k.setxattr(c.pid, name, b"v"), lambda: k.getxattr(c.pid, name),
                 lambda: k.removexattr(c.pid, name)):
        e = expect_error(k, err, call)
        assert repr(name)[:40] in str(e) or "bytes" in str(e)


def test_longest_xattr_name_is_255_bytes() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    name = "trusted." + "a" * 247
    k.setxattr(c.pid, name, b"v")
    assert k.getxattr(c.pid, name) == b"v"


def test_xattr_values_are_bytes_of_at_most_65536() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.setxattr(c.pid, "trusted.big", b"x" * 65536)
    k.setxattr(c.pid, "trusted.ba", bytearray(b"ab"))
    assert k.getxattr(c.pid, "trusted.ba") == b"ab"
    expect_error(k, errno.E2BIG, k.setxattr, c.pid, "trusted.big", b"x" * 65537)
    e = expect_error(k, errno.EINVAL, k.setxattr, c.pid, "trusted.s", "text")
    assert "'text'" in str(e)


def test_trusted_xattrs_need_privilege() -> None:
    k = new_kernel()
    c = k.clone(k.init).task
    k.setxattr(c.pid, "trusted.a", b"1")
    expect_error(k, errno.EPERM, k.setxattr, c.pid, "trusted.b", b"2", uid=1000)
    expect_error(k, errno.ENODATA, k.getxattr, c.pid, "trusted.a", uid=1000)
    expect_error(k, errno.EPERM, k.removexattr, c.pid, "trusted.a", uid=1000)
    assert k.listxattr(c.pid, uid=1000) == []
    assert k.getxattr(c.pid, "trusted.a") == b"1"
