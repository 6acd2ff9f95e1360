"""Time and races for the control plane: ``tick``, timelines and injected triggers.

``tick DURATION`` moves a frozen clock (kernel/sched.py) forward; on the way it stops at each
timeline event (a scenario's ``[[at]]`` blocks, kept in ``Kernel.timeline`` as (ns, command
lines)) whose time it reaches, applies the event's commands in order, and goes on. In real mode
the mount calls ``run_due`` as time passes.

A trigger runs one control command inside a file-system request, before the request is answered
(``on open 42/status do exit_group 42 0``). Grammar::

    on lookup|open|read|readdir PATH [times=N] do COMMAND ...
    triggers                 list the armed triggers: ID OP PATH times=LEFT fired=N do COMMAND
    cancel ID|all            disarm

``PATH`` is relative to the mount's root, with pids in the view's namespace: ``42``, ``42/status``,
``42/task``, ``42/task/43/stat``, ``/`` (the root; ``on readdir /`` fires on the next root
listing). ``lookup`` matches the lookup of that name in its directory, ``open`` an open of that
file or directory, ``read`` a read of an open file, ``readdir`` the start of a listing. ``times``
defaults to 1 (one-shot). Each firing runs COMMAND as if written to ``.control``; a command that
fails is logged and counted (``errors=N``) and the request goes on. Triggers live in
``Kernel.triggers`` ((op, path) -> list), so the mount's check is one dict lookup, and only when a
trigger is armed at all; snapshots save them.
"""

from __future__ import annotations

import errno
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .kernel import ExitState, KernelError
from .kernel.exit import P_PID, WEXITED, WNOHANG
from .kernel.sched import Sched, parse_duration

if TYPE_CHECKING:
    from .control import Args, Control
    from .kernel import Kernel, Task

log = logging.getLogger(__name__)

OPS = ("lookup", "open", "read", "readdir")
TIMES_MAX = 1_000_000


@dataclass(slots=True, eq=False)
class Trigger:
    """One armed trigger: ``times`` firings left, ``fired`` so far, ``errors`` among them."""

    id: int
    op: str
    path: str
    command: str
    times: int = 1
    fired: int = 0
    errors: int = 0

    def line(self) -> str:
        return (f"{self.id} {self.op} {self.path or '/'} times={self.times} fired={self.fired} "
                f"errors={self.errors} do {self.command}")


def norm_path(path: str) -> str:
    """``/42/status/`` -> ``42/status``; the root is ``""``."""
    return "/".join(p for p in path.split("/") if p and p != ".")


def arm(kernel: Kernel, op: str, path: str, command: str, times: int = 1) -> Trigger:
    """Arm a trigger (no syntax check of ``command``: ``on`` does that first)."""
    if op not in OPS:
        raise KernelError(errno.EINVAL, f"on: unknown request {op!r}; one of {', '.join(OPS)}")
    kernel.trigger_seq += 1
    t = Trigger(kernel.trigger_seq, op, norm_path(path), command, times)
    kernel.triggers.setdefault((t.op, t.path), []).append(t)
    return t


def all_triggers(kernel: Kernel) -> list[Trigger]:
    return sorted((t for ts in kernel.triggers.values() for t in ts), key=lambda t: t.id)


def fire(control: Control, op: str, path: str) -> bool:
    """Run the triggers armed on (``op``, ``path``), if any; True when one fired. The caller
    checks ``kernel.triggers`` is not empty first."""
    kernel = control.kernel
    ts = kernel.triggers.get((op, path))
    if not ts:
        return False
    for t in list(ts):
        t.times -= 1
        t.fired += 1
        if t.times <= 0:
            ts.remove(t)
            if not ts:
                del kernel.triggers[(op, path)]
        try:
            control.execute(t.command)
        except Exception as e:  # a command's failure must not fail the request it rode on
            t.errors += 1
            log.warning("trigger %d (%s %s) command %r failed: %s", t.id, op, path or "/",
                        t.command, e)
    return True


def tick(control: Control, dt: int) -> None:
    """Move the frozen clock ``dt`` ns, applying the timeline's events on the way."""
    sched = control.kernel.sched
    if sched.source is not None:
        sched.advance(dt)  # raises EINVAL with the sentence
    target = sched.now_ns + dt
    run_due(control, target)
    sched.advance_to(target)


