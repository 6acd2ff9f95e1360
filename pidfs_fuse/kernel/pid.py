"""Models ``struct pid``, ``struct upid`` and ``struct pid_namespace`` (include/linux/pid.h,
kernel/pid.c, kernel/pid_namespace.c).

A ``Pid`` carries one number per namespace level (``numbers[level]``), the task links the kernel
keeps per pid type (PID, TGID, PGID, SID), and the pidfs identity: an inode number from one
global counter that is never reused, the exit record written at reap, and ``trusted.*`` xattrs.
Numbers are only meaningful together with a namespace: ``pid.nr_in(ns)`` is the kernel's
``pid_nr_ns`` and returns 0 when the pid is not visible from ``ns``.

Not modelled: RCU, refcount races, user namespaces (privilege is "uid 0").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .idr import PID_MAX_LIMIT, Idr

if TYPE_CHECKING:
    from .task import Task

#: Numbers below this are only handed out before the first wrap (include/linux/threads.h).
RESERVED_PIDS = 300
PID_MAX_DEFAULT = 32768
PID_MAX_MIN = RESERVED_PIDS + 1
#: Deepest allowed namespace level (include/linux/pid_namespace.h).
MAX_PID_NS_LEVEL = 32
#: PROC_PID_INIT_INO: the inode number of the initial pid namespace.
PROC_PID_INIT_INO = 0xEFFFFFFC


@dataclass(frozen=True, slots=True)
class UPid:
    """struct upid: a number and the namespace it is valid in."""

    nr: int
    ns: PidNamespace


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """PIDFD_INFO_EXIT: recorded when the task attached to a pid is reaped (fs/pidfs.c).

    ``exit_code`` is the task's own raw wait status (``code << 8``, or the signal, | 0x80 when a
    core was dumped), which may differ from what ``wait`` reported for its thread group.
    """

    exit_code: int
    coredumped: bool = False


@dataclass(slots=True, eq=False)
class PidAttr:
    """What pidfs keeps on a pid once a handle was ever opened on it (struct pidfs_attr)."""

    exit: ExitInfo | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class PidNamespace:
    level: int
    parent: PidNamespace | None
    inum: int
    pid_max: int
    idr: Idr[Pid] = field(default_factory=Idr)
    #: ancestors[i] is this namespace's ancestor at level i (ancestors[level] is self).
    ancestors: tuple[PidNamespace, ...] = ()
    child_reaper: Task | None = None
    #: PIDNS_ADDING: cleared when the namespace's init dies (disable_pid_allocation).
    adding: bool = True
    #: False until the first pid of the namespace was allocated and freed (free_pid's case 0).
    children: list[PidNamespace] = field(default_factory=list)
    #: creator: the task whose clone/unshare made it (for pictures only).
    creator: Task | None = None

    def __post_init__(self) -> None:
        if not self.ancestors:
            up = self.parent.ancestors if self.parent is not None else ()
            self.ancestors = up + (self,)

    def __repr__(self) -> str:
        return f"<PidNamespace level={self.level} inum={self.inum}>"

    @property
    def pid_allocated(self) -> int:
        """How many pids this namespace's IDR holds (ns->pid_allocated without PIDNS_ADDING)."""
        return len(self.idr)

    @property
    def last_pid(self) -> int:
        """ns_last_pid as the sysctl reads it: cursor - 1."""
        return self.idr.cursor - 1

    def find_pid(self, nr: int) -> Pid | None:
        """find_pid_ns(): the pid numbered ``nr`` in this namespace, or None."""
        return self.idr.find(nr)

    def is_ancestor_of(self, other: PidNamespace) -> bool:
        """True when ``other`` is this namespace or a descendant of it."""
        return other.level >= self.level and other.ancestors[self.level] is self


@dataclass(slots=True, eq=False)
class Pid:
    """struct pid. ``numbers[i]`` is the number at level i, in ``ns.ancestors[i]``."""

    numbers: tuple[int, ...]
    ns: PidNamespace  # the innermost namespace (ns_of_pid)
    ino: int  # pidfs inode number
    task: Task | None = None  # PIDTYPE_PID
    tgid_task: Task | None = None  # PIDTYPE_TGID
    pgrp_tasks: dict[Task, None] | None = None  # PIDTYPE_PGID (leaders only)
    session_tasks: dict[Task, None] | None = None  # PIDTYPE_SID (leaders only)
    attr: PidAttr | None = None
    #: open handles (pidfds) on this pid; the struct lives on after reap while this is > 0.
    handles: int = 0
    #: numbers still held in the id maps (False once free_pid ran).
    allocated: bool = True

    def __repr__(self) -> str:
        return f"<Pid {'/'.join(map(str, self.numbers))} ino={self.ino}>"

    @property
    def level(self) -> int:
        return self.ns.level

    @property
    def nr(self) -> int:
        """The number in the innermost namespace (pid_vnr seen from the pid's own namespace)."""
        return self.numbers[-1]

    def nr_in(self, ns: PidNamespace) -> int:
        """pid_nr_ns(): the number of this pid in ``ns``; 0 when it is not visible from there."""
        lvl = ns.level
        if lvl <= self.ns.level and self.ns.ancestors[lvl] is ns and self.allocated:
            return self.numbers[lvl]
        return 0

    def upids(self) -> tuple[UPid, ...]:
        return tuple(UPid(nr, ns) for nr, ns in zip(self.numbers, self.ns.ancestors, strict=True))

    def has_task(self) -> bool:
        return (self.task is not None or self.tgid_task is not None or bool(self.pgrp_tasks)
                or bool(self.session_tasks))


def check_pid_max(value: int) -> None:
    import errno

    from .errors import KernelError

    if not isinstance(value, int) or isinstance(value, bool) or not PID_MAX_MIN <= value <= PID_MAX_LIMIT:
        raise KernelError(errno.EINVAL, f"pid_max {value!r} is outside {PID_MAX_MIN}..{PID_MAX_LIMIT}")
