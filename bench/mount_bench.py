"""Benchmarks through a real mount, side by side with this machine's /proc in the same run.

- open+read+close of /<pid>/status and /<pid>/stat beside the do-nothing pyfuse3 server's
  (``floor_server.py``; goal <= 1.2x) and the real /proc; stat beside the real /proc (goal
  <= 1.2x)
- ``ps -ef`` per process over 1,000 emulated processes vs over the real /proc (goal <= 5x), and
  the FUSE requests one warm ``ps -ef`` costs the server, by type (whole tools at 100,000
  processes: ``tools_bench.py``)

Each figure is the median of ``rounds.ROUNDS`` interleaved rounds with its spread; ratios are
taken inside a round (``rounds.py``). The file benchmarks run with this process on one CPU and
the mount's and the floor's servers on another (``pinned``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from pidfs_fuse.client import PidfsMount, mount_table, request_counts, request_delta

from . import rounds
from .floor import Floor
from .floor import read_file as _read


def Mounted(**table) -> PidfsMount:
    """A table served by a child process of this one (``table`` as ``mount_table``'s); a
    context manager that unmounts it."""
    return mount_table(prefix="pidfs-bench-", **table)


def _per_op(paths: list[str], op: Callable[[str], object], n: int) -> float:
    k = len(paths)
    t0 = time.perf_counter()
    for i in range(n):
        op(paths[i % k])
    return (time.perf_counter() - t0) / n


def _stat_at(dirfd: int) -> Callable[[str], object]:
    return lambda p: os.stat(p, dir_fd=dirfd)


def _gone_ok(op: Callable[[str], object]) -> Callable[[str], object]:
    """``op`` on a real /proc path, where a process listed a moment ago may have exited."""
    def run(p: str) -> object:
        try:
            return op(p)
        except (FileNotFoundError, ProcessLookupError):
            return None
    return run


@contextlib.contextmanager
def pinned(*server_pids: int) -> Iterator[None]:
    """This process on one CPU and the servers' threads on another while the block runs, so
    that every request, to the mount or to the floor, costs the same cross-CPU wakeup (left
    to the scheduler, client and server share a CPU in some runs and not in others, which
    moved the floor's time by a quarter between runs). No change on a one-CPU machine."""
    mine = os.sched_getaffinity(0)
    cpus = sorted(mine)
    if len(cpus) < 2:
        yield
        return
    client_cpu, server_cpu = cpus[0], cpus[1]
    threads = [int(t) for pid in server_pids for t in os.listdir(f"/proc/{pid}/task")]
    before = {t: os.sched_getaffinity(t) for t in threads}
    try:
        os.sched_setaffinity(0, {client_cpu})
        for t in threads:
            os.sched_setaffinity(t, {server_cpu})
        yield
    finally:
        os.sched_setaffinity(0, mine)
        for t, cpus_t in before.items():
            with contextlib.suppress(OSError):  # a server gone already
                os.sched_setaffinity(t, cpus_t)


def real_pids() -> list[str]:
    return [n for n in os.listdir("/proc") if n.isdigit() and os.path.exists(f"/proc/{n}/stat")]


def bench_files(quick: bool) -> list[dict]:
    """stat and open+read+close of status and stat, on the mount, on the real /proc and on the
    floor server (open+read+close of its cached file), each round all of them in turn."""
    n = 500 if quick else 2000
    rows = []
    with Mounted() as m, Floor() as floor:
        m.clone(1, comm="bench", count=1000)
        mpids = [x for x in os.listdir(m.path) if x.isdigit()]
        rpids = real_pids()
        mroot = os.open(m.path, os.O_RDONLY | os.O_DIRECTORY)
        rroot = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
        sides: dict[str, Callable[[], float]] = {}
        for fname in ("status", "stat"):
            mp = [os.path.join(m.path, p, fname) for p in mpids]
            rp = [f"/proc/{p}/{fname}" for p in rpids]
            for p in mp:  # warm: lookups and page cache, as a second reader finds them
                _read(p)
                _read(p)
            sides[f"read {fname} mount"] = functools.partial(_per_op, mp, _read, n)
            sides[f"read {fname} proc"] = functools.partial(_per_op, rp, _gone_ok(_read), n)
            # stat relative to each root (a directory descriptor), so both path walks are
            # ``<pid>/<file>``, not a longer mount path against /proc's, over as many files
            # on each side (1,000 files' dentries and inodes fill more CPU cache than ~100)
            sides[f"stat {fname} mount"] = functools.partial(
                _per_op, [f"{p}/{fname}" for p in mpids[:len(rpids)]], _stat_at(mroot), n)
            sides[f"stat {fname} proc"] = functools.partial(
                _per_op, [f"{p}/{fname}" for p in rpids], _gone_ok(_stat_at(rroot)), n)
            sides[f"read {fname} floor"] = functools.partial(floor.open_read_close, n, len(mp))
        try:
            assert floor.proc is not None
            with pinned(m.server_pid, floor.proc.pid):
                got = rounds.interleave(sides)
        finally:
            os.close(mroot)
            os.close(rroot)
    for fname in ("status", "stat"):
        mount, proc, fl = (got[f"read {fname} {s}"] for s in ("mount", "proc", "floor"))
        r = rounds.ratio_fields(mount, fl)
        rows.append(dict(bench=f"open+read+close /<pid>/{fname}", **rounds.figure("mount_us", mount, 1e6),
                         floor_us=rounds.median(fl) * 1e6, proc_us=rounds.median(proc) * 1e6, **r,
                         proc_ratio=rounds.median(rounds.ratios(mount, proc)),
                         goal="<= 1.2x floor", ok=r["ratio"] <= 1.2))
        mount, proc = got[f"stat {fname} mount"], got[f"stat {fname} proc"]
        r = rounds.ratio_fields(mount, proc)
        rows.append(dict(bench=f"stat /<pid>/{fname}", **rounds.figure("mount_us", mount, 1e6),
                         proc_us=rounds.median(proc) * 1e6, **r, goal="<= 1.2x /proc",
                         ok=r["ratio"] <= 1.2))
    return rows


def _ps_cmd(root: str | os.PathLike[str] | None, ps: str) -> list[str]:
    bind = f"mount --bind {root} /proc && " if root is not None else ""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{bind}{ps}"]


def _ps_time(root: str | os.PathLike[str] | None) -> float:
    t0 = time.perf_counter()
    subprocess.run(_ps_cmd(root, "ps -ef > /dev/null"), check=True)
    return time.perf_counter() - t0


def _nproc(root: str | os.PathLike[str] | None) -> int:
    out = subprocess.run(_ps_cmd(root, "ps -e --no-headers"), capture_output=True, text=True)
    return len(out.stdout.splitlines())


def bench_ps(quick: bool) -> list[dict]:
    with Mounted() as m:
        m.clone(1, comm="bench", count=1000)
        _ps_time(m.path)  # warm the caches, as a second ps would find them
        nm, nr = _nproc(m.path), _nproc(None)
        got = rounds.interleave({"mount": lambda: _ps_time(m.path) / nm,
                                 "proc": lambda: _ps_time(None) / nr})
        requests = _requests_of(m.path, lambda: _ps_time(m.path))
    r = rounds.ratio_fields(got["mount"], got["proc"])
    return [dict(bench=f"ps -ef per process ({nm} emulated vs {nr} real)",
                 **rounds.figure("mount_us", got["mount"], 1e6),
                 proc_us=rounds.median(got["proc"]) * 1e6, **r, goal="<= 5x", ok=r["ratio"] <= 5,
                 requests=requests)]


def _requests_of(path: os.PathLike[str] | str, run: Callable[[], object]) -> str:
    """The FUSE requests one run of ``run`` cost the server, by type (``client.request_counts``)."""
    before = request_counts(path)
    run()
    d = request_delta(before, request_counts(path))
    return f"{sum(d.values())}: " + " ".join(f"{k} {v}" for k, v in d.items())


def run(quick: bool = False) -> list[dict]:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or shutil.which("unshare") is None:
        return [dict(bench="mount benchmarks", skipped="need root, /dev/fuse and unshare")]
    return bench_files(quick) + bench_ps(quick)


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
