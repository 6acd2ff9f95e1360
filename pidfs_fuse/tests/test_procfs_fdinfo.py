"""fdinfo of pidfds (fs/pidfs.c pidfd_show_fdinfo), the fd directory, and the links
(cwd, exe, root, ns/pid, ns/pid_for_children).

LINUX_PIDFD_FDINFO is a real pidfd's fdinfo on this machine's Linux 6.18
(../shared/reference/linux-6.18-proc/pidfd_facts.txt), alive and after reaping.
"""

from __future__ import annotations

import errno
import re
from types import SimpleNamespace

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_PIDFD, CLONE_THREAD, PIDFD_NONBLOCK, PIDFD_THREAD, Kernel, KernelError
from pidfs_fuse.procfs import (
    MountOptions,
    View,
    list_fds,
    ns_link,
    pidfd_pid_lines,
    readlink_cwd,
    readlink_exe,
    readlink_fd,
    readlink_ns_pid,
    readlink_ns_pid_for_children,
    readlink_root,
    show_fdinfo,
    show_pidfd_fdinfo,
)

LINUX_PIDFD_FDINFO = "pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t15876\nPid:\t15875\nNSpid:\t15875\n"
LINUX_PIDFD_FDINFO_REAPED = "pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t15876\nPid:\t-1\nNSpid:\t-1\n"


def world() -> SimpleNamespace:
    k = Kernel()
    sh = k.clone(k.init, comm="bash").task  # 2
    app = k.clone(sh, comm="app").task  # 3
    ca = k.clone(sh, CLONE_NEWPID, comm="ca").task  # 4; 1 in A
    cb = k.clone(sh, CLONE_NEWPID, comm="cb").task  # 5; 1 in B
    b2 = k.clone(cb, comm="b2").task  # 6; 2 in B
    inner = k.clone(b2, CLONE_NEWPID, comm="inner").task  # 7; 3 in B; 1 in C
    root = View(k, k.root_ns, MountOptions())
    return SimpleNamespace(k=k, sh=sh, app=app, ca=ca, cb=cb, b2=b2, inner=inner, root=root,
                           A=root.with_ns(ca.pid.ns), B=root.with_ns(cb.pid.ns),
                           C=root.with_ns(inner.pid.ns))


def shape(text: str) -> str:
    return re.sub(r"-?\d+", "N", text)


def test_fdinfo_of_a_live_process_has_linux_shape() -> None:
    w = world()
    fd = w.k.pidfd_open(w.k.root_ns, 3)
    text = show_pidfd_fdinfo(w.root, fd).decode()
    assert text == f"pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t{fd.pid.ino}\nPid:\t3\nNSpid:\t3\n"
    assert shape(text) == shape(LINUX_PIDFD_FDINFO)


def test_fdinfo_after_reap_shows_minus_one() -> None:
    w = world()
    fd = w.k.pidfd_open(w.k.root_ns, 3)
    w.k.exit_group(w.app, 0)
    assert show_pidfd_fdinfo(w.root, fd).decode().endswith("Pid:\t3\nNSpid:\t3\n")  # zombie
    w.k.waitid(w.sh)
    text = show_pidfd_fdinfo(w.root, fd).decode()
    assert text == f"pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t{fd.pid.ino}\nPid:\t-1\nNSpid:\t-1\n"
    assert shape(text) == shape(LINUX_PIDFD_FDINFO_REAPED)


@pytest.mark.parametrize(
    ("view", "target", "lines"),
    [
        ("root", "inner", "Pid:\t7\nNSpid:\t7\t3\t1\n"),
        ("B", "inner", "Pid:\t3\nNSpid:\t3\t1\n"),
        ("C", "inner", "Pid:\t1\nNSpid:\t1\n"),
        ("B", "b2", "Pid:\t2\nNSpid:\t2\n"),
        ("A", "inner", "Pid:\t0\nNSpid:\t0\n"),  # sibling namespace: not visible
        ("A", "app", "Pid:\t0\nNSpid:\t0\n"),  # the parent namespace's pid: not visible
        ("C", "b2", "Pid:\t0\nNSpid:\t0\n"),
    ],
    ids=["root-sees-3-levels", "middle-sees-2", "innermost-sees-1", "middle-own-level",
         "sibling-ns-0", "ancestor-pid-0", "outer-pid-from-inner-0"],
)
def test_fdinfo_pid_lines_across_namespaces(view: str, target: str, lines: str) -> None:
    w = world()
    t = getattr(w, target)
    fd = w.k.pidfd_open(w.k.root_ns, t.pid.numbers[0])
    assert pidfd_pid_lines(getattr(w, view), fd.pid) == lines
    assert show_pidfd_fdinfo(getattr(w, view), fd).decode().endswith(lines)


