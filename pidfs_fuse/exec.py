"""``pidfs-fuse exec DIR [--as PID] -- CMD [ARGS...]``: run a real command with a mounted table
as its ``/proc``, where no pid it reads can name a real process outside.

Design note. Binding the mount over ``/proc`` in a private mount namespace is enough to fool a
reader, but tools act on what they read: ``pkill``, ``kill``, ``pidfd_open``, psutil's
``nice()`` make real system calls on the table's numbers, which then land on whatever host
process has that number. So CMD also runs in a new pid namespace, where the only processes are
this command's own:

    pidfs-fuse exec (host)  ──fork──▶  init (pid 1 of the new namespace)  ──fork──▶  CMD

``init`` makes the mount namespace private, binds DIR on ``/proc`` and starts CMD at a chosen
number (``ns_last_pid``; ``pid_max`` of the new namespace is raised to the kernel's limit
first): with ``--as PID`` that number is PID, so ``getpid()`` and ``/proc/self`` (the server
answers ``self`` with the caller's number in its own pid namespace, as a procfs mounted there
would) both name the table's process PID; without ``--as`` it is a number the table does not
hold (4,000,000 where possible), so CMD sees itself as a stand-in entry, never as a table
process. Before the bind, the real /proc is bound on the mount's empty ``.host-proc`` (in this
namespace only), so it stays reachable as ``/proc/.host-proc``: the links of a stand-in's
``fd/`` lead there, and ``cat <(echo hi)``, ``/dev/stdin`` and ``/dev/fd/N`` open
(``mount/callers.py``). Every other table pid is ESRCH to ``kill``, ``pidfd_open``, ``getpriority``... The one
exception is 1: every pid namespace has an init, and here it is ``init`` above, which ignores
signals sent from inside (the kernel does not deliver a default-action signal to a namespace's
init), so ``kill -0 1`` succeeds and reaches nothing.

As a normal user the same runs inside a new user namespace that maps only the user's own uid
and gid (so CMD runs as the user, without privileges outside); that needs unprivileged user
namespaces (``kernel.unprivileged_userns_clone``, AppArmor's
``kernel.apparmor_restrict_unprivileged_userns``, ``user.max_user_namespaces``).

Terminal, signals, status. CMD keeps stdin, stdout, stderr, the session and the foreground
process group, so ``top`` and a pager work; a signal the terminal sends reaches CMD directly,
and ``init`` and this process drop their own copies. A signal sent to this process with
``kill`` (``timeout``, a supervisor) is passed on to CMD. If this process dies, ``init`` gets
SIGKILL (PR_SET_PDEATHSIG) and the namespace goes with it. The exit status is CMD's, or 128+N
when a signal N killed it, as a shell reports it.

Python 3.11 has no ``os.unshare``: the system calls go through ``ctypes``; this process is
single-threaded when it calls them (``unshare(CLONE_NEWUSER)`` requires it).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import shutil
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import rundir
from .mount.callers import HOST_PROC_DIR

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
#: PID_MAX_LIMIT on 64-bit Linux: no pid namespace can hold a larger number
PID_MAX_LIMIT = 4 * 1024 * 1024
#: CMD's number when it has no --as: far above what tables use, and its children count on from
#: there, so none of them shares a number with a table process
STAND_IN_BASE = 4_000_000
#: signals passed on to CMD when sent with kill(); from the terminal CMD gets its own copy
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGALRM, signal.SIGWINCH, signal.SIGCONT)
SI_USER = 0
SI_QUEUE = -1


class ExecError(RuntimeError):
    """exec cannot start CMD: one sentence; ``status`` is the exit status to end with (127 for
    a command that is not found, 126 when it cannot run, 1 otherwise)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(res: int, what: str) -> None:
    if res != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def _mount(source: str | None, target: str, flags: int) -> None:
    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_void_p]
    _check(libc.mount(source.encode() if source else None, target.encode(), None, flags, None),
           f"mount {source or ''} on {target}")


def userns_refusal() -> str | None:
    """Why this kernel refuses a normal user a user namespace, from its switches; None when
    none of them forbids it (the attempt may still fail)."""
    checks = (("/proc/sys/kernel/unprivileged_userns_clone", "0",
               "kernel.unprivileged_userns_clone is 0 (root can set it to 1)"),
              ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
               "AppArmor restricts unprivileged user namespaces "
               "(kernel.apparmor_restrict_unprivileged_userns=1)"),
              ("/proc/sys/user/max_user_namespaces", "0", "user.max_user_namespaces is 0"))
    for path, bad, why in checks:
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return why
        except OSError:
            continue
    return None


