"""Models the per-namespace IDR that maps pid numbers to ``struct pid`` (lib/idr.c).

Three things of the IDR matter to pids and are kept here: the number -> pid map, the cyclic
cursor of ``idr_alloc_cyclic`` (``ns_last_pid`` is cursor - 1), and the tag of seed 000 that
marks numbers allocated for a new thread group. Allocation, tagging and both successor queries
cost O(log64 pid_max); nothing walks the numbers one by one (see ``bitmap.BitSet``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from .bitmap import BitSet

#: What the map holds: ``struct pid`` for a namespace's IDR (``PidNamespace.idr``).
T = TypeVar("T")

#: PID_MAX_LIMIT on 64-bit: the largest pid_max any namespace may have.
PID_MAX_LIMIT = 4 * 1024 * 1024


class Idr(Generic[T]):
    __slots__ = ("_ptr", "_tagged", "_used", "cursor")

    def __init__(self) -> None:
        #: number -> pointer; None for a number taken without one yet (alloc_pid() takes its
        #: numbers with idr_alloc(NULL) and idr_replace()s them once the pid is built)
        self._ptr: dict[int, T | None] = {}
        self._used = BitSet(PID_MAX_LIMIT)
        self._tagged = BitSet(PID_MAX_LIMIT)
        #: idr->idr_next: where the next cyclic allocation starts looking.
        self.cursor = 0

    def __len__(self) -> int:
        return len(self._ptr)

    def __contains__(self, nr: int) -> bool:
        return nr in self._ptr

    def numbers(self) -> dict[int, T | None]:
        """The number -> pointer map itself (``growth.make_room`` grows it between slices of
        bulk work); not to be changed."""
        return self._ptr

    def find(self, nr: int) -> T | None:
        return self._ptr.get(nr)

    def alloc_cyclic(self, ptr: T | None, start: int, end: int, tag: bool) -> int:
        """idr_alloc_cyclic(): first free id in [max(start, cursor), end), else wrap to start.

        Returns -1 where the kernel returns -ENOSPC.
        """
        cursor = self.cursor
        nr = cursor if cursor > start else start
        # The common case, the cursor's id is free, skips the search (bench/model.py alloc_free)
        if nr >= end or nr in self._ptr:
            used = self._used
            nr = used.next_clear(nr, end)
            if nr < 0 and cursor > start:
                nr = used.next_clear(start, end)
            if nr < 0:
                return -1
        self._ptr[nr] = ptr
        self._used.add(nr)
        if tag:
            self._tagged.add(nr)
        self.cursor = nr + 1
        return nr

    def next_cyclic(self, end: int) -> int:
        """The number ``alloc_cyclic`` gives next when that is simply the cursor's (the cursor,
        at least 1, below ``end`` and free), else -1: the caller then runs ``alloc_cyclic``
        (or, in a bulk clone, the whole clone). Changes nothing."""
        nr = self.cursor if self.cursor > 1 else 1
        return nr if nr < end and nr not in self._ptr else -1

    def take(self, nr: int, ptr: T, tag: bool) -> None:
        """Take the number ``next_cyclic`` just returned, as ``alloc_cyclic`` would (pointer,
        tag, cursor past it)."""
        self._ptr[nr] = ptr
        self._used.add(nr)
        if tag:
            self._tagged.add(nr)
        self.cursor = nr + 1

    def alloc_exact(self, ptr: T | None, nr: int, tag: bool) -> bool:
        """idr_alloc(idr, ptr, nr, nr + 1): False when nr is taken. The cursor does not move."""
        if nr in self._ptr:
            return False
        self._insert(nr, ptr, tag)
        return True

    def _insert(self, nr: int, ptr: T | None, tag: bool) -> None:
        self._ptr[nr] = ptr
        self._used.add(nr)
        if tag:
            self._tagged.add(nr)

    def replace(self, nr: int, ptr: T) -> None:
        self._ptr[nr] = ptr

    def remove(self, nr: int) -> int:
        """idr_remove(); returns how many ids are left (free_pid's ``--pid_allocated``)."""
        ptrs = self._ptr
        del ptrs[nr]
        self._used.discard(nr)
        self._tagged.discard(nr)
        return len(ptrs)

    def is_tagged(self, nr: int) -> bool:
        return nr in self._tagged

    def next_tagged(self, nr: int) -> int:
        """idr_get_next_tag(): first tagged id >= nr, or -1."""
        return self._tagged.next_set(nr)

    def next_used(self, nr: int) -> int:
        """idr_get_next(): first allocated id >= nr, or -1."""
        return self._used.next_set(nr)

    def iter_tagged(self, nr: int) -> Iterator[int]:
        """Tagged ids >= nr in ascending order (``next_tagged`` repeated, a word at a time);
        the map must not change while iterating."""
        return self._tagged.iter_from(max(nr, 0))

    def iter_used(self, nr: int) -> Iterator[int]:
        """Allocated ids >= nr in ascending order, like ``iter_tagged``."""
        return self._used.iter_from(max(nr, 0))

    def items(self) -> Iterator[tuple[int, T | None]]:
        """(nr, ptr) in ascending order of nr."""
        nr = self._used.next_set(0)
        while nr >= 0:
            yield nr, self._ptr[nr]
            nr = self._used.next_set(nr + 1)

    @property
    def tagged_count(self) -> int:
        return len(self._tagged)
