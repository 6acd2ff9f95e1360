"""Handle files (SPEC §3 "Handle files", issue 4) on a real mount, driven by real clients.

bash ``read``, ``cat``, Python ``select.poll``/``select.select``/``select.epoll`` and
``os.*xattr`` on ``/<pid>/pidfd``, ``/<pid>/task/<tid>/pidfd`` and ``/.pidfs/<ino>``. Every
client is started before the process it waits on ends and is seen blocked (``waiting.py``)
before the control command that ends it runs, so each test exercises the wake-up path.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import Mount, run_cli
from .waiting import (
    SYS_EPOLL,
    SYS_POLL,
    SYS_SELECT,
    blocked_reading,
    children,
    wait_until,
    when_blocked,
)

EXITED = select.POLLIN | select.POLLRDNORM
REAPED = select.POLLIN | select.POLLRDNORM | select.POLLHUP


def handle(m: Mount, pid: int) -> str:
    return f"{m.path}/{pid}/pidfd"


def errno_of(fn, *args, **kw) -> int:
    try:
        fn(*args, **kw)
    except OSError as e:
        assert e.errno is not None
        return e.errno
    return 0


def poll_now(fd: int) -> int:
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLRDNORM)
    got = p.poll(0)
    return got[0][1] if got else 0


def reap(m: Mount, pid: int, parent: int = 1) -> None:
    assert m.ctl("wait", str(parent), f"pid={pid}").split()[0] == str(pid)


def text_of(fd: int) -> dict[str, str]:
    lines = os.pread(fd, 4096, 0).decode().splitlines()
    out = {"how": lines[0]}
    for ln in lines[1:]:
        k, v = ln.split(":\t", 1)
        out[k] = v
    return out


def collect(ep: select.epoll, n: int, timeout: float = 20) -> dict[int, int]:
    """Events from ``ep`` until ``n`` descriptors reported (each notification wakes the waiter
    on its own, so one epoll_wait may return before the others were notified)."""
    got: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.update(ep.poll(max(0.0, deadline - time.monotonic())))
    return got


def rest_of(p: subprocess.Popen) -> tuple[int, str]:
    """The rest of a client's output (after readline(), so not communicate(), which would skip
    what the buffer already holds) and its exit status. The client runs under `timeout`."""
    out = p.stdout.read()
    return p.wait(timeout=30), out


# -- opening -------------------------------------------------------------------------------------

def test_open_binds_and_st_ino_is_the_pidfs_inode(mnt):
    p = mnt.new(1)
    path = handle(mnt, p)
    a, b = os.open(path, os.O_RDONLY), os.open(path, os.O_RDWR)
    try:
        ino = os.fstat(a).st_ino
        assert os.fstat(b).st_ino == ino == os.stat(path).st_ino
        assert os.stat(f"{mnt.path}/{p}/task/{p}/pidfd").st_ino == ino
        assert ino != os.stat(handle(mnt, mnt.new(1))).st_ino
        mnt.ctl("exit_group", str(p), "4")
        assert text_of(a) == {"how": "exited 4", "Pid": str(p), "NSpid": str(p), "Ino": str(ino)}
    finally:
        os.close(a)
        os.close(b)


def test_open_errnos_follow_pidfd_open(mnt):
    p = mnt.new(1)
    t = int(mnt.ctl("clone", str(p), "thread").split()[0])
    # a thread through the process path: pidfd_open() without PIDFD_THREAD gives ENOENT
    assert errno_of(os.open, handle(mnt, t), os.O_RDONLY) == errno.ENOENT
    os.close(os.open(f"{mnt.path}/{p}/task/{t}/pidfd", os.O_RDONLY))
    # a reaped pid: the directory held open still names it, the open gets ESRCH
    dfd = os.open(f"{mnt.path}/{p}", os.O_RDONLY | os.O_DIRECTORY)
    try:
        mnt.ctl("exit_group", str(p), "0")
        os.close(os.open("pidfd", os.O_RDONLY, dir_fd=dfd))  # a zombie still opens
        reap(mnt, p)
        assert errno_of(os.open, "pidfd", os.O_RDONLY, dir_fd=dfd) == errno.ESRCH
    finally:
        os.close(dfd)
    assert errno_of(os.open, handle(mnt, p), os.O_RDONLY) == errno.ENOENT


# -- bash --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("end", "said"), [(("exit_group", "7"), "exited 7"),
                                           (("kill", "9"), "killed 9"),
                                           (("kill", "SEGV"), "dumped 11")],
                         ids=["exit-7", "kill-9", "segv-dumps"])
def test_bash_read_blocks_until_the_process_ends(mnt, procs, end, said):
    p = mnt.new(1)
    path = handle(mnt, p)
    script = f'echo $$; read -r how code < {path}; echo "$how $code"'
    sh = procs.popen(["timeout", "30", "bash", "-c", script], stdout=subprocess.PIPE, text=True)
    bash = int(sh.stdout.readline())
    wait_until(lambda: blocked_reading(bash, 0, path), "bash sleeps reading the handle")
    assert sh.poll() is None
    mnt.ctl(end[0], str(p), end[1])
    assert rest_of(sh) == (0, said + "\n")


def test_bash_script_waits_on_several_handles(mnt, procs):
    pids = [mnt.new(1) for _ in range(3)]
    script = textwrap.dedent(f"""\
        for p in "$@"; do
            ( read -r how code < "{mnt.path}/$p/pidfd"; echo "$p $how $code" ) &
        done
        wait
        echo done
        """)
    sh = procs.popen(["timeout", "60", "bash", "-c", script, "bash", *map(str, pids)],
                     stdout=subprocess.PIPE, text=True)
    wait_until(lambda: len(children(sh.pid)) == 1 and len(children(children(sh.pid)[0])) == 3,
               "bash started three readers")
    readers = children(children(sh.pid)[0])
    wait_until(lambda: sum(any(blocked_reading(r, 0, handle(mnt, p)) for p in pids)
                           for r in readers) == 3, "all three readers sleep on their handles")
    for p, end, said in [(pids[2], ("exit_group", "3"), "exited 3"),
                         (pids[0], ("kill", "TERM"), "killed 15"),
                         (pids[1], ("exit_group", "0"), "exited 0")]:
        mnt.ctl(end[0], str(p), end[1])
        assert sh.stdout.readline() == f"{p} {said}\n"  # each wakes alone, in exit order
    assert rest_of(sh) == (0, "done\n")


# -- poll, select, epoll -----------------------------------------------------------------------

def test_poll_reports_zero_then_pollin_then_hup(mnt):
    p = mnt.new(1)
    fd = os.open(handle(mnt, p), os.O_RDONLY)
    try:
        pl = select.poll()
        pl.register(fd, select.POLLIN | select.POLLRDNORM)
        t0 = time.monotonic()
        assert pl.poll(0) == []  # poll never blocks
        assert select.select([fd], [], [fd], 0) == ([], [], [])
        assert time.monotonic() - t0 < 1
        waker = when_blocked(os.getpid(), SYS_POLL, lambda: mnt.ctl("exit_group", str(p), "2"))
        assert pl.poll(20_000) == [(fd, EXITED)]
        woke = time.monotonic()
        waker.join(10)
        assert isinstance(waker.result, float), waker.result
        assert woke - waker.result < 1.0  # woken by the notification, not by some later timer
        assert pl.poll(0) == [(fd, EXITED)]  # level: stays readable
        hup = select.poll()
        hup.register(fd, 0)  # nothing asked: only POLLHUP wakes it
        assert hup.poll(0) == []
        waker = when_blocked(os.getpid(), SYS_POLL, lambda: reap(mnt, p))
        assert hup.poll(20_000) == [(fd, select.POLLHUP)]
        waker.join(10)
        assert pl.poll(0) == [(fd, REAPED)]
    finally:
        os.close(fd)


def test_select_wakes_when_the_process_exits(mnt):
    p = mnt.new(1)
    fd = os.open(handle(mnt, p), os.O_RDONLY)
    try:
        waker = when_blocked(os.getpid(), SYS_SELECT, lambda: mnt.ctl("kill", str(p), "INT"))
        assert select.select([fd], [], [], 20) == ([fd], [], [])
        waker.join(10)
        assert isinstance(waker.result, float), waker.result
        assert os.read(fd, 9) == b"killed 2\n"
    finally:
        os.close(fd)


def test_poll_waits_for_the_whole_thread_group(mnt):
    p = mnt.new(1)
    t = int(mnt.ctl("clone", str(p), "thread").split()[0])
    proc_fd = os.open(handle(mnt, p), os.O_RDONLY)
    thr_fd = os.open(f"{mnt.path}/{p}/task/{t}/pidfd", os.O_RDONLY)
    try:
        mnt.ctl("exit", str(p), "3")  # the leader leaves, its thread runs on
        assert poll_now(proc_fd) == 0
        os.close(os.open(handle(mnt, p), os.O_RDONLY))  # the zombie leader still opens
        waker = when_blocked(os.getpid(), SYS_POLL, lambda: mnt.ctl("exit", str(t), "5"))
        pl = select.poll()
        pl.register(proc_fd, select.POLLIN | select.POLLRDNORM)
        assert pl.poll(20_000) == [(proc_fd, EXITED)]
        waker.join(10)
        # a thread is reaped by itself at exit: its handle hangs up at once
        assert poll_now(thr_fd) == REAPED
        assert text_of(thr_fd)["how"] == "exited 5"
        assert text_of(thr_fd)["Pid"] == "-1"
        assert text_of(proc_fd)["how"] == "exited 3"  # wait()'s answer: the leader's code
    finally:
        os.close(proc_fd)
        os.close(thr_fd)


def test_epoll_level_and_edge_triggered_and_every_poller_woken(mnt):
    p = mnt.new(1)
    fds = [os.open(handle(mnt, p), os.O_RDONLY) for _ in range(2)]
    lt, et, again = select.epoll(), select.epoll(), select.epoll()
    try:
        for fd in fds:
            lt.register(fd, select.EPOLLIN | select.EPOLLRDNORM)
            et.register(fd, select.EPOLLIN | select.EPOLLRDNORM | select.EPOLLET)
        again.register(fds[0], select.EPOLLIN | select.EPOLLONESHOT)
        assert lt.poll(0) == et.poll(0) == again.poll(0) == []
        waker = when_blocked(os.getpid(), SYS_EPOLL, lambda: mnt.ctl("kill", str(p), "KILL"))
        assert collect(et, 2) == {fds[0]: EXITED, fds[1]: EXITED}
        waker.join(10)
        assert et.poll(0) == []  # the edge was consumed
        assert sorted(lt.poll(0)) == sorted(lt.poll(0)) == [(fds[0], EXITED), (fds[1], EXITED)]
        assert again.poll(0) == [(fds[0], select.EPOLLIN)]
        assert again.poll(0) == []  # one shot
        waker = when_blocked(os.getpid(), SYS_EPOLL, lambda: reap(mnt, p))
        assert collect(et, 2) == {fds[0]: REAPED, fds[1]: REAPED}  # a new edge: HUP
        waker.join(10)
        again.modify(fds[0], select.EPOLLIN | select.EPOLLONESHOT)
        assert again.poll(0) == [(fds[0], select.EPOLLIN | select.EPOLLHUP)]
    finally:
        for ep in (lt, et, again):
            ep.close()
        for fd in fds:
            os.close(fd)


def test_ten_thousand_handles_in_one_epoll_all_reported_after_a_mass_kill(mnt):
    n = 10_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 1000
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    init = mnt.new(1, "newpid")  # a namespace: killing its init kills every member
    pids = [int(x) for x in mnt.ctl("clone", str(init), f"count={n}").split()]
    assert len(pids) == n
    ep = select.epoll()
    fds: dict[int, int] = {}
    try:
        for pid in pids:
            fd = os.open(handle(mnt, pid), os.O_RDONLY | os.O_NONBLOCK)
            fds[fd] = pid
            ep.register(fd, select.EPOLLIN | select.EPOLLRDNORM)
        assert ep.poll(0) == []
        mnt.ctl("kill", str(init), "KILL")
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while len(seen) < n and time.monotonic() < deadline:
            for fd, ev in ep.poll(1, 4096):
                seen[fd] = ev
                ep.unregister(fd)
        assert len(seen) == n
        assert {ev & EXITED for ev in seen.values()} == {EXITED}
        some = next(iter(fds))
        assert os.read(some, 100).decode().startswith("killed 9\n")
    finally:
        ep.close()
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- read ----------------------------------------------------------------------------------------

def test_nonblocking_read_is_eagain_while_running(mnt):
    p = mnt.new(1)
    fd = os.open(handle(mnt, p), os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert errno_of(os.read, fd, 100) == errno.EAGAIN
        mnt.ctl("exit_group", str(p), "1")
        assert os.read(fd, 100).decode().splitlines()[:2] == ["exited 1", f"Pid:\t{p}"]
        assert os.read(fd, 100) == b""  # end of this rendering
    finally:
        os.close(fd)


def test_read_after_reap_has_pid_minus_one_and_the_raw_exit_code(mnt):
    p = mnt.new(1, "newpid")
    zombie, later = (os.open(handle(mnt, p), os.O_RDONLY) for _ in range(2))
    try:
        ino = str(os.fstat(zombie).st_ino)
        mnt.ctl("exit_group", str(p), "7")
        assert text_of(zombie) == {"how": "exited 7", "Pid": str(p), "NSpid": f"{p}\t1", "Ino": ino}
        reap(mnt, p)
        # direct_io: the second descriptor is not served the page the first one read
        assert os.read(later, 4096).decode() == f"exited 7\nPid:\t-1\nNSpid:\t-1\nIno:\t{ino}\nExitCode:\t{7 << 8}\n"
        assert text_of(zombie)["ExitCode"] == "1792"
    finally:
        os.close(zombie)
        os.close(later)


def test_a_small_reader_sees_one_consistent_text(mnt):
    p = mnt.new(1)
    fd = os.open(handle(mnt, p), os.O_RDONLY)
    try:
        mnt.ctl("exit_group", str(p), "9")
        head = os.read(fd, 12)
        reap(mnt, p)  # the text changes now, but this reading continues the first rendering
        rest = os.read(fd, 4096)
        assert (head + rest).decode().splitlines()[1] == f"Pid:\t{p}"
        assert os.pread(fd, 4096, 0).decode().splitlines()[1] == "Pid:\t-1"
    finally:
        os.close(fd)


def test_two_hundred_blocked_readers_do_not_stall_the_mount(mnt, procs):
    pids = [int(x) for x in mnt.ctl("clone", "1", "count=20").split()]
    readers = [(procs.popen(["cat", handle(mnt, pids[i % 20])], stdout=subprocess.PIPE), pids[i % 20])
               for i in range(200)]
    wait_until(lambda: all(blocked_reading(r.pid, 3, handle(mnt, pid)) for r, pid in readers),
               "200 cats sleep on their handles", timeout=60)
    for argv in (["ls", mnt.path], ["cat", f"{mnt.path}/1/status"], ["ls", "-l", f"{mnt.path}/{pids[0]}"],
                 ["cat", f"{mnt.path}/loadavg"]):
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, timeout=10)
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert took < 2.0, f"{argv} took {took:.2f}s with 200 readers blocked"
    assert all(r.poll() is None for r, _ in readers)
    err, reply = mnt.ctl_raw("".join(f"exit_group {p} {i}\n" for i, p in enumerate(pids)))
    assert err == 0, reply
    for r, pid in readers:
        out, _ = r.communicate(timeout=30)
        assert out.decode().splitlines()[0] == f"exited {pids.index(pid)}"


# -- write ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "said"), [(b"TERM", "killed 15"), (b"SIGKILL\n", "killed 9"),
                                            (b"15", "killed 15"), (b"segv", "dumped 11")],
                         ids=["name", "sig-name-newline", "number", "lowercase"])
def test_write_sends_the_signal(mnt, text, said):
    p = mnt.new(1)
    fd = os.open(handle(mnt, p), os.O_RDWR)
    try:
        assert os.write(fd, text) == len(text)
        assert poll_now(fd) == EXITED
        assert text_of(fd)["how"] == said
    finally:
        os.close(fd)


def test_write_errnos(mnt):
    p = mnt.new(1)
    fd = os.open(handle(mnt, p), os.O_WRONLY)
    try:
        for bad in (b"NOPE", b"65", b"-1", b"\n", b"9 9"):
            assert errno_of(os.write, fd, bad) == errno.EINVAL, bad
        assert os.write(fd, b"0") == 1  # signal 0: the probe
        assert poll_now(fd) == 0
        mnt.ctl("exit_group", str(p), "0")
        assert os.write(fd, b"KILL") == 4  # a zombie takes the signal and ignores it
        reap(mnt, p)
        assert errno_of(os.write, fd, b"KILL") == errno.ESRCH
        assert errno_of(os.write, fd, b"0") == errno.ESRCH
    finally:
        os.close(fd)
    # `echo TERM > pidfd` opens with O_TRUNC: that must not get in the way
    q = mnt.new(1)
    subprocess.run(["sh", "-c", f"echo TERM > {handle(mnt, q)}"], check=True, timeout=10)
    assert mnt.ctl("show", str(q)).count("State:\tZ") == 1


SIGNAL_AS_UID = """\
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY)
    os.write(fd, sys.argv[2].encode())
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def test_write_is_eperm_for_a_uid_that_may_not_signal(mount_table):
    py = "/usr/bin/python3"
    if not os.access(py, os.X_OK):
        pytest.skip("needs /usr/bin/python3 runnable by uid 1000")
    m = mount_table("-o", "allow_other", public=True)
    root_owned = m.new(1)
    own = m.new(1, "uid=1000")

    def as_1000(pid: int, sig: str) -> str:
        r = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", py, "-c",
                            SIGNAL_AS_UID, handle(m, pid), sig], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert as_1000(root_owned, "TERM") == "EPERM"
    assert as_1000(root_owned, "0") == "EPERM"
    assert "State:\tS" in m.ctl("show", str(root_owned))
    assert as_1000(own, "TERM") == "ok"
    assert "State:\tZ" in m.ctl("show", str(own))


