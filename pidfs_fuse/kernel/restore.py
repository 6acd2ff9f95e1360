"""Restore primitives: the calls a checkpoint/restore tool needs beyond the system calls.

CRIU rebuilds a process tree with ordinary system calls plus a few made for it: clone3() with
``set_tid`` naming the pid at every namespace level, writes of ``ns_last_pid``, and prctl()s
that put back what no call can reach. This module is the model's equivalent, for
``pidfs_fuse.snapshot`` and anything else that rebuilds a table from a picture instead of
replaying its history. Each primitive is one documented step with the errnos it raises; the
caller (which knows the picture) orders them and validates the picture itself, so these check
what would corrupt the model, not what a file might get wrong.

Beyond CRIU, the model keeps identities Linux does not let a restorer choose: the pidfs inode
number of every struct pid (one global counter, never reused) and the inode number of every
pid namespace. Here they are chosen too, so a restored table is the same in every number.

The restorer is privileged (uid 0), as CRIU is. Pids with chosen numbers and inodes come from
an ``ExactPids`` (one per restore; its ``finish`` writes the counters and ends the restore).
While a restore is under way, namespaces made by ``create_pid_ns`` admit any number up to
``PID_MAX_LIMIT`` and have the placeholder child reaper ``RESTORING`` (so ``set_tid`` may name
numbers other than 1 before their init exists); ``set_pid_ns_state`` puts the recorded values
back.

Not here: reading or writing files (that is ``pidfs_fuse.snapshot``), and anything a public
call already does with the right checks (``Kernel.setns_pid``, ``Kernel.setxattr``,
``Kernel.set_pid_max``, plain fields of ``Task``/``ThreadGroup``).
"""

from __future__ import annotations

import bisect
import errno
import itertools
import operator
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from . import signals as S
from .core import CLONE_THREAD, Kernel, PidFd
from .errors import KernelError
from .fork import PROCESS_STATE, inherited_group
from .idr import PID_MAX_LIMIT
from .pid import MAX_PID_NS_LEVEL, Pid, PidNamespace
from .task import (
    EXIT_RUNNING,
    RUN_STATES,
    TASK_COMM_LEN,
    TF_AUTOREAP,
    TF_EXITING,
    TF_FORKNOEXEC,
    TF_NO_NEW_PRIVS,
    TF_WAIT_PID,
    ExitState,
    Task,
    ThreadGroup,
)

#: pidfs inode numbers start here: ``Kernel()`` gives it to init's pid.
FIRST_INO: Final = 2
#: pidfs inode numbers stay below this, and so does the counter ``set_counters`` writes: 2**40
#: allocations are out of reach, and whoever numbers its own things beside pidfs inodes (the
#: mount: its handle files' st_ino *is* the pidfs inode) may use the numbers from here up.
INO_LIMIT: Final = 1 << 40
#: what a row given to ``ExactPids.threads`` begins with
THREAD_ROW: Final = ("ino", "numbers", "comm", "state", "start_time", "nice", "utime", "stime",
                     "exit_signal", "flags")
#: the largest raw wait status (``code << 8 | signal | 0x80``)
STATUS_MAX: Final = 0xFFFF
#: a thread as a snapshot records it (``pidfs_fuse.snapshot``'s THREAD array): ``THREAD_ROW``,
#: then the exit state (0 running, 1 zombie), the task's own wait status, the inum of its pid
#: namespace for children (0: none of its own) and its pidfs record (None: none)
THREAD_ARRAY: Final = (*THREAD_ROW, "exit_state", "exit_code", "pid_ns_for_children", "attr")
#: task flags a restored task may have (TF_*: WAIT_PID, AUTOREAP, FORKNOEXEC, EXITING,
#: NO_NEW_PRIVS), and those an ordinary running thread has none of (``ordinary``)
TF_RESTORABLE: Final = TF_WAIT_PID | TF_AUTOREAP | TF_FORKNOEXEC | TF_EXITING | TF_NO_NEW_PRIVS
_NOT_ORDINARY_FLAGS: Final = ~TF_RESTORABLE | TF_EXITING
#: start times are below this (ns since boot)
START_END: Final = 2**63
U64_MAX: Final = 2**64 - 1