def _enter_userns(uid: int, gid: int) -> None:
    """A user namespace in which this process keeps its uid and gid (mapped 1:1, nothing else):
    full capabilities inside it for the namespaces and mounts below, none outside."""
    try:
        unshare(CLONE_NEWUSER)
    except OSError as e:
        why = userns_refusal() or os.strerror(e.errno or errno.EPERM)
        raise ExecError(f"exec as a normal user needs an unprivileged user namespace, which "
                        f"this machine refuses: {why}; run it as root instead") from None
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _write_sysctl(name: str, value: int) -> bool:
    try:
        with open(f"/proc/sys/kernel/{name}", "w") as f:
            f.write(str(value))
        return True
    except OSError:
        return False


def _read_sysctl(name: str) -> int:
    with open(f"/proc/sys/kernel/{name}") as f:
        return int(f.read())


def _table_has(mountpoint: str, nr: int) -> bool:
    return os.path.isdir(os.path.join(mountpoint, str(nr)))


def _stand_in_base(mountpoint: str, pid_max: int) -> int:
    """A number the table does not hold, with room above it: where CMD (without ``--as``) and
    everything CMD starts get their pids, so none of them is taken for a table process."""
    base = STAND_IN_BASE if pid_max > STAND_IN_BASE else pid_max * 3 // 4
    for nr in range(base, base + 100):
        if not _table_has(mountpoint, nr):
            return nr
    return base  # a table that dense: CMD shares a number, nothing worse


def _report(fd: int, msg: str, status: int) -> NoReturn:
    """In a child: hand a setup failure up to the waiting exec, end with ``status``."""
    try:
        os.write(fd, f"{status} {msg}".encode())
    finally:
        os._exit(status)


