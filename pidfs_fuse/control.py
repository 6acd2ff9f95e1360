"""The control plane: one command language for the ``.control`` file, ``pidfs-fuse ctl`` and
Python (SPEC §4). A line is split into tokens as ``shlex.split`` reads it; the first token names
a row of ``COMMANDS`` (a table, as procfs's ``tgid_base_stuff[]``: adding a command is one row and
one builder function); pids are numbers in the view's pid namespace.

Commands are named after the system calls they stand for and act *as* a task of the model: the
parent for ``clone``, the waiter for ``wait``, the process itself for ``setsid``/``setpgid``/
``unshare``/``setns``/``pid_max``/``ns_last_pid``. Privilege is that task's uid (0 is
privileged), as the model checks it. ``kill`` comes from outside every namespace (the model's
``sender=None``, uid 0) unless ``from=PID`` names a sender.

Two steps, so the mount can block a ``wait``: ``Control.parse(line)`` checks the syntax, resolves
the pids and returns a ``Call``; ``Call.run()`` performs it and returns the reply (lines ending in
``"\\n"``, or ``""`` for commands that print nothing). ``run`` raises ``WouldBlock`` for ``wait``
without ``nohang`` while nothing is ready; the caller runs the same ``Call`` again after the next
model event (the pids stay bound to the struct pids resolved at parse time, never re-read as
numbers). Every failure is a ``KernelError`` whose sentence names the offending token (syntax
errors also show the usage line) and leaves the model unchanged, with one documented exception:
``clone ... count=N`` stops at the first failing clone and its error says how many it created.

Grammar (SPEC §4 plus ``close``, ``ns_last_pid``, ``kill ... from=``, ``help``, ``ps``, ``show``)::

    clone PARENT [thread] [parent] [newpid] [pidfd] [wait_pid] [autoreap] [autokill] [nnp]
          [comm=NAME] [argv=ARGS] [uid=N] [gid=N] [set_tid=N,N,...] [exit_signal=SIG] [count=N]
    exit TID [CODE]          exit_group PID [CODE]        kill PID SIG [from=PID]
    exec TID comm=NAME [argv=ARGS] [exe=PATH]
    wait PARENT [pid=N | pgid=N] [nohang] [nowait] [all] [exited] [stopped] [continued]
    setsid PID   setpgid PID PGID   subreaper PID on|off   unshare PID TYPE   setns PID NSPID [TYPE]
    tty SID TERMINAL   tcsetpgrp PID PGID
    pid_max PID N   ns_last_pid PID N   set TID KEY=VALUE ...   close PID FD   snapshot FILE
    help [COMMAND]   ps   show TID

``wait`` always includes WEXITED: ``stopped``/``continued`` add WSTOPPED/WCONTINUED the way
waitpid's WUNTRACED/WCONTINUED do, so ``wait P stopped`` also returns if the child exits instead
of stopping (a script never hangs on a child that will not stop). ``all`` is ``__WALL``.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from . import growth, timed
from .kernel import (
    CLONE_AUTOREAP,
    CLONE_NEWPID,
    CLONE_NNP,
    CLONE_PARENT,
    CLONE_PIDFD,
    CLONE_PIDFD_AUTOKILL,
    CLONE_THREAD,
    CLONE_WAIT_PID,
    NS_TYPES,
    P_ALL,
    P_PGID,
    P_PID,
    PID_MAX_LIMIT,
    WALL,
    WCONTINUED,
    WEXITED,
    WNOHANG,
    WNOWAIT,
    WSTOPPED,
    ExitState,
    Kernel,
    KernelError,
    Pid,
    PidNamespace,
    Task,
)
from .kernel import signals as S
from .kernel.fields import (
    FIELDS,
    ID_MAX,
    parse_comm,
    parse_decimal,
    parse_path,
    parse_signal_token,
    parse_words,
    set_fields,
)
from .kernel.terminals import parse_tty
from .snapshot import snapshot_lines, write_in_child, write_lines

log = logging.getLogger(__name__)

PID_T_MAX = 2**31 - 1
Build = Callable[["Control", "Args"], Callable[[], str]]


class WouldBlock(Exception):
    """``wait`` without ``nohang``: the waiter has eligible children but none has changed state.
    Run the same ``Call`` again after the next model event (a CHILD event on ``waiter`` is the
    one that can make it succeed)."""

    def __init__(self, waiter: Task) -> None:
        super().__init__(f"task {waiter.pid.nr} has children but none is ready")
        self.waiter = waiter


class Unfinished(WouldBlock):
    """A bulk command (``clone ... count=N``) did one slice of its work under a control whose
    ``slice`` is set: run the same ``Call`` again, after letting other requests in, for the
    next slice; the last run returns the whole reply."""

    def __init__(self, done: int, total: int) -> None:  # no waiter: not WouldBlock.__init__
        Exception.__init__(self, f"{done} of {total} done")
        self.waiter = None  # type: ignore[assignment]
        self.done, self.total = done, total


@dataclass(slots=True, eq=False)
class Call:
    """A parsed command bound to the model objects it names. ``run()`` performs it and returns
    the reply; it may be called again after ``WouldBlock``."""

    name: str
    args: tuple[str, ...]
    _run: Callable[[], str] = field(repr=False)

    def run(self) -> str:
        return self._run()

    @property
    def offloaded(self) -> bool:
        """Whether ``split`` has a part for another thread (``snapshot``)."""
        return isinstance(self._run, Offload)

    def split(self) -> Callable[[], str] | None:
        """For a command whose work is mostly blocking file I/O (``snapshot``): read the model
        now and return the rest, a function that touches only files and may run on any thread
        (the mount runs it off the thread that answers FUSE requests). None for every other
        command: use ``run()``."""
        return self._run.prepare() if isinstance(self._run, Offload) else None


class Offload:
    """The action of a command in two parts: ``prepare()`` reads the model (on the thread that
    owns it) and returns the I/O part. Called, it does both in a row (what ``run`` does)."""

    def __init__(self, prepare: Callable[[], Callable[[], str]]) -> None:
        self.prepare = prepare

    def __call__(self) -> str:
        return self.prepare()()


@dataclass(frozen=True, slots=True)
class Command:
    """One row of the command table: the usage line, positional parameters (the first
    ``required`` of ``params`` must be present), the option words and ``key=`` options it takes
    (``keys=None``: any ``KEY=VALUE``, for ``set``), and the builder that binds a ``Call``."""

    name: str
    params: tuple[str, ...]
    required: int
    usage: str
    summary: str
    build: Build
    words: frozenset[str] = frozenset()
    keys: frozenset[str] | None = frozenset()
    tail: str = ""  # a word after which the rest of the line is kept whole (``on ... do CMD``)


@dataclass(slots=True)
class Args:
    """The tokens of one command line, sorted into positionals, words and ``key=value``s."""

    cmd: Command
    pos: list[str]
    words: set[str]
    keys: dict[str, str]  # insertion order = command line order
    tail: list[str] | None = None  # the tokens after ``Command.tail``, None if it was absent

    def fail(self, reason: str) -> KernelError:
        return KernelError(errno.EINVAL, f"{self.cmd.name}: {reason} (usage: {self.cmd.usage})")

    def num(self, text: str, lo: int, hi: int, what: str) -> int:
        try:
            return parse_decimal(text, lo, hi, what)
        except KernelError as e:
            raise self.fail(e.strerror) from None

    def checked(self, parse: Callable[[], object]) -> object:
        """Run a value parser; its EINVAL gets the usage line."""
        try:
            return parse()
        except KernelError as e:
            raise self.fail(e.strerror) from None


def _short(text: str, limit: int = 40) -> str:
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 4] + "...'"


def _nr(pid: Pid, ns: PidNamespace) -> int:
    """pid_nr_ns() that still answers after the pid was freed (a reaped child's number, for the
    wait reply); 0 when the pid is not visible from ``ns``."""
    lvl = ns.level
    if lvl <= pid.ns.level and pid.ns.ancestors[lvl] is ns:
        return pid.numbers[lvl]
    return 0


class Control:
    """The command interpreter for one view: ``kernel`` seen from pid namespace ``ns``."""

    def __init__(self, kernel: Kernel, ns: PidNamespace | None = None) -> None:
        self.kernel = kernel
        self.ns = ns if ns is not None else kernel.root_ns
        #: clones per run of ``clone ... count=N`` before it raises ``Unfinished`` (None: all
        #: at once); the mount sets it so bulk work never keeps other requests waiting
        self.slice: int | None = None
        #: called after each slice (the mount moves what the slice built out of the cyclic
        #: garbage collector's sight: see ``mount/fs.py`` ``settle_heap``)
        self.after_slice: Callable[[], None] | None = None
        #: the smallest bulk clone whose slices call ``after_slice`` (see ``FREEZE_MIN``)
        self.freeze_min = FREEZE_MIN
        #: ``snapshot`` encodes and writes in a forked child (``snapshot.write_in_child``)
        self.snapshot_in_child = False

    # -- the two steps ------------------------------------------------------------------------

    def parse(self, line: str | bytes) -> Call:
        """Split, check and bind one command line. EINVAL for anything malformed (the message
        names the token and shows the usage); ESRCH for a pid no task has in this view."""
        tokens = _tokenize(line)
        name, rest = tokens[0], tokens[1:]
        cmd = COMMANDS.get(name)
        if cmd is None:
            raise KernelError(errno.EINVAL, f"unknown command {_short(name)}; commands: "
                              + ", ".join(COMMANDS) + " (try 'help')")
        args = _sort_args(cmd, rest)
        return Call(name, tuple(rest), cmd.build(self, args))

    def execute(self, line: str | bytes) -> str:
        """parse + run. Raises KernelError, or WouldBlock for a blocking ``wait``."""
        return self.parse(line).run()

    # -- helpers for builders -----------------------------------------------------------------

    def pid_number(self, a: Args, text: str, what: str = "pid") -> int:
        return a.num(text, 1, PID_T_MAX, what)

    def task(self, a: Args, text: str, what: str = "pid") -> Task:
        """The task numbered ``text`` in this view (find_task_by_pid_ns). ESRCH if none."""
        return self.kernel.get_task(self.ns, self.pid_number(a, text, what))

    def nr(self, pid: Pid) -> int:
        return _nr(pid, self.ns)


def _tokenize(line: str | bytes) -> list[str]:
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError as e:
            raise KernelError(errno.EINVAL, f"the command line is not UTF-8 ({e.reason} at byte "
                              f"{e.start})") from None
    if not isinstance(line, str):
        raise KernelError(errno.EINVAL, f"a command line is text, not {type(line).__name__}")
    try:
        tokens = shlex.split(line)
    except ValueError as e:  # "No closing quotation", "No escaped character"
        raise KernelError(errno.EINVAL, f"cannot split {_short(line)} into words: {e}") from None
    if not tokens:
        raise KernelError(errno.EINVAL, "empty command line (try 'help')")
    return tokens


def _sort_args(cmd: Command, rest: list[str]) -> Args:
    tail = None
    if cmd.tail and cmd.tail in rest:
        i = rest.index(cmd.tail)
        rest, tail = rest[:i], rest[i + 1:]
    a = Args(cmd, rest[: len(cmd.params)], set(), {}, tail)
    if len(a.pos) < cmd.required:
        raise a.fail(f"missing {cmd.params[len(a.pos)]}")
    for tok in rest[len(a.pos):]:
        key, eq, value = tok.partition("=")
        if eq and (cmd.keys is None or key in cmd.keys):
            if not key:
                raise a.fail(f"option {_short(tok)} has no name before '='")
            if key in a.keys:
                raise a.fail(f"option {key}= is given twice")
            a.keys[key] = value
        elif not eq and tok in cmd.words:
            if tok in a.words:
                raise a.fail(f"option {tok!r} is given twice")
            a.words.add(tok)
        elif not cmd.words and not cmd.keys and cmd.keys is not None:
            raise a.fail(f"unexpected argument {_short(tok)}")
        else:
            raise a.fail(f"unknown option {_short(tok)}")
    return a


# -- builders: bind the arguments, return the action ------------------------------------------


def _silent(fn: Callable[..., object], *args: object, **kw: object) -> Callable[[], str]:
    """The action of a command that prints nothing: call ``fn`` and reply ``""``."""
    def run() -> str:
        fn(*args, **kw)
        return ""
    return run

_CLONE_WORDS = {"thread": CLONE_THREAD, "parent": CLONE_PARENT, "newpid": CLONE_NEWPID,
                "pidfd": CLONE_PIDFD, "wait_pid": CLONE_WAIT_PID, "autoreap": CLONE_AUTOREAP,
                "autokill": CLONE_PIDFD_AUTOKILL, "nnp": CLONE_NNP}


def _clone(c: Control, a: Args) -> Callable[[], str]:
    parent = c.task(a, a.pos[0], "PARENT")
    flags = 0
    for w in a.words:
        flags |= _CLONE_WORDS[w]
    k = a.keys
    comm = a.checked(lambda: parse_comm(k["comm"])) if "comm" in k else None
    argv = a.checked(lambda: parse_words(k["argv"], "argv")) if "argv" in k else None
    uid = a.num(k["uid"], 0, ID_MAX, "uid") if "uid" in k else None
    gid = a.num(k["gid"], 0, ID_MAX, "gid") if "gid" in k else None
    set_tid: tuple[int, ...] = ()
    if "set_tid" in k:
        set_tid = tuple(a.num(t, 1, PID_T_MAX, "set_tid entry") for t in k["set_tid"].split(","))
    if "exit_signal" in k:
        exit_signal: int | None = a.checked(
            lambda: parse_signal_token(k["exit_signal"], what="exit_signal"))  # type: ignore[assignment]
    else:  # SPEC §4: CHLD by default, as clone(2) callers pass it; the kernel's 0 for threads
        exit_signal = None if flags & (CLONE_THREAD | CLONE_PARENT) else S.SIGCHLD
    count = a.num(k["count"], 1, PID_MAX_LIMIT, "count") if "count" in k else 1
    if set_tid and count > 1:
        raise a.fail("set_tid names one pid per level; it cannot be combined with count > 1")

    tids: list[int] = []
    last: list[Task] = []  # the last task made, while the clone runs in slices
    #: the reply, a piece per slice: formatting a million numbers at the end took one step of
    #: 146 ms; and the slices since a dict last grew (``growth.GAP``)
    pieces: list[str] = []
    since_growth = [growth.GAP]

    def run() -> str:
        if count > 1 and not tids:
            _check_room(c.kernel, parent, count)
        if last and c.slice is not None:
            if since_growth[0] >= growth.GAP and growth.make_room(last[0], c.slice):
                since_growth[0] = 0
                raise Unfinished(len(tids), count)  # a big dict grew: alone in this step
            since_growth[0] += 1
        start = len(tids)
        stop = count if c.slice is None else min(count, len(tids) + c.slice)
        made: list[Task] = []
        nr = c.nr
        try:
            if set_tid:
                made.append(c.kernel.clone(parent, flags, exit_signal=exit_signal, set_tid=set_tid,
                                           comm=comm, argv=argv, uid=uid, gid=gid).task)  # type: ignore[arg-type]
            else:  # the same as clone stop - start times, in bulk (Kernel.clone_many)
                c.kernel.clone_many(parent, stop - start, flags, exit_signal=exit_signal,
                                    comm=comm, argv=argv, uid=uid, gid=gid,  # type: ignore[arg-type]
                                    made=made)
        except KernelError as e:
            tids.extend(nr(t.pid) for t in made)
            if not tids:
                raise
            shown = " ".join(map(str, tids[:8])) + (" ..." if len(tids) > 8 else "")
            raise KernelError(e.errno, f"clone {len(tids) + 1} of {count} failed after creating "
                              f"{len(tids)} task(s) ({shown}): {e.strerror}") from e
        tids.extend(nr(t.pid) for t in made)
        pieces.append("".join(f"{t}\n" for t in tids[start:]))
        if c.slice is not None and len(tids) < count:
            last[:] = [made[-1]]
        if c.after_slice is not None and count >= c.freeze_min:
            c.after_slice()
        if len(tids) < count:
            raise Unfinished(len(tids), count)
        return "".join(pieces)
    return run


#: a bulk clone this large moves what it built out of the collector's sight after each slice
#: (``after_slice``); smaller ones leave their tasks collectable, so churn (clone count=12,
#: exit, reap, again) frees what it made: freezing after every bulk clone kept every reaped
#: task of the soak alive (RSS +28% in 20 s)
FREEZE_MIN = 10_000


def _check_room(kernel: Kernel, parent: Task, count: int) -> None:
    """EAGAIN before cloning ``count`` tasks that would pass the table's cap (kernel.threads-max)
    or cannot all get a pid at some level, so a hopeless ``count=N`` changes nothing. An upper
    bound only: numbers below RESERVED_PIDS that wrapping skips still count as free, so a later
    clone may still fail (and say so)."""
    cap = kernel.max_threads
    if cap is not None and kernel.nr_threads + count > cap:
        raise KernelError(errno.EAGAIN, f"count={count}: the table holds {kernel.nr_threads:,} "
                          f"tasks and its cap (kernel.threads-max {cap:,}) leaves room for "
                          f"{max(cap - kernel.nr_threads, 0):,}")
    for ns in parent.ns_for_children.ancestors:
        idr = ns.idr
        # ids at or above pid_max (left by lowering it) do not take room below it: count just
        # enough of them to know whether the rest leaves room for ``count``
        need = count - (ns.pid_max - 1 - len(idr))
        above = 0
        nr = idr.next_used(ns.pid_max) if need > 0 else -1
        while nr >= 0 and above < need:
            above += 1
            nr = idr.next_used(nr + 1)
        if above < need:
            room = ns.pid_max - 1 - len(idr) + above
            raise KernelError(errno.EAGAIN, f"count={count}: pid namespace {ns.inum} has at most "
                              f"{max(room, 0)} free pid(s) (pid_max {ns.pid_max})")


def _exit_code(a: Args) -> int:
    return a.num(a.pos[1], 0, 255, "CODE") if len(a.pos) > 1 else 0


def _exit(c: Control, a: Args) -> Callable[[], str]:
    task, code = c.task(a, a.pos[0], "TID"), _exit_code(a)
    return _silent(c.kernel.exit, task, code)


def _exit_group(c: Control, a: Args) -> Callable[[], str]:
    task, code = c.task(a, a.pos[0], "PID"), _exit_code(a)
    return _silent(c.kernel.exit_group, task, code)


def _kill(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")
    sig = a.checked(lambda: parse_signal_token(a.pos[1], what="SIG"))
    sender = c.task(a, a.keys["from"], "from") if "from" in a.keys else None
    return _silent(c.kernel.kill, task, sig, sender=sender)


def _exec(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "TID")
    k = a.keys
    if "comm" not in k:
        raise a.fail("comm=NAME is required")
    comm = a.checked(lambda: parse_comm(k["comm"]))
    argv = a.checked(lambda: parse_words(k["argv"], "argv")) if "argv" in k else None
    exe = a.checked(lambda: parse_path(k["exe"], "exe")) if "exe" in k else None
    return _silent(c.kernel.execve, task, comm, argv, exe=exe)


_WAIT_WORDS = {"nohang": WNOHANG, "nowait": WNOWAIT, "all": WALL, "exited": WEXITED,
               "stopped": WSTOPPED, "continued": WCONTINUED}


def _wait(c: Control, a: Args) -> Callable[[], str]:
    waiter = c.task(a, a.pos[0], "PARENT")
    options = WEXITED
    for w in a.words:
        options |= _WAIT_WORDS[w]
    if "pid" in a.keys and "pgid" in a.keys:
        raise a.fail("give pid=N or pgid=N, not both")
    idtype, target = P_ALL, None
    if "pid" in a.keys:
        idtype, nr = P_PID, c.pid_number(a, a.keys["pid"], "pid=")
        target = c.kernel.find_pid(c.ns, nr)
        if target is None:
            raise KernelError(errno.ECHILD, f"no pid {nr} in this view, so no such child")
    elif "pgid" in a.keys:
        idtype, nr = P_PGID, a.num(a.keys["pgid"], 0, PID_T_MAX, "pgid=")
        if nr:
            target = c.kernel.find_pid(c.ns, nr)
            if target is None:
                raise KernelError(errno.ECHILD, f"no process group {nr} in this view")

    def run() -> str:
        id_ = 0
        if target is not None:  # the bound struct pid, numbered in the waiter's namespace
            id_ = target.nr_in(waiter.pid.ns)
            if id_ == 0:
                raise KernelError(errno.ECHILD, f"pid {_nr(target, c.ns)} is gone or not "
                                  f"visible from task {c.nr(waiter.pid)}")
        res = c.kernel.waitid(waiter, idtype, id_, options)
        if res is None:
            if options & WNOHANG:
                return "0\n"
            raise WouldBlock(waiter)
        nr = c.nr(res.task.pid)
        return f"{nr} continued\n" if res.kind == "continued" else f"{nr} {res.kind} {res.code}\n"
    return run


def _setsid(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")

    def run() -> str:
        c.kernel.setsid(task)
        return f"{c.nr(task.group.session)}\n"  # type: ignore[arg-type]
    return run


def _setpgid(c: Control, a: Args) -> Callable[[], str]:
    """setpgid(0, PGID) called by PID itself; PGID 0 is PID's own number (a new group)."""
    task = c.task(a, a.pos[0], "PID")
    pgid = a.num(a.pos[1], 0, PID_T_MAX, "PGID")

    def run() -> str:
        nr = 0
        if pgid:
            pid = c.kernel.find_pid(c.ns, pgid)
            nr = pid.nr_in(task.pid.ns) if pid is not None else 0
            if nr == 0:  # what setpgid answers for a group it cannot find
                raise KernelError(errno.EPERM, f"no process group {pgid} in the session of {c.nr(task.pid)}")
        c.kernel.setpgid(task, 0, nr)
        return ""
    return run


