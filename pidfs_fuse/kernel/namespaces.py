"""The non-pid namespaces as identities (kernel/nsproxy.c, the ``*_ns`` of ``struct nsproxy``
plus ``cred->user_ns``): each task holds one inode number per type, which is all that procfs's
``ns/`` shows and all that ``ps``, ``lsns``, ``pstree -N`` and ``pgrep --ns`` compare.

A task inherits its parent's set at clone (a new process enters the parent's
``time_for_children``; a thread shares the set as it shares the nsproxy: ``copy_namespaces``
keeps it for ``CLONE_VM``). ``unshare`` gives the caller a new namespace of one type (for
``time``: its next children's); ``setns`` joins another task's. Pid namespaces stay in
``pid_namespace.py``: they number pids, these only name things.

The functions ``unshare_ns``/``setns_ns`` are methods of ``Kernel`` (core.py binds them).
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .errors import KernelError

if TYPE_CHECKING:
    from .core import Kernel
    from .task import Task

#: the types held here, in ``ns/``'s order (pid and pid_for_children are pid_namespace.py's)
NS_TYPES: Final = ("cgroup", "ipc", "mnt", "net", "time", "user", "uts")

#: the initial namespaces' inode numbers (include/linux/proc_ns.h, fixed since Linux 6.x; pid's
#: is PROC_PID_INIT_INO 0xEFFFFFFC), as this machine shows them
INIT_INUMS: Final = {"mnt": 0xEFFFFFF8, "net": 0xEFFFFFF9, "time": 0xEFFFFFFA, "cgroup": 0xEFFFFFFB,
                     "user": 0xEFFFFFFD, "uts": 0xEFFFFFFE, "ipc": 0xEFFFFFFF}


@dataclass(frozen=True, slots=True)
class Namespaces:
    """One task's namespaces by inode number (immutable: a change makes a new set, so tasks
    share a set until one of them unshares, as they share an nsproxy)."""

    cgroup: int = INIT_INUMS["cgroup"]
    ipc: int = INIT_INUMS["ipc"]
    mnt: int = INIT_INUMS["mnt"]
    net: int = INIT_INUMS["net"]
    time: int = INIT_INUMS["time"]
    time_for_children: int = INIT_INUMS["time"]
    user: int = INIT_INUMS["user"]
    uts: int = INIT_INUMS["uts"]

    def inum(self, name: str) -> int:
        """The inode number of ``ns/<name>`` (one of NS_TYPES or ``time_for_children``)."""
        return int(getattr(self, name))

    def for_child(self) -> Namespaces:
        """What a new process gets (copy_namespaces without CLONE_VM): the parent's set, in
        its ``time_for_children``."""
        if self.time == self.time_for_children:
            return self
        return dataclasses.replace(self, time=self.time_for_children)


INIT_NAMESPACES: Final = Namespaces()


def check_type(name: object) -> str:
    """``name`` if it is one of NS_TYPES, else EINVAL with a sentence listing them."""
    if name not in NS_TYPES:
        raise KernelError(errno.EINVAL, f"{name!r} is not a namespace type; expected one of "
                          + ", ".join(NS_TYPES) + " (pid namespaces: unshare newpid)")
    return str(name)


def _check_single_threaded(task: Task, what: str) -> None:
    """CLONE_NEWUSER implies CLONE_THREAD: EINVAL for a process with other live threads."""
    if sum(1 for t in task.group.threads if t.alive) > 1:
        raise KernelError(errno.EINVAL, f"{what} a user namespace needs a single-threaded process "
                          f"({task.pid.nr} has {len(task.group.threads)} threads)")


def unshare_ns(self: Kernel, task: Task, name: str) -> int:
    """unshare(CLONE_NEW<TYPE>) by ``task``: a new namespace of type ``name`` (for ``time``:
    the one its next children enter, ``time_for_children``); returns its inode number, from the
    counter pid namespaces use (proc_alloc_inum). EPERM without privilege (uid 0) except for a
    user namespace, which anyone may create; EINVAL for a user namespace in a threaded process."""
    self._check_alive(task)
    name = check_type(name)
    if name == "user":
        _check_single_threaded(task, "unsharing")
    elif task.group.uid != 0:
        raise KernelError(errno.EPERM, f"unsharing a {name} namespace needs privilege (uid 0), "
                          f"{task.pid.nr} has uid {task.group.uid}")
    inum = self._next_ns_inum
    self._next_ns_inum += 1
    field = "time_for_children" if name == "time" else name
    task.nsproxy = dataclasses.replace(task.nsproxy, **{field: inum})
    self.notify_changed(task)
    return inum


def setns_ns(self: Kernel, task: Task, name: str, other: Task) -> None:
    """setns(open("/proc/OTHER/ns/<name>"), CLONE_NEW<TYPE>) by ``task``: join ``other``'s
    namespace (for ``time``: ``task``'s next children do). EPERM without privilege (uid 0);
    ENOENT when ``other`` has exited (its ns files are gone, except user); EINVAL for joining
    the user namespace the task is already in, or any user namespace from a threaded process."""
    from .checks import check_task  # both import task.py, which imports this module
    from .task import EXIT_RUNNING

    self._check_alive(task)
    name = check_type(name)
    check_task("other", other)
    if other.exit_state is not EXIT_RUNNING and name != "user":
        raise KernelError(errno.ENOENT, f"{other.pid.nr} has exited: its {name} namespace file is gone")
    if task.group.uid != 0:
        raise KernelError(errno.EPERM, f"setns needs privilege (uid 0), {task.pid.nr} has uid "
                          f"{task.group.uid}")
    target = other.nsproxy.inum(name)
    if name == "user":
        if target == task.nsproxy.user:
            raise KernelError(errno.EINVAL, f"{task.pid.nr} is already in user namespace {target}")
        _check_single_threaded(task, "joining")
    field = "time_for_children" if name == "time" else name
    if task.nsproxy.inum(field) != target:
        task.nsproxy = dataclasses.replace(task.nsproxy, **{field: target})
        self.notify_changed(task)
