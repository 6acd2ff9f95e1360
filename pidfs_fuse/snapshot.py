"""Snapshot and restore of a whole model: ``dump``/``write_snapshot`` write a ``Kernel`` as
JSON records, ``restore``/``restore_file`` rebuild one that is the same in everything the model
keeps: the numbers of every pid at every level, pidfs inode numbers, parentage, sessions and
process groups, thread order, every per-task and per-process field, zombies and their exit
status, namespaces with their cursors, and the handles held in emulated fd tables.

Like CRIU (which restores pids with clone3's set_tid and writes ns_last_pid), a snapshot is a
picture, not a history: restore does not replay what happened, it rebuilds the result.

Format (version 1)
------------------

A snapshot file is JSON Lines, pure ASCII (non-ASCII and lone surrogates are ``\\u`` escapes):
line 1 is the header, every further line one record. ``dump()`` returns the same document as
one dict: the header's keys plus ``"records"``, the list of records; a record's JSON path
(``records[12].threads[3][2]``) is what errors name, with the line number for files (record
``i`` is line ``i + 2``). A file whose first line holds the whole dict is read too.

Header: ``{"format": "pidfs_fuse-snapshot", "version": 1, "clock": NS, "tasks": N,
"processes": N, "next_ino": N, "next_ns_inum": N, "total_forks": N, "init": REF}`` where
``clock`` is the model clock (ns since boot) at the snapshot and ``init`` the ``Kernel.init``
task; ``"max_tasks": N`` (1..0x3fffffff) is there when the table has a cap (kernel.threads-max,
which root may have lowered below ``tasks``): a restore keeps it unless the mount's own
``--max-tasks`` is lower. A task REF is the pidfs inode number of its pid for a task in the table, or a negative
number naming a ``ghost`` record (a released task something still points at).

Records, in this order:

``{"ns": INUM, "parent": INUM|null, "level": L, "pid_max": N, "cursor": N, "adding": B,
"child_reaper": REF|null, "creator": REF|null}``
    every pid namespace, parents first, siblings in creation order (the root first).
``{"process": INO, "ns": INUM, "parent": REF|null, "pgrp": INO, "session": INO,
"nthreads": N, "threads": [THREAD, ...], ...group fields}``
    every thread group in the table, depth first from init along each thread's children in
    order, so parents come first and every children list comes back in its order. ``threads``
    holds the first 10,000 threads (the leader first, then creation order); the rest follow in
    ``{"more": [THREAD, ...]}`` records. Group fields equal to their default are left out:
    ``session_leader``, ``group_exit``, ``group_exit_code``, ``stopped``, ``stop_code``,
    ``continued``, ``pending``, ``unkillable``, ``is_child_subreaper``,
    ``has_child_subreaper``, ``sigign`` (signal bitmasks as ints), ``argv``, ``environ``,
    ``uid``, ``gid``, ``cwd``, ``exe``, ``root``, ``vsize``, ``rss``, ``tty_nr``, ``cutime``,
    ``cstime``, ``files`` (``[[FD, INO, THREAD, NONBLOCK, AUTOKILL], ...]``, the pidfds of
    the emulated fd table in table order; absent for no table, ``[]`` for an empty one) and
    ``extra`` (a dict).
THREAD
    ``[INO, [NR at level 0, ..., NR innermost], comm, state, start_time, nice, utime, stime,
    exit_signal, flags, exit_state, exit_code, pid_ns_for_children INUM or 0, ATTR]``: an
    array, not a dict, so a million of them stay small. ``exit_state`` is 0 (running) or 1
    (zombie); ``exit_code`` the task's own raw wait status. ATTR is null or ``{"exit":
    [EXIT_CODE, COREDUMPED] | null, "xattrs": {NAME: BASE64}}`` (the pidfs record of a pid that
    ever had a handle).
``{"pid": INO, "ns": INUM, "numbers": [...], "allocated": B, "tagged": B, "attr": ATTR}``
    every struct pid that no task of the table holds: ids kept only as a process group or
    session id (the daemonize false positive: allocated, tagged, no task), and freed pids
    that a handle in an fd table or a ghost still points at (``allocated`` false).
``{"ghost": -N, "pid": INO, "task": [comm, ..., pid_ns_for_children], "group": INO | null,
"g": {...}}``
    a released task still referenced (a dead namespace's child reaper, a creator): the task
    fields of THREAD without ino, numbers and attr; ``group`` names its thread group when that
    is in the table, else ``g`` holds the group's fields (with ``parent``, ``pgrp``,
    ``session``).
``{"end": true}``
    the last record: a file without it is truncated.

What comes back through the model's own calls, and what through restore primitives
---------------------------------------------------------------------------------

This module reads and writes the format and checks it; it changes the model only through
public calls and the restore primitives of ``kernel/restore.py`` (named ``R.`` below), which
are to the model what CRIU's clone3(set_tid) and ns_last_pid writes are to Linux.

Through calls: ``Kernel()`` boots the root namespace and init (pid 1, pidfs inode 2); every
other task is created by ``R.ExactPids.clone()`` (clone with ``set_tid`` naming its number at
every level, and its recorded pidfs inode), from its recorded real parent for a process and
from its leader with CLONE_THREAD for a thread, processes depth first and threads in order. So
alloc_pid (range checks, EEXIST for a number
used twice, the TGID tag of seed 000, the tag check when the leader is attached), the task,
parent, children, thread and pid links, namespace inits and ``nr_threads`` are the model's own
work. A process that lives in another namespace than its parent's is cloned after
``setns_pid()`` (which checks the namespace is below the parent's). Pids held only as a
process group or session id come from ``R.ExactPids.alloc_pid()`` (alloc_pid with set_tid)
without a task; ``setxattr()`` puts back trusted.* xattrs (its checks apply);
``set_pid_max()`` sets each namespace's limit; ``setns_pid()`` gives every task its
``pid_for_children``.

Put back by primitives or set directly, because no system call reaches the recorded state
(each with its reason):

- namespaces: created with their recorded inum and level by ``R.create_pid_ns()``
  (clone/unshare take the next inum); ``R.set_pid_ns_state()`` puts back ``pid_max``,
  ``cursor`` (``ns_last_pid`` cannot express 0 or a cursor above a lowered pid_max),
  ``adding`` and ``child_reaper`` (only an init's death changes them, and it kills the rest),
  ``creator``.
- while building, every namespace admits pids up to PID_MAX_LIMIT and has a placeholder child
  reaper (so set_tid may name numbers above a pid_max lowered later, or members of a
  namespace whose init comes later in the file or has died), and every process has uid 0 (the
  restorer is privileged, as CRIU is); the recorded values are put back at the end.
- each pid gets its recorded pidfs inode number from the primitive that allocates it; at the
  end ``R.ExactPids.finish()`` indexes them and writes the recorded ``next_ino``,
  ``next_ns_inum`` and ``total_forks``.
- process group and session membership (``R.set_pgrp_session()``, the inside of
  setpgid/setsid): a process only joins a session by being forked inside it, and the member
  of a daemonized session was forked by a process that no longer exists.
- every field procfs shows (set_fields would refuse some reachable states, such as a child
  started before a subreaper it was reparented to), uid/gid, exit_signal, task flags.
- zombies: exit state, the task's own exit code and the group's exit (an exit replay would
  reparent, notify, autoreap under SIGCHLD ignored, and cannot give a leader a code different
  from its group's once the threads that caused it are gone): ``R.set_exit_state()``, which
  keeps the group's count of live threads.
- stop/continue state, pending signals, ignored signals, subreaper flags (prctl propagates
  ``has_child_subreaper``, which the record already holds exactly).
- pidfds: ``R.set_fd_table()`` puts them at the recorded numbers (fd_install picks the lowest
  free), each counted as a handle (a handle on a reaped pid cannot be opened again); pidfs exit records.
- ghosts (released tasks), freed pids, and ``Kernel.init``.

Not in a snapshot: the listener, handles held outside the model's fd tables (a mount's open
``pidfd`` files, PidFd objects a Python caller keeps), the order of members inside a process
group or session (the model never depends on it), the wall-clock boot time (a mount restored
later shows a later ``btime``; uptime continues from the snapshot's ``clock`` and every start
time is unchanged).

Errors: a malformed or inconsistent snapshot raises ``SnapshotError`` (a ``KernelError`` with
EINVAL) naming the file, the line and the JSON path of the bad entry; nothing is returned.
Reading a file that cannot be opened keeps the OSError's errno.

Files are touched only by ``write_snapshot`` and ``restore_file``, on behalf of the control
plane and the CLI; this module lives above ``kernel/`` because of them (``kernel/`` does no
I/O), and everything else here is pure.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import json.scanner
import operator
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import timed
from .growth import collector_paused
from .kernel import Kernel, KernelError, PidFd
from .kernel import restore as R
from .kernel.core import MAX_THREADS
from .kernel.events import Listener
from .kernel.idr import PID_MAX_LIMIT
from .kernel.pid import MAX_PID_NS_LEVEL, PROC_PID_INIT_INO, ExitInfo, Pid, PidAttr, PidNamespace, check_pid_max
from .kernel.task import RUN_STATES, ExitState, Task, TaskFlag, ThreadGroup
from .schema import JSON, TOO_DEEP, Schema, SchemaError, open_input

FORMAT = "pidfs_fuse-snapshot"
VERSION = 1
#: threads per record: a process of a million threads is a hundred lines, not one
CHUNK = 10_000
#: call ``progress`` about this often (in tasks)
PROGRESS_EVERY = 4096

Progress = Callable[[int, int], None]

U64_MAX = 2**64 - 1
_START_END = 2**63  # start times are below this
#: the most tasks a table holds: each has its own number in the root namespace, 1..PID_MAX_LIMIT-1
TASKS_MAX = PID_MAX_LIMIT - 1
#: the model clock at a snapshot (ns since boot): 146 years, so the clock of a restored table and
#: the start times it gives new tasks stay below 2**63 (which a snapshot's start_time must be)
CLOCK_MAX = 2**62
#: a snapshot line longer than this is refused before it is parsed (a record of CHUNK threads
#: is a few MiB); a whole file over MAX_FILE_BYTES is refused before it is read
MAX_LINE_BYTES = 64 << 20
MAX_FILE_BYTES = 8 << 30
ID_MAX = 2**32 - 2
SIGMASK_MAX = 2**65 - 1
STATUS_MAX = R.STATUS_MAX
_FLAGS_MAX = int(TaskFlag.WAIT_PID | TaskFlag.AUTOREAP | TaskFlag.FORKNOEXEC | TaskFlag.EXITING
                 | TaskFlag.NO_NEW_PRIVS)
_INIT_INO = R.FIRST_INO  # Kernel() allocates init's pid first
_EXITING = int(TaskFlag.EXITING)

#: group fields written when they differ from these (ThreadGroup's own defaults)
_GROUP_DEFAULTS: dict[str, Any] = {
    "session_leader": False, "group_exit": False, "group_exit_code": 0, "stopped": False,
    "stop_code": 0, "continued": False, "pending": 0, "unkillable": False,
    "is_child_subreaper": False, "has_child_subreaper": False, "sigign": 0, "argv": [],
    "environ": [], "uid": 0, "gid": 0, "cwd": "/", "exe": "", "root": "/", "vsize": 0,
    "rss": 0, "tty_nr": 0, "cutime": 0, "cstime": 0,
}
_INT_HI = {"uid": ID_MAX, "gid": ID_MAX, "sigign": SIGMASK_MAX, "pending": SIGMASK_MAX,
           "stop_code": 64, "group_exit_code": STATUS_MAX, "tty_nr": 2**32 - 1}
#: (key, default as set, kind, highest int): kind "late" for uid, gid and group_exit, which are
#: set at the end (highest -1: a bool)
_GROUP_SPECS: list[tuple[str, Any, str, int]] = [
    (key, tuple(d) if isinstance(d, list) else d,
     "late" if key in ("uid", "gid", "group_exit") else "bool" if isinstance(d, bool)
     else "int" if isinstance(d, int) else "list" if isinstance(d, list) else "str",
     -1 if isinstance(d, bool) else _INT_HI.get(key, U64_MAX) if isinstance(d, int) else 0)
    for key, d in _GROUP_DEFAULTS.items()]
_GROUP_KEYS = frozenset(_GROUP_DEFAULTS)
_NTHREADS_MAX = PID_MAX_LIMIT * (MAX_PID_NS_LEVEL + 1)
_STR_TYPE = frozenset({str})
#: GroupPlan: the specs of the group keys a record has (in _GROUP_SPECS order, which is the
#: order of their checks), and the keys it leaves out that are set at once (not "late"), their
#: defaults, and a getter of their values (None when there are none)
GroupPlan = tuple[list[tuple[str, Any, str, int]], tuple[str, ...], tuple[Any, ...],
                  Callable[[ThreadGroup], Any] | None]
#: plans by the set of group keys a record has (a table's records have a few such sets)
_GROUP_PLANS: dict[frozenset[str], GroupPlan] = {}


def _group_plan(present: frozenset[str]) -> GroupPlan:
    specs = [spec for spec in _GROUP_SPECS if spec[0] in present]
    out = [(key, d) for key, d, kind, _ in _GROUP_SPECS if key not in present and kind != "late"]
    missing = tuple(key for key, _ in out)
    defaults = tuple(d for _, d in out)
    # attrgetter of one name returns the value, not a 1-tuple
    get: Callable[[ThreadGroup], Any] | None = (
        None if not missing else operator.attrgetter(*missing) if len(missing) > 1
        else (lambda g, key=missing[0]: (getattr(g, key),)))
    plan = (specs, missing, defaults, get)
    if len(_GROUP_PLANS) < 4096:
        _GROUP_PLANS[present] = plan
    return plan


_PROCESS_KEYS = frozenset({"process", "ns", "parent", "nthreads", "threads", "pgrp", "session",
                           "files", "extra", *_GROUP_DEFAULTS})
_THREAD_COLUMNS = ("ino", "numbers", "comm", "state", "start_time", "nice", "utime", "stime",
                   "exit_signal", "flags", "exit_state", "exit_code", "pid_ns_for_children", "attr")
_GHOST_COLUMNS = _THREAD_COLUMNS[2:13]


class SnapshotError(SchemaError):
    """A snapshot is malformed or inconsistent (EINVAL), or cannot be read. ``str()`` is the
    message alone: ``FILE: line N: records[i].path: reason``."""


# -- dump ----------------------------------------------------------------------------------------


class _Dumper:
    """Walks a kernel once and yields the header and the records (see the module docstring)."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.ghost_ids: dict[Task, int] = {}
        self.ghost_queue: list[Task] = []
        #: pids that need a "pid" record: no task of the table holds them
        self.loose: dict[int, Pid] = {}
        self.tasks = 0
        self.processes = 0
        for p in R.allocated_pids(kernel):
            if p.task is None:
                self.loose[p.ino] = p
            else:
                self.tasks += 1
                if p.tgid_task is not None:
                    self.processes += 1
        self.namespaces = list(kernel.namespaces())
        self.ns_set = {ns.inum for ns in self.namespaces}

    def unsupported(self, why: str) -> KernelError:
        return KernelError(errno.ENOTSUP, f"cannot snapshot this table: {why}")

    # refs

    def task_ref(self, t: Task | None) -> int | None:
        if t is None:
            return None
        if not isinstance(t, Task):
            raise self.unsupported(f"{t!r} is not a task")
        if t.pid.task is t:
            return t.pid.ino
        gid = self.ghost_ids.get(t)
        if gid is None:
            gid = self.ghost_ids[t] = -(len(self.ghost_ids) + 1)
            self.ghost_queue.append(t)
        return gid

    def pid_ref(self, p: Pid | None) -> int | None:
        if p is None:
            return None
        if p.task is None:
            if p.ns.inum not in self.ns_set:
                raise self.unsupported(f"{p!r} lives in a namespace outside the tree")
            self.loose.setdefault(p.ino, p)
        return p.ino

    # pieces

    @staticmethod
    def attr(a: PidAttr | None) -> dict[str, Any] | None:
        if a is None:
            return None
        ex = [a.exit.exit_code, a.exit.coredumped] if a.exit is not None else None
        return {"exit": ex, "xattrs": {n: base64.b64encode(v).decode("ascii") for n, v in a.xattrs.items()}}

    @staticmethod
    def task_fields(t: Task) -> list[Any]:
        nsfc = t.pid_ns_for_children
        return [t.comm, t.state, t.start_time, t.nice, t.utime, t.stime, t.exit_signal,
                int(t.flags), int(t.exit_state), t.exit_code, nsfc.inum if nsfc is not None else 0]

    def thread(self, t: Task) -> list[Any]:
        p = t.pid
        return [p.ino, list(p.numbers), *self.task_fields(t), self.attr(p.attr)]

    def group_fields(self, g: ThreadGroup, rec: dict[str, Any]) -> dict[str, Any]:
        rec["pgrp"] = self.pid_ref(g.pgrp)
        rec["session"] = self.pid_ref(g.session)
        for key, default in _GROUP_DEFAULTS.items():
            v = getattr(g, key)
            if key in ("argv", "environ"):
                v = list(v)
            if v != default:
                rec[key] = v
        if g.files is not None:
            files = []
            for fd, f in g.files.items():
                if not isinstance(f, PidFd):
                    raise self.unsupported(f"descriptor {fd} of {g.leader!r} is not a pidfd")
                files.append([fd, self.pid_ref(f.pid), f.thread, f.nonblock, f.autokill])
            rec["files"] = files
        if g.extra is not None:
            rec["extra"] = dict(g.extra)
        return rec

    # the document

    def header(self) -> dict[str, Any]:
        k = self.k
        c = R.counters(k)
        return {"format": FORMAT, "version": VERSION, "clock": k.clock(), "tasks": self.tasks,
                "processes": self.processes, "next_ino": c.next_ino,
                "next_ns_inum": c.next_ns_inum, "total_forks": c.total_forks,
                "init": self.task_ref(k.init),
                **({"max_tasks": k.max_threads} if k.max_threads is not None else {}),
                **({"time": ts} if (ts := timed.time_state(k, self.task_ref)) is not None else {})}

    def records(self) -> Iterator[dict[str, Any]]:
        for ns in self.namespaces:
            creator = ns.creator if isinstance(ns.creator, Task) else None
            yield {"ns": ns.inum, "parent": ns.parent.inum if ns.parent is not None else None,
                   "level": ns.level, "pid_max": ns.pid_max, "cursor": ns.idr.cursor,
                   "adding": ns.adding, "child_reaper": self.task_ref(ns.child_reaper),
                   "creator": self.task_ref(creator)}
        tasks = processes = 0
        for g in self._groups():
            threads = list(g.threads)
            if not threads or threads[0] is not g.leader:
                raise self.unsupported(f"{g.leader!r} is not the first thread of its group")
            rec: dict[str, Any] = {"process": g.leader.pid.ino, "ns": g.leader.pid.ns.inum,
                                   "parent": self.task_ref(g.parent), "nthreads": len(threads)}
            self.group_fields(g, rec)
            rec["threads"] = [self.thread(t) for t in threads[:CHUNK]]
            yield rec
            for i in range(CHUNK, len(threads), CHUNK):
                yield {"more": [self.thread(t) for t in threads[i:i + CHUNK]]}
            tasks += len(threads)
            processes += 1
        if (tasks, processes) != (self.tasks, self.processes):
            raise self.unsupported(f"{self.processes - processes} process(es) are not descendants "
                                   "of init through their parents")
        ghosts: list[dict[str, Any]] = []
        while self.ghost_queue:  # a ghost's group may name more ghosts and pids
            t = self.ghost_queue.pop(0)
            g = t.group
            rec = {"ghost": self.ghost_ids[t], "pid": self.pid_ref(t.pid), "task": self.task_fields(t)}
            if g.leader.pid.task is g.leader:
                rec["group"] = g.leader.pid.ino
            else:
                rec["group"] = None
                rec["g"] = self.group_fields(g, {"parent": self.task_ref(g.parent)})
            ghosts.append(rec)
        for ino in sorted(self.loose):
            p = self.loose[ino]
            rec = {"pid": ino, "ns": p.ns.inum, "numbers": list(p.numbers), "allocated": p.allocated}
            if p.allocated:
                rec["tagged"] = p.ns.idr.is_tagged(p.nr)
            if p.attr is not None:
                rec["attr"] = self.attr(p.attr)
            yield rec
        yield from ghosts
        yield {"end": True}

    def _groups(self) -> Iterator[ThreadGroup]:
        """Thread groups depth first from init, each thread's children in their order."""
        first = self.k.root_ns.idr.find(1)
        if first is None or first.task is None:
            raise self.unsupported("the root namespace has no init")
        g0 = first.task.group
        yield g0
        stack = [iter([c for t in g0.threads for c in (t.children or ())])]
        while stack:
            c = next(stack[-1], None)
            if c is None:
                stack.pop()
                continue
            if c.pid.task is not c or c.group.leader is not c:
                raise self.unsupported(f"child {c!r} is not a thread-group leader in the table")
            g = c.group
            yield g
            stack.append(iter([c2 for t in g.threads for c2 in (t.children or ())]))


