"""The settable fields of a task: what the control plane's ``set TID KEY=VALUE ...`` writes.

A real kernel changes these by running code (the scheduler picks a state letter, the task burns
CPU time, mmap grows the address space, setuid changes creds). The model runs no code, so a test
or a scenario sets them directly. Each key is one row of ``FIELDS``: a parser that validates the
value and turns it into what the model stores, an optional check against the task (start time
ordering), and an apply function. ``set_fields`` parses and checks every pair before applying any,
so a command either changes all the keys it names or none, then emits one CHANGED event.

Scope follows Linux: ``state``, ``comm``, ``nice``, ``utime``, ``stime`` and ``start_time`` are
per thread (``task_struct``); the rest live in ``signal_struct``/``mm``/``cred``/``fs`` and are
shared by every thread of the process, so setting them through any thread id changes the process.

Values come either as text (the ``set`` command: numbers in decimal, ``argv``/``environ`` as
shell-quoted words, ``sigign`` as a comma list of signals) or already typed (a scenario file:
ints, lists of strings). Every error is ``KernelError(EINVAL)`` naming the key and the value,
except ESRCH for a task that has already been released.

Deliberately not settable: ``Z``/``X`` states (use ``exit``/``kill``), anything about pids,
parents, groups or sessions (those have system calls of their own).
"""

from __future__ import annotations

import errno
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import signals as S
from .checks import ID_MAX as ID_MAX  # re-exported: the control plane's clone checks ids with it
from .checks import U32_MAX
from .errors import KernelError
from .sched import parse_share
from .task import TASK_COMM_LEN, ExitState, Task, comm_cut

if TYPE_CHECKING:
    from .core import Kernel

#: Run-state letters ``set`` accepts (fs/proc/array.c task_state_array, without Z and X, which
#: only exit produces, and P, which only kthreads have).
SETTABLE_STATES = "RSDTtI"
U64_MAX = 2**64 - 1
S64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"-?[0-9]+")


def _short(value: object, limit: int = 48) -> str:
    """repr() cut to a readable length (fuzzed values can be megabytes)."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 4] + "...'"


def parse_decimal(value: object, lo: int, hi: int, what: str) -> int:
    """An integer in ``lo..hi`` given as an int or as ASCII decimal text (an optional minus and
    digits; no '+', spaces, underscores or non-ASCII digits, which ``int()`` accepts). Raises
    EINVAL naming ``what`` and the value: "not a decimal number", or, for a number of more
    than 20 digits (beyond any bound), "out of range"."""
    if isinstance(value, bool):
        raise KernelError(errno.EINVAL, f"{what} {_short(value)} is not a number")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        if len(value.lstrip("-").lstrip("0")) > 20:  # and int() of a huge text is slow
            raise KernelError(errno.EINVAL, f"{what} {_short(value)} is out of range "
                                            f"(outside {lo}..{hi})")
        n = int(value)
    else:
        raise KernelError(errno.EINVAL, f"{what} {_short(value)} is not a decimal number")
    if not lo <= n <= hi:
        raise KernelError(errno.EINVAL, f"{what} {_short(value)} is outside {lo}..{hi}")
    return n


def parse_words(value: object, what: str) -> tuple[str, ...]:
    """Shell-quoted text split as ``shlex.split`` does, or a list of strings. NUL is refused
    (procfs separates the words with NUL)."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as e:
            raise KernelError(errno.EINVAL, f"{what} {_short(value)}: {e}") from None
    elif isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value):
        words = list(value)
    else:
        raise KernelError(errno.EINVAL, f"{what} {_short(value)} is neither text nor a list of strings")
    for w in words:
        if "\0" in w:
            raise KernelError(errno.EINVAL, f"{what} word {_short(w)} contains NUL")
    return tuple(words)


def parse_comm(value: object, what: str = "comm") -> str:
    """A task name: non-empty text without newline or NUL, cut as the kernel cuts it
    (``task.comm_cut``)."""
    if not isinstance(value, str) or not value or "\n" in value or "\0" in value:
        raise KernelError(errno.EINVAL, f"{what} {_short(value)} must be a non-empty line of text "
                          "without NUL")
    return comm_cut(value)


