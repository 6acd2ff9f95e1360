"""The model's facade: ``Kernel`` holds the state (namespaces, counters, listener, clock) and
offers every system call as a method. This file keeps what kernel/pid.c does (pid allocation,
lookups, the tagged scan); the other calls live in files named after the Linux source they
model, and are bound into ``Kernel`` at the end of its class body: fork.py (kernel/fork.c),
exit.py (kernel/exit.c), kill.py (kernel/signal.c), exec.py (fs/exec.c), sessions.py
(kernel/sys.c), pid_namespace.py (kernel/pid_namespace.c), pidfs.py (fs/pidfs.c).

Everything is synchronous and deterministic: a signal with a terminating default action ends the
thread group at once, ``waitid`` never sleeps (it returns None where the kernel would block and
the caller decides whether to wait for a CHILD event), and time is an injected clock. Entry points
take ``Task`` objects and raise ``KernelError`` with Linux's errno; on error nothing has changed.

Deliberate departures, all for a process model with no real execution:
- Signals have default actions or are ignored; there are no handlers, no ptrace, no
  per-thread signal masks.
- Privilege is uid 0 (no capabilities or user namespaces).
- Pending signals are kept per process (ShdPnd), never per thread: SigPnd is always 0. Linux's
  complete_signal() also puts SIGKILL in the private set of every thread of a group a fatal
  signal kills, exited ones included, and only running threads dequeue it, so a leader that
  exited before its group was killed shows SigPnd 0x100 there (the differential oracle masks
  exactly this difference and counts it).
- Init of a namespace reaps its children while dying, but zombies whose parent lives outside the
  namespace are left to that parent (the kernel would make init wait for them).
- The root namespace's init cannot exit (Linux panics).
- A failed allocation rewinds the cursors (ns_last_pid) of the levels it had already allocated
  at; Linux removes those ids but leaves their cursors advanced, except for a namespace whose
  very first allocation failed, which it resets to 0. So a failed clone (EAGAIN at an outer
  level, ENOMEM in a dead namespace) changes nothing, as the spec asks of every failed call.
- alloc_pid() keeps kernel 6.18's order: levels are checked and allocated one at a time from the
  innermost, so e.g. EEXIST at an inner level wins over EINVAL at an outer one (6.19+ validates
  every set_tid entry first), and an automatic number other than 1 in a namespace without init
  is not refused (6.19+ says EINVAL; unreachable here: such a namespace's cursor is at 0).
- A parent's exec does not turn a child's custom exit signal into SIGCHLD (no exec ids).
- pidfs inode numbers come from one global counter starting at 2, as in 6.14-6.18; 6.19+
  hands them out in per-CPU batches (unique and increasing per CPU only).
- Writing pid_max without privilege is EPERM, like ns_last_pid (the kernel refuses pid_max at
  open time through the sysctl's file mode, which a caller sees as EACCES).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any, cast

from . import exec as exec_
from . import exit as exit_
from . import fork, pid_namespace, pidfs, sessions, terminals
from . import kill as kill_
from . import namespaces as ns_ids  # (Kernel.namespaces() is the pid namespaces)
from .checks import check_int, check_ns, einval
from .errors import KernelError
from .events import Event, EventKind, Listener
from .exit import (
    P_ALL,
    P_PGID,
    P_PID,
    P_PIDFD,
    WAIT_KNOWN,
    WALL,
    WCLONE,
    WCONTINUED,
    WEXITED,
    WNOHANG,
    WNOTHREAD,
    WNOWAIT,
    WSTOPPED,
    WaitResult,
    describe_status,
)
from .fork import (
    CLONE_AUTOREAP,
    CLONE_KNOWN,
    CLONE_NEWPID,
    CLONE_NNP,
    CLONE_PARENT,
    CLONE_PIDFD,
    CLONE_PIDFD_AUTOKILL,
    CLONE_THREAD,
    CLONE_WAIT_PID,
    CloneResult,
)
from .idr import Idr
from .pid import PID_MAX_DEFAULT, PROC_PID_INIT_INO, RESERVED_PIDS, Pid, PidNamespace, check_pid_max
from .pidfs import PIDFD_NONBLOCK, PIDFD_THREAD, POLLHUP, POLLIN, POLLRDNORM, PidFd
from .sched import Sched
from .task import TASK_COMM_LEN, Task, ThreadGroup, comm_cut

#: What ``from .core import ...`` has always offered: the constants and records now defined
#: next to the system calls they belong to are re-exported here.
__all__ = [
    "CLONE_AUTOREAP",
    "CLONE_KNOWN",
    "CLONE_NEWPID",
    "CLONE_NNP",
    "CLONE_PARENT",
    "CLONE_PIDFD",
    "CLONE_PIDFD_AUTOKILL",
    "CLONE_THREAD",
    "CLONE_WAIT_PID",
    "PIDFD_NONBLOCK",
    "PIDFD_THREAD",
    "POLLHUP",
    "POLLIN",
    "POLLRDNORM",
    "P_ALL",
    "P_PGID",
    "P_PID",
    "P_PIDFD",
    "TASK_COMM_LEN",
    "WAIT_KNOWN",
    "WALL",
    "WCLONE",
    "WCONTINUED",
    "WEXITED",
    "WNOHANG",
    "WNOTHREAD",
    "WNOWAIT",
    "WSTOPPED",
    "CloneResult",
    "Kernel",
    "PidFd",
    "WaitResult",
    "describe_status",
]


#: kernel/fork.c MAX_THREADS (FUTEX_TID_MASK): the largest kernel.threads-max
MAX_THREADS = 0x3FFFFFFF


class Kernel:
    """The in-process model of Linux's pid machinery.

    ``Kernel()`` boots the root namespace (pid_max 32768) with its init as pid 1.
    ``listener`` receives ``Event``s synchronously; ``clock`` returns nanoseconds since boot (the
    source of a real clock); without it the clock is frozen at ``start`` and moves with ``sched.advance``.
    ``max_threads`` is kernel.threads-max: clone fails with EAGAIN while that many tasks exist
    (None: no cap).
    """

    def __init__(self, *, listener: Listener | None = None, clock: Callable[[], int] | None = None,
                 init_comm: str = "init", pid_max: int = PID_MAX_DEFAULT, start: int = 0,
                 max_threads: int | None = None) -> None:
        check_pid_max(pid_max)
        self.listener = listener
        #: kernel.threads-max: the most tasks (``nr_threads``) the table holds; None: no cap
        self.max_threads = max_threads
        #: the clock, cpu accounting and load average (sched.py): frozen at 0 without ``clock``,
        #: else real, moving with ``clock`` (ns since boot)
        self.sched = Sched(self, clock() if clock is not None else start, clock)
        self.clock: Callable[[], int] = self.sched.now
        #: carried for the control plane (timed.py), which alone interprets them: timeline events
        #: (ns, command lines) in time order, and armed triggers by (request, path)
        self.timeline: list[tuple[int, tuple[str, ...]]] = []
        self.triggers: dict[tuple[str, str], list[Any]] = {}
        self.trigger_seq = 0
        self._next_ino = 2  # pidfs: one global counter from 2, never reused
        self._next_ns_inum = PROC_PID_INIT_INO + 0x100
        #: live struct pids in pidfs-inode order (inos only grow), for /.pidfs/<ino> lookups
        self._by_ino: list[Pid] = []
        self._by_ino_dead = 0
        #: exit signals (other than SIGCHLD) do_notify_parent() sent while a thread was exiting;
        #: delivered once the outermost exit is done (the parent acts on them when it runs)
        self._exit_depth = 0
        self._parent_signals: list[tuple[ThreadGroup, int]] = []
        self.total_forks = 0  # /proc/stat "processes"
        self.ttys: dict[int, terminals.Terminal] = {}  # controlling terminals by device number
        self.nr_threads = 0  # tasks not yet released
        self.root_ns = PidNamespace(level=0, parent=None, inum=PROC_PID_INIT_INO, pid_max=pid_max)
        pid = self._alloc_pid(self.root_ns, (), True, True)
        # a group and its leader refer to each other: the leader is filled in right below
        g = ThreadGroup(leader=cast(Task, None), argv=(init_comm,), exe=f"/sbin/{init_comm}")
        init = Task(pid=pid, group=g, comm=comm_cut(init_comm), start_time=0,
                    exit_signal=0)
        g.leader = init
        g.pgrp = g.session = pid
        g.session_leader = True
        self._attach_new(init, g, leader=True, parent=None)
        self.init = init

    # -- events ------------------------------------------------------------------------------

    def _emit(self, kind: EventKind, pid: Pid, task: Task | None = None) -> None:
        """Call the listener, if any, with one event. Hot paths (clone, exit, reap) test
        ``self.listener is not None`` before calling this, so that a kernel without a listener
        builds no event and makes no call (bench/model.py clone_cycle runs without one)."""
        if self.listener is not None:
            self.listener(Event(kind, pid, task))

    def notify_changed(self, task: Task) -> None:
        """Tell the listener that what procfs shows of ``task`` changed from outside the system
        calls (the control plane's ``set``, see ``fields``): one CHANGED event on its pid."""
        self._emit(EventKind.CHANGED, task.pid, task)

    # -- lookups (find_pid_ns, find_task_by_pid_ns, the tagged scan) ---------------------------

    def find_pid(self, ns: PidNamespace, nr: int) -> Pid | None:
        return ns.idr.find(nr) if type(nr) is int else None  # not True, not 1.0

    def find_task(self, ns: PidNamespace, nr: int) -> Task | None:
        """find_task_by_pid_ns(): the task whose own pid is ``nr`` in ``ns`` (threads too)."""
        pid = self.find_pid(ns, nr)
        return pid.task if pid is not None else None

    def get_task(self, ns: PidNamespace, nr: int) -> Task:
        """Like find_task but raises ESRCH naming the number."""
        nr = check_int("pid", nr)
        check_ns(ns)
        t = self.find_task(ns, nr)
        if t is None:
            raise KernelError(errno.ESRCH, f"no task with pid {nr} in pid namespace {ns.inum}")
        return t

    def next_tgid(self, ns: PidNamespace, nr: int, *, linear: bool = False) -> tuple[int, Task] | None:
        """The first thread-group leader numbered >= ``nr`` in ``ns`` (fs/proc/base.c next_tgid).

        Tagged (default): walks only ids tagged at allocation (seed 000 find_get_tgid_task),
        skipping tagged pids that no longer have a TGID task (the daemonize false positive).
        Linear: walks every allocated id as Linux's ``find_ge_pid`` loop does.
        """
        idr = ns.idr
        step = idr.next_used if linear else idr.next_tagged
        nr = max(check_int("pid", nr), 0)
        while True:
            n = step(nr)
            if n < 0:
                return None
            pid = idr.find(n)
            t = pid.tgid_task if pid is not None else None
            if t is not None:
                return n, t
            nr = n + 1

    def iter_tgids(self, ns: PidNamespace, start: int = 0, *, linear: bool = False) -> Iterator[tuple[int, Task]]:
        nr = start
        while (hit := self.next_tgid(ns, nr, linear=linear)) is not None:
            yield hit
            nr = hit[0] + 1

    def scan_tgids(self, ns: PidNamespace, nr: int, *, linear: bool = False) -> Iterator[tuple[int, Task]]:
        """``next_tgid`` from ``nr`` on, repeated, for a listing that changes nothing while it
        runs (a readdir reply): the same leaders as ``iter_tgids`` at a fraction of the cost per
        entry, since the id map is scanned a word at a time. The table must not change until the
        iteration ends (``iter_tgids`` sees changes made between steps). A bad ``nr`` fails
        here, not at the first step."""
        nr = max(check_int("pid", nr), 0)
        return self._scan_tgids(ns.idr, nr, linear)

    @staticmethod
    def _scan_tgids(idr: Idr[Pid], nr: int, linear: bool) -> Iterator[tuple[int, Task]]:
        find = idr.find
        for n in (idr.iter_used(nr) if linear else idr.iter_tagged(nr)):
            pid = find(n)
            t = pid.tgid_task if pid is not None else None
            if t is not None:
                yield n, t

    def namespaces(self) -> Iterator[PidNamespace]:
        stack = [self.root_ns]
        while stack:
            ns = stack.pop()
            yield ns
            stack.extend(reversed(ns.children))

    # -- allocation (kernel/pid.c) ----------------------------------------------------------

    def _alloc_pid(self, ns: PidNamespace, set_tid: tuple[int, ...], tag: bool, privileged: bool) -> Pid:
        """Models alloc_pid(): innermost level first, cyclic per namespace, rollback on failure.

        EINVAL: more set_tid entries than levels, a set_tid value outside 1..pid_max-1 of its
        level, or a value other than 1 in a namespace without init; EPERM: set_tid without
        privilege; EEXIST: the set_tid number is taken; EAGAIN: a level is full; ENOMEM: the
        namespace no longer admits pids (its init died; kernel/pid.c explains the errno).
        """
        nset = len(set_tid)
        level = ns.level
        if nset > level + 1:
            raise einval(f"set_tid has {nset} entries but the new task has only "
                          f"{level + 1} pid namespace level(s)")
        anc = ns.ancestors
        taken: list[tuple[Idr[Pid], int, int]] = []  # (id map, number, its cursor before), innermost first
        nrs: list[int] = []
        try:
            for i in range(level, -1, -1):
                tmp = anc[i]
                idr = tmp.idr
                cursor = idr.cursor
                idx = level - i
                if idx < nset:  # an entry of 0 is an error, not "any number"
                    tid = set_tid[idx]
                    if not 1 <= tid < tmp.pid_max:
                        raise einval(f"set_tid[{idx}]={tid} is outside 1..{tmp.pid_max - 1} "
                                      f"(pid_max of namespace {tmp.inum})")
                    if tid != 1 and tmp.child_reaper is None:
                        raise einval(f"set_tid[{idx}]={tid}: namespace {tmp.inum} has no init yet, "
                                      "only 1 can be requested")
                    if not privileged:
                        raise KernelError(errno.EPERM, f"set_tid[{idx}]={tid} needs privilege (uid 0)")
                    if not idr.alloc_exact(None, tid, tag):
                        raise KernelError(errno.EEXIST, f"set_tid[{idx}]={tid} is already in use in "
                                          f"namespace {tmp.inum}")
                    nr = tid
                else:
                    nr = idr.alloc_cyclic(None, RESERVED_PIDS if cursor > RESERVED_PIDS else 1,
                                          tmp.pid_max, tag)
                    if nr < 0:
                        raise KernelError(errno.EAGAIN, f"no free pid in namespace {tmp.inum} "
                                          f"(level {tmp.level}, pid_max {tmp.pid_max})")
                taken.append((idr, nr, cursor))
                nrs.append(nr)
            if not ns.adding:
                raise KernelError(errno.ENOMEM, f"pid namespace {ns.inum} no longer admits new "
                                  "processes (its init has exited)")
        except KernelError:
            # Linux rewinds only a namespace whose first allocation failed ("reset the state",
            # cursor 0); the model rewinds every cursor it moved, so a failed clone changes
            # nothing (departure, see the module docstring). It includes Linux's reset.
            for idr, nr, cursor in taken:
                idr.remove(nr)
                idr.cursor = cursor
            raise
        nrs.reverse()
        pid = self._pidfs_add_pid(tuple(nrs), ns)
        for idr, nr, _ in taken:
            idr.replace(nr, pid)
        return pid

    def _free_pid(self, pid: Pid) -> None:
        """free_pid(): give every level's number back. The struct may live on in handles."""
        anc = pid.ns.ancestors
        for lvl, nr in enumerate(pid.numbers):
            if not anc[lvl].idr.remove(nr):  # the namespace's last pid: it admits no more
                anc[lvl].adding = False
        pid.allocated = False
        self._pidfs_remove_pid(pid)
        if self.listener is not None:
            self._emit(EventKind.FREED, pid)

    def _maybe_free(self, pid: Pid) -> None:
        """free_pid() once no task of any type (PID, TGID, PGID, SID) links to the pid."""
        # Pid.has_task(), inline: release_task() runs this for every reaped task and every
        # group or session it leaves, see bench/model.py clone_cycle.
        if (pid.allocated and pid.task is None and pid.tgid_task is None and not pid.pgrp_tasks
                and not pid.session_tasks):
            self._free_pid(pid)

    # -- the system calls, by the file that models them ----------------------------------------
    # Module functions bound as methods: each takes the kernel as ``self``. Names, signatures
    # and private helpers are the methods Kernel always had.

    # clone (fork.py: kernel/fork.c copy_process)
    clone = fork.clone
    clone_many = fork.clone_many
    _attach_new = fork._attach_new
    _attach_tgid = fork._attach_tgid

    # exit, reparenting and wait (exit.py: kernel/exit.c)
    exit = exit_.exit
    exit_group = exit_.exit_group
    _check_alive = exit_._check_alive
    _group_exit = exit_._group_exit
    _do_exit = exit_._do_exit
    _do_notify_parent = exit_._do_notify_parent
    _find_alive_thread = exit_._find_alive_thread
    _find_child_reaper = exit_._find_child_reaper
    _find_new_reaper = exit_._find_new_reaper
    _forget_original_parent = exit_._forget_original_parent
    _will_become_orphaned_pgrp = exit_._will_become_orphaned_pgrp
    _kill_orphaned_pgrp = exit_._kill_orphaned_pgrp
    _release_task = exit_._release_task
    waitid = exit_.waitid
    _do_wait = exit_._do_wait
    _wait_task_zombie = exit_._wait_task_zombie

    # signals (kill.py: kernel/signal.c)
    kill = kill_.kill
    _deliver = kill_._deliver
    _notify_group_change = kill_._notify_group_change

    # exec (exec.py: fs/exec.c)
    execve = exec_.execve
    _de_thread = exec_._de_thread

    # sessions, process groups, subreapers (sessions.py: kernel/sys.c)
    setsid = sessions.setsid
    setpgid = sessions.setpgid
    _change_pgrp = sessions._change_pgrp
    _change_session = sessions._change_session
    set_child_subreaper = sessions.set_child_subreaper
    # controlling terminals and their foreground group (terminals.py: drivers/tty/tty_jobctrl.c)
    set_ctty = terminals.set_ctty
    tcsetpgrp = terminals.tcsetpgrp
    foreground = terminals.foreground
    tpgid_in = terminals.tpgid_in

    # pid namespaces and their sysctls (pid_namespace.py: kernel/pid_namespace.c, nsproxy.c)
    _create_pid_ns = pid_namespace._create_pid_ns
    _zap_pid_ns = pid_namespace._zap_pid_ns
    unshare_pid_ns = pid_namespace.unshare_pid_ns
    setns_pid = pid_namespace.setns_pid
    # the other namespaces as identities (namespaces.py: kernel/nsproxy.c)
    unshare_ns = ns_ids.unshare_ns
    setns_ns = ns_ids.setns_ns
    set_pid_max = pid_namespace.set_pid_max
    set_last_pid = pid_namespace.set_last_pid

    # pidfs, pidfds, xattrs and emulated descriptors (pidfs.py: fs/pidfs.c)
    _pidfs_add_pid = pidfs._pidfs_add_pid
    _pidfs_remove_pid = pidfs._pidfs_remove_pid
    find_pidfs = pidfs.find_pidfs
    fd_install = pidfs.fd_install
    fd_close = pidfs.fd_close
    _close_files = pidfs._close_files
    pidfd_open = pidfs.pidfd_open
    pidfd_get = pidfs.pidfd_get
    _pidfd_get = pidfs._pidfd_get
    pidfd_close = pidfs.pidfd_close
    pidfd_poll = pidfs.pidfd_poll
    pidfd_send_signal = pidfs.pidfd_send_signal
    exit_info = pidfs.exit_info
    _xattrs = pidfs._xattrs
    setxattr = pidfs.setxattr
    getxattr = pidfs.getxattr
    listxattr = pidfs.listxattr
    removexattr = pidfs.removexattr
