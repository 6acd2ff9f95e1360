"""Whole tools at scale, beside the floor answering the same requests (issue 13 point 2).

Two tables are mounted at once: ``P``, init and 100,000 processes (``clone 1 count=100000``),
and ``T``, the threads-100k scenario (one process of 100,000 threads; with ``--quick``: 10,000
of each). Each tool runs in a private mount namespace with the mount bound over ``/proc``:

- ``ps -ef`` on P, ``ps -eLf`` and ``top -b -n 1 -H`` on T, ``pstree -p`` on P, and psutil's
  ``process_iter(["name", "ppid", "status", "num_threads"])`` on P.

Each tool is measured against two floors:

- the replay floor (``replay_server.py``, the goal's): a do-nothing pyfuse3 server holding a
  copy of the same mount's tree, with the same caching, filled by an untimed run of the tool.
  Warm, the tool makes the same requests through it (both counts are printed:
  ``requests`` and ``replay_requests``; ``fetched`` there counts answers the copy still had to
  fetch from the mount, which a complete copy keeps at about one a run) and each costs only
  pyfuse3 and trio. ``ratio`` is the tool's time over its time there (goal <= 1.3x): what
  pidfs_fuse adds, with the tool's own work, the kernel's and the gaps between requests in
  both.
- the priced floor (``priced_*``): the tool's own user CPU plus its requests, counted by the
  server by type (``client.request_counts``), each priced at what the do-nothing
  ``floor_server.py`` takes for that kind back to back (``floor.py``), measured just before and
  just after the run and averaged. It leaves out what a real tool adds between requests (its
  system time, a server woken cold after the tool's own work), so it sits below the replay.

Each figure is the median of ``rounds.ROUNDS`` interleaved rounds (a round runs every tool once
on the mount, its floor probes, once on the replay, and once on the real /proc), with its
spread. Every round is warm (a first, untimed run of each tool made the kernel's entries, as a
second run of a tool finds them). A round whose two runs made different requests (more than 1%
apart, type by type: the kernel's hour-long entries expired on one side and not yet on the
other, whose were made minutes later in the warm-up) runs the pair again, both now warm;
``reruns`` counts those. ``proc_us_per_task`` is the same tool over this machine's
``/proc`` per process (threads for -L/-H), for reference.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pidfs_fuse.client import PidfsMount, mount_table, request_counts, request_delta

from . import rounds
from .floor import Floor, Replay, price

SCENARIO = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / "threads-100k.toml"
GOAL = 1.3
PSUTIL = ("import psutil\n"
          "n = sum(1 for _ in psutil.process_iter(['name', 'ppid', 'status', 'num_threads']))\n"
          "assert n > 1, n\n")
PROBES = 1000  # floor probes of each kind per round


@dataclass
class Tool:
    name: str
    argv: list[str]
    table: str  # "P" or "T"
    per: str  # what proc_us_per_task divides by: "processes" or "threads"


TOOLS = [
    Tool("ps -ef", ["ps", "-ef"], "P", "processes"),
    Tool("ps -eLf", ["ps", "-eLf"], "T", "threads"),
    Tool("top -b -n 1 -H", ["top", "-b", "-n", "1", "-H", "-w", "512"], "T", "threads"),
    Tool("pstree -p", ["pstree", "-p"], "P", "processes"),
    Tool("psutil process_iter", [sys.executable, "-c", PSUTIL], "P", "processes"),
]


@dataclass
class Run:
    seconds: float
    cpu: float  # user seconds of the tool and its helpers
    lines: int


def _run(tool: Tool, proc: str | None) -> Run:
    """One run of ``tool`` with ``proc`` bound over /proc (None: this machine's /proc)."""
    inner = " ".join(shlex.quote(a) for a in tool.argv)
    script = f"mount --bind {shlex.quote(proc)} /proc && exec {inner}" if proc else f"exec {inner}"
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
    env = dict(os.environ, COLUMNS="512", TERM="dumb")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, env=env)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{tool.name} failed ({out.returncode}): "
                           f"{out.stderr.decode(errors='replace')[-300:]}")
    cpu = after.ru_utime - before.ru_utime
    return Run(took, cpu, out.stdout.count(b"\n"))


def _real_tasks(per: str) -> int:
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            n += 1 if per == "processes" else len(os.listdir(f"/proc/{p}/task")) \
                if os.path.exists(f"/proc/{p}/task") else 0
    return n


def _tables(quick: bool) -> tuple[PidfsMount, PidfsMount, int, int]:
    n = 10_000 if quick else 100_000
    p = mount_table(prefix="pidfs-bench-P-")
    try:
        p.pid_max(1, 4194304)
        p.clone(1, comm="proc", count=n)
        if quick:
            t = mount_table(prefix="pidfs-bench-T-")
            t.pid_max(1, 4194304)
            leader = t.clone(1, comm="server")
            t.clone(leader, thread=True, count=n - 1)
        else:
            t = mount_table(SCENARIO, prefix="pidfs-bench-T-")
    except BaseException:
        p.unmount()
        raise
    return p, t, n, n