def run_due(control: Control, until: int | None = None) -> None:
    """Apply every timeline event at or before ``until`` (default: now), in time order."""
    kernel = control.kernel
    sched = kernel.sched
    tl = kernel.timeline
    while tl:
        at, lines = tl[0]
        if at > (until if until is not None else sched.now()):
            break
        tl.pop(0)
        if sched.source is None:
            sched.advance_to(at)
        for line in lines:
            try:
                control.execute(line)
            except Exception as e:
                log.warning("timeline event at %d ns: %r failed: %s", at, line, e)


# -- the control commands (rows in control.COMMANDS) ----------------------------------------


def build_tick(c: Control, a: Args) -> Callable[[], str]:
    dt = a.checked(lambda: parse_duration(a.pos[0]))
    assert isinstance(dt, int)
    if c.kernel.sched.source is not None:
        raise a.fail("the clock is real: it moves with wall time (mount with --clock frozen "
                     "to move it by hand)")

    def run() -> str:
        tick(c, dt)
        return ""
    return run


def build_clock(c: Control, a: Args) -> Callable[[], str]:
    def run() -> str:
        s = c.kernel.sched
        now = s.now()
        return f"{s.mode} {now // 1_000_000_000}.{now % 1_000_000_000:09d}\n"
    return run


def build_on(c: Control, a: Args) -> Callable[[], str]:
    op, path = a.pos[0], a.pos[1]
    if op not in OPS:
        raise a.fail(f"unknown request {op!r}; one of {', '.join(OPS)}")
    if not a.tail:
        raise a.fail("expected 'do COMMAND' after the path")
    times = a.num(a.keys["times"], 1, TIMES_MAX, "times=") if "times" in a.keys else 1
    command = shlex.join(a.tail)
    c.parse(command)  # the command's syntax now (its pids may be gone when it fires)

    def run() -> str:
        t = arm(c.kernel, op, path, command, times)
        return f"{t.id}\n"
    return run


def build_triggers(c: Control, a: Args) -> Callable[[], str]:
    return lambda: "".join(t.line() + "\n" for t in all_triggers(c.kernel))


def build_cancel(c: Control, a: Args) -> Callable[[], str]:
    which = a.pos[0]
    k = c.kernel
    if which == "all":
        def clear() -> str:
            k.triggers.clear()
            return ""
        return clear
    tid = a.num(which, 1, 2**63 - 1, "ID")

    def run() -> str:
        for key, ts in list(k.triggers.items()):
            for t in ts:
                if t.id == tid:
                    ts.remove(t)
                    if not ts:
                        del k.triggers[key]
                    return ""
        raise KernelError(errno.ENOENT, f"cancel: no armed trigger {tid} (see 'triggers')")
    return run


def build_reap(c: Control, a: Args) -> Callable[[], str]:
    task = c.task(a, a.pos[0], "PID")

    def run() -> str:
        parent = task.group.parent
        if task.exit_state is not ExitState.ZOMBIE or parent is None or not task.is_leader:
            raise KernelError(errno.EINVAL, f"reap: {c.nr(task.pid)} is not a zombie process "
                              "(exit_group it first)")
        res = c.kernel.waitid(parent, P_PID, task.pid.nr_in(parent.pid.ns), WEXITED | WNOHANG)
        if res is None:
            raise KernelError(errno.EAGAIN, f"reap: {c.nr(task.pid)} is not ready to be reaped "
                              "(threads still running)")
        return ""
    return run


# -- snapshots: the clock's state, cpu shares, the timeline and the triggers -------------------


def time_state(kernel: Kernel, task_ref: Callable[[Task], int | None]) -> dict[str, object] | None:
    """The snapshot header's ``time``: None when there is nothing beyond what a restore at the
    header's ``clock`` rebuilds by itself (a table that never ticked, with no share, event or
    trigger)."""
    s = kernel.sched
    fresh = Sched(kernel, s.now_ns)
    if (s.cpu_ns == fresh.cpu_ns and s.avenrun == fresh.avenrun and not s.shares and not s.rem
            and not s.dead_times and s.default_mode is None and not kernel.timeline
            and not kernel.triggers and s.next_load == fresh.next_load):
        return None
    return {
        "mode": s.default_mode, "cpu_ns": [list(c) for c in s.cpu_ns], "avenrun": list(s.avenrun),
        "next_load": s.next_load,
        "shares": [[task_ref(t), c, u] for t, (c, u) in s.shares.items()],
        "rem": [[task_ref(t), r[0], r[1]] for t, r in s.rem.items()],
        "dead": [[task_ref(g.leader), d[0], d[1]] for g, d in s.dead_times.items()],
        "timeline": [[at, list(lines)] for at, lines in kernel.timeline],
        "triggers": [[t.id, t.op, t.path, t.command, t.times, t.fired, t.errors]
                     for t in all_triggers(kernel)],
        "trigger_seq": kernel.trigger_seq,
    }