def iter_snapshot(kernel: Kernel) -> Iterator[dict[str, Any]]:
    """The header, then every record: the lines of a snapshot file, as dicts. ENOTSUP for a
    table the format cannot hold (none the model's calls produce)."""
    d = _Dumper(kernel)
    yield d.header()
    yield from d.records()


def dump(kernel: Kernel) -> dict[str, Any]:
    """The whole table as one JSON-able dict: the header's keys and ``"records"``."""
    it = iter_snapshot(kernel)
    doc = next(it)
    doc["records"] = list(it)
    return doc


def snapshot_lines(kernel: Kernel) -> tuple[int, list[str]]:
    """The lines of the snapshot of ``kernel`` (each ending in a newline) and its task count:
    everything ``write_snapshot`` needs from the model, so the file I/O can run on another thread
    (the mount answers FUSE requests on one thread and must not wait on a disk there)."""
    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False).encode
    it = iter_snapshot(kernel)
    header = next(it)
    lines = [encode(header) + "\n"]
    lines.extend(encode(rec) + "\n" for rec in it)
    return header["tasks"], lines


def write_in_child(kernel: Kernel, path: str) -> Callable[[], int]:
    """Write the snapshot of ``kernel`` to ``path`` from a forked child, which sees the table
    as it is now (the kernel's copy-on-write copy of this process), and return a function that
    waits for the child (blocking: run it on a worker thread) and returns the task count, or
    raises the KernelError the child met. Encoding a million tasks takes tens of seconds: the
    mount (``Control.snapshot_in_child``) does it this way, so it goes on answering requests,
    and changing the table, meanwhile; only the fork runs on its thread (about 1 ms per
    100,000 tasks: page tables). The child may touch as much memory again as the table takes."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:  # ENOMEM, EAGAIN: a big server cannot always fork
        os.close(r)
        os.close(w)
        raise KernelError(e.errno or errno.EIO, f"cannot start the process that writes "
                          f"{path}: {e.strerror or e}") from None
    if pid == 0:  # the child: no trio, no FUSE, no other thread; out through os._exit only
        status = 1
        try:
            # keep only stdio and the reply pipe: above all not /dev/fuse, whose connection
            # must end with the server (a server killed now would leave every client of the
            # mount waiting until this child is done)
            os.closerange(3, w)
            os.closerange(w + 1, os.sysconf("SC_OPEN_MAX"))
            import gc
            import signal

            gc.disable()  # nothing it makes outlives it
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            try:
                n = write_snapshot(kernel, path)
                msg, status = f"0\t{n}", 0
            except KernelError as e:
                msg = f"{e.errno or errno.EIO}\t{e.strerror or e}"
            except OSError as e:
                msg = f"{e.errno or errno.EIO}\tcannot write {path}: {e.strerror or e}"
            os.write(w, msg.encode("utf-8", "surrogateescape"))
        finally:
            os._exit(status)
    os.close(w)

    def wait() -> int:
        with os.fdopen(r, "rb") as f:
            out = f.read().decode("utf-8", "surrogateescape")
        _, st = os.waitpid(pid, 0)
        code, _, text = out.partition("\t")
        if not code:
            raise KernelError(errno.EIO, f"the snapshot writer (pid {pid}) ended without a word "
                              f"(wait status {st:#x}); {path} is as it was")
        if code != "0":
            raise KernelError(int(code), text)
        return int(text)
    return wait


def write_snapshot(kernel: Kernel, path: str | os.PathLike[str]) -> int:
    """Write the snapshot of ``kernel`` to ``path`` (see ``write_lines``) and return its task
    count. Raises ``SnapshotError`` for a path that is refused, the OSError of a failed write,
    or ENOTSUP from ``iter_snapshot``."""
    n, lines = snapshot_lines(kernel)
    write_lines(path, lines)
    return n


#: the file system type of a pidfs-fuse mount in /proc/self/mountinfo (``subtype=pidfs``)
PIDFS_FSTYPE = "fuse.pidfs"


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mount_of_fd(fd: int) -> tuple[str, str] | None:
    """(file system type, mount point) of the mount an open file lives on, from its
    ``mnt_id`` in /proc/self/fdinfo and /proc/self/mountinfo; None when they cannot be read."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as f:
            mnt_id = next((ln.split()[1] for ln in f if ln.startswith("mnt_id:")), None)
        if mnt_id is None:
            return None
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                parts = left.split()
                if parts and parts[0] == mnt_id and len(parts) > 4:
                    return (right.split() or [""])[0], _unescape(parts[4])
    except (OSError, IndexError):
        return None
    return None


