"""Snapshot and restore (pidfs_fuse/snapshot.py on kernel/restore.py): dump -> restore -> dump is the identity, the
restored model equals the original in every structure (compared by an independent walk, not by
the dump itself), the next clone gets the same number, bad files fail with EINVAL naming the
file and the JSON path, and writes are atomic."""

from __future__ import annotations

import copy
import errno
import itertools
import json
import os
import random
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pidfs_fuse import scenario
from pidfs_fuse import snapshot as snap
from pidfs_fuse.control import Control
from pidfs_fuse.kernel import (
    CLONE_AUTOREAP,
    CLONE_NEWPID,
    CLONE_PIDFD,
    CLONE_THREAD,
    CLONE_WAIT_PID,
    P_ALL,
    P_PID,
    PIDFD_THREAD,
    WALL,
    WEXITED,
    WNOHANG,
    WSTOPPED,
    ExitState,
    Kernel,
    KernelError,
    Task,
    restore,
)
from pidfs_fuse.kernel import signals as S
from pidfs_fuse.kernel.fields import set_fields
from pidfs_fuse.tests.conftest import fuzz_budget

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def zero() -> int:
    return 0


# -- an independent picture of a kernel ---------------------------------------------------------


def _tkey(t: Task | None) -> object:
    if t is None:
        return None
    if t.pid.task is t:
        return t.pid.ino
    return ("released", t.pid.ino, t.comm, t.start_time)


def _pidkey(p) -> object:
    return None if p is None else (p.ino, p.numbers, p.allocated)


def _attr(p) -> object:
    a = p.attr
    return None if a is None else (a.exit, dict(a.xattrs))


def picture(k: Kernel) -> dict[str, Any]:
    """Everything the model holds, walked through its objects (not through ``dump``)."""
    out: dict[str, Any] = {
        "counters": (restore.counters(k), k.nr_threads),
        "init": _tkey(k.init),
    }
    nss = []
    for ns in k.namespaces():
        idr = ns.idr
        nss.append((ns.inum, ns.level, ns.parent.inum if ns.parent else None, ns.pid_max,
                    idr.cursor, ns.last_pid, ns.adding, _tkey(ns.child_reaper),
                    _tkey(ns.creator), [c.inum for c in ns.children], len(idr), idr.tagged_count,
                    [(nr, p.ino, idr.is_tagged(nr)) for nr, p in idr.items()]))
    out["ns"] = nss
    pids, tasks, groups = {}, {}, {}
    for _nr, p in sorted(k.root_ns.idr.items()):
        pids[p.ino] = (p.numbers, p.ns.inum, p.handles, _attr(p), _tkey(p.task), _tkey(p.tgid_task),
                       sorted(map(_tkey, p.pgrp_tasks or ())),  # member order: not modelled
                       sorted(map(_tkey, p.session_tasks or ())), p.has_task())
        assert k.find_pidfs(p.ino) is p
        t = p.task
        if t is None:
            continue
        tasks[p.ino] = (t.comm, t.state, t.start_time, t.nice, t.utime, t.stime, t.exit_signal,
                        int(t.flags), t.exit_state, t.exit_code, t.display_state,
                        [_tkey(c) for c in t.children or ()],
                        t.pid_ns_for_children.inum if t.pid_ns_for_children else None,
                        t.ns_for_children.inum, t.is_leader)
        g = t.group
        if t.is_leader:
            files = None if g.files is None else [
                (fd, f.pid.ino, f.pid.numbers, f.pid.allocated, _attr(f.pid), f.thread, f.nonblock,
                 f.autokill, f.closed) for fd, f in g.files.items()]
            groups[p.ino] = (
                _tkey(g.parent), _pidkey(g.pgrp), _pidkey(g.session), [_tkey(x) for x in g.threads],
                g.live, g.group_exit, g.group_exit_code, g.stopped, g.stop_code, g.continued,
                g.pending, g.unkillable, g.session_leader, g.is_child_subreaper,
                g.has_child_subreaper, g.sigign, g.argv, g.environ, g.uid, g.gid, g.cwd, g.exe,
                g.root, g.vsize, g.rss, g.tty_nr, g.cutime, g.cstime, files, g.extra)
    out.update(pids=pids, tasks=tasks, groups=groups)
    return out


def round_trip(k: Kernel) -> tuple[dict, Kernel]:
    d1 = snap.dump(k)
    json.loads(json.dumps(d1))  # JSON-able
    k2 = snap.restore(copy.deepcopy(d1), clock=zero)
    d2 = snap.dump(k2)
    assert d2 == d1
    assert picture(k2) == picture(k)
    return d1, k2


def twin(k: Kernel, k2: Kernel, t: Task) -> Task:
    """The task of ``k2`` that stands for ``t`` of ``k`` (same pidfs inode)."""
    p = k2.find_pidfs(t.pid.ino)
    assert p is not None and p.task is not None
    return p.task


def assert_next_clones_agree(k: Kernel, k2: Kernel, n: int = 3) -> int:
    """In every namespace that admits pids, the next ``n`` clones get the same numbers and
    pidfs inodes in both kernels. Returns how many namespaces were tried."""
    tried = 0
    for ns in k.namespaces():
        parent = next((p.task for _, p in ns.idr.items() if p.task is not None and p.task.alive
                       and not p.task.group.group_exit and p.task.group.uid == 0
                       and p.task.ns_for_children is ns), None)
        if parent is None or not ns.adding:
            continue
        tried += 1
        p2 = twin(k, k2, parent)
        for _ in range(n):
            try:
                a = k.clone(parent)
            except KernelError as e:
                with pytest.raises(KernelError) as ei:
                    k2.clone(p2)
                assert ei.value.errno == e.errno
                break
            b = k2.clone(p2)
            assert (a.task.pid.numbers, a.task.pid.ino) == (b.task.pid.numbers, b.task.pid.ino)
    return tried


# -- randomized tables built with the kernel API ------------------------------------------------


def alive_tasks(k: Kernel) -> list[Task]:
    return [p.task for _, p in k.root_ns.idr.items() if p.task is not None and p.task.alive]


class NothingToPick(Exception):
    """``build_random`` found no task to act on: that step is skipped."""