# -- reuse safety, /.pidfs, xattrs ---------------------------------------------------------------

def test_a_handle_never_reaches_the_next_process_with_its_number(mnt):
    p = mnt.new(1)
    old = os.open(handle(mnt, p), os.O_RDWR)
    try:
        old_ino = os.fstat(old).st_ino
        mnt.ctl("exit_group", str(p), "0")
        reap(mnt, p)
        assert mnt.new(1, f"set_tid={p}") == p  # the number is given to a new process
        new = os.open(handle(mnt, p), os.O_RDWR)
        try:
            assert poll_now(old) == REAPED
            assert poll_now(new) == 0
            assert errno_of(os.write, old, b"KILL") == errno.ESRCH
            assert poll_now(new) == 0 and "State:\tS" in mnt.ctl("show", str(p))
            assert os.fstat(new).st_ino > old_ino == os.fstat(old).st_ino
            assert text_of(old)["Pid"] == "-1"
        finally:
            os.close(new)
    finally:
        os.close(old)


def test_pidfs_reopens_by_inode_while_the_pid_lives(mnt):
    p = mnt.new(1)
    ino = os.stat(handle(mnt, p)).st_ino
    by_ino = f"{mnt.path}/.pidfs/{ino}"
    assert os.listdir(f"{mnt.path}/.pidfs") == []  # looked up, never listed
    fd = os.open(by_ino, os.O_RDWR)  # no other handle is open
    try:
        assert os.fstat(fd).st_ino == ino
        assert poll_now(fd) == 0
        mnt.ctl("exit_group", str(p), "6")
        os.close(os.open(by_ino, os.O_RDONLY))  # a zombie
        assert text_of(fd)["how"] == "exited 6"
        reap(mnt, p)
        assert errno_of(os.stat, by_ino) == errno.ENOENT
        assert errno_of(os.open, by_ino, os.O_RDONLY) == errno.ENOENT
        assert poll_now(fd) == REAPED
    finally:
        os.close(fd)
    for bad in ("0", "1", "abc", str(10**30), "-5"):
        assert errno_of(os.stat, f"{mnt.path}/.pidfs/{bad}") == errno.ENOENT, bad