def ordinary(a: object, nlev: int, ino_below: int, known: Container[int]) -> bool:
    """Whether ``a`` is a THREAD_ARRAY of an ordinary running task of a namespace of ``nlev``
    levels, every entry of its type (ints, not bools) and range: an inode in
    ``FIRST_INO..ino_below - 1`` that is not in ``known``, one number per level in
    1..PID_MAX_LIMIT-1, a comm of 1..15 characters, a run state letter, a start time in
    0..2**63-1, nice -20..19, utime and stime 0..2**64-1, an exit signal -1..64, flags of
    ``TF_RESTORABLE`` without TF_EXITING, running with wait status 0..0xffff, no namespace for
    children of its own, no pidfs record. What ``ExactPids.threads`` checks itself when given
    ``ino_below`` (the same expression, inline there); a restorer words its own errors for
    anything else."""
    if type(a) is not list or len(a) != 14:
        return False
    ino, nums, comm, state, start, nice, utime, stime, es, flags, xs, code, nsfc, attr = a
    return bool(
        type(ino) is type(start) is type(nice) is type(utime) is type(stime) is type(es)
        is type(flags) is type(xs) is type(code) is type(nsfc) is int
        and type(nums) is list and type(comm) is type(state) is str and attr is None
        and FIRST_INO <= ino < ino_below and ino not in known
        and len(nums) == nlev and 0 < len(comm) < TASK_COMM_LEN and state in RUN_STATES
        and 0 <= start < START_END and -20 <= nice <= 19
        and 0 <= utime <= U64_MAX and 0 <= stime <= U64_MAX and -1 <= es <= S._NSIG
        and flags >= 0 and not flags & _NOT_ORDINARY_FLAGS
        and xs == 0 and 0 <= code <= STATUS_MAX and nsfc == 0
        and (type(nums[0]) is int and 1 <= nums[0] < PID_MAX_LIMIT if nlev == 1
             else all(type(n) is int and 1 <= n < PID_MAX_LIMIT for n in nums)))


class _Restoring:
    """The child reaper of a namespace being restored before its init exists (see ``RESTORING``)."""

    def __repr__(self) -> str:
        return "<restoring>"


#: Placeholder child reaper of a namespace made by ``create_pid_ns``: alloc_pid refuses set_tid
#: numbers other than 1 in a namespace without one (kernel/pid.c), and a restore may create a
#: namespace's members before its init (or restore a namespace whose init has died).
RESTORING: Final = _Restoring()


@dataclass(frozen=True, slots=True)
class Counters:
    """The kernel's global counters: what ``set_counters`` writes at the end of a restore.

    ``next_ino`` is the pidfs inode number the next struct pid gets (fs/pidfs.c's counter, from
    2, never reused); ``next_ns_inum`` the inode number of the next pid namespace (proc_alloc_inum);
    ``total_forks`` the forks since boot (/proc/stat ``processes``).
    """

    next_ino: int
    next_ns_inum: int
    total_forks: int


def counters(kernel: Kernel) -> Counters:
    """The counters as they are now (what a checkpoint records)."""
    return Counters(kernel._next_ino, kernel._next_ns_inum, kernel.total_forks)


def set_counters(kernel: Kernel, c: Counters, *, index_sorted: bool = False) -> None:
    """Write the global counters, as CRIU writes ``ns_last_pid`` before its last clone.

    EINVAL when ``next_ino`` is not above the pidfs inode of every allocated pid (an inode
    number would be handed out twice) or is above ``INO_LIMIT``, ``next_ns_inum`` not above the
    inum of every namespace below the root, or ``total_forks`` is negative. ``index_sorted``:
    the caller knows the by-inode index is in inode order (``ExactPids.finish`` sorted it; a
    restore in progress leaves it unsorted).
    """
    by_ino = kernel._by_ino
    if index_sorted:  # the last allocated pid has the largest inode (a max over a million
        # pids took 0.25 s of a restore)
        top = next((p.ino for p in reversed(by_ino) if p.allocated), FIRST_INO - 1)
    else:
        top = max((p.ino for p in by_ino if p.allocated), default=FIRST_INO - 1)
    if type(c.next_ino) is not int or c.next_ino <= top:
        raise KernelError(errno.EINVAL, f"next pidfs inode {c.next_ino!r} is not above the largest "
                          f"one in use ({top})")
    if c.next_ino > INO_LIMIT:
        raise KernelError(errno.EINVAL, f"next pidfs inode {c.next_ino} is above {INO_LIMIT} (INO_LIMIT)")
    inums = [ns.inum for ns in kernel.namespaces() if ns is not kernel.root_ns]
    if type(c.next_ns_inum) is not int or (inums and c.next_ns_inum <= max(inums)):
        raise KernelError(errno.EINVAL, f"next namespace inum {c.next_ns_inum!r} is not above the "
                          f"largest one in use ({max(inums, default=0)})")
    if type(c.total_forks) is not int or c.total_forks < 0:
        raise KernelError(errno.EINVAL, f"total_forks {c.total_forks!r} is negative")
    kernel._next_ino = c.next_ino
    kernel._next_ns_inum = c.next_ns_inum
    kernel.total_forks = c.total_forks