def bench_tools(quick: bool, only: list[str] | None = None) -> list[dict]:
    tools = [t for t in TOOLS if only is None or t.name in only]
    p, t, nproc, nthreads = _tables(quick)
    mounts = {"P": p, "T": t}
    tasks = {"P": nproc, "T": nthreads}
    try:
        with Floor() as floor, Replay(p.path) as rp, Replay(t.path) as rt:
            replays = {"P": rp, "T": rt}
            for tool in tools:  # warm: the kernel's entries, as a second run finds them (and
                # the replay's copy of everything the tool asks for)
                _run(tool, os.fspath(mounts[tool.table].path))
                _run(tool, replays[tool.table].path)
            samples: dict[str, dict[str, list[float]]] = {
                tool.name: {"mount": [], "replay": [], "floor": [], "cpu": [], "proc": []}
                for tool in tools}
            requests: dict[str, dict[str, int]] = {}
            replayed: dict[str, dict[str, int]] = {}
            lines: dict[str, int] = {}
            reruns = dict.fromkeys((tool.name for tool in tools), 0)
            for _ in range(rounds.ROUNDS):
                for tool in tools:
                    m = mounts[tool.table]
                    rep = replays[tool.table]
                    probes = PROBES // (5 if quick else 1)
                    run, counts, costs, again, rcounts = _pair(tool, m, rep, floor, probes)
                    if not matched(counts, rcounts):
                        # one side's entries expired between its two runs and the other's
                        # did not (they were made minutes apart in the warm-up, and live an
                        # hour): that run re-looked them up; run the pair again, both warm
                        reruns[tool.name] += 1
                        run, counts, costs, again, rcounts = _pair(tool, m, rep, floor, probes)
                    real = _run(tool, None)
                    s = samples[tool.name]
                    s["mount"].append(run.seconds)
                    s["replay"].append(again.seconds)
                    s["cpu"].append(run.cpu)
                    s["floor"].append(run.cpu + price(counts, costs))
                    s["proc"].append(real.seconds / max(1, _real_tasks(tool.per)))
                    requests[tool.name] = counts
                    replayed[tool.name] = rcounts
                    lines[tool.name] = run.lines
    finally:
        t.unmount()
        p.unmount()
    rows = []
    for tool in tools:
        s = samples[tool.name]
        counts = requests[tool.name]
        rcounts = replayed[tool.name]
        n = tasks[tool.table]
        r = rounds.ratio_fields(s["mount"], s["replay"])
        priced = rounds.ratio_fields(s["mount"], s["floor"])
        rows.append(dict(
            bench=f"{tool.name}, {n:,} {tool.per}", **rounds.figure("mount_s", s["mount"]),
            replay_s=rounds.median(s["replay"]), **r,
            goal=f"<= {GOAL:g}x replay floor", ok=r["ratio"] <= GOAL,
            priced_floor_s=rounds.median(s["floor"]), priced_ratio=priced["ratio"],
            priced_spread=priced["spread"], tool_cpu_s=rounds.median(s["cpu"]),
            us_per_task=rounds.median(s["mount"]) / n * 1e6,
            proc_us_per_task=rounds.median(s["proc"]) * 1e6,
            requests_per_task=sum(counts.values()) / n, lines=lines[tool.name],
            requests=_counts(counts), replay_requests=_counts(rcounts),
            reruns=reruns[tool.name]))
    return rows


def _pair(tool: Tool, m: PidfsMount, rep: Floor, floor: Floor, probes: int) -> tuple[
        Run, dict[str, int], dict[str, float], Run, dict[str, int]]:
    """One timed run of ``tool`` on the mount, the floor's costs around it, and one on the
    replay: (mount run, its requests, the priced floor's costs, replay run, its requests)."""
    ahead = floor.costs(probes)
    before = request_counts(m.path)
    run = _run(tool, os.fspath(m.path))
    counts = request_delta(before, request_counts(m.path))
    # the floor's costs just before and just after the run, averaged: the machine's state
    # during the run lies between them
    behind = floor.costs(probes)
    costs = {k: (ahead[k] + behind[k]) / 2 for k in ahead}
    rbefore = rep.counts()
    again = _run(tool, rep.path)
    rcounts = request_delta(rbefore, rep.counts())
    return run, counts, costs, again, rcounts


#: request types that do not make a tool wait, or are the replay's own bookkeeping
_UNMATCHED = frozenset({"fetched", "forget"})


def matched(counts: dict[str, int], rcounts: dict[str, int], within: float = 0.01) -> bool:
    """Whether the mount's and the replay's runs made the same requests, type by type, within
    ``within`` of the mount's total (a complete, equally warm replay makes the same ones)."""
    total = sum(n for k, n in counts.items() if k not in _UNMATCHED)
    off = sum(abs(counts.get(k, 0) - rcounts.get(k, 0))
              for k in set(counts) | set(rcounts) if k not in _UNMATCHED)
    return off <= within * max(total, 1)


def _counts(counts: dict[str, int]) -> str:
    return f"{sum(v for k, v in counts.items() if k != 'fetched')}: " + \
        " ".join(f"{k} {v}" for k, v in counts.items())


def run(quick: bool = False) -> list[dict]:
    missing = [c for c in ("ps", "top", "pstree", "unshare", "fusermount3") if shutil.which(c) is None]
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or missing:
        return [dict(bench="whole tools", skipped="need root, /dev/fuse and " + ", ".join(missing or ["-"]))]
    return bench_tools(quick)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.tools_bench",
                                 description="Whole tools at scale beside the floor (one benchmark of "
                                             "`python -m bench`), some tools only if asked.")
    ap.add_argument("--quick", action="store_true", help="10,000 processes and threads")
    ap.add_argument("--rounds", type=int, default=rounds.ROUNDS, metavar="N")
    ap.add_argument("--tool", action="append", choices=[t.name for t in TOOLS], metavar="NAME",
                    help="run only this tool (repeatable): " + ", ".join(repr(t.name) for t in TOOLS))
    args = ap.parse_args(argv)
    rounds.ROUNDS = args.rounds
    from .__main__ import print_table

    print_table([dict(bench="tools", case=r.pop("bench"), **r)
                 for r in bench_tools(args.quick, args.tool)])


if __name__ == "__main__":
    main()

