"""``pidfs-fuse capture``: a real ``/proc`` (or a pidfs-fuse mount) turned into a scenario.

What is captured: every process and thread listed in PROCDIR, with its number at every pid
namespace level (``NSpid`` -> ``set_tid``, innermost first), its parent, process group, session,
controlling terminal (``tty_nr``), uid/gid (effective ids: the model keeps one of each),
comm/argv/environ, exe/cwd/root, scheduler state, start time, CPU times, nice, rss/vsize and
ignored signals; zombies end with their exit status, stopped processes with a stop signal. Pid
namespaces become ``newpid`` processes (a namespace's init); their inode numbers are kept as
comments (the schema has no key for them).

A scenario is a recipe of system calls, not a dump, so the capture *plans* how the model can
reach the captured table:

- Creation order: a process comes after the one it is cloned from and after the group it joins;
  among those free to go, earlier start time first (then lower pid). Start times are clamped to
  the parent's (the loader refuses a child older than its parent).
- A process group or session whose leader is gone (the id is held only by its members) is
  recreated by a stand-in: a process with the vanished id (``set_tid``) that calls ``setsid``
  (session) or ``setpgid`` (group), from which the members are cloned or which they join, and
  which exits at the end with ``autoreap`` (released at once, no zombie). The stand-in's
  children are then reparented as Linux reparents them (``find_new_reaper``): to the nearest
  subreaper, else the namespace's init.
- A process whose parent is in another session than its own (it was reparented after its
  original parent exited, e.g. ``(cmd &)`` from a shell) is cloned from a stand-in in its session
  (the vanished group's or session's stand-in, else a "carrier" child of the live session
  leader) so that it inherits the session, and lands on its real parent when the stand-in exits.
  When that parent is not the namespace's init, Linux can only have put it there because the
  parent is a child subreaper, which /proc does not show: the capture marks it
  ``subreaper = true`` (inferred, said in a comment).
- ``set_tid`` needs a privileged (uid 0) creator, so a non-root process that has threads or
  creates anything in the scenario is loaded as uid 0; its real uid is in a comment.

Processes that come and go during the capture: one whose parent vanished mid-capture has its
parent read again (Linux has reparented it by then), else it goes to its namespace's init (its
nearest subreaper cannot be known); members of a namespace whose init vanished are dropped
(Linux kills them); a thread or process that vanished while being read is left out.

What the model cannot carry (documented differences, listed per process in the output's header
and by ``Capture.deviations``): session/group id 0 (init and kernel threads live in the kernel's
``init_struct_pid`` session; the model's init leads session 1), a parent number 0 for anything
but init (kernel threads' ``kthreadd``: made a child of init), comms longer than 15 bytes
(kernel threads; the model keeps TASK_COMM_LEN - 1), states P/X (shown as S), real vs effective
ids, supplementary groups, namespace inode numbers, per-namespace pid_max and cursors below the
root, a process that entered a namespace with setns (no schema key: it is cloned from that
namespace's init), exe "none" (kernel threads get the loader's default). Text that is not UTF-8
is decoded with replacement characters.

After writing, the capture loads its own scenario into a ``Kernel`` and compares every captured
process (pid, parent, group, session, threads, comm, uid, state, times...) with the model: a
difference that the plan did not expect is reported as ``unexpected`` (a capture bug).

The TOML is written here (``_toml_*``): scenarios use strings, integers, floats, arrays and
tables only, and the few escapes TOML basic strings need are simpler than a dependency.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import heapq
import os
import pwd
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .kernel import PID_MAX_LIMIT, ExitState, Kernel, KernelError
from .kernel import signals as S
from .kernel.task import TASK_COMM_LEN, comm_cut

#: why a comm loads shorter (kernel threads show their full name in /proc; tasks keep 15 bytes)
COMM_CUT = f"the model keeps {TASK_COMM_LEN - 1} bytes of a comm"
#: the root namespace's pid_max when PROCDIR does not say
PID_MAX_DEFAULT = 32768
#: scheduler states the scenario's ``state`` key takes
SETTABLE_STATES = "RSDTtI"
#: uids from this one up are people (login.defs UID_MIN); their names are anonymized
UID_MIN = 1000


# -- what was read -------------------------------------------------------------------------------

@dataclass(slots=True)
class TaskInfo:
    """One task (thread) as read from ``task/<tid>/{stat,status}``. Numbers are in PROCDIR's
    namespace; ``nspid`` lists the task's number from that namespace down to its own."""

    tid: int
    nspid: tuple[int, ...]
    comm: str
    state: str
    nice: int
    utime: int
    stime: int
    start: int  # clock ticks since boot

    @property
    def level(self) -> int:
        return len(self.nspid) - 1


@dataclass(slots=True)
class ProcInfo:
    """One process: its leader's ``TaskInfo`` plus the process-wide fields."""

    leader: TaskInfo
    ppid: int
    pgid: int
    sid: int
    nspgid: tuple[int, ...]
    nssid: tuple[int, ...]
    uid: int
    gid: int
    tty_nr: int
    cutime: int
    cstime: int
    vsize: int
    rss: int
    exit_code: int
    sigign: int  # SigIgn as shown: bit n-1 is signal n
    kthread: bool
    argv: list[str] | None = None
    environ: list[str] | None = None
    exe: str | None = None
    cwd: str | None = None
    root: str | None = None
    pidns: int | None = None  # inode number of ns/pid
    #: a namespace init's pid_max and ns_last_pid, where PROCDIR shows them (a pidfs-fuse
    #: mount's /.pidns/<inum>/sys/kernel; a real /proc shows only its own namespace's)
    ns_pid_max: int | None = None
    ns_last_pid: int | None = None
    threads: list[TaskInfo] = field(default_factory=list)  # without the leader, listing order

    @property
    def tgid(self) -> int:
        return self.leader.tid

    @property
    def level(self) -> int:
        return self.leader.level


@dataclass(slots=True)
class Machine:
    """A whole PROCDIR as read: the processes (by tgid) and the global numbers."""

    source: str
    hostname: str
    hz: int
    uptime: float
    pid_max: int
    ns_last_pid: int | None
    procs: dict[int, ProcInfo]
    #: what happened during the read: (tgid, sentence)
    notes: list[tuple[int, str]] = field(default_factory=list)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _status(raw: bytes) -> dict[str, str]:
    out = {}
    for line in _text(raw).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split())