def build_random(seed: int, steps: int = 250) -> Kernel:
    """A table reached by random system calls: nested namespaces, wrapped cursors, zombies,
    daemonized sessions, stopped groups, exec by threads, handles in fd tables, xattrs."""
    rnd = random.Random(seed)
    ticks = itertools.count()
    k = Kernel(clock=lambda: next(ticks) * 1_000_000, pid_max=rnd.choice([400, 1000, 32768]))
    if rnd.random() < 0.5:
        k.set_last_pid(k.root_ns, k.root_ns.pid_max - rnd.randint(2, 20))  # wraps soon

    def pick() -> Task:
        ts = alive_tasks(k)
        if not ts:
            raise NothingToPick
        return rnd.choice(ts)

    def any_task() -> Task:
        ts = [p.task for _, p in k.root_ns.idr.items() if p.task is not None]
        if not ts:
            raise NothingToPick
        return rnd.choice(ts)

    def op_clone() -> None:
        p = pick()
        flags, es = 0, S.SIGCHLD
        r = rnd.random()
        if r < 0.08:
            flags |= CLONE_NEWPID
        elif r < 0.2:
            flags |= CLONE_PIDFD | (CLONE_WAIT_PID if rnd.random() < 0.4 else 0)
        elif r < 0.27:
            flags |= CLONE_AUTOREAP
            es = 0
        elif r < 0.32:
            es = rnd.choice([0, S.SIGUSR1])
        set_tid: tuple[int, ...] = ()
        if rnd.random() < 0.15:
            ns = p.ns_for_children
            set_tid = (rnd.randint(2, min(ns.pid_max, 5000) - 1),)
        uid = rnd.choice([None, None, 1000, 33]) if p.group.uid == 0 else None
        k.clone(p, flags, exit_signal=es, set_tid=set_tid, uid=uid,
                comm=rnd.choice([None, "worker", "a) (b", "x" * 20]))

    def op_thread() -> None:
        p = pick()
        for _ in range(rnd.randint(1, 3)):
            k.clone(p, CLONE_THREAD, comm=rnd.choice([None, "th"]))

    def op_exit() -> None:
        t = pick()
        if rnd.random() < 0.5:
            k.exit(t, rnd.randint(0, 255))
        else:
            k.exit_group(t, rnd.randint(0, 255))

    def op_kill() -> None:
        sig = rnd.choice([S.SIGTERM, S.SIGKILL, S.SIGSTOP, S.SIGTSTP, S.SIGCONT, S.SIGHUP,
                          S.SIGSEGV, S.SIGUSR1, S.SIGCHLD, S.SIGTTIN])
        k.kill(any_task(), sig)

    def op_wait() -> None:
        t = pick()
        opts = WEXITED | rnd.choice([0, WNOHANG, WSTOPPED, WALL, WALL | WSTOPPED])
        if t.children and rnd.random() < 0.5:
            c = rnd.choice(list(t.children))
            k.waitid(t, P_PID, c.pid.nr_in(t.pid.ns), opts | WNOHANG)
        else:
            k.waitid(t, P_ALL, 0, opts | WNOHANG)

    def op_exec() -> None:
        t = pick()
        k.execve(t, rnd.choice(["sh", "python3", "exec'd"]), ["arg", str(rnd.random())],
                 exe=rnd.choice([None, "/bin/sh"]))

    def op_setsid() -> None:
        k.setsid(pick())

    def op_setpgid() -> None:
        t = pick()
        ns = t.pid.ns
        if t.group.parent is not None and rnd.random() < 0.6:
            parent = t.group.parent
            sib = rnd.choice([c for th in parent.group.threads for c in th.children or ()] or [t])
            k.setpgid(parent, t.pid.nr_in(parent.pid.ns), sib.pid.nr_in(parent.pid.ns))
        else:
            k.setpgid(t, 0, 0 if rnd.random() < 0.7 else rnd.randint(1, 50))
        del ns

    def op_subreaper() -> None:
        k.set_child_subreaper(pick(), rnd.random() < 0.7)

    def op_unshare() -> None:
        k.unshare_pid_ns(pick())

    def op_setns() -> None:
        t = pick()
        nss = [ns for ns in k.namespaces() if t.active_ns.is_ancestor_of(ns)]
        k.setns_pid(t, rnd.choice(nss))

    def op_pid_max() -> None:
        ns = rnd.choice(list(k.namespaces()))
        k.set_pid_max(ns, rnd.choice([301, 350, 500, 4194304, 1000]))

    def op_last_pid() -> None:
        ns = rnd.choice(list(k.namespaces()))
        k.set_last_pid(ns, rnd.randint(0, ns.pid_max))

    def op_pidfd() -> None:
        holder, target = pick(), any_task()
        fd = k.pidfd_open(target.pid.ns, target.pid.nr,
                          PIDFD_THREAD if not target.is_leader or rnd.random() < 0.2 else 0)
        k.fd_install(holder, fd)

    def op_close() -> None:
        t = pick()
        if t.group.files:
            k.fd_close(t, rnd.choice(list(t.group.files)))

    def op_xattr() -> None:
        t = any_task()
        k.setxattr(t.pid, rnd.choice(["trusted.a", "trusted.b\udcff"]), bytes(rnd.randrange(256) for _ in range(5)))

    def op_fields() -> None:
        t = pick()
        pairs = rnd.sample([("state", rnd.choice("RSDTtI")), ("nice", rnd.randint(-20, 19)),
                            ("utime", rnd.randint(0, 10**6)), ("rss", rnd.randint(0, 10**5)),
                            ("environ", ["A=1", "B=é"]), ("cwd", "/tmp"), ("tty_nr", 34816),
                            ("sigign", rnd.choice(["CHLD", "PIPE,HUP", ""])), ("cutime", 7)],
                           rnd.randint(1, 3))
        set_fields(k, t, pairs)
        if rnd.random() < 0.2:
            t.group.extra = {"Seccomp": "2"}

    def op_daemonize() -> None:
        p = pick()
        a = k.clone(p).task
        b = k.clone(a).task
        k.exit_group(a, 0)
        k.waitid(p, P_PID, a.pid.nr_in(p.pid.ns), WEXITED | WNOHANG)
        k.setsid(b)
        c = k.clone(b).task
        k.exit_group(b, 0)
        w = b.group.parent
        if w is not None and w.alive:
            k.waitid(w, P_PID, b.pid.nr_in(w.pid.ns), WEXITED | WNOHANG | WALL)
        del c

    ops: list[tuple[Callable[[], None], int]] = [
        (op_clone, 30), (op_thread, 10), (op_exit, 8), (op_kill, 8), (op_wait, 8), (op_exec, 4),
        (op_setsid, 4), (op_setpgid, 4), (op_subreaper, 3), (op_unshare, 2), (op_setns, 2),
        (op_pid_max, 2), (op_last_pid, 3), (op_pidfd, 6), (op_close, 2), (op_xattr, 3),
        (op_fields, 6), (op_daemonize, 3)]
    funcs = [f for f, _ in ops]
    weights = [w for _, w in ops]
    for _ in range(steps):
        f = rnd.choices(funcs, weights)[0]
        try:
            f()
        except (KernelError, NothingToPick):
            pass  # a call the model refused, or no task to make it; anything else is a bug
    return k


