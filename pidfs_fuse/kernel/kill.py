"""kill() and the delivery of default actions (kernel/signal.c: ``kill_pid_info``,
``check_kill_permission``, ``sig_task_ignored``, ``prepare_signal``, ``do_signal_stop``).

The functions here are methods of ``Kernel`` (core.py binds them); ``self`` is the kernel.
Signal numbers, names and the default-action table are in signals.py. A signal's default action
happens at once and to the whole thread group: terminate (``_group_exit``), stop, continue, or
nothing; a stopped group keeps fatal signals other than SIGKILL pending until SIGCONT.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from . import signals as S
from .checks import check_int, check_task, check_uid, einval
from .errors import KernelError
from .events import EventKind
from .exit import WCOREFLAG
from .task import EXIT_DEAD, Task, ThreadGroup

if TYPE_CHECKING:
    from .core import Kernel


def kill(self: Kernel, task: Task, sig: int, *, sender: Task | None = None, uid: int | None = None,
         thread: bool = False) -> None:
    """Models kill()/tgkill(): send ``sig`` to ``task``'s process (or, with ``thread``, the
    thread; default actions are process-wide anyway). ``sender`` None means the control
    plane, outside every namespace. ``uid`` is the sender's uid (default: the sender's,
    or 0). Sending to a zombie succeeds and does nothing. EINVAL: not a signal; ESRCH:
    released; EPERM: a non-zero uid that differs from the target's."""
    sig = check_int("signal", sig)
    check_task("task", task)
    if sender is not None:
        check_task("sender", sender)
    if task.exit_state is EXIT_DEAD:  # kill_pid_info(): no task is ESRCH before all else
        raise KernelError(errno.ESRCH, f"task {task.pid.nr} has been reaped")
    if not S.valid_signal(sig):  # check_kill_permission()
        raise einval(f"signal {sig} is outside 0..{S.SIGRTMAX}")
    g = task.group
    if uid is None:
        uid = sender.group.uid if sender is not None else 0
    else:
        check_uid(uid)
    if uid != 0 and uid != g.uid:
        raise KernelError(errno.EPERM, f"uid {uid} may not signal task {task.pid.nr} (uid {g.uid})")
    if sig == 0 or not g.live or g.group_exit:
        return
    if g.unkillable:
        from_ancestor = task.pid.ns is not self.root_ns and (
            sender is None or (sender.pid.ns is not task.pid.ns
                               and sender.pid.ns.is_ancestor_of(task.pid.ns)))
        if not (from_ancestor and S.sig_kernel_only(sig)):
            if sig == S.SIGCONT and g.stopped:
                # prepare_signal() continues the group before sig_ignored() drops the signal
                # (found by the differential oracle: a stopped init resumes on SIGCONT)
                self._deliver(g, sig)
            return  # sig_task_ignored(): init only takes SIGKILL/SIGSTOP, from an ancestor
    self._deliver(g, sig)


def _deliver(self: Kernel, g: ThreadGroup, sig: int, *, dequeued: bool = False) -> None:
    """One signal's default action on the group. ``g.pending`` is the shared pending set
    (ShdPnd): a fatal signal stays in it (complete_signal() turns it into SIGKILL for each
    thread and leaves it queued, so the zombie shows it) unless a running thread ``dequeued``
    it; whatever was pending when the group died stays too; signals reaching a stopped group
    wait there, stop signals included, until SIGCONT flushes the stop signals and runs the rest
    (prepare_signal(); found by the differential oracle)."""
    action = S.default_action(sig)
    if action is S.Action.CONT:
        # prepare_signal(): SIGCONT resumes a stopped group even when it is ignored
        g.pending &= ~sum(1 << s for s in (S.SIGSTOP, S.SIGTSTP, S.SIGTTIN, S.SIGTTOU))
        if g.stopped:
            g.stopped = False
            g.stop_code = 0
            g.continued = True
            self._notify_group_change(g)
        while g.pending and not g.group_exit:
            pending = g.pending
            first = (pending & -pending).bit_length() - 1
            g.pending = pending & ~(1 << first)
            self._deliver(g, first, dequeued=True)
        return
    if g.ignores(sig) and not S.sig_kernel_only(sig):
        return
    if action is S.Action.IGNORE:
        return
    if action is S.Action.STOP:
        if g.stopped:
            g.pending |= 1 << sig  # nobody runs to dequeue it; SIGCONT flushes it
            return
        if sig != S.SIGSTOP and g.pgrp is not None and self._will_become_orphaned_pgrp(g.pgrp, None):
            return  # get_signal(): SIGTSTP/SIGTTIN/SIGTTOU do not stop an orphaned group
        g.pending &= ~(1 << S.SIGCONT)
        if not g.stopped:
            g.stopped = True
            g.stop_code = sig
            g.continued = False
            self._notify_group_change(g)
        return
    if g.stopped and sig != S.SIGKILL:
        g.pending |= 1 << sig  # acted on once the group continues
        return
    if not dequeued:
        g.pending |= 1 << sig
    self._group_exit(g, sig | (WCOREFLAG if action is S.Action.CORE else 0))


def _notify_group_change(self: Kernel, g: ThreadGroup) -> None:
    leader = g.leader
    self._emit(EventKind.CHANGED, leader.pid, leader)
    if g.parent is not None:
        self._emit(EventKind.CHILD, g.parent.pid, g.parent)