def parse_path(value: object, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or "\0" in value or not (
            value.startswith("/") or (allow_empty and value == "")):
        extra = " (or empty)" if allow_empty else ""
        raise KernelError(errno.EINVAL, f"{what} {_short(value)} is not an absolute path{extra}")
    return value


def parse_sigset(value: object, what: str = "sigign") -> int:
    """Signals as a comma list (``CHLD,PIPE``, ``17``, ``SIGHUP``) or a list; '' is the empty
    set. KILL and STOP cannot be ignored (sig_kernel_only); 0 is not a signal."""
    if isinstance(value, str):
        items: list[object] = [s.strip() for s in value.split(",")] if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise KernelError(errno.EINVAL, f"{what} {_short(value)} is neither a comma list nor a list")
    mask = 0
    for item in items:
        sig = parse_signal_token(item, what=f"{what} signal", allow_zero=False)
        if S.sig_kernel_only(sig):
            raise KernelError(errno.EINVAL, f"{what}: {S.signame(sig)} cannot be ignored")
        mask |= 1 << sig
    return mask


def parse_signal_token(value: object, *, what: str = "signal", allow_zero: bool = True) -> int:
    """A signal as a number or a name (``9``, ``KILL``, ``SIGKILL``, ``rtmin+2``), checked here
    for numbers and by ``signals.parse_signal`` for names; every error names ``what``. (The
    ASCII gate matters: ``parse_signal`` trusts ``str.isdigit``, which accepts ``'²'``.)"""
    lo = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise KernelError(errno.EINVAL, f"{what} {_short(value)} is not a signal name or number")
    if isinstance(value, int) or _DECIMAL.fullmatch(value):
        n = int(value)
        if not lo <= n <= S.SIGRTMAX:
            raise KernelError(errno.EINVAL, f"{what} {_short(value)} is outside {lo}..{S.SIGRTMAX}")
        return n
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9+-]{0,19}", value):
        try:
            return S.parse_signal(value, allow_zero=allow_zero)
        except KernelError:
            pass
    raise KernelError(errno.EINVAL, f"unknown {what} {_short(value)}")


def _environ(value: object) -> tuple[str, ...]:
    words = parse_words(value, "environ")
    for w in words:
        if "=" not in w or w.startswith("="):
            raise KernelError(errno.EINVAL, f"environ word {_short(w)} is not NAME=VALUE")
    return words


def _state(value: object) -> str:
    if not isinstance(value, str) or len(value) != 1 or value not in SETTABLE_STATES:
        raise KernelError(errno.EINVAL, f"state {_short(value)} is not one of "
                          f"{' '.join(SETTABLE_STATES)} (Z and X come from exit, not set)")
    return value


def _check_state(kernel: Kernel, task: Task, value: str) -> None:
    if task.exit_state is not ExitState.RUNNING:
        raise KernelError(errno.EINVAL, f"task {task.pid.nr} has exited; its state stays Z")


def _check_start(kernel: Kernel, task: Task, value: int) -> None:
    """A start time keeps clients sane: not in the future, not before the task it was forked
    from (its parent, or for a thread its leader), not after its own threads and children."""
    now = kernel.clock()
    if value > now:
        raise KernelError(errno.EINVAL, f"start_time {value} is in the future (now {now})")
    g = task.group
    if task.is_leader:
        lo = g.parent.start_time if g.parent is not None else 0
        lo_what = "its parent's"
    else:
        lo, lo_what = g.leader.start_time, "its leader's"
    if value < lo:
        raise KernelError(errno.EINVAL, f"start_time {value} is before {lo_what} ({lo})")
    later = [t.start_time for t in g.threads if t is not task] if task.is_leader else []
    later += [c.start_time for c in task.children or ()]
    if later and value > min(later):
        raise KernelError(errno.EINVAL, f"start_time {value} is after that of a thread or child "
                          f"({min(later)})")


@dataclass(frozen=True, slots=True)
class Field:
    """One settable key: ``parse`` validates a raw value (text or typed) and returns what the
    model stores; ``check`` (optional) validates it against the task; ``apply`` stores it."""

    key: str
    scope: str  # "thread" or "process"
    syntax: str  # what the value looks like, for help text
    parse: Callable[[object], Any]
    apply: Callable[[Task, Any], None]
    check: Callable[[Kernel, Task, Any], None] | None = None
    #: for values the kernel keeps outside the task (sched.py's cpu shares); replaces ``apply``
    apply_kernel: Callable[[Kernel, Task, Any], None] | None = None


def _thread(attr: str) -> Callable[[Task, Any], None]:
    def apply(task: Task, value: Any) -> None:
        setattr(task, attr, value)
    return apply


def _process(attr: str) -> Callable[[Task, Any], None]:
    def apply(task: Task, value: Any) -> None:
        setattr(task.group, attr, value)
    return apply


def _in_extra(key: str) -> Callable[[Task, Any], None]:
    """A process field without a slot of its own: kept as text in ``ThreadGroup.extra`` (where
    procfs reads it and snapshots keep it)."""
    def apply(task: Task, value: Any) -> None:
        task.group.extra = {**(task.group.extra or {}), key: str(value)}
    return apply


_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")


def _wchan(value: object) -> str:
    """A kernel function name (what ``/<pid>/wchan`` shows while the task sleeps)."""
    if not isinstance(value, str) or not _SYMBOL.fullmatch(value):
        raise KernelError(errno.EINVAL, f"wchan {_short(value)} is not a kernel function name "
                          "(letters, digits, '_' and '.', at most 64)")
    return value


