"""Listings at scale (issue 13 point 1), through a real mount beside this machine's /proc.

- ``ls -f <pid>/task`` of a process with 100,000 threads (the threads-100k scenario; goal
  <= 0.6 s), beside ``ls -f /proc/<pid>/task`` of a real process of this benchmark with 2,000
  threads, per entry
- ``ls -f`` of the root with 1,000,000 processes (goal <= 6 s), beside ``ls -f /proc`` per
  entry, and the server's RSS growth during the listings (its peak, reset before them) and after
  them (goal <= 300 MB each)

Each figure is the minimum of ROUNDS interleaved rounds (the mount, then the real /proc, in each
round); ``spread`` is (max - min) / min over the rounds, and the ratio is taken inside a round
(the smallest one). ``requests`` is what one listing cost the server, by type.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from pidfs_fuse.client import mount_table, request_counts, request_delta

from .probes import status_kib

ROUNDS = 5
REAL_THREADS = 2000
SCENARIO = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / "threads-100k.toml"


def _ls(path: str | os.PathLike[str]) -> tuple[float, int]:
    """Seconds of one ``ls -f`` and the entries it printed."""
    t0 = time.perf_counter()
    out = subprocess.run(["ls", "-f", os.fspath(path)], stdout=subprocess.PIPE, check=True).stdout
    return time.perf_counter() - t0, out.count(b"\n")


def _rounds(mount_path: str, real_path: str) -> dict:
    """ROUNDS interleaved rounds of listing ``mount_path`` then ``real_path``."""
    mount, real, ratios = [], [], []
    n_mount = n_real = 0
    for _ in range(ROUNDS):
        tm, n_mount = _ls(mount_path)
        tr, n_real = _ls(real_path)
        mount.append(tm)
        real.append(tr)
        ratios.append((tm / n_mount) / (tr / n_real))
    best = min(mount)
    return dict(entries=n_mount, mount_s=best, spread=f"{(max(mount) - best) / best:.0%}",
                proc_us_per_entry=min(t / n_real for t in real) * 1e6, proc_entries=n_real,
                ratio_per_entry=min(ratios))


def _requests(mount: str | os.PathLike[str], path: str) -> str:
    before = request_counts(mount)
    _ls(path)
    d = request_delta(before, request_counts(mount))
    return f"{sum(d.values())}: " + " ".join(f"{k} {v}" for k, v in d.items())


class _RealThreads:
    """REAL_THREADS idle threads of this process, so /proc/<self>/task has something to list."""

    def __enter__(self) -> str:
        self.stop = threading.Event()
        old = threading.stack_size(64 * 1024)
        try:
            self.threads = [threading.Thread(target=self.stop.wait, daemon=True)
                            for _ in range(REAL_THREADS - 1)]
            for t in self.threads:
                t.start()
        finally:
            threading.stack_size(old)
        return f"/proc/{os.getpid()}/task"

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def bench_task(quick: bool) -> list[dict]:
    table = None if quick else SCENARIO
    with _RealThreads() as real, mount_table(table, prefix="pidfs-bench-") as m:
        if quick:
            m.pid_max(1, 4194304)
            leader = m.clone(1, comm="fat")
            m.clone(leader, thread=True, count=9_999)
        else:
            leader = next(int(p) for p in os.listdir(m.path) if p.isdigit()
                          and "Threads:\t100000\n" in (m.path / p / "status").read_text())
        path = f"{m.path}/{leader}/task"
        _ls(path)  # the first listing: the kernel's dentries, as a second ls finds them
        row = _rounds(path, real)
        requests = _requests(m.path, path)
    threads = row["entries"] - 2
    return [dict(bench=f"ls -f <pid>/task, {threads:,} threads (real: {REAL_THREADS:,})", **row,
                 goal="<= 0.6 s" if not quick else "reference",
                 ok=row["mount_s"] <= 0.6 or quick, requests=requests)]


def bench_root(quick: bool) -> list[dict]:
    count = 100_000 if quick else 1_000_000
    with mount_table(prefix="pidfs-bench-") as m:
        m.pid_max(1, 4194304)
        m.clone(1, comm="many", count=count)
        server = m.server_pid
        os.listdir(m.path / "1")  # the server has served a listing and a lookup
        before = status_kib(server, "VmRSS")
        with open(f"/proc/{server}/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS: the peak from here on is the listings'
        cold, _ = _ls(m.path)  # the first listing: the kernel makes a dentry per entry
        row = _rounds(str(m.path), "/proc")
        peak = status_kib(server, "VmHWM") - before
        after = status_kib(server, "VmRSS") - before
        requests = _requests(m.path, str(m.path))
    goal_s = 6.0 if not quick else 0.6
    return [dict(bench=f"ls -f /, {count:,} processes", **row, cold_s=cold,
                 rss_growth_during_mb=peak / 1024, rss_growth_after_mb=after / 1024,
                 goal=f"<= {goal_s:g} s, <= 300 MB",
                 ok=row["mount_s"] <= goal_s and max(peak, after) <= 300 * 1024,
                 requests=requests)]


def run(quick: bool = False) -> list[dict]:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or shutil.which("ls") is None:
        return [dict(bench="listing benchmarks", skipped="need root and /dev/fuse")]
    return bench_task(quick) + bench_root(quick)


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        print(r)
