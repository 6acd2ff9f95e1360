"""One driver, two backends: each ``Op`` goes to the model and to the real agents, then the
two are compared field by field.

The real side is asynchronous where the model is not: a signal is delivered, and a killed
process exits, some time after kill() returned. So after each step the driver computes the
model's snapshot once and reads the real one until it is equal, or until ``settle`` seconds
have passed: only a difference that persists that long is a mismatch. Results (what the call
returned, or its errno) are compared at once; a call whose task exits or stops by its own hand
(exit, a fatal signal to itself) has no result to compare.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from . import compare as C
from .model_side import ModelSide
from .ops import Op, parse
from .real_side import AgentError, RealSide

SETTLE = float(os.environ.get("PIDFS_ORACLE_SETTLE", "1.5"))
#: a difference that stays the same this long is not going away (the deadline is SETTLE)
STABLE = float(os.environ.get("PIDFS_ORACLE_STABLE", "0.3"))


class Mismatch(AssertionError):
    """The model and Linux disagree; the message holds the replayable script."""


@dataclass
class Coverage:
    """What a run exercised: steps, operations by outcome, compared fields with their values."""

    steps: int = 0
    runs: int = 0
    seconds: float = 0.0
    ops: Counter = field(default_factory=Counter)  # (name, outcome) -> count
    fields: Counter = field(default_factory=Counter)  # field -> comparisons
    values: dict = field(default_factory=dict)  # field -> set of values seen (capped)
    settle_retries: int = 0
    masked: Counter = field(default_factory=Counter)  # KNOWN name -> differences masked
    departures: Counter = field(default_factory=Counter)  # sequences ended at a documented departure

    def note_snapshot(self, snap: dict) -> None:
        for k, v in snap.items():
            f = C.field_of(k)
            self.fields[f] += 1
            seen = self.values.setdefault(f, set())
            if len(seen) < 50:
                seen.add(str(v))

    def report(self, skipped: dict[str, str] | None = None) -> str:
        lines = [f"steps: {self.steps} in {self.runs} sequences, {self.seconds:.1f}s "
                 f"({self.settle_retries} re-reads while the real side settled)", "",
                 "operations (outcome: count):"]
        names = sorted({n for n, _ in self.ops})
        for n in names:
            outs = sorted(((o, c) for (m, o), c in self.ops.items() if m == n), key=lambda x: -x[1])
            lines.append(f"  {n:<12} " + ", ".join(f"{o} {c}" for o, c in outs))
        lines += ["", "compared fields (comparisons; distinct values seen):"]
        for f in sorted(self.fields):
            vals = sorted(self.values.get(f, ()), key=lambda s: (len(s), s))
            shown = ", ".join(vals[:8]) + (", ..." if len(vals) > 8 else "")
            lines.append(f"  {f:<26} {self.fields[f]:>7}; {len(vals)}: {shown}")
        if self.masked:
            lines += ["", "known differences masked (not yet fixed in the model):"]
            lines += [f"  {k}: {c}" for k, c in sorted(self.masked.items())]
        if self.departures:
            lines += ["", "sequences ended at a documented departure of the model:"]
            lines += [f"  {k}: {c}" for k, c in sorted(self.departures.items())]
        if skipped:
            lines += ["", "not driven (and why):"]
            lines += [f"  {k}: {v}" for k, v in skipped.items()]
        return "\n".join(lines)


#: Operations the real kernel cannot be driven to do here, with the reason (coverage report).
SKIPPED = {
    "clone wait_pid": "Linux has no CLONE_WAIT_PID (bit 33 is CLONE_INTO_CGROUP)",
    "clone autoreap / autokill / nnp": "clone3 answers EINVAL for CLONE_AUTOREAP, CLONE_NNP and "
                                       "CLONE_PIDFD_AUTOKILL on this kernel (6.18): not merged yet",
    "clone thread with pidfd / set_tid": "threads are made with pthread_create (Python's threading), "
                                         "which passes neither",
    "core-dumping signals (SEGV, QUIT, ABRT, ...)": "a real core dump depends on core_pattern and "
                                                    "RLIMIT_CORE and would write files on the host",
    "SIGKILL to the oracle namespace's init, its exit": "ends the whole run (the namespace dies)",
    "pid_max": "writes the sysctl of the writer's namespace; left at its default (4194304)",
    "set_tid at the host level": "would pick host pids; set_tid never has an entry for level 0 "
                                 "(too many entries, which fails before allocating, is still tried)",
    "blocking waits": "a wait without WNOHANG is sent only when the model says it will not block",
    "uid/gid, setxattr, comm writes": "everything runs as root with one uid",
}


def _state(real: dict, key: str) -> str | None:
    return real.get(key.rsplit(":", 1)[0].rsplit("/", 1)[0] + "/status:State")


def _zombie(real: dict, key: str) -> bool:
    return _state(real, key) == "Z"


#: Differences known and not yet fixed in the model: name -> (why, predicate on
#: (key, model value, Linux value, Linux snapshot)). A masked difference is counted in the
#: coverage report, never silently dropped; each entry has a strict xfail test in test_oracle.
KNOWN: dict[str, tuple[str, Callable[[str, object, object, dict], bool] | None]] = {
    "zombie-leader-sigpnd": (
        "a leader that exited while its threads ran, whose group is then killed by a signal, "
        "shows SIGKILL in its own SigPnd (complete_signal() adds it to every thread, exited "
        "ones included, and only running threads dequeue it); the model keeps no per-thread "
        "pending set",
        lambda k, a, b, real: k.endswith("status:SigPnd") and _zombie(real, k)
        and b == f"{1 << 8:016x}" and a == f"{0:016x}"),
}


class Oracle:
    """A model and a fresh real namespace, stepped together. Use as a context manager."""

    def __init__(self, coverage: Coverage | None = None, settle: float = SETTLE,
                 known: dict | None = None) -> None:
        self.cov = coverage if coverage is not None else Coverage()
        self.known = KNOWN if known is None else known
        self.settle = settle
        self.ops: list[Op] = []
        self.ended: str | None = None  # a documented departure was reached: stop comparing
        self.real = RealSide()
        try:
            self.model = ModelSide(pid_max=self.real.pid_max, workarounds=frozenset(
                name for name, (_why, pred) in self.known.items() if pred is None))
            self.cov.runs += 1
            self.compare("start")
        except BaseException:
            self.real.close()
            raise

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.real.close()

    def script(self) -> str:
        lines = "\n".join(f"    {o.line()!r}," for o in self.ops)
        return ("from pidfs_fuse.oracle import replay\nreplay([\n" + lines + "\n])")

    def fail(self, what: str) -> Mismatch:
        return Mismatch(f"{what}\n\nreplay (run as root):\n{self.script()}")

    def step(self, op: Op | str) -> tuple:
        if isinstance(op, str):
            op = parse(op)
        if self.ended:  # the sequence reached a documented departure: nothing more is compared
            return ("ended", self.ended)
        self.ops.append(op)
        self.cov.steps += 1
        m = self.model
        want = m.apply(op)
        for name in m.worked_around:
            self.cov.masked[name] += 1
        m.worked_around.clear()
        actor = m.task(op.who) if op.who is not None else None
        expect = op.who is None or (m.can_act(actor) and op.name not in ("exit", "exit_group"))
        try:
            got = self.real.apply(op, expect)
            if _late_free(op, want, got):
                got = self._retry_clone(op, expect)
        except AgentError as e:
            raise self.fail(f"step {len(self.ops)} `{op}`: the real side broke: {e}\n"
                            f"(model: {want})") from None
        outcome = want[1] if want[0] == "errno" else "ok"
        self.cov.ops[op.name, outcome] += 1
        self.ended = m.departure()
        if op.name == "clone" and want in (("errno", "ENOMEM"), ("errno", "EAGAIN")):
            # kernel/pid.c frees the ids a failed alloc_pid() took but leaves the cursors it
            # moved; the model rewinds them (documented departure: a failed call changes nothing)
            self.ended = "a failed clone leaves ns_last_pid advanced in Linux; the model rewinds it"
        if self.ended:
            self.cov.departures[self.ended] += 1
            return want
        if got is not None and expect and not _same_result(want, got):
            raise self.fail(f"step {len(self.ops)} `{op}`: model {want}, Linux {got}")
        self.compare(f"step {len(self.ops)} `{op}`")
        return want

    def _retry_clone(self, op: Op, expect: bool) -> tuple | None:
        """Linux frees a reaped task's pid numbers a moment after the task has left /proc
        (since 6.14 ``release_task()`` calls ``free_pids()`` after dropping tasklist_lock), so
        a ``set_tid`` clone of a number the model has already freed can meet EEXIST for that
        moment. A failed set_tid clone changes nothing (the explicit numbers are tried before
        any cyclic one), so it is retried until ``settle`` has passed, like a snapshot."""
        deadline = time.monotonic() + self.settle
        pause = 0.001
        while True:
            self.cov.settle_retries += 1
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            got = self.real.apply(op, expect)
            if got != ("errno", "EEXIST") or time.monotonic() > deadline:
                return got

    def compare(self, where: str) -> None:
        m = self.model
        askers: dict[int, int] = {}
        owners = {owner.group for owner, _fd, _p in m.handles.values()}
        for g in owners:
            actor = next((t for t in g.threads if m.can_act(t)), None)
            if actor is not None:
                askers[m.nr(g.leader)] = m.nr(actor)
        want = m.snapshot(askers)
        start = time.monotonic()
        deadline = start + self.settle
        pause = 0.001
        last, since = None, start
        while True:
            try:
                got = self.real.snapshot(askers)
            except AgentError as e:
                raise self.fail(f"after {where}: the real side broke: {e}") from None
            d = C.diff(want, got)
            masked = [(k, a, b) for k, a, b in d
                      if any(pred is not None and pred(k, a, b, got) for _why, pred in self.known.values())]
            if masked and len(masked) == len(d):
                for k, a, b in masked:
                    for name, (_why, pred) in self.known.items():
                        if pred is not None and pred(k, a, b, got):
                            self.cov.masked[name] += 1
                d = []
            if not d:
                break
            now = time.monotonic()
            if got != last:
                last, since = got, now
            # give up at the deadline, or earlier once Linux has stopped changing for a while
            if now > deadline or (now - since > STABLE and now - start > STABLE):
                rows = "\n".join(f"  {k}: model {a!r}, Linux {b!r}" for k, a, b in d[:40])
                raise self.fail(f"after {where}, {len(d)} field(s) differ:\n{rows}")
            self.cov.settle_retries += 1
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        self.cov.note_snapshot(want)


def _late_free(op: Op, want: tuple, got: tuple | None) -> bool:
    """Linux said EEXIST to a set_tid clone the model let through: a number not freed yet."""
    return (op.name == "clone" and bool(op.opts.get("set_tid")) and want[0] == "ok"
            and got == ("errno", "EEXIST"))


def _same_result(want: tuple, got: tuple) -> bool:
    """Equal, or an unknown errno from Linux (Python's threading hides pthread_create's) for a
    call the model also failed."""
    return got == want or (got[0] == want[0] == "errno" and got[1] == "?")


def replay(lines: list[str], settle: float = SETTLE, known: dict | None = None) -> Oracle:
    """Run a script (as printed with a mismatch) on a fresh oracle; raises ``Mismatch``.
    ``known={}`` masks nothing (regression tests of known differences do that)."""
    with Oracle(settle=settle, known=known) as o:
        for line in lines:
            o.step(line)
    return o
