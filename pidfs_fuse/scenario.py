"""Scenarios: a TOML file describing an initial process table, replayed into a fresh ``Kernel``.

A scenario is not a snapshot: it is a recipe of system calls (clone, execve, setsid, setpgid,
exit, kill, wait) plus ``set`` fields, replayed in file order, so every table it builds is one
the model can reach by itself (tags, reaping, reparenting and pid numbers come out as the kernel
makes them). Errors are ``ScenarioError`` (a ``KernelError``, EINVAL for schema errors, the
model's errno when a replayed call fails) whose message names the file and the entry::

    default.toml: process[3].threads: expected an integer >= 0 or an array of tables, got "x"

Entries are numbered from 0 in file order. Unknown keys are errors.

Schema
------

Top level: ``name`` and ``description`` (strings, metadata), ``[kernel]``, ``[init]``,
``[[process]]`` (any number, in creation order).

``[kernel]``
    ``pid_max`` (int, the root namespace's, default 32768); ``uptime`` (seconds, int or float:
    the model's clock starts this long after boot, so ``start`` values below it lie in the past);
    ``ns_last_pid`` (int: the root namespace's cursor after init, so later pids are numbered
    from it plus one); ``max_tasks`` (int: the table's cap, kernel.threads-max: a clone that
    would pass it fails with EAGAIN; a mount's ``--max-tasks`` below it wins).

``[init]`` (pid 1 of the root namespace)
    ``comm``, ``argv``, ``exe``, ``threads`` and the field keys below.

``[[process]]``
    ``name``      required, unique reference for ``parent``/``pgid`` (not "init")
    ``parent``    name of an *earlier* entry, or "init" (default)
    ``comm``      default: basename of ``argv[0]``, else ``name``; cut to 15 characters
    ``argv``      array of strings (default ``[comm]``); ``exe``: absolute path (default
                  ``argv[0]`` if absolute, else ``/usr/bin/COMM``). The process is cloned from its
                  parent and then exec's, like a real one.
    ``uid``, ``gid``  passed to clone (a uid-0 parent may give any; others only their own)
    ``set_tid``   array of exact pid numbers, innermost namespace first
    ``newpid``    true: the process is init of a new pid namespace (CLONE_NEWPID);
                  ``pid_max_ns``: that namespace's pid_max; ``ns_last_pid_ns``: its cursor
                  (ns_last_pid) once its init exists, so the namespace's next pids are numbered
                  from it plus one (near ``pid_max_ns``: a namespace about to wrap to 300)
    ``pidfd``, ``wait_pid``, ``autoreap``  clone flags (``wait_pid`` implies ``pidfd``; the
                  handle lands in the parent's fd table; ``autoreap`` uses exit_signal 0)
    ``setsid``    true: setsid() after exec
    ``pgid``      name of a process whose group to join (its own name: a group of its own)
    ``subreaper`` true: PR_SET_CHILD_SUBREAPER
    ``daemonize`` true: the classic double fork. The entry's process forks, exits and is reaped;
                  the child calls setsid(), forks the daemon and exits; its reaper reaps it. The
                  name then refers to the daemon, whose session id is a pid that no task holds any
                  more: a tagged thread-group pid with no TGID task (the tagged scan's false
                  positive). Excludes ``newpid``, ``set_tid`` and ``setsid``.
    ``count``     int (default 1): that many identical processes, one after another (each with
                  the entry's threads, fields and ending); the name refers to the first.
                  Excludes ``set_tid``
    ``threads``   an int (that many threads named like the process) or an array of tables with
                  ``comm``, ``count`` (default 1), ``set_tid``, ``start``, ``state``, ``nice``,
                  ``utime``, ``stime``; a thread without ``start`` starts when its process did
    ``start``     seconds since boot (int or float, at most ``uptime``, not before the parent)
    ``exit``      int 0..255: after every entry is created, the process exits with it (a zombie
                  unless its parent ignores SIGCHLD or it autoreaps)
    ``killed``    a signal (name or number) that ends it, sent then; excludes ``exit``
    ``stopped``   a stop signal (STOP, TSTP, TTIN, TTOU), sent then
    ``tty``       a terminal (``pts/N``, ``ttyN``, a device number) for a session leader
                  (with ``setsid``): its session's controlling terminal, every process of the
                  session on it, the leader's group in the foreground
    ``foreground``  true: the process's group becomes its terminal's foreground (tcsetpgrp);
                  ``ps`` shows '+' on that group only
    ``unshare``   array of namespace types (cgroup ipc mnt net time user uts): after exec, the
                  process unshares each (a new namespace each, per copy; ``time`` is its
                  children's); its children inherit them
    ``setns``     table of type = name of an earlier process: after exec (before ``unshare``),
                  the process joins that process's namespace of that type
    field keys    ``state`` (R S D T t I), ``nice``, ``utime``, ``stime``, ``cutime``,
                  ``cstime``, ``rss`` (pages), ``vsize`` (bytes), ``tty_nr`` (ints);
                  ``environ`` (array of "NAME=VALUE"), ``cwd``, ``root`` (paths),
                  ``sigign`` (array of signals; ["CHLD"] makes its children autoreap)

Exits, kills and stops run after all entries are created, in file order, so children of an
exited process are reparented as Linux does.
"""

