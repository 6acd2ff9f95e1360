"""The soak: a mount under the load a test suite puts on it, for a bounded time.

    python -m mountpoint_tests.soak [--seconds N]      (make soak: 300 s; at most 600)

One fresh mount of the default table, and for ``seconds``:

- readers: ``ls -R`` of the whole mount, ``cat`` of the status and stat of live churn
  processes and of ``self`` (the caller's stand-in entry), and ``ps`` with the mount bound on
  /proc in a private mount namespace;
- a churning writer through ``.control``: batches of ``clone``, an ``exec`` that names each
  process after its pid (``w<PID>``), threads, ``exit_group`` with code PID % 256 and ``wait``;
- blocked handle readers: ``cat /<pid>/pidfd`` of live churn processes, killed at random
  (SIGKILL, SIGTERM or SIGINT) or left to read the exit;
- snapshots taken during the churn.

Then every churn process exits and is reaped, and the soak asserts: no EIO anywhere, no
process it started is left (none stuck in D state), no read cut short or padded, no content
of one pid shown for another (a status, stat, ps row or handle read naming a pid, comm or
exit code not its own), every snapshot round-trips exactly (restored and written again,
byte for byte), and the server's RSS after the soak within 10% of its level before. It prints
its figures: RSS before, peak and after, requests by kind, errors, killed readers and how fast
they died.

Readers killed while blocked die when their target exits (pyfuse3 has no FUSE_INTERRUPT hook:
issue 9 point 1 is what makes them die at once); the figures say how long they took.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pidfs_fuse import client
from pidfs_fuse import snapshot as snap

MAX_SECONDS = 600
#: live churn processes the writer keeps around (readers pick among them)
POPULATION = 120
BATCH = 12
#: blocked handle readers outstanding at once
HANDLE_READERS = 16
EIO_TEXT = "Input/output error"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def state_of(pid: int) -> str | None:
    """The state letter of a process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@dataclass
class Figures:
    seconds: float = 0.0
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0
    #: what the server holds (client.held_counts) when RSS "before" and "after" are taken
    held_before: dict[str, int] = field(default_factory=dict)
    held_after: dict[str, int] = field(default_factory=dict)
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    #: failures that must not happen (EIO, a pid shown with another's content, ...): each a sentence
    errors: list[str] = field(default_factory=list)
    #: failures a race explains (a process gone between listing and reading it)
    benign: collections.Counter[str] = field(default_factory=collections.Counter)
    #: reads cut short inside a line or padded with NULs (a text that does not fit the size the
    #: kernel holds for the file): failures
    truncated: list[str] = field(default_factory=list)
    killed_readers: int = 0
    kill_latencies: list[float] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    snapshots: int = 0
    snapshots_checked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.requests[kind] += n

    def error(self, sentence: str) -> None:
        with self.lock:
            self.errors.append(sentence)

    def report(self) -> str:
        lat = sorted(self.kill_latencies)

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(p * len(lat)))] * 1000:.0f} ms" if lat else "-"
        grow = (self.rss_after - self.rss_before) / self.rss_before * 100 if self.rss_before else 0.0
        return "\n".join([
            f"soak: {self.seconds:.0f} s",
            f"  server RSS: before {self.rss_before:,} KiB, peak {self.rss_peak:,} KiB, "
            f"after {self.rss_after:,} KiB ({grow:+.1f}%)",
            "  server holds: " + ", ".join(f"{k} {self.held_before.get(k, 0):,} -> {v:,}"
                                          for k, v in self.held_after.items()),
            f"  requests: {sum(self.requests.values()):,} ("
            + ", ".join(f"{k} {v:,}" for k, v in sorted(self.requests.items())) + ")",
            f"  errors: {len(self.errors)}" + "".join(f"\n    {e}" for e in self.errors[:20]),
            "  races (allowed): " + (", ".join(f"{k} {v}" for k, v in sorted(self.benign.items())) or "none"),
            f"  reads cut short or padded: {len(self.truncated)}"
            + "".join(f"\n    {t}" for t in self.truncated[:5]),
            f"  blocked handle readers killed: {self.killed_readers}, dead within 200 ms: "
            f"{sum(1 for x in lat if x <= 0.2)}; time to die p50 {pct(0.5)}, max {pct(1.0)}",
            f"  stuck processes after: {len(self.stuck)}" + "".join(f"\n    {s}" for s in self.stuck[:20]),
            f"  snapshots: {self.snapshots} taken, {self.snapshots_checked} round-tripped exactly",
        ])