def test_trusted_xattrs_live_as_long_as_the_pid(mnt):
    p = mnt.new(1)
    path = handle(mnt, p)
    fd = os.open(path, os.O_RDONLY)
    os.setxattr(fd, "trusted.owner", b"build-42")
    os.close(fd)  # no handle is open any more
    ino = os.stat(path).st_ino
    by_ino = f"{mnt.path}/.pidfs/{ino}"
    assert os.getxattr(path, "trusted.owner") == b"build-42"
    assert os.getxattr(by_ino, "trusted.owner") == b"build-42"
    os.setxattr(by_ino, "trusted.note", b"")
    assert sorted(os.listxattr(path)) == ["trusted.note", "trusted.owner"]
    assert errno_of(os.getxattr, path, "trusted.missing") == errno.ENODATA
    assert errno_of(os.removexattr, path, "trusted.missing") == errno.ENODATA
    assert errno_of(os.setxattr, path, "trusted.owner", b"x", os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.setxattr, path, "trusted.new", b"x", os.XATTR_REPLACE) == errno.ENODATA
    assert errno_of(os.setxattr, path, "user.owner", b"x") == errno.EOPNOTSUPP
    os.removexattr(path, "trusted.note")
    assert os.listxattr(path) == ["trusted.owner"]
    mnt.ctl("exit_group", str(p), "0")
    assert os.getxattr(path, "trusted.owner") == b"build-42"  # a zombie keeps them
    reap(mnt, p)
    assert errno_of(os.getxattr, path, "trusted.owner") == errno.ENOENT
    assert errno_of(os.listxattr, f"{mnt.path}/1/status") == 0
    assert errno_of(os.getxattr, f"{mnt.path}/1/status", "trusted.owner") == errno.EOPNOTSUPP


