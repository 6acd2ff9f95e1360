"""clone(): a new process or thread (kernel/fork.c ``copy_process``, kernel/pid.c ``attach_pid``).

The functions here are methods of ``Kernel`` (core.py binds them); ``self`` is the kernel.
``clone`` checks everything that can fail before it changes anything: flags and their
combinations, ``set_tid``, ids, then the new namespace and the pid (``Kernel._alloc_pid``
rolls its own work back). After that it cannot fail.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import signals as S
from .checks import ID_MAX, check_int, check_task, einval
from .errors import KernelError, ModelBug
from .events import EventKind
from .pid import MAX_PID_NS_LEVEL, Pid, PidNamespace
from .task import EXIT_RUNNING, TF_AUTOREAP, TF_FORKNOEXEC, TF_NO_NEW_PRIVS, TF_WAIT_PID, Task, ThreadGroup, comm_cut

if TYPE_CHECKING:
    from .core import Kernel
    from .pidfs import PidFd

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


@dataclass(frozen=True, slots=True)
class CloneResult:
    task: Task
    pidfd: PidFd | None = None
    fd: int | None = None  # the descriptor number in the parent's emulated fd table


#: the run state clone leaves a new process in (Task's default; a thread takes its parent's)
PROCESS_STATE: str = Task.__dataclass_fields__["state"].default  # type: ignore[assignment]

def clone(self: Kernel, parent: Task, flags: int = 0, *, exit_signal: int | None = None,
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
    # (Measured by bench/model.py clone_cycle: clone + exit_group + waitid per second.)
    if flags.__class__ is not int:
        flags = check_int("clone flags", flags)
    if parent.__class__ is not Task:
        check_task("parent", parent)
    g_parent = parent.group
    if not parent.alive or g_parent.group_exit:
        raise KernelError(errno.ESRCH, f"task {parent.pid.nr} has exited and cannot clone")
    if flags & ~CLONE_KNOWN or flags < 0:
        raise einval(f"clone flags {flags:#x} include unknown bits {flags & ~CLONE_KNOWN:#x}")
    # copy_clone_args_from_user() checks set_tid_size before copy_process() runs
    if set_tid.__class__ is not tuple or set_tid:
        if not isinstance(set_tid, (tuple, list)):
            raise einval(f"set_tid {set_tid!r} is not a list of integers")
        set_tid = tuple(check_int("set_tid entry", t) for t in set_tid)
        if len(set_tid) > MAX_PID_NS_LEVEL:
            raise einval(f"set_tid has {len(set_tid)} entries, more than {MAX_PID_NS_LEVEL}")
    thread = bool(flags & CLONE_THREAD)
    if exit_signal is None:
        exit_signal = 0 if flags & (CLONE_THREAD | CLONE_PARENT | CLONE_AUTOREAP) else S.SIGCHLD
    else:
        exit_signal = check_int("exit_signal", exit_signal)
        if not S.valid_signal(exit_signal):
            raise einval(f"exit_signal {exit_signal} is not a signal (0..{S.SIGRTMAX})")
    if flags:
        if flags & (CLONE_THREAD | CLONE_PARENT) and exit_signal:
            raise einval("exit_signal must be 0 with CLONE_THREAD or CLONE_PARENT")
        if flags & (CLONE_WAIT_PID | CLONE_PIDFD_AUTOKILL) and not flags & CLONE_PIDFD:
            raise einval("CLONE_WAIT_PID and CLONE_PIDFD_AUTOKILL need CLONE_PIDFD")
        if flags & CLONE_AUTOREAP and (exit_signal or flags & (CLONE_THREAD | CLONE_PARENT)):
            raise einval("CLONE_AUTOREAP needs exit_signal 0 and neither CLONE_THREAD nor CLONE_PARENT")
        if flags & CLONE_PARENT and parent.flags & TF_AUTOREAP:
            raise einval("an autoreaping process cannot use CLONE_PARENT")
        if flags & CLONE_PIDFD_AUTOKILL and (thread or not flags & CLONE_AUTOREAP):
            raise einval("CLONE_PIDFD_AUTOKILL needs CLONE_AUTOREAP and a process, not a thread")
        if thread and flags & CLONE_NEWPID:
            raise einval("CLONE_THREAD cannot be combined with CLONE_NEWPID")
        if thread and parent.ns_for_children is not parent.active_ns:
            raise einval(f"task {parent.pid.nr} unshared its pid namespace for children; "
                          "it cannot create threads")
        if flags & CLONE_PARENT and g_parent.unkillable:
            raise einval("a namespace init cannot use CLONE_PARENT")
        if flags & CLONE_NNP and thread:
            raise einval("CLONE_NNP cannot be combined with CLONE_THREAD")
        if flags & CLONE_PIDFD_AUTOKILL and not flags & CLONE_NNP and g_parent.uid != 0:
            raise KernelError(errno.EPERM, "CLONE_PIDFD_AUTOKILL without CLONE_NNP needs privilege (uid 0)")
    if comm is not None and not isinstance(comm, str):
        raise einval(f"comm {comm!r} is not a string")
    if argv is not None and (not isinstance(argv, (tuple, list))
                             or not all(isinstance(a, str) for a in argv)):
        raise einval(f"argv {argv!r} must be a list of strings")
    privileged = g_parent.uid == 0
    if uid is not None or gid is not None:
        for name, val, cur in (("uid", uid, g_parent.uid), ("gid", gid, g_parent.gid)):
            if val is not None:
                check_int(name, val)
                if not 0 <= val <= ID_MAX:
                    raise einval(f"{name} {val} is outside 0..{ID_MAX}")
                if thread and val != cur:
                    raise einval(f"a thread shares its process's {name}")
                if val != cur and not privileged:
                    raise KernelError(errno.EPERM, f"only uid 0 may give a child {name} {val}")

    # copy_process(): "if (nr_threads >= max_threads) goto bad_fork_cleanup_count" with
    # retval -EAGAIN (kernel/fork.c), the errno its RLIMIT_NPROC check just before it gives too
    max_threads = self.max_threads
    if max_threads is not None and self.nr_threads >= max_threads:
        raise KernelError(errno.EAGAIN, f"the table holds {self.nr_threads:,} tasks, which is its cap "
                          f"(kernel.threads-max {max_threads:,})")
    ns = parent.pid_ns_for_children or parent.pid.ns  # ns_for_children
    new_ns: PidNamespace | None = None
    if flags & CLONE_NEWPID:
        if ns is not parent.active_ns:
            raise einval(f"task {parent.pid.nr} already unshared a pid namespace for children")
        new_ns = self._create_pid_ns(ns, privileged)
    try:
        pid = self._alloc_pid(ns if new_ns is None else new_ns, set_tid, not thread, privileged)
    except KernelError:
        if new_ns is not None:  # put_pid_ns() -> ns_free_inum(): the number is free again
            self._next_ns_inum -= 1
        raise
    if new_ns is not None:
        ns.children.append(new_ns)
        new_ns.creator = parent

    # -- nothing below can fail ---------------------------------------------------------
    now = self.clock()
    if now < parent.start_time:
        now = parent.start_time
    # /proc/stat "processes": forks since boot, never below the pids handed out (a number
    # reached through set_tid or a moved cursor stands for the forks that led up to it)
    self.total_forks = max(self.total_forks + 1, pid.numbers[0])
    # Task(pid, group, comm, start_time) positionally and the rest by assignment: keyword
    # arguments to the generated __init__ cost ~50ns each, and this runs for every clone
    # (bench/model.py clone_cycle).
    task = Task(pid, g_parent, comm_cut(comm) if comm else parent.comm, now)
    task.nsproxy = parent.nsproxy if thread else parent.nsproxy.for_child()
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
        g = inherited_group(task, g_parent)
        if argv is not None:
            g.argv = tuple(argv)
        elif comm:
            g.argv = (comm,)
        if uid is not None:
            g.uid = uid
        if gid is not None:
            g.gid = gid
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


def _attach_new(self: Kernel, task: Task, g: ThreadGroup, *, leader: bool, parent: Task | None) -> None:
    pid = task.pid
    pid.task = task
    self._attach_tgid(pid, task)
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


def _attach_tgid(self: Kernel, pid: Pid, task: Task) -> None:
    """attach_pid(PIDTYPE_TGID): seed 000 forbids false negatives, so this checks the tag."""
    if not pid.ns.idr.is_tagged(pid.numbers[-1]):
        raise ModelBug(f"attaching thread-group leader {task!r} to untagged {pid!r}")
    pid.tgid_task = task


def inherited_group(task: Task, g_parent: ThreadGroup) -> ThreadGroup:
    """A new process's thread group led by ``task``, with what it inherits from its parent's
    (copy_signal()/copy_creds(): process group, session, argv, environ, credentials, cwd, exe,
    root, memory sizes, terminal, ignored signals, the subreaper bit); ``clone`` then applies
    its own arguments, and restore (``restore.py``) uses it as is."""
    g = ThreadGroup(task)
    g.pgrp = g_parent.pgrp
    g.session = g_parent.session
    g.argv = g_parent.argv
    g.environ = g_parent.environ
    g.uid = g_parent.uid
    g.gid = g_parent.gid
    g.cwd = g_parent.cwd
    g.exe = g_parent.exe
    g.root = g_parent.root
    g.vsize = g_parent.vsize
    g.rss = g_parent.rss
    g.tty_nr = g_parent.tty_nr
    g.sigign = g_parent.sigign
    g.has_child_subreaper = g_parent.has_child_subreaper or g_parent.is_child_subreaper
    return g


def clone_many(self: Kernel, parent: Task, count: int, flags: int = 0, *,
               exit_signal: int | None = None, comm: str | None = None,
               argv: tuple[str, ...] | list[str] | None = None, uid: int | None = None,
               gid: int | None = None, made: list[Task] | None = None) -> list[Task]:
    """``count`` clones of ``parent`` with the same arguments: what calling ``clone`` that many
    times does (the same tasks, numbers, links, events, errors), done in bulk (``clone 1
    count=N``). Stops at the first clone that fails and raises its error; the tasks made before
    it stay (``made``, when given, is the list they are appended to, so a caller sees them).

    The first clone is ``clone`` itself, with all its checks. For a plain process or thread
    (``flags`` 0 or CLONE_THREAD; other flags clone one by one) nothing those checks looked at
    can change during the loop (the parent stays alive, its namespace keeps admitting pids, the
    arguments are the same), so each further task only takes the numbers at the cursors and is
    linked in. A task for which that is not simply so (a level's cursor number taken or at
    pid_max, pid 1 of a namespace, the table at kernel.threads-max) is made by ``clone``, which
    searches, or fails as it would have. (Measured by bench/bulk_bench.py; listeners must not
    change the model, as the mount's do not.)
    """
    out: list[Task] = made if made is not None else []
    count = check_int("count", count)
    if count <= 0:
        return out

    def one() -> Task:
        return self.clone(parent, flags, exit_signal=exit_signal, comm=comm, argv=argv,
                          uid=uid, gid=gid).task

    first = one()
    out.append(first)
    if flags & ~CLONE_THREAD:
        for _ in range(count - 1):
            out.append(one())
        return out
    if count == 1:
        return out
    thread = bool(flags)
    g_parent = parent.group
    ns = first.pid.ns
    anc = ns.ancestors
    levels = [a.idr for a in reversed(anc)]  # innermost first, as alloc_pid
    ends = [a.pid_max for a in reversed(anc)]
    fg = first.group
    task_comm, es, tflags = first.comm, first.exit_signal, first.flags
    # a thread keeps clone's nice and state (0, its parent's); a process the first's nice and S
    nice = 0 if thread else first.nice
    nsproxy = first.nsproxy
    state = first.state if thread else PROCESS_STATE
    proc: tuple[Any, ...] = ()
    pg_members = sess_members = None
    if not thread:  # the process fields clone gives every child of this call (as the first's)
        proc = (fg.pgrp, fg.session, fg.argv, fg.environ, fg.uid, fg.gid, fg.cwd, fg.exe, fg.root,
                fg.vsize, fg.rss, fg.tty_nr, fg.sigign, fg.has_child_subreaper)
        pg_members = fg.pgrp.pgrp_tasks if fg.pgrp is not None else None
        sess_members = fg.session.session_tasks if fg.session is not None else None
    siblings = parent.children
    threads = g_parent.threads
    clock, by_ino, listener = self.clock, self._by_ino, self.listener
    tag = not thread
    single = len(levels) == 1
    idr0, end0 = levels[0], ends[0]
    for _ in range(count - 1):
        cap = self.max_threads
        if cap is not None and self.nr_threads >= cap:
            out.append(one())  # raises EAGAIN
            continue
        if single:
            nr = idr0.next_cyclic(end0)
            if nr <= 1:  # taken, past pid_max, or a namespace's pid 1: clone decides
                out.append(one())
                continue
            numbers: tuple[int, ...] = (nr,)
        else:
            nrs = [idr.next_cyclic(end) for idr, end in zip(levels, ends, strict=True)]
            if min(nrs) < 0 or nrs[0] == 1:
                out.append(one())
                continue
            nrs.reverse()
            numbers = tuple(nrs)
        # _alloc_pid + _pidfs_add_pid: the numbers, the struct pid and its pidfs inode
        pid = Pid(numbers, ns, self._next_ino)
        self._next_ino += 1
        by_ino.append(pid)
        if single:
            idr0.take(nr, pid, tag)
        else:
            for idr, n in zip(levels, reversed(numbers), strict=True):
                idr.take(n, pid, tag)
        now = clock()
        if now < parent.start_time:
            now = parent.start_time
        forks = self.total_forks + 1
        self.total_forks = forks if forks > numbers[0] else numbers[0]
        pid.task = task = Task(pid, g_parent, task_comm, now, es, state, EXIT_RUNNING, 0, tflags,
                               nice, 0, 0, None, None, nsproxy)  # (one call sets every field)
        if thread:
            threads[task] = None
            g_parent.live += 1
        else:
            g = ThreadGroup(task)
            (g.pgrp, g.session, g.argv, g.environ, g.uid, g.gid, g.cwd, g.exe, g.root, g.vsize,
             g.rss, g.tty_nr, g.sigign, g.has_child_subreaper) = proc
            task.group = g
            # _attach_new (the TGID tag was just set with the numbers)
            pid.tgid_task = task
            g.threads[task] = None
            g.live = 1
            g.parent = parent
            if pg_members is not None:
                pg_members[task] = None
            if sess_members is not None:
                sess_members[task] = None
            if siblings is not None:
                siblings[task] = None
        self.nr_threads += 1
        if listener is not None:
            self._emit(EventKind.CREATED, pid, task)
        out.append(task)
    return out