def allocated_pids(kernel: Kernel) -> Iterator[Pid]:
    """Every allocated struct pid (each has a number in the root namespace), tasks or not, in no
    particular order: what a checkpoint walks. Do not allocate or free pids while iterating."""
    # A number reserved by an allocation in progress maps to None until its pid exists.
    return (pid for pid in kernel.root_ns.idr._ptr.values() if pid is not None)


def _set_tid(ns: PidNamespace, numbers: tuple[int, ...]) -> tuple[int, ...]:
    if len(numbers) != ns.level + 1:
        raise KernelError(errno.EINVAL, f"{len(numbers)} pid number(s) for namespace {ns.inum}, "
                          f"which has {ns.level + 1} level(s)")
    return numbers[::-1]


class ExactPids:
    """Allocation of struct pids with chosen numbers and pidfs inodes, for one restore.

    ``clone`` and ``alloc_pid`` take each pid's numbers at every level and its pidfs inode;
    ``finish`` writes the global counters and ends the restore. Pids restored out of inode
    order (a restore goes depth first through the process tree; inodes follow creation) are
    indexed for ``Kernel.find_pidfs`` by ``finish``, in one sort: inserting each in place would
    be quadratic (a process whose many threads are older than an earlier-restored sibling's
    subtree moves the whole index once per thread). Until then ``find_pidfs`` may miss them.
    The pidfs counter never goes back: after each allocation it is past every inode handed out.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        #: the index is sorted in its first ``_sorted`` entries (all it held at the start)
        self._sorted = len(kernel._by_ino)
        self._in_order = True

    def _claim(self, ino: int) -> int:
        """Point the pidfs counter at ``ino`` for one allocation; return the counter to put back."""
        k = self.kernel
        if type(ino) is not int or not FIRST_INO <= ino < INO_LIMIT:
            raise KernelError(errno.EINVAL, f"pidfs inode {ino!r} is not an integer in "
                              f"{FIRST_INO}..{INO_LIMIT - 1}")
        by_ino = k._by_ino
        i = bisect.bisect_left(by_ino, ino, 0, self._sorted, key=lambda p: p.ino)
        if i < self._sorted and by_ino[i].ino == ino:
            raise KernelError(errno.EEXIST, f"pidfs inode {ino} is already in use")
        saved = k._next_ino
        k._next_ino = ino
        return saved

    def _settle(self, pid: Pid, saved: int) -> None:
        k = self.kernel
        by_ino = k._by_ino
        if len(by_ino) > 1 and by_ino[-2].ino > pid.ino:
            self._in_order = False
        k._next_ino = max(saved, pid.ino + 1)

    def _indexed(self, pid: Pid) -> Pid:
        """A pid made directly (``threads``, ``_process``) put at the end of the inode index
        (``finish`` sorts it if it came out of order, as ``_settle`` notes), with the kernel's
        next inode past it."""
        k = self.kernel
        by_ino = k._by_ino
        if by_ino and by_ino[-1].ino > pid.ino:
            self._in_order = False
        if k._next_ino <= pid.ino:
            k._next_ino = pid.ino + 1
        by_ino.append(pid)
        return pid

    def alloc_pid(self, ns: PidNamespace, numbers: tuple[int, ...], ino: int, *,
                  tagged: bool) -> Pid:
        """A struct pid in ``ns`` numbered ``numbers`` (outermost level first, as
        ``Pid.numbers``) with pidfs inode ``ino``, and no task: a pid that lives on only as a
        process group or session id (the daemonize case). ``tagged`` is the TGID tag of seed
        000 (set when it was allocated for a new thread group).

        Models kernel/pid.c:alloc_pid() with a privileged ``set_tid`` entry for every level.
        EINVAL: not one number per level, a number outside 1..pid_max-1 of its level, a number
        other than 1 in a namespace without init, or ``ino`` outside 2..INO_LIMIT-1; EEXIST: a
        number is taken, or the inode is one a pid had before the restore began (two pids of the
        restore given one inode: ``finish`` says EEXIST); ENOMEM: the namespace no longer admits
        pids. On error nothing changed.
        """
        k = self.kernel
        set_tid = _set_tid(ns, numbers)
        saved = self._claim(ino)
        try:
            pid = k._alloc_pid(ns, set_tid, bool(tagged), True)
        except KernelError:
            k._next_ino = saved
            raise
        self._settle(pid, saved)
        return pid

    def clone(self, parent: Task, numbers: tuple[int, ...], ino: int, *, thread: bool = False,
              exit_signal: int | None = None) -> Task:
        """A new task numbered ``numbers`` (outermost level first) with pidfs inode ``ino``: a
        thread of ``parent``'s group when ``thread``, else a child process of ``parent`` in its
        namespace for children. Everything else is ``Kernel.clone``'s (links, tags, counts).

        Models clone3() with CLONE_THREAD or not and a ``set_tid`` entry for every level, as
        CRIU restores a task. set_tid needs privilege: a restorer keeps every process at uid 0
        while it builds and puts the recorded uids back afterwards. EINVAL: not one number per
        level of the new task's namespace, ``ino`` below 2, or clone's EINVAL cases; EEXIST: as
        ``alloc_pid``; EPERM: the parent's uid is not 0; plus clone's errnos (ENOMEM, ESRCH for
        a dead parent, ...). On error nothing changed.
        """
        k = self.kernel
        ns = parent.pid.ns if thread else parent.ns_for_children
        if not thread:
            task = self._process(parent, ns, numbers, ino, exit_signal)
            if task is not None:
                return task
        set_tid = _set_tid(ns, numbers)
        saved = self._claim(ino)
        try:
            if thread:
                task = k.clone(parent, CLONE_THREAD, set_tid=set_tid).task
            else:
                task = k.clone(parent, 0, exit_signal=exit_signal, set_tid=set_tid).task
        except KernelError:
            k._next_ino = saved
            raise
        self._settle(task.pid, saved)
        return task

    def threads(self, leader: Task, rows: Sequence[Sequence[Any]], made: list[Task],
                index: dict[int, Pid] | None = None, *, ino_below: int | None = None) -> None:
        """A thread of ``leader``'s group for each row of ``rows`` in order, appending each
        task to ``made`` (on an error, ``made`` holds those before it) and, when ``index`` is
        given, its pid to ``index`` by pidfs inode (a restorer's own map). A row begins with
        ``THREAD_ROW`` (further entries are ignored): the pid's numbers (outermost level
        first) and pidfs inode, as ``clone(leader, numbers, ino, thread=True)`` takes them,
        then the plain fields the new task gets, as a restorer sets them (the caller checked
        them). A restore makes most of a big table's tasks this way (a million threads), and
        each clone's checks and links cost more than the task itself
        (bench/snapshot_bench.py).

        A thread is made directly when its clone can only succeed: the group lives, has uid 0
        and may create threads, the namespace admits pids, the table is below
        kernel.threads-max, the inode is above those of the pids from before the restore (as
        ``_claim`` checks; ``finish`` finds two restored pids given one), and each number is
        inside its level, free, and not a namespace's 1 (with an init or ``RESTORING`` in
        every level). It then does what that clone does: the task, its pid, the numbers
        (untagged) and the thread links. Anything else goes through ``clone``, which does the
        same or raises its error.

        With ``ino_below`` (and ``index``, which then holds every pid restored so far), each
        row is a THREAD_ARRAY that must first be ``ordinary(row, levels, ino_below, index)``:
        the call stops before the first row that is not (``made`` tells how many were made),
        and the caller deals with that one. A restorer checks and makes its rows in one pass
        this way, not two (a tenth of restoring a million tasks).
        """
        k = self.kernel
        ns = leader.pid.ns
        g = leader.group
        anc = ns.ancestors
        nlev = len(anc)
        if not (nlev <= MAX_PID_NS_LEVEL and ns.adding and not g.group_exit and g.uid == 0
                and leader.exit_state is EXIT_RUNNING and not leader.flags & TF_EXITING
                and (leader.pid_ns_for_children is None or leader.pid_ns_for_children is ns)
                and (anc[0].child_reaper is not None if nlev == 1
                     else all(a.child_reaper is not None for a in anc))
                and k.listener is None):  # (clone tells a listener of each task)
            for row in rows:
                if ino_below is not None and not ordinary(
                        row, nlev, ino_below, index if index is not None else {}):
                    return
                made.append(task := self._cloned(leader, row))
                if index is not None:
                    index[task.pid.ino] = task.pid
            return
        if index is None:
            index = {}
        check = ino_below is not None
        below = ino_below if ino_below is not None else 0
        nsig = S._NSIG
        by_ino = k._by_ino
        srt = self._sorted
        low = by_ino[srt - 1].ino if srt else FIRST_INO - 1  # _claim: inodes from before
        if low < FIRST_INO - 1:
            low = FIRST_INO - 1
        idr0 = anc[0].idr
        ptr0, used0, max0 = idr0._ptr, idr0._used, anc[0].pid_max
        maps = [(a.idr._ptr, a.idr._used.add, a.pid_max) for a in anc] if nlev > 1 else []
        nrs0: list[int] = []  # level 0's numbers, marked used in one call (before any clone)
        nr0 = nrs0.append
        nsproxy = leader.nsproxy
        lcomm = leader.comm
        threads = g.threads
        cap = k.max_threads
        by_ino_add = by_ino.append
        add = made.append
        last = by_ino[-1].ino if by_ino else 0
        # the counters, kept here and written back before any clone and at the end: tasks
        # made directly and not yet counted, the table's count, forks, the next pidfs inode
        n = 0
        nr_threads, forks, next_ino = k.nr_threads, k.total_forks, k._next_ino
        try:
            if check and nlev == 1:
                # a restorer's rows in a one-level namespace: the loop below, with ordinary()
                # inline (keep the two alike: test_kernel_restore compares them) and none of
                # the checks it makes of the inode's and number's types again
                for row in rows:
                    if type(row) is not list or len(row) != 14:
                        break
                    ino, nums, comm, state, start, nice, utime, stime, es, flags, xs, code, nsfc, attr = row
                    if not (type(ino) is type(start) is type(nice) is type(utime) is type(stime)
                            is type(es) is type(flags) is type(xs) is type(code) is type(nsfc) is int
                            and type(nums) is list and type(comm) is type(state) is str
                            and attr is None and FIRST_INO <= ino < below and ino not in index
                            and len(nums) == 1 and 0 < len(comm) < TASK_COMM_LEN
                            and state in RUN_STATES and 0 <= start < START_END and -20 <= nice <= 19
                            and 0 <= utime <= U64_MAX and 0 <= stime <= U64_MAX
                            and -1 <= es <= nsig and flags >= 0 and not flags & _NOT_ORDINARY_FLAGS
                            and xs == 0 and 0 <= code <= STATUS_MAX and nsfc == 0
                            and type(nr := nums[0]) is int and 1 <= nr < PID_MAX_LIMIT):
                        break
                    if not (low < ino < INO_LIMIT and 1 < nr < max0 and nr not in ptr0
                            and (cap is None or nr_threads + n < cap)):
                        used0.update(nrs0)  # (as below)
                        nrs0.clear()
                        g.live += n
                        k.nr_threads += n
                        n = 0
                        k.total_forks, k._next_ino = forks, next_ino
                        add(task := self._cloned(leader, row))
                        index[task.pid.ino] = task.pid
                        nr_threads, forks, next_ino = k.nr_threads, k.total_forks, k._next_ino
                        last = by_ino[-1].ino
                        continue
                    if comm == lcomm:  # the leader's name: one string, as clone shares it
                        comm = lcomm
                    pid = Pid((nr,), ns, ino)
                    ptr0[nr] = pid
                    nr0(nr)
                    if last > ino:
                        self._in_order = False
                    last = ino
                    by_ino_add(pid)
                    index[ino] = pid
                    if next_ino <= ino:
                        next_ino = ino + 1
                    forks += 1
                    if forks < nr:
                        forks = nr
                    pid.task = task = Task(pid, g, comm, start, es, state, EXIT_RUNNING, 0, flags,
                                           nice, utime, stime, None, None, nsproxy)
                    threads[task] = None
                    n += 1
                    add(task)
                return
            for row in rows:
                if check:
                    # ordinary(), inline (keep the two alike: test_kernel_restore compares them)
                    if type(row) is not list or len(row) != 14:
                        break
                    ino, nums, comm, state, start, nice, utime, stime, es, flags, xs, code, nsfc, attr = row
                    if not (type(ino) is type(start) is type(nice) is type(utime) is type(stime)
                            is type(es) is type(flags) is type(xs) is type(code) is type(nsfc) is int
                            and type(nums) is list and type(comm) is type(state) is str
                            and attr is None and FIRST_INO <= ino < below and ino not in index
                            and len(nums) == nlev and 0 < len(comm) < TASK_COMM_LEN
                            and state in RUN_STATES and 0 <= start < START_END and -20 <= nice <= 19
                            and 0 <= utime <= U64_MAX and 0 <= stime <= U64_MAX
                            and -1 <= es <= nsig and flags >= 0 and not flags & _NOT_ORDINARY_FLAGS
                            and xs == 0 and 0 <= code <= STATUS_MAX and nsfc == 0
                            and (type(nums[0]) is int and 1 <= nums[0] < PID_MAX_LIMIT if nlev == 1
                                 else all(type(x) is int and 1 <= x < PID_MAX_LIMIT for x in nums))):
                        break
                else:
                    ino, nums, comm, state, start, nice, utime, stime, es, flags = row[:10]
                direct = (type(ino) is int and low < ino < INO_LIMIT and len(nums) == nlev
                          and (cap is None or nr_threads + n < cap))
                if direct:
                    if nlev == 1:
                        nr = nums[0]
                        direct = type(nr) is int and 1 < nr < max0 and nr not in ptr0
                    else:
                        direct = all(type(x) is int and 1 < x < m and x not in p
                                     for x, (p, _, m) in zip(nums, maps, strict=True))
                if not direct:
                    used0.update(nrs0)
                    nrs0.clear()
                    g.live += n
                    k.nr_threads += n
                    n = 0
                    k.total_forks, k._next_ino = forks, next_ino
                    add(task := self._cloned(leader, row))
                    index[task.pid.ino] = task.pid
                    nr_threads, forks, next_ino = k.nr_threads, k.total_forks, k._next_ino
                    last = by_ino[-1].ino
                    continue
                if comm == lcomm:  # (as above)
                    comm = lcomm
                if nlev == 1:
                    pid = Pid((nr,), ns, ino)
                    ptr0[nr] = pid
                else:
                    pid = Pid(tuple(nums), ns, ino)
                    for x, (p, used, _) in zip(nums, maps, strict=True):
                        p[x] = pid
                        if p is not ptr0:
                            used(x)
                    nr = nums[0]
                nr0(nr)
                # _indexed, inline
                if last > ino:
                    self._in_order = False
                last = ino
                by_ino_add(pid)
                index[ino] = pid
                if next_ino <= ino:
                    next_ino = ino + 1
                forks += 1
                if forks < nr:
                    forks = nr
                # clone's thread, its fields in Task's order (one call sets them all), with the
                # recorded ones
                pid.task = task = Task(pid, g, comm, start, es, state, EXIT_RUNNING, 0, flags,
                                       nice, utime, stime, None, None, nsproxy)
                threads[task] = None
                n += 1
                add(task)
        finally:
            used0.update(nrs0)
            g.live += n
            k.nr_threads += n
            k.total_forks, k._next_ino = forks, next_ino

    def _cloned(self, leader: Task, row: Sequence[Any]) -> Task:
        """``threads``' task for ``row`` through ``clone``, with the row's fields."""
        task = self.clone(leader, tuple(row[1]), row[0], thread=True)
        (task.comm, task.state, task.start_time, task.nice, task.utime, task.stime,
         task.exit_signal, task.flags) = row[2:10]
        return task

    def process(self, parent: Task, row: Sequence[Any]) -> Task:
        """A child process of ``parent`` from a row beginning with ``THREAD_ROW`` (as
        ``threads`` takes them): ``clone(parent, numbers, ino, exit_signal=)`` with the row's
        exit signal, and the row's other fields set on the new task, as a restorer sets them
        (the caller checked them). Where that clone can only succeed, the task is made with
        its fields at once (a table of small processes makes one per process). Errors and
        their cases are ``clone``'s; on error nothing changed."""
        ino, nums, comm, state, start, nice, utime, stime, es, flags = row[:10]
        numbers = tuple(nums)
        task = self._process(parent, parent.ns_for_children, numbers, ino, es, row)
        if task is None:
            task = self.clone(parent, numbers, ino, exit_signal=es)
            (task.comm, task.state, task.start_time, task.nice, task.utime, task.stime,
             task.flags) = comm, state, start, nice, utime, stime, flags
        return task

    def _process(self, parent: Task, ns: PidNamespace, numbers: tuple[int, ...], ino: int,
                 exit_signal: int | None, row: Sequence[Any] | None = None) -> Task | None:
        """``clone``'s process made directly when it can only succeed (as ``threads`` does for
        threads: the parent lives and has uid 0, a valid exit signal, the table below
        kernel.threads-max, the inode above those from before the restore, every number inside
        its level and free, a number other than 1 only where the level has an init or
        ``RESTORING``); None when not, and nothing changed (``clone`` then runs). With
        ``row`` (``process``), the task gets the row's fields instead of clone's."""
        k = self.kernel
        g_parent = parent.group
        anc = ns.ancestors
        by_ino = k._by_ino
        srt = self._sorted
        cap = k.max_threads
        es = S.SIGCHLD if exit_signal is None else exit_signal
        if not (type(ino) is int and FIRST_INO <= ino < INO_LIMIT
                and (srt == 0 or by_ino[srt - 1].ino < ino) and type(es) is int
                and S.valid_signal(es) and len(numbers) == len(anc) <= MAX_PID_NS_LEVEL
                and ns.adding and (cap is None or k.nr_threads < cap) and not g_parent.group_exit
                and g_parent.uid == 0 and parent.exit_state is EXIT_RUNNING
                and not parent.flags & TF_EXITING):
            return None
        if len(anc) == 1:  # (the usual case, without the loops)
            nr = numbers[0]
            idr = ns.idr
            if not (type(nr) is int and 1 <= nr < ns.pid_max and nr not in idr._ptr
                    and (nr == 1 or ns.child_reaper is not None)):
                return None
            pid = self._indexed(Pid(numbers, ns, ino))
            idr._insert(nr, pid, True)  # (alloc_exact: the number was just seen free)
        else:
            for a, nr in zip(anc, numbers, strict=True):
                if not (type(nr) is int and 1 <= nr < a.pid_max and nr not in a.idr._ptr
                        and (nr == 1 or a.child_reaper is not None)):
                    return None
            pid = self._indexed(Pid(numbers, ns, ino))
            for a, nr in zip(anc, numbers, strict=True):
                a.idr._insert(nr, pid, True)
        # the rest is clone's for a process (fork.py), then _attach_new's
        forks = k.total_forks + 1
        k.total_forks = forks if forks > numbers[0] else numbers[0]
        # Task's fields in order (one call sets them all): clone leaves a process in its
        # default state (PROCESS_STATE), or the row's
        if row is not None:
            _, _, comm, state, start, nice, utime, stime, _, flags = row[:10]
            task = Task(pid, g_parent, comm, start, es, state, EXIT_RUNNING, 0, flags, nice,
                        utime, stime, None, None, parent.nsproxy.for_child())
        else:
            now = k.clock()
            if now < parent.start_time:
                now = parent.start_time
            task = Task(pid, g_parent, parent.comm, now, es, PROCESS_STATE, EXIT_RUNNING, 0,
                        TF_FORKNOEXEC | (parent.flags & TF_NO_NEW_PRIVS), parent.nice, 0, 0,
                        None, None, parent.nsproxy.for_child())
        g = inherited_group(task, g_parent)
        task.group = g
        k._attach_new(task, g, leader=True, parent=parent)
        return task

    def finish(self, c: Counters) -> None:
        """End the restore: index every pid for ``find_pidfs``, then ``set_counters(c)``.
        EEXIST when two pids of the restore got one inode; EINVAL as ``set_counters``."""
        k = self.kernel
        ino_of = operator.attrgetter("ino")  # (a lambda per pid cost a million calls)
        if not self._in_order:
            k._by_ino.sort(key=ino_of)
            self._in_order = True
        by_ino = k._by_ino
        inos = list(map(ino_of, by_ino))
        if any(map(operator.eq, inos, itertools.islice(inos, 1, None))):
            for i in range(1, len(inos)):
                if inos[i - 1] == inos[i]:
                    raise KernelError(errno.EEXIST, f"pidfs inode {inos[i]} was given to two pids")
        self._sorted = len(by_ino)
        set_counters(k, c, index_sorted=True)


