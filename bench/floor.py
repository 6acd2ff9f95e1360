"""The floor server (``floor_server.py``) from the benchmark's side: start it, time each kind of
request it answers, and price a tool run's requests with those costs.

``with Floor() as fl:`` mounts it; ``fl.costs(n)`` times ``n`` of each probe (open+read+close
of a cached file, a stat that is one lookup, one getattr, a pread that is one read, a readlink,
a listing of an empty directory) and returns the seconds per request by type, each probe's time
divided by the requests the server counted for it; ``price(counts, costs)`` is what the
requests of a tool run (``client.request_counts``) would cost on the floor.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import TracebackType

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor_server.py")
REPLAY_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replay_server.py")
XATTR = "user.floor.requests"
#: requests the kernel sends without a caller waiting, in batches: not priced
UNPRICED = frozenset({"forget"})


class FloorError(RuntimeError):
    pass


class Floor:
    server = SERVER

    def __init__(self, *args: str) -> None:
        self.path = tempfile.mkdtemp(prefix="pidfs-floor-")
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Floor:
        self.proc = subprocess.Popen([sys.executable, self.server, self.path, *self.args],
                                     env=dict(os.environ, PIDFS_FLOOR_PARENT=str(os.getpid())))
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.path):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__(None, None, None)
                raise FloorError(f"the floor server ({self.server}) did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if subprocess.run(["fusermount3", "-u", self.path], capture_output=True).returncode:
            # busy, or its server died: detach it, so no mount outlives the benchmark
            subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True)
        try:
            os.rmdir(self.path)
        except OSError:
            pass

    def counts(self) -> dict[str, int]:
        raw = os.getxattr(self.path, XATTR).decode()
        return {k: int(v) for k, v in (ln.split() for ln in raw.splitlines())}

    def _probe(self, op: Callable[[int], object], n: int) -> tuple[float, dict[str, int]]:
        op(0)  # the first of a kind may cost a lookup or a page-cache fill
        before = self.counts()
        t0 = time.perf_counter()
        for i in range(n):
            op(i)
        took = time.perf_counter() - t0
        after = self.counts()
        return took, {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}

    def open_read_close(self, n: int, files: int = 1) -> float:
        """Seconds per open+read+close of a cached file (an ``open`` and a ``release``), cycling
        through ``files`` of them (``f0``...), as a benchmark cycles through a table's."""
        paths = [os.path.join(self.path, f"f{i}") for i in range(files)]
        for p in paths:  # their lookups and page-cache fills, as the table's were warmed
            read_file(p)
        return self._probe(lambda i: read_file(paths[i % files]), n)[0] / n

    def costs(self, n: int) -> dict[str, float]:
        """Seconds per request, by type, from ``n`` of each probe."""
        p = self.path
        fd = os.open(os.path.join(p, "r"), os.O_RDONLY)
        try:
            probes: list[Callable[[int], object]] = [
                lambda i: read_file(os.path.join(p, "f")),
                lambda i: os.stat(os.path.join(p, f"n{i}")),
                lambda i: os.stat(os.path.join(p, "g")),
                lambda i: os.pread(fd, 4096, 0),
                lambda i: os.readlink(os.path.join(p, "l")),
                lambda i: os.listdir(os.path.join(p, "d")),
            ]
            out: dict[str, float] = {}
            for op in probes:
                took, got = self._probe(op, n)
                total = sum(v for k, v in got.items() if k not in UNPRICED)
                for k in got:
                    if k not in UNPRICED:
                        out.setdefault(k, took / total)
        finally:
            os.close(fd)
        return out


class Replay(Floor):
    """The replay floor (``replay_server.py``) holding a copy of the mount at ``source``: run a
    tool against ``path`` once to fill it, then again to time the floor of that run."""

    server = REPLAY_SERVER

    def __init__(self, source: str | os.PathLike[str]) -> None:
        super().__init__(os.fspath(source))


def price(counts: dict[str, int], costs: dict[str, float]) -> float:
    """Seconds the floor would take for ``counts`` requests (types it has no probe for are
    priced at the median of the others; ``forget`` is not priced: no caller waits for it)."""
    typical = statistics.median(costs.values())
    return sum(n * costs.get(k, typical) for k, n in counts.items() if k not in UNPRICED)


def read_file(path: str) -> None:
    """open, read and close as a C tool does them (no Python file object around them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 4096)
    finally:
        os.close(fd)