from __future__ import annotations

import errno
import importlib.resources
import os
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .growth import collector_paused
from .kernel import (
    CLONE_AUTOREAP,
    CLONE_NEWPID,
    CLONE_PIDFD,
    CLONE_THREAD,
    CLONE_WAIT_PID,
    NS_TYPES,
    P_PID,
    PID_MAX_DEFAULT,
    PID_MAX_LIMIT,
    WALL,
    WEXITED,
    ExitState,
    Kernel,
    KernelError,
    Task,
)
from .kernel import signals as S
from .kernel.events import Listener
from .kernel.fields import FIELDS, parse_signal_token, set_fields
from .kernel.sched import CLOCK_MODES
from .kernel.terminals import parse_tty
from .schema import TOML, TOO_DEEP, Schema, SchemaError, open_input

DEFAULT = "default.toml"
#: a scenario file larger than this is refused unread (a recipe; ``count`` makes tables large)
MAX_BYTES = 16 << 20
#: the most tasks a table holds at once: each has its own number in the root namespace
TASKS_MAX = PID_MAX_LIMIT - 1
#: progress(done, total): tasks created so far and expected (a loader of a large table reports)
Progress = Callable[[int, int], None]

_FIELD_KEYS = {"environ": "strs", "cwd": "str", "root": "str", "state": "str", "nice": "int",
               "rss": "int", "vsize": "int", "utime": "int", "stime": "int", "cutime": "int",
               "cstime": "int", "tty_nr": "int", "sigign": "signals", "cpu": "share", "user": "share"}
_TOP_KEYS = {"name", "description", "kernel", "init", "process", "at"}
_KERNEL_KEYS = {"pid_max", "uptime", "ns_last_pid", "clock", "max_tasks"}
_INIT_KEYS = {"comm", "argv", "exe", "threads"} | set(_FIELD_KEYS)
_PROCESS_KEYS = ({"name", "parent", "comm", "argv", "exe", "uid", "gid", "set_tid", "newpid",
                  "pid_max_ns", "ns_last_pid_ns", "pidfd", "wait_pid", "autoreap", "setsid", "pgid",
                  "subreaper", "daemonize", "count", "threads", "start", "exit", "killed", "stopped",
                  "unshare", "setns", "tty", "foreground"}
                 | set(_FIELD_KEYS))
_THREAD_KEYS = {"comm", "count", "set_tid", "start", "state", "nice", "utime", "stime", "cpu", "user"}
_THREAD_FIELD_KEYS = {k: _FIELD_KEYS[k] for k in ("state", "nice", "utime", "stime", "cpu", "user")}
_STOP_SIGNALS = {S.SIGSTOP, S.SIGTSTP, S.SIGTTIN, S.SIGTTOU}


class ScenarioError(SchemaError):
    """A scenario file is malformed, or a call it replays fails. ``str()`` is the message alone:
    ``FILE: ENTRY: reason``."""


@dataclass(slots=True)
class Scenario:
    """A loaded table: the kernel and the names the file gave its processes."""

    kernel: Kernel
    source: str
    name: str = ""
    description: str = ""
    #: entry name -> the process's leader task ("init" included; for ``daemonize`` the daemon)
    tasks: dict[str, Task] = field(default_factory=dict)


