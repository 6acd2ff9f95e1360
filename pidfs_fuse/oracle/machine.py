"""Hypothesis drives the oracle: a state machine whose rules are the operations of ``ops``.

Each rule draws indices and choices, turns them into one concrete ``Op`` with the model's
current state (which tasks can act, which numbers they see, which handles are open), and steps
the ``Oracle``, which applies it to both sides and compares. Hypothesis shrinks a failing run
to a minimal sequence; the ``Mismatch`` it raises carries that sequence as a script for
``replay``. The numbers drawn are small indices (``i % len(candidates)``), so shrinking
towards 0 means "the first task", "the first handle": short scripts read well.

``run(steps, seed)`` runs whole sequences until ``steps`` operations were compared (or a time
limit passes) and returns the ``Coverage``; ``python -m pidfs_fuse.oracle`` is the entry
point of ``make difftest``.
"""

from __future__ import annotations

import time

import hypothesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from ..kernel import (
    P_ALL,
    P_PGID,
    P_PID,
    P_PIDFD,
    WALL,
    WCLONE,
    WCONTINUED,
    WEXITED,
    WNOHANG,
    WNOTHREAD,
    WNOWAIT,
    WSTOPPED,
    ExitState,
)
from .driver import Coverage, Oracle
from .ops import op

IDX = st.integers(0, 63)
MAX_TASKS = 24
SIGNALS = st.sampled_from([15, 15, 9, 9, 19, 18, 18, 10, 1, 17, 0, 20, 2])
EXIT_CODES = st.sampled_from([0, 1, 3, 255])
COMMS = st.sampled_from(["sh", "daemon", "a) (b", "x y"])
_WX, _WH = WEXITED, WNOHANG
WAIT_OPTIONS = st.sampled_from(
    [_WX | _WH] * 4 + [_WX] * 3 + [_WX | _WH | WALL] * 2
    + [_WX | WSTOPPED | WCONTINUED | _WH, WSTOPPED | _WH, WCONTINUED | _WH, WSTOPPED | WCONTINUED,
       _WX | WNOWAIT | _WH, _WX | WCLONE | _WH, _WX | WNOTHREAD | _WH, _WX | WALL | WNOWAIT,
       _WX | WSTOPPED | WCONTINUED, 0 | _WH, _WX | WALL | WCLONE | _WH])