_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def write_lines(path: str | os.PathLike[str], lines: Iterable[str]) -> None:
    """Write ``lines`` to ``path``, which ends up a regular file, atomically. Blocking file I/O
    only: any thread may run it.

    Symlinks in ``path`` are resolved first (a dangling one names the file it points to). A
    path that then lands inside a pidfs-fuse mount (any, found by the mount of the opened
    directory, not by its name) is refused with EINVAL: such a mount cannot store files, and
    writing through it would make a server serve its own request. An existing directory is
    refused with EISDIR, and a device node, FIFO or socket with EINVAL: only a regular file is
    ever replaced. The lines go to a temporary file in the same directory, which is fsync'ed
    and renamed over the target (and the directory fsync'ed): a crash or error at any point
    leaves the old file, if any, as it was, and no temporary file behind. The new file is 0600
    (it holds environments).
    """
    shown = os.fspath(path)
    real = os.path.realpath(shown)
    directory, name = os.path.split(real)
    if not name:
        raise SnapshotError(errno.EISDIR, f"{shown}: is a directory; a snapshot is written only "
                            "to a regular file")
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        where = mount_of_fd(dfd)
        if where is not None and where[0] == PIDFS_FSTYPE:
            via = "" if real == shown else f" (it resolves to {real})"
            raise SnapshotError(errno.EINVAL, f"{shown}: is inside the pidfs-fuse mount {where[1]}"
                                f"{via}, which cannot store files")
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise SnapshotError(errno.EISDIR, f"{shown}: is a directory; a snapshot is "
                                    "written only to a regular file")
            kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
            raise SnapshotError(errno.EINVAL, f"{shown}: is {kind}; a snapshot replaces only a "
                                "regular file")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for _ in range(100):
            tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
                break
            except FileExistsError:
                continue
        else:
            raise SnapshotError(errno.EEXIST, f"{shown}: no free temporary name in {directory}")
        try:
            with os.fdopen(fd, "w", encoding="ascii", newline="\n", buffering=1 << 20) as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
        try:
            os.fsync(dfd)
        except OSError:
            pass
    finally:
        os.close(dfd)


