"""Exit, reparenting and wait (kernel/exit.c: ``do_exit``, ``exit_notify``,
``forget_original_parent``, ``release_task``, ``do_wait``; kernel/pid_namespace.c's
``zap_pid_ns_processes`` is in pid_namespace.py).

The functions here are methods of ``Kernel`` (core.py binds them); ``self`` is the kernel.
A thread that exits becomes a zombie, or is released at once when nobody will wait for it
(threads, autoreaping children, children of a parent that ignores SIGCHLD). A leader whose
threads still run stays an unreapable zombie until its group is empty. Children of an exiting
task go to a live thread of its group, else the nearest subreaper, else the namespace's init.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import signals as S
from .checks import check_int, check_task, einval
from .errors import KernelError, ModelBug
from .events import EventKind
from .pid import ExitInfo
from .pidfs import PidFd
from .task import EXIT_DEAD, EXIT_RUNNING, EXIT_ZOMBIE, TF_AUTOREAP, TF_EXITING, TF_WAIT_PID, Task, ThreadGroup

if TYPE_CHECKING:
    from .core import Kernel
    from .pid import Pid

# waitid (include/uapi/linux/wait.h)
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
WNOHANG = 0x00000001
WSTOPPED = 0x00000002
WEXITED = 0x00000004
WCONTINUED = 0x00000008
WNOWAIT = 0x01000000
WNOTHREAD = 0x20000000  # __WNOTHREAD
WALL = 0x40000000  # __WALL
WCLONE = 0x80000000  # __WCLONE
__WNOTHREAD, __WALL, __WCLONE = WNOTHREAD, WALL, WCLONE
WAIT_KNOWN = WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE

# The wait status word (glibc bits/waitstatus.h): an exit is ``code << 8``; a death by signal is
# the signal, | WCOREFLAG when a core was dumped; a stop is ``sig << 8 | W_STOPPED``; a
# continue is W_CONTINUED.
WCOREFLAG = 0x80
W_STOPPED = 0x7F
W_CONTINUED = 0xFFFF


@dataclass(frozen=True, slots=True)
class WaitResult:
    """What waitid() fills in: si_pid (in the waiter's namespace), si_code and si_status."""

    pid: int
    kind: str  # "exited" | "killed" | "dumped" | "stopped" | "continued"
    code: int  # exit code, or the signal
    status: int  # the wait4() status word
    uid: int
    task: Task

    def __str__(self) -> str:
        return f"{self.pid} continued" if self.kind == "continued" else f"{self.pid} {self.kind} {self.code}"


def describe_status(status: int) -> tuple[str, int]:
    """Decode a raw wait status into (kind, code) as WIFEXITED/WIFSIGNALED/WCOREDUMP would."""
    if status == W_CONTINUED:
        return "continued", S.SIGCONT
    if status & 0xFF == W_STOPPED:
        return "stopped", (status >> 8) & 0xFF
    if status & 0x7F == 0:
        return "exited", (status >> 8) & 0xFF
    return ("dumped" if status & WCOREFLAG else "killed"), status & 0x7F


def exit(self: Kernel, task: Task, code: int = 0) -> None:
    """Models sys_exit(): this thread exits with ``code`` (0..255); the group lives on while
    other threads do. EINVAL for a code outside 0..255, ESRCH for an exited task, EPERM for
    the last thread of the root namespace's init (Linux would panic)."""
    code = _exit_code_arg(code)
    self._check_alive(task)
    g = task.group
    if g.live == 1 and task.pid.ns is self.root_ns and g is self.init.group:
        raise KernelError(errno.EPERM, "the root namespace's init cannot exit (Linux panics)")
    self._do_exit(task, code << 8)


def exit_group(self: Kernel, task: Task, code: int = 0) -> None:
    """Models sys_exit_group(): every thread exits; the group's code is ``code``."""
    code = _exit_code_arg(code)
    self._check_alive(task)
    if task.group is self.init.group:
        raise KernelError(errno.EPERM, "the root namespace's init cannot exit (Linux panics)")
    self._group_exit(task.group, code << 8)


def _exit_code_arg(code: int) -> int:
    """An exit code: an int in 0..255, else EINVAL."""
    # Decides the common case in one test (an inline check_int()): exit_group() runs this for
    # every process, see bench/model.py clone_cycle.
    if code.__class__ is int and 0 <= code <= 255:
        return code
    code = check_int("exit code", code)
    if not 0 <= code <= 255:
        raise einval(f"exit code {code} is outside 0..255")
    return code


def _check_alive(self: Kernel, task: Task) -> None:
    """EINVAL unless ``task`` is a Task; ESRCH once it has exited."""
    # Decides the common case in one test (check_task() and Task.alive, inline): exit_group()
    # and waitid() run this on every call, see bench/model.py clone_cycle.
    if task.__class__ is Task and task.exit_state is EXIT_RUNNING and not task.flags & TF_EXITING:
        return
    check_task("task", task)
    if not task.alive:
        raise KernelError(errno.ESRCH, f"task {task.pid.nr} has already exited")


def _group_exit(self: Kernel, g: ThreadGroup, status: int) -> None:
    """do_group_exit(): the first caller sets the group's code; every live thread exits with it.
    Other threads go first so the leader is the last one out."""
    if g.group_exit:
        return
    g.group_exit = True
    g.group_exit_code = status
    g.stopped = False  # the shared pending set stays as it is: a zombie shows it (ShdPnd)
    leader = g.leader
    if len(g.threads) > 1:
        for t in [t for t in g.threads if t is not leader and t.alive]:
            if t.alive:
                self._do_exit(t, status)
    if leader.alive:
        self._do_exit(leader, status)


def _do_exit(self: Kernel, t: Task, status: int) -> None:
    """do_exit() + exit_notify() for one thread; then, once the outermost exit is done, the
    exit signals it sent to parents (``_parent_signals``) take their default action."""
    self._exit_depth += 1
    try:
        _do_exit_one(self, t, status)
    finally:
        self._exit_depth -= 1
    if self._exit_depth == 0:
        while self._parent_signals:
            g, sig = self._parent_signals.pop(0)
            if g.live and not g.group_exit:
                self._deliver(g, sig)


def _do_exit_one(self: Kernel, t: Task, status: int) -> None:
    t.flags |= TF_EXITING
    t.exit_code = status
    g = t.group
    g.live -= 1
    group_dead = g.live == 0
    if group_dead and g.files:
        self._close_files(g)
    if t.children or t.pid.ns.child_reaper is t:  # otherwise forgetting it changes nothing
        self._forget_original_parent(t)
    if group_dead:
        self._kill_orphaned_pgrp(g.leader, None)
    t.exit_state = EXIT_ZOMBIE
    if t is g.leader:
        autoreap = len(g.threads) == 1 and self._do_notify_parent(t, t.exit_signal)
    else:
        autoreap = True
        if self.listener is not None:
            self._emit(EventKind.EXITED, t.pid, t)  # do_notify_pidfd() for thread handles
    if autoreap:
        self._release_task(t)
    elif self.listener is not None:
        self._emit(EventKind.CHANGED, t.pid, t)


def _do_notify_parent(self: Kernel, t: Task, sig: int) -> bool:
    """do_notify_parent(): wake handles (the group is empty now) and the parent; True when
    the child is to be released at once (parent ignores SIGCHLD, or CLONE_AUTOREAP)."""
    listener = self.listener
    if listener is not None:
        self._emit(EventKind.EXITED, t.pid, t)
    parent = t.group.parent
    if parent is None:
        return True
    # CLONE_AUTOREAP: no signal, but __wake_up_parent() still runs (a blocked wait rescans)
    autoreap = bool(t.flags & TF_AUTOREAP) or (
        sig == S.SIGCHLD and parent.group.ignores(S.SIGCHLD))
    if sig and sig != S.SIGCHLD and not parent.group.unkillable:
        # __send_signal_locked(sig, .., tsk->parent): a custom exit signal is a real signal to
        # the parent (SIGUSR1's default action kills it); a namespace init ignores it
        # (sig_task_ignored). Found by the differential oracle.
        self._parent_signals.append((parent.group, sig))
    if listener is not None:
        self._emit(EventKind.CHILD, parent.pid, parent)
    return autoreap


def _find_alive_thread(self: Kernel, t: Task) -> Task | None:
    for th in t.group.threads:
        if th.alive:
            return th
    return None


def _find_child_reaper(self: Kernel, father: Task) -> Task:
    ns = father.pid.ns
    reaper = ns.child_reaper
    if reaper is None:  # its first pid, 1, made a child reaper before any other could exist
        raise ModelBug(f"{father!r} exits in pid namespace {ns.inum}, which never had an init")
    if reaper is not father:
        return reaper
    alive = self._find_alive_thread(father)
    if alive is not None:
        ns.child_reaper = alive
        return alive
    self._zap_pid_ns(ns, father)
    return father


def _find_new_reaper(self: Kernel, father: Task, child_reaper: Task) -> Task:
    """find_new_reaper(): a live thread of the group, else the nearest live subreaper
    ancestor in the same namespace, else the namespace's child reaper."""
    alive = self._find_alive_thread(father)
    if alive is not None:
        return alive
    g = father.group
    if g.has_child_subreaper:
        ns = father.pid.ns
        r = g.parent
        while r is not None and r.pid.ns is ns and r is not self.init:
            if r.group.is_child_subreaper:
                alive = self._find_alive_thread(r)
                if alive is not None:
                    return alive
            r = r.group.parent
    return child_reaper


def _forget_original_parent(self: Kernel, father: Task) -> None:
    reaper = self._find_child_reaper(father)
    if not father.children:
        return
    reaper = self._find_new_reaper(father, reaper)
    same_group = reaper.group is father.group
    moved = list(father.children)
    father.children = None
    if reaper.children is None:
        reaper.children = {}
    orphan_checks: dict[int, Task] = {}  # one reparented child per process group
    for p in moved:
        p.group.parent = reaper
        reaper.children[p] = None
        if same_group or p.exit_state is EXIT_DEAD:
            continue
        # reparent_leader()
        p.exit_signal = S.SIGCHLD
        if p.group.pgrp is not None:
            orphan_checks.setdefault(id(p.group.pgrp), p)
        if (p.exit_state is EXIT_ZOMBIE and len(p.group.threads) == 1
                and self._do_notify_parent(p, p.exit_signal)):
            self._release_task(p)
            continue
        self._emit(EventKind.CHANGED, p.pid, p)
    # kill_orphaned_pgrp(p, father) runs per child in Linux but only fires once the group's
    # last link to father is gone, i.e. once per group after the whole move; the signals
    # go out after the loop (Linux delivers them asynchronously anyway).
    for p in orphan_checks.values():
        self._kill_orphaned_pgrp(p, father)


def _will_become_orphaned_pgrp(self: Kernel, pgrp: Pid, ignored: Task | None) -> bool:
    """will_become_orphaned_pgrp(): no member (other than ``ignored``, dead ones, and those
    whose parent is the global init) has a parent in another group of the same session."""
    for p in pgrp.pgrp_tasks or ():
        g = p.group
        if p is ignored or (p.exit_state is not EXIT_RUNNING and len(g.threads) == 1):
            continue
        rp = g.parent
        if rp is None or rp.group is self.init.group:
            continue
        if rp.group.pgrp is not pgrp and rp.group.session is g.session:
            return False
    return True


def _kill_orphaned_pgrp(self: Kernel, tsk: Task, parent: Task | None) -> None:
    """kill_orphaned_pgrp(): when ``tsk``'s exit (``parent`` None) or its move away from
    ``parent`` orphans its process group while a member is stopped, every member gets
    SIGHUP and then SIGCONT (POSIX job control; a namespace init ignores the SIGHUP)."""
    g = tsk.group
    pgrp = g.pgrp
    ignored: Task | None = tsk
    if parent is None:
        parent = g.parent
    else:
        ignored = None
    if (pgrp is None or parent is None or parent.group.pgrp is pgrp
            or parent.group.session is not g.session
            or not self._will_become_orphaned_pgrp(pgrp, ignored)
            or not any(m.group.stopped for m in pgrp.pgrp_tasks or ())):
        return
    for sig in (S.SIGHUP, S.SIGCONT):
        for m in list(pgrp.pgrp_tasks or ()):
            mg = m.group
            if mg.live and not mg.group_exit and not (mg.unkillable and sig == S.SIGHUP):
                self._deliver(mg, sig)


def _release_task(self: Kernel, p: Task) -> None:
    """release_task(): the task leaves its pids; handles see POLLHUP; numbers may be freed."""
    self.sched.on_release(p)
    p.exit_state = EXIT_DEAD
    g = p.group
    pid = p.pid
    if pid.attr is not None:  # pidfs_exit(): only pids that ever had a handle keep a record
        pid.attr.exit = ExitInfo(p.exit_code, bool(p.exit_code & WCOREFLAG) and bool(p.exit_code & 0x7F))
    del g.threads[p]
    self.nr_threads -= 1
    pid.task = None
    leader = g.leader
    if p is leader:
        pid.tgid_task = None
        if g.pgrp is not None and g.pgrp.pgrp_tasks is not None:
            g.pgrp.pgrp_tasks.pop(p, None)
        if g.session is not None and g.session.session_tasks is not None:
            g.session.session_tasks.pop(p, None)
        parent = g.parent
        if parent is not None and parent.children is not None:
            parent.children.pop(p, None)
        if self.listener is not None:
            self._emit(EventKind.REAPED, pid, p)
        self._maybe_free(pid)
        # _maybe_free() of the group and session pids; one whose task lives keeps them
        pg, sess = g.pgrp, g.session
        if pg is not None and pg is not pid and pg.task is None:
            self._maybe_free(pg)
        if sess is not None and sess is not pid and sess is not pg and sess.task is None:
            self._maybe_free(sess)
    else:
        if self.listener is not None:
            self._emit(EventKind.REAPED, pid, p)
        self._maybe_free(pid)
        if len(g.threads) == 1 and leader.exit_state is EXIT_ZOMBIE:
            if g.group_exit:
                leader.exit_code = g.group_exit_code
            if self._do_notify_parent(leader, leader.exit_signal):
                self._release_task(leader)


# -- wait (do_wait) ---------------------------------------------------------------------------

def waitid(self: Kernel, parent: Task, idtype: int = P_ALL, id: int = 0, options: int = WEXITED,
           *, pidfd: PidFd | None = None) -> WaitResult | None:
    """Models waitid(): the first eligible child's state change, or None when there are
    eligible children but none is ready (the kernel would block, or return 0 with WNOHANG).

    EINVAL: unknown options, none of WEXITED/WSTOPPED/WCONTINUED, an unknown idtype, a
    negative id (or 0 for P_PID); EBADF: P_PIDFD without an open handle; ECHILD: nothing to
    wait for; EAGAIN: P_PIDFD on a non-blocking handle when nothing is ready and WNOHANG was
    not given.
    """
    # check_int() only for what is not a plain int already (bench/model.py clone_cycle)
    if options.__class__ is not int:
        options = check_int("wait options", options)
    if idtype.__class__ is not int:
        idtype = check_int("idtype", idtype)
    if id.__class__ is not int:
        id = check_int("id", id)
    if options & ~WAIT_KNOWN or options < 0:
        raise einval(f"wait options {options:#x} include unknown bits {options & ~WAIT_KNOWN:#x}")
    if not options & (WEXITED | WSTOPPED | WCONTINUED):
        raise einval("wait needs at least one of WEXITED, WSTOPPED, WCONTINUED")
    self._check_alive(parent)
    ns = parent.pid.ns
    target: Pid | None = None
    nonblock = False
    if idtype == P_ALL:
        pass
    elif idtype == P_PID:
        if id <= 0:
            raise einval(f"P_PID needs a pid > 0, got {id}")
        target = self.find_pid(ns, id)
    elif idtype == P_PGID:
        if id < 0:
            raise einval(f"P_PGID needs a pgid >= 0, got {id}")
        target = parent.group.pgrp if id == 0 else self.find_pid(ns, id)
    elif idtype == P_PIDFD:
        if id < 0:
            raise einval(f"P_PIDFD needs a descriptor >= 0, got {id}")
        if not isinstance(pidfd, PidFd) or pidfd.closed:
            raise KernelError(errno.EBADF, f"descriptor {id} is not an open pidfd")
        target = pidfd.pid
        nonblock = pidfd.nonblock
    else:
        raise einval(f"unknown idtype {idtype}")
    if idtype != P_ALL and target is None:
        raise KernelError(errno.ECHILD, f"no child matches id {id}")
    res, has_candidates = self._do_wait(parent, idtype, target, options)
    if res is not None:
        return res
    if not has_candidates:
        raise KernelError(errno.ECHILD, f"task {parent.pid.nr} has no child to wait for"
                          + (f" with id {id}" if idtype != P_ALL else ""))
    if nonblock and not options & WNOHANG:
        raise KernelError(errno.EAGAIN, "the pidfd is non-blocking and the child has not changed state")
    return None


def _do_wait(self: Kernel, parent: Task, idtype: int, target: Pid | None,
             options: int) -> tuple[WaitResult | None, bool]:
    # No copies of the thread and child lists: every path that changes them returns at once.
    waiters = (parent,) if options & WNOTHREAD else parent.group.threads
    found = False
    for th in waiters:
        if not th.children:
            continue
        for p in th.children:
            if p.exit_state is EXIT_DEAD:
                continue
            if idtype == P_ALL:
                if p.flags & TF_WAIT_PID:
                    continue
            elif idtype == P_PGID:
                if p.group.pgrp is not target or p.flags & TF_WAIT_PID:
                    continue
            elif p.pid is not target:
                continue
            if not options & WALL and ((p.exit_signal != S.SIGCHLD) ^ bool(options & WCLONE)):
                continue
            g = p.group
            if p.exit_state is EXIT_ZOMBIE:
                if len(g.threads) == 1:  # not delay_group_leader()
                    if options & WEXITED:
                        return self._wait_task_zombie(parent, p, options), True
                    continue
                found = True  # delay_group_leader(): its live threads will change state
            else:
                found = True
            if options & WSTOPPED and g.stopped and g.stop_code:
                code = g.stop_code
                if not options & WNOWAIT:
                    g.stop_code = 0
                return WaitResult(p.pid.nr_in(parent.pid.ns), "stopped", code, (code << 8) | W_STOPPED,
                                  g.uid, p), True
            if options & WCONTINUED and g.continued:
                if not options & WNOWAIT:
                    g.continued = False
                return WaitResult(p.pid.nr_in(parent.pid.ns), "continued", S.SIGCONT, W_CONTINUED,
                                  g.uid, p), True
    return None, found


def _wait_task_zombie(self: Kernel, parent: Task, p: Task, options: int) -> WaitResult:
    g = p.group
    status = g.group_exit_code if g.group_exit else p.exit_code
    kind, code = describe_status(status)
    res = WaitResult(p.pid.nr_in(parent.pid.ns), kind, code, status, g.uid, p)
    if not options & WNOWAIT:
        self.sched.account_reaped(parent, p)
        self._release_task(p)
    return res