def _stat(raw: bytes) -> tuple[str, list[str]]:
    """comm (between the first '(' and the last ')') and the fields after it (field 3 first)."""
    lo, hi = raw.index(b"("), raw.rindex(b")")
    return _text(raw[lo + 1:hi]), _text(raw[hi + 1:]).split()


def _nuls(raw: bytes) -> list[str]:
    """cmdline/environ: NUL-separated words; a missing final NUL (setproctitle) is fine."""
    if not raw:
        return []
    words = raw.split(b"\0")
    if words[-1] == b"":
        words.pop()
    return [_text(w) for w in words]


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read_task(d: str, tid: int, *, nested: bool = True) -> TaskInfo:
    """``d`` is ``PROCDIR/<tgid>/task/<tid>`` or ``PROCDIR/<tgid>``. Raises OSError. A thread of a
    process in PROCDIR's own namespace (``nested`` false) has no other number: its status, which
    only NSpid is read for, is skipped (half the reads of a process with 100,000 threads)."""
    comm, f = _stat(_read(f"{d}/stat"))
    if nested:
        st = _status(_read(f"{d}/status"))
        nspid = _ints(st["NSpid"]) if "NSpid" in st else (tid,)
    else:
        nspid = (tid,)
    return TaskInfo(tid=tid, nspid=nspid, comm=comm, state=f[0], nice=int(f[16]),
                    utime=int(f[11]), stime=int(f[12]), start=int(f[19]))


def _read_proc(procdir: str, tgid: int) -> ProcInfo:
    """One process and its threads. Raises OSError when the process vanished while read."""
    d = f"{procdir}/{tgid}"
    st = _status(_read(f"{d}/status"))
    comm, f = _stat(_read(f"{d}/stat"))
    try:
        leader = _read_task(f"{d}/task/{tgid}", tgid)
    except OSError:  # a zombie leader of a live group, or no task/ (not a real procfs)
        nspid = _ints(st["NSpid"]) if "NSpid" in st else (tgid,)
        leader = TaskInfo(tgid, nspid, comm, f[0], int(f[16]), int(f[11]), int(f[12]), int(f[19]))
    uid = _ints(st.get("Uid", "0 0"))
    gid = _ints(st.get("Gid", "0 0"))
    pgid, sid = int(f[2]), int(f[3])
    p = ProcInfo(
        leader=leader, ppid=int(st.get("PPid", f[1])), pgid=pgid, sid=sid,
        nspgid=_ints(st["NSpgid"]) if "NSpgid" in st else (pgid,),
        nssid=_ints(st["NSsid"]) if "NSsid" in st else (sid,),
        uid=uid[1] if len(uid) > 1 else uid[0], gid=gid[1] if len(gid) > 1 else gid[0],
        tty_nr=int(f[4]) & 0xFFFFFFFF, cutime=int(f[13]), cstime=int(f[14]), vsize=int(f[20]),
        rss=max(int(f[21]), 0), exit_code=int(f[49]) if len(f) > 49 else 0,
        sigign=int(st.get("SigIgn", "0"), 16),
        kthread=st.get("Kthread") == "1" or bool(int(f[6]) & 0x00200000))  # PF_KTHREAD
    for key in ("cmdline", "environ"):
        try:
            words = _nuls(_read(f"{d}/{key}"))
        except OSError:  # EACCES: another user's environ; ESRCH: no mm (kernel thread, zombie)
            continue
        if key == "cmdline":
            p.argv = words
        else:
            p.environ = words
    p.exe, p.cwd, p.root = (_readlink(f"{d}/{x}") for x in ("exe", "cwd", "root"))
    m = re.fullmatch(r"pid:\[(\d+)\]", _readlink(f"{d}/ns/pid") or "")
    p.pidns = int(m.group(1)) if m else None
    if p.pidns is not None and leader.level and leader.nspid[-1] == 1:
        for key, attr in (("pid_max", "ns_pid_max"), ("ns_last_pid", "ns_last_pid")):
            try:
                setattr(p, attr, int(_read(f"{procdir}/.pidns/{p.pidns}/sys/kernel/{key}")))
            except (OSError, ValueError):
                pass
    try:
        tids = [int(t) for t in os.listdir(f"{d}/task") if t.isdigit()]
    except OSError:
        tids = []
    for tid in tids:
        if tid == tgid:
            continue
        try:
            p.threads.append(_read_task(f"{d}/task/{tid}", tid, nested=leader.level > 0))
        except OSError:  # the thread exited meanwhile
            continue
    return p