def set_pgrp_session(kernel: Kernel, group: ThreadGroup, pgrp: Pid, session: Pid) -> None:
    """Put ``group`` in the process group ``pgrp`` and the session ``session``.

    The inside of setpgid()/setsid() (change_pid(PIDTYPE_PGID/SID)) without their rules: a
    process only joins a session by being forked inside it, and a restored member of a
    daemonized session was forked by a process that no longer exists. A process group or
    session it leaves is freed when nothing holds it any more. ESRCH: ``pgrp`` or ``session``
    is not an allocated pid. The member order inside a group is not kept.
    """
    for what, pid in (("process group", pgrp), ("session", session)):
        if not isinstance(pid, Pid) or not pid.allocated:
            raise KernelError(errno.ESRCH, f"{what} {pid!r} is not an allocated pid")
    if group.pgrp is not pgrp:
        kernel._change_pgrp(group, pgrp)
    if group.session is not session:
        kernel._change_session(group, session)


def create_pid_ns(kernel: Kernel, parent: PidNamespace, inum: int) -> PidNamespace:
    """A pid namespace below ``parent`` with inode number ``inum``, listed after ``parent``'s
    other children: what clone(CLONE_NEWPID) or unshare() made, before any pid is in it.

    Models kernel/pid_namespace.c:create_pid_namespace() with a chosen inum. Until
    ``set_pid_ns_state`` it admits numbers up to PID_MAX_LIMIT and its child reaper is
    ``RESTORING``. ENOSPC past level 32; EINVAL for an inum outside 1..2**32-1 or the root
    namespace's. The caller keeps inums unique (a walk per namespace would be quadratic).
    """
    if parent.level + 1 > MAX_PID_NS_LEVEL:
        raise KernelError(errno.ENOSPC, f"pid namespaces nest at most {MAX_PID_NS_LEVEL} levels deep")
    if type(inum) is not int or not 1 <= inum < 2**32 or inum == kernel.root_ns.inum:
        raise KernelError(errno.EINVAL, f"pid namespace inum {inum!r} is outside 1..2**32-1 or "
                          "the root namespace's")
    ns = PidNamespace(level=parent.level + 1, parent=parent, inum=inum, pid_max=PID_MAX_LIMIT)
    ns.child_reaper = RESTORING  # type: ignore[assignment]
    parent.children.append(ns)
    return ns