def _share(key: str) -> Callable[[object], int]:
    def parse(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise KernelError(errno.EINVAL, f"{key} {_short(v)} is not a share (75%, 0.75)")
        return parse_share(str(v), key)
    return parse


def _no_apply(task: Task, value: Any) -> None:
    pass


def _int(key: str, lo: int, hi: int) -> Callable[[object], int]:
    return lambda v: parse_decimal(v, lo, hi, key)


_ROWS = (
    Field("state", "thread", "one of R S D T t I", _state, _thread("state"), _check_state),
    Field("comm", "thread", f"text, cut to {TASK_COMM_LEN - 1} bytes", parse_comm, _thread("comm")),
    Field("nice", "thread", "-20..19", _int("nice", -20, 19), _thread("nice")),
    Field("utime", "thread", "clock ticks >= 0", _int("utime", 0, U64_MAX), _thread("utime")),
    Field("stime", "thread", "clock ticks >= 0", _int("stime", 0, U64_MAX), _thread("stime")),
    Field("start_time", "thread", "ns since boot, parent's <= it <= now",
          _int("start_time", 0, S64_MAX), _thread("start_time"), _check_start),
    Field("cpu", "thread", "share of one cpu while in R: 75%, 0.75 (default 100%)", _share("cpu"),
          _no_apply, apply_kernel=lambda k, t, v: k.sched.set_share(t, cpu=v)),
    Field("user", "thread", "part of its cpu time spent in user mode: 0.8, 80% (default 1)",
          _share("user"), _no_apply, apply_kernel=lambda k, t, v: k.sched.set_share(t, user=v)),
    Field("uid", "process", f"0..{ID_MAX}", _int("uid", 0, ID_MAX), _process("uid")),
    Field("gid", "process", f"0..{ID_MAX}", _int("gid", 0, ID_MAX), _process("gid")),
    Field("rss", "process", "pages >= 0", _int("rss", 0, U64_MAX), _process("rss")),
    Field("vsize", "process", "bytes >= 0", _int("vsize", 0, U64_MAX), _process("vsize")),
    Field("argv", "process", "shell-quoted words", lambda v: parse_words(v, "argv"), _process("argv")),
    Field("environ", "process", "shell-quoted NAME=VALUE words", _environ, _process("environ")),
    Field("cwd", "process", "absolute path", lambda v: parse_path(v, "cwd"), _process("cwd")),
    Field("root", "process", "absolute path", lambda v: parse_path(v, "root"), _process("root")),
    Field("exe", "process", "absolute path, or empty for none",
          lambda v: parse_path(v, "exe", allow_empty=True), _process("exe")),
    Field("sigign", "process", "comma list of signals ('' for none; not KILL/STOP)",
          parse_sigset, _process("sigign")),
    Field("cutime", "process", "clock ticks >= 0", _int("cutime", 0, U64_MAX), _process("cutime")),
    Field("cstime", "process", "clock ticks >= 0", _int("cstime", 0, U64_MAX), _process("cstime")),
    Field("tty_nr", "process", f"device number 0..{U32_MAX}", _int("tty_nr", 0, U32_MAX),
          _process("tty_nr")),
    Field("wchan", "process", "kernel function name shown while sleeping", _wchan,
          _in_extra("wchan")),
    Field("oom_score_adj", "process", "-1000..1000", _int("oom_score_adj", -1000, 1000),
          _in_extra("oom_score_adj")),
)

#: key -> Field, in the order ``help`` lists them.
FIELDS: dict[str, Field] = {f.key: f for f in _ROWS}


def set_fields(kernel: Kernel, task: Task, pairs: Iterable[tuple[str, object]]) -> None:
    """Set every ``(key, value)`` on ``task`` or none of them, then notify once.

    EINVAL: an unknown or repeated key, a value its row rejects, or no pair at all; ESRCH: the
    task has been released (a zombie's fields can still be set; its state cannot).
    """
    parsed: list[tuple[Field, Any]] = []
    seen: set[str] = set()
    for key, raw in pairs:
        f = FIELDS.get(key) if isinstance(key, str) else None
        if f is None:
            raise KernelError(errno.EINVAL, f"unknown field {_short(key)}; valid fields: "
                              + ", ".join(FIELDS))
        if key in seen:
            raise KernelError(errno.EINVAL, f"field {key!r} is given twice")
        seen.add(key)
        parsed.append((f, f.parse(raw)))
    if not parsed:
        raise KernelError(errno.EINVAL, "no field to set")
    if task.exit_state is ExitState.DEAD:
        raise KernelError(errno.ESRCH, f"task {task.pid.nr} has been released")
    for f, value in parsed:
        if f.check is not None:
            f.check(kernel, task, value)
    kernel.clock()  # a real clock charges the time up to now to the old state
    # -- nothing below can fail ---------------------------------------------------------------
    for f, value in parsed:
        if f.apply_kernel is not None:
            f.apply_kernel(kernel, task, value)
        else:
            f.apply(task, value)
    kernel.notify_changed(task)
    if not task.is_leader and any(f.scope == "process" for f, _ in parsed):
        kernel.notify_changed(task.group.leader)


def set_field(kernel: Kernel, task: Task, key: str, value: object) -> None:
    """Set one field (see ``set_fields``)."""
    set_fields(kernel, task, ((key, value),))