class Soak:
    def __init__(self, mountpoint: str, server: int, workdir: Path, seconds: float, seed: int) -> None:
        self.mp = mountpoint
        self.server = server
        self.workdir = workdir
        self.seconds = seconds
        self.rnd = random.Random(seed)
        self.fig = Figures()
        self.stop = threading.Event()
        self.live: set[int] = set()  # churn processes that exist (leader pids)
        self.named: set[int] = set()  # ... and have exec'd to w<PID>
        self.live_lock = threading.Lock()
        self.procs: list[subprocess.Popen[bytes]] = []  # every process started, for the stuck check
        self.procs_lock = threading.Lock()
        self.snapshots: list[Path] = []
        self.stop_handles = threading.Event()
        self.leftover_handles: list[Any] = []

    # -- helpers -------------------------------------------------------------------------------

    def spawn(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        with self.procs_lock:
            self.procs.append(p)
        return p

    def run(self, kind: str, argv: list[str], timeout: float = 180) -> tuple[int, str, str]:
        p = self.spawn(argv)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fig.error(f"{kind}: {' '.join(argv)} still running after {timeout:.0f} s")
            p.kill()
            out, err = p.communicate()
        self.fig.count(kind)
        text_err = err.decode(errors="replace")
        if EIO_TEXT in text_err:
            self.fig.error(f"{kind}: EIO: {text_err.strip().splitlines()[0]}")
        return p.returncode, out.decode(errors="replace"), text_err

    def ctl(self, lines: list[str]) -> str:
        """Several command lines in one write of .control; the replies, in order."""
        err, reply = client.exchange(self.mp, "".join(f"{ln}\n" for ln in lines))
        self.fig.count("ctl", len(lines))
        if err:
            self.fig.error(f"ctl: {os.strerror(err)}: {reply.strip()} (for {lines[0]} ...)")
        return reply

    def pick(self, named: bool = False) -> int | None:
        with self.live_lock:
            pool = self.named if named else self.live
            return self.rnd.choice(sorted(pool)) if pool else None

    def sample_rss(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.fig.rss_peak = max(self.fig.rss_peak, rss_kib(self.server))

    # -- the writer ------------------------------------------------------------------------------

    def churn_once(self) -> None:
        with self.live_lock:
            n_live = len(self.live)
        if n_live < POPULATION:
            reply = self.ctl([f"clone 1 comm=churn count={BATCH}"])
            pids = [int(x) for x in reply.split()]
            with self.live_lock:
                self.live.update(pids)
            lines = [f"exec {p} comm=w{p}" for p in pids]
            lines += [f"clone {p} thread count=2 comm=t{p}" for p in pids[:3]]
            self.ctl(lines)
            with self.live_lock:
                self.named.update(pids)
        with self.live_lock:
            victims = self.rnd.sample(sorted(self.live), min(len(self.live), BATCH // 2 + self.rnd.randrange(BATCH)))
        self.end(victims)

    def end(self, pids: list[int]) -> None:
        """exit_group each with code PID % 256, then reap it."""
        if not pids:
            return
        with self.live_lock:
            self.named.difference_update(pids)
        self.ctl([f"exit_group {p} {p % 256}" for p in pids])
        self.ctl([f"wait 1 pid={p}" for p in pids])
        with self.live_lock:
            self.live.difference_update(pids)

    def writer(self) -> None:
        last_snap = time.monotonic()
        while not self.stop.is_set():
            self.churn_once()
            self.sample_rss()
            time.sleep(0.01)  # the readers get their share of the server
            if time.monotonic() - last_snap > 2.0:
                last_snap = time.monotonic()
                f = self.workdir / f"soak-{len(self.snapshots)}.snap"
                self.ctl([f"snapshot {f}"])
                self.snapshots.append(f)
                self.fig.snapshots += 1

    # -- the readers -----------------------------------------------------------------------------

    def own_entry(self, pid: int, name: str | None) -> bool:
        """The reader's own hidden entry: a process numbered like the reader was reaped just
        before the read, so ``/<pid>`` showed the caller itself (its stand-in, comm
        ``observer``). Its own content, so not one pid's content shown for another."""
        if name != "observer":
            return False
        with self.fig.lock:
            self.fig.benign["the reader's own pid"] += 1
        return True

    def truncated(self, text: str, who: str) -> bool:
        """A read that ended inside a line: a text that did not fit the size the kernel had
        for the file (a page-cache read stops at it, or pads to it with NULs). A failure: the
        mount answers page-cache reads from the rendering whose size the kernel was given."""
        if text.endswith("\n"):
            return False
        with self.fig.lock:
            self.fig.truncated.append(f"{who}: {text[-40:]!r}")
        return True

    def check_status(self, pid: int, text: str, who: str) -> None:
        fields = dict(ln.split(":\t", 1) for ln in text.splitlines() if ":\t" in ln)
        if self.own_entry(pid, fields.get("Name")) or self.truncated(text, f"{who} /{pid}/status"):
            return
        if fields.get("Pid") != str(pid) or fields.get("Tgid") != str(pid):
            self.fig.error(f"{who}: /{pid}/status says Pid {fields.get('Pid')!r}, Tgid {fields.get('Tgid')!r}")
        name = fields.get("Name")
        if name not in (f"w{pid}", "churn"):
            self.fig.error(f"{who}: /{pid}/status names {name!r}, not w{pid}")

    def check_stat(self, pid: int, text: str, who: str) -> None:
        m = re.match(r"(\d+) \((.*)\) ", text)
        if m is not None and m[1] == str(pid) and self.own_entry(pid, m[2]):
            return
        if self.truncated(text, f"{who} /{pid}/stat") and m is not None and m[1] == str(pid):
            return
        if m is None or m[1] != str(pid) or m[2] not in (f"w{pid}", "churn"):
            self.fig.error(f"{who}: /{pid}/stat starts {text[:40]!r}")

    def read_file(self, pid: int, name: str) -> str | None:
        try:
            with open(f"{self.mp}/{pid}/{name}") as f:
                text = f.read()
        except OSError as e:
            self.fig.count(f"read {name}")
            if e.errno == 5:
                self.fig.error(f"read /{pid}/{name}: EIO")
            else:
                with self.fig.lock:
                    self.fig.benign[f"read {name}: {os.strerror(e.errno or 0)}"] += 1
            return None
        self.fig.count(f"read {name}")
        return text

    def reader(self, n: int, kinds: tuple[str, ...]) -> None:
        turn = 0
        while not self.stop.is_set():
            what = kinds[turn % len(kinds)]  # in turn: each kind runs early in a short soak
            turn += 1
            if what == "ls":
                self.run("ls -R", ["ls", "-R", self.mp])
            elif what == "ps":
                code, out, err = self.run("ps", ["unshare", "-m", "sh", "-c",
                                                 f"mount --bind '{self.mp}' /proc && exec ps -eo pid=,comm="])
                for line in out.splitlines():
                    parts = line.split()
                    if len(parts) == 2 and re.fullmatch(r"w\d+", parts[1]) and parts[1] != f"w{parts[0]}":
                        self.fig.error(f"ps: pid {parts[0]} shown with comm {parts[1]}")
            elif what == "self":
                p = self.spawn(["cat", f"{self.mp}/self/status"])
                o, e = p.communicate(timeout=180)
                self.fig.count("cat self")
                fields = dict(ln.split(":\t", 1) for ln in o.decode().splitlines() if ":\t" in ln)
                if p.returncode != 0:  # a model process numbered like the reader, reaped meanwhile
                    with self.fig.lock:
                        self.fig.benign["cat self: " + (e.decode(errors="replace").strip().rsplit(": ", 1)[-1]
                                                        or "failed")] += 1
                elif fields.get("Pid") != str(p.pid):
                    self.fig.error(f"cat self/status: Pid {fields.get('Pid')!r}, the reader is {p.pid}")
                if EIO_TEXT in e.decode(errors="replace"):
                    self.fig.error("cat self/status: EIO")
            else:
                pid = self.pick(named=True)
                if pid is None:
                    time.sleep(0.01)
                    continue
                if what == "cat":
                    for name, check in (("status", self.check_status), ("stat", self.check_stat)):
                        code, out, err = self.run("cat", ["cat", f"{self.mp}/{pid}/{name}"])
                        if code == 0:
                            check(pid, out, "cat")
                        else:
                            with self.fig.lock:
                                self.fig.benign["cat: " + (err.strip().rsplit(": ", 1)[-1] or "failed")] += 1
                else:
                    text = self.read_file(pid, "status")
                    if text is not None:
                        self.check_status(pid, text, "read")
                    text = self.read_file(pid, "stat")
                    if text is not None:
                        self.check_stat(pid, text, "read")
            self.sample_rss()

    # -- blocked handle readers --------------------------------------------------------------------

    def handle_readers(self) -> None:
        """Keep HANDLE_READERS ``cat /<pid>/pidfd`` blocked on live processes; kill some."""
        out: list[tuple[subprocess.Popen[bytes], int, float, float | None]] = []  # proc, pid, kill at, killed at
        while not self.stop.is_set() or out:
            now = time.monotonic()
            while not self.stop.is_set() and len(out) < HANDLE_READERS:
                pid = self.pick(named=True)
                if pid is None:
                    break
                p = self.spawn(["cat", f"{self.mp}/{pid}/pidfd"])
                self.fig.count("cat pidfd")
                kill_at = now + self.rnd.uniform(0.05, 1.5) if self.rnd.random() < 0.6 else float("inf")
                out.append((p, pid, kill_at, None))
            keep = []
            for p, pid, kill_at, killed in out:
                if p.poll() is not None:
                    if killed is not None:
                        self.fig.kill_latencies.append(time.monotonic() - killed)
                    else:
                        self.check_handle(p, pid)
                    continue
                if killed is None and time.monotonic() >= kill_at:
                    p.send_signal(self.rnd.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT]))
                    self.fig.killed_readers += 1
                    killed = time.monotonic()
                keep.append((p, pid, kill_at, killed))
            out = keep
            if self.stop.is_set() and out and self.stop_handles.is_set():
                break
            time.sleep(0.02)
        self.leftover_handles = out

    def check_handle(self, p: subprocess.Popen[bytes], pid: int) -> None:
        o, e = p.communicate()
        text, err = o.decode(errors="replace"), e.decode(errors="replace")
        if p.returncode != 0:
            if EIO_TEXT in err:
                self.fig.error(f"cat /{pid}/pidfd: EIO")
            else:
                with self.fig.lock:
                    self.fig.benign["cat pidfd: " + (err.strip().rsplit(": ", 1)[-1] or "failed")] += 1
            return
        lines = text.splitlines()
        fields = dict(ln.split(":\t", 1) for ln in lines if ":\t" in ln)
        if (lines[:1] != [f"exited {pid % 256}"] or fields.get("Pid") not in (str(pid), "-1")
                or fields.get("ExitCode", str((pid % 256) << 8)) != str((pid % 256) << 8)):
            self.fig.error(f"cat /{pid}/pidfd gave {text[:80]!r}, not 'exited {pid % 256}' and Pid {pid} "
                           "(or -1 once reaped)")

    # -- the whole soak ------------------------------------------------------------------------------

    def phase(self, seconds: float) -> float:
        """Every worker for ``seconds``, then every churn process ended and reaped (which ends
        the blocked readers' waits). Returns how long it took."""
        self.stop.clear()
        self.stop_handles.clear()
        t0 = time.monotonic()
        handles = threading.Thread(target=self.handle_readers, name="handles")
        threads = [threading.Thread(target=self.writer, name="writer"), handles,
                   threading.Thread(target=self.reader, args=(0, ("ls", "ps", "self")), name="lister")]
        threads += [threading.Thread(target=self.reader, args=(n, ("cat", "read", "read", "self")),
                                     name=f"reader{n}") for n in (1, 2)]
        for t in threads:
            t.start()
        try:
            while time.monotonic() - t0 < seconds and all(t.is_alive() for t in threads):
                time.sleep(0.2)
        finally:
            self.stop.set()
            for t in threads:
                if t is not handles:
                    t.join()
            with self.live_lock:
                rest = sorted(self.live)
            self.end(rest)  # every blocked reader's target exits: they all finish now
            deadline = time.monotonic() + 10
            while handles.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.stop_handles.set()
            handles.join()
        return time.monotonic() - t0

    def main(self) -> Figures:
        """A warm-up phase (a tenth of the time, 10..30 s: the server reaches its working set)
        sets the level "before"; then the soak. Both levels are read once the server is quiet
        (``quiet``)."""
        self.phase(min(30.0, max(10.0, self.seconds / 10)))
        self.quiet()
        self.fig.rss_before = self.fig.rss_peak = rss_kib(self.server)
        self.fig.held_before = client.held_counts(self.mp)
        self.fig.seconds = self.phase(self.seconds)
        self.check_stuck()
        self.check_snapshots()
        self.quiet()
        self.fig.rss_after = rss_kib(self.server)
        self.fig.held_after = client.held_counts(self.mp)
        return self.fig

    def quiet(self, limit: float = 30.0) -> None:
        """Wait until the server holds no node of a freed pid (it invalidates their entries
        again 1, 3, 7... s after the reap: ``mount/events.py``), then for two of its
        housekeeping ticks without requests, after which an idle server has handed its free
        heap pages back once (``mount/server._housekeeping``; reading the counts is not a
        request)."""
        deadline = time.monotonic() + limit
        while client.held_counts(self.mp)["nodes_of_freed_pids"] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.5)

    def check_stuck(self) -> None:
        deadline = time.monotonic() + 5
        with self.procs_lock:
            procs = list(self.procs)
        for p in procs:
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if p.poll() is None:
                self.fig.stuck.append(f"pid {p.pid} ({' '.join(map(str, p.args))}) still running, "
                                      f"state {state_of(p.pid)}")

    def check_snapshots(self) -> None:
        for f in self.snapshots:
            if not f.exists():
                self.fig.error(f"snapshot {f} was not written")
                continue
            data = f.read_bytes()
            k = snap.restore_file(f, clock=lambda: 0)
            _, lines = snap.snapshot_lines(k)
            if "".join(lines).encode() != data:
                self.fig.error(f"snapshot {f.name} does not round-trip: restored and written again, it differs")
            else:
                self.fig.snapshots_checked += 1


def soak(seconds: float, *, seed: int = 1, workdir: str | None = None) -> Figures:
    """Mount a fresh default table, soak it for ``seconds`` (at most MAX_SECONDS), unmount it."""
    seconds = min(seconds, MAX_SECONDS)
    tmp = Path(tempfile.mkdtemp(prefix="pidfs-soak", dir=workdir))
    mp = tmp / "mnt"
    mp.mkdir()
    files = tmp / "files"
    files.mkdir()
    server = client.mount(str(mp))
    s = Soak(str(mp), server, files, seconds, seed)
    try:
        return s.main()
    finally:
        with s.procs_lock:
            procs = list(s.procs)
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.kill()
        try:
            client.unmount(str(mp))
        except Exception:
            subprocess.run(["fusermount3", "-u", "-z", str(mp)], capture_output=True)
            with contextlib.suppress(OSError):
                os.kill(server, signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(Exception):
                p.communicate(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


def problems(fig: Figures) -> list[str]:
    """What the soak asserts, as sentences (empty: it passed)."""
    out = list(fig.errors)
    out += [f"stuck: {s}" for s in fig.stuck]
    out += [f"read cut short: {t}" for t in fig.truncated]
    if fig.snapshots == 0 or fig.snapshots_checked != fig.snapshots:
        out.append(f"{fig.snapshots_checked} of {fig.snapshots} snapshots round-tripped")
    if fig.rss_after > fig.rss_before * 1.10:
        out.append(f"server RSS {fig.rss_after:,} KiB after the soak, more than 10% above "
                   f"{fig.rss_before:,} KiB before")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mountpoint_tests.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300, help=f"how long (default 300, at most {MAX_SECONDS})")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    fig = soak(args.seconds, seed=args.seed)
    print(fig.report())
    bad = problems(fig)
    for b in bad:
        print(f"FAIL: {b}", file=sys.stderr)
    print("soak: " + ("FAILED" if bad else "passed"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
