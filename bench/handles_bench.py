"""Benchmarks of handle files (``/<pid>/pidfd``) through a real mount.

- exit -> wakeup latency seen by a poller in another process: the poller sleeps in poll(2) on a
  handle, this process ends the emulated process with one write to ``.control``, and the poller
  writes down ``time.monotonic_ns()`` when poll returns (CLOCK_MONOTONIC is one clock for every
  process). Per round, 60 exits on the mount and 60 real ones alternately: the same harness
  with a real pidfd on a real ``sleep`` ended by kill(2) gives this machine's Linux figure side
  by side. The round's median and p99 of each side and their ratios inside the round; the rows
  give the medians of those over the rounds (goal: median <= 1 ms).
- 10,000 handles in one epoll in another process, a mass kill (SIGKILL to the init of the pid
  namespace they live in, one control write): time until the last one was reported (goal <= 1 s),
  and until the first; one fresh mount per round, medians over the rounds.
- server memory (VmRSS of the server process) per open handle and per blocked reader, with
  1,000 of each: readers are threads of a helper process, each sleeping in read(2) on its own
  handle, and are counted blocked only once the kernel shows them waiting for the server. These
  are one-shot (a count of memory, not a timing; ``rounds`` 1); the time of ``ls /`` and a read
  with them blocked is a median of rounds.

Rounds: ``rounds.ROUNDS`` (``python -m bench --rounds N``); a ``*_spread`` column is (max -
min) / median over them (``bench/rounds.py``).

Run ``python -m bench.handles_bench [--quick]`` to print the rows. Nothing here asserts; ``ok``
compares a figure with its goal. Helpers run as ``python handles_bench.py poller|mass|readers``
(standard library only, so they start fast and never import the project).
"""

from __future__ import annotations

import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import threading
import time

SYS_POLL, SYS_EPOLL_WAIT = 7, 232


# -- helpers (separate processes) ----------------------------------------------------------------

def _raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n if hard == resource.RLIM_INFINITY else min(n, hard), hard))


def helper_poller() -> None:
    """stdin: ``open PATH`` or ``pidfd PID`` lines. For each: open it, say ``ready``, sleep in
    poll(2) until it is readable, answer ``<monotonic_ns> <revents>``."""
    out = sys.stdout
    for line in sys.stdin:
        kind, arg = line.split()
        fd = os.pidfd_open(int(arg)) if kind == "pidfd" else os.open(arg, os.O_RDONLY)
        p = select.poll()
        p.register(fd, select.POLLIN)
        out.write("ready\n")
        out.flush()
        got = p.poll()
        woke = time.monotonic_ns()
        os.close(fd)
        out.write(f"{woke} {got[0][1]}\n")
        out.flush()


def helper_mass() -> None:
    """stdin: one line of handle paths. Open all, register in one epoll, say ``ready``, then
    collect until every one was reported; answer ``<first_ns> <last_ns> <count>``."""
    paths = sys.stdin.readline().split()
    _raise_nofile(len(paths) + 100)
    ep = select.epoll()
    for path in paths:
        ep.register(os.open(path, os.O_RDONLY | os.O_NONBLOCK), select.EPOLLIN)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    first = last = 0
    seen = 0
    while seen < len(paths):
        events = ep.poll(-1, len(paths))
        now = time.monotonic_ns()
        first = first or now
        last = now
        for fd, _ in events:
            ep.unregister(fd)
            seen += 1
    sys.stdout.write(f"{first} {last} {seen}\n")
    sys.stdout.flush()


