"""pidfs and pidfds (fs/pidfs.c; ``pidfd_open``, ``pidfd_poll``, ``pidfd_send_signal`` and
PIDFD_INFO_EXIT; ``trusted.*`` xattrs on the pid's inode), and the emulated descriptor tables
that hold them.

The functions here are methods of ``Kernel`` (core.py binds them); ``self`` is the kernel.
A ``PidFd`` is bound to one struct pid for its whole life, never to a number. Every struct pid
gets a pidfs inode number from one global counter (``Kernel._next_ino``, from 2, never reused)
and stays findable by it (``find_pidfs``, a file handle's lookup) while its numbers are
allocated. What pidfs keeps for a pid once a handle was opened on it (exit record, xattrs) is
its ``PidAttr``.
"""

from __future__ import annotations

import bisect
import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import signals as S
from .checks import check_int, check_ns, check_task, check_uid, einval
from .errors import KernelError
from .pid import ExitInfo, Pid, PidAttr, PidNamespace
from .task import EXIT_ZOMBIE, Task, ThreadGroup

if TYPE_CHECKING:
    from .core import Kernel

# pidfd_open flags (include/uapi/linux/pidfd.h)
PIDFD_THREAD = 0o200  # O_EXCL
PIDFD_NONBLOCK = 0o4000  # O_NONBLOCK

POLLIN, POLLRDNORM, POLLHUP = 0x001, 0x040, 0x010


@dataclass(slots=True, eq=False)
class PidFd:
    """An open pidfd: bound to one struct pid for its whole life (never to a number)."""

    pid: Pid
    thread: bool = False  # PIDFD_THREAD
    nonblock: bool = False  # PIDFD_NONBLOCK / O_NONBLOCK
    autokill: bool = False  # from clone(CLONE_PIDFD_AUTOKILL): closing it kills the child
    closed: bool = False

    @property
    def ino(self) -> int:
        return self.pid.ino


# -- the inode counter and the by-inode index -----------------------------------------------

def _pidfs_add_pid(self: Kernel, numbers: tuple[int, ...], ns: PidNamespace) -> Pid:
    """alloc_pid()'s new struct pid with its pidfs inode number (pidfs_add_pid()): the next
    value of one global counter that starts at 2 and is never reused. The pid joins the
    by-inode index that ``find_pidfs`` searches (inode numbers only grow, so it stays sorted)."""
    pid = Pid(numbers, ns, self._next_ino)
    self._next_ino += 1
    self._by_ino.append(pid)
    return pid


def _pidfs_remove_pid(self: Kernel, pid: Pid) -> None:
    """pidfs_remove_pid(): free_pid() gave the numbers back, so ``find_pidfs`` stops finding
    the pid (it checks ``allocated``). The index drops freed pids in batches: once more than 64
    of them and more than half of its entries are freed."""
    self._by_ino_dead += 1
    if self._by_ino_dead > 64 and self._by_ino_dead * 2 > len(self._by_ino):
        self._by_ino = [p for p in self._by_ino if p.allocated]
        self._by_ino_dead = 0


def find_pidfs(self: Kernel, ino: int) -> Pid | None:
    """The live struct pid with pidfs inode number ``ino`` (a pidfs file handle), or None."""
    if type(ino) is not int:
        return None
    lst = self._by_ino
    i = bisect.bisect_left(lst, ino, key=lambda p: p.ino)
    if i < len(lst) and lst[i].ino == ino and lst[i].allocated:
        return lst[i]
    return None


# -- descriptors of emulated processes ---------------------------------------------------------

def fd_install(self: Kernel, task: Task, obj: PidFd) -> int:
    """Put ``obj`` in the lowest free descriptor >= 3 of the task's process."""
    g = task.group
    if g.files is None:
        g.files = {}
    fd = 3
    while fd in g.files:
        fd += 1
    g.files[fd] = obj
    return fd


