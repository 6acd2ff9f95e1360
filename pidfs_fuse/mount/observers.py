"""Stand-in tasks for callers the view has no process for, freed when their caller is gone.

procps reads ``/proc/<getpid()>/stat``; a caller that is not in the table (every ``cat``, ``ls``
and ``ps`` of a host) gets a ``/<pid>`` entry backed by a stand-in task that never enters the
model (``nodes/piddir.make_observer``). A stand-in is keyed by the number the caller knows
itself by *and* its host process (two ``pidfs-fuse exec`` commands both know themselves as
4000000), so no caller ever reaches another's. Callers come and go by the thousand, so each
stand-in is kept with the identity of its host process (its host pid and that process's start
time in ``/proc/<pid>/stat``), and ``sweep`` frees those whose process has exited or whose pid
now names another process. The mount sweeps whenever the number of stand-ins has
doubled since the last sweep (so the cost is constant per stand-in made), and asks the kernel
to drop the dentries of the freed ones, so their nodes are forgotten too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: (pid namespace inum, number the caller knows itself by, host tgid): the key of a stand-in
Key = tuple[int, int, int]


def host_starttime(pid: int, proc: str = "/proc") -> int | None:
    """The start time (clock ticks since boot, field 22 of stat) of host process ``pid``, or
    None when there is no such process."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class Observers:
    """The stand-ins by key, each with its host process's start time (dict-like for lookups)."""

    def __init__(self, proc: str = "/proc", *, real: bool = True) -> None:
        self.proc = proc
        #: whether ``proc`` is a real procfs that may be read (never a pidfs-fuse mount: the
        #: read could be a request to this very server); without it every sweep frees all
        self.real = real
        self._tasks: dict[Key, Any] = {}
        self._born: dict[Key, int | None] = {}
        self._by_nr: dict[int, set[Key]] = {}
        #: sweep when there are this many stand-ins (doubles after each sweep)
        self.next_sweep = 64

    def get(self, key: Key) -> Any:
        return self._tasks.get(key)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._tasks))

    def __contains__(self, key: object) -> bool:
        return key in self._tasks

    def add(self, key: Key, task: Any) -> None:
        """Remember ``task`` as the stand-in of host process ``key[2]`` (as it is now)."""
        self._tasks[key] = task
        self._born[key] = host_starttime(key[2], self.proc) if self.real else None
        self._by_nr.setdefault(key[1], set()).add(key)

    def pop(self, key: Key) -> Any:
        task = self._tasks.pop(key, None)
        if task is not None:
            del self._born[key]
            keys = self._by_nr.get(key[1])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_nr[key[1]]
        return task

    def discard_number(self, nr: int) -> None:
        """Forget every stand-in numbered ``nr`` (in any namespace)."""
        for key in list(self._by_nr.get(nr, ())):
            self.pop(key)

    def due(self) -> bool:
        return len(self._tasks) >= self.next_sweep

    def sweep(self) -> list[Key]:
        """Free the stand-ins whose host process is gone (or whose pid was reused); return their
        keys. The next automatic sweep comes when the number left has doubled (at least 64)."""
        gone = [key for key, born in self._born.items()
                if born is None or host_starttime(key[2], self.proc) != born]
        for key in gone:
            self.pop(key)
        self.next_sweep = max(64, 2 * len(self._tasks))
        return gone