def _subreaper(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")
    if a.pos[1] not in ("on", "off"):
        raise a.fail(f"{_short(a.pos[1])} is neither 'on' nor 'off'")
    on = a.pos[1] == "on"
    return _silent(c.kernel.set_child_subreaper, task, on)


def _ns_type(a: Args, word: str) -> str:
    """A namespace type word: ``pid`` (or ``newpid``) or one of NS_TYPES."""
    if word in ("newpid", "pid") or word in NS_TYPES:
        return "pid" if word == "newpid" else word
    raise a.fail(f"{_short(word)} is not a namespace type: pid (newpid), " + ", ".join(NS_TYPES))


def _unshare(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")
    kind = _ns_type(a, a.pos[1])
    if kind == "pid":
        return lambda: f"{c.kernel.unshare_pid_ns(task).inum}\n"
    return lambda: f"{c.kernel.unshare_ns(task, kind)}\n"


def _setns(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")
    other = c.task(a, a.pos[1], "NSPID")
    kind = _ns_type(a, a.pos[2]) if len(a.pos) > 2 else "pid"
    if kind == "pid":
        return _silent(c.kernel.setns_pid, task, other.active_ns)
    return _silent(c.kernel.setns_ns, task, kind, other)


def _tty(c: Control, a: Args) -> Callable[[], str]:
    """TIOCSCTTY by session leader SID: its session's terminal, leader's group in front."""
    task = c.task(a, a.pos[0], "SID")
    dev = parse_tty(a.pos[1])
    return _silent(c.kernel.set_ctty, task, dev)


def _tcsetpgrp(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")
    pgid = a.num(a.pos[1], 0, PID_T_MAX, "PGID")
    return _silent(c.kernel.tcsetpgrp, task, pgid)


def _pid_max(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")
    value = a.num(a.pos[1], 0, PID_T_MAX, "N")
    return _silent(lambda: c.kernel.set_pid_max(task.active_ns, value, uid=task.group.uid))


def _ns_last_pid(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")
    value = a.num(a.pos[1], 0, PID_T_MAX, "N")
    return _silent(lambda: c.kernel.set_last_pid(task.active_ns, value, uid=task.group.uid))


def _set(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "TID")
    if not a.keys:
        raise a.fail("nothing to set")
    pairs = list(a.keys.items())
    for key, value in pairs:  # syntax now; the whole set is checked again, atomically, at run
        f = FIELDS.get(key)
        if f is None:
            raise a.fail(f"unknown field {_short(key)}; fields: {', '.join(FIELDS)}")
        a.checked(lambda: f.parse(value))
    return _silent(set_fields, c.kernel, task, pairs)


def _close(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")
    fd = a.num(a.pos[1], 0, PID_T_MAX, "FD")
    return _silent(c.kernel.fd_close, task, fd)


def _snapshot(c: Control, a: Args) -> Callable[[], str]:
    """``snapshot FILE``: write the whole table to FILE atomically (``snapshot.write_lines``:
    symlinks resolved, only a regular file replaced, nothing inside a pidfs-fuse mount). FILE
    must be absolute: the mount's server runs with "/" as its working directory, so a relative
    name would not mean what the caller's shell meant. The table is encoded at once; the file
    I/O is the part ``Call.split`` hands to another thread; with ``snapshot_in_child`` (the
    mount) a forked child encodes and writes it, and that thread only waits for the child."""
    path = a.pos[0]
    if not os.path.isabs(path):
        raise a.fail(f"FILE {_short(path)} must be an absolute path (the server's working "
                     "directory is /)")

    def prepare() -> Callable[[], str]:
        if c.snapshot_in_child:
            wait = write_in_child(c.kernel, path)
            return lambda: f"snapshot {path}: {wait()} tasks\n"
        n, lines = snapshot_lines(c.kernel)

        def io() -> str:
            try:
                write_lines(path, lines)
            except KernelError:
                raise
            except OSError as e:
                raise KernelError(e.errno or errno.EIO, f"cannot write {path}: "
                                  f"{e.strerror or e}") from None
            return f"snapshot {path}: {n} tasks\n"
        return io
    return Offload(prepare)


def _help(c: Control, a: Args) -> Callable[[], str]:
    if a.pos:
        cmd = COMMANDS.get(a.pos[0])
        if cmd is None:
            raise a.fail(f"unknown command {_short(a.pos[0])}")
        text = f"{cmd.usage}\n    {cmd.summary}\n"
        if cmd.name == "set":
            text += "".join(f"    {f.key}: {f.syntax} (per {f.scope})\n" for f in FIELDS.values())
        return lambda: text
    text = "".join(f"{cmd.usage}\n" for cmd in COMMANDS.values())
    return lambda: text


def _ps(c: Control, a: Args) -> Callable[[], str]:
    def run() -> str:
        lines = ["PID PPID PGID SID UID S NLWP COMM\n"]
        for nr, t in c.kernel.iter_tgids(c.ns):
            g = t.group
            parent = g.parent.group.leader.pid if g.parent is not None else None
            lines.append(f"{nr} {c.nr(parent) if parent else 0} "
                         f"{c.nr(g.pgrp) if g.pgrp else 0} {c.nr(g.session) if g.session else 0} "
                         f"{g.uid} {t.display_state} {len(g.threads)} {t.comm}\n")
        return "".join(lines)
    return run


def _show(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "TID")

    def run() -> str:
        g = task.group
        parent = g.parent.group.leader.pid if g.parent is not None else None
        rows = [
            ("Name", task.comm), ("State", task.display_state),
            ("Tgid", c.nr(g.leader.pid)), ("Pid", c.nr(task.pid)),
            ("PPid", c.nr(parent) if parent else 0),
            ("Pgid", c.nr(g.pgrp) if g.pgrp else 0), ("Sid", c.nr(g.session) if g.session else 0),
            ("Uid", g.uid), ("Gid", g.gid),
            ("NSpid", " ".join(map(str, task.pid.numbers[c.ns.level:]))),
            ("PidNs", task.active_ns.inum), ("PidNsForChildren", task.ns_for_children.inum),
            ("Threads", len(g.threads)), ("Nice", task.nice),
            ("StartTime", task.start_time), ("Argv", shlex.join(g.argv)), ("Exe", g.exe),
            ("Exited", "zombie" if task.exit_state is ExitState.ZOMBIE else "no"),
        ]
        return "".join(f"{k}:\t{v}\n" for k, v in rows)
    return run


def _cmd(name: str, params: str, usage_tail: str, summary: str, build: Build, *, required: int | None = None,
         words: str = "", keys: str | None = "", tail: str = "") -> Command:
    ps = tuple(params.split())
    return Command(name=name, params=ps, required=len(ps) if required is None else required,
                   usage=" ".join([name, usage_tail]).strip(), summary=summary, build=build,
                   words=frozenset(words.split()),
                   keys=None if keys is None else frozenset(keys.split()), tail=tail)


#: The command table, in the order ``help`` lists it.
COMMANDS: dict[str, Command] = {c.name: c for c in (
    _cmd("clone", "PARENT", "PARENT [thread] [parent] [newpid] [pidfd] [wait_pid] [autoreap] "
         "[autokill] [nnp] [comm=NAME] [argv=ARGS] [uid=N] [gid=N] [set_tid=N,N,...] "
         "[exit_signal=SIG] [count=N]",
         "clone3() as PARENT; prints the new tid(s) in this view, one per line", _clone,
         words=" ".join(_CLONE_WORDS), keys="comm argv uid gid set_tid exit_signal count"),
    _cmd("exit", "TID CODE", "TID [CODE]", "exit(): one thread exits with CODE (0..255, default 0)",
         _exit, required=1),
    _cmd("exit_group", "PID CODE", "PID [CODE]", "exit_group(): the whole process exits", _exit_group,
         required=1),
    _cmd("kill", "PID SIG", "PID SIG [from=PID]",
         "kill(): SIG by name (TERM, SIGKILL) or number; from outside every namespace unless from=",
         _kill, keys="from"),
    _cmd("exec", "TID", "TID comm=NAME [argv=ARGS] [exe=PATH]", "execve() by TID", _exec,
         keys="comm argv exe"),
    _cmd("wait", "PARENT", "PARENT [pid=N | pgid=N] [nohang] [nowait] [all] [exited] [stopped] [continued]",
         "waitid() as PARENT: 'PID exited N', 'PID killed N', 'PID dumped N', 'PID stopped N', "
         "'PID continued', or '0' with nohang; blocks otherwise", _wait,
         words=" ".join(_WAIT_WORDS), keys="pid pgid"),
    _cmd("setsid", "PID", "PID", "setsid() by PID; prints the new session id", _setsid),
    _cmd("setpgid", "PID PGID", "PID PGID", "setpgid(0, PGID) by PID (PGID 0: a group of its own)",
         _setpgid),
    _cmd("subreaper", "PID on|off", "PID on|off", "prctl(PR_SET_CHILD_SUBREAPER)", _subreaper),
    _cmd("unshare", "PID TYPE", "PID newpid|cgroup|ipc|mnt|net|time|user|uts",
         "unshare(CLONE_NEW<TYPE>) by PID; prints the new namespace's inode number (newpid and "
         "time: the one PID's next children enter)", _unshare),
    _cmd("setns", "PID NSPID TYPE", "PID NSPID [pid|cgroup|ipc|mnt|net|time|user|uts]",
         "setns() by PID into NSPID's namespace of TYPE (default pid: PID's children go there; "
         "time: PID's children too)", _setns, required=2),
    _cmd("tty", "SID TERMINAL", "SID pts/N|ttyN|DEV",
         "TIOCSCTTY by session leader SID: the session's controlling terminal (every process of "
         "the session is on it), SID's group in the foreground", _tty),
    _cmd("tcsetpgrp", "PID PGID", "PID PGID",
         "tcsetpgrp() by PID on its terminal: group PGID (of its session) in the foreground "
         "(stat's tpgid, ps's '+')", _tcsetpgrp),
    _cmd("pid_max", "PID N", "PID N", "kernel.pid_max of the pid namespace PID lives in", _pid_max),
    _cmd("ns_last_pid", "PID N", "PID N", "kernel.ns_last_pid of the pid namespace PID lives in",
         _ns_last_pid),
    _cmd("set", "TID", "TID KEY=VALUE ...",
         "set fields, all or none: " + ", ".join(FIELDS) + " ('help set' for values)", _set,
         keys=None),
    _cmd("close", "PID FD", "PID FD", "close() descriptor FD of PID's process (a pidfd from clone)",
         _close),
    _cmd("snapshot", "FILE", "FILE", "write the whole table to FILE (an absolute path) atomically; "
         "'pidfs-fuse mount DIR --restore FILE' rebuilds it", _snapshot),
    _cmd("tick", "DURATION", "DURATION", "move a frozen clock forward (1.5s, 250ms, 100j), applying "
         "the timeline on the way", timed.build_tick),
    _cmd("clock", "", "", "the clock's mode and seconds since boot", timed.build_clock),
    _cmd("on", "OP PATH", "lookup|open|read|readdir PATH | list PID [times=N] do COMMAND ...",
         "arm a trigger: COMMAND runs inside the next N such requests on PATH (list: the next N "
         "root listings about to return PID, which is skipped if COMMAND reaped it); prints its id",
         timed.build_on, keys="times", tail="do"),
    _cmd("triggers", "", "", "list the armed triggers", timed.build_triggers),
    _cmd("cancel", "ID", "ID|all", "disarm a trigger (or all)", timed.build_cancel),
    _cmd("reap", "PID", "PID", "the zombie PID's parent waits for it (waitid WNOHANG)", timed.build_reap),
    _cmd("help", "COMMAND", "[COMMAND]", "list the commands, or explain one", _help, required=0),
    _cmd("ps", "", "", "list the processes of this view: PID PPID PGID SID UID S NLWP COMM", _ps),
    _cmd("show", "TID", "TID", "what the model holds for TID, one 'Key:\\tvalue' per line", _show),
)}