# -- restore -------------------------------------------------------------------------------------


_show = JSON.show


class _Restorer(Schema):
    """Consumes the header and the records in order, then ``finish()`` returns the Kernel."""

    error_type = SnapshotError

    def __init__(self, source: str, clock: Callable[[], int] | None,
                 progress: Progress | None, max_tasks: int | None = None) -> None:
        super().__init__(source, JSON)
        #: the mount's cap (``--max-tasks``): a bigger table is refused before it is built
        self.max_tasks = max_tasks
        self.base_clock = clock
        self.time_state: object = None  # the header's ``time`` (timed.py), applied at the end
        self.progress = progress
        self.file = False  # reading a file: errors give line numbers (record i is line i + 2)
        self.where = ""  # JSON path of the current record
        self.k: Kernel | None = None
        self.exact: R.ExactPids | None = None  # from boot()
        self.h: dict[str, Any] = {}
        self.ns: dict[int, PidNamespace] = {}
        self.ns_rec: list[tuple[str, PidNamespace, dict[str, Any]]] = []
        self.pids: dict[int, Pid] = {}  # every pid restored, by pidfs inode number
        self.loose: list[tuple[str, Pid]] = []  # pid records (no task in the table)
        self.ghost_recs: list[tuple[str, dict[str, Any]]] = []
        self.ghosts: dict[int, Task] = {}
        self.group: ThreadGroup | None = None  # the process whose threads are being read
        self.group_where = ""
        self.missing = 0  # threads of self.group still to come in "more" records
        self.processes = 0
        self.tasks = 0
        self.stage = 0  # 0 header, 1 ns, 2 processes, 3 pids, 4 ghosts, 5 end
        # deferred to finish(): see the module docstring
        self.late_pgrp: list[tuple[str, ThreadGroup, int, int]] = []
        self.late_group: list[tuple[str, ThreadGroup, dict[str, Any]]] = []
        self.late_tasks: list[tuple[Task, int, int, int]] = []  # zombies: exit_state, code, flags
        self.nsfc: list[tuple[str, Task, PidNamespace]] = []
        self.setns_done: set[Task] = set()
        self.max_ino = _INIT_INO
        self.handlers: dict[str, tuple[int, Callable[[dict[str, Any]], None]]] = {
            "ns": (1, self.ns_record), "process": (2, self.process), "more": (2, self.more),
            "pid": (3, self.pid_record), "ghost": (4, self.ghost_record), "end": (5, self.end)}

    # errors

    def error(self, path: str, reason: str, where: str | None = None) -> SnapshotError:  # type: ignore[override]
        """EINVAL naming the source, the line (files), and the JSON path ``where + path``;
        ``where`` defaults to the current record, "" is the header (or the whole file)."""
        where = self.where if where is None else where
        loc = ""
        if self.file:
            if where.startswith("records["):
                loc = f"line {int(where[len('records['):where.index(']')]) + 2}: "
            elif not where and path:
                loc = "line 1: "
        full = f"{where}{path}" if where else path.lstrip(".")
        return SnapshotError(errno.EINVAL, f"{self.source}: {loc}{full}: {reason}" if full
                             else f"{self.source}: {loc}{reason}")

    def expect(self, path: str, value: object, what: str) -> SnapshotError:
        return self.error(path, f"expected {what}, got {JSON.got(value)}")

    # typed getters on a record (dict)

    def get(self, rec: dict[str, Any], key: str, default: Any = ...) -> Any:
        if key in rec:
            return rec[key]
        if default is ...:
            raise self.error(f".{key}", "missing")
        return default

    def int_at(self, rec: dict[str, Any], key: str, lo: int, hi: int, default: Any = ...) -> int:
        return self.int_(self.get(rec, key, default), f".{key}", lo, hi)

    def bool_at(self, rec: dict[str, Any], key: str, default: Any = ...) -> bool:
        return self.bool_(self.get(rec, key, default), f".{key}")

    def keys_of(self, rec: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
        if not allowed.issuperset(rec):  # (once per record: the common case is a test)
            self.keys(rec, allowed, lambda key: f".{key}")

    def ns_of(self, path: str, inum: object, *, zero_is_none: bool = False) -> PidNamespace | None:
        if zero_is_none and inum == 0 and type(inum) is int:
            return None
        ns = self.ns.get(inum) if type(inum) is int else None
        if ns is None:
            raise self.error(path, f"no pid namespace {_show(inum)} among the ns records")
        return ns

    # header

    def header(self, h: object) -> None:
        if not isinstance(h, dict):
            raise self.expect("", h, "an object (the header)")
        if h.get("format") != FORMAT:
            raise self.error(".format", f"not a pidfs_fuse snapshot (expected {FORMAT!r}, got "
                             f"{_show(h.get('format'))})")
        if h.get("version") != VERSION:
            raise self.error(".version", f"unsupported version {_show(h.get('version'))} "
                             f"(this build reads version {VERSION})")
        self.keys_of(h, {"format", "version", "clock", "tasks", "processes", "next_ino",
                      "next_ns_inum", "total_forks", "init", "records", "time", "max_tasks"})
        self.time_state = h.get("time")
        self.h = {
            "clock": self.int_at(h, "clock", 0, CLOCK_MAX),
            "tasks": self.int_at(h, "tasks", 1, TASKS_MAX),
            "processes": self.int_at(h, "processes", 1, TASKS_MAX),
            "next_ino": self.int_at(h, "next_ino", _INIT_INO + 1, R.INO_LIMIT),
            "next_ns_inum": self.int_at(h, "next_ns_inum", PROC_PID_INIT_INO + 1, 2**32),
            "total_forks": self.int_at(h, "total_forks", 0, 2**63 - 1),
            "init": self.get(h, "init"),
            # the table's kernel.threads-max when written (absent: none, or an older writer);
            # it may be below "tasks" (Linux lets it be lowered below the tasks there are)
            "max_tasks": self.int_at(h, "max_tasks", 1, MAX_THREADS) if "max_tasks" in h else None,
        }
        cap = self.max_tasks
        if cap is not None and self.h["tasks"] > cap:
            raise SnapshotError(errno.EAGAIN, f"{self.source}: holds {self.h['tasks']:,} tasks, more "
                                f"than this mount's --max-tasks allows ({cap:,}); nothing was restored")
        self.stage = 1
        self.report()

    # records

    def record(self, rec: object, index: int) -> None:
        self.where = f"records[{index}]"
        if not isinstance(rec, dict) or not rec:
            raise self.expect("", rec, "an object")
        kind = next(iter(rec))
        handler = self.handlers.get(kind)
        if handler is None:
            raise self.error("", f"unknown record {_show(kind)} (the first key names the kind: "
                             "ns, process, more, pid, ghost, end)")
        stage, fn = handler
        if self.stage == 5:
            raise self.error("", "record after the end record")
        if stage < self.stage or (kind == "more" and not self.missing):
            raise self.error("", f"a {kind} record cannot come here (order: ns, process/more, "
                             "pid, ghost, end)")
        if self.missing and kind != "more":
            raise self.error("", f"{self.missing} more thread(s) of {self.group_where} were announced")
        if stage > 1 and not self.ns:
            raise self.error("", "the ns records come first")
        self.stage = stage
        fn(rec)

    def ns_record(self, r: dict[str, Any]) -> None:
        self.keys_of(r, {"ns", "parent", "level", "pid_max", "cursor", "adding", "child_reaper", "creator"})
        inum = self.int_at(r, "ns", 1, 2**32 - 1)
        if inum in self.ns:
            raise self.error(".ns", f"pid namespace {inum} appears twice")
        parent_inum = self.get(r, "parent")
        level = self.int_at(r, "level", 0, MAX_PID_NS_LEVEL)
        self.int_at(r, "pid_max", 0, PID_MAX_LIMIT)
        # ns_last_pid may be written up to pid_max itself, so the cursor reaches pid_max + 1
        self.int_at(r, "cursor", 0, PID_MAX_LIMIT + 1)
        self.bool_at(r, "adding")
        if not self.ns:
            if parent_inum is not None or level != 0 or inum != PROC_PID_INIT_INO:
                raise self.error("", f"the first ns record is the root namespace ({PROC_PID_INIT_INO}, "
                                 "level 0, parent null)")
            self.boot()
            assert self.k is not None
            ns = self.k.root_ns
        else:
            if parent_inum is None:
                raise self.error(".parent", "only the root namespace has no parent")
            parent = self.ns_of(".parent", parent_inum)
            assert parent is not None
            if level != parent.level + 1:
                raise self.error(".level", f"is {level}, but the parent's level is {parent.level}")
            assert self.k is not None
            try:
                ns = R.create_pid_ns(self.k, parent, inum)
            except KernelError as e:
                raise self.error(".ns", str(e)) from None
        self.ns[inum] = ns
        self.ns_rec.append((self.where, ns, r))

    def _exact(self) -> R.ExactPids:
        assert self.exact is not None  # boot() ran: the ns records come first
        return self.exact

    def boot(self) -> None:
        offset = self.h["clock"]
        base = self.base_clock
        clock: Callable[[], int] | None = None  # frozen at the snapshot's time; the mount decides
        if base is not None:
            clock = lambda: base() + offset  # noqa: E731
        self.k = Kernel(clock=clock, pid_max=PID_MAX_LIMIT, start=offset)
        self.exact = R.ExactPids(self.k)
        self.pids[_INIT_INO] = self.k.init.pid

    def process(self, r: dict[str, Any]) -> None:
        k = self.k
        assert k is not None
        self.keys_of(r, _PROCESS_KEYS)
        leader_ino = self.get(r, "process")
        inum = r.get("ns")
        ns = self.ns.get(inum) if type(inum) is int else None  # (ns_of, for the usual case)
        if ns is None:
            ns = self.ns_of(".ns", self.get(r, "ns"))
            assert ns is not None
        nthreads = r.get("nthreads")
        if type(nthreads) is not int or not 1 <= nthreads <= _NTHREADS_MAX:
            nthreads = self.int_at(r, "nthreads", 1, _NTHREADS_MAX)
        threads = r["threads"] if "threads" in r else self.get(r, "threads")
        if not isinstance(threads, list) or not threads:
            raise self.expect(".threads", threads, "a non-empty array of threads")
        if len(threads) > nthreads:
            raise self.error(".threads", f"holds {len(threads)} threads but nthreads is {nthreads}")
        first = threads[0]
        if not isinstance(first, list) or not first or first[0] != leader_ino:
            raise self.error(".threads[0]", f"is not the leader {_show(leader_ino)} named by 'process'")
        parent_ref = self.get(r, "parent")
        if self.processes == 0:
            if parent_ref is not None or leader_ino != _INIT_INO or ns is not k.root_ns:
                raise self.error("", f"the first process record is init (process {_INIT_INO}, "
                                 "the root namespace, parent null)")
            leader = self.thread(first, ".threads[0]", ns, None, init=True)
        else:
            if parent_ref is None:
                raise self.error(".parent", "only init has no parent")
            parent = self.pids.get(parent_ref) if type(parent_ref) is int else None
            if parent is None or parent.task is None:
                raise self.error(".parent", f"{_show(parent_ref)} is not a task of an earlier "
                                 "process record (parents come before their children)")
            ptask = parent.task
            if ptask.ns_for_children is ns and R.ordinary(first, ns.level + 1, self.h["next_ino"],
                                                          self.pids):
                leader = self._leader(first, ptask)
            else:
                leader = self.thread(first, ".threads[0]", ns, ptask)
        g = leader.group
        self.group, self.group_where = g, self.where
        self.processes += 1
        self.group_fields(g, r, "")
        pg, sess = r.get("pgrp"), r.get("session")
        if type(pg) is not int or type(sess) is not int:
            for key in ("pgrp", "session"):
                if type(r.get(key)) is not int:
                    raise self.expect(f".{key}", r.get(key), "the pidfs inode number of a pid")
        if not self._set_pgrp(g, pg, sess):  # type: ignore[arg-type]
            self.late_pgrp.append((self.where, g, pg, sess))  # type: ignore[arg-type]
        self.threads(threads, ".threads", 1, leader)
        self.missing = nthreads - len(threads)

    def more(self, r: dict[str, Any]) -> None:
        self.keys_of(r, {"more"})
        threads = r["more"]
        g = self.group
        assert g is not None
        if not isinstance(threads, list) or not threads:
            raise self.expect(".more", threads, "a non-empty array of threads")
        if len(threads) > self.missing:
            raise self.error(".more", f"holds {len(threads)} threads, {self.missing} were announced "
                             f"by {self.group_where}.nthreads")
        self.threads(threads, ".more", 0, g.leader)
        self.missing -= len(threads)

    def _leader(self, a: list[Any], parent: Task) -> Task:
        """``thread()`` for the leader ``a`` of a process record, an ordinary running task
        (``R.ordinary``) cloned in its parent's namespace for children: checked already."""
        ino = a[0]
        try:
            t = self._exact().process(parent, a)  # (with its fields)
        except KernelError as e:
            raise self.error(".threads[0]", f"clone with set_tid {a[1][::-1]}: {e}") from None
        self.pids[ino] = t.pid
        if ino > self.max_ino:
            self.max_ino = ino
        self.tasks += 1
        if self.tasks > self.h["tasks"]:
            raise self.error("", f"the records hold more than {self.h['tasks']} task(s); the header "
                             f"says {self.h['tasks']}")
        if self.progress is not None and self.tasks % PROGRESS_EVERY == 0:
            self.report()
        return t

    def thread(self, a: object, path: str, ns: PidNamespace, parent: Task | None, *,
               thread: bool = False, init: bool = False) -> Task:
        """Validate one THREAD array and create its task (clone with set_tid)."""
        k = self.k
        assert k is not None
        if type(a) is not list or len(a) != 14:
            raise self.expect(path, a, f"an array of {len(_THREAD_COLUMNS)} values "
                              f"({', '.join(_THREAD_COLUMNS)})")
        ino = a[0]
        if type(ino) is not int or not _INIT_INO <= ino < self.h["next_ino"]:
            raise self.expect(f"{path}[0] (ino)", ino, f"an integer in {_INIT_INO}..{self.h['next_ino'] - 1}")
        if ino in self.pids and not init:
            raise self.error(f"{path}[0] (ino)", f"pidfs inode {ino} is used twice")
        numbers = self.numbers(a[1], f"{path}[1] (numbers)", ns)
        (comm, state, start, nice, utime, stime, exit_signal, flags, exit_state,
         exit_code, nsfc_inum) = self.task_fields(a, 2, path)
        if exit_state == 2:
            raise self.expect(f"{path}[10] (exit_state)", 2, "0 (running) or 1 (zombie)")
        nsfc = self.ns_of(f"{path}[12] (pid_ns_for_children)", nsfc_inum, zero_is_none=True)
        if init:
            if ino != _INIT_INO or numbers != (1,):
                raise self.error(path, f"init's pid is pid 1, pidfs inode {_INIT_INO}")
            t = k.init
        else:
            set_tid = numbers[::-1]
            assert parent is not None
            try:
                if not thread and parent.ns_for_children is not ns:
                    k.setns_pid(parent, ns)
                    self.setns_done.add(parent)
                t = self._exact().clone(parent, numbers, ino, thread=thread, exit_signal=exit_signal)
            except KernelError as e:
                what = "clone (thread)" if thread else "clone"
                raise self.error(path, f"{what} with set_tid {list(set_tid)}: {e}") from None
        self.pids[ino] = t.pid
        if ino > self.max_ino:
            self.max_ino = ino
        t.comm, t.state, t.start_time, t.nice, t.utime, t.stime = comm, state, start, nice, utime, stime
        t.exit_signal = exit_signal
        t.flags = flags & ~_EXITING  # a plain int, as clone leaves it (task.py TF_*)
        if exit_state or flags & _EXITING:
            self.late_tasks.append((t, exit_state, exit_code, flags))
        if nsfc is not None:
            self.nsfc.append((f"{self.where}{path}[12] (pid_ns_for_children)", t, nsfc))
        if a[13] is not None:
            self.attr(t.pid, a[13], f"{path}[13] (attr)")
        self.tasks += 1
        if self.tasks > self.h["tasks"]:  # checked as it grows: the cap trusts the header
            raise self.error("", f"the records hold more than {self.h['tasks']} task(s); the header "
                             f"says {self.h['tasks']}")
        if self.progress is not None and self.tasks % PROGRESS_EVERY == 0:
            self.report()
        return t

    def threads(self, arrs: list[Any], key: str, first: int, leader: Task) -> None:
        """The THREAD arrays ``arrs[first:]`` (``key``: ".threads" or ".more", for paths) as
        threads of ``leader``'s group, each what ``thread()`` makes of it. Most threads of a
        big table are ordinary running ones (``R.ordinary``): ``ExactPids.threads`` checks
        and makes a run of those in one call (a million threads through ``thread()`` and
        ``clone`` took most of a restore: bench/snapshot_bench.py), stopping before any other
        (a zombie, an exiting thread, one with a pidfs record or its own namespace for
        children, anything malformed), which goes through ``thread()``; that words the errors,
        which come in the order of the arrays."""
        ns = leader.pid.ns
        exact = self._exact()
        next_ino = self.h["next_ino"]
        j, end = first, len(arrs)
        while j < end:
            # a run ends before a progress report is due and before the task count would
            # pass the header's
            room = self.h["tasks"] - self.tasks + 1
            due = PROGRESS_EVERY - self.tasks % PROGRESS_EVERY
            stop = min(end, j + room, j + due)
            made: list[Task] = []
            try:
                exact.threads(leader, arrs[j:stop], made, self.pids, ino_below=next_ino)
            except KernelError as e:
                bad = arrs[j + len(made)]
                self._made(made, arrs, j)
                raise self.error(f"{key}[{j + len(made)}]", f"clone (thread) with set_tid "
                                 f"{bad[1][::-1]}: {e}") from None
            self._made(made, arrs, j)
            j += len(made)
            if j < stop:  # it stopped before arrs[j]
                self.thread(arrs[j], f"{key}[{j}]", ns, leader, thread=True)
                j += 1

    def _made(self, made: list[Task], arrs: list[Any], j: int) -> None:
        """The rest of ``thread()`` for the tasks ``threads()`` made of ``arrs[j:]`` (their
        fields came with them, ``ExactPids.threads`` put their pids in ``self.pids``, and
        ``finish`` finds the largest inode among them as the kernel's next one less one)."""
        n = len(made)
        if not n:
            return
        self.tasks += n
        if self.tasks > self.h["tasks"]:
            raise self.error("", f"the records hold more than {self.h['tasks']} task(s); the "
                             f"header says {self.h['tasks']}")
        if self.progress is not None and self.tasks % PROGRESS_EVERY == 0:
            self.report()

    def numbers(self, v: object, path: str, ns: PidNamespace) -> tuple[int, ...]:
        if type(v) is not list or len(v) != ns.level + 1 or not all(
                type(n) is int and 1 <= n < PID_MAX_LIMIT for n in v):
            raise self.expect(path, v, f"an array of {ns.level + 1} pid number(s) in "
                              f"1..{PID_MAX_LIMIT - 1} (one per level of namespace {ns.inum})")
        return tuple(v)

    def task_fields(self, a: list[Any], o: int, path: str) -> tuple[Any, ...]:
        """The 11 task fields starting at ``a[o]`` (comm .. pid_ns_for_children), checked."""
        comm, state, start, nice, utime, stime, es, flags, xs, code, nsfc = a[o:o + 11]

        def bad(i: int, what: str) -> SnapshotError:
            return self.expect(f"{path}[{o + i}] ({_GHOST_COLUMNS[i]})", a[o + i], what)

        if type(comm) is not str or not 0 < len(comm) <= 15:
            raise bad(0, "a string of 1..15 characters")
        if type(state) is not str or state not in RUN_STATES:
            raise bad(1, "a state letter (" + " ".join(RUN_STATES) + ")")
        if type(start) is not int or not 0 <= start < 2**63:
            raise bad(2, "nanoseconds since boot >= 0")
        if type(nice) is not int or not -20 <= nice <= 19:
            raise bad(3, "an integer in -20..19")
        if type(utime) is not int or not 0 <= utime <= U64_MAX:
            raise bad(4, "clock ticks >= 0")
        if type(stime) is not int or not 0 <= stime <= U64_MAX:
            raise bad(5, "clock ticks >= 0")
        if type(es) is not int or not -1 <= es <= 64:
            raise bad(6, "a signal number in -1..64")
        if type(flags) is not int or not 0 <= flags <= _FLAGS_MAX or flags & ~_FLAGS_MAX:
            raise bad(7, f"task flags in 0..{_FLAGS_MAX}")
        if type(xs) is not int or not 0 <= xs <= 2:
            raise bad(8, "0 (running), 1 (zombie) or 2 (released)")
        if type(code) is not int or not 0 <= code <= STATUS_MAX:
            raise bad(9, f"a wait status in 0..{STATUS_MAX}")
        if type(nsfc) is not int:
            raise bad(10, "a namespace inum, or 0")
        return comm, state, start, nice, utime, stime, es, flags, xs, code, nsfc

    def attr(self, pid: Pid, v: object, path: str) -> None:
        if not isinstance(v, dict) or set(v) != {"exit", "xattrs"}:
            raise self.expect(path, v, 'null or {"exit": ..., "xattrs": {...}}')
        ex = v["exit"]
        pid.attr = PidAttr()
        if ex is not None:
            if (type(ex) is not list or len(ex) != 2 or type(ex[0]) is not int
                    or not 0 <= ex[0] <= STATUS_MAX or type(ex[1]) is not bool):
                raise self.expect(f"{path}.exit", ex, f"null or [wait status 0..{STATUS_MAX}, coredumped]")
            pid.attr.exit = ExitInfo(ex[0], ex[1])
        xattrs = v["xattrs"]
        if not isinstance(xattrs, dict):
            raise self.expect(f"{path}.xattrs", xattrs, "an object of name: base64 value")
        assert self.k is not None
        for name, b64 in xattrs.items():
            p = f"{path}.xattrs[{json.dumps(name)}]"
            try:
                value = base64.b64decode(b64, validate=True) if isinstance(b64, str) else None
            except (binascii.Error, ValueError):
                value = None
            if value is None:
                raise self.expect(p, b64, "base64 text")
            try:
                self.k.setxattr(pid, name, value)
            except KernelError as e:
                raise self.error(p, f"setxattr: {e}") from None

    def group_fields(self, g: ThreadGroup, r: dict[str, Any], prefix: str) -> None:
        """Set the group fields of a process or ghost record; defer what must wait."""
        later: dict[str, Any] = {}
        present = _GROUP_KEYS.intersection(r)
        plan = _GROUP_PLANS.get(present)
        if plan is None:
            plan = _group_plan(present)
        specs, missing, defaults, get_missing = plan
        # a field the record leaves out is its default, which needs no check (a table of a
        # hundred thousand processes has most of them at their defaults, and most of those
        # already hold it: one look at all of them)
        if get_missing is not None and get_missing(g) != defaults:
            for key, default in zip(missing, defaults, strict=True):
                setattr(g, key, default)
        for key, _default, kind, hi in specs:
            v = r[key]
            if kind == "bool" or (kind == "late" and hi < 0):
                if type(v) is not bool:
                    raise self.expect(f"{prefix}.{key}", v, "true or false")
            elif kind == "int" or kind == "late":
                if type(v) is not int or not 0 <= v <= hi:
                    raise self.expect(f"{prefix}.{key}", v, f"an integer in 0..{hi}")
            elif kind == "list":
                if type(v) is not list or not _STR_TYPE.issuperset(map(type, v)):
                    raise self.expect(f"{prefix}.{key}", v, "an array of strings")
                v = tuple(v)
            elif type(v) is not str:
                raise self.expect(f"{prefix}.{key}", v, "a string")
            if kind == "late":  # privilege and clone need them as booted
                if v:
                    later[key] = v
                continue
            setattr(g, key, v)
        if "files" in r:
            files = r["files"]
            if type(files) is not list:
                raise self.expect(f"{prefix}.files", files, "an array of [fd, ino, thread, nonblock, autokill]")
            later["files"] = files
        if "extra" in r:
            extra = r["extra"]
            if not isinstance(extra, dict) or not all(type(v) is str for v in extra.values()):
                raise self.expect(f"{prefix}.extra", extra, "an object of strings")
            g.extra = dict(extra)
        if later:
            self.late_group.append((self.where + prefix, g, later))

    def _set_pgrp(self, g: ThreadGroup, pgrp_ino: int, sid_ino: int) -> bool:
        """Join the recorded process group and session if their pids exist yet."""
        pg, sid = self.pids.get(pgrp_ino), self.pids.get(sid_ino)
        if pg is None or sid is None or not pg.allocated or not sid.allocated:
            return False
        if g.pgrp is pg and g.session is sid:  # (as forked: nothing to move)
            return True
        k = self.k
        assert k is not None
        R.set_pgrp_session(k, g, pg, sid)
        return True

    def pid_record(self, r: dict[str, Any]) -> None:
        k = self.k
        assert k is not None
        self.keys_of(r, {"pid", "ns", "numbers", "allocated", "tagged", "attr"})
        ino = self.int_at(r, "pid", _INIT_INO + 1, self.h["next_ino"] - 1)
        if ino in self.pids:
            raise self.error(".pid", f"pidfs inode {ino} is used twice")
        ns = self.ns_of(".ns", self.get(r, "ns"))
        assert ns is not None
        numbers = self.numbers(self.get(r, "numbers"), ".numbers", ns)
        allocated = self.bool_at(r, "allocated")
        if allocated:
            tagged = self.bool_at(r, "tagged")
            try:
                pid = self._exact().alloc_pid(ns, numbers, ino, tagged=tagged)
            except KernelError as e:
                raise self.error(".numbers", f"alloc_pid with set_tid {list(numbers[::-1])}: {e}") from None
        else:
            if "tagged" in r:
                raise self.error(".tagged", "only an allocated pid has a tag")
            pid = Pid(numbers, ns, ino, allocated=False)
        if r.get("attr") is not None:
            self.attr(pid, r["attr"], ".attr")
        self.pids[ino] = pid
        self.max_ino = max(self.max_ino, ino)
        self.loose.append((self.where, pid))

    def ghost_record(self, r: dict[str, Any]) -> None:
        self.keys_of(r, {"ghost", "pid", "task", "group", "g"})
        gid = self.int_at(r, "ghost", -(2**31), -1)
        if gid in self.ghosts or any(x.get("ghost") == gid for _, x in self.ghost_recs):
            raise self.error(".ghost", f"ghost {gid} appears twice")
        pid = self.pids.get(r.get("pid")) if type(r.get("pid")) is int else None  # type: ignore[arg-type]
        if pid is None or pid.task is not None:
            raise self.error(".pid", f"{_show(r.get('pid'))} is not the inode of a pid record")
        task = self.get(r, "task")
        if type(task) is not list or len(task) != 11:
            raise self.expect(".task", task, f"an array of {len(_GHOST_COLUMNS)} values "
                              f"({', '.join(_GHOST_COLUMNS)})")
        f = self.task_fields(task, 0, ".task")
        nsfc = self.ns_of(".task[10] (pid_ns_for_children)", f[10], zero_is_none=True)
        t = Task(pid=pid, group=None, comm=f[0], start_time=f[2], exit_signal=f[6], state=f[1],  # type: ignore[arg-type]
                 exit_state=ExitState(f[8]), exit_code=f[9], flags=f[7], nice=f[3],
                 utime=f[4], stime=f[5], pid_ns_for_children=nsfc)
        self.ghosts[gid] = t
        self.ghost_recs.append((self.where, r))

    def end(self, r: dict[str, Any]) -> None:
        self.keys_of(r, {"end"})
        if r["end"] is not True:
            raise self.expect(".end", r["end"], "true")

    # references

    def task_ref(self, ref: object, path: str, where: str) -> Task | None:
        if ref is None:
            return None
        if type(ref) is int:
            if ref < 0 and ref in self.ghosts:
                return self.ghosts[ref]
            pid = self.pids.get(ref)
            if pid is not None and pid.task is not None:
                return pid.task
        raise self.error(path, f"{_show(ref)} names neither a task of the table nor a ghost", where)

    def _time_task(self, ref: object, path: str) -> Task:
        t = self.task_ref(ref, path, "")
        if t is None:
            raise self.error(path, "null is not a task", "")
        return t

    def pid_ref(self, ref: object, path: str, where: str) -> Pid:
        pid = self.pids.get(ref) if type(ref) is int else None
        if pid is None:
            raise self.error(path, f"{_show(ref)} is not the pidfs inode of a restored pid", where)
        return pid

    # the end

    def finish(self) -> Kernel:
        k = self.k
        if k is None or self.stage < 2:
            raise self.error("", "no ns and process records", "")
        if self.stage != 5:
            raise self.error("", "the file ends before the end record (truncated?)", "")
        for where, g, pg, sess in self.late_pgrp:
            for key, ino in (("pgrp", pg), ("session", sess)):
                p = self.pid_ref(ino, f".{key}", where)
                if not p.allocated:
                    raise self.error(f".{key}", f"pid {ino} was freed; a process group or session "
                                     "id is always allocated", where)
            self._set_pgrp(g, pg, sess)
        for where, pid in self.loose:
            if pid.allocated and not pid.has_task():
                raise self.error("", f"pid {list(pid.numbers)} is allocated, but no task, process "
                                 "group or session holds it", where)
        self._ghosts()
        for where, g, late in self.late_group:
            if "files" in late:
                self._files(g, late["files"], where)
        for where, t, ns in self.nsfc:  # while every task lives and has uid 0
            try:
                k.setns_pid(t, ns)
            except KernelError as e:
                raise self.error("", f"setns: {e}", where) from None
            self.setns_done.discard(t)
        for t in self.setns_done:  # parents moved only to clone a child elsewhere
            t.pid_ns_for_children = None
        for t, exit_state, code, flags in self.late_tasks:
            R.set_exit_state(k, t, ExitState(exit_state), code)
            t.flags = flags
        for _where, g, late in self.late_group:
            for key in ("uid", "gid", "group_exit"):
                if key in late:
                    setattr(g, key, late[key])
        for where, ns, r in self.ns_rec:
            try:
                check_pid_max(r["pid_max"])
            except KernelError as e:
                raise self.error(".pid_max", str(e), where) from None
            R.set_pid_ns_state(k, ns, pid_max=r["pid_max"], cursor=r["cursor"], adding=r["adding"],
                               child_reaper=self.task_ref(r.get("child_reaper"), ".child_reaper", where),
                               creator=self.task_ref(r.get("creator"), ".creator", where))
        init = self.task_ref(self.h["init"], ".init", "")
        if init is None:
            raise self.error(".init", "null; the kernel always has an init", "")
        k.init = init
        h = self.h
        # every pid ExactPids made moved the kernel's next inode past its own (the checks of
        # the counters come after this one)
        self.max_ino = max(self.max_ino, R.counters(k).next_ino - 1)
        if h["next_ino"] <= self.max_ino:
            raise self.error(".next_ino", f"{h['next_ino']} is not above the largest pidfs inode "
                             f"({self.max_ino})", "")
        inums = [ns.inum for ns in self.ns.values() if ns is not k.root_ns]
        if inums and h["next_ns_inum"] <= max(inums):
            raise self.error(".next_ns_inum", f"{h['next_ns_inum']} is not above the largest "
                             f"namespace inum ({max(inums)})", "")
        self._exact().finish(R.Counters(h["next_ino"], h["next_ns_inum"], h["total_forks"]))
        if self.tasks != h["tasks"] or self.processes != h["processes"]:
            raise self.error("", f"the records hold {self.tasks} task(s) in {self.processes} "
                             f"process(es); the header says {h['tasks']} in {h['processes']}", "")
        assert k.nr_threads == self.tasks, (k.nr_threads, self.tasks)
        # the recorded cap, but never above this mount's (--max-tasks: the smaller wins)
        caps = [c for c in (self.max_tasks, h["max_tasks"]) if c is not None]
        k.max_threads = min(caps) if caps else None
        if self.time_state is not None:
            self.where = ""  # errors name the header's time.PATH
            timed.restore_time(k, self.time_state, self._time_task, self)
        self.report()
        return k

    def _ghosts(self) -> None:
        for where, r in self.ghost_recs:
            t = self.ghosts[r["ghost"]]
            gref = r.get("group")
            if gref is not None:
                if "g" in r:
                    raise self.error(".g", "a ghost has either 'group' or 'g'", where)
                pid = self.pids.get(gref) if type(gref) is int else None
                leader = pid.task if pid is not None else None
                if leader is None or leader.group.leader is not leader:
                    raise self.error(".group", f"{_show(gref)} is not the leader of a process "
                                     "in the table", where)
                t.group = leader.group
                continue
            grec = self.get(r, "g") if "g" in r else None
            if not isinstance(grec, dict):
                raise self.error(".g", "a ghost outside every table group needs its group's fields", where)
            saved, self.where = self.where, where
            try:
                self.keys_of(grec, {"parent", "pgrp", "session", "files", "extra", *_GROUP_DEFAULTS})
                g = ThreadGroup(leader=t)
                self.group_fields(g, grec, ".g")
            finally:
                self.where = saved
            g.parent = self.task_ref(grec.get("parent"), ".g.parent", where)
            for key in ("pgrp", "session"):
                if grec.get(key) is not None:
                    setattr(g, key, self.pid_ref(grec[key], f".g.{key}", where))
            t.group = g

    def _files(self, g: ThreadGroup, files: list[Any], where: str) -> None:
        seen: set[int] = set()
        for i, f in enumerate(files):
            p = f".files[{i}]"
            if (type(f) is not list or len(f) != 5 or type(f[0]) is not int or not 0 <= f[0] < 2**31
                    or not all(type(b) is bool for b in f[2:])):
                raise self.error(p, f"expected [fd, pid ino, thread, nonblock, autokill], got {_show(f)}", where)
            if f[0] in seen:
                raise self.error(p, f"descriptor {f[0]} appears twice", where)
            seen.add(f[0])
        entries: list[R.FdEntry] = []
        for i, f in enumerate(files):
            p = f".files[{i}]"
            pid = self.pid_ref(f[1], f"{p}[1]", where)
            if pid.attr is None:  # pidfd_get() creates it; a record without one is inconsistent
                raise self.error(f"{p}[1]", f"pid {f[1]} has a handle but no pidfs attr record", where)
            entries.append(R.FdEntry(f[0], pid, thread=f[2], nonblock=f[3], autokill=f[4]))
        R.set_fd_table(self.k, g, entries)  # type: ignore[arg-type]

    def report(self) -> None:
        if self.progress is not None and self.h:
            self.progress(self.tasks, self.h["tasks"])


#: the decoder's scanner: (text, index) -> (value, end); StopIteration when no value starts there
_scan_json: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]  # (typeshed: the argument as the class itself)
_JSON_SPACE = " \t\n\r"


