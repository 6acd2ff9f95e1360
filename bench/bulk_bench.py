"""Latency of other requests while a bulk clone runs (issue 9 point 4: within 100 ms).

A reader thread opens, reads and closes ``/1/status`` in a loop while ``clone 1 count=N`` runs
through ``.control`` (N = 1,000,000; 100,000 with ``--quick``); the figures are the longest and
the 99th-percentile read, the number of reads, the clone's duration, the server's RSS growth
per task and the load average at the end (the figures depend on it: other work shares the
CPU). ``python -m bench.bulk_bench [--quick] [--count N]`` prints the same row alone.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time

from pidfs_fuse.client import mount_table

GOAL_MS = 100.0


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bulk_clone(count: int) -> dict:
    with mount_table(prefix="pidfs-bench-") as m:
        m.pid_max(1, 4194304)
        path = os.path.join(m.path, "1", "status")
        times: list[float] = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                with open(path, "rb") as f:
                    f.read()
                times.append(time.perf_counter() - t0)
                time.sleep(0.002)  # a reader, not a second load: leave the server its slices

        rss0 = _rss_kib(m.server_pid)
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        t0 = time.perf_counter()
        try:
            m.command("clone", 1, count=count)
        finally:
            took = time.perf_counter() - t0
            stop.set()
            th.join()
        rss1 = _rss_kib(m.server_pid)
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else 0.0
    worst = ms[-1] if ms else 0.0
    return dict(bench=f"cat 1/status during clone 1 count={count:,}", reads=len(ms),
                max_ms=worst, p99_ms=p99, clone_s=took,
                bytes_per_task=(rss1 - rss0) * 1024 / count,
                load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
                goal=f"max <= {GOAL_MS:g} ms",
                ok=worst <= GOAL_MS)


def run(quick: bool = False, count: int | None = None) -> list[dict]:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        return [dict(bench="bulk clone latency", skipped="needs root, /dev/fuse and fusermount3")]
    return [bulk_clone(count or (100_000 if quick else 1_000_000))]


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--count") + 1]) if "--count" in sys.argv else None
    for row in run("--quick" in sys.argv, n):
        print(row)
