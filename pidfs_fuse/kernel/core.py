"""The system calls of the model: ``Kernel`` (kernel/fork.c, kernel/exit.c, kernel/pid.c,
kernel/signal.c, kernel/sys.c, kernel/pid_namespace.c, fs/pidfs.c).

Everything is synchronous and deterministic: a signal with a terminating default action ends the
thread group at once, ``waitid`` never sleeps (it returns None where the kernel would block and
the caller decides whether to wait for a CHILD event), and time is an injected clock. Entry points
take ``Task`` objects and raise ``KernelError`` with Linux's errno; on error nothing has changed.

Deliberate departures, all for a process model with no real execution:
- Signals have default actions or are ignored; there are no handlers, no ptrace, no
  per-thread signal masks.
- Privilege is uid 0 (no capabilities or user namespaces).
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

import bisect
import errno
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from . import signals as S
from .errors import KernelError, ModelBug
from .events import Event, EventKind, Listener
from .idr import PID_MAX_LIMIT, Idr
from .pid import (MAX_PID_NS_LEVEL, PID_MAX_DEFAULT, PROC_PID_INIT_INO, RESERVED_PIDS, ExitInfo,
                  Pid, PidAttr, PidNamespace, check_pid_max)
from .task import (EXIT_DEAD, EXIT_RUNNING, EXIT_ZOMBIE, TF_AUTOREAP, TF_EXITING, TF_FORKNOEXEC,
                   TF_NO_NEW_PRIVS, TF_WAIT_PID, Task, ThreadGroup)

# clone flags (include/uapi/linux/sched.h; WAIT_PID from seed 003 and numbered as there;
# AUTOREAP, NNP and PIDFD_AUTOKILL are the newest clone3 flags)
CLONE_PIDFD = 0x00001000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWPID = 0x20000000
CLONE_WAIT_PID = 0x200000000
CLONE_AUTOREAP = 1 << 34
CLONE_NNP = 1 << 35
CLONE_PIDFD_AUTOKILL = 1 << 36
CLONE_KNOWN = (CLONE_PIDFD | CLONE_PARENT | CLONE_THREAD | CLONE_NEWPID | CLONE_WAIT_PID
               | CLONE_AUTOREAP | CLONE_NNP | CLONE_PIDFD_AUTOKILL)

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

# pidfd_open flags (include/uapi/linux/pidfd.h)
PIDFD_THREAD = 0o200  # O_EXCL
PIDFD_NONBLOCK = 0o4000  # O_NONBLOCK

POLLIN, POLLRDNORM, POLLHUP = 0x001, 0x040, 0x010

TASK_COMM_LEN = 16


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


@dataclass(frozen=True, slots=True)
class CloneResult:
    task: Task
    pidfd: PidFd | None = None
    fd: int | None = None  # the descriptor number in the parent's emulated fd table


def describe_status(status: int) -> tuple[str, int]:
    """Decode a raw wait status into (kind, code) as WIFEXITED/WIFSIGNALED/WCOREDUMP would."""
    if status == 0xFFFF:
        return "continued", S.SIGCONT
    if status & 0xFF == 0x7F:
        return "stopped", (status >> 8) & 0xFF
    if status & 0x7F == 0:
        return "exited", (status >> 8) & 0xFF
    return ("dumped" if status & 0x80 else "killed"), status & 0x7F


def _einval(what: str) -> KernelError:
    return KernelError(errno.EINVAL, what)


def _check_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _einval(f"{name} {value!r} is not an integer")
    return value


def _check_task(name: str, value: object) -> Task:
    if not isinstance(value, Task):
        raise _einval(f"{name} {value!r} is not a task")
    return value


def _check_uid(value: object) -> int:
    uid = _check_int("uid", value)
    if not 0 <= uid < 2**32 - 1:
        raise _einval(f"uid {uid} is outside 0..4294967294")
    return uid


def _check_ns(value: object) -> PidNamespace:
    if not isinstance(value, PidNamespace):
        raise _einval(f"{value!r} is not a pid namespace")
    return value


class Kernel:
    """The in-process model of Linux's pid machinery.

    ``Kernel()`` boots the root namespace (pid_max 32768) with its init as pid 1.
    ``listener`` receives ``Event``s synchronously; ``clock`` returns nanoseconds since boot.
    """

    def __init__(self, *, listener: Listener | None = None, clock: Callable[[], int] | None = None,
                 init_comm: str = "init", pid_max: int = PID_MAX_DEFAULT) -> None:
        check_pid_max(pid_max)
        self.listener = listener
        if clock is None:
            t0 = time.monotonic_ns()
            clock = lambda: time.monotonic_ns() - t0  # noqa: E731
        self.clock = clock
        self._next_ino = 2  # pidfs: one global counter from 2, never reused
        self._next_ns_inum = PROC_PID_INIT_INO + 0x100
        #: live struct pids in pidfs-inode order (inos only grow), for /.pidfs/<ino> lookups
        self._by_ino: list[Pid] = []
        self._by_ino_dead = 0
        self.total_forks = 0  # /proc/stat "processes"
        self.nr_threads = 0  # tasks not yet released
        self.root_ns = PidNamespace(level=0, parent=None, inum=PROC_PID_INIT_INO, pid_max=pid_max)
        pid = self._alloc_pid(self.root_ns, (), True, True)
        g = ThreadGroup(leader=None, argv=(init_comm,), exe=f"/sbin/{init_comm}")  # type: ignore[arg-type]
        init = Task(pid=pid, group=g, comm=init_comm[: TASK_COMM_LEN - 1], start_time=0,
                    exit_signal=0)
        g.leader = init
        g.pgrp = g.session = pid
        g.session_leader = True
        self._attach_new(init, g, leader=True, parent=None)
        self.init = init

    # -- events ------------------------------------------------------------------------------

    def _emit(self, kind: EventKind, pid: Pid, task: Task | None = None) -> None:
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
        nr = _check_int("pid", nr)
        _check_ns(ns)
        t = self.find_task(ns, nr)
        if t is None:
            raise KernelError(errno.ESRCH, f"no task with pid {nr} in pid namespace {ns.inum}")
        return t

    def find_pidfs(self, ino: int) -> Pid | None:
        """The live struct pid with pidfs inode number ``ino`` (a pidfs file handle), or None."""
        if type(ino) is not int:
            return None
        lst = self._by_ino
        i = bisect.bisect_left(lst, ino, key=lambda p: p.ino)
        if i < len(lst) and lst[i].ino == ino and lst[i].allocated:
            return lst[i]
        return None

    def next_tgid(self, ns: PidNamespace, nr: int, *, linear: bool = False) -> tuple[int, Task] | None:
        """The first thread-group leader numbered >= ``nr`` in ``ns`` (fs/proc/base.c next_tgid).

        Tagged (default): walks only ids tagged at allocation (seed 000 find_get_tgid_task),
        skipping tagged pids that no longer have a TGID task (the daemonize false positive).
        Linear: walks every allocated id as Linux's ``find_ge_pid`` loop does.
        """
        idr = ns.idr
        step = idr.next_used if linear else idr.next_tagged
        nr = max(_check_int("pid", nr), 0)
        while True:
            n = step(nr)
            if n < 0:
                return None
            t = idr.find(n).tgid_task
            if t is not None:
                return n, t
            nr = n + 1

    def iter_tgids(self, ns: PidNamespace, start: int = 0, *, linear: bool = False) -> Iterator[tuple[int, Task]]:
        nr = start
        while (hit := self.next_tgid(ns, nr, linear=linear)) is not None:
            yield hit
            nr = hit[0] + 1

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
            raise _einval(f"set_tid has {nset} entries but the new task has only "
                          f"{level + 1} pid namespace level(s)")
        anc = ns.ancestors
        taken: list[tuple[Idr, int, int]] = []  # (id map, number, its cursor before), innermost first
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
                        raise _einval(f"set_tid[{idx}]={tid} is outside 1..{tmp.pid_max - 1} "
                                      f"(pid_max of namespace {tmp.inum})")
                    if tid != 1 and tmp.child_reaper is None:
                        raise _einval(f"set_tid[{idx}]={tid}: namespace {tmp.inum} has no init yet, "
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
        pid = Pid(tuple(nrs), ns, self._next_ino)
        self._next_ino += 1
        for idr, nr, _ in taken:
            idr.replace(nr, pid)
        self._by_ino.append(pid)
        return pid

    def _free_pid(self, pid: Pid) -> None:
        """free_pid(): give every level's number back. The struct may live on in handles."""
        anc = pid.ns.ancestors
        for lvl, nr in enumerate(pid.numbers):
            if not anc[lvl].idr.remove(nr):  # the namespace's last pid: it admits no more
                anc[lvl].adding = False
        pid.allocated = False
        self._by_ino_dead += 1
        if self._by_ino_dead > 64 and self._by_ino_dead * 2 > len(self._by_ino):
            self._by_ino = [p for p in self._by_ino if p.allocated]
            self._by_ino_dead = 0
        if self.listener is not None:
            self._emit(EventKind.FREED, pid)

    def _maybe_free(self, pid: Pid) -> None:
        if pid.allocated and not pid.has_task():
            self._free_pid(pid)

    # -- clone (kernel/fork.c copy_process) ---------------------------------------------------

    def clone(self, parent: Task, flags: int = 0, *, exit_signal: int | None = None,
              set_tid: tuple[int, ...] | list[int] = (), comm: str | None = None,
              argv: tuple[str, ...] | list[str] | None = None, uid: int | None = None,
              gid: int | None = None) -> CloneResult:
        """Models clone3(): a new thread (CLONE_THREAD) or process.

        EINVAL: unknown flags; THREAD with NEWPID or after unshare(CLONE_NEWPID); PARENT from a
        namespace init; exit_signal invalid, or non-zero with THREAD/PARENT; WAIT_PID or
        PIDFD_AUTOKILL without PIDFD; AUTOREAP with an exit_signal or with THREAD; NEWPID after
        unshare(CLONE_NEWPID); more than 32 set_tid entries; plus alloc_pid's errnos.
        EPERM: NEWPID, set_tid or another uid without privilege. ENOSPC: a 33rd nested namespace.
        ESRCH: the parent has exited.
        """
        # The common case (a plain fork: no flags, no set_tid, no ids) skips the checks that
        # cannot fail for it; the order of the checks, and so the errno, is the same either way.
        if flags.__class__ is not int:
            flags = _check_int("clone flags", flags)
        if parent.__class__ is not Task:
            _check_task("parent", parent)
        g_parent = parent.group
        if parent.exit_state is not EXIT_RUNNING or parent.flags & TF_EXITING or g_parent.group_exit:
            raise KernelError(errno.ESRCH, f"task {parent.pid.nr} has exited and cannot clone")
        if flags & ~CLONE_KNOWN or flags < 0:
            raise _einval(f"clone flags {flags:#x} include unknown bits {flags & ~CLONE_KNOWN:#x}")
        # copy_clone_args_from_user() checks set_tid_size before copy_process() runs
        if set_tid.__class__ is not tuple or set_tid:
            if not isinstance(set_tid, (tuple, list)):
                raise _einval(f"set_tid {set_tid!r} is not a list of integers")
            set_tid = tuple(_check_int("set_tid entry", t) for t in set_tid)
            if len(set_tid) > MAX_PID_NS_LEVEL:
                raise _einval(f"set_tid has {len(set_tid)} entries, more than {MAX_PID_NS_LEVEL}")
        thread = bool(flags & CLONE_THREAD)
        if exit_signal is None:
            exit_signal = 0 if flags & (CLONE_THREAD | CLONE_PARENT | CLONE_AUTOREAP) else S.SIGCHLD
        else:
            exit_signal = _check_int("exit_signal", exit_signal)
            if not S.valid_signal(exit_signal):
                raise _einval(f"exit_signal {exit_signal} is not a signal (0..64)")
        if flags:
            if flags & (CLONE_THREAD | CLONE_PARENT) and exit_signal:
                raise _einval("exit_signal must be 0 with CLONE_THREAD or CLONE_PARENT")
            if flags & (CLONE_WAIT_PID | CLONE_PIDFD_AUTOKILL) and not flags & CLONE_PIDFD:
                raise _einval("CLONE_WAIT_PID and CLONE_PIDFD_AUTOKILL need CLONE_PIDFD")
            if flags & CLONE_AUTOREAP and (exit_signal or flags & (CLONE_THREAD | CLONE_PARENT)):
                raise _einval("CLONE_AUTOREAP needs exit_signal 0 and neither CLONE_THREAD nor CLONE_PARENT")
            if flags & CLONE_PARENT and parent.flags & TF_AUTOREAP:
                raise _einval("an autoreaping process cannot use CLONE_PARENT")
            if flags & CLONE_PIDFD_AUTOKILL and (thread or not flags & CLONE_AUTOREAP):
                raise _einval("CLONE_PIDFD_AUTOKILL needs CLONE_AUTOREAP and a process, not a thread")
            if thread and flags & CLONE_NEWPID:
                raise _einval("CLONE_THREAD cannot be combined with CLONE_NEWPID")
            if thread and parent.ns_for_children is not parent.active_ns:
                raise _einval(f"task {parent.pid.nr} unshared its pid namespace for children; "
                              "it cannot create threads")
            if flags & CLONE_PARENT and g_parent.unkillable:
                raise _einval("a namespace init cannot use CLONE_PARENT")
            if flags & CLONE_NNP and thread:
                raise _einval("CLONE_NNP cannot be combined with CLONE_THREAD")
            if flags & CLONE_PIDFD_AUTOKILL and not flags & CLONE_NNP and g_parent.uid != 0:
                raise KernelError(errno.EPERM, "CLONE_PIDFD_AUTOKILL without CLONE_NNP needs privilege (uid 0)")
        if comm is not None and not isinstance(comm, str):
            raise _einval(f"comm {comm!r} is not a string")
        if argv is not None and (not isinstance(argv, (tuple, list))
                                 or not all(isinstance(a, str) for a in argv)):
            raise _einval(f"argv {argv!r} must be a list of strings")
        privileged = g_parent.uid == 0
        if uid is not None or gid is not None:
            for name, val, cur in (("uid", uid, g_parent.uid), ("gid", gid, g_parent.gid)):
                if val is not None:
                    _check_int(name, val)
                    if not 0 <= val < 2**32 - 1:
                        raise _einval(f"{name} {val} is outside 0..4294967294")
                    if thread and val != cur:
                        raise _einval(f"a thread shares its process's {name}")
                    if val != cur and not privileged:
                        raise KernelError(errno.EPERM, f"only uid 0 may give a child {name} {val}")

        ns = parent.pid_ns_for_children or parent.pid.ns  # ns_for_children
        new_ns: PidNamespace | None = None
        if flags & CLONE_NEWPID:
            if ns is not parent.active_ns:
                raise _einval(f"task {parent.pid.nr} already unshared a pid namespace for children")
            new_ns = self._create_pid_ns(ns, privileged)
            ns = new_ns
        try:
            pid = self._alloc_pid(ns, set_tid, not thread, privileged)
        except KernelError:
            if new_ns is not None:  # put_pid_ns() -> ns_free_inum(): the number is free again
                self._next_ns_inum -= 1
            raise
        if new_ns is not None:
            new_ns.parent.children.append(new_ns)  # type: ignore[union-attr]
            new_ns.creator = parent

        # -- nothing below can fail ---------------------------------------------------------
        now = self.clock()
        if now < parent.start_time:
            now = parent.start_time
        self.total_forks += 1
        # Task(pid, group, comm, start_time) positionally and the rest by assignment: keyword
        # arguments to the generated __init__ cost ~50ns each, and this runs for every clone.
        task = Task(pid, g_parent, comm[: TASK_COMM_LEN - 1] if comm else parent.comm, now)
        if thread:
            g = g_parent
            task.exit_signal = -1
            task.state = parent.state
            task.flags = parent.flags & TF_NO_NEW_PRIVS
            pid.task = task
            g.threads[task] = None
            g.live += 1
            self.nr_threads += 1
            if self.listener is not None:
                self._emit(EventKind.CREATED, pid, task)
        else:
            real_parent = g_parent.parent if flags & CLONE_PARENT else parent
            if flags & CLONE_PARENT:
                exit_signal = g_parent.leader.exit_signal
            g = ThreadGroup(task)  # copy_signal()/copy_creds(): what the child inherits
            g.pgrp = g_parent.pgrp
            g.session = g_parent.session
            g.argv = tuple(argv) if argv is not None else ((comm,) if comm else g_parent.argv)
            g.environ = g_parent.environ
            g.uid = g_parent.uid if uid is None else uid
            g.gid = g_parent.gid if gid is None else gid
            g.cwd = g_parent.cwd
            g.exe = g_parent.exe
            g.root = g_parent.root
            g.vsize = g_parent.vsize
            g.rss = g_parent.rss
            g.tty_nr = g_parent.tty_nr
            g.sigign = g_parent.sigign
            g.has_child_subreaper = g_parent.has_child_subreaper or g_parent.is_child_subreaper
            tflags = TF_FORKNOEXEC | (parent.flags & TF_NO_NEW_PRIVS)
            if flags:
                if flags & CLONE_NNP:
                    tflags |= TF_NO_NEW_PRIVS
                if flags & CLONE_WAIT_PID:
                    tflags |= TF_WAIT_PID
                if flags & CLONE_AUTOREAP:
                    tflags |= TF_AUTOREAP
            task.group = g
            task.exit_signal = exit_signal
            task.flags = tflags
            task.nice = parent.nice
            self._attach_new(task, g, leader=True, parent=real_parent)
        pidfd = fd = None
        if flags & CLONE_PIDFD:
            pidfd = self._pidfd_get(pid, thread=thread, nonblock=False)
            pidfd.autokill = bool(flags & CLONE_PIDFD_AUTOKILL)
            fd = self.fd_install(parent, pidfd)
        return CloneResult(task, pidfd, fd)

    def _attach_new(self, task: Task, g: ThreadGroup, *, leader: bool, parent: Task | None) -> None:
        pid = task.pid
        pid.task = task
        # _attach_tgid(), inline: seed 000 forbids false negatives, so this checks the tag
        if not pid.ns.idr.is_tagged(pid.numbers[-1]):
            raise ModelBug(f"attaching thread-group leader {task!r} to untagged {pid!r}")
        pid.tgid_task = task
        g.threads[task] = None
        g.live += 1
        g.parent = parent
        if g.pgrp is not None:
            if g.pgrp.pgrp_tasks is None:
                g.pgrp.pgrp_tasks = {}
            g.pgrp.pgrp_tasks[task] = None
        if g.session is not None:
            if g.session.session_tasks is None:
                g.session.session_tasks = {}
            g.session.session_tasks[task] = None
        if parent is not None:
            if parent.children is None:
                parent.children = {}
            parent.children[task] = None
        if pid.numbers[-1] == 1:  # is_child_reaper()
            pid.ns.child_reaper = task
            g.unkillable = True
        self.nr_threads += 1
        if self.listener is not None:
            self._emit(EventKind.CREATED, pid, task)

    def _attach_tgid(self, pid: Pid, task: Task) -> None:
        """attach_pid(PIDTYPE_TGID): seed 000 forbids false negatives, so this checks the tag."""
        if not pid.ns.idr.is_tagged(pid.numbers[-1]):
            raise ModelBug(f"attaching thread-group leader {task!r} to untagged {pid!r}")
        pid.tgid_task = task

    def _create_pid_ns(self, parent: PidNamespace, privileged: bool) -> PidNamespace:
        """create_pid_namespace(): EPERM without privilege, ENOSPC past level 32."""
        if not privileged:
            raise KernelError(errno.EPERM, "creating a pid namespace needs privilege (uid 0)")
        if parent.level + 1 > MAX_PID_NS_LEVEL:
            raise KernelError(errno.ENOSPC, f"pid namespaces nest at most {MAX_PID_NS_LEVEL} levels deep")
        inum = self._next_ns_inum
        self._next_ns_inum += 1
        return PidNamespace(level=parent.level + 1, parent=parent, inum=inum, pid_max=PID_MAX_LIMIT)

    # -- descriptors of emulated processes --------------------------------------------------

    def fd_install(self, task: Task, obj: PidFd) -> int:
        """Put ``obj`` in the lowest free descriptor >= 3 of the task's process."""
        g = task.group
        if g.files is None:
            g.files = {}
        fd = 3
        while fd in g.files:
            fd += 1
        g.files[fd] = obj
        return fd

    def fd_close(self, task: Task, fd: int) -> None:
        _check_task("task", task)
        fd = _check_int("descriptor", fd)
        g = task.group
        if g.files is None or fd not in g.files:
            raise KernelError(errno.EBADF, f"process {task.leader.pid.nr} has no descriptor {fd}")
        obj = g.files.pop(fd)
        self.pidfd_close(obj)

    def _close_files(self, g: ThreadGroup) -> None:
        if g.files:
            files, g.files = g.files, None
            for obj in files.values():
                self.pidfd_close(obj)

    # -- exit (kernel/exit.c) ---------------------------------------------------------------

    def exit(self, task: Task, code: int = 0) -> None:
        """Models sys_exit(): this thread exits with ``code`` (0..255); the group lives on while
        other threads do. EINVAL for a code outside 0..255, ESRCH for an exited task, EPERM for
        the last thread of the root namespace's init (Linux would panic)."""
        code = self._exit_code_arg(code)
        self._check_alive(task)
        g = task.group
        if g.live == 1 and task.pid.ns is self.root_ns and g is self.init.group:
            raise KernelError(errno.EPERM, "the root namespace's init cannot exit (Linux panics)")
        self._do_exit(task, code << 8)

    def exit_group(self, task: Task, code: int = 0) -> None:
        """Models sys_exit_group(): every thread exits; the group's code is ``code``."""
        if code.__class__ is not int or not 0 <= code <= 255:
            code = self._exit_code_arg(code)
        if task.__class__ is not Task or task.exit_state is not EXIT_RUNNING or task.flags & TF_EXITING:
            self._check_alive(task)
        if task.group is self.init.group:
            raise KernelError(errno.EPERM, "the root namespace's init cannot exit (Linux panics)")
        self._group_exit(task.group, code << 8)

    @staticmethod
    def _exit_code_arg(code: int) -> int:
        code = _check_int("exit code", code)
        if not 0 <= code <= 255:
            raise _einval(f"exit code {code} is outside 0..255")
        return code

    def _check_alive(self, task: Task) -> None:
        _check_task("task", task)
        if not task.alive:
            raise KernelError(errno.ESRCH, f"task {task.pid.nr} has already exited")

    def _group_exit(self, g: ThreadGroup, status: int) -> None:
        """do_group_exit(): the first caller sets the group's code; every live thread exits with it.
        Other threads go first so the leader is the last one out."""
        if g.group_exit:
            return
        g.group_exit = True
        g.group_exit_code = status
        g.stopped = False
        g.pending = 0
        leader = g.leader
        if len(g.threads) > 1:
            for t in [t for t in g.threads if t is not leader and t.alive]:
                if t.alive:
                    self._do_exit(t, status)
        if leader.exit_state is EXIT_RUNNING and not leader.flags & TF_EXITING:
            self._do_exit(leader, status)

    def _do_exit(self, t: Task, status: int) -> None:
        """do_exit() + exit_notify() for one thread."""
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

    def _do_notify_parent(self, t: Task, sig: int) -> bool:
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
            sig == S.SIGCHLD and bool(parent.group.sigign >> S.SIGCHLD & 1))  # ignores(SIGCHLD)
        if listener is not None:
            self._emit(EventKind.CHILD, parent.pid, parent)
        return autoreap

    def _find_alive_thread(self, t: Task) -> Task | None:
        for th in t.group.threads:
            if th.alive:
                return th
        return None

    def _find_child_reaper(self, father: Task) -> Task:
        ns = father.pid.ns
        reaper = ns.child_reaper
        if reaper is not father:
            return reaper  # type: ignore[return-value]
        alive = self._find_alive_thread(father)
        if alive is not None:
            ns.child_reaper = alive
            return alive
        self._zap_pid_ns(ns, father)
        return father

    def _find_new_reaper(self, father: Task, child_reaper: Task) -> Task:
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

    def _forget_original_parent(self, father: Task) -> None:
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
            if p.exit_state is EXIT_ZOMBIE and len(p.group.threads) == 1:
                if self._do_notify_parent(p, p.exit_signal):
                    self._release_task(p)
                    continue
            self._emit(EventKind.CHANGED, p.pid, p)
        # kill_orphaned_pgrp(p, father) runs per child in Linux but only fires once the group's
        # last link to father is gone, i.e. once per group after the whole move; the signals
        # go out after the loop (Linux delivers them asynchronously anyway).
        for p in orphan_checks.values():
            self._kill_orphaned_pgrp(p, father)

    def _will_become_orphaned_pgrp(self, pgrp: Pid, ignored: Task | None) -> bool:
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

    def _kill_orphaned_pgrp(self, tsk: Task, parent: Task | None) -> None:
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

    def _zap_pid_ns(self, ns: PidNamespace, init: Task) -> None:
        """zap_pid_ns_processes(): init's last thread is exiting. The namespace stops admitting
        pids, every other member gets SIGKILL, and init reaps what became its zombie children."""
        ns.adding = False
        init.group.sigign |= 1 << S.SIGCHLD
        victims: list[ThreadGroup] = []
        seen: set[int] = set()
        for nr, pid in ns.idr.items():
            t = pid.task
            if t is not None and t.group is not init.group and id(t.group) not in seen:
                seen.add(id(t.group))
                victims.append(t.group)
        for g in victims:
            if not g.group_exit and g.live:
                self._group_exit(g, S.SIGKILL)
        for th in list(init.group.threads):
            for c in list(th.children or ()):
                if c.exit_state is EXIT_ZOMBIE and len(c.group.threads) == 1:
                    self._release_task(c)

    def _release_task(self, p: Task) -> None:
        """release_task(): the task leaves its pids; handles see POLLHUP; numbers may be freed."""
        p.exit_state = EXIT_DEAD
        g = p.group
        pid = p.pid
        if pid.attr is not None:  # pidfs_exit(): only pids that ever had a handle keep a record
            pid.attr.exit = ExitInfo(p.exit_code, bool(p.exit_code & 0x80) and bool(p.exit_code & 0x7F))
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
            if not pid.pgrp_tasks and not pid.session_tasks:  # _maybe_free(pid), inline
                self._free_pid(pid)
            # _maybe_free() of the group and session pids; one whose task lives keeps them
            pg, sess = g.pgrp, g.session
            if pg is not None and pg is not pid and pg.task is None:
                self._maybe_free(pg)
            if sess is not None and sess is not pid and sess is not pg and sess.task is None:
                self._maybe_free(sess)
        else:
            if self.listener is not None:
                self._emit(EventKind.REAPED, pid, p)
            if pid.tgid_task is None and not pid.pgrp_tasks and not pid.session_tasks:
                self._free_pid(pid)  # _maybe_free(pid), inline
            if len(g.threads) == 1 and leader.exit_state is EXIT_ZOMBIE:
                if g.group_exit:
                    leader.exit_code = g.group_exit_code
                if self._do_notify_parent(leader, leader.exit_signal):
                    self._release_task(leader)

    # -- wait (kernel/exit.c do_wait) -------------------------------------------------------

    def waitid(self, parent: Task, idtype: int = P_ALL, id: int = 0, options: int = WEXITED,
               *, pidfd: PidFd | None = None) -> WaitResult | None:
        """Models waitid(): the first eligible child's state change, or None when there are
        eligible children but none is ready (the kernel would block, or return 0 with WNOHANG).

        EINVAL: unknown options, none of WEXITED/WSTOPPED/WCONTINUED, an unknown idtype, a
        negative id (or 0 for P_PID); EBADF: P_PIDFD without an open handle; ECHILD: nothing to
        wait for; EAGAIN: P_PIDFD on a non-blocking handle when nothing is ready and WNOHANG was
        not given.
        """
        if options.__class__ is not int:
            options = _check_int("wait options", options)
        if idtype.__class__ is not int:
            idtype = _check_int("idtype", idtype)
        if id.__class__ is not int:
            id = _check_int("id", id)
        if options & ~WAIT_KNOWN or options < 0:
            raise _einval(f"wait options {options:#x} include unknown bits {options & ~WAIT_KNOWN:#x}")
        if not options & (WEXITED | WSTOPPED | WCONTINUED):
            raise _einval("wait needs at least one of WEXITED, WSTOPPED, WCONTINUED")
        if parent.__class__ is not Task or parent.exit_state is not EXIT_RUNNING or parent.flags & TF_EXITING:
            self._check_alive(parent)
        ns = parent.pid.ns
        target: Pid | None = None
        nonblock = False
        if idtype == P_ALL:
            pass
        elif idtype == P_PID:
            if id <= 0:
                raise _einval(f"P_PID needs a pid > 0, got {id}")
            target = self.find_pid(ns, id)
        elif idtype == P_PGID:
            if id < 0:
                raise _einval(f"P_PGID needs a pgid >= 0, got {id}")
            target = parent.group.pgrp if id == 0 else self.find_pid(ns, id)
        elif idtype == P_PIDFD:
            if id < 0:
                raise _einval(f"P_PIDFD needs a descriptor >= 0, got {id}")
            if not isinstance(pidfd, PidFd) or pidfd.closed:
                raise KernelError(errno.EBADF, f"descriptor {id} is not an open pidfd")
            target = pidfd.pid
            nonblock = pidfd.nonblock
        else:
            raise _einval(f"unknown idtype {idtype}")
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

    def _do_wait(self, parent: Task, idtype: int, target: Pid | None, options: int) -> tuple[WaitResult | None, bool]:
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
                    return WaitResult(p.pid.nr_in(parent.pid.ns), "stopped", code, (code << 8) | 0x7F,
                                      g.uid, p), True
                if options & WCONTINUED and g.continued:
                    if not options & WNOWAIT:
                        g.continued = False
                    return WaitResult(p.pid.nr_in(parent.pid.ns), "continued", S.SIGCONT, 0xFFFF,
                                      g.uid, p), True
        return None, found

    def _wait_task_zombie(self, parent: Task, p: Task, options: int) -> WaitResult:
        g = p.group
        status = g.group_exit_code if g.group_exit else p.exit_code
        kind, code = describe_status(status)
        res = WaitResult(p.pid.nr_in(parent.pid.ns), kind, code, status, g.uid, p)
        if not options & WNOWAIT:
            self._release_task(p)
        return res

    # -- signals (kernel/signal.c) ------------------------------------------------------------

    def kill(self, task: Task, sig: int, *, sender: Task | None = None, uid: int | None = None,
             thread: bool = False) -> None:
        """Models kill()/tgkill(): send ``sig`` to ``task``'s process (or, with ``thread``, the
        thread; default actions are process-wide anyway). ``sender`` None means the control
        plane, outside every namespace. ``uid`` is the sender's uid (default: the sender's,
        or 0). Sending to a zombie succeeds and does nothing. EINVAL: not a signal; ESRCH:
        released; EPERM: a non-zero uid that differs from the target's."""
        sig = _check_int("signal", sig)
        _check_task("task", task)
        if sender is not None:
            _check_task("sender", sender)
        if task.exit_state is EXIT_DEAD:  # kill_pid_info(): no task is ESRCH before all else
            raise KernelError(errno.ESRCH, f"task {task.pid.nr} has been reaped")
        if not S.valid_signal(sig):  # check_kill_permission()
            raise _einval(f"signal {sig} is outside 0..64")
        g = task.group
        if uid is None:
            uid = sender.group.uid if sender is not None else 0
        else:
            _check_uid(uid)
        if uid != 0 and uid != g.uid:
            raise KernelError(errno.EPERM, f"uid {uid} may not signal task {task.pid.nr} (uid {g.uid})")
        if sig == 0 or not g.live or g.group_exit:
            return
        if g.unkillable:
            from_ancestor = task.pid.ns is not self.root_ns and (
                sender is None or (sender.pid.ns is not task.pid.ns
                                   and sender.pid.ns.is_ancestor_of(task.pid.ns)))
            if not (from_ancestor and S.sig_kernel_only(sig)):
                return  # sig_task_ignored(): init only takes SIGKILL/SIGSTOP, from an ancestor
        self._deliver(g, sig)

    def _deliver(self, g: ThreadGroup, sig: int) -> None:
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
                self._deliver(g, first)
            return
        if g.ignores(sig) and not S.sig_kernel_only(sig):
            return
        if action is S.Action.IGNORE:
            return
        if action is S.Action.STOP:
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
        self._group_exit(g, sig | (0x80 if action is S.Action.CORE else 0))

    def _notify_group_change(self, g: ThreadGroup) -> None:
        leader = g.leader
        self._emit(EventKind.CHANGED, leader.pid, leader)
        if g.parent is not None:
            self._emit(EventKind.CHILD, g.parent.pid, g.parent)

    # -- exec, sessions, groups, subreapers, namespaces ------------------------------------

    def execve(self, task: Task, comm: str, argv: tuple[str, ...] | list[str] | None = None,
               *, exe: str | None = None) -> None:
        """Models execve(): other threads are killed; from a non-leader, de_thread() gives the
        exec'ing thread the leader's pid (and start time, parent, children) and the old leader
        disappears without notifying anyone. EINVAL for an empty or non-string comm."""
        if not isinstance(comm, str) or not comm or "\n" in comm or "\0" in comm:
            raise _einval(f"comm {comm!r} must be a non-empty line of text")
        if argv is not None and (not isinstance(argv, (tuple, list))
                                 or not all(isinstance(a, str) for a in argv)):
            raise _einval(f"argv {argv!r} must be a list of strings")
        if exe is not None and not isinstance(exe, str):
            raise _einval(f"exe {exe!r} is not a string")
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
        task.exit_signal = S.SIGCHLD
        task.comm = comm[: TASK_COMM_LEN - 1]
        g.argv = tuple(argv) if argv is not None else (comm,)
        if exe is not None:
            g.exe = exe
        task.flags &= ~TF_FORKNOEXEC
        self._emit(EventKind.CHANGED, task.pid, task)

    def _de_thread(self, task: Task, leader: Task) -> None:
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

    def setsid(self, task: Task) -> int:
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

    def setpgid(self, caller: Task, pid_nr: int = 0, pgid_nr: int = 0) -> None:
        """Models setpgid(pid, pgid) called by ``caller`` (numbers in the caller's namespace).
        EINVAL: negative pgid or a non-leader; ESRCH: no such process or not the caller or its
        child; EPERM: session mismatch, a session leader, or no such group in the session;
        EACCES: the child has exec'd."""
        pid_nr = _check_int("pid", pid_nr)
        pgid_nr = _check_int("pgid", pgid_nr)
        self._check_alive(caller)
        ns = caller.pid.ns
        me = caller.group
        if pid_nr == 0:
            pid_nr = me.leader.pid.nr_in(ns)
        if pgid_nr == 0:
            pgid_nr = pid_nr
        if pgid_nr < 0:
            raise _einval(f"pgid {pgid_nr} is negative")
        p = self.find_task(ns, pid_nr)
        if p is None:  # a zombie is still found (find_task_by_vpid) and may change group
            raise KernelError(errno.ESRCH, f"no process {pid_nr}")
        if not p.is_leader:
            raise _einval(f"{pid_nr} is a thread, not a process")
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
            pgrp = self.find_pid(ns, pgid_nr)  # type: ignore[assignment]
            g2 = next(iter(pgrp.pgrp_tasks), None) if pgrp is not None and pgrp.pgrp_tasks else None
            if g2 is None or g2.group.session is not me.session:
                raise KernelError(errno.EPERM, f"no process group {pgid_nr} in this session")
        if pg.pgrp is not pgrp:
            self._change_pgrp(pg, pgrp)
            self._emit(EventKind.CHANGED, p.pid, p)

    def _change_pgrp(self, g: ThreadGroup, new: Pid) -> None:
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

    def _change_session(self, g: ThreadGroup, new: Pid) -> None:
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

    def set_child_subreaper(self, task: Task, on: bool = True) -> None:
        """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants go to the nearest subreaper."""
        if not isinstance(on, int):  # bool is an int; a string such as "off" is not
            raise _einval(f"child subreaper setting {on!r} is not a boolean")
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

    def unshare_pid_ns(self, task: Task) -> PidNamespace:
        """unshare(CLONE_NEWPID): the task's next child becomes init of a new namespace.
        EPERM without privilege; EINVAL when already unshared; ENOSPC past level 32."""
        self._check_alive(task)
        if task.ns_for_children is not task.active_ns:
            raise _einval(f"task {task.pid.nr} already unshared a pid namespace for children")
        ns = self._create_pid_ns(task.active_ns, task.group.uid == 0)
        ns.parent.children.append(ns)  # type: ignore[union-attr]
        ns.creator = task
        task.pid_ns_for_children = ns
        return ns

    def setns_pid(self, task: Task, ns: PidNamespace) -> None:
        """setns(fd, CLONE_NEWPID) -> pid_for_children. EPERM without privilege; EINVAL unless
        ``ns`` is the task's active namespace or a descendant of it."""
        self._check_alive(task)
        _check_ns(ns)
        if task.group.uid != 0:
            raise KernelError(errno.EPERM, "setns needs privilege (uid 0)")
        active = task.active_ns
        if not active.is_ancestor_of(ns):
            raise _einval(f"pid namespace {ns.inum} is not the task's own ({active.inum}) or below it")
        task.pid_ns_for_children = None if ns is active else ns

    # -- per-namespace sysctls ----------------------------------------------------------------

    def set_pid_max(self, ns: PidNamespace, value: int, *, uid: int = 0) -> None:
        """kernel.pid_max of one namespace (301..4194304). Each level keeps its own; allocation
        checks every level, so a child's higher value does not lift its parent's limit."""
        _check_ns(ns)
        if _check_uid(uid) != 0:
            raise KernelError(errno.EPERM, f"uid {uid} may not change pid_max")
        check_pid_max(value)
        ns.pid_max = value

    def set_last_pid(self, ns: PidNamespace, value: int, *, uid: int = 0) -> None:
        """kernel.ns_last_pid: the next cyclic allocation starts after ``value`` (0..pid_max)."""
        _check_ns(ns)
        if _check_uid(uid) != 0:
            raise KernelError(errno.EPERM, f"uid {uid} may not write ns_last_pid")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= ns.pid_max:
            raise _einval(f"ns_last_pid {value!r} is outside 0..{ns.pid_max}")
        if ns.child_reaper is None:
            # Linux writes the ns_last_pid of the writer's own namespace, so one without init
            # never has its cursor moved: its first pid must be 1 and become its child reaper.
            raise _einval(f"pid namespace {ns.inum} has no init yet: its first pid is always 1")
        ns.idr.cursor = value + 1

    # -- pidfd (kernel/pid.c, fs/pidfs.c) -------------------------------------------------

    def pidfd_open(self, ns: PidNamespace, nr: int, flags: int = 0) -> PidFd:
        """Models pidfd_open(): EINVAL for unknown flags or nr <= 0; ESRCH when no task has the
        number (or it was reaped); ENOENT for a thread without PIDFD_THREAD."""
        flags = _check_int("pidfd flags", flags)
        nr = _check_int("pid", nr)
        _check_ns(ns)
        if flags & ~(PIDFD_THREAD | PIDFD_NONBLOCK) or flags < 0:
            raise _einval(f"pidfd_open flags {flags:#o} include unknown bits "
                          f"{flags & ~(PIDFD_THREAD | PIDFD_NONBLOCK):#o}")
        if nr <= 0:
            raise _einval(f"pidfd_open needs a pid > 0, got {nr}")
        pid = self.find_pid(ns, nr)
        if pid is None:
            raise KernelError(errno.ESRCH, f"no process {nr} in pid namespace {ns.inum}")
        return self._pidfd_get(pid, thread=bool(flags & PIDFD_THREAD), nonblock=bool(flags & PIDFD_NONBLOCK))

    def pidfd_get(self, pid: Pid, *, thread: bool = False, nonblock: bool = False) -> PidFd:
        """pidfd_prepare() on a struct pid already in hand (a file opened by path or by inode)."""
        if not isinstance(pid, Pid):
            raise _einval(f"{pid!r} is not a struct pid")
        return self._pidfd_get(pid, thread=bool(thread), nonblock=bool(nonblock))

    def _pidfd_get(self, pid: Pid, *, thread: bool, nonblock: bool) -> PidFd:
        if pid.task is None:
            raise KernelError(errno.ESRCH, f"process {pid.nr} has been reaped")
        if not thread and pid.tgid_task is None:
            raise KernelError(errno.ENOENT, f"{pid.nr} is a thread, not a thread-group leader "
                              "(use PIDFD_THREAD)")
        pid.handles += 1
        if pid.attr is None:
            pid.attr = PidAttr()
        return PidFd(pid, thread=thread, nonblock=nonblock)

    def pidfd_close(self, fd: PidFd) -> None:
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

    def pidfd_poll(self, fd: PidFd) -> int:
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

    def pidfd_send_signal(self, fd: PidFd, sig: int, *, uid: int = 0) -> None:
        """Models pidfd_send_signal(): EBADF on a closed handle; ESRCH once reaped (even for a
        bad signal); EINVAL for a bad signal; 0 (nothing happens) for a zombie; EPERM for a uid
        that may not signal it."""
        if not isinstance(fd, PidFd) or fd.closed:
            raise KernelError(errno.EBADF, f"{fd!r} is not an open pidfd")
        _check_uid(uid)
        sig = _check_int("signal", sig)
        t = fd.pid.task
        if t is None:
            raise KernelError(errno.ESRCH, f"process {fd.pid.nr} has been reaped")
        self.kill(t, sig, uid=uid, thread=fd.thread)

    def exit_info(self, pid: Pid) -> ExitInfo | None:
        """PIDFD_INFO_EXIT: the record written at reap, if this pid ever had a handle."""
        return pid.attr.exit if pid.attr is not None else None

    # xattrs on the pid (pidfs keeps them on the inode of the struct pid)

    @staticmethod
    def _xattr_name(name: str, uid: int) -> str:
        """The VFS checks in order: name length (ERANGE), then xattr_resolve_name(): no handler
        for the prefix (EOPNOTSUPP; pidfs has only trusted.*), an empty suffix (EINVAL)."""
        if not isinstance(name, str):
            raise _einval(f"xattr name {name!r} is not a string")
        _check_uid(uid)
        size = len(name.encode("utf-8", "surrogateescape"))
        if not 0 < size <= 255:
            raise KernelError(errno.ERANGE, f"xattr name {name!r} has {size} bytes, not 1..255")
        if not name.startswith("trusted."):
            raise KernelError(errno.EOPNOTSUPP, f"pidfs supports only trusted.* xattrs, not {name!r}")
        if name == "trusted.":
            raise _einval(f"xattr name {name!r} has nothing after the prefix")
        return name

    def _xattrs(self, pid: Pid) -> dict[str, bytes]:
        if pid.attr is None:
            pid.attr = PidAttr()
        return pid.attr.xattrs

    def setxattr(self, pid: Pid, name: str, value: bytes, *, uid: int = 0) -> None:
        name = self._xattr_name(name, uid)
        if not isinstance(value, (bytes, bytearray)):
            raise _einval(f"xattr value {value!r} is not bytes")
        if len(value) > 65536:
            raise KernelError(errno.E2BIG, f"xattr value of {len(value)} bytes is over 65536")
        if uid != 0:
            raise KernelError(errno.EPERM, f"uid {uid} may not set {name} (trusted.* needs privilege)")
        self._xattrs(pid)[name] = bytes(value)

    def getxattr(self, pid: Pid, name: str, *, uid: int = 0) -> bytes:
        name = self._xattr_name(name, uid)
        if uid != 0:
            raise KernelError(errno.ENODATA, f"no {name} visible to uid {uid}")
        try:
            return (pid.attr.xattrs if pid.attr else {})[name]
        except KeyError:
            raise KernelError(errno.ENODATA, f"pid has no xattr {name}") from None

    def listxattr(self, pid: Pid, *, uid: int = 0) -> list[str]:
        if _check_uid(uid) != 0 or pid.attr is None:
            return []
        return sorted(pid.attr.xattrs)

    def removexattr(self, pid: Pid, name: str, *, uid: int = 0) -> None:
        name = self._xattr_name(name, uid)
        if uid != 0:
            raise KernelError(errno.EPERM, f"uid {uid} may not remove {name}")
        if pid.attr is None or name not in pid.attr.xattrs:
            raise KernelError(errno.ENODATA, f"pid has no xattr {name}")
        del pid.attr.xattrs[name]