# -- fdinfo of emulated processes holding handles ---------------------------------------------

def fdinfo(m: Mount, holder: str, fd: int) -> str:
    with open(f"{m.path}/{holder}/fdinfo/{fd}") as f:
        return f.read()


def test_fdinfo_of_held_handles_is_linux_shaped(mnt):
    holder = mnt.new(1)
    child = int(mnt.ctl("clone", str(holder), "pidfd").split()[0])
    inner = int(mnt.ctl("clone", str(holder), "newpid", "pidfd").split()[0])
    grandchild = int(mnt.ctl("clone", str(inner), "pidfd").split()[0])
    assert sorted(os.listdir(f"{mnt.path}/{holder}/fd")) == ["3", "4"]
    assert os.readlink(f"{mnt.path}/{holder}/fd/3") == "anon_inode:[pidfd]"
    ino = {p: os.stat(handle(mnt, p)).st_ino for p in (child, inner, grandchild)}
    head = "pos:\t0\nflags:\t02000002\nmnt_id:\t4\n"
    assert fdinfo(mnt, str(holder), 3) == f"{head}ino:\t{ino[child]}\nPid:\t{child}\nNSpid:\t{child}\n"
    assert fdinfo(mnt, str(holder), 4) == f"{head}ino:\t{ino[inner]}\nPid:\t{inner}\nNSpid:\t{inner}\t1\n"
    assert fdinfo(mnt, str(inner), 3) == f"{head}ino:\t{ino[grandchild]}\nPid:\t{grandchild}\nNSpid:\t{grandchild}\t2\n"
    inum = os.readlink(f"{mnt.path}/{inner}/ns/pid_for_children").split("[")[1].rstrip("]")
    seen_inside = fdinfo(mnt, f".pidns/{inum}/1", 3)
    assert seen_inside == f"{head}ino:\t{ino[grandchild]}\nPid:\t2\nNSpid:\t2\n"
    mnt.ctl("exit_group", str(child), "0")
    assert fdinfo(mnt, str(holder), 3).endswith(f"Pid:\t{child}\nNSpid:\t{child}\n")  # zombie
    reap(mnt, child, holder)
    assert fdinfo(mnt, str(holder), 3) == f"{head}ino:\t{ino[child]}\nPid:\t-1\nNSpid:\t-1\n"


