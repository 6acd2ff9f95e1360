"""A big ``pidfs-fuse mount --restore`` beside a mount that is serving (issue 9 point 4).

Loading a table happens in the new mount's own server process, before it mounts: it cannot hold
up another mount's requests (only share the CPU with it), and it reports its progress up the
ready pipe, which ``pidfs-fuse mount`` draws (``restoring: 412,000/1,000,000 tasks``). This
measures both: it writes a snapshot of N tasks (1,000,000; 100,000 with ``--quick``), then
restores it with ``client.mount`` while a reader opens, reads and closes ``/1/status`` of another
mount in a loop, and reports the longest and 99th-percentile read, the restore's duration, the
progress reports it got and the longest time between two of them. The snapshot is written
once; each round restores it into a new mount beside the same serving one, and figures are
medians over the rounds (``bench/rounds.py``) with their spread (``worst_ms``: the longest read
of any round). A round at 1,000,000 tasks takes ~15 s: at most 3 rounds there (the row says).
``python -m bench.restore_bench [--quick] [--count N]`` prints the row alone.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time

from pidfs_fuse import client
from pidfs_fuse.client import mount_table

from . import rounds
from .probes import ReadLatency


def _snapshot_of(count: int, path: str) -> int:
    with mount_table(prefix="pidfs-bench-") as m:
        m.pid_max(1, 4194304)
        m.command("clone", 1, count=count)
        return int(m.command("snapshot", path).split()[-2])


def _restore_once(snap: str, tmp: str, other_path: str, tasks: int) -> dict:
    target = os.path.join(tmp, "mnt")
    os.makedirs(target, exist_ok=True)
    reports: list[float] = []

    def progress(label: str):
        return lambda done, total: reports.append(time.perf_counter())

    try:
        t0 = time.perf_counter()
        with ReadLatency(os.path.join(other_path, "1", "status")) as lat:
            client.mount(target, progress=progress, restore=snap, clock="frozen")
            took = time.perf_counter() - t0
        try:
            again = os.path.join(tmp, "again.snap")
            restored = int(client.Client(target).command("snapshot", again).split()[-2])
            os.unlink(again)
        finally:
            client.unmount(target, timeout=60)
    finally:
        if os.path.ismount(target):
            subprocess.run(["fusermount3", "-u", "-z", target], capture_output=True)
    marks = [t0, *reports, t0 + took]
    gap = max(b - a for a, b in itertools.pairwise(marks))
    return dict(reads=lat.reads, max_ms=lat.max_ms, p99_ms=lat.p99_ms, restore_s=took,
                progress_reports=len(reports), longest_silence_s=gap, restored_ok=restored == tasks)


def restore_beside(count: int, nr: int | None = None) -> dict:
    tmp = tempfile.mkdtemp(prefix="pidfs-bench-restore-")
    snap = os.path.join(tmp, "big.snap")
    try:
        tasks = _snapshot_of(count, snap)
        runs: list[dict] = []
        with mount_table(prefix="pidfs-bench-") as other:
            def once() -> float:
                runs.append(_restore_once(snap, tmp, str(other.path), tasks))
                return float(runs[-1]["restore_s"])

            rounds.interleave({"restore": once}, rounds=nr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    max_ms = [r["max_ms"] for r in runs]
    return dict(bench=f"cat 1/status of a mount while another restores {tasks:,} tasks",
                reads=int(rounds.median([r["reads"] for r in runs])),
                **rounds.figure("max_ms", max_ms), worst_ms=max(max_ms),
                p99_ms=rounds.median([r["p99_ms"] for r in runs]),
                **rounds.figure("restore_s", [r["restore_s"] for r in runs]),
                progress_reports=min(r["progress_reports"] for r in runs),
                longest_silence_s=max(r["longest_silence_s"] for r in runs),
                restored_ok=all(r["restored_ok"] for r in runs), rounds=len(runs))


def run(quick: bool = False, count: int | None = None) -> list[dict]:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        return [dict(bench="restore beside a mount", skipped="needs root, /dev/fuse and fusermount3")]
    # the default table's 74 tasks and the clones: the row shows the snapshot's own count
    n = count or (100_000 if quick else 1_000_000)
    return [restore_beside(n - 74, rounds.ROUNDS if n < 1_000_000 else min(rounds.ROUNDS, 3))]


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--count") + 1]) if "--count" in sys.argv else None
    for row in run("--quick" in sys.argv, n):
        print(row)