def _reset_signals() -> None:
    """What CMD would have inherited from the shell: Python's own choices undone (SIGPIPE and
    SIGXFSZ ignored, its SIGINT handler), the rest (a SIG_IGN from ``nohup``) left as it was."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _init(mountpoint: str, as_pid: int | None, exe: str, argv: Sequence[str], err_w: int,
          life_r: int) -> NoReturn:
    """pid 1 of the new namespace: private mounts, DIR on /proc, CMD at its number (and what
    CMD starts above the stand-in base), then reap until CMD ends and end with its status."""
    try:
        _check(_libc().prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0), "prctl")
        if select.select([life_r], [], [], 0)[0]:  # EOF: exec died before the line above
            os._exit(1)
        unshare(CLONE_NEWNS)
        _mount(None, "/", MS_REC | MS_PRIVATE)
        if _read_sysctl("pid_max") < PID_MAX_LIMIT:
            _write_sysctl("pid_max", PID_MAX_LIMIT)  # per namespace since Linux 6.14
        pid_max = _read_sysctl("pid_max")
        base = _stand_in_base(mountpoint, pid_max)
        if as_pid is not None and as_pid >= pid_max:
            raise ExecError(f"--as {as_pid}: this kernel gives a new pid namespace at most "
                            f"{pid_max - 1} pids, so CMD cannot have that number")
        nr = as_pid if as_pid is not None else base
        # kept open: once DIR covers /proc this is the only way to the namespace's counter
        last_pid = os.open("/proc/sys/kernel/ns_last_pid", os.O_WRONLY | os.O_CLOEXEC)
        # the real /proc stays reachable at /proc/.host-proc: a stand-in's fd/ links open there
        _mount("/proc", os.path.join(mountpoint, HOST_PROC_DIR), MS_BIND | MS_REC)
        _mount(mountpoint, "/proc", MS_BIND | MS_REC)
    except ExecError as e:
        _report(err_w, str(e), e.status)
    except OSError as e:
        _report(err_w, f"cannot set up the namespace: {e.strerror}", 1)
    if nr == 1:  # --as 1: CMD is this namespace's init itself
        _exec_cmd(exe, argv, err_w)
    if nr > 2:
        _set_last_pid(last_pid, nr - 1, err_w)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(go_w)
        os.read(go_r, 1)  # until the counter is moved on for CMD's own children
        _exec_cmd(exe, argv, err_w)
    os.close(go_r)
    _set_last_pid(last_pid, base, err_w)
    os.close(go_w)
    os.close(err_w)
    watched = {signal.SIGCHLD, *FORWARDED}
    while True:
        info = signal.sigwaitinfo(watched)
        if info.si_signo == signal.SIGCHLD:
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid == child:
                    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status)
                             else 128 + os.WTERMSIG(status))
        elif info.si_code in (SI_USER, SI_QUEUE) and info.si_pid == 0:
            # sent from outside the namespace (by exec, passing one on): CMD gets it
            os.kill(child, info.si_signo)
        # else: from inside the namespace or from the terminal (CMD got its own): dropped


def _set_last_pid(fd: int, value: int, err_w: int) -> None:
    try:
        os.pwrite(fd, str(value).encode(), 0)
    except OSError as e:
        _report(err_w, f"cannot choose pids in the new namespace (ns_last_pid): {e.strerror}", 1)


def _exec_cmd(exe: str, argv: Sequence[str], err_w: int) -> NoReturn:
    _reset_signals()
    try:
        os.execv(exe, list(argv))
    except OSError as e:
        _report(err_w, f"{argv[0]}: {e.strerror}", 126 if e.errno in (errno.EACCES, errno.ENOEXEC) else 127)


def check_target(mountpoint: str, as_pid: int | None) -> str:
    """The mount point, absolute, once it is known to be a pidfs-fuse mount that answers (and
    to hold the process ``as_pid``); ``ExecError`` otherwise."""
    mp = os.path.abspath(mountpoint)
    m = rundir.mount_at(mp)
    if m is None:
        raise ExecError(f"{mp} is not mounted (mount a table there first: pidfs-fuse mount {mp})")
    if not rundir.is_ours(m):
        raise ExecError(f"{mp} is not a pidfs-fuse mount (it is {rundir.describe(m)})")
    try:
        os.statvfs(mp)
    except OSError as e:
        raise ExecError(f"the mount at {mp} does not answer: {e.strerror}") from None
    if as_pid is not None:
        if as_pid < 1 or as_pid >= PID_MAX_LIMIT:
            raise ExecError(f"--as {as_pid}: not a pid (1 to {PID_MAX_LIMIT - 1})")
        if not _table_has(mp, as_pid):
            raise ExecError(f"--as {as_pid}: the table at {mp} has no process {as_pid}")
    return mp


def run(mountpoint: str, argv: Sequence[str], *, as_pid: int | None = None) -> int:
    """Run ``argv`` as described above; its exit status. ``ExecError`` when it cannot start."""
    if not argv:
        raise ExecError("exec needs a command after -- (for example: pidfs-fuse exec DIR -- ps -ef)")
    mp = check_target(mountpoint, as_pid)
    exe = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    if exe is None or not os.path.exists(exe):
        raise ExecError(f"{argv[0]}: command not found", 127)
    if os.geteuid() != 0:
        _enter_userns(os.geteuid(), os.getegid())
    try:
        unshare(CLONE_NEWPID)
    except OSError as e:
        raise ExecError(f"cannot make a pid namespace: {e.strerror}") from None
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    life_r, life_w = os.pipe2(os.O_CLOEXEC)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, *FORWARDED})
    sys.stdout.flush()
    sys.stderr.flush()
    init = os.fork()
    if init == 0:
        os.close(err_r)
        os.close(life_w)
        try:
            _init(mp, as_pid, exe, argv, err_w, life_r)
        finally:
            os._exit(1)
    os.close(err_w)
    os.close(life_r)
    try:
        failure = _read_all(err_r)  # EOF once CMD is running (or everything failed)
        return _wait(init, failure)
    finally:
        os.close(err_r)
        os.close(life_w)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _wait(init: int, failure: bytes) -> int:
    """Wait for ``init``, passing on signals sent to this process with kill(); its status."""
    watched = {signal.SIGCHLD, *FORWARDED}
    while True:
        pid, status = os.waitpid(init, os.WNOHANG)
        if pid == init:
            break
        info = signal.sigwaitinfo(watched)
        if info.si_signo != signal.SIGCHLD and info.si_code in (SI_USER, SI_QUEUE):
            try:
                os.kill(init, info.si_signo)
            except ProcessLookupError:
                pass
    code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    if failure:
        st, _, msg = failure.decode(errors="replace").partition(" ")
        raise ExecError(msg, int(st))
    return code