FDINFO_AS_UID = r"""
import errno, json, os, sys

def ask(fn):
    try:
        return fn()
    except OSError as e:
        return errno.errorcode[e.errno]

print(json.dumps({p: [ask(lambda: oct(os.stat(p).st_mode)), ask(lambda: open(p).read()[:4]),
                      ask(lambda: len(os.listdir(os.path.dirname(p))))] for p in sys.argv[1:]}))
"""


def _fdinfo_as_1000(*paths: str) -> list[list]:
    r = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                        "/usr/bin/python3", "-c", FDINFO_AS_UID, *paths],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    return [got[p] for p in paths]


def test_fdinfo_is_0444_and_guarded_by_ptrace_as_on_linux(mount_table):
    """fdinfo/<n> is 0444 on Linux, yet another user's walk through fdinfo/ is refused
    (proc_fdinfo_permission): stat, open and listing all give EACCES, even after root's walk
    left the names in the kernel's cache. The same three questions of the real /proc first."""
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("needs /usr/bin/python3 runnable by uid 1000")
    rootp = subprocess.Popen(["sleep", "60"])
    ownp = subprocess.Popen(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                             "sleep", "60"])
    try:
        deadline = time.monotonic() + 10  # setpriv has exec'd sleep once its comm says so
        comm = f"/proc/{ownp.pid}/comm"
        while Path(comm).read_text() != "sleep\n" and time.monotonic() < deadline:
            time.sleep(0.01)
        real = _fdinfo_as_1000(f"/proc/{rootp.pid}/fdinfo/0", f"/proc/{ownp.pid}/fdinfo/0")
    finally:
        for p in (rootp, ownp):
            p.kill()
            p.wait()
    assert real == [["EACCES", "EACCES", "EACCES"], ["0o100444", "pos:", 3]]
    m = mount_table("-o", "allow_other", public=True)
    theirs = m.new(1)
    m.ctl("clone", str(theirs), "pidfd")
    mine = m.new(1, "uid=1000")
    m.ctl("clone", str(mine), "pidfd")
    # root walks first: its entries must not carry uid 1000 past the check
    assert os.listdir(f"{m.path}/{theirs}/fdinfo") == ["3"]
    assert oct(os.stat(f"{m.path}/{theirs}/fdinfo/3").st_mode) == "0o100444"
    got = _fdinfo_as_1000(f"{m.path}/{theirs}/fdinfo/3", f"{m.path}/{mine}/fdinfo/3",
                          f"{m.path}/{theirs}/fdinfo/9")
    assert got == [["EACCES", "EACCES", "EACCES"], ["0o100444", "pos:", 1],
                   ["EACCES", "EACCES", "EACCES"]]