def load(path: str | os.PathLike[str], *, listener: Listener | None = None,
         clock: Callable[[], int] | None = None, progress: Progress | None = None,
         max_tasks: int | None = None) -> Scenario:
    """Load the scenario file at ``path`` into a fresh Kernel. ``max_tasks`` (the mount's
    ``--max-tasks``) caps the table as the ``max_tasks`` key does; with both, the smaller wins."""
    source = os.fspath(path)
    try:
        with open_input(path, what="a scenario", max_bytes=MAX_BYTES, error=ScenarioError) as f:
            text = f.read(MAX_BYTES + 1).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(errno.EINVAL, f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ScenarioError:
        raise
    except OSError as e:
        raise ScenarioError(e.errno or errno.EIO, f"{source}: {e.strerror or e}") from None
    if len(text) > MAX_BYTES:  # it grew while being read
        raise ScenarioError(errno.EFBIG, f"{source}: a scenario is at most {MAX_BYTES:,} bytes")
    return _load_text(text, source, listener, clock, progress, lines=True, max_tasks=max_tasks)


def load_default(*, listener: Listener | None = None, clock: Callable[[], int] | None = None,
                 progress: Progress | None = None, max_tasks: int | None = None) -> Scenario:
    """The embedded default table (``pidfs_fuse/scenarios/default.toml``)."""
    text = importlib.resources.files("pidfs_fuse.scenarios").joinpath(DEFAULT).read_text("utf-8")
    return loads(text, source=DEFAULT, listener=listener, clock=clock, progress=progress,
                 max_tasks=max_tasks)


def loads(text: str, *, source: str = "<string>", listener: Listener | None = None,
          clock: Callable[[], int] | None = None, progress: Progress | None = None,
          max_tasks: int | None = None) -> Scenario:
    """Load a scenario from TOML text; ``source`` names it in errors."""
    return _load_text(text, source, listener, clock, progress, lines=False, max_tasks=max_tasks)


def _load_text(text: str, source: str, listener: Listener | None, clock: Callable[[], int] | None,
               progress: Progress | None, *, lines: bool, max_tasks: int | None = None) -> Scenario:
    """``loads``; with ``lines`` (a file) errors also give the line of the entry's header."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(errno.EINVAL, f"{source}: invalid TOML: {e}") from None
    except RecursionError:
        raise ScenarioError(errno.EINVAL, f"{source}: invalid TOML: {TOO_DEEP}") from None
    with collector_paused():
        sc = _Loader(source, progress, lines=_entry_lines(text) if lines else None,
                     max_tasks=max_tasks).run(data, clock)
    sc.kernel.listener = listener
    return sc


def load_data(data: dict[str, Any], *, source: str = "<data>", listener: Listener | None = None,
              clock: Callable[[], int] | None = None, progress: Progress | None = None,
              max_tasks: int | None = None) -> Scenario:
    """Load an already parsed scenario (a dict as ``tomllib`` returns)."""
    with collector_paused():
        sc = _Loader(source, progress, max_tasks=max_tasks).run(data, clock)
    sc.kernel.listener = listener  # attached last: nobody watches a table being built
    return sc


# -- the loader ------------------------------------------------------------------------------

_show = TOML.show


# The types, for annotations inside _Table, whose methods str() and int() shadow them.
_Str: TypeAlias = str
_Int: TypeAlias = int


class _Table:
    """One TOML table being read: the shared typed getters (``schema``) on its keys, raising
    errors that name ``where.key``."""

    def __init__(self, loader: _Loader, data: object, where: str, allowed: set[str]) -> None:
        self.loader, self.where = loader, where
        if not isinstance(data, dict):
            raise loader.error(where, f"expected a table, got {TOML.kind(data)}")
        loader.keys(data, allowed, self.at)
        self.data = data

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, reason: str, err: int = errno.EINVAL) -> SchemaError:
        return self.loader.error(self.at(key), reason, err)

    def expect(self, key: str, what: str) -> SchemaError:
        return self.loader.expect(self.at(key), self.data[key], what)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def str(self, key: _Str, default: _Str | None = None) -> _Str | None:
        v = self.data.get(key, default)
        return None if v is None else self.loader.str_(v, self.at(key))

    def bool(self, key: _Str) -> bool:
        return self.loader.bool_(self.data.get(key, False), self.at(key))

    def int(self, key: _Str, lo: int, hi: int, default: int | None = None) -> int | None:
        v = self.data.get(key, default)
        return None if v is None else self.loader.int_(v, self.at(key), lo, hi)

    def seconds(self, key: _Str) -> _Int | None:
        v = self.data.get(key)
        return None if v is None else self.loader.seconds(v, self.at(key))

    def strs(self, key: _Str) -> list[_Str] | None:
        v = self.data.get(key)
        return None if v is None else self.loader.strs(v, self.at(key))

    def ints(self, key: _Str, lo: _Int, hi: _Int) -> tuple[_Int, ...]:
        return self.loader.ints(self.data.get(key, []), self.at(key), lo, hi)

    def signal(self, key: _Str) -> _Int:
        v = self.data[key]
        try:
            return parse_signal_token(v, what="signal", allow_zero=False)
        except KernelError as e:
            raise self.fail(key, e.strerror) from None


class _Loader(Schema):
    """Replays one scenario into a fresh Kernel; its errors name the file and the entry."""

    error_type = ScenarioError

    def __init__(self, source: str, progress: Progress | None = None,
                 lines: dict[str, int] | None = None, max_tasks: int | None = None) -> None:
        super().__init__(source, TOML)
        #: the mount's cap (``--max-tasks``); the ``max_tasks`` key may lower it
        self.max_tasks = max_tasks
        #: entry ("kernel", "init", "process[3]") -> the line of its table header, for messages
        self.lines = lines or {}
        #: progress(done, total) in tasks cloned; total from ``_count_tasks``
        self.progress = progress
        self.total = 0
        self.kernel: Kernel | None = None
        self.tasks: dict[str, Task] = {}
        #: (where, task, action) run after every entry exists
        self.endings: list[tuple[str, Task, Callable[[], None]]] = []

    def error(self, path: str, reason: str, err: int = errno.EINVAL) -> SchemaError:
        """``FILE: line N: entry.key: reason``, the line being that of the entry's table header
        when the file has one (``[[process]]``); tomllib keeps no positions of values."""
        entry = path.split(".", 1)[0]
        line = self.lines.get(entry)
        if line is None:
            return super().error(path, reason, err)
        return self.error_type(err, f"{self.source}: line {line}: {path}: {reason}")

    def call(self, where: str, what: str, fn: Callable[[], Any]) -> Any:
        """Replay one model call; its KernelError becomes a ScenarioError naming the entry."""
        try:
            return fn()
        except KernelError as e:
            raise self.error(where, f"{what}: {e}", e.errno) from None

    # -- top level ----------------------------------------------------------------------------

    def run(self, data: dict[str, Any], clock: Callable[[], int] | None) -> Scenario:
        top = _Table(self, data, "", _TOP_KEYS)
        name = top.str("name", "") or ""
        description = top.str("description", "") or ""
        kt = _Table(self, data.get("kernel", {}), "kernel", _KERNEL_KEYS)
        it = _Table(self, data.get("init", {}), "init", _INIT_KEYS)
        procs = data.get("process", [])
        if not isinstance(procs, list):
            raise top.expect("process", "an array of tables ([[process]])")

        pid_max = kt.int("pid_max", 0, 2**63, PID_MAX_DEFAULT)
        cap, cap_by = self.max_tasks, "this mount's --max-tasks"
        key_cap = kt.int("max_tasks", 1, TASKS_MAX)
        if key_cap is not None and (cap is None or key_cap < cap):
            cap, cap_by = key_cap, "its [kernel] max_tasks"
        uptime = kt.seconds("uptime") or 0
        kclock = None
        if clock is not None:
            base = clock
            kclock = (lambda: base() + uptime) if uptime else base
        comm = it.str("comm", "init") or ""
        k = self.call("kernel.pid_max" if "pid_max" in kt else "init.comm", "boot",
                      lambda: Kernel(clock=kclock, pid_max=pid_max, init_comm=comm,  # type: ignore[arg-type]
                                     start=uptime, max_threads=cap))
        self.kernel = k
        mode = kt.str("clock")
        if mode is not None and mode not in CLOCK_MODES:
            raise kt.expect("clock", "'frozen' or 'real'")
        k.sched.default_mode = mode
        self._timeline(data.get("at", []), uptime)
        self.tasks["init"] = k.init
        if "ns_last_pid" in kt:
            n = kt.int("ns_last_pid", 0, PID_MAX_LIMIT)
            self.call(kt.at("ns_last_pid"), "ns_last_pid",
                      lambda: k.set_last_pid(k.root_ns, n))
        self.total = _count_tasks(data)
        alive = _count_tasks(data, transient=False)
        if alive > TASKS_MAX:
            raise self.error("", f"makes {alive:,} tasks; a table holds at most {TASKS_MAX:,} (one "
                             "number each in the root namespace)", errno.EAGAIN)
        if cap is not None and alive > cap:
            raise self.error("", f"makes {alive:,} tasks, more than {cap_by} allows "
                             f"({cap:,}); nothing was built", errno.EAGAIN)
        self._init(it)
        for i, entry in enumerate(procs):
            self._process(i, entry)
            self._tick(force=True)
        for _where, _task, action in self.endings:
            action()
        if self.progress is not None:
            self.progress(self.total, self.total)
        return Scenario(k, self.source, name, description, self.tasks)

    def _timeline(self, ats: object, uptime: int) -> None:
        """``[[at]]`` blocks: ``time`` (seconds since boot, after ``uptime``) and ``do`` (control
        command lines), kept in time order (blocks of one time in file order) for timed.py."""
        k = self.kernel
        assert k is not None
        if not isinstance(ats, list):
            raise _Table(self, {}, "", set()).expect("at", "an array of tables ([[at]])")
        events: list[tuple[int, tuple[str, ...]]] = []
        for i, entry in enumerate(ats):
            t = _Table(self, entry if isinstance(entry, dict) else {}, f"at[{i}]", {"time", "do"})
            if not isinstance(entry, dict):
                raise self.error(f"at[{i}]", "expected a table with time and do")
            when = t.seconds("time")
            if when is None:
                raise t.expect("time", "seconds since boot (5, 2.5)")
            if when < uptime:
                raise self.error(t.at("time"), f"time {when / 1e9:g}s is before the table's "
                                 f"uptime {uptime / 1e9:g}s")
            lines = entry.get("do")
            if isinstance(lines, str):
                lines = [lines]
            if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
                raise t.expect("do", "a control command line or an array of them")
            events.append((when, tuple(lines)))
        events.sort(key=lambda e: e[0])
        k.timeline.extend(events)

    def _tick(self, force: bool = False) -> None:
        """Report progress every 4096 clones (and when ``force``d)."""
        k = self.kernel
        if self.progress is not None and k is not None and (force or k.total_forks % 4096 == 0):
            self.progress(min(k.total_forks + 1, self.total), self.total)

    def _init(self, t: _Table) -> None:
        k = self.kernel
        assert k is not None
        init = k.init
        argv, exe = t.strs("argv"), t.str("exe")
        if argv is not None or exe is not None:
            comm = t.str("comm") or init.comm
            self.call("init", "execve", lambda: k.execve(init, comm, argv, exe=exe))
        self._fields(t, init)
        self._threads(t, init)

    # -- one [[process]] ------------------------------------------------------------------------

    def _process(self, i: int, entry: object) -> None:
        k = self.kernel
        assert k is not None
        where = f"process[{i}]"
        t = _Table(self, entry, where, _PROCESS_KEYS)
        if "name" not in t:
            raise self.error(where, "missing key 'name'")
        name = t.str("name") or ""
        if not name or name == "init" or name in self.tasks:
            raise t.fail("name", f"{_show(name)} is empty, 'init', or already used by an earlier entry")
        who = f"{where} ({name})"
        pname = t.str("parent", "init")
        if pname not in self.tasks:
            raise t.fail("parent", f"no earlier process named {_show(pname)}")
        parent = self.tasks[pname]

        argv = t.strs("argv")
        comm = t.str("comm") or (os.path.basename(argv[0]) if argv and argv[0] else name)
        exe = t.str("exe") or (argv[0] if argv and argv[0].startswith("/") else f"/usr/bin/{comm}")
        uid = t.int("uid", 0, 2**32 - 2)
        gid = t.int("gid", 0, 2**32 - 2)
        set_tid = t.ints("set_tid", 1, PID_MAX_LIMIT) if "set_tid" in t else ()
        newpid, pidfd, wait_pid, autoreap = (t.bool(x) for x in ("newpid", "pidfd", "wait_pid", "autoreap"))
        daemonize, setsid = t.bool("daemonize"), t.bool("setsid")
        for key in ("pid_max_ns", "ns_last_pid_ns"):
            if key in t and not newpid:
                raise t.fail(key, "needs newpid = true")
        if daemonize:
            for other in ("newpid", "set_tid", "setsid"):
                if other in t and t.data[other] not in (False,):
                    raise t.fail("daemonize", f"cannot be combined with {other}")
        ends = [x for x in ("exit", "killed", "stopped") if x in t]
        if len(ends) > 1:
            raise t.fail(ends[1], f"cannot be combined with {ends[0]}")
        flags = ((CLONE_NEWPID if newpid else 0) | (CLONE_PIDFD if pidfd or wait_pid else 0)
                 | (CLONE_WAIT_PID if wait_pid else 0) | (CLONE_AUTOREAP if autoreap else 0))

        count = t.int("count", 1, PID_MAX_LIMIT, 1) or 1
        if count > 1 and "set_tid" in t:
            raise t.fail("count", "cannot be combined with set_tid (one number per level names one process)")
        for copy in range(count):
            if count > 1:
                who = f"{where} ({name}, copy {copy + 1} of {count})"
            task = self.call(who, "clone", lambda: k.clone(
                parent, flags, exit_signal=0 if autoreap else S.SIGCHLD, set_tid=set_tid,
                comm=comm, argv=argv, uid=uid, gid=gid).task)
            if newpid and "pid_max_ns" in t:
                v = t.int("pid_max_ns", 0, 2**63)
                self.call(t.at("pid_max_ns"), "pid_max", lambda: k.set_pid_max(task.active_ns, v))  # type: ignore[arg-type]
            if newpid and "ns_last_pid_ns" in t:
                n = t.int("ns_last_pid_ns", 0, PID_MAX_LIMIT)
                self.call(t.at("ns_last_pid_ns"), "ns_last_pid",
                          lambda: k.set_last_pid(task.active_ns, n))  # type: ignore[arg-type]
            self.call(who, "execve", lambda: k.execve(task, comm, argv, exe=exe))
            self._namespaces(t, task)
            if daemonize:
                task = self._daemonize(who, parent, task)
            if copy == 0:
                self.tasks[name] = task
            if setsid:
                self.call(t.at("setsid"), "setsid", lambda: k.setsid(task))
            if "pgid" in t:
                gname = t.str("pgid")
                if gname != name and gname not in self.tasks:
                    raise t.fail("pgid", f"no earlier process named {_show(gname)}")
                nr = 0 if gname == name else self.tasks[gname].group.leader.pid.nr_in(task.pid.ns)
                if gname != name and nr == 0:
                    raise t.fail("pgid", f"{_show(gname)} is not visible from {name}'s pid namespace", errno.EPERM)
                self.call(t.at("pgid"), "setpgid", lambda: k.setpgid(task, 0, nr))
            if "tty" in t:
                dev = self.call(t.at("tty"), "tty", lambda: parse_tty(str(t.str("tty"))))
                self.call(t.at("tty"), "tty", lambda: k.set_ctty(task, dev))
            if t.bool("foreground"):
                self.call(t.at("foreground"), "tcsetpgrp", lambda: k.tcsetpgrp(
                    task, task.group.pgrp.nr_in(task.pid.ns) if task.group.pgrp else 0))
            self._fields(t, task)
            self._threads(t, task)
            if t.bool("subreaper"):
                k.set_child_subreaper(task, True)
            self._endings(t, who, task)

    def _namespaces(self, t: _Table, task: Task) -> None:
        """``setns`` (joins, in NS_TYPES order) then ``unshare`` (in the array's order): the
        process's non-pid namespaces, before its threads exist (a user namespace needs a
        single-threaded process)."""
        k = self.kernel
        assert k is not None
        if "setns" in t:
            joins = t.data["setns"]
            if not isinstance(joins, dict):
                raise t.expect("setns", "a table of namespace type = process name")
            for kind in sorted(joins, key=lambda x: NS_TYPES.index(x) if x in NS_TYPES else -1):
                other = joins[kind]
                at = f"{t.at('setns')}.{kind}"
                if kind not in NS_TYPES:
                    raise self.error(at, f"not a namespace type; expected one of {', '.join(NS_TYPES)}")
                if not isinstance(other, str) or other not in self.tasks:
                    raise self.error(at, f"no earlier process named {_show(other)}")
                joined = self.tasks[other]
                self.call(at, "setns", lambda: k.setns_ns(task, kind, joined))
        for j, kind in enumerate(t.strs("unshare") or ()):
            at = f"{t.at('unshare')}[{j}]"
            if kind not in NS_TYPES:
                raise self.error(at, f"{_show(kind)} is not a namespace type; expected one of "
                                 f"{', '.join(NS_TYPES)} (a pid namespace: newpid = true)")
            self.call(at, "unshare", lambda: k.unshare_ns(task, kind))

    def _daemonize(self, who: str, parent: Task, p: Task) -> Task:
        """fork; the parent exits and is reaped; the child setsid()s, forks the daemon, exits."""
        k = self.kernel
        assert k is not None
        c = self.call(who, "daemonize: fork", lambda: k.clone(p).task)
        self.call(who, "daemonize: exit", lambda: k.exit_group(p, 0))
        self._reap(who, p)
        self.call(who, "daemonize: setsid", lambda: k.setsid(c))
        d = self.call(who, "daemonize: fork", lambda: k.clone(c).task)
        self.call(who, "daemonize: exit", lambda: k.exit_group(c, 0))
        self._reap(who, c)
        return d

    def _reap(self, who: str, child: Task) -> None:
        """Reap ``child`` as its parent would (unless it autoreaped already)."""
        k = self.kernel
        assert k is not None
        waiter = child.group.parent
        if child.exit_state is not ExitState.ZOMBIE or waiter is None:
            return
        nr = child.pid.nr_in(waiter.pid.ns)
        self.call(who, "daemonize: wait", lambda: k.waitid(waiter, P_PID, nr, WEXITED | WALL))

    def _fields(self, t: _Table, task: Task, keys: dict[str, str] = _FIELD_KEYS) -> None:
        """Set the entry's field keys (typed as the schema says, checked by ``fields``), then its
        start time, each through ``set_fields``."""
        k = self.kernel
        assert k is not None
        data = t.data  # (a dict: ``key in t`` is a call per field key)
        pairs = [(key, _field_value(t, key, kind)) for key, kind in keys.items() if key in data]
        if pairs:
            self.call(t.where, "set", lambda: set_fields(k, task, pairs))
        start = t.seconds("start")
        if start is not None:
            self.call(t.at("start"), "set start", lambda: set_fields(k, task, [("start_time", start)]))

    def _threads(self, t: _Table, task: Task) -> None:
        k = self.kernel
        assert k is not None
        if "threads" not in t:
            return
        spec = t.data["threads"]
        if isinstance(spec, int) and not isinstance(spec, bool):
            if not 0 <= spec <= PID_MAX_LIMIT:
                raise t.expect("threads", "an integer >= 0 or an array of tables")
            done = 0
            where = t.at("threads")
            while done < spec:  # in bulk (Kernel.clone_many), up to the next progress report
                n = min(spec - done, 4096 - k.total_forks % 4096)
                made: list[Task] = []
                self.call(where, "clone thread",
                          lambda n=n, made=made: k.clone_many(task, n, CLONE_THREAD, made=made))  # type: ignore[misc]
                start = task.start_time
                for th in made:
                    if th.start_time != start:  # (_started_with's test, inline)
                        self._started_with(where, th, task)
                done += n
                self._tick()
            return
        if not isinstance(spec, list):
            raise t.expect("threads", "an integer >= 0 or an array of tables")
        for j, item in enumerate(spec):
            tt = _Table(self, item, f"{t.at('threads')}[{j}]", _THREAD_KEYS)
            count = tt.int("count", 0, PID_MAX_LIMIT, 1)
            comm = tt.str("comm")
            set_tid = tt.ints("set_tid", 1, PID_MAX_LIMIT) if "set_tid" in tt else ()
            if set_tid and count != 1:
                raise tt.fail("set_tid", "names one thread; it cannot be combined with count")
            for _ in range(count or 0):
                th = self.call(tt.where, "clone thread", lambda: k.clone(
                    task, CLONE_THREAD, set_tid=set_tid, comm=comm).task)
                self._fields(tt, th, _THREAD_FIELD_KEYS)
                if "start" not in tt:
                    self._started_with(tt.where, th, task)
                self._tick()

    def _started_with(self, where: str, th: Task, task: Task) -> None:
        """A thread without ``start`` started with its process (not at load time)."""
        k = self.kernel
        assert k is not None
        if th.start_time != task.start_time:
            self.call(where, "set start", lambda: set_fields(k, th, [("start_time", task.start_time)]))

    def _endings(self, t: _Table, who: str, task: Task) -> None:
        k = self.kernel
        assert k is not None
        if "exit" in t:
            code = t.int("exit", 0, 255)
            self.endings.append((who, task, lambda: self.call(
                t.at("exit"), "exit_group", lambda: k.exit_group(task, code))))  # type: ignore[arg-type]
        if "killed" in t:
            sig = t.signal("killed")

            def kill() -> None:
                self.call(t.at("killed"), "kill", lambda: k.kill(task, sig))
                if task.group.live and not task.group.group_exit:
                    raise t.fail("killed", f"{S.signame(sig)} did not end the process "
                                 "(ignored, stopping, or a namespace init)")
            self.endings.append((who, task, kill))
        if "stopped" in t:
            sig = t.signal("stopped")
            if sig not in _STOP_SIGNALS:
                raise t.fail("stopped", f"{S.signame(sig)} is not a stop signal (STOP, TSTP, TTIN, TTOU)")
            self.endings.append((who, task, lambda: self.call(
                t.at("stopped"), "kill", lambda: k.kill(task, sig))))


def _field_value(t: _Table, key: str, kind: str) -> object:
    """The value of field ``key``, of the TOML type the schema gives it and accepted by the
    field's own parser (which alone would also take text for numbers)."""
    v = t.data[key]
    if kind == "int":  # (only the check of this kind: the others cost as much again)
        ok, what = isinstance(v, int) and not isinstance(v, bool), "an integer"
    elif kind == "str":
        ok, what = isinstance(v, str), "a string"
    elif kind == "strs":
        ok, what = isinstance(v, list) and all(isinstance(s, str) for s in v), "an array of strings"
    elif kind == "share":
        ok, what = (isinstance(v, (str, int, float)) and not isinstance(v, bool),
                    "a share of one cpu ('75%' or 0.75)")
    elif kind == "signals":
        ok, what = (isinstance(v, list) and all(isinstance(s, (str, int)) and not isinstance(s, bool)
                                                for s in v), "an array of signal names or numbers")
    else:
        raise KeyError(kind)
    if not ok:
        raise t.expect(key, what)
    try:
        FIELDS[key].parse(v)
    except KernelError as e:
        raise t.fail(key, e.strerror) from None
    return v


def _count_tasks(data: object, transient: bool = True) -> int:
    """How many tasks loading ``data`` creates (init, each process, its threads, and with
    ``transient`` the two short-lived processes of a daemonize), for progress and the size
    check: malformed parts count as 0 (the loader reports them)."""
    def threads(t: object) -> int:
        spec = t.get("threads", 0) if isinstance(t, dict) else 0
        if isinstance(spec, list):
            return sum(max(x.get("count", 1), 0) if isinstance(x, dict) and type(x.get("count", 1)) is int
                       else 0 for x in spec)
        return max(spec, 0) if type(spec) is int else 0

    def copies(p: object) -> int:  # a process entry's ``count``
        n = p.get("count", 1) if isinstance(p, dict) else 1
        return n if type(n) is int and n > 0 else 1

    procs = data.get("process", []) if isinstance(data, dict) else []
    procs = procs if isinstance(procs, list) else []
    return 1 + threads(data.get("init") if isinstance(data, dict) else None) + sum(
        copies(p) * (1 + threads(p) + (2 if transient and isinstance(p, dict) and p.get("daemonize") is True
                                       else 0))
        for p in procs)


def _monotonic_since_now() -> Callable[[], int]:
    t0 = time.monotonic_ns()
    return lambda: time.monotonic_ns() - t0


_HEADER = re.compile(r"^[ \t]*(\[\[?)[ \t]*([A-Za-z0-9_.\- \t\"']+?)[ \t]*\]\]?[ \t]*(?:#.*)?$", re.M)


def _entry_lines(text: str) -> dict[str, int]:
    """Where the top-level tables start: ``{"kernel": 3, "init": 7, "process[0]": 12, ...}``
    (1-based lines of ``[kernel]``, ``[init]`` and each ``[[process]]`` header). Entries written
    another way (inline tables) are left out, and their errors name no line."""
    found: dict[str, int] = {}
    nproc = 0
    pos, line = 0, 1
    for m in _HEADER.finditer(text):
        name = re.sub(r"[ \t\"']", "", m[2])
        line += text.count("\n", pos, m.start())  # counted once over the whole text
        pos = m.start()
        if m[1] == "[[" and name == "process":
            found[f"process[{nproc}]"] = line
            nproc += 1
        elif m[1] == "[" and name in ("kernel", "init"):
            found.setdefault(name, line)
    return found
