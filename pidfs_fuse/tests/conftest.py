"""Shared helpers of the unit tests, and the hypothesis profiles.

The kernel helpers are plain functions so a test reads as a sequence of system calls; test
modules import them (``from pidfs_fuse.tests.conftest import new_kernel, spawn``):

- ``new_kernel()`` boots a model with a deterministic clock (and optionally a ``Recorder``
  listener that keeps every event).
- ``expect_error(k, errno, fn, ...)`` calls ``fn``, checks the ``KernelError``'s errno, and checks
  that the failed call changed nothing observable (``snapshot``).
- ``tgids(k, ns)`` lists thread-group leaders with the tagged scan after asserting that the
  linear scan (Linux's ``find_ge_pid`` loop) agrees, in every namespace.
- ``scans_agree_after_each_test`` (autouse here, so every unit test has it) checks the same for
  every kernel ``new_kernel`` made during the test, once the test is over.

``test_kernel_helpers.py`` makes sure the helpers can fail: a snapshot that does not see a
change, or a scan comparison that accepts a difference, would make every test using them vacuous.

Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``: ``fast`` (the default, ``make test`` and
CI) and ``fuzz`` (``make fuzz``); ``test_stateful.py`` reads its budget from the loaded profile.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from pidfs_fuse.kernel import EventKind, Kernel, KernelError, Pid, PidNamespace, Task, restore
from pidfs_fuse.procfs import Entry, lookup

# -- hypothesis profiles ---------------------------------------------------------------------

#: Settings every profile shares: a state machine step checks the whole model, so no deadline;
#: no example database (a failure prints a blob that replays it, @reproduce_failure).
_COMMON: dict[str, Any] = {"stateful_step_count": 100, "deadline": None, "database": None,
                           "print_blob": True, "suppress_health_check": list(HealthCheck)}
#: name -> max_examples. fast: about 1,100 steps of test_stateful's machine with its fixed seed
#: (every rule and 20+ kinds of failure; the test checks both); fuzz: 100,000 fresh steps.
PROFILES = {"fast": 12, "fuzz": 1000}


def fuzz_budget(fast: int, fuzz: int) -> int:
    """How much a hand-rolled fuzz test does: ``fast`` for ``make test``, ``fuzz`` under
    ``make fuzz`` (read at import, so it can size a parametrization too)."""
    return fuzz if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else fast


def pytest_configure(config: pytest.Config) -> None:
    """Register the profiles and load the one ``HYPOTHESIS_PROFILE`` names (default ``fast``)."""
    for name, examples in PROFILES.items():
        settings.register_profile(name, max_examples=examples, **_COMMON)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


# -- booting ---------------------------------------------------------------------------------


class Recorder:
    """A listener that keeps every event, in order."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def clear(self) -> None:
        self.events.clear()

    def kinds(self, pid: Pid) -> list[EventKind]:
        """The kinds of the events about ``pid`` (the struct, not a number), in order."""
        return [e.kind for e in self.events if e.pid is pid]

    def pids(self, kind: EventKind) -> list[Pid]:
        return [e.pid for e in self.events if e.kind is kind]


_made: list[Kernel] = []  # the kernels of the running test, for scans_agree_after_each_test


def new_kernel(*, events: bool = False, **kw: Any) -> Any:
    """A Kernel whose clock ticks 1 ms per reading; with ``events``, also its Recorder."""
    clock = itertools.count(1_000_000, 1_000_000).__next__
    rec = Recorder() if events else None
    k = Kernel(clock=clock, listener=rec, **kw)
    _made.append(k)
    return (k, rec) if events else k


@pytest.fixture(autouse=True)
def scans_agree_after_each_test() -> Any:
    """After every test, the tagged and linear scans agree in every namespace of every kernel
    the test made with ``new_kernel``."""
    _made.clear()
    yield
    kernels = list(_made)
    _made.clear()
    for k in kernels:
        assert_scans_agree(k)


def spawn(k: Kernel, parent: Task, n: int = 1, **kw: Any) -> list[Task]:
    """``n`` plain children of ``parent``."""
    return [k.clone(parent, **kw).task for _ in range(n)]


def job(k: Kernel) -> tuple[Task, Task]:
    """A shell (session leader) and its child running as a job in a group of its own, so
    job-control stops work (the group is not orphaned: its parent is in the same session)."""
    sh = k.clone(k.init).task
    k.setsid(sh)
    c = k.clone(sh).task
    k.setpgid(sh, c.pid.nr_in(sh.pid.ns), 0)
    return sh, c


def ns_chain(k: Kernel, depth: int, flags_parent: Task | None = None) -> list[Task]:
    """Inits of ``depth`` nested namespaces, each created by the previous one's init."""
    from pidfs_fuse.kernel import CLONE_NEWPID

    inits = []
    cur = flags_parent or k.init
    for _ in range(depth):
        cur = k.clone(cur, CLONE_NEWPID).task
        inits.append(cur)
    return inits


def reap_all(k: Kernel, parent: Task) -> list[Any]:
    """waitid(P_ALL, WEXITED) until nothing is ready or there is no child left."""
    from pidfs_fuse.kernel import WEXITED, WNOHANG

    out: list[Any] = []
    while True:
        try:
            res = k.waitid(parent, 0, 0, WEXITED | WNOHANG)
        except KernelError as e:
            assert e.errno == errno.ECHILD, e
            return out
        if res is None:
            return out
        out.append(res)


