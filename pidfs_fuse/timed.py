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
from .kernel.sched import parse_duration

if TYPE_CHECKING:
    from .control import Args, Control
    from .kernel import Kernel

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
