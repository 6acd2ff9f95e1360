"""Time and races for the control plane: ``tick``, timelines and injected triggers.

``tick DURATION`` moves a frozen clock (kernel/sched.py) forward; on the way it stops at each
timeline event (a scenario's ``[[at]]`` blocks, kept in ``Kernel.timeline`` as (ns, command
lines)) whose time it reaches, applies the event's commands in order, and goes on. In real mode
the mount calls ``run_due`` as time passes.

A trigger runs one control command inside a file-system request, before the request is answered
(``on open 42/status do exit_group 42 0``). Grammar::

    on lookup|open|read|readdir PATH [times=N] do COMMAND ...
    on list PID [times=N] do COMMAND ...
    triggers                 list the armed triggers: ID OP PATH times=LEFT fired=N do COMMAND
    cancel ID|all            disarm

``PATH`` is relative to the mount's root, with pids in the view's namespace: ``42``, ``42/status``,
``42/task``, ``42/task/43/stat``, ``/`` (the root; ``on readdir /`` fires on the next root
listing). ``lookup`` matches the lookup of that name in its directory, ``open`` an open of that
file or directory, ``read`` a read of an open file, ``readdir`` the start of a listing, and
``list PID`` a listing of the mount's root that is about to return ``PID``'s entry: the command
runs right there, then the scan looks at that pid again, so a pid reaped by it is not returned
and the listing goes on with the next one (Linux's getdents, racing with a reap, does not return a
pid that is gone before its scan reaches it); a zombie is still returned. It fires once per
readdir request that reaches the entry (a listing whose entries span two requests, because the
caller's buffer filled up right at that pid, may fire a times=2 trigger twice). ``times``
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
from .schema import JSON, Schema

if TYPE_CHECKING:
    from .control import Args, Control
    from .kernel import Kernel, Task

log = logging.getLogger(__name__)

OPS = ("lookup", "open", "read", "readdir", "list")
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


def _is_pid(path: str) -> bool:
    return path.isdigit() and path[0] != "0" and int(path) < 2**31


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
    if op == "list" and not _is_pid(norm_path(path)):
        raise a.fail(f"'on list' takes a pid (the root listing's entry), got {path!r}")
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


def restore_time(kernel: Kernel, state: object, task_of: Callable[[object, str], Task],
                 s: Schema) -> None:
    """Apply a snapshot's ``time`` (``task_of(ref, path)`` resolves a task reference and raises
    the restorer's error). Every value is checked with ``s``'s getters (``schema.py``), whose
    error names its JSON path (``time.triggers[0][4]``); nothing changes unless all are good."""
    p = ".time"
    if not isinstance(state, dict):
        raise s.expect(p, state, "an object")
    s.keys(state, TIME_KEYS, lambda key: f"{p}.{key}")
    sched = kernel.sched
    mode = s.one_of(state.get("mode"), f"{p}.mode", (None, "frozen", "real"))
    cpu = s.array(state.get("cpu_ns"), f"{p}.cpu_ns", len(sched.cpu_ns))
    cpu_ns = [[s.int_(x, f"{p}.cpu_ns[{i}][{j}]", 0, I63)
               for j, x in enumerate(s.array(c, f"{p}.cpu_ns[{i}]", 5))] for i, c in enumerate(cpu)]
    avenrun = [s.int_(x, f"{p}.avenrun[{i}]", 0, I63)
               for i, x in enumerate(s.array(state.get("avenrun"), f"{p}.avenrun", 3))]
    next_load = s.int_(state.get("next_load"), f"{p}.next_load", 0, I63)
    rows: list[tuple[str, Task, list[int]]] = []
    for key in ("shares", "rem", "dead"):
        hi = 1_000_000 if key == "shares" else I63  # a share is in ppm
        for i, row in enumerate(s.array(state.get(key), f"{p}.{key}")):
            where = f"{p}.{key}[{i}]"
            ref, a, b = s.array(row, where, 3)
            rows.append((key, task_of(ref, where),
                         [s.int_(a, f"{where}[1]", 0, hi), s.int_(b, f"{where}[2]", 0, hi)]))
    timeline: list[tuple[int, tuple[str, ...]]] = []
    for i, ev in enumerate(s.array(state.get("timeline"), f"{p}.timeline")):
        at, lines = s.array(ev, f"{p}.timeline[{i}]", 2)
        at = s.int_(at, f"{p}.timeline[{i}][0]", 0, I63)
        if timeline and at < timeline[-1][0]:
            raise s.error(f"{p}.timeline[{i}][0]", "events out of time order")
        timeline.append((at, tuple(s.strs(lines, f"{p}.timeline[{i}][1]"))))
    seq = s.int_(state.get("trigger_seq"), f"{p}.trigger_seq", 0, I63)
    armed = [_trigger(kernel, row, f"{p}.triggers[{i}]", seq, s)
             for i, row in enumerate(s.array(state.get("triggers"), f"{p}.triggers"))]
    ids = [t.id for t in armed]
    if ids != sorted(set(ids)):
        raise s.error(f"{p}.triggers", f"ids must rise and differ, got {ids}")
    # -- nothing below can fail ------------------------------------------------------------
    sched.default_mode = mode
    sched.cpu_ns = cpu_ns
    sched.avenrun = avenrun
    sched.next_load = next_load
    for key, task, (a, b) in rows:
        if key == "shares":
            sched.shares[task] = (a, b)
        elif key == "rem":
            sched.rem[task] = [a, b]
        else:
            sched.dead_times[task.group] = [a, b]
    kernel.timeline[:] = timeline
    kernel.trigger_seq = seq
    for t in armed:
        kernel.triggers.setdefault((t.op, t.path), []).append(t)


I63 = 2**63 - 1
TIME_KEYS = ("mode", "cpu_ns", "avenrun", "next_load", "shares", "rem", "dead", "timeline",
             "triggers", "trigger_seq")


def _trigger(kernel: Kernel, row: object, where: str, seq: int, s: Schema) -> Trigger:
    """One saved trigger ``[id, op, path, command, times, fired, errors]``, checked as ``on``
    checks it (the command's syntax, not its pids: they may be gone by now)."""
    from .control import Control

    tid, op, path, command, times, fired, errors = s.array(row, where, 7)
    tid = s.int_(tid, f"{where}[0]", 1, max(seq, 1))
    op = s.one_of(op, f"{where}[1]", OPS)
    path = s.str_(path, f"{where}[2]")
    if norm_path(path) != path or (op == "list" and not _is_pid(path)):
        raise s.error(f"{where}[2]", f"{JSON.show(path)} is not a {'pid' if op == 'list' else 'path'}"
                      " as 'triggers' writes it")
    command = s.str_(command, f"{where}[3]")
    try:
        Control(kernel).parse(command)
    except KernelError as e:
        if e.errno != errno.ESRCH:  # a pid gone since is fine: it fails when it fires
            raise s.error(f"{where}[3]", e.strerror or str(e)) from None
    return Trigger(tid, op, path, command, s.int_(times, f"{where}[4]", 1, TIMES_MAX),
                   s.int_(fired, f"{where}[5]", 0, I63), s.int_(errors, f"{where}[6]", 0, I63))
