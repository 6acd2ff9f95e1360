"""Signals to blocked readers (issue 9, point 1): stuck processes after N killed blocked readers
(goal 0) and the EINTR latency (goal < 200 ms).

``python -m bench.signals_bench [N]`` (default 1000): mounts the default table, starts N ``cat``
processes blocked reading one handle file, SIGKILLs them all and counts those still there after
a second (stuck, in D state); then measures, 50 times each, how long a blocked reader takes to
be gone after SIGKILL/SIGTERM, and how long a ctypes read takes to return EINTR after SIGALRM
(a timer set before the read, the read started blocked: the latency is from the signal).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time

from pidfs_fuse import client


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


def latencies(m: client.PidfsMount, rounds: int) -> dict:
    pid = m.client.clone(1)
    path = f"{m}/{pid}/pidfd"
    res = {}
    for sig in (signal.SIGKILL, signal.SIGTERM):
        got = []
        for _ in range(rounds):
            c = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL)
            _wait_blocked([c.pid])
            t = time.monotonic()
            os.kill(c.pid, sig)
            c.wait()
            got.append(time.monotonic() - t)
        res[sig.name] = got
    r = subprocess.run([sys.executable, "-c", PY_EINTR, path, str(rounds)], capture_output=True,
                       text=True, timeout=300, check=True)
    res["SIGALRM (EINTR)"] = [float(x) for x in r.stdout.split()]
    return {k: {"median_ms": round(statistics.median(v) * 1000, 2),
                "max_ms": round(max(v) * 1000, 2)} for k, v in res.items()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with client.mount_table() as m:
        print("killed blocked readers:", killed_readers(m, n))
        print("latency from signal to gone / EINTR (50 rounds):", latencies(m, 50))


if __name__ == "__main__":
    main()
