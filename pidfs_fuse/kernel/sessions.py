"""Sessions, process groups and child subreapers (kernel/sys.c: ``setsid``, ``setpgid``,
``prctl(PR_SET_CHILD_SUBREAPER)``; kernel/pid.c ``change_pid`` for the PGID and SID links).

The functions here are methods of ``Kernel`` (core.py binds them); ``self`` is the kernel.
Group and session links are kept on the leader's ``Pid`` (``pgrp_tasks``, ``session_tasks``);
a pid that only a group or session still names lives on until the last member leaves.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .checks import check_int, einval
from .errors import KernelError
from .events import EventKind
from .task import TF_FORKNOEXEC, Task, ThreadGroup

if TYPE_CHECKING:
    from .core import Kernel
    from .pid import Pid


def setsid(self: Kernel, task: Task) -> int:
    """Models setsid(): returns the new session id in the task's namespace. EPERM when the
    process already leads a session or a process group with its id exists."""
    self._check_alive(task)
    g = task.group
    sid = g.leader.pid
    if g.session_leader:
        raise KernelError(errno.EPERM, f"process {sid.nr} already leads a session")
    if sid.pgrp_tasks:
        raise KernelError(errno.EPERM, f"a process group {sid.nr} already exists")
    g.session_leader = True
    g.tty_nr = 0  # proc_clear_tty(): a new session has no controlling terminal
    self._change_pgrp(g, sid)
    self._change_session(g, sid)
    self._emit(EventKind.CHANGED, sid, g.leader)
    return sid.nr_in(task.pid.ns)


def setpgid(self: Kernel, caller: Task, pid_nr: int = 0, pgid_nr: int = 0) -> None:
    """Models setpgid(pid, pgid) called by ``caller`` (numbers in the caller's namespace).
    EINVAL: negative pgid or a non-leader; ESRCH: no such process or not the caller or its
    child; EPERM: session mismatch, a session leader, or no such group in the session;
    EACCES: the child has exec'd."""
    pid_nr = check_int("pid", pid_nr)
    pgid_nr = check_int("pgid", pgid_nr)
    self._check_alive(caller)
    ns = caller.pid.ns
    me = caller.group
    if pid_nr == 0:
        pid_nr = me.leader.pid.nr_in(ns)
    if pgid_nr == 0:
        pgid_nr = pid_nr
    if pgid_nr < 0:
        raise einval(f"pgid {pgid_nr} is negative")
    p = self.find_task(ns, pid_nr)
    if p is None:  # a zombie is still found (find_task_by_vpid) and may change group
        raise KernelError(errno.ESRCH, f"no process {pid_nr}")
    if not p.is_leader:
        raise einval(f"{pid_nr} is a thread, not a process")
    pg = p.group
    if pg.parent is not None and pg.parent.group is me:
        if pg.session is not me.session:
            raise KernelError(errno.EPERM, f"process {pid_nr} is in another session")
        if not p.flags & TF_FORKNOEXEC:
            raise KernelError(errno.EACCES, f"child {pid_nr} has already exec'd")
    elif pg is not me:
        raise KernelError(errno.ESRCH, f"process {pid_nr} is neither the caller nor its child")
    if pg.session_leader:
        raise KernelError(errno.EPERM, f"process {pid_nr} leads a session")
    pgrp = p.pid
    if pgid_nr != pid_nr:
        found = self.find_pid(ns, pgid_nr)
        g2 = next(iter(found.pgrp_tasks), None) if found is not None and found.pgrp_tasks else None
        if found is None or g2 is None or g2.group.session is not me.session:
            raise KernelError(errno.EPERM, f"no process group {pgid_nr} in this session")
        pgrp = found
    if pg.pgrp is not pgrp:
        self._change_pgrp(pg, pgrp)
        self._emit(EventKind.CHANGED, p.pid, p)


def _change_pgrp(self: Kernel, g: ThreadGroup, new: Pid) -> None:
    old = g.pgrp
    leader = g.leader
    if old is not None and old.pgrp_tasks is not None:
        old.pgrp_tasks.pop(leader, None)
    g.pgrp = new
    if new.pgrp_tasks is None:
        new.pgrp_tasks = {}
    new.pgrp_tasks[leader] = None
    if old is not None and old is not new:
        self._maybe_free(old)


def _change_session(self: Kernel, g: ThreadGroup, new: Pid) -> None:
    old = g.session
    leader = g.leader
    if old is not None and old.session_tasks is not None:
        old.session_tasks.pop(leader, None)
    g.session = new
    if new.session_tasks is None:
        new.session_tasks = {}
    new.session_tasks[leader] = None
    if old is not None and old is not new:
        self._maybe_free(old)


def set_child_subreaper(self: Kernel, task: Task, on: bool = True) -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants go to the nearest subreaper."""
    if not isinstance(on, int):  # bool is an int; a string such as "off" is not
        raise einval(f"child subreaper setting {on!r} is not a boolean")
    self._check_alive(task)
    g = task.group
    g.is_child_subreaper = bool(on)
    if on:  # propagate_has_child_subreaper over the whole subtree
        stack = [g]
        while stack:
            cur = stack.pop()
            for th in cur.threads:
                for c in th.children or ():
                    if not c.group.has_child_subreaper:
                        c.group.has_child_subreaper = True
                        stack.append(c.group)
