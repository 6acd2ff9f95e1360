"""What several benchmarks measure the same way: a process's ``/proc/<pid>/status`` sizes, and
the latency of reading a file in a loop while something else runs."""

from __future__ import annotations

import threading
import time
from types import TracebackType


def status_kib(pid: int, key: str = "VmRSS") -> int:
    """A ``kB`` line of the real ``/proc/<pid>/status`` (VmRSS, VmHWM...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


class ReadLatency:
    """``with ReadLatency(path) as r:`` a thread opens, reads and closes ``path`` in a loop (a
    reader, not a second load: it pauses 2 ms between reads) until the block ends; then
    ``reads``, ``max_ms`` and ``p99_ms``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            with open(self.path, "rb") as f:
                f.read()
            self.times.append(time.perf_counter() - t0)
            time.sleep(0.002)

    def __enter__(self) -> ReadLatency:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def _ms(self) -> list[float]:
        return sorted(t * 1000 for t in self.times)

    @property
    def reads(self) -> int:
        return len(self.times)

    @property
    def max_ms(self) -> float:
        return max(self.times, default=0.0) * 1000

    @property
    def p99_ms(self) -> float:
        ms = self._ms
        return ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else 0.0