# -- round trips ----------------------------------------------------------------------------------


def test_default_scenario_round_trips_identically() -> None:
    k = scenario.load_default(clock=zero).kernel
    d, k2 = round_trip(k)
    assert d["tasks"] == k.nr_threads and d["processes"] >= 30
    assert any("pid" in r and r["allocated"] and r["tagged"] for r in d["records"]), \
        "the daemonized cron's session id comes back as a pid with no task"
    assert_next_clones_agree(k, k2)


def test_daemonized_session_comes_back_tagged_without_a_task() -> None:
    sc = scenario.load_default(clock=zero)
    cron = sc.tasks["cron"]
    sid = cron.group.session
    assert sid.task is None and sid.tgid_task is None
    _, k2 = round_trip(sc.kernel)
    sid2 = k2.find_pid(k2.root_ns, sid.nr)
    assert sid2 is not None and sid2.task is None and sid2.ino == sid.ino
    assert k2.root_ns.idr.is_tagged(sid.nr)
    listed = [nr for nr, _ in k2.iter_tgids(k2.root_ns)]
    assert sid.nr not in listed  # a tagged false positive, skipped by the scan
    assert twin(sc.kernel, k2, cron).group.session is sid2


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")
                                        if p.name != "threads-100k.toml"))
def test_example_scenarios_round_trip(name: str) -> None:
    k = scenario.load(EXAMPLES / name, clock=zero).kernel
    _, k2 = round_trip(k)
    assert_next_clones_agree(k, k2)


@pytest.mark.parametrize("seed", range(40))
def test_random_tables_round_trip_and_clone_alike(seed: int) -> None:
    k = build_random(seed)
    _, k2 = round_trip(k)
    assert_next_clones_agree(k, k2)


def test_random_tables_cover_the_hard_cases() -> None:
    """The generator reaches what the round trip must carry (else the tests above prove less)."""
    seen: set[str] = set()
    for seed in range(40):
        k = build_random(seed)
        for ns in k.namespaces():
            if ns.level >= 2:
                seen.add("nested")
            if not ns.adding and len(ns.idr):
                seen.add("dead namespace with pids")
            for t in (ns.child_reaper, ns.creator):
                if isinstance(t, Task) and t.pid.task is not t:
                    seen.add("released task still referenced")
            if ns.level == 0 and ns.idr.cursor > 300 and any(
                    nr < ns.idr.cursor - 200 for nr, _ in ns.idr.items() if nr >= 300):
                seen.add("wrapped")
        for _, p in k.root_ns.idr.items():
            t = p.task
            if t is None:
                seen.add("pid held as pgid/sid only")
                continue
            g = t.group
            if t.exit_state is ExitState.ZOMBIE:
                seen.add("zombie leader with live threads" if g.live else "zombie")
                if g.group_exit:
                    seen.add("group exit")
            if g.stopped:
                seen.add("stopped")
            if g.pending:
                seen.add("pending")
            if g.files:
                seen.add("fd table")
                if any(not f.pid.allocated for f in g.files.values()):
                    seen.add("handle on a freed pid")
            if p.attr is not None and p.attr.xattrs:
                seen.add("xattrs")
            if t.pid_ns_for_children is not None:
                seen.add("pid_for_children")
            if len(p.numbers) > 1:
                seen.add("pid in a child namespace")
    assert seen >= {"nested", "zombie", "zombie leader with live threads", "group exit", "stopped",
                    "fd table", "handle on a freed pid", "xattrs", "pid_for_children",
                    "pid held as pgid/sid only", "pid in a child namespace", "wrapped",
                    "dead namespace with pids", "released task still referenced"}, seen


def test_a_dead_namespace_keeps_refusing_and_its_reaper_comes_back() -> None:
    k = Kernel(clock=zero)
    outer = k.clone(k.init).task
    init2 = k.clone(outer, CLONE_NEWPID).task
    k.clone(init2)
    zombie_child = k.clone(outer, set_tid=()).task  # outside: stays
    k.setns_pid(outer, init2.active_ns)
    member = k.clone(outer).task  # a member of the namespace whose parent is outside
    k.exit(member, 3)
    k.kill(init2, S.SIGKILL)  # init dies: the namespace stops admitting pids
    ns = init2.active_ns
    assert not ns.adding and ns.child_reaper is init2 and member.exit_state is ExitState.ZOMBIE
    _, k2 = round_trip(k)
    ns2 = next(n for n in k2.namespaces() if n.inum == ns.inum)
    assert ns2.child_reaper is not None and ns2.child_reaper.comm == init2.comm
    assert ns2.child_reaper.pid.ino == init2.pid.ino
    with pytest.raises(KernelError) as e:
        k2.clone(twin(k, k2, outer))
    assert e.value.errno == errno.ENOMEM
    del zombie_child