# -- errors ------------------------------------------------------------------------------------


def raises(err: int, fn: Callable[..., Any], *args: Any, **kw: Any) -> KernelError:
    """Call ``fn`` and require a KernelError with ``err``; return it."""
    with pytest.raises(KernelError) as info:
        fn(*args, **kw)
    got = info.value.errno or 0  # a KernelError always carries one
    assert got == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(got, got)}: {info.value}"
    return info.value


def expect_error(k: Kernel, err: int, fn: Callable[..., Any], *args: Any, **kw: Any) -> KernelError:
    """Like ``raises``, and the model must be exactly as before the call."""
    before = snapshot(k)
    exc = raises(err, fn, *args, **kw)
    after = snapshot(k)
    assert after == before, _diff(before, after)
    return exc


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    lines = ["the failed call changed the model:"]
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"  {key}: {before.get(key)!r} -> {after.get(key)!r}")
    return "\n".join(lines)


# -- observable state --------------------------------------------------------------------------


def _nums(pid: Pid | None) -> tuple[int, ...] | None:
    return None if pid is None else pid.numbers


def _tnums(task: Task | None) -> tuple[int, ...] | None:
    return None if task is None else task.pid.numbers


def snapshot(k: Kernel) -> dict[str, Any]:
    """Everything a failed call must leave alone, as plain comparable values.

    Per namespace: the id map (number, struct identity by pidfs inode, tag), the cursor,
    pid_max, whether it admits pids, its init and child namespaces. Per task (found through
    the root namespace, where every pid has a number): state, exit data, parent, children,
    process-wide state, descriptors. Plus the global counters (pidfs inode, nr_threads, forks).
    """
    snap: dict[str, Any] = {
        "next_ino": restore.counters(k).next_ino,
        "next_ns_inum": restore.counters(k).next_ns_inum,
        "nr_threads": k.nr_threads,
        "total_forks": k.total_forks,
    }
    for ns in k.namespaces():
        snap[f"ns {ns.inum}"] = (
            ns.level, ns.pid_max, ns.idr.cursor, ns.adding, _tnums(ns.child_reaper),
            tuple((nr, None if p is None else p.ino, ns.idr.is_tagged(nr)) for nr, p in ns.idr.items()),
            len(ns.idr), ns.idr.tagged_count, tuple(c.inum for c in ns.children),
        )
    for nr, pid in k.root_ns.idr.items():
        snap[f"pid {nr}"] = (
            pid.numbers, pid.ino, _tnums(pid.task), _tnums(pid.tgid_task),
            tuple(map(_tnums, pid.pgrp_tasks or ())), tuple(map(_tnums, pid.session_tasks or ())),
            pid.handles, None if pid.attr is None else (pid.attr.exit, dict(pid.attr.xattrs)),
        )
        t = pid.task
        if t is None:
            continue
        g = t.group
        snap[f"task {nr}"] = (
            t.exit_state, t.flags, t.exit_code, t.exit_signal, t.comm, t.state, t.start_time,
            t.nice, tuple(map(_tnums, t.children or ())),
            None if t.pid_ns_for_children is None else t.pid_ns_for_children.inum,
            _tnums(g.leader), _tnums(g.parent), tuple(map(_tnums, g.threads)), g.live,
            g.group_exit, g.group_exit_code, g.stopped, g.stop_code, g.continued, g.pending,
            g.unkillable, g.session_leader, g.is_child_subreaper, g.has_child_subreaper, g.sigign,
            _nums(g.pgrp), _nums(g.session), g.argv, g.uid, g.gid, g.exe, g.tty_nr,
            None if g.files is None else tuple(sorted(g.files)),
        )
    return snap


# -- the two TGID scans ---------------------------------------------------------------------


def assert_scans_agree(k: Kernel) -> None:
    """In every namespace, the tagged scan lists exactly what the linear scan lists, and the
    listing's word-at-a-time scan (``scan_tgids``) lists the same as the step-by-step one."""
    for ns in k.namespaces():
        tagged = list(k.iter_tgids(ns))
        linear = list(k.iter_tgids(ns, linear=True))
        assert tagged == linear, f"namespace {ns.inum}: tagged {tagged} != linear {linear}"
        for lin in (False, True):
            assert list(k.scan_tgids(ns, 0, linear=lin)) == tagged, f"namespace {ns.inum}"


def tgids(k: Kernel, ns: PidNamespace | None = None) -> list[int]:
    """The thread-group leaders' numbers in ``ns`` (default root), both scans agreeing."""
    assert_scans_agree(k)
    return [nr for nr, _ in k.iter_tgids(ns or k.root_ns)]


# -- procfs tables ---------------------------------------------------------------------------


def row(table: tuple[Entry, ...] | None, name: str) -> Entry:
    """The row called ``name`` in ``table``, which must exist (``lookup`` answers None)."""
    assert table is not None, f"no table to look {name!r} up in"
    entry = lookup(table, name)
    assert entry is not None, f"no row {name!r}"
    return entry