def _json_line(raw: bytes) -> Any:
    """``json.loads(raw)``: a line of UTF-8 holding one JSON value straight away goes to the
    decoder's scanner itself (json.loads' encoding detection and whitespace match were a
    tenth of reading a big snapshot); anything else, and every error, through json.loads."""
    try:
        text = raw.decode("utf-8")
        obj, end = _scan_json(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError):
        return json.loads(raw)
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        return json.loads(raw)
    return obj


def restore(data: dict[str, Any], *, source: str = "<snapshot>", listener: Listener | None = None,
            clock: Callable[[], int] | None = None, progress: Progress | None = None,
            max_tasks: int | None = None) -> Kernel:
    """Rebuild the Kernel that ``dump`` described.

    ``clock`` is the base clock (ns since the restore; default: monotonic time) to which the
    snapshot's clock is added, so uptime continues from the snapshot's. ``progress(done,
    total)`` is called every few thousand tasks and once at the end. Raises ``SnapshotError``
    (EINVAL) naming ``source`` and the JSON path of the first bad entry; EAGAIN, before
    building anything, for a table of more than ``max_tasks`` tasks (the mount's cap, which the
    restored table keeps as its kernel.threads-max).
    """
    r = _Restorer(source, clock, progress, max_tasks)
    if not isinstance(data, dict):
        raise r.expect("", data, "an object")
    records = data.get("records")
    if not isinstance(records, list):
        raise r.expect(".records", records, "an array of records")
    with collector_paused():
        r.header(data)
        for i, rec in enumerate(records):
            r.record(rec, i)
        k = r.finish()
    k.listener = listener
    return k