def read_machine(procdir: str = "/proc") -> Machine:
    """Read every process of ``procdir``, then settle what changed during the read."""
    def number(path: str) -> int | None:
        try:
            return int(_read(os.path.join(procdir, path)).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    try:
        names = os.listdir(procdir)
    except OSError as e:
        raise CaptureError(f"{procdir}: {e.strerror or e}") from None
    procs: dict[int, ProcInfo] = {}
    for name in names:
        if not name.isdigit():
            continue
        tgid = int(name)
        try:
            procs[tgid] = _read_proc(procdir, tgid)
        except (OSError, ValueError, IndexError, KeyError):
            continue  # vanished (or unreadable) while read
    try:
        host = _text(_read(os.path.join(procdir, "sys/kernel/hostname"))).strip()
    except OSError:
        host = os.uname().nodename
    hz = os.sysconf("SC_CLK_TCK")
    try:  # read last: every start time read before is at most this
        uptime = float(_read(os.path.join(procdir, "uptime")).split()[0])
    except (OSError, ValueError, IndexError):
        raise CaptureError(f"{procdir}: no readable uptime file; is it a /proc?") from None
    if 1 not in procs:
        raise CaptureError(f"{procdir}: no process 1 (a pid namespace without its init)")
    m = Machine(source=procdir, hostname=host, hz=hz, uptime=uptime,
                pid_max=number("sys/kernel/pid_max") or PID_MAX_DEFAULT,
                ns_last_pid=number("sys/kernel/ns_last_pid"), procs=procs)
    settle(m, procdir)
    return m


def settle(m: Machine, procdir: str | None = None) -> None:
    """Make a table read over time consistent, as Linux would have left it.

    - A process whose parent was not captured (it exited during the read): its parent is read
      again (Linux has reparented it by then); if that one is unknown too, it goes to the init of
      its namespace (its nearest subreaper, if any, cannot be seen from /proc).
    - Members of a pid namespace whose init was not captured are dropped: Linux kills a
      namespace's processes when its init exits.
    """
    procs = m.procs
    for p in list(procs.values()):
        if p.level and _ns_init(m, p) is None:
            del procs[p.tgid]
            m.notes.append((p.tgid, "dropped: the init of its pid namespace exited during the capture"))
    for p in procs.values():
        if p.tgid == 1 or p.ppid == 0 or p.ppid in procs:
            continue
        old, fresh = p.ppid, None
        if procdir is not None:
            try:
                fresh = int(_status(_read(f"{procdir}/{p.tgid}/status"))["PPid"])
            except (OSError, KeyError, ValueError):
                fresh = None
        if fresh is not None and fresh in procs:
            p.ppid = fresh
            m.notes.append((p.tgid, f"parent {old} exited during the capture; Linux reparented it "
                                    f"to {fresh}"))
        else:
            init = _ns_init(m, p)
            p.ppid = init.tgid if init is not None else 1
            m.notes.append((p.tgid, f"parent {old} exited during the capture; reparented to "
                                    f"{p.ppid}, the init of its pid namespace"))


def _ns_init(m: Machine, p: ProcInfo) -> ProcInfo | None:
    """The init (number 1) of ``p``'s pid namespace, by namespace inode when known, else the
    first process at that level numbered 1 whose outer numbers are ancestors' of ``p``."""
    if p.level == 0:
        return m.procs.get(1)
    inits = [q for q in m.procs.values() if q.level == p.level and q.leader.nspid[-1] == 1]
    if p.pidns is not None:
        same = [q for q in inits if q.pidns == p.pidns]
        if same:
            return same[0]
    # without inode numbers: walk p's parents at its level up to a number-1 process
    q: ProcInfo | None = p
    seen: set[int] = set()
    while q is not None and q.tgid not in seen:
        seen.add(q.tgid)
        if q.level == p.level and q.leader.nspid[-1] == 1:
            return q
        q = m.procs.get(q.ppid)
    return inits[0] if len(inits) == 1 else None


class CaptureError(Exception):
    """PROCDIR cannot be captured (one sentence for the user)."""


# -- the plan: scenario entries ----------------------------------------------------------------

@dataclass(slots=True)
class Deviation:
    """A captured value the loaded scenario shows differently: ``field`` of process ``pid``."""

    pid: int
    field: str
    captured: object
    model: object
    reason: str


@dataclass(slots=True, eq=False)
class Entry:
    """One ``[[process]]`` (or ``[init]``) of the scenario being planned."""

    name: str
    kind: str  # "init", "process", "session", "pgrp", "carrier"
    proc: ProcInfo | None  # None for stand-ins
    numbers: tuple[int, ...]  # PROCDIR namespace first (set_tid reversed)
    creator: Entry | None = None
    newpid: bool = False
    setsid: bool = False
    pgid: Entry | None = None  # the group leader (or stand-in) to join; self: own group
    subreaper: bool = False
    start: int = 0  # effective start, clock ticks
    uid: int = 0
    comments: list[str] = field(default_factory=list)
    #: (sid, pgid) the entry has once created, in PROCDIR numbers
    ids: tuple[int, int] = (0, 0)

    @property
    def level(self) -> int:
        return len(self.numbers) - 1

    @property
    def tgid(self) -> int:
        return self.numbers[0]


@dataclass(slots=True)
class Plan:
    machine: Machine
    entries: list[Entry]  # creation order; entries[0] is init
    #: (pid, field) -> why the model shows it differently
    expected: dict[tuple[int, str], str]


def plan(m: Machine) -> Plan:
    """Decide how the scenario reaches ``m``'s table (see the module docstring)."""
    return _Planner(m).run()


class _Planner:
    def __init__(self, m: Machine) -> None:
        self.m = m
        self.procs = m.procs
        self.by_tgid: dict[int, Entry] = {}
        self.standins: dict[tuple[str, int], Entry] = {}
        self.expected: dict[tuple[int, str], str] = {}
        #: numbers in use at each namespace level (any namespace of that level: a superset of
        #: what one namespace uses, so a number free here is free in every namespace)
        self.used: dict[int, set[int]] = {}
        for p in m.procs.values():
            for ids in (*(t.nspid for t in (p.leader, *p.threads)), p.nspgid, p.nssid):
                for level, n in enumerate(ids):
                    self.used.setdefault(level, set()).add(n)
        self.thread_tids = {t.tid for p in m.procs.values() for t in p.threads}

    def expect(self, pid: int, fld: str, reason: str) -> None:
        self.expected.setdefault((pid, fld), reason)

    def run(self) -> Plan:
        m = self.m
        init_p = self.procs[1]
        init = Entry("init", "init", init_p, init_p.leader.nspid, ids=(init_p.sid, init_p.pgid),
                     uid=0, start=0)  # the scenario's init starts at boot
        if init_p.uid != 0:
            self.expect(1, "uid", "the scenario's init is uid 0")
        if init_p.sid != 1:
            self.expect(1, "sid", f"session {init_p.sid} is the kernel's init_struct_pid; the "
                                  "model's init leads session 1")
        if init_p.pgid != 1:
            self.expect(1, "pgid", f"process group {init_p.pgid} is the kernel's init_struct_pid; "
                                   "the model's init leads group 1")
        self.by_tgid[1] = init
        order = sorted((p for p in self.procs.values() if p.tgid != 1),
                       key=lambda p: (p.leader.start, p.tgid))
        for p in order:
            e = Entry(str(p.tgid), "process", p, p.leader.nspid, uid=p.uid)
            if p.sid == p.tgid:
                e.ids = (p.sid, p.sid)
            self.by_tgid[p.tgid] = e
        placed = {1}
        for p in order:  # parents first: a process's place depends on its parent's
            chain = []
            q: ProcInfo | None = p
            while q is not None and q.tgid not in placed and q not in chain:
                chain.append(q)
                q = self.procs.get(q.ppid)
            for q in reversed(chain):
                placed.add(q.tgid)
                self._place(q)
        entries = self._order(init)
        self._privilege(entries)
        return Plan(m, entries, self.expected)

    @property
    def uptime_ticks(self) -> int:
        return int(self.m.uptime * self.m.hz)

    # -- one process: its creator, session and group --------------------------------------------

    def _place(self, p: ProcInfo) -> None:
        e = self.by_tgid[p.tgid]
        init = self.by_tgid[1]
        if p.ppid == 0:
            r = init
            self.expect(p.tgid, "ppid", "parent 0 (a kernel thread, or a parent outside the view): "
                                        "the model gives every process a parent; made a child of init")
        else:
            r = self.by_tgid[p.ppid]
        if not (p.level == r.level or (p.level == r.level + 1 and p.leader.nspid[-1] == 1)):
            ns_init = _ns_init(self.m, p)
            self.expect(p.tgid, "ppid", f"its parent {p.ppid} is in an outer pid namespace (it entered "
                                        "this one with setns, which the scenario cannot say): cloned "
                                        "from the namespace's init")
            r = self.by_tgid[ns_init.tgid] if ns_init is not None else init
        e.newpid = p.level == r.level + 1
        if e.newpid:
            e.comments.append(f"init of pid namespace pid:[{p.pidns or '?'}] (no scenario key keeps the inode "
                              "number: the model numbers its namespaces itself)")
        if comm_cut(p.leader.comm) != p.leader.comm:
            self.expect(p.tgid, "comm", COMM_CUT)
        sid, pgid = p.sid, p.pgid
        creator = r
        if sid == p.tgid:
            e.setsid = True
            e.ids = (sid, sid)
            if pgid != sid:  # cannot happen on Linux: setsid() makes the leader its group's too
                self.expect(p.tgid, "pgid", "a session leader outside its own group")
        else:
            rsid = r.ids[0]
            if sid != rsid and self._session_holder(sid, p) is not None:
                carrier = self._carrier(p, sid, pgid, r)
                if carrier is not None:
                    creator = carrier
            e.ids = (creator.ids[0], creator.ids[1])
            if e.ids[0] != sid:
                self.expect(p.tgid, "sid", self._why_not(sid, "session"))
            self._join(e, p, pgid)
        e.creator = creator
        init_p = self.procs[1]
        if e.ids[0] == init_p.sid != 1 and e.ids[0] == sid:
            self.expect(p.tgid, "sid", f"session {sid} (the kernel's init_struct_pid, inherited from "
                                       "init) is the model init's session 1")
        if e.ids[1] == init_p.pgid != 1 and e.ids[1] == pgid:
            self.expect(p.tgid, "pgid", f"process group {pgid} (the kernel's init_struct_pid, "
                                        "inherited from init) is the model init's group 1")
        if e.newpid and creator is not r:
            e.comments.append(f"init of a pid namespace, cloned from a stand-in of session {sid}")

    def _why_not(self, nr: int, what: str) -> str:
        if nr == 0:
            return (f"{what} 0 is the kernel's init_struct_pid (or outside the view); the model "
                    "has no such id: inherited from its parent")
        return f"{what} {nr} cannot be recreated from here (another pid namespace level)"

    def _join(self, e: Entry, p: ProcInfo, pgid: int) -> None:
        """Make ``e``'s group ``pgid``: inherited, its own, or join a live or stand-in group."""
        sid = e.ids[0]
        if pgid == e.ids[1]:
            return
        if pgid == p.tgid:
            e.pgid = e
            e.ids = (sid, pgid)
            return
        leader = self.by_tgid.get(pgid)
        if leader is not None and leader.proc is not None and leader.proc.pgid == pgid \
                and leader.proc.sid == p.sid == sid and leader.level == p.level:
            e.pgid = leader
        else:
            leader = self._standin_pgrp(pgid, p) if sid == p.sid else None
            if leader is None or leader.level != p.level:
                self.expect(p.tgid, "pgid", self._why_not(pgid, "process group"))
                return
            e.pgid = leader
        e.ids = (sid, pgid)

    def _levels(self, ids: tuple[int, ...]) -> tuple[int, ...]:
        """The numbers of an id's struct pid, PROCDIR's namespace first, from a member's NSsid or
        NSpgid line (0 where the id is not visible: the levels below its own)."""
        out = []
        for n in ids:
            if n == 0:
                break
            out.append(n)
        return tuple(out)

    def _session_holder(self, sid: int, p: ProcInfo) -> Entry | None:
        """The entry that can hand session ``sid`` down: its live leader, or a stand-in."""
        if sid == 0:
            return None
        leader = self.by_tgid.get(sid)
        if leader is not None and leader.proc is not None and leader.proc.sid == sid:
            return leader
        if sid in self.procs or sid in self.thread_tids:
            return None  # the number is a live process's that left that session: cannot happen
        return self._standin_session(sid, p)

    def _standin_session(self, sid: int, p: ProcInfo) -> Entry | None:
        key = ("session", sid)
        if key in self.standins:
            return self.standins[key]
        numbers = self._levels(p.nssid)
        r = self.by_tgid.get(p.ppid, self.by_tgid[1])
        if len(numbers) - 1 != r.level:
            return None
        e = Entry(f"session-{sid}", "session", None, numbers, creator=r, setsid=True, ids=(sid, sid))
        e.comments.append(f"session {sid}: its leader has exited; this stand-in holds the id for "
                          "its members, then exits (autoreap)")
        self.standins[key] = e
        return e

    def _standin_pgrp(self, pgid: int, p: ProcInfo) -> Entry | None:
        key = ("pgrp", pgid)
        if key in self.standins:
            return self.standins[key]
        if pgid == 0 or pgid in self.procs or pgid in self.thread_tids:
            return None
        holder = self._session_holder(p.sid, p)
        numbers = self._levels(p.nspgid)
        if holder is None or len(numbers) - 1 != holder.level:
            return None
        e = Entry(f"pgrp-{pgid}", "pgrp", None, numbers, creator=holder, ids=(p.sid, pgid))
        e.pgid = e
        e.comments.append(f"process group {pgid}: its leader has exited; this stand-in holds the "
                          "id for its members, then exits (autoreap)")
        self.standins[key] = e
        return e

    def _carrier(self, p: ProcInfo, sid: int, pgid: int, r: Entry) -> Entry | None:
        """A stand-in in session ``sid`` that ``p`` is cloned from, so that it inherits the session
        and is reparented to ``r`` when the stand-in exits."""
        carrier = None
        if pgid != sid and pgid not in self.procs:
            carrier = self._standin_pgrp(pgid, p)
        if carrier is None:
            holder = self._session_holder(sid, p)
            if holder is None:
                return None
            if holder.kind == "session":
                carrier = holder
            else:  # a live leader: a carrier child of it, numbered from the top of the range
                key = ("carrier", sid)
                carrier = self.standins.get(key)
                if carrier is None:
                    carrier = Entry(f"carrier-{sid}", "carrier", None,
                                    tuple(self._spare(level) for level in range(holder.level + 1)),
                                    creator=holder, ids=holder.ids)
                    carrier.comments.append(
                        f"carries session {sid} to processes whose parent is outside it (they were "
                        "reparented after their parent exited), then exits (autoreap)")
                    self.standins[key] = carrier
        if carrier.level != r.level:
            return None
        if self._reaper(carrier, r) is not r:
            self.expect(p.tgid, "ppid", "reparented elsewhere than its captured parent when the "
                                        "stand-in it was cloned from exits")
        return carrier

    def _spare(self, level: int) -> int:
        """The highest number free at ``level``: below the root's pid_max, or below the smallest
        pid_max of that level's namespaces (4194304 where the capture does not know it)."""
        used = self.used.setdefault(level, set())
        limits = [q.ns_pid_max or PID_MAX_LIMIT for q in self.procs.values()
                  if q.level == level and q.leader.nspid[-1] == 1]
        n = (self.m.pid_max if level == 0 else min(limits, default=PID_MAX_LIMIT)) - 1
        while n in used:
            n -= 1
        used.add(n)
        return n

    def _reaper(self, standin: Entry, want: Entry) -> Entry:
        """Where ``standin``'s children go when it exits (find_new_reaper: the nearest subreaper
        ancestor in the namespace, else the namespace's init), marking ``want`` a subreaper when
        it is on the way and that is the only way Linux could have put them there."""
        chain = []
        x = standin.creator
        while x is not None and x.level == standin.level:
            chain.append(x)
            if x.numbers[-1] == 1:  # the namespace's init (child reaper)
                break
            x = x.creator
        if want in chain and want.proc is not None and want.numbers[-1] != 1:
            for y in chain:
                if y is want:
                    break
                if y.subreaper:
                    return y
            if not want.subreaper:
                want.subreaper = True
                want.comments.append("subreaper: inferred (orphans of its session were reparented to it)")
            return want
        for y in chain:
            if y.subreaper or y.numbers[-1] == 1:
                return y
        return chain[-1] if chain else want

    # -- order and privilege -------------------------------------------------------------------

    def _order(self, init: Entry) -> list[Entry]:
        """Creation order: creator and joined group first; then earlier start, lower pid."""
        entries = [e for e in self.by_tgid.values() if e is not init] + list(self.standins.values())
        # effective start times: not before the creator's; a stand-in's: its earliest dependant's
        deps: dict[Entry, list[Entry]] = {e: [] for e in entries}
        deps[init] = []
        for e in entries:
            for d in (e.creator, e.pgid):
                if d is not None and d is not e:
                    deps[d].append(e)
        # creators form a tree from init: walk it from the top
        made: dict[Entry, list[Entry]] = {}
        for e in entries:
            made.setdefault(e.creator, []).append(e)  # type: ignore[arg-type]
        todo = [init]
        while todo:
            x = todo.pop()
            for e in made.get(x, ()):
                if e.proc is not None:
                    own = e.proc.leader.start
                else:  # a stand-in: as old as the oldest process that needs it
                    own = min((d.proc.leader.start for d in deps[e] if d.proc is not None), default=x.start)
                e.start = min(max(own, x.start), self.uptime_ticks)
                todo.append(e)
        # Kahn's algorithm; a pgid join that closes a cycle is dropped (reported)
        waiting = {e: sum(1 for d in (e.creator, e.pgid) if d is not None and d is not e)
                   for e in entries}
        heap: list[tuple[int, int, str, Entry]] = []
        out = [init]
        done = {init}

        def release(x: Entry) -> None:
            for d in deps[x]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    heapq.heappush(heap, (d.start, d.tgid, d.name, d))

        release(init)
        while len(out) < len(entries) + 1:
            if not heap:  # a cycle through pgid joins: drop the join of the earliest process
                stuck = min((e for e in entries if e not in done), key=lambda e: (e.start, e.tgid))
                if stuck.pgid is not None and stuck.pgid not in done:
                    self.expect(stuck.tgid, "pgid", "its group's leader is created after it")
                    deps[stuck.pgid].remove(stuck)
                    stuck.pgid = None
                    waiting[stuck] -= 1
                    if waiting[stuck] == 0:
                        heapq.heappush(heap, (stuck.start, stuck.tgid, stuck.name, stuck))
                    continue
                raise AssertionError(f"capture: no creation order for {stuck.name}")
            _, _, _, e = heapq.heappop(heap)
            out.append(e)
            done.add(e)
            release(e)
        return out

    def _privilege(self, entries: list[Entry]) -> None:
        """set_tid needs a uid-0 creator: a non-root process that creates anything is loaded as
        uid 0 (its real uid in a comment)."""
        creators = {e.creator for e in entries if e.creator is not None}
        for e in entries:
            if e.proc is None or e.kind == "init" or e.uid == 0:
                continue
            if e in creators or e.proc.threads:
                e.comments.append(f"uid {e.uid} (effective) loaded as 0: set_tid needs a "
                                  "privileged creator, and this process creates threads or processes")
                self.expect(e.tgid, "uid", "a process that creates threads or processes with set_tid "
                                           "is loaded as uid 0")
                e.uid = 0


# -- writing the scenario -----------------------------------------------------------------------

_TOML_ESC = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(s: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped (TOML 1.0 §String).
    Lone surrogates cannot be written and become U+FFFD."""
    out = []
    for ch in s:
        if ch in _TOML_ESC:
            out.append(_TOML_ESC[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\uFFFD")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if ("." in r or "e" in r or "inf" in r or "nan" in r) else r + ".0"
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, _Seconds):
        return v.text
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {type(v).__name__}")


@dataclass(frozen=True, slots=True)
class _Seconds:
    """A start time written as decimal seconds in the middle of its clock tick, so that the
    loader's float arithmetic (seconds * 1e9, rounded) lands in the same tick however large."""

    text: str

    @classmethod
    def of_ticks(cls, ticks: int, hz: int) -> _Seconds:
        num, den = 2 * ticks + 1, 2 * hz  # (ticks + 1/2) / hz
        whole, frac = divmod(num, den)
        digits = []
        for _ in range(9):  # nanoseconds are the loader's resolution
            frac *= 10
            d, frac = divmod(frac, den)
            digits.append(str(d))
            if not frac:
                break
        return cls(f"{whole}.{''.join(digits).rstrip('0') or '0'}")


def _lines(pairs: Iterable[tuple[str, object]]) -> list[str]:
    return [f"{k} = {_toml_value(v)}" for k, v in pairs]


def _signal_names(mask: int) -> list[str]:
    """SigIgn as shown (bit n-1 is signal n) -> names the loader takes; KILL/STOP never."""
    out = []
    for n in range(1, 65):
        if mask >> (n - 1) & 1 and n not in (S.SIGKILL, S.SIGSTOP):
            name = S.signame(n)
            out.append(name[3:] if name.startswith("SIG") else name)
    return out


@dataclass(slots=True)
class _Eff:
    """What a process has after the loader's clone + execve (+ setsid), before its fields: the
    inherited process fields the capture omits when they are already right."""

    environ: tuple[str, ...] = ()
    cwd: str = "/"
    root: str = "/"
    sigign: tuple[str, ...] = ()
    tty_nr: int = 0
    vsize: int = 0
    rss: int = 0
    uid: int = 0
    gid: int = 0
    nice: int = 0


class _Anon:
    """--anonymize: argv beyond argv[0] and environ values replaced, people's user names (uid
    >= 1000) replaced by ``user<uid>`` wherever text shows them."""

    def __init__(self, uids: Iterable[int]) -> None:
        names = {}
        for uid in set(uids):
            if uid < UID_MIN or uid == 65534:
                continue
            try:
                names[pwd.getpwuid(uid).pw_name] = f"user{uid}"
            except KeyError:
                continue
        self.names = names
        alternatives = "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
        self.rx = re.compile(rf"(?<![A-Za-z0-9_])({alternatives})(?![A-Za-z0-9_])") if names else None

    def text(self, s: str) -> str:
        return self.rx.sub(lambda m: self.names[m.group(1)], s) if self.rx else s

    def argv(self, argv: list[str]) -> list[str]:
        return [self.text(argv[0]), *(f"arg{i}" for i in range(1, len(argv)))] if argv else []

    def environ(self, env: list[str]) -> list[str]:
        return [self.text(w.partition("=")[0]) + "=" + ("x" if w.partition("=")[2] else "") for w in env]

    def machine(self, m: Machine) -> Machine:
        """A copy of ``m`` with its text anonymized (numbers and structure untouched)."""
        def task(t: TaskInfo) -> TaskInfo:
            return dataclasses.replace(t, comm=self.text(t.comm))

        def path(s: str | None) -> str | None:
            return self.text(s) if s is not None else None

        procs = {tgid: dataclasses.replace(
            p, leader=task(p.leader), threads=[task(t) for t in p.threads],
            argv=self.argv(p.argv) if p.argv is not None else None,
            environ=self.environ(p.environ) if p.environ is not None else None,
            exe=path(p.exe), cwd=path(p.cwd), root=path(p.root)) for tgid, p in m.procs.items()}
        return dataclasses.replace(m, source=self.text(m.source), hostname="anonymized", procs=procs)


class _Writer:
    def __init__(self, p: Plan, anonymize: bool) -> None:
        self.p = p
        self.m = p.machine
        self.anon = anonymize
        self.eff: dict[Entry, _Eff] = {}
        self.state: dict[Entry, str] = {}

    def run(self) -> str:
        m, p = self.m, self.p
        out = [
            f"# Captured by 'pidfs-fuse capture' from {m.source} on "
            + ("a machine" if self.anon else m.hostname),
            f"# at {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
            + (" (anonymized: argv beyond argv[0], environ values, user names)" if self.anon else ""),
            f"# {len(m.procs)} processes, {sum(len(q.threads) + 1 for q in m.procs.values())} tasks. "
            "Numbers are as captured (set_tid at every level);",
            "# stand-ins (session-N, pgrp-N, carrier-N) recreate ids whose leader had exited and exit at the end.",
        ]
        name = "capture" if self.anon else f"capture of {m.hostname}"
        body = ["", *_lines([("name", name), ("description",
                                                "A process table captured from a real /proc by pidfs-fuse capture")])]
        latest = max((t.start for q in m.procs.values() for t in (q.leader, *q.threads)), default=0)
        kern: list[tuple[str, object]] = [("pid_max", m.pid_max),
                                          ("uptime", max(m.uptime, (latest + 1) / m.hz))]
        if m.ns_last_pid is not None:
            kern.append(("ns_last_pid", m.ns_last_pid))
        body += ["", "[kernel]", *_lines(kern)]
        for e in p.entries:
            body += ["", *self._entry(e)]
        return "\n".join(out + self._header_notes() + body) + "\n"

    def _header_notes(self) -> list[str]:
        lines = []
        if self.m.notes:
            lines.append("#")
            lines.append("# During the capture:")
            lines += [f"#   {pid}: {text}" for pid, text in sorted(self.m.notes)]
        if self.p.expected:
            lines.append("#")
            lines.append("# Where the model differs from the captured table (pid field: why):")
            by_reason: dict[tuple[str, str], list[int]] = {}
            for (pid, fld), why in sorted(self.p.expected.items()):
                by_reason.setdefault((fld, why), []).append(pid)
            for (fld, why), pids in by_reason.items():
                shown = " ".join(map(str, pids[:12])) + (f" (+{len(pids) - 12} more)" if len(pids) > 12 else "")
                lines.append(f"#   {fld} of {shown}: {why}")
        return lines

    def _entry(self, e: Entry) -> list[str]:
        q = e.proc
        m = self.m
        creator_eff = self.eff.get(e.creator, _Eff()) if e.creator is not None else _Eff()
        out = [f"# {c}" for c in e.comments]
        pairs: list[tuple[str, object]] = []
        if e.kind == "init":
            assert q is not None
            out.append("[init]")
            comm = self._comm(q.leader.comm)
            argv = self._argv(q)
            pairs += [("comm", comm), ("argv", argv)]
            exe = self._exe(q, comm, argv, default=f"/sbin/{comm}")
            if exe is not None:
                pairs.append(("exe", exe))
        else:
            out.append("[[process]]")
            pairs += [("name", e.name), ("parent", e.creator.name)]  # type: ignore[union-attr]
            if q is None:
                comm, argv = "stand-in", None
                pairs.append(("comm", comm))
            else:
                comm = self._comm(q.leader.comm)
                argv = self._argv(q)
                pairs += [("comm", comm), ("argv", argv)]
                exe = self._exe(q, comm, argv, default=(argv[0] if argv and argv[0].startswith("/")
                                                        else f"/usr/bin/{comm}"))
                if exe is not None:
                    pairs.append(("exe", exe))
            if e.uid != creator_eff.uid:
                pairs.append(("uid", e.uid))
            if q is not None and q.gid != creator_eff.gid:
                pairs.append(("gid", q.gid))
            pairs.append(("set_tid", list(reversed(e.numbers))))
            if e.newpid:
                pairs.append(("newpid", True))
                if q is not None and q.ns_pid_max not in (None, PID_MAX_LIMIT):
                    pairs.append(("pid_max_ns", q.ns_pid_max))
                # -1: nothing allocated cyclically yet (an init made with set_tid), as after loading
                if q is not None and q.ns_last_pid is not None and q.ns_last_pid >= 0:
                    pairs.append(("ns_last_pid_ns", q.ns_last_pid))
            if e.setsid:
                pairs.append(("setsid", True))
            if e.pgid is not None:
                pairs.append(("pgid", e.pgid.name))
            if e.subreaper:
                pairs.append(("subreaper", True))
        if e.kind != "init":  # the scenario's init starts at boot (no key)
            pairs.append(("start", _Seconds.of_ticks(e.start, m.hz)))
        eff = _Eff(creator_eff.environ, creator_eff.cwd, creator_eff.root, creator_eff.sigign,
                   0 if e.setsid else creator_eff.tty_nr, creator_eff.vsize, creator_eff.rss,
                   e.uid, q.gid if q is not None and e.kind != "init" else creator_eff.gid,
                   creator_eff.nice)
        if e.kind == "init":
            eff.uid = eff.gid = 0
        ending: list[tuple[str, object]] = []
        if q is not None:
            pairs += self._process_fields(e, q, eff, ending)
        else:
            pairs += [("autoreap", True), ("exit", 0)]
        self.eff[e] = eff
        out += _lines(pairs + ending)
        if q is not None:
            for th in q.threads:
                out += ["", "[[init.threads]]" if e.kind == "init" else "[[process.threads]]"]
                out += _lines(self._thread_fields(e, th))
        return out

    def _comm(self, comm: str) -> str:
        comm = comm_cut(comm.replace("\n", "?").replace("\0", "?"))
        return comm or "?"

    def _argv(self, q: ProcInfo) -> list[str]:
        argv = q.argv or []
        return list(argv)

    def _exe(self, q: ProcInfo, comm: str, argv: list[str], default: str) -> str | None:
        exe = q.exe
        if exe is None or not exe.startswith("/"):
            return None
        return None if exe == default else exe

    def _process_fields(self, e: Entry, q: ProcInfo, eff: _Eff,
                        ending: list[tuple[str, object]]) -> list[tuple[str, object]]:
        """The field keys whose value differs from what the loader gives by default, and the
        ending (exit, killed, stopped) in ``ending``."""
        pairs: list[tuple[str, object]] = []
        t = q.leader
        zombie = t.state == "Z" and not q.threads
        stopped = t.state == "T"
        state = self._state(t.state, e.tgid)
        if zombie or stopped or t.state == "Z":
            state = "S"
        if state != "S":
            pairs.append(("state", state))
        self.state[e] = state
        if t.nice != eff.nice:
            pairs.append(("nice", t.nice))
            eff.nice = t.nice
        for key, v in (("utime", t.utime), ("stime", t.stime), ("cutime", q.cutime), ("cstime", q.cstime)):
            if v:
                pairs.append((key, v))
        for key in ("rss", "vsize", "tty_nr"):
            n = getattr(q, key)
            if n != getattr(eff, key):
                pairs.append((key, n))
                setattr(eff, key, n)
        for key in ("cwd", "root"):
            path = getattr(q, key)
            if path is not None and path.startswith("/") and path != getattr(eff, key):
                pairs.append((key, path))
                setattr(eff, key, path)
        if q.environ is not None:
            env = tuple(w for w in q.environ if "=" in w and not w.startswith("="))
            if env != eff.environ:
                pairs.append(("environ", list(env)))
                eff.environ = env
        sigign = _signal_names(q.sigign)
        if zombie:
            status = q.exit_code & 0xFFFF
            sig = status & 0x7F
            if sig and S.valid_signal(sig) and S.default_action(sig) in (S.Action.TERM, S.Action.CORE):
                name = S.signame(sig)[3:]
                sigign = [s for s in sigign if s != name]
                ending.append(("killed", name))
            else:
                if sig:
                    self_reason = f"ended by signal {sig}, whose default action does not end a process"
                    self.p.expected.setdefault((e.tgid, "exit"), self_reason)
                ending.append(("exit", (status >> 8) & 0xFF))
        elif t.state == "Z":
            self.p.expected.setdefault((e.tgid, "state"), "a zombie leader with live threads: the "
                                       "scenario can end only whole processes; shown running")
        if tuple(sigign) != eff.sigign:
            pairs.append(("sigign", sigign))
            eff.sigign = tuple(sigign)
        if stopped:  # /proc does not say which signal; TSTP would be discarded in an orphaned group
            ending.append(("stopped", "STOP"))
        return pairs

    def _state(self, letter: str, pid: int) -> str:
        if letter in SETTABLE_STATES:
            return letter
        if letter not in "ZT":
            self.p.expected.setdefault((pid, "state"), f"state {letter} is not one the model sets: shown as S")
        return "S"

    def _thread_fields(self, e: Entry, th: TaskInfo) -> list[tuple[str, object]]:
        pairs: list[tuple[str, object]] = [("comm", self._comm(th.comm)),
                                           ("set_tid", list(reversed(th.nspid)))]
        if comm_cut(th.comm) != th.comm:
            self.p.expected.setdefault((th.tid, "comm"), COMM_CUT)
        start = min(max(th.start, e.start), int(self.m.uptime * self.m.hz))
        pairs.append(("start", _Seconds.of_ticks(max(start, e.start), self.m.hz)))
        # a group stop shows T on every thread: the process's ``stopped`` ending gives it
        stopped = e.proc is not None and e.proc.leader.state == "T"
        state = "S" if stopped else self._state(th.state, th.tid)
        if state != self.state.get(e, "S"):
            pairs.append(("state", state))
        if th.nice:
            pairs.append(("nice", th.nice))
        if th.utime:
            pairs.append(("utime", th.utime))
        if th.stime:
            pairs.append(("stime", th.stime))
        return pairs


def render(p: Plan, *, anonymize: bool = False) -> str:
    """The scenario text of a plan."""
    return _Writer(p, anonymize).run()


# -- checking the result -------------------------------------------------------------------------

def verify(text: str, m: Machine, expected: dict[tuple[int, str], str]) -> list[Deviation]:
    """Load ``text`` into a Kernel and compare it with ``m`` process by process. Returns every
    difference in pid, ppid, pgid, sid, nlwp, comm, thread numbers and uid, each with the plan's
    reason or "unexpected"."""
    from .scenario import loads  # late: scenario imports the whole model

    sc = loads(text, source="<capture>")
    k: Kernel = sc.kernel
    ns = k.root_ns
    out: list[Deviation] = []

    def check(pid: int, fld: str, captured: object, model: object) -> None:
        if captured != model:
            out.append(Deviation(pid, fld, captured, model, expected.get((pid, fld), "unexpected")))

    for tgid, q in sorted(m.procs.items()):
        task = k.find_task(ns, tgid)
        if task is None or not task.is_leader or task.exit_state is ExitState.DEAD:
            out.append(Deviation(tgid, "pid", tgid, None, expected.get((tgid, "pid"), "unexpected")))
            continue
        g = task.group
        parent = g.parent
        check(tgid, "ppid", q.ppid, parent.group.leader.pid.nr_in(ns) if parent is not None else 0)
        check(tgid, "pgid", q.pgid, g.pgrp.nr_in(ns) if g.pgrp is not None else 0)
        check(tgid, "sid", q.sid, g.session.nr_in(ns) if g.session is not None else 0)
        check(tgid, "nlwp", len(q.threads) + 1, len(g.threads))
        check(tgid, "comm", q.leader.comm, task.comm)
        check(tgid, "nspid", q.leader.nspid, tuple(task.pid.numbers[: len(q.leader.nspid)]))
        check(tgid, "uid", q.uid, g.uid)
        threads = [t for t in g.threads if t is not task]
        check(tgid, "threads", [t.tid for t in q.threads], [t.pid.nr_in(ns) for t in threads])
        for th, mt in zip(q.threads, threads, strict=False):  # a length difference is checked above
            check(th.tid, "comm", th.comm, mt.comm)
    # nothing else may be left: stand-ins are gone
    known = set(m.procs)
    for nr, t in k.iter_tgids(ns):
        if nr not in known and t.exit_state is not ExitState.DEAD:
            out.append(Deviation(nr, "pid", None, nr, "unexpected"))
    return out


@dataclass(slots=True)
class Capture:
    text: str
    machine: Machine
    deviations: list[Deviation]

    @property
    def unexpected(self) -> list[Deviation]:
        return [d for d in self.deviations if d.reason == "unexpected"]


def capture(procdir: str = "/proc", *, anonymize: bool = False) -> Capture:
    """Read ``procdir``, plan, write and verify: the scenario text and how it differs."""
    m = read_machine(procdir)
    return capture_machine(m, anonymize=anonymize)


def capture_machine(m: Machine, *, anonymize: bool = False) -> Capture:
    if anonymize:
        m = _Anon(q.uid for q in m.procs.values()).machine(m)
    p = plan(m)
    text = render(p, anonymize=anonymize)
    try:
        devs = verify(text, m, p.expected)
    except KernelError as e:
        raise AssertionError(f"capture: the scenario written does not load: {e}") from None
    return Capture(text, m, devs)


# -- command line --------------------------------------------------------------------------------

DESCRIPTION = """\
Turn a /proc (default: this machine's; also a pidfs-fuse mount) into a scenario that mounts
with the same numbers at every pid namespace level: every process and thread, parents, process
groups, sessions (stand-ins recreate ids whose leader has exited), terminal, uid/gid,
comm/argv/environ, state, start time, CPU times, memory. What the model cannot carry is listed
in the scenario's header (e.g. session 0 of kernel threads, comms over 15 bytes)."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    c = subparsers.add_parser("capture", help="turn a real /proc into a scenario",
                              description=DESCRIPTION,
                              epilog="example:\n  pidfs-fuse capture -o machine.toml && "
                                     "pidfs-fuse mount /tmp/proc --scenario machine.toml",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("procdir", nargs="?", default="/proc", metavar="PROCDIR",
                   help="a procfs or pidfs-fuse mount (default /proc)")
    c.add_argument("-o", "--output", metavar="FILE", help="write the scenario here (default: stdout)")
    c.add_argument("--anonymize", action="store_true",
                   help="replace argv beyond argv[0], environ values and user names")
    c.set_defaults(func=run)
    return c


def run(args: argparse.Namespace) -> int:
    try:
        cap = capture(args.procdir, anonymize=args.anonymize)
    except CaptureError as e:
        print(f"pidfs-fuse capture: {e}", file=sys.stderr)
        return 1
    if args.output and args.output != "-":
        tmp = f"{args.output}.tmp{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(cap.text)
            os.replace(tmp, args.output)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            print(f"pidfs-fuse capture: {args.output}: {e.strerror or e}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(cap.text)
    n = len(cap.machine.procs)
    diff = sorted({d.pid for d in cap.deviations})
    print(f"pidfs-fuse capture: {n} processes, "
          f"{sum(len(q.threads) + 1 for q in cap.machine.procs.values())} tasks"
          + (f"; {len(diff)} shown differently by the model (see the header)" if diff else ""),
          file=sys.stderr)
    for d in cap.unexpected:
        print(f"pidfs-fuse capture: warning: process {d.pid}: {d.field} {d.captured!r} loads as "
              f"{d.model!r} (a capture bug; please report)", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pidfs-fuse")
    sub = p.add_subparsers(dest="cmd", required=True)
    add_parser(sub)
    args = p.parse_args(["capture", *(sys.argv[1:] if argv is None else argv)])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