def helper_readers() -> None:
    """stdin: one line of handle paths. Open all, say ``opened``; on ``go`` start one thread per
    handle blocked in read(2); say ``done`` once every read returned."""
    paths = sys.stdin.readline().split()
    _raise_nofile(len(paths) + 100)
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    sys.stdout.write("opened\n")
    sys.stdout.flush()
    sys.stdin.readline()
    threading.stack_size(256 * 1024)
    threads = [threading.Thread(target=os.read, args=(fd, 4096), daemon=True) for fd in fds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stdout.write("done\n")
    sys.stdout.flush()


# -- the bench side ------------------------------------------------------------------------------

from pidfs_fuse.client import ControlFile, mount_table  # noqa: E402


class Mounted:
    """A default-table mount served by a child process, with one ``.control`` session kept
    open (``ctl`` runs a line on it, ``control.send`` writes one without reading the reply);
    ``close`` unmounts it."""

    def __init__(self) -> None:
        self.mount = mount_table(prefix="pidfs-bench-")
        self.path = str(self.mount.path)
        self.server_pid = self.mount.server_pid
        self.control = ControlFile(self.path)

    def ctl(self, line: str) -> str:
        return self.control.run(line)

    def close(self) -> None:
        self.control.close()
        self.mount.unmount()

    def __enter__(self) -> Mounted:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Helper:
    """A helper process speaking lines on stdin/stdout; killed by pid when closed."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), mode],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout

    def say(self, line: str) -> None:
        self.stdin.write(line + "\n")
        self.stdin.flush()

    def hear(self) -> str:
        line = self.stdout.readline()
        if not line:
            raise RuntimeError(f"helper {self.mode} exited ({self.proc.poll()})")
        return line.strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass  # stuck in a FUSE read: freed when the mount goes away
        self.stdin.close()
        self.stdout.close()


def _syscall(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/syscall") as f:
            first = f.read().split(" ", 1)[0]
    except OSError:
        return -1
    return int(first) if first.isdigit() else -1


def _until(pred, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting until {what}")
        time.sleep(0.0002)


def _latencies(helper: Helper, targets: list[str], trigger) -> list[float]:
    """For each target: the poller opens it and sleeps in poll; then ``trigger(i)`` ends it.
    Returns microseconds from just before the trigger to the poller's wakeup."""
    out = []
    pid = helper.proc.pid
    for i, target in enumerate(targets):
        helper.say(target)
        assert helper.hear() == "ready"
        _until(lambda: _syscall(pid) == SYS_POLL, "the poller sleeps in poll")
        t0 = time.monotonic_ns()
        trigger(i)
        woke, _ = helper.hear().split()
        out.append((int(woke) - t0) / 1e3)
    return out


def _p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]


def bench_latency(quick: bool) -> list[dict]:
    """Per round: ``n`` exits on the mount and ``n`` real kills, alternately (mount, real,
    mount...), so both sides see the same moments of this shared machine; the round's median
    and p99 of each side, and their ratios inside the round."""
    from . import rounds  # here: this module also runs as the poller script

    n = 20 if quick else 60
    per: dict[str, list[float]] = {"mount_med": [], "proc_med": [], "mount_p99": [], "proc_p99": []}
    with Mounted() as m:
        helper = Helper("poller")
        try:
            for _ in range(5):  # warm: first lookups, the poller's imports
                extra = m.ctl("clone 1 comm=warm").split()[0]
                _latencies(helper, [f"open {m.path}/{extra}/pidfd"], lambda i: m.ctl(f"exit_group {extra} 0"))
            for _ in range(rounds.ROUNDS):
                pids = m.ctl(f"clone 1 comm=lat count={n}").split()
                sleepers = [subprocess.Popen(["sleep", "1000"]) for _ in range(n)]
                mount: list[float] = []
                real: list[float] = []
                try:
                    for pid, sleeper in zip(pids, sleepers, strict=True):
                        mount += _latencies(helper, [f"open {m.path}/{pid}/pidfd"],
                                            lambda i, pid=pid: m.control.send(f"exit_group {pid} 0\n"))
                        real += _latencies(helper, [f"pidfd {sleeper.pid}"],
                                           lambda i, s=sleeper: os.kill(s.pid, signal.SIGKILL))
                finally:
                    for s in sleepers:
                        if s.poll() is None:
                            s.kill()
                        s.wait()
                per["mount_med"].append(statistics.median(mount))
                per["proc_med"].append(statistics.median(real))
                per["mount_p99"].append(_p99(mount))
                per["proc_p99"].append(_p99(real))
        finally:
            helper.close()
    med = rounds.ratio_fields(per["mount_med"], per["proc_med"])
    p99 = rounds.ratio_fields(per["mount_p99"], per["proc_p99"])
    return [
        dict(bench=f"exit -> poller wakeup, median of {n} a round (real: pidfd of a killed sleep)",
             **rounds.figure("mount_us", per["mount_med"]), **rounds.figure("proc_us", per["proc_med"]),
             **med, goal="median <= 1000 us", ok=rounds.median(per["mount_med"]) <= 1000),
        dict(bench=f"exit -> poller wakeup, p99 of {n} a round", **rounds.figure("mount_us", per["mount_p99"]),
             **rounds.figure("proc_us", per["proc_p99"]), **p99, goal="reference", ok=True),
    ]


