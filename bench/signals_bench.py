"""Signals to blocked readers (issue 9, point 1): stuck processes after N killed blocked readers
(goal 0) and the EINTR latency (goal < 200 ms).

``python -m bench.signals_bench [N]`` (default 1000): mounts the default table, starts N ``cat``
processes blocked reading one handle file, SIGKILLs them all and counts those still there after
a second (stuck, in D state: a one-shot count, as is the time until all were gone); then, in
``rounds.ROUNDS`` interleaved rounds of 10 each, how long a blocked reader takes to be gone after
SIGKILL/SIGTERM, and how long a ctypes read takes to return EINTR after SIGALRM (a timer set
before the read, the read started blocked: the latency is from the signal). Each latency is the
median over the rounds of the round's median, with its spread ((max - min) / median).
"""

from __future__ import annotations

import functools
import os
import signal
import statistics
import subprocess
import sys
import time

from pidfs_fuse import client

from . import rounds


def _wchan(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except OSError:
        return ""


def _blocked(pid: int) -> bool:
    return _wchan(pid) == "request_wait_answer"


def _wait_blocked(pids: list[int], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left:
        left = [p for p in left if not _blocked(p)]
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(left)} readers never blocked")
        time.sleep(0.01)


def killed_readers(m: client.PidfsMount, n: int) -> dict:
    pid = m.client.clone(1)
    path = f"{m}/{pid}/pidfd"
    cats = [subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL) for _ in range(n)]
    _wait_blocked([c.pid for c in cats])
    t0 = time.monotonic()
    for c in cats:
        os.kill(c.pid, signal.SIGKILL)
    time.sleep(1.0)
    stuck = [c.pid for c in cats if c.poll() is None]
    last = 0.0
    for c in cats:
        c.wait()
    last = time.monotonic() - t0
    return {"readers": n, "stuck_after_1s": len(stuck), "all_gone_after_s": round(last, 3)}


PY_EINTR = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fired = []
signal.signal(signal.SIGALRM, lambda *a: None)
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = ctypes.create_string_buffer(4096)
out = []
for _ in range(int(sys.argv[2])):
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    t = time.monotonic()
    n = libc.read(fd, buf, 4096)
    assert n == -1 and ctypes.get_errno() == 4, (n, ctypes.get_errno())
    out.append(time.monotonic() - t - 0.05)
print(" ".join(f"{x:.6f}" for x in out))
"""


def _gone_after(path: str, sig: signal.Signals) -> float:
    """Seconds from ``sig`` to a blocked ``cat`` of ``path`` being gone."""
    c = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL)
    _wait_blocked([c.pid])
    t = time.monotonic()
    os.kill(c.pid, sig)
    c.wait()
    return time.monotonic() - t


def latencies(m: client.PidfsMount, per_round: int) -> dict:
    """``rounds.ROUNDS`` interleaved rounds of ``per_round`` SIGKILLs, SIGTERMs and SIGALRMs
    (EINTR) each: per signal, the median over the rounds of each round's median, its spread
    ((max - min) / median over the rounds) and the largest latency seen."""
    pid = m.client.clone(1)
    path = f"{m}/{pid}/pidfd"

    def eintr() -> list[float]:
        r = subprocess.run([sys.executable, "-c", PY_EINTR, path, str(per_round)], capture_output=True,
                           text=True, timeout=300, check=True)
        return [float(x) for x in r.stdout.split()]

    sides = {"SIGKILL": lambda: [_gone_after(path, signal.SIGKILL) for _ in range(per_round)],
             "SIGTERM": lambda: [_gone_after(path, signal.SIGTERM) for _ in range(per_round)],
             "SIGALRM (EINTR)": eintr}
    seen: dict[str, list[float]] = {k: [] for k in sides}

    def round_median(name: str) -> float:
        got = sides[name]()
        seen[name] += got
        return statistics.median(got)

    med = rounds.interleave({k: functools.partial(round_median, k) for k in sides})
    return {k: {"median_ms": round(rounds.median(v) * 1000, 2), "spread": f"{rounds.spread(v):.0%}",
                "max_ms": round(max(seen[k]) * 1000, 2), "rounds": len(v)} for k, v in med.items()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with client.mount_table() as m:
        print("killed blocked readers:", killed_readers(m, n))
        print("latency from signal to gone / EINTR (median of rounds of 10 each):",
              latencies(m, 10))


if __name__ == "__main__":
    main()