def fd_close(self: Kernel, task: Task, fd: int) -> None:
    check_task("task", task)
    fd = check_int("descriptor", fd)
    g = task.group
    if g.files is None or fd not in g.files:
        raise KernelError(errno.EBADF, f"process {task.leader.pid.nr} has no descriptor {fd}")
    obj = g.files.pop(fd)
    self.pidfd_close(obj)


def _close_files(self: Kernel, g: ThreadGroup) -> None:
    if g.files:
        files, g.files = g.files, None
        for obj in files.values():
            self.pidfd_close(obj)


# -- pidfd (kernel/pid.c, fs/pidfs.c) -----------------------------------------------------------

def pidfd_open(self: Kernel, ns: PidNamespace, nr: int, flags: int = 0) -> PidFd:
    """Models pidfd_open(): EINVAL for unknown flags or nr <= 0; ESRCH when no task has the
    number (or it was reaped); ENOENT for a thread without PIDFD_THREAD."""
    flags = check_int("pidfd flags", flags)
    nr = check_int("pid", nr)
    check_ns(ns)
    if flags & ~(PIDFD_THREAD | PIDFD_NONBLOCK) or flags < 0:
        raise einval(f"pidfd_open flags {flags:#o} include unknown bits "
                      f"{flags & ~(PIDFD_THREAD | PIDFD_NONBLOCK):#o}")
    if nr <= 0:
        raise einval(f"pidfd_open needs a pid > 0, got {nr}")
    pid = self.find_pid(ns, nr)
    if pid is None:
        raise KernelError(errno.ESRCH, f"no process {nr} in pid namespace {ns.inum}")
    return self._pidfd_get(pid, thread=bool(flags & PIDFD_THREAD), nonblock=bool(flags & PIDFD_NONBLOCK))


def pidfd_get(self: Kernel, pid: Pid, *, thread: bool = False, nonblock: bool = False) -> PidFd:
    """pidfd_prepare() on a struct pid already in hand (a file opened by path or by inode)."""
    if not isinstance(pid, Pid):
        raise einval(f"{pid!r} is not a struct pid")
    return self._pidfd_get(pid, thread=bool(thread), nonblock=bool(nonblock))


def _pidfd_get(self: Kernel, pid: Pid, *, thread: bool, nonblock: bool) -> PidFd:
    if pid.task is None:
        raise KernelError(errno.ESRCH, f"process {pid.nr} has been reaped")
    if not thread and pid.tgid_task is None:
        raise KernelError(errno.ENOENT, f"{pid.nr} is a thread, not a thread-group leader "
                          "(use PIDFD_THREAD)")
    pid.handles += 1
    if pid.attr is None:
        pid.attr = PidAttr()
    return PidFd(pid, thread=thread, nonblock=nonblock)


def pidfd_close(self: Kernel, fd: PidFd) -> None:
    if not isinstance(fd, PidFd):
        raise KernelError(errno.EBADF, f"{fd!r} is not a pidfd")
    if fd.closed:
        return
    fd.closed = True
    fd.pid.handles -= 1
    if fd.autokill:
        t = fd.pid.task
        if t is not None and t.group.live and not t.group.group_exit:
            self._deliver(t.group, S.SIGKILL)


def pidfd_poll(self: Kernel, fd: PidFd) -> int:
    """pidfd_poll(): 0 while running; POLLIN|POLLRDNORM once exited, except a leader whose
    threads still run (delay_group_leader; the same for thread handles); plus POLLHUP once
    reaped."""
    if not isinstance(fd, PidFd):
        raise KernelError(errno.EBADF, f"{fd!r} is not a pidfd")
    t = fd.pid.task
    if t is None:
        return POLLIN | POLLRDNORM | POLLHUP
    if t.exit_state is EXIT_ZOMBIE and not (t is t.group.leader and len(t.group.threads) > 1):
        return POLLIN | POLLRDNORM  # exited, and not a leader whose threads still run
    return 0


