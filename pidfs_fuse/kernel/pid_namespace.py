"""Pid namespaces and their sysctls (kernel/pid_namespace.c ``create_pid_namespace``,
``zap_pid_ns_processes``, ``pid_ns_ctl_handler``; unshare/setns of CLONE_NEWPID from
kernel/nsproxy.c; the per-namespace ``pid_max`` of kernel/pid.c).

The functions here are methods of ``Kernel`` (core.py binds them); ``self`` is the kernel.
Only pid namespaces exist in the model; ``unshare`` and ``setns`` change what the task's next
children are born into (``pid_ns_for_children``), never the task itself.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from . import signals as S
from .checks import check_ns, check_uid, einval
from .errors import KernelError
from .idr import PID_MAX_LIMIT
from .pid import MAX_PID_NS_LEVEL, PidNamespace, check_pid_max
from .task import EXIT_ZOMBIE, Task, ThreadGroup

if TYPE_CHECKING:
    from .core import Kernel


def _create_pid_ns(self: Kernel, parent: PidNamespace, privileged: bool) -> PidNamespace:
    """create_pid_namespace(): EPERM without privilege, ENOSPC past level 32."""
    if not privileged:
        raise KernelError(errno.EPERM, "creating a pid namespace needs privilege (uid 0)")
    if parent.level + 1 > MAX_PID_NS_LEVEL:
        raise KernelError(errno.ENOSPC, f"pid namespaces nest at most {MAX_PID_NS_LEVEL} levels deep")
    inum = self._next_ns_inum
    self._next_ns_inum += 1
    return PidNamespace(level=parent.level + 1, parent=parent, inum=inum, pid_max=PID_MAX_LIMIT)


def _zap_pid_ns(self: Kernel, ns: PidNamespace, init: Task) -> None:
    """zap_pid_ns_processes(): init's last thread is exiting. The namespace stops admitting
    pids, every other member gets SIGKILL, and init reaps what became its zombie children."""
    ns.adding = False
    init.group.sigign |= 1 << S.SIGCHLD
    victims: list[ThreadGroup] = []
    seen: set[int] = set()
    for _nr, pid in ns.idr.items():
        t = pid.task if pid is not None else None  # (None only inside alloc_pid())
        if t is not None and t.group is not init.group and id(t.group) not in seen:
            seen.add(id(t.group))
            victims.append(t.group)
    for g in victims:
        if not g.group_exit and g.live:
            self._deliver(g, S.SIGKILL)  # group_send_sig_info(): queued, as kill() would
    for th in list(init.group.threads):
        for c in list(th.children or ()):
            if c.exit_state is EXIT_ZOMBIE and len(c.group.threads) == 1:
                self._release_task(c)


def unshare_pid_ns(self: Kernel, task: Task) -> PidNamespace:
    """unshare(CLONE_NEWPID): the task's next child becomes init of a new namespace.
    EPERM without privilege; EINVAL when already unshared; ENOSPC past level 32."""
    self._check_alive(task)
    if task.ns_for_children is not task.active_ns:
        raise einval(f"task {task.pid.nr} already unshared a pid namespace for children")
    active = task.active_ns
    ns = self._create_pid_ns(active, task.group.uid == 0)
    active.children.append(ns)
    ns.creator = task
    task.pid_ns_for_children = ns
    return ns


def setns_pid(self: Kernel, task: Task, ns: PidNamespace) -> None:
    """setns(fd, CLONE_NEWPID) -> pid_for_children. EPERM without privilege; EINVAL unless
    ``ns`` is the task's active namespace or a descendant of it."""
    self._check_alive(task)
    check_ns(ns)
    if task.group.uid != 0:
        raise KernelError(errno.EPERM, "setns needs privilege (uid 0)")
    active = task.active_ns
    if not active.is_ancestor_of(ns):
        raise einval(f"pid namespace {ns.inum} is not the task's own ({active.inum}) or below it")
    task.pid_ns_for_children = None if ns is active else ns


def set_pid_max(self: Kernel, ns: PidNamespace, value: int, *, uid: int = 0) -> None:
    """kernel.pid_max of one namespace (301..4194304). Each level keeps its own; allocation
    checks every level, so a child's higher value does not lift its parent's limit."""
    check_ns(ns)
    if check_uid(uid) != 0:
        raise KernelError(errno.EPERM, f"uid {uid} may not change pid_max")
    check_pid_max(value)
    ns.pid_max = value


def set_last_pid(self: Kernel, ns: PidNamespace, value: int, *, uid: int = 0) -> None:
    """kernel.ns_last_pid: the next cyclic allocation starts after ``value`` (0..pid_max)."""
    check_ns(ns)
    if check_uid(uid) != 0:
        raise KernelError(errno.EPERM, f"uid {uid} may not write ns_last_pid")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= ns.pid_max:
        raise einval(f"ns_last_pid {value!r} is outside 0..{ns.pid_max}")
    if ns.child_reaper is None:
        # Linux writes the ns_last_pid of the writer's own namespace, so one without init
        # never has its cursor moved: its first pid must be 1 and become its child reaper.
        raise einval(f"pid namespace {ns.inum} has no init yet: its first pid is always 1")
    ns.idr.cursor = value + 1
    if ns.level == 0:  # the pids below the cursor were handed out: forks that happened
        self.total_forks = max(self.total_forks, value)