def test_fdinfo_flags_show_pidfd_thread_and_nonblock() -> None:
    w = world()
    th = w.k.clone(w.app, CLONE_THREAD).task
    fd = w.k.pidfd_open(w.k.root_ns, th.pid.nr, PIDFD_THREAD)
    assert "flags:\t02000202\n" in show_pidfd_fdinfo(w.root, fd).decode()
    fd = w.k.pidfd_open(w.k.root_ns, 3, PIDFD_NONBLOCK)
    assert "flags:\t02004002\n" in show_pidfd_fdinfo(w.root, fd).decode()


def test_fd_directory_of_a_process_holding_a_pidfd() -> None:
    w = world()
    res = w.k.clone(w.app, CLONE_PIDFD, comm="kid")
    assert list_fds(w.app) == [res.fd] == [3]
    assert readlink_fd(w.root, w.app, 3) == "anon_inode:[pidfd]"
    assert show_fdinfo(w.root, w.app, 3) == show_pidfd_fdinfo(w.root, res.pidfd)
    assert f"Pid:\t{res.task.pid.nr}\n".encode() in show_fdinfo(w.root, w.app, 3)
    for call in (lambda: show_fdinfo(w.root, w.app, 4), lambda: readlink_fd(w.root, w.app, 0)):
        with pytest.raises(KernelError) as e:
            call()
        assert e.value.errno == errno.ENOENT
    assert list_fds(w.sh) == []
    w.k.exit_group(w.app, 0)
    assert list_fds(w.app) == []


def test_links_of_a_live_process_and_enoent_once_exited() -> None:
    w = world()
    g = w.app.group
    g.cwd, g.exe, g.root = "/srv", "/usr/bin/app", "/"
    assert (readlink_cwd(w.root, w.app), readlink_exe(w.root, w.app),
            readlink_root(w.root, w.app)) == ("/srv", "/usr/bin/app", "/")
    g.exe = ""
    with pytest.raises(KernelError) as e:
        readlink_exe(w.root, w.app)
    assert e.value.errno == errno.ENOENT
    w.k.exit_group(w.app, 0)
    for fn in (readlink_cwd, readlink_exe, readlink_root, readlink_ns_pid_for_children):
        with pytest.raises(KernelError) as e:
            fn(w.root, w.app)
        assert e.value.errno == errno.ENOENT, fn.__name__
    assert readlink_ns_pid(w.root, w.app) == ns_link(w.k.root_ns)  # a zombie keeps its pid ns


def test_ns_links() -> None:
    w = world()
    assert ns_link(w.k.root_ns) == "pid:[4026531836]"
    assert readlink_ns_pid(w.root, w.ca) == f"pid:[{w.ca.pid.ns.inum}]"
    assert readlink_ns_pid(w.root, w.app) == "pid:[4026531836]"
    assert readlink_ns_pid_for_children(w.root, w.app) == "pid:[4026531836]"
    ns = w.k.unshare_pid_ns(w.app)
    assert readlink_ns_pid(w.root, w.app) == "pid:[4026531836]"
    # Linux (pidns_for_children_get) hides a namespace that has no init yet: ENOENT until the
    # first child is created (found by the differential oracle, issue 14)
    with pytest.raises(KernelError) as e:
        readlink_ns_pid_for_children(w.root, w.app)
    assert e.value.errno == errno.ENOENT
    w.k.clone(w.app)
    assert readlink_ns_pid_for_children(w.root, w.app) == f"pid:[{ns.inum}]"
