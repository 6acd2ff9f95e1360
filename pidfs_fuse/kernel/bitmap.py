"""A fixed-size set of small integers with O(log64 n) successor queries.

Models the part of the kernel's IDR (a radix tree over pid numbers) that pid allocation and the
procfs root listing rely on: "first free id >= n" (idr_alloc_cyclic) and "first set / tagged id
>= n" (idr_get_next, idr_get_next_tag). Each level summarises 64 words of the level below, one
summary for "word is not empty" (successor of a set bit) and one for "word is full" (successor of
a clear bit), so neither query ever walks the ids one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

_W = 64
_FULL = (1 << _W) - 1


class BitSet:
    """Set of integers in ``[0, size)``: add, discard, membership, next set, next clear."""

    __slots__ = ("_bits", "_full", "_ne_up", "_nonempty", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        # _nonempty[0] / _full[0] are the same list: the bits themselves.
        nonempty: list[list[int]] = []
        full: list[list[int]] = []
        n = max(1, size)
        bits = [0] * ((n + _W - 1) // _W)
        nonempty.append(bits)
        full.append(bits)
        n = len(bits)
        while n > 1:
            n = (n + _W - 1) // _W
            nonempty.append([0] * n)
            full.append([0] * n)
        self._nonempty = nonempty
        self._full = full
        self._bits = bits  # level 0, and the summary levels above it: read on every add/discard
        self._ne_up = tuple(nonempty[1:])

    def __contains__(self, i: int) -> bool:
        return bool(self._nonempty[0][i >> 6] >> (i & 63) & 1)

    def __len__(self) -> int:
        return self.count

    def add(self, i: int) -> None:
        bits = self._bits
        j = i >> 6
        w = bits[j]
        b = 1 << (i & 63)
        if w & b:
            return
        w |= b
        bits[j] = w
        self.count += 1
        if w == b:
            # the word was empty: set its bit in the "non-empty" summaries, up to the first
            # summary word that already had one (inline: this runs for most allocations, see
            # bench/model.py alloc_free and clone_cycle)
            for words in self._ne_up:
                k = j >> 6
                sw = words[k]
                words[k] = sw | (1 << (j & 63))
                if sw:
                    break
                j = k
        elif w == _FULL:  # (a word with one bit is never full)
            self._set_full(j)

    def update(self, items: Iterable[int]) -> None:
        """``add`` each of ``items``, with one call: a bit whose word is neither empty before
        nor full after needs no summary, and is set here (a restore adds numbers by the
        million, bench/snapshot_bench.py); any other goes through ``add``."""
        bits = self._bits
        count = self.count
        for i in items:
            j = i >> 6
            w = bits[j]
            b = 1 << (i & 63)
            if w & b:
                continue
            nw = w | b
            if w and nw != _FULL:
                bits[j] = nw
                count += 1
            else:
                self.count = count
                self.add(i)
                count = self.count
        self.count = count

    def discard(self, i: int) -> None:
        bits = self._bits
        j = i >> 6
        w = bits[j]
        b = 1 << (i & 63)
        if not w & b:
            return
        nw = w ^ b
        bits[j] = nw
        self.count -= 1
        if not nw:
            # the word is empty now: clear its "non-empty" summary bits, up to the first summary
            # word that stays non-empty (inline, as in add)
            for words in self._ne_up:
                k = j >> 6
                sw = words[k] & ~(1 << (j & 63))
                words[k] = sw
                if sw:
                    break
                j = k
        elif w == _FULL:
            self._clear_full(j)

    # summaries ---------------------------------------------------------------------------

    def _set_full(self, j: int) -> None:
        levels = self._full
        for lvl in range(1, len(levels)):
            words = levels[lvl]
            k = j >> 6
            nw = words[k] | (1 << (j & 63))
            words[k] = nw
            if nw != _FULL:
                return
            j = k

    def _clear_full(self, j: int) -> None:
        levels = self._full
        for lvl in range(1, len(levels)):
            words = levels[lvl]
            k = j >> 6
            w = words[k]
            words[k] = w & ~(1 << (j & 63))
            if w != _FULL:
                return
            j = k

    # queries -----------------------------------------------------------------------------

    def next_set(self, i: int) -> int:
        """Smallest member >= i, or -1."""
        if i >= self.size:
            return -1
        r = _next(self._nonempty, 0, max(i, 0), False)
        return r if r < self.size else -1

    def iter_from(self, i: int) -> Iterator[int]:
        """Members >= i in ascending order, a word at a time (a listing's scan: one successor
        query per non-empty word, not per member). The set must not change while iterating."""
        bits = self._bits
        size = self.size
        while True:
            r = self.next_set(i)
            if r < 0:
                return
            j = r >> 6
            base = j << 6
            w = bits[j] >> (r & 63) << (r & 63)  # the word's members >= r
            while w:
                low = w & -w
                n = base + low.bit_length() - 1
                if n >= size:
                    return
                yield n
                w ^= low
            i = base + _W

    def next_clear(self, i: int, end: int) -> int:
        """Smallest non-member in [i, end), or -1."""
        if i >= end:
            return -1
        r = _next(self._full, 0, max(i, 0), True)
        return r if 0 <= r < end else -1


def _next(levels: list[list[int]], lvl: int, i: int, clear: bool) -> int:
    """First set (or, with ``clear``, clear) bit >= i at level ``lvl``, or -1: climb the
    summaries until some word has a candidate at or after the position, then descend taking the
    lowest candidate of each word below. A loop, not recursion: allocation runs it often."""
    nlev = len(levels)
    while True:
        words = levels[lvl]
        j = i >> 6
        if j >= len(words):
            return -1
        w = words[j]
        if clear:
            # a set bit means "taken" (level 0) or "the word below is full" (summaries): skip it
            w = ~w & _FULL
        w &= (_FULL << (i & 63)) & _FULL
        if w:
            r = (j << 6) | ((w & -w).bit_length() - 1)
            break
        if lvl + 1 == nlev:
            for k in range(j + 1, len(words)):
                w = ~words[k] & _FULL if clear else words[k]
                if w:
                    r = (k << 6) | ((w & -w).bit_length() - 1)
                    break
            else:
                return -1
            break
        lvl += 1
        i = j + 1
    while lvl:
        lvl -= 1
        words = levels[lvl]
        if r >= len(words):
            # a summary's bits past its last real word read as "not full": nothing is there
            return -1
        w = ~words[r] & _FULL if clear else words[r]
        r = (r << 6) | ((w & -w).bit_length() - 1)
    return r
