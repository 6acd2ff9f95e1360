"""execve() and de_thread() (fs/exec.c).

The functions here are methods of ``Kernel`` (core.py binds them); ``self`` is the kernel.
Exec runs no program: it kills the other threads, gives the process a new comm and argv, and,
from a non-leader thread, hands that thread the leader's pid (``exchange_tids``), start time,
parent and children while the old leader disappears without telling anyone.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from . import signals as S
from .checks import einval
from .errors import KernelError
from .events import EventKind
from .pid import ExitInfo
from .task import EXIT_DEAD, TF_AUTOREAP, TF_FORKNOEXEC, TF_WAIT_PID, Task, comm_cut

if TYPE_CHECKING:
    from .core import Kernel


def execve(self: Kernel, task: Task, comm: str, argv: tuple[str, ...] | list[str] | None = None,
           *, exe: str | None = None) -> None:
    """Models execve(): other threads are killed; from a non-leader, de_thread() gives the
    exec'ing thread the leader's pid (and start time, parent, children) and the old leader
    disappears without notifying anyone. EINVAL for an empty or non-string comm."""
    if not isinstance(comm, str) or not comm or "\n" in comm or "\0" in comm:
        raise einval(f"comm {comm!r} must be a non-empty line of text")
    if argv is not None and (not isinstance(argv, (tuple, list))
                             or not all(isinstance(a, str) for a in argv)):
        raise einval(f"argv {argv!r} must be a list of strings")
    if exe is not None and not isinstance(exe, str):
        raise einval(f"exe {exe!r} is not a string")
    self._check_alive(task)
    g = task.group
    if g.group_exit:
        raise KernelError(errno.ESRCH, f"process {g.leader.pid.nr} is exiting")
    leader = g.leader
    # zap_other_threads() in the group_exec_task case: the others exit with status 0
    for t in [t for t in g.threads if t is not task and t is not leader]:
        if t.alive:
            self._do_exit(t, 0)
    if task is not leader:
        if leader.alive:
            self._do_exit(leader, 0)  # a zombie with a live thread: nobody is told
        self._de_thread(task, leader)
    if g.files:
        # every pidfd is O_CLOEXEC (pidfd_open() and CLONE_PIDFD both set it): do_close_on_exec()
        # closes them all (found by the differential oracle)
        self._close_files(g)
    task.exit_signal = S.SIGCHLD
    task.comm = comm_cut(comm)
    g.argv = tuple(argv) if argv is not None else (comm,)
    if exe is not None:
        g.exe = exe
    task.flags &= ~TF_FORKNOEXEC
    self._emit(EventKind.CHANGED, task.pid, task)


def _de_thread(self: Kernel, task: Task, leader: Task) -> None:
    g = task.group
    lpid, tpid = leader.pid, task.pid
    # exchange_tids() + transfer_pid(PIDTYPE_TGID)
    task.pid, leader.pid = lpid, tpid
    lpid.task, tpid.task = task, leader
    lpid.tgid_task = None
    self._attach_tgid(lpid, task)
    for links in (g.pgrp.pgrp_tasks if g.pgrp else None, g.session.session_tasks if g.session else None):
        if links is not None and leader in links:
            del links[leader]
            links[task] = None
    task.start_time = leader.start_time
    leader.exit_signal = -1
    task.flags |= leader.flags & (TF_WAIT_PID | TF_AUTOREAP)
    parent = g.parent
    if parent is not None and parent.children is not None:
        parent.children = {(task if c is leader else c): None for c in parent.children}
    if leader.children:
        if task.children is None:
            task.children = {}
        task.children.update(leader.children)
        leader.children = None
    g.leader = task
    g.threads = {task: None, **{t: None for t in g.threads if t is not task}}
    if lpid.ns.child_reaper is leader:
        lpid.ns.child_reaper = task
    if self.init is leader:
        self.init = task
    # release_task(leader): silent, its exit_signal is -1 now
    leader.exit_state = EXIT_DEAD
    if tpid.attr is not None:
        tpid.attr.exit = ExitInfo(leader.exit_code, False)  # WIFEXITED(0)
    del g.threads[leader]
    self.nr_threads -= 1
    tpid.task = None
    self._emit(EventKind.REAPED, tpid, leader)
    self._maybe_free(tpid)
