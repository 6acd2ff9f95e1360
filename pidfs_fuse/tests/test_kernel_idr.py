"""The id map under the allocator: ``Idr`` (lib/idr.c idr_alloc_cyclic, idr_alloc, idr_get_next,
the seed-000 tag) and the ``BitSet`` whose summaries make every successor query O(log64 n).

Randomised checks run against a plain Python set with fixed seeds, so they are deterministic.
"""

from __future__ import annotations

import random

import pytest

from pidfs_fuse.kernel.bitmap import BitSet
from pidfs_fuse.kernel.idr import PID_MAX_LIMIT, Idr


def slow_next_set(s: set[int], i: int, size: int) -> int:
    return min((x for x in s if x >= max(i, 0)), default=-1)


def slow_next_clear(s: set[int], i: int, end: int) -> int:
    return next((x for x in range(max(i, 0), end) if x not in s), -1)


# -- BitSet ------------------------------------------------------------------------------------


def test_bitset_add_discard_contains_and_count() -> None:
    b = BitSet(1000)
    for i in (0, 63, 64, 999, 64):
        b.add(i)
    assert len(b) == 4 and 64 in b and 65 not in b
    b.discard(64)
    b.discard(64)
    b.discard(500)
    assert len(b) == 3 and 64 not in b


@pytest.mark.parametrize(("members", "start", "expected"), [
    ([], 0, -1), ([0], 0, 0), ([5], 6, -1), ([63, 64], 0, 63), ([63, 64], 64, 64),
    ([4095, 4096], 100, 4095), ([262143], 1, 262143), ([10], -7, 10), ([999], 999, 999),
    ([999], 1000, -1), ([999], 5000, -1),
], ids=lambda v: str(v))
def test_bitset_next_set(members: list[int], start: int, expected: int) -> None:
    b = BitSet(1000 if max(members, default=0) < 1000 else 300_000)
    for m in members:
        b.add(m)
    assert b.next_set(start) == expected


def test_bitset_next_clear_skips_full_words_and_full_summaries() -> None:
    b = BitSet(PID_MAX_LIMIT)
    for i in range(64 * 64 * 3 + 7):  # three full summary words and a bit more
        b.add(i)
    assert b.next_clear(0, PID_MAX_LIMIT) == 64 * 64 * 3 + 7
    assert b.next_clear(5, 100) == -1  # end is exclusive and everything below it is taken
    b.discard(4096)
    assert b.next_clear(0, PID_MAX_LIMIT) == 4096
    assert b.next_clear(4097, 20_000) == 64 * 64 * 3 + 7
    assert b.next_clear(4097, 12_000) == -1
    assert b.next_clear(10, 10) == -1 and b.next_clear(20, 10) == -1


def test_bitset_full_to_the_last_bit() -> None:
    b = BitSet(130)
    for i in range(130):
        b.add(i)
    assert b.next_clear(0, 130) == -1 and b.next_set(129) == 129 and b.next_set(130) == -1
    b.discard(129)
    assert b.next_clear(0, 130) == 129


@pytest.mark.parametrize("size", [1, 64, 65, 4096, 4097, 300_000], ids=lambda s: f"size{s}")
def test_bitset_matches_a_python_set_under_random_operations(size: int) -> None:
    rng = random.Random(size)
    b, s = BitSet(size), set()
    for _ in range(3000):
        i = rng.randrange(size)
        if rng.random() < 0.6:
            b.add(i)
            s.add(i)
        else:
            b.discard(i)
            s.discard(i)
        q = rng.randrange(-2, size + 2)
        end = rng.randrange(0, size + 1)
        assert b.next_set(q) == slow_next_set(s, q, size), (q, sorted(s)[:20])
        if size <= 5000:
            assert b.next_clear(q, end) == slow_next_clear(s, q, end)
    assert len(b) == len(s)
    got, x = [], b.next_set(0)
    while x >= 0:
        got.append(x)
        x = b.next_set(x + 1)
    assert got == sorted(s)


def test_bitset_dense_region_next_clear_matches_a_python_set() -> None:
    rng = random.Random(7)
    size = 20_000
    b, s = BitSet(size), set()
    for i in range(size):
        if rng.random() < 0.995:
            b.add(i)
            s.add(i)
    for q in range(0, size, 97):
        assert b.next_clear(q, size) == slow_next_clear(s, q, size)


# -- Idr ---------------------------------------------------------------------------------------


def test_idr_alloc_cyclic_moves_the_cursor_and_wraps_to_start() -> None:
    idr: Idr[object] = Idr()
    assert [idr.alloc_cyclic(f"p{i}", 1, 6, True) for i in range(5)] == [1, 2, 3, 4, 5]
    assert idr.cursor == 6
    assert idr.alloc_cyclic("x", 1, 6, True) == -1  # full: -ENOSPC
    idr.remove(2)
    assert idr.alloc_cyclic("y", 1, 6, True) == 2 and idr.cursor == 3
    idr.remove(4)
    idr.remove(1)
    assert idr.alloc_cyclic("z", 1, 6, True) == 4  # from the cursor first, not the lowest