def restore_time(kernel: Kernel, state: object, task_of: Callable[[object, str], Task]) -> None:
    """Apply a snapshot's ``time`` (``task_of(ref, path)`` resolves a task reference and raises
    the restorer's error). ValueError with a sentence naming the key for anything malformed."""
    def ints(v: object, n: int, path: str, lo: int = 0) -> list[int]:
        if not isinstance(v, list) or len(v) != n or not all(type(x) is int and lo <= x < 2**63
                                                             for x in v):
            raise ValueError(f"time.{path}: expected {n} integers >= {lo}")
        return v

    if not isinstance(state, dict) or set(state) - {"mode", "cpu_ns", "avenrun", "next_load",
                                                     "shares", "rem", "dead", "timeline",
                                                     "triggers", "trigger_seq"}:
        raise ValueError("time: expected an object with mode, cpu_ns, avenrun, next_load, "
                         "shares, rem, dead, timeline, triggers, trigger_seq")
    s = kernel.sched
    mode = state.get("mode")
    if mode not in (None, "frozen", "real"):
        raise ValueError("time.mode: expected null, 'frozen' or 'real'")
    cpu = state.get("cpu_ns")
    if not isinstance(cpu, list) or len(cpu) != len(s.cpu_ns):
        raise ValueError(f"time.cpu_ns: expected {len(s.cpu_ns)} cpus")
    cpu_ns = [ints(c, 5, f"cpu_ns[{i}]") for i, c in enumerate(cpu)]
    avenrun = ints(state.get("avenrun"), 3, "avenrun")
    next_load = ints([state.get("next_load")], 1, "next_load")[0]
    rows: list[tuple[str, Task, list[int]]] = []
    for key in ("shares", "rem", "dead"):
        lst = state.get(key)
        if not isinstance(lst, list):
            raise ValueError(f"time.{key}: expected an array")
        for i, row in enumerate(lst):
            if not isinstance(row, list) or len(row) != 3:
                raise ValueError(f"time.{key}[{i}]: expected [task, a, b]")
            hi = 1_000_000 if key == "shares" else 2**63
            vals = ints(row[1:], 2, f"{key}[{i}]")
            if any(v > hi for v in vals):
                raise ValueError(f"time.{key}[{i}]: a share is at most 1000000 ppm")
            rows.append((key, task_of(row[0], f".time.{key}[{i}]"), vals))
    timeline = []
    tl = state.get("timeline")
    if not isinstance(tl, list):
        raise ValueError("time.timeline: expected an array")
    for i, ev in enumerate(tl):
        if (not isinstance(ev, list) or len(ev) != 2 or type(ev[0]) is not int or ev[0] < 0
                or not isinstance(ev[1], list) or not all(isinstance(x, str) for x in ev[1])):
            raise ValueError(f"time.timeline[{i}]: expected [ns, [command, ...]]")
        timeline.append((ev[0], tuple(ev[1])))
    if [t for t, _ in timeline] != sorted(t for t, _ in timeline):
        raise ValueError("time.timeline: events out of time order")
    trig = state.get("triggers")
    if not isinstance(trig, list):
        raise ValueError("time.triggers: expected an array")
    seq = ints([state.get("trigger_seq")], 1, "trigger_seq")[0]
    armed = []
    for i, t in enumerate(trig):
        if (not isinstance(t, list) or len(t) != 7 or t[1] not in OPS
                or not all(isinstance(x, str) for x in t[2:4])):
            raise ValueError(f"time.triggers[{i}]: expected [id, op, path, command, times, "
                             "fired, errors]")
        tid, times, fired, errors = ints([t[0], t[4], t[5], t[6]], 4, f"triggers[{i}]")
        if not 1 <= tid <= seq or times < 1:
            raise ValueError(f"time.triggers[{i}]: id 1..trigger_seq and times >= 1")
        armed.append(Trigger(tid, t[1], norm_path(t[2]), t[3], times, fired, errors))
    # -- nothing below can fail ------------------------------------------------------------
    s.default_mode = mode
    s.cpu_ns = cpu_ns
    s.avenrun = avenrun
    s.next_load = next_load
    for key, task, (a, b) in rows:
        if key == "shares":
            s.shares[task] = (a, b)
        elif key == "rem":
            s.rem[task] = [a, b]
        else:
            s.dead_times[task.group] = [a, b]
    kernel.timeline[:] = timeline
    kernel.trigger_seq = seq
    for t in armed:
        kernel.triggers.setdefault((t.op, t.path), []).append(t)
