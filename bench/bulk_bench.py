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
import time

from pidfs_fuse.client import mount_table

from .probes import ReadLatency, status_kib

GOAL_MS = 100.0


def bulk_clone(count: int) -> dict:
    with mount_table(prefix="pidfs-bench-") as m:
        m.pid_max(1, 4194304)
        rss0 = status_kib(m.server_pid)
        t0 = time.perf_counter()
        with ReadLatency(os.path.join(m.path, "1", "status")) as lat:
            try:
                m.command("clone", 1, count=count)
            finally:
                took = time.perf_counter() - t0
        rss1 = status_kib(m.server_pid)
    worst = lat.max_ms
    return dict(bench=f"cat 1/status during clone 1 count={count:,}", reads=lat.reads,
                max_ms=worst, p99_ms=lat.p99_ms, clone_s=took,
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