class OracleMachine(RuleBasedStateMachine):
    coverage: Coverage = Coverage()

    def __init__(self) -> None:
        super().__init__()
        self.o = Oracle(self.coverage)
        self.next_handle = 1

    def teardown(self) -> None:
        self.o.close()

    # -- helpers -------------------------------------------------------------------------------

    @property
    def m(self):
        return self.o.model

    def actors(self, *, exiting: bool = False):
        """Tasks that can run a command; ``exiting``: only those whose exit is allowed (never
        the oracle namespace's init's last thread)."""
        out = [t for t in self.m.tasks() if self.m.can_act(t)]
        if exiting:
            init_g = self.m.init.group
            out = [t for t in out if not (t.group is init_g and t.group.live == 1)]
        return out

    def who(self, i: int, **kw):
        if self.o.ended:
            return None
        c = self.actors(**kw)
        return c[i % len(c)] if c else None

    def nr(self, t) -> int:
        return self.m.nr(t)

    def visible_numbers(self, viewer, j: int) -> int:
        """A number as ``viewer`` would pass it: mostly one of a task it can see, sometimes its
        own, its parent's or group's, sometimes one nobody has."""
        ns = viewer.pid.ns
        nums = sorted({n for t in self.m.tasks() if (n := t.pid.nr_in(ns)) > 0})
        # never 0 or below: kill(0)/kill(-n) address process groups, another call
        extra = [n for n in (viewer.group.pgrp.nr_in(ns), max(nums, default=1) + 1) if n > 0]
        cand = nums + extra
        return cand[j % len(cand)] if cand else 1

    @staticmethod
    def _kids(t):
        return [c for th in t.group.threads for c in (th.children or ()) if c.exit_state is not ExitState.DEAD]

    def open_handles(self):
        return [h for h in sorted(self.m.handles) if self.m.handle_owner(h) is not None]

    # -- rules ----------------------------------------------------------------------------------

    @precondition(lambda self: len(self.m.tasks()) < MAX_TASKS)
    @rule(i=IDX, kind=st.sampled_from(["plain"] * 5 + ["pidfd"] * 2 + ["parent", "newpid", "newpid pidfd"]),
          exit_signal=st.sampled_from([17] * 6 + [0, 10]), set_tid=st.lists(st.tuples(
              st.sampled_from(["free", "taken", "one", "zero", "max", "raw"]), IDX), max_size=3),
          use_set_tid=st.integers(0, 3))
    def clone(self, i, kind, exit_signal, set_tid, use_set_tid):
        w = self.who(i)
        if w is None:
            return
        newpid = "newpid" in kind
        # the namespaces of the new task, innermost first, without the host's (level 0)
        base = w.ns_for_children
        levels = [None] if newpid else []  # None: the namespace being created
        levels += list(reversed(base.ancestors[1:]))
        tids = []
        if use_set_tid == 0 and set_tid:
            n = len(set_tid) if len(set_tid) <= len(levels) else len(levels) + 2  # +2: too many
            for k in range(min(n, len(set_tid))):
                how, r = set_tid[k]
                ns = levels[k] if k < len(levels) else None
                used = sorted(nr for nr, _ in ns.idr.items()) if ns is not None else []
                tids.append({"free": (max(used, default=0) + 1 + r % 3), "taken": used[r % len(used)] if used else 1,
                             "one": 1, "zero": 0, "max": ns.pid_max if ns else 4194304, "raw": 2 + r}[how])
            while n > len(tids):
                tids.append(2 + len(tids))
        h = None
        if "pidfd" in kind:
            h = self.next_handle
            self.next_handle += 1
        self.o.step(op("clone", self.nr(w), parent="parent" in kind, newpid=newpid, pidfd=h,
                       set_tid=tids or None, exit_signal=exit_signal if exit_signal != 17 else None))

    @precondition(lambda self: len(self.m.tasks()) < MAX_TASKS)
    @rule(i=IDX)
    def thread(self, i):
        w = self.who(i)
        if w is not None:
            self.o.step(op("thread", self.nr(w)))

    @rule(i=IDX, code=EXIT_CODES)
    def exit(self, i, code):
        w = self.who(i, exiting=True)
        if w is not None:
            self.o.step(op("exit", self.nr(w), code))

    @rule(i=IDX, code=EXIT_CODES)
    def exit_group(self, i, code):
        w = self.who(i)
        if w is not None and w.group is not self.m.init.group:
            self.o.step(op("exit_group", self.nr(w), code))

    @rule(j=IDX, sig=SIGNALS)
    def kill_from_host(self, j, sig):
        ts = self.m.tasks()
        if self.o.ended:
            return
        t = ts[j % len(ts)]
        if t.group is self.m.init.group and sig == 9:
            return
        self.o.step(op("kill", self.nr(t), sig))

    @rule(i=IDX, j=IDX, sig=SIGNALS)
    def kill(self, i, j, sig):
        w = self.who(i)
        if w is not None:
            self.o.step(op("kill", self.visible_numbers(w, j), sig, **{"from": self.nr(w)}))

    @rule(i=IDX, sig=st.sampled_from([17, 17, 15, 10, 1, 20]), ign=st.booleans())
    def sigaction(self, i, sig, ign):
        w = self.who(i)
        if w is not None:
            self.o.step(op("sigaction", self.nr(w), sig, ign=ign, dfl=not ign))

    @rule(i=IDX)
    def setsid(self, i):
        w = self.who(i)
        if w is not None:
            self.o.step(op("setsid", self.nr(w)))

    @rule(i=IDX, which=st.sampled_from(["self", "self", "child", "any"]), j=IDX,
          grp=st.sampled_from(["new", "new", "parent", "any"]))
    def setpgid(self, i, which, j, grp):
        parents = [t for t in self.actors() if self._kids(t)]
        w = parents[i % len(parents)] if parents and which == "child" else self.who(i)
        if w is None:
            return
        ns = w.pid.ns
        kids = self._kids(w)
        if which == "child" and kids:
            pid = kids[j % len(kids)].pid.nr_in(ns)
        elif which == "any":
            pid = self.visible_numbers(w, j)
        else:
            pid = 0
        if grp == "parent" and w.group.parent is not None:
            pgid = w.group.parent.group.pgrp.nr_in(ns)
        elif grp == "any":
            pgid = self.visible_numbers(w, j + 1)
        else:
            pgid = 0
        self.o.step(op("setpgid", self.nr(w), pid, pgid))

    @rule(i=IDX, on=st.booleans())
    def subreaper(self, i, on):
        w = self.who(i)
        if w is not None:
            self.o.step(op("subreaper", self.nr(w), on=on, off=not on))

    @rule(i=IDX)
    def unshare(self, i):
        w = self.who(i)
        if w is not None:
            self.o.step(op("unshare", self.nr(w)))

    @rule(i=IDX, j=IDX)
    def setns(self, i, j):
        w = self.who(i)
        live = [t for t in self.m.tasks() if t.alive]
        if w is not None and live:
            self.o.step(op("setns", self.nr(w), self.nr(live[j % len(live)])))

    @rule(i=IDX, how=st.sampled_from(["near_max", "near_max", "max", "over", "low", "used", "zero"]), r=IDX)
    def ns_last_pid(self, i, how, r):
        w = self.who(i)
        if w is None:
            return
        ns = w.active_ns
        pm = ns.pid_max
        used = [nr for nr, _ in ns.idr.items()]
        value = {"near_max": pm - 1 - r % 3, "max": pm, "over": pm + 1, "low": 295 + r % 8,
                 "used": used[r % len(used)] if used else 1, "zero": 0}[how]
        self.o.step(op("ns_last_pid", self.nr(w), value))

    @rule(i=IDX, j=IDX, thread=st.booleans(), nonblock=st.booleans())
    def pidfd_open(self, i, j, thread, nonblock):
        w = self.who(i)
        if w is None:
            return
        h = self.next_handle
        self.next_handle += 1
        self.o.step(op("pidfd_open", self.nr(w), self.visible_numbers(w, j), thread=thread,
                       nonblock=nonblock, handle=h))

    @rule(k=IDX)
    def pidfd_close(self, k):
        hs = self.open_handles() if not self.o.ended else []
        if hs:
            h = hs[k % len(hs)]
            self.o.step(op("pidfd_close", self.nr(self.m.handle_owner(h)), h))

    @rule(k=IDX, sig=SIGNALS)
    def pidfd_kill(self, k, sig):
        hs = self.open_handles() if not self.o.ended else []
        if not hs:
            return
        h = hs[k % len(hs)]
        t = self.m.handles[h][2].pid.task
        if t is not None and t.group is self.m.init.group and sig == 9:
            return
        self.o.step(op("pidfd_kill", self.nr(self.m.handle_owner(h)), h, sig))

    @rule(i=IDX, comm=COMMS)
    def exec(self, i, comm):
        w = self.who(i)
        if w is not None:
            self.o.step(op("exec", self.nr(w), comm=comm))

    @rule(i=IDX, idtype=st.sampled_from([P_ALL, P_ALL, P_PID, P_PID, P_PGID, P_PIDFD]), j=IDX,
          options=WAIT_OPTIONS)
    def wait(self, i, idtype, j, options):
        parents = [t for t in self.actors() if self._kids(t)]
        w = parents[i % len(parents)] if parents and j % 5 else self.who(i)
        if w is None:
            return
        kw = {}
        if idtype == P_PID:
            kids = self._kids(w)
            kw["pid"] = kids[j % len(kids)].pid.nr_in(w.pid.ns) if kids and j % 4 else self.visible_numbers(w, j)
        elif idtype == P_PGID:
            kw["pgid"] = 0 if j % 3 == 0 else self.visible_numbers(w, j)
        elif idtype == P_PIDFD:
            hs = [h for h in self.open_handles() if self.m.handles[h][0].group is w.group]
            if not hs:
                return
            kw["pidfd"] = hs[j % len(hs)]
        o = op("wait", self.nr(w), options=hex(options), **kw)
        if not options & WNOHANG and self.m.wait_would_block(o):
            o = op("wait", self.nr(w), options=hex(options | WNOHANG), **kw)
        self.o.step(o)


def run(steps: int, seed: int | None = None, *, steps_per_run: int = 40, max_seconds: float = 600,
        coverage: Coverage | None = None) -> Coverage:
    """Run sequences until ``steps`` operations were compared or ``max_seconds`` passed.
    Raises the (shrunk) ``Mismatch`` of the first failing sequence."""
    cov = coverage if coverage is not None else Coverage()
    t0 = time.monotonic()
    batch = 0
    try:
        while cov.steps < steps and time.monotonic() - t0 < max_seconds:
            left = steps - cov.steps
            examples = max(5, min(10, left // steps_per_run + 1))
            s = settings(max_examples=examples, stateful_step_count=steps_per_run, deadline=None,
                         database=None, print_blob=False, suppress_health_check=list(HealthCheck),
                         phases=[Phase.generate, Phase.shrink])
            m = type(f"OracleRun{batch}", (OracleMachine,), {"coverage": cov})
            if seed is not None:
                m = hypothesis.seed(seed * 1000 + batch)(m)
            # every sequence is a namespace to start: none shorter than half the length
            run_state_machine_as_test(m, settings=s, _min_steps=steps_per_run // 2)
            batch += 1
    finally:
        cov.seconds += time.monotonic() - t0
    return cov