def test_idr_alloc_cyclic_starts_at_start_when_the_cursor_is_below() -> None:
    idr: Idr[object] = Idr()
    assert idr.alloc_cyclic(None, 300, 400, False) == 300
    idr.cursor = 0
    assert idr.alloc_cyclic(None, 300, 400, False) == 301


def test_idr_alloc_cyclic_end_is_exclusive_and_the_wrap_stays_above_start() -> None:
    idr: Idr[object] = Idr()
    idr.cursor = 399
    assert idr.alloc_cyclic(None, 300, 400, False) == 399
    assert idr.alloc_cyclic(None, 300, 400, False) == 300  # wrapped: 1..299 are not looked at
    idr.alloc_exact(None, 5, False)
    assert 5 in idr and idr.cursor == 301


def test_idr_alloc_exact_fails_on_a_taken_id_and_keeps_the_cursor() -> None:
    idr: Idr[object] = Idr()
    assert idr.alloc_exact("a", 42, True)
    assert not idr.alloc_exact("b", 42, True)
    assert idr.find(42) == "a" and idr.cursor == 0 and len(idr) == 1


def test_idr_tags_follow_allocation_and_removal() -> None:
    idr: Idr[object] = Idr()
    idr.alloc_cyclic("leader", 1, 100, True)
    idr.alloc_cyclic("thread", 1, 100, False)
    idr.alloc_exact("leader2", 50, True)
    assert [idr.is_tagged(i) for i in (1, 2, 50)] == [True, False, True]
    assert idr.tagged_count == 2 and len(idr) == 3
    assert (idr.next_tagged(2), idr.next_used(2), idr.next_tagged(51)) == (50, 2, -1)
    idr.remove(50)
    assert not idr.is_tagged(50) and idr.next_tagged(2) == -1 and idr.tagged_count == 1
    idr.alloc_exact("thread2", 50, False)
    assert not idr.is_tagged(50)  # a new owner of the number does not inherit the tag


def test_idr_replace_and_items_in_ascending_order() -> None:
    idr: Idr[object] = Idr()
    for nr in (30, 5, 4000, 64):
        idr.alloc_exact(None, nr, False)
    idr.replace(64, "pid64")
    assert list(idr.items()) == [(5, None), (30, None), (64, "pid64"), (4000, None)]
    assert idr.find(64) == "pid64" and idr.find(65) is None and 30 in idr and 31 not in idr


def test_idr_handles_the_largest_pid_numbers() -> None:
    idr: Idr[object] = Idr()
    top = PID_MAX_LIMIT - 1
    idr.cursor = top
    assert idr.alloc_cyclic("t", 1, PID_MAX_LIMIT, True) == top
    assert idr.next_tagged(0) == top and idr.next_used(top) == top
    assert idr.alloc_cyclic("u", 1, PID_MAX_LIMIT, True) == 1


@pytest.mark.parametrize("size", [1, 64, 65, 4097, 300_000], ids=lambda s: f"size{s}")
def test_bitset_iter_from_yields_the_members_from_any_start_in_order(size: int) -> None:
    rng = random.Random(size + 1)
    b, s = BitSet(size), set()
    for _ in range(min(size, 2000)):
        i = rng.randrange(size)
        b.add(i)
        s.add(i)
    for q in [0, 1, 63, 64, 65, size - 1, size, size + 5, *(rng.randrange(size) for _ in range(20))]:
        assert list(b.iter_from(q)) == sorted(x for x in s if x >= q), q
    b.add(size - 1)  # the last bit of a word that is cut short by the size
    assert list(b.iter_from(size - 1)) == [size - 1]


@pytest.mark.parametrize("size", [64, 4096 + 17, 64**3 + 5])
def test_bitset_update_is_add_for_each_item(size: int) -> None:
    rnd = random.Random(size)
    one, many = BitSet(size), BitSet(size)
    for _ in range(40):
        # runs that fill words, start empty ones, repeat members and cross word boundaries
        base = rnd.randrange(size)
        items = [min(size - 1, base + d) for d in range(rnd.choice([1, 9, 64, 130]))]
        items += rnd.sample(range(size), 5) + items[:3]
        for i in items:
            one.add(i)
        many.update(items)
        assert many.count == one.count == len(many)
        # the summaries, through the queries that read them
        for start in [0, base, *rnd.sample(range(size), 8)]:
            assert many.next_set(start) == one.next_set(start)
            assert many.next_clear(start, size) == one.next_clear(start, size)
    assert [*many.iter_from(0)] == [*one.iter_from(0)]