def restore_file(path: str | os.PathLike[str], *, listener: Listener | None = None,
                 clock: Callable[[], int] | None = None, progress: Progress | None = None,
                 max_tasks: int | None = None) -> Kernel:
    """Restore from a file written by ``write_snapshot`` (or a JSON file holding ``dump``'s
    dict), reading it one line at a time. See ``restore``."""
    source = os.fspath(path)
    with collector_paused():
        return _restore_file(source, path, listener, clock, progress, max_tasks)


def _restore_file(source: str, path: str | os.PathLike[str], listener: Listener | None,
                  clock: Callable[[], int] | None, progress: Progress | None,
                  max_tasks: int | None) -> Kernel:
    r = _Restorer(source, clock, progress, max_tasks)
    f = open_input(path, what="a snapshot", max_bytes=MAX_FILE_BYTES, error=SnapshotError)
    with f:
        lineno = 0
        try:
            while True:
                raw = f.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    break
                lineno += 1
                if len(raw) > MAX_LINE_BYTES:
                    where = "header" if lineno == 1 else f"records[{lineno - 2}]"
                    raise SnapshotError(errno.EINVAL, f"{source}: line {lineno}: {where}: longer than "
                                        f"{MAX_LINE_BYTES:,} bytes (a record is far smaller)")
                try:
                    obj = _json_line(raw)
                except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8
                    where = "header" if lineno == 1 else f"records[{lineno - 2}]"
                    raise SnapshotError(errno.EINVAL, f"{source}: line {lineno}: {where}: not JSON "
                                        f"({e})") from None
                except RecursionError:
                    where = "header" if lineno == 1 else f"records[{lineno - 2}]"
                    raise SnapshotError(errno.EINVAL, f"{source}: line {lineno}: {where}: "
                                        f"{TOO_DEEP}") from None
                if lineno == 1:
                    if isinstance(obj, dict) and "records" in obj:  # a whole dump() document
                        k = restore(obj, source=source, listener=listener, clock=clock,
                                    progress=progress, max_tasks=max_tasks)
                        if f.read(1).strip():
                            raise SnapshotError(errno.EINVAL, f"{source}: line 2: unexpected data after "
                                                "a whole snapshot document")
                        return k
                    r.file = True
                    r.header(obj)
                else:
                    r.record(obj, lineno - 2)
        except OSError as e:
            if isinstance(e, SnapshotError):
                raise
            raise SnapshotError(e.errno or errno.EIO, f"{source}: line {lineno + 1}: {e.strerror or e}") from None
        if lineno == 0:
            raise SnapshotError(errno.EINVAL, f"{source}: empty file, not a snapshot")
    k = r.finish()
    k.listener = listener
    return k