def test_zombie_leader_with_live_threads_keeps_its_own_code() -> None:
    k = Kernel(clock=zero)
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    k.exit(p, 7)  # the leader exits early; its thread lives on
    _, k2 = round_trip(k)
    p2 = twin(k, k2, p)
    assert p2.exit_state is ExitState.ZOMBIE and p2.exit_code == 7 << 8 and p2.group.live == 1
    k.exit_group(th, 9)
    k2.exit_group(twin(k, k2, th), 9)
    r1 = k.waitid(k.init, P_PID, p.pid.nr, WEXITED)
    r2 = k2.waitid(k2.init, P_PID, p.pid.nr, WEXITED)
    assert (r1.kind, r1.code, r1.status) == (r2.kind, r2.code, r2.status) == ("exited", 9, 9 << 8)


def test_handles_exit_records_and_xattrs_survive() -> None:
    k = Kernel(clock=zero)
    c = k.clone(k.init, CLONE_PIDFD | CLONE_WAIT_PID)
    k.setxattr(c.task.pid, "trusted.note", b"\x00\xffhello")
    k.exit_group(c.task, 4)
    k.waitid(k.init, P_PID, c.task.pid.nr, WEXITED)  # reaped: only the handle holds the pid
    assert not c.pidfd.pid.allocated and c.pidfd.pid.attr.exit is not None
    _, k2 = round_trip(k)
    fd2 = k2.init.group.files[c.fd]
    assert fd2.pid.ino == c.pidfd.pid.ino and not fd2.pid.allocated
    assert k2.exit_info(fd2.pid).exit_code == 4 << 8
    assert fd2.pid.attr.xattrs == {"trusted.note": b"\x00\xffhello"}
    assert fd2.pid.handles == 1
    with pytest.raises(KernelError) as e:
        k2.pidfd_send_signal(fd2, S.SIGTERM)
    assert e.value.errno == errno.ESRCH


def test_uptime_continues_from_the_snapshot() -> None:
    k = scenario.load_default(clock=lambda: 5_000_000_000).kernel
    d = snap.dump(k)
    k2 = snap.restore(d, clock=lambda: 2_000)
    assert k2.clock() == d["clock"] + 2_000
    assert d["clock"] == k.clock()
    k3 = snap.restore(d)  # monotonic base: starts at the snapshot's uptime
    assert d["clock"] <= k3.clock() < d["clock"] + 60 * 10**9


def test_threads_beyond_a_chunk_go_to_more_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snap, "CHUNK", 3)
    k = Kernel(clock=zero)
    p = k.clone(k.init).task
    for _ in range(7):
        k.clone(p, CLONE_THREAD)
    d, k2 = round_trip(k)
    proc = next(r for r in d["records"] if r.get("process") == p.pid.ino)
    i = d["records"].index(proc)
    assert proc["nthreads"] == 8 and len(proc["threads"]) == 3
    assert [len(r["more"]) for r in d["records"][i + 1:i + 3]] == [3, 2]
    assert [t.pid.ino for t in twin(k, k2, p).group.threads] == [t.pid.ino for t in p.group.threads]


def test_restore_reports_progress() -> None:
    k = Kernel(clock=zero)
    p = k.clone(k.init).task
    for _ in range(9000):
        k.clone(p, CLONE_THREAD)
    calls: list[tuple[int, int]] = []
    snap.restore(snap.dump(k), clock=zero, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 9002) and calls[-1] == (9002, 9002)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) >= 3


