"""Benchmarks through a real mount, side by side with this machine's /proc in the same run.

- stat and open+read+close of /<pid>/status and /<pid>/stat (goals: read <= 5x, stat <= 2x real)
- ``ps -ef`` per process over 1,000 emulated processes vs over the real /proc (goal <= 5x), and
  the FUSE requests one warm ``ps -ef`` costs the server, by type

Each figure is the best of several repetitions; ratios compare figures taken in the same run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from pidfs_fuse.client import PidfsMount, mount_table, request_counts, request_delta


def Mounted(**table) -> PidfsMount:
    """A table served by a child process of this one (``table`` as ``mount_table``'s); a
    context manager that unmounts it."""
    return mount_table(prefix="pidfs-bench-", **table)


def best(fn: Callable[[], float], reps: int) -> float:
    return min(fn() for _ in range(reps))


def _per_op(paths: list[str], op: Callable[[str], object], n: int) -> float:
    k = len(paths)
    t0 = time.perf_counter()
    for i in range(n):
        op(paths[i % k])
    return (time.perf_counter() - t0) / n


def _read(p: str) -> None:
    with open(p, "rb") as f:
        f.read()


def _gone_ok(op: Callable[[str], object]) -> Callable[[str], object]:
    """``op`` on a real /proc path, where a process listed a moment ago may have exited."""
    def run(p: str) -> object:
        try:
            return op(p)
        except (FileNotFoundError, ProcessLookupError):
            return None
    return run


def real_pids() -> list[str]:
    return [n for n in os.listdir("/proc") if n.isdigit() and os.path.exists(f"/proc/{n}/stat")]


def _floor_time(n: int, reps: int) -> float | None:
    """open+read+close of the floor server's one file (see floor_server.py)."""
    d = tempfile.mkdtemp(prefix="pidfs-floor-")
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "floor_server.py"), d])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(d, "f")):
            if time.monotonic() > deadline or proc.poll() is not None:
                return None
            time.sleep(0.01)
        p = [os.path.join(d, "f")]
        for _ in range(200):
            _read(p[0])
        return best(lambda: _per_op(p, _read, n), reps)
    finally:
        subprocess.run(["fusermount3", "-u", d], capture_output=True)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        try:
            os.rmdir(d)
        except OSError:
            pass


def bench_files(quick: bool) -> list[dict]:
    n = 500 if quick else 2000
    reps = 3 if quick else 5
    rows = []
    with Mounted() as m:
        m.clone(1, comm="bench", count=1000)
        mpids = [x for x in os.listdir(m.path) if x.isdigit()]
        rpids = real_pids()
        for fname in ("status", "stat"):
            mp = [os.path.join(m.path, p, fname) for p in mpids]
            rp = [f"/proc/{p}/{fname}" for p in rpids]
            for p in mp:  # warm: lookups and page cache
                _read(p)
            for what, op in (("open+read+close", _read), ("stat", os.stat)):
                tm = best(lambda: _per_op(mp, op, n), reps)
                tr = best(lambda: _per_op(rp, _gone_ok(op), n), reps)
                goal = 5.0 if what != "stat" else 2.0
                rows.append(dict(bench=f"{what} /<pid>/{fname}", mount_us=tm * 1e6, proc_us=tr * 1e6,
                                 ratio=tm / tr, goal=f"<= {goal:g}x", ok=tm / tr <= goal))
        tr = best(lambda: _per_op([f"/proc/{p}/status" for p in rpids], _gone_ok(_read), n), reps)
    tf = _floor_time(n, reps)
    if tf is not None:
        rows.append(dict(bench="open+read+close, do-nothing pyfuse3 server (floor)", mount_us=tf * 1e6,
                         proc_us=tr * 1e6, ratio=tf / tr, goal="reference", ok=True))
    return rows


def _ps_time(root: str | os.PathLike[str] | None, reps: int) -> tuple[float, int]:
    if root is None:
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", "ps -ef > /dev/null"]
        count_cmd = ["ps", "-e", "--no-headers"]
    else:
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               f"mount --bind {root} /proc && ps -ef > /dev/null"]
        count_cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                     f"mount --bind {root} /proc && ps -e --no-headers"]
    nproc = len(subprocess.run(count_cmd, capture_output=True, text=True).stdout.splitlines())

    def once() -> float:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - t0

    return best(once, reps), nproc


def bench_ps(quick: bool) -> list[dict]:
    reps = 3 if quick else 5
    with Mounted() as m:
        m.clone(1, comm="bench", count=1000)
        _ps_time(m.path, 1)  # warm the caches, as a second ps would find them
        tm, nm = _ps_time(m.path, reps)
        tr, nr = _ps_time(None, reps)
        requests = _requests_of(m.path, lambda: _ps_time(m.path, 1))
    per_m, per_r = tm / nm, tr / nr
    return [dict(bench=f"ps -ef per process ({nm} emulated vs {nr} real)", mount_us=per_m * 1e6,
                 proc_us=per_r * 1e6, ratio=per_m / per_r, goal="<= 5x", ok=per_m / per_r <= 5,
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