def _mass_once(n: int) -> tuple[float, float, float, int]:
    """A fresh mount, ``n`` handles in one epoll of a helper, one mass kill: microseconds until
    the last and the first was reported and the kill's control write took, and how many."""
    with Mounted() as m:
        init = m.ctl("clone 1 newpid comm=massinit").split()[0]
        pids = m.ctl(f"clone {init} comm=mass count={n}").split()
        helper = Helper("mass")
        try:
            helper.say(" ".join(f"{m.path}/{p}/pidfd" for p in pids))
            assert helper.hear() == "ready"
            _until(lambda: _syscall(helper.proc.pid) == SYS_EPOLL_WAIT, "the poller sleeps in epoll_wait")
            t0 = time.monotonic_ns()
            m.ctl(f"kill {init} KILL")
            t1 = time.monotonic_ns()
            first, last, seen = map(int, helper.hear().split())
        finally:
            helper.close()
    return (last - t0) / 1e3, (first - t0) / 1e3, (t1 - t0) / 1e3, seen


def bench_mass(quick: bool) -> list[dict]:
    """``rounds.ROUNDS`` mass kills, each in a fresh mount (the rounds are alike: a round's
    setup, 10,000 lookups and opens, takes seconds, the kill under one); medians and spreads."""
    from . import rounds

    n = 2_000 if quick else 10_000
    got = [_mass_once(n) for _ in range(rounds.ROUNDS)]
    all_us, first_us, write_us = ([g[i] for g in got] for i in range(3))
    seen = min(g[3] for g in got)
    last = rounds.median(all_us)
    return [dict(bench=f"{n:,} handles in one epoll: mass kill -> all {seen:,} reported",
                 **rounds.figure("mount_us", all_us), **rounds.figure("first_us", first_us),
                 **rounds.figure("kill_write_us", write_us), rounds=len(got),
                 goal="<= 1,000,000 us" if not quick else "reference",
                 ok=(last <= 1e6 or quick) and seen == n)]


def _blocked_threads(pid: int) -> int:
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                n += f.read() == "request_wait_answer"
        except OSError:
            pass
    return n


def bench_memory(quick: bool) -> list[dict]:
    from . import rounds  # here: this module also runs as the poller script
    from .probes import status_kib

    n = 1000
    with Mounted() as m:
        init = m.ctl("clone 1 newpid comm=meminit").split()[0]
        pids = m.ctl(f"clone {init} comm=mem count={n}").split()
        paths = [f"{m.path}/{p}/pidfd" for p in pids]
        for p in paths:  # lookups now, so only opens and reads count below
            os.stat(p)
        server = m.server_pid
        helper = Helper("readers")
        try:
            rss0 = status_kib(server)
            helper.say(" ".join(paths))
            assert helper.hear() == "opened"
            rss1 = status_kib(server)
            helper.say("go")
            _until(lambda: _blocked_threads(helper.proc.pid) >= n, f"{n} readers sleep in the server")
            rss2 = status_kib(server)

            def answer() -> float:
                t0 = time.perf_counter()
                os.listdir(m.path)
                with open(f"{m.path}/1/status", "rb") as f:
                    f.read()
                return time.perf_counter() - t0

            answer_s = rounds.interleave({"answer": answer})["answer"]
            m.ctl(f"kill {init} KILL")
            assert helper.hear() == "done"
        finally:
            helper.close()
    one_shot = "one-shot: a VmRSS difference is a count, not a timing"
    return [
        dict(bench=f"server VmRSS per open handle ({n:,} open)", kib=(rss1 - rss0) / n, rounds=1,
             goal="reference", ok=True, note=one_shot),
        dict(bench=f"server VmRSS per blocked reader ({n:,} blocked)", kib=(rss2 - rss1) / n,
             rounds=1, goal="reference", ok=True, note=one_shot),
        dict(bench=f"ls / + cat 1/status with {n:,} readers blocked",
             **rounds.figure("mount_us", answer_s, 1e6), rounds=len(answer_s), goal="reference",
             ok=True),
    ]


def run(quick: bool = False) -> list[dict]:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        return [dict(bench="handle benchmarks", skipped="need root and /dev/fuse")]
    return bench_latency(quick) + bench_mass(quick) + bench_memory(quick)


HELPERS = {"poller": helper_poller, "mass": helper_mass, "readers": helper_readers}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in HELPERS:
        HELPERS[sys.argv[1]]()
    else:
        for row in run("--quick" in sys.argv):
            print(row)