def test_scenario_loader_reports_progress() -> None:
    calls: list[tuple[int, int]] = []
    data = {"process": [{"name": "fat", "threads": 9000}, {"name": "b", "threads": [{"count": 3000}]}]}
    scenario.load_data(data, clock=zero, progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert total == 1 + 1 + 9000 + 1 + 3000
    assert calls[-1] == (total, total) and len(calls) >= 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# -- files ------------------------------------------------------------------------------------


def test_file_round_trip_is_identical_and_ascii(tmp_path: Path) -> None:
    k = build_random(3)
    k.clone(k.init, comm="naïve\udcff")
    f1, f2 = tmp_path / "a.snap", tmp_path / "b.snap"
    n = snap.write_snapshot(k, f1)
    assert n == k.nr_threads
    k2 = snap.restore_file(f1, clock=zero)
    snap.write_snapshot(k2, f2)
    b1, b2 = f1.read_bytes(), f2.read_bytes()
    assert b1.isascii()
    h1, h2 = json.loads(b1.split(b"\n", 1)[0]), json.loads(b2.split(b"\n", 1)[0])
    assert h2["clock"] == h1["clock"]  # the zero base clock: uptime did not move
    assert b1 == b2
    assert picture(k2) == picture(k)
    assert oct(f1.stat().st_mode & 0o777) == "0o600"


def test_a_whole_dump_document_is_read_too(tmp_path: Path) -> None:
    k = scenario.load_default(clock=zero).kernel
    f = tmp_path / "doc.json"
    f.write_text(json.dumps(snap.dump(k)))
    assert snap.dump(snap.restore_file(f, clock=zero)) == snap.dump(k)


# -- errors ----------------------------------------------------------------------------------------


def _default_dump() -> dict:
    return snap.dump(scenario.load_default(clock=zero).kernel)


def _first(d: dict, pred: Callable[[dict], bool]) -> int:
    return next(i for i, r in enumerate(d["records"]) if pred(r))


def _proc(d: dict, nth: int = 1) -> int:
    return [i for i, r in enumerate(d["records"]) if "process" in r][nth]


def _set(path: list, value: object) -> Callable[[dict], str]:
    def mutate(d: dict) -> str:
        obj: Any = d
        for key in path[:-1]:
            obj = obj[key(d) if callable(key) else key]
        last = path[-1]
        obj[last(d) if callable(last) else last] = value
        return ""
    return mutate


BAD: list[tuple[str, Callable[[dict], object], str]] = [
    ("wrong format", _set(["format"], "tar"), "format: not a pidfs_fuse snapshot"),
    ("future version", _set(["version"], 2), "version: unsupported version 2"),
    ("unknown header key", _set(["colour"], 1), "colour: unknown key"),
    ("negative clock", _set(["clock"], -1), "clock: expected an integer"),
    ("thread comm not a string",
     _set(["records", _proc, "threads", 0, 2], 5), "].threads[0][2] (comm): expected a string"),
    ("thread comm too long",
     _set(["records", _proc, "threads", 0, 2], "x" * 16), "(comm): expected a string of 1..15"),
    ("bad state letter", _set(["records", _proc, "threads", 0, 3], "Q"), "(state): expected a state letter"),
    ("short thread array", lambda d: d["records"][_proc(d)]["threads"][1:] or
     d["records"][_proc(d)]["threads"][0].__delitem__(slice(2, None)), "threads[0]: expected an array of 14"),
    ("nice out of range", _set(["records", _proc, "threads", 0, 5], 40), "(nice): expected an integer in -20..19"),
    ("numbers of the wrong length",
     _set(["records", _proc, "threads", 0, 1], [5, 6]), "(numbers): expected an array of 1 pid number"),
    ("a number used twice",
     lambda d: d["records"][_proc(d, 2)]["threads"][0].__setitem__(1, list(d["records"][_proc(d, 1)]["threads"][0][1])),
     "clone with set_tid"),
    ("an inode used twice",
     lambda d: (d["records"][_proc(d, 2)]["threads"][0].__setitem__(0, d["records"][_proc(d, 1)]["process"]),
                d["records"][_proc(d, 2)].__setitem__("process", d["records"][_proc(d, 1)]["process"])),
     "(ino): pidfs inode 3 is used twice"),
    ("parent after the child",
     _set(["records", _proc, "parent"], 10**6), "].parent: 1000000 is not a task of an earlier process record"),
    ("unknown namespace", _set(["records", _proc, "ns"], 77), "].ns: no pid namespace 77"),
    ("uid a string", _set(["records", _proc, "uid"], "0"), "].uid: expected an integer"),
    ("argv not strings", _set(["records", _proc, "argv"], [1]), "].argv: expected an array of strings"),
    ("unknown process key", _set(["records", _proc, "colour"], 1), "].colour: unknown key"),
    ("nthreads a bool", _set(["records", _proc, "nthreads"], True), "].nthreads: expected an integer in 1.."),
    ("nthreads zero", _set(["records", _proc, "nthreads"], 0), "].nthreads: expected an integer in 1.."),
    ("ns a string", _set(["records", _proc, "ns"], "4026531836"), '].ns: no pid namespace "4026531836"'),
    ("threads missing", lambda d: d["records"][_proc(d)].__delitem__("threads"), "].threads: missing"),
    ("session_leader a number", _set(["records", _proc, "session_leader"], 1),
     "].session_leader: expected true or false"),
    ("rss negative", _set(["records", _proc, "rss"], -1), "].rss: expected an integer in 0.."),
    ("cwd not a string", _set(["records", _proc, "cwd"], ["/"]), "].cwd: expected a string"),
    ("the first bad group field is named", lambda d: (_set(["records", _proc, "rss"], -1)(d),
                                                      _set(["records", _proc, "stopped"], 2)(d)),
     "].stopped: expected true or false"),
    ("pgrp names no pid", _set(["records", _proc, "pgrp"], 999999), "].pgrp: 999999 is not the pidfs inode"),
    ("ns level mismatch",
     _set(["records", 1, "level"], 3), "records[1].level: is 3, but the parent's level is 0"),
    ("pid_max too small", _set(["records", 0, "pid_max"], 5), "records[0].pid_max: EINVAL: pid_max 5"),
    ("init not first",
     lambda d: d["records"].insert(_proc(d, 0), d["records"].pop(_proc(d, 1))), "the first process record is init"),
    ("record kind unknown", lambda d: d["records"].insert(2, {"zzz": 1}), "records[2]: unknown record \"zzz\""),
    ("end missing", lambda d: d["records"].pop(), "ends before the end record"),
    ("record after end", lambda d: d["records"].append({"end": True}), "record after the end record"),
    ("bad base64 xattr",
     lambda d: d["records"][_proc(d, 1)]["threads"][0].__setitem__(13, {"exit": None, "xattrs": {"trusted.x": "%%"}}),
     '(attr).xattrs["trusted.x"]: expected base64'),
    ("xattr outside trusted.",
     lambda d: d["records"][_proc(d, 1)]["threads"][0].__setitem__(13, {"exit": None, "xattrs": {"user.x": ""}}),
     "setxattr: ENOTSUP"),
    ("task count mismatch", _set(["tasks"], 3), "the header says 3"),
    ("pid record unheld",
     lambda d: (d["records"].insert(_first(d, lambda r: "end" in r), {
         "pid": d["next_ino"], "ns": 4026531836, "numbers": [31000], "allocated": True,
         "tagged": True}), d.__setitem__("next_ino", d["next_ino"] + 1)),  # type: ignore[func-returns-value]
     "pid [31000] is allocated, but no task"),
    ("handle on a pid without a pidfs record",
     _set(["records", _proc, "files"], [[3, 2, False, False, False]]),
     "].files[0][1]: pid 2 has a handle but no pidfs attr record"),
    ("file descriptor twice",
     _set(["records", _proc, "files"], [[3, 2, False, False, False], [3, 2, False, False, False]]),
     "].files[1]: descriptor 3 appears twice"),
    ("next_ino below an inode", _set(["next_ino"], 10), "expected an integer in 2"),
]


@pytest.mark.parametrize(("mutate", "message"), [(m, msg) for _, m, msg in BAD],
                         ids=[name for name, _, _ in BAD])
def test_bad_snapshot_is_einval_naming_the_entry(mutate, message) -> None:
    d = _default_dump()
    mutate(d)
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore(d, source="bad.snap")
    assert e.value.errno == errno.EINVAL
    text = str(e.value)
    assert text.startswith("bad.snap: ") and message in text, text


def test_bad_file_names_the_file_and_line(tmp_path: Path) -> None:
    k = scenario.load_default(clock=zero).kernel
    f = tmp_path / "s.snap"
    snap.write_snapshot(k, f)
    lines = f.read_text().splitlines()
    i = next(n for n, ln in enumerate(lines) if ln.startswith('{"process"') and n > 3)
    rec = json.loads(lines[i])
    rec["threads"][0][3] = "Q"
    lines[i] = json.dumps(rec)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore_file(f)
    assert e.value.errno == errno.EINVAL
    assert str(e.value).startswith(f"{f}: line {i + 1}: records[{i - 1}].threads[0][3] (state): ")


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty file"),
    (b"not json\n", "line 1: header: not JSON"),
    (b'{"format": "pidfs_fuse-snapshot", "version": 1}\n', "line 1: clock: missing"),
    (b"\xff\xfe\n", "line 1: header: not JSON"),
], ids=["empty", "garbage", "header only", "not utf-8"])
def test_garbage_files_are_einval(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "g.snap"
    f.write_bytes(content)
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore_file(f)
    assert e.value.errno == errno.EINVAL and message in str(e.value), str(e.value)


def test_truncated_file_is_einval(tmp_path: Path) -> None:
    k = build_random(5)
    f = tmp_path / "t.snap"
    snap.write_snapshot(k, f)
    data = f.read_bytes()
    for cut in (len(data) // 2, len(data) - 3, data.rindex(b"\n", 0, len(data) - 1) + 1):
        f.write_bytes(data[:cut])
        with pytest.raises(snap.SnapshotError) as e:
            snap.restore_file(f)
        assert e.value.errno == errno.EINVAL
        assert "not JSON" in str(e.value) or "ends before the end record" in str(e.value)


def test_missing_file_keeps_enoent(tmp_path: Path) -> None:
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore_file(tmp_path / "nope")
    assert e.value.errno == errno.ENOENT and str(tmp_path / "nope") in str(e.value)


@pytest.mark.fuzz
def test_every_mutated_line_loads_or_fails_with_einval(tmp_path: Path) -> None:
    """A small fuzz: flip one value in one record; restore either works or raises EINVAL,
    never another exception."""
    base = _default_dump()
    rnd = random.Random(1)
    values = [None, -1, 0, 1, 2**70, "", "x", [], {}, True, [1], {"a": 1}, 4026531836]
    for _ in range(fuzz_budget(150, 4000)):
        d = copy.deepcopy(base)
        rec = rnd.choice(d["records"])
        key = rnd.choice(list(rec))
        target, k2 = rec, key
        if isinstance(rec[key], list) and rec[key] and rnd.random() < 0.7:
            target, k2 = rec[key], rnd.randrange(len(rec[key]))
            if isinstance(target[k2], list) and target[k2] and rnd.random() < 0.7:
                target, k2 = target[k2], rnd.randrange(len(target[k2]))
        target[k2] = rnd.choice(values)
        try:
            snap.restore(d, clock=zero)
        except snap.SnapshotError as e:
            assert e.errno == errno.EINVAL, str(e)


# -- atomic writes -------------------------------------------------------------------------------


def test_failed_replace_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "s.snap"
    snap.write_snapshot(Kernel(clock=zero), f)
    old = f.read_bytes()
    k = scenario.load_default(clock=zero).kernel

    def crash(src, dst, **kw):
        raise OSError(errno.EIO, "simulated crash")
    monkeypatch.setattr(snap.os, "rename", crash)
    with pytest.raises(OSError):
        snap.write_snapshot(k, f)
    assert f.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["s.snap"]  # no temporary file left


def test_failure_mid_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "s.snap"
    snap.write_snapshot(Kernel(clock=zero), f)
    old = f.read_bytes()
    real = snap._Dumper.thread
    count = itertools.count()

    def thread(self, t):
        if next(count) == 40:
            raise OSError(errno.ENOSPC, "simulated full disk")
        return real(self, t)
    monkeypatch.setattr(snap._Dumper, "thread", thread)
    with pytest.raises(OSError):
        snap.write_snapshot(scenario.load_default(clock=zero).kernel, f)
    assert f.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["s.snap"]


def test_write_fsyncs_before_replacing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def rename(a: str, b: str, **kw: int) -> None:
        events.append("rename")
        real_rename(a, b, **kw)
    monkeypatch.setattr(snap.os, "fsync", fsync)
    monkeypatch.setattr(snap.os, "rename", rename)
    snap.write_snapshot(Kernel(clock=zero), tmp_path / "s.snap")
    assert events == ["fsync", "rename", "fsync"]  # the file, then the directory


# -- control ---------------------------------------------------------------------------------------


def test_control_snapshot_writes_and_replies(tmp_path: Path) -> None:
    k = scenario.load_default(clock=zero).kernel
    f = tmp_path / "c.snap"
    reply = Control(k).execute(f"snapshot {f}")
    assert reply == f"snapshot {f}: {k.nr_threads} tasks\n"
    assert snap.dump(snap.restore_file(f, clock=zero)) == snap.dump(k)


@pytest.mark.parametrize(("arg", "err"), [
    ("relative.snap", errno.EINVAL), ("/nonexistent-dir/x.snap", errno.ENOENT)],
    ids=["relative path", "missing directory"])
def test_control_snapshot_errors(arg: str, err: int) -> None:
    k = Kernel(clock=zero)
    with pytest.raises(KernelError) as e:
        Control(k).execute(f"snapshot {arg}")
    assert e.value.errno == err and arg in str(e.value)


def _fake_pidfs_mount(monkeypatch: pytest.MonkeyPatch, top: Path) -> None:
    """Make every directory at or below ``top`` look like a pidfs-fuse mount to the writer."""
    real = snap.mount_of_fd

    def mount_of_fd(fd: int) -> tuple[str, str] | None:
        here = os.readlink(f"/proc/self/fd/{fd}")
        if here == str(top) or here.startswith(f"{top}/"):
            return (snap.PIDFS_FSTYPE, str(top))
        return real(fd)
    monkeypatch.setattr(snap, "mount_of_fd", mount_of_fd)


def test_control_snapshot_refuses_a_file_inside_a_pidfs_mount(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    top = tmp_path / "some mount"
    (top / "sub").mkdir(parents=True)
    _fake_pidfs_mount(monkeypatch, top)
    with pytest.raises(KernelError) as e:
        Control(Kernel(clock=zero)).execute(f"snapshot '{top}/sub/x.snap'")
    assert e.value.errno == errno.EINVAL
    assert str(e.value) == f"{top}/sub/x.snap: is inside the pidfs-fuse mount {top}, which cannot store files"
    assert os.listdir(top / "sub") == []


def test_a_symlink_into_a_pidfs_mount_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = tmp_path / "mnt"
    top.mkdir()
    _fake_pidfs_mount(monkeypatch, top)
    (tmp_path / "link").symlink_to(top / "x.snap")  # dangling: its target would be created
    (tmp_path / "dirlink").symlink_to(top)
    for path in (tmp_path / "link", tmp_path / "dirlink" / "y.snap"):
        with pytest.raises(snap.SnapshotError) as e:
            snap.write_snapshot(Kernel(clock=zero), path)
        assert e.value.errno == errno.EINVAL
        assert f"{path}: is inside the pidfs-fuse mount {top} (it resolves to {top}/" in str(e.value)
    assert os.listdir(top) == [] and (tmp_path / "link").is_symlink()


def test_a_symlink_is_resolved_and_its_target_replaced(tmp_path: Path) -> None:
    target = tmp_path / "real.snap"
    target.write_text("old\n")
    link = tmp_path / "link.snap"
    link.symlink_to(target)
    k = scenario.load_default(clock=zero).kernel
    snap.write_snapshot(k, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert snap.dump(snap.restore_file(target, clock=zero)) == snap.dump(k)
    dangling = tmp_path / "dangling.snap"
    dangling.symlink_to(tmp_path / "new.snap")
    snap.write_snapshot(k, dangling)
    assert dangling.is_symlink() and (tmp_path / "new.snap").is_file()


def _special_files(tmp_path: Path) -> list[tuple[str, str, int, str]]:
    """(path, kind, errno, sentence) of one of each kind of file a snapshot must not replace."""
    d = tmp_path / "dir"
    d.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    return [
        (str(d), "a directory", errno.EISDIR, f"{d}: is a directory; a snapshot is written only to a regular file"),
        ("/dev/null", "a character device", errno.EINVAL,
         "/dev/null: is a character device; a snapshot replaces only a regular file"),
        (str(fifo), "a FIFO", errno.EINVAL, f"{fifo}: is a FIFO; a snapshot replaces only a regular file"),
        (str(sock), "a socket", errno.EINVAL, f"{sock}: is a socket; a snapshot replaces only a regular file"),
    ]


def test_only_a_regular_file_is_replaced(tmp_path: Path) -> None:
    cases = _special_files(tmp_path)
    before = {p: os.lstat(p) for p, *_ in cases}
    listing = sorted(os.listdir(tmp_path))
    for path, _kind, err, sentence in cases:
        with pytest.raises(snap.SnapshotError) as e:
            snap.write_snapshot(Kernel(clock=zero), path)
        assert (e.value.errno, str(e.value)) == (err, sentence)
        with pytest.raises(KernelError) as e2:  # the control command says the same, once
            Control(Kernel(clock=zero)).execute(f"snapshot {path}")
        assert (e2.value.errno, str(e2.value)) == (err, sentence)
        after = os.lstat(path)
        assert (after.st_ino, after.st_mode) == (before[path].st_ino, before[path].st_mode)
    assert sorted(os.listdir(tmp_path)) == listing  # no temporary file left
    with pytest.raises(snap.SnapshotError) as e:
        snap.write_snapshot(Kernel(clock=zero), "/")
    assert e.value.errno == errno.EISDIR


def test_control_snapshot_splits_model_work_from_file_io(tmp_path: Path) -> None:
    """``Call.split`` encodes the table at once and leaves only file I/O for the worker thread:
    a change to the model between the two does not reach the file."""
    k = scenario.load_default(clock=zero).kernel
    c = Control(k)
    f = tmp_path / "s.snap"
    io = c.parse(f"snapshot {f}").split()
    assert io is not None and not f.exists()
    before = snap.dump(k)
    c.execute("clone 1")
    assert io() == f"snapshot {f}: {before['tasks']} tasks\n"
    assert snap.dump(snap.restore_file(f, clock=zero)) == before
    assert c.parse("ps").split() is None


def test_cli_progress_prints_nothing_when_stderr_is_not_a_tty(capsys: pytest.CaptureFixture) -> None:
    from pidfs_fuse import cli

    report = cli._progress("restoring")
    if report is not None:
        report(20_000, 50_000)
        report(50_000, 50_000)
    assert capsys.readouterr().err == ""


def test_the_mount_writes_a_snapshot_off_its_serving_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import trio

    from pidfs_fuse import control
    from pidfs_fuse.mount.control_file import run_call

    writers: list[int] = []
    real = control.write_lines

    def write_lines(path: str, lines: list[str]) -> None:
        writers.append(threading.get_ident())
        real(path, lines)
    monkeypatch.setattr(control, "write_lines", write_lines)
    k = Kernel(clock=zero)
    f = tmp_path / "s.snap"
    call = Control(k).parse(f"snapshot {f}")
    assert trio.run(run_call, call) == f"snapshot {f}: 1 tasks\n"
    assert len(writers) == 1 and writers[0] != threading.get_ident()


def test_a_restore_over_the_cap_fails_before_building_naming_the_file(tmp_path: Path) -> None:
    k = scenario.load_default(clock=zero).kernel
    f = tmp_path / "t.snap"
    n = snap.write_snapshot(k, f)
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore_file(f, clock=zero, max_tasks=n - 1)
    assert e.value.errno == errno.EAGAIN
    assert str(e.value) == (f"{f}: holds {n} tasks, more than this mount's --max-tasks allows "
                            f"({n - 1}); nothing was restored")
    k2 = snap.restore_file(f, clock=zero, max_tasks=n)  # the cap itself fits, and stays
    assert k2.max_threads == n
    with pytest.raises(KernelError) as ke:
        k2.clone(k2.init)
    assert ke.value.errno == errno.EAGAIN


def test_a_restore_stops_at_records_beyond_the_header_count(tmp_path: Path) -> None:
    k = scenario.load_default(clock=zero).kernel
    f = tmp_path / "t.snap"
    snap.write_snapshot(k, f)
    head, rest = f.read_text().split("\n", 1)
    h = json.loads(head)
    h["tasks"] = 3  # the cap trusts the header: more records than it says stop the restore
    f.write_text(json.dumps(h) + "\n" + rest)
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore_file(f, clock=zero, max_tasks=3)
    assert e.value.errno == errno.EINVAL
    assert "the records hold more than 3 task(s); the header says 3" in str(e.value)


@pytest.mark.parametrize("raw", [b'{"a":[1,2.5,"\\u00e9",null,true]}\n', b'{"a":1}  \t\r\n', b'  {"a":1}\n',
                                 b'\xef\xbb\xbf{"a":1}\n', '{"a":"\u00e9"}\n'.encode(), b"[1]",
                                 '{"a":1}\n'.encode("utf-16")])
def test_a_line_reads_as_json_loads_reads_it(raw: bytes) -> None:
    assert snap._json_line(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [b'{"a":1} x\n', b'{"a":1}\x0c\n', b'{"a":\n', b"\xff{}\n", b"", b"\n",
                                 b'{"a":1}{"b":2}\n'])
def test_a_bad_line_fails_as_json_loads_fails(raw: bytes) -> None:
    with pytest.raises(ValueError) as want:
        json.loads(raw)
    with pytest.raises(ValueError) as got:
        snap._json_line(raw)
    assert (type(got.value), str(got.value)) == (type(want.value), str(want.value))


def test_a_field_a_record_leaves_out_is_the_default_not_what_the_parent_had() -> None:
    k = Kernel()
    parent = k.clone(k.init, comm="p").task
    for key, value in (("cwd", "/srv"), ("rss", 77), ("tty_nr", 1025), ("environ", ("A=1",))):
        setattr(parent.group, key, value)
    child = k.clone(parent, comm="c").task  # inherits them
    for key in ("cwd", "rss", "tty_nr", "environ"):
        setattr(child.group, key, {"cwd": "/", "rss": 0, "tty_nr": 0, "environ": ()}[key])
    d = snap.dump(k)
    rec = next(r for r in d["records"] if r.get("process") == child.pid.ino)
    assert not {"cwd", "rss", "tty_nr", "environ"} & set(rec)
    k2 = snap.restore(d)
    g2 = k2.find_task(k2.root_ns, child.pid.nr).group
    assert (g2.cwd, g2.rss, g2.tty_nr, g2.environ) == ("/", 0, 0, ())
    p2 = k2.find_task(k2.root_ns, parent.pid.nr).group
    assert (p2.cwd, p2.rss, p2.tty_nr, p2.environ) == ("/srv", 77, 1025, ("A=1",))


@pytest.mark.parametrize(("col", "value", "message"), [
    (5, True, "threads[3][5] (nice): expected an integer in -20..19, got true"),
    (4, 1.0, "threads[3][4] (start_time): expected nanoseconds since boot >= 0, got 1.0"),
    (2, None, "threads[3][2] (comm): expected a string of 1..15 characters, got null"),
    (0, "leader", "threads[3][0] (ino): pidfs inode {leader} is used twice"),
    (0, "thread", "threads[3][0] (ino): pidfs inode {thread} is used twice"),
], ids=["bool nice", "float start", "null comm", "the leader's inode", "an earlier thread's inode"])
def test_a_bad_thread_among_ordinary_ones_is_named(col: int, value: object, message: str) -> None:
    """Ordinary threads are checked as they are made (ExactPids.threads with ino_below): a
    bad column of one thread among ordinary ones is named by the thread's own checks, with
    the tasks before it made and nothing returned."""
    k = Kernel(clock=zero)
    p = k.clone(k.init).task
    for _ in range(5):
        k.clone(p, CLONE_THREAD)
    d = snap.dump(k)
    rec = next(r for r in d["records"] if r.get("process") == p.pid.ino)
    leader, thread = rec["threads"][0][0], rec["threads"][2][0]
    rec["threads"][3][col] = {"leader": leader, "thread": thread}.get(value, value)  # type: ignore[call-overload]
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore(d, source="bad.snap")
    assert e.value.errno == errno.EINVAL
    i = d["records"].index(rec)
    assert str(e.value) == f"bad.snap: records[{i}]." + message.format(leader=leader, thread=thread)


def test_the_tables_cap_is_written_and_restored_below_the_mounts(tmp_path: Path) -> None:
    """kernel.threads-max goes into the header as max_tasks (root may have written it, even
    below the tasks there are); a restore keeps it unless this mount's --max-tasks is lower."""
    k = scenario.load_default(clock=zero).kernel
    n = k.nr_threads
    k.max_threads = n - 3  # lowered below the table: clones wait, nothing else changes
    f = tmp_path / "c.snap"
    snap.write_snapshot(k, f)
    assert json.loads(f.read_text().splitlines()[0])["max_tasks"] == n - 3
    assert snap.restore_file(f, clock=zero).max_threads == n - 3
    assert snap.restore_file(f, clock=zero, max_tasks=n * 10).max_threads == n - 3
    with pytest.raises(snap.SnapshotError):  # the mount's own cap still refuses the table
        snap.restore_file(f, clock=zero, max_tasks=n - 1)
    k.max_threads = None
    snap.write_snapshot(k, f)  # no cap, as a table built with the API: no key, the mount's cap
    assert "max_tasks" not in json.loads(f.read_text().splitlines()[0])
    assert snap.restore_file(f, clock=zero, max_tasks=n + 5).max_threads == n + 5
    assert snap.restore_file(f, clock=zero).max_threads is None


@pytest.mark.parametrize("value", [0, 2**30, -1, "100", True, 1.5])
def test_a_bad_max_tasks_in_the_header_is_refused_with_its_path(tmp_path: Path, value) -> None:
    k = scenario.load_default(clock=zero).kernel
    k.max_threads = 1000
    f = tmp_path / "c.snap"
    snap.write_snapshot(k, f)
    lines = f.read_text().splitlines()
    header = json.loads(lines[0])
    header["max_tasks"] = value
    f.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore_file(f, clock=zero)
    assert e.value.errno == errno.EINVAL
    assert str(e.value).startswith(f"{f}: line 1: max_tasks: expected an integer in 1..1073741823, "
                                   "got "), str(e.value)