def pidfd_send_signal(self: Kernel, fd: PidFd, sig: int, *, uid: int = 0,
                      sender: Task | None = None) -> None:
    """Models pidfd_send_signal(): EBADF on a closed handle; ESRCH once reaped (even for a
    bad signal); EINVAL for a bad signal; 0 (nothing happens) for a zombie; EPERM for a uid
    that may not signal it. ``sender`` is the calling task, as for ``kill`` (None: the control
    plane, outside every namespace): a namespace's init ignores SIGKILL/SIGSTOP sent through a
    pidfd by its own members (found by the differential oracle)."""
    if not isinstance(fd, PidFd) or fd.closed:
        raise KernelError(errno.EBADF, f"{fd!r} is not an open pidfd")
    check_uid(uid)
    sig = check_int("signal", sig)
    t = fd.pid.task
    if t is None:
        raise KernelError(errno.ESRCH, f"process {fd.pid.nr} has been reaped")
    self.kill(t, sig, sender=sender, uid=uid, thread=fd.thread)


def exit_info(self: Kernel, pid: Pid) -> ExitInfo | None:
    """PIDFD_INFO_EXIT: the record written at reap, if this pid ever had a handle."""
    return pid.attr.exit if pid.attr is not None else None


# -- xattrs on the pid (pidfs keeps them on the inode of the struct pid) -------------------------

def _xattr_name(name: str, uid: int) -> str:
    """The VFS checks in order: name length (ERANGE), then xattr_resolve_name(): no handler
    for the prefix (EOPNOTSUPP; pidfs has only trusted.*), an empty suffix (EINVAL)."""
    if not isinstance(name, str):
        raise einval(f"xattr name {name!r} is not a string")
    check_uid(uid)
    size = len(name.encode("utf-8", "surrogateescape"))
    if not 0 < size <= 255:
        raise KernelError(errno.ERANGE, f"xattr name {name!r} has {size} bytes, not 1..255")
    if not name.startswith("trusted."):
        raise KernelError(errno.EOPNOTSUPP, f"pidfs supports only trusted.* xattrs, not {name!r}")
    if name == "trusted.":
        raise einval(f"xattr name {name!r} has nothing after the prefix")
    return name


def _xattrs(self: Kernel, pid: Pid) -> dict[str, bytes]:
    if pid.attr is None:
        pid.attr = PidAttr()
    return pid.attr.xattrs


def setxattr(self: Kernel, pid: Pid, name: str, value: bytes, *, uid: int = 0) -> None:
    name = _xattr_name(name, uid)
    if not isinstance(value, (bytes, bytearray)):
        raise einval(f"xattr value {value!r} is not bytes")
    if len(value) > 65536:
        raise KernelError(errno.E2BIG, f"xattr value of {len(value)} bytes is over 65536")
    if uid != 0:
        raise KernelError(errno.EPERM, f"uid {uid} may not set {name} (trusted.* needs privilege)")
    self._xattrs(pid)[name] = bytes(value)


def getxattr(self: Kernel, pid: Pid, name: str, *, uid: int = 0) -> bytes:
    name = _xattr_name(name, uid)
    if uid != 0:
        raise KernelError(errno.ENODATA, f"no {name} visible to uid {uid}")
    try:
        return (pid.attr.xattrs if pid.attr else {})[name]
    except KeyError:
        raise KernelError(errno.ENODATA, f"pid has no xattr {name}") from None


def listxattr(self: Kernel, pid: Pid, *, uid: int = 0) -> list[str]:
    if check_uid(uid) != 0 or pid.attr is None:
        return []
    return sorted(pid.attr.xattrs)


def removexattr(self: Kernel, pid: Pid, name: str, *, uid: int = 0) -> None:
    name = _xattr_name(name, uid)
    if uid != 0:
        raise KernelError(errno.EPERM, f"uid {uid} may not remove {name}")
    if pid.attr is None or name not in pid.attr.xattrs:
        raise KernelError(errno.ENODATA, f"pid has no xattr {name}")
    del pid.attr.xattrs[name]