def set_pid_ns_state(kernel: Kernel, ns: PidNamespace, *, pid_max: int, cursor: int,
                     adding: bool, child_reaper: Task | None, creator: Task | None) -> None:
    """Put back a namespace's state: ``pid_max`` (through ``Kernel.set_pid_max``, so EINVAL
    outside PID_MAX_MIN..PID_MAX_LIMIT), the allocation cursor (``ns_last_pid`` + 1; a write of
    ns_last_pid cannot express 0 or a cursor above a lowered pid_max), whether it still admits
    pids (only its init's death clears it), its child reaper and creator.

    EINVAL for a cursor outside 0..PID_MAX_LIMIT+1 (ns_last_pid may be written up to pid_max
    itself). On error nothing changed.
    """
    if type(cursor) is not int or not 0 <= cursor <= PID_MAX_LIMIT + 1:
        raise KernelError(errno.EINVAL, f"cursor {cursor!r} is outside 0..{PID_MAX_LIMIT + 1}")
    kernel.set_pid_max(ns, pid_max)
    ns.idr.cursor = cursor
    ns.adding = bool(adding)
    ns.child_reaper = child_reaper
    ns.creator = creator


def set_exit_state(kernel: Kernel, task: Task, state: ExitState, exit_code: int) -> None:
    """Make a restored task a zombie (or running again) with its own raw wait status, keeping
    its group's count of live threads: what do_exit()/exit_notify() leave, without what they
    do (reparenting, notifying, autoreaping, waking handles), which already happened before the
    checkpoint. EINVAL: EXIT_DEAD (a released task is not in the table) or a status outside
    0..0xffff.
    """
    if state is ExitState.DEAD or not isinstance(state, ExitState):
        raise KernelError(errno.EINVAL, f"exit state {state!r} is not RUNNING or ZOMBIE")
    if type(exit_code) is not int or not 0 <= exit_code <= STATUS_MAX:
        raise KernelError(errno.EINVAL, f"wait status {exit_code!r} is outside 0..{STATUS_MAX:#x}")
    was = task.exit_state
    task.exit_state = state
    task.exit_code = exit_code
    if was is ExitState.RUNNING and state is not ExitState.RUNNING:
        task.group.live -= 1
    elif was is not ExitState.RUNNING and state is ExitState.RUNNING:
        task.group.live += 1