SIBLING_SERVER = """\
import sys
from pidfs_fuse.kernel import CLONE_NEWPID, Kernel
from pidfs_fuse.mount.fs import PidFs
from pidfs_fuse.mount.server import run

k = Kernel()
a = k.clone(k.init, CLONE_NEWPID).task       # init of namespace A
b = k.clone(k.init, CLONE_NEWPID).task       # init of namespace B, A's sibling
holder = k.clone(a).task                     # a process of A (pid 2 there)
outer = k.clone(k.init).task                 # a process of the root namespace only
# handles that reached the holder from outside (SCM_RIGHTS on Linux; no clone gives them)
k.fd_install(holder, k.pidfd_get(b.pid))     # fd 3: B's init
k.fd_install(holder, k.pidfd_get(outer.pid)) # fd 4: a root-namespace process
print(a.pid.ns.inum, a.pid.nr_in(k.root_ns), b.pid.nr_in(k.root_ns), holder.pid.nr_in(k.root_ns),
      outer.pid.nr_in(k.root_ns), flush=True)
run(sys.argv[1], PidFs(k), ready_fd=int(sys.argv[2]))
"""


def test_fdinfo_shows_zero_for_a_pid_outside_the_view(tmp_path, procs):
    d = str(tmp_path / "m")
    os.mkdir(d)
    r, w = os.pipe()
    server = procs.popen([sys.executable, "-c", SIBLING_SERVER, d, str(w)], pass_fds=(w,),
                         stdout=subprocess.PIPE, text=True)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as rf:
            assert rf.read().startswith(b"ready")
        inum, _a, b, holder, outer = map(int, server.stdout.readline().split())
        m = Mount(d)
        head = "pos:\t0\nflags:\t02000002\nmnt_id:\t4\n"
        ino_b, ino_outer = (os.stat(handle(m, p)).st_ino for p in (b, outer))
        assert fdinfo(m, str(holder), 3) == f"{head}ino:\t{ino_b}\nPid:\t{b}\nNSpid:\t{b}\t1\n"
        assert fdinfo(m, f".pidns/{inum}/2", 3) == f"{head}ino:\t{ino_b}\nPid:\t0\nNSpid:\t0\n"
        assert fdinfo(m, f".pidns/{inum}/2", 4) == f"{head}ino:\t{ino_outer}\nPid:\t0\nNSpid:\t0\n"
    finally:
        if os.path.ismount(d):
            run_cli("unmount", d, check=False)
        if os.path.ismount(d):
            subprocess.run(["fusermount3", "-u", "-z", d], capture_output=True)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_pidfs_lookup_obeys_hidepid(mount_table):
    m = mount_table("-o", "hidepid=invisible,allow_other", public=True)
    theirs, mine = m.new(1), m.new(1, "uid=1000")
    ino = {p: os.stat(handle(m, p)).st_ino for p in (theirs, mine)}

    def stat_as_1000(path: str) -> subprocess.CompletedProcess:
        return subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                               "stat", "-c", "%i", path], capture_output=True, text=True, timeout=30)

    r = stat_as_1000(f"{m.path}/.pidfs/{ino[mine]}")
    assert (r.returncode, r.stdout) == (0, f"{ino[mine]}\n")
    r = stat_as_1000(f"{m.path}/.pidfs/{ino[theirs]}")
    assert r.returncode == 1 and "No such file or directory" in r.stderr
    assert os.stat(f"{m.path}/.pidfs/{ino[theirs]}").st_ino == ino[theirs]  # root sees it