@dataclass(frozen=True, slots=True)
class FdEntry:
    """One descriptor of an emulated fd table: ``fd`` holds a pidfd on ``pid``."""

    fd: int
    pid: Pid
    thread: bool = False
    nonblock: bool = False
    autokill: bool = False


def set_fd_table(kernel: Kernel, group: ThreadGroup, entries: Iterable[FdEntry]) -> None:
    """Give ``group`` an fd table holding these pidfds at these numbers, in this order (an
    empty iterable is an empty table, not none). Each counts as an open handle on its pid, also
    on a pid already reaped (a handle kept across the reap; pidfd_open would refuse it).

    Models what CRIU's restore of file descriptors does with dup2() onto the recorded numbers
    (fd_install would pick the lowest free one). EBADF: a number is negative or appears twice;
    EINVAL: a pid has no pidfs record (every pid a handle was opened on has one). On error
    nothing changed.
    """
    table: dict[int, PidFd] = {}
    for e in entries:
        if type(e.fd) is not int or e.fd < 0 or e.fd in table:
            raise KernelError(errno.EBADF, f"descriptor {e.fd!r} is negative or appears twice")
        if e.pid.attr is None:
            raise KernelError(errno.EINVAL, f"{e.pid!r} has a handle but no pidfs record")
        table[e.fd] = PidFd(e.pid, thread=e.thread, nonblock=e.nonblock, autokill=e.autokill)
    for f in table.values():
        f.pid.handles += 1
    group.files = table
