"""growth.py: big dicts grow between slices of bulk work, keeping their keys and order."""

from __future__ import annotations

import itertools
import sys

import pytest

from pidfs_fuse import growth
from pidfs_fuse.control import Control, Unfinished
from pidfs_fuse.kernel import Kernel

#: a dict filled one key at a time grows when its 87,382nd key comes (2/3 of 2**17 slots)
EDGE = 87_381


def filled(n: int) -> dict[int, None]:
    d: dict[int, None] = {}
    for i in range(n):
        d[i] = None
    return d


def test_the_layout_of_this_python_is_known() -> None:
    assert growth._LAYOUT is not None
    assert growth._room(filled(EDGE - 10)) == 10
    assert growth._room(filled(EDGE + 1)) == 174_762 - (EDGE + 1)  # 2**18 slots, 2/3 usable


def test_a_dict_about_to_grow_grows_now_and_keeps_its_keys_and_order() -> None:
    d = filled(EDGE - 300)
    for i in range(0, 1000, 7):  # holes: deleted keys keep their places until it grows
        del d[i]
    keys = list(d)
    size = sys.getsizeof(d)
    assert growth._grows_now(d, 250)
    assert sys.getsizeof(d) > size
    assert list(d) == keys
    size = sys.getsizeof(d)
    for i in range(10**6, 10**6 + 2 * 250):  # the next slices fit without growing
        d[i] = None
    assert sys.getsizeof(d) == size


@pytest.mark.parametrize("n", [100, EDGE - 600, EDGE + 1000], ids=["small", "far", "just-grown"])
def test_a_dict_with_room_or_small_is_left_alone(n: int) -> None:
    d = filled(n)
    size, keys = sys.getsizeof(d), list(d)
    assert not growth._grows_now(d, 250)
    assert (sys.getsizeof(d), list(d)) == (size, keys)


def test_a_dict_under_the_margin_grows_early_and_keeps_its_keys_and_order() -> None:
    d = filled(EDGE - 5_000)
    keys, size = list(d), sys.getsizeof(d)
    assert not growth._grows_now(d, 250)  # room for 5,000 more: not yet by the default
    assert (sys.getsizeof(d), list(d)) == (size, keys)
    assert growth._grows_now(d, 250, growth.margin(250, 5))  # 10,500: now
    assert sys.getsizeof(d) > size and list(d) == keys
    assert growth._room(d) == 174_762 - (EDGE - 5_000) - growth._left[id(d)][1]


def test_the_margin_leaves_room_for_every_dict_s_turn_and_two_slices() -> None:
    assert growth.margin(250, 5) == (growth.GAP * 5 + 2) * 250
    assert growth.margin(10, 1) == (growth.GAP + 2) * 10


def test_a_sliced_bulk_clone_grows_each_dict_in_a_step_of_its_own_gap_slices_apart() -> None:
    k = Kernel(pid_max=4194304)
    c = Control(k)
    c.slice = 250
    init = k.find_task(k.root_ns, 1)
    assert init is not None
    g = init.group
    assert g.pgrp is not None and g.session is not None

    def dicts() -> list[dict]:
        return [k.root_ns.idr.numbers(), init.children or {}, g.pgrp.pgrp_tasks or {},
                g.session.session_tasks or {}]
    call = c.parse(f"clone 1 count={EDGE + 500}")
    done, growth_steps, step = 0, [], 0
    while True:
        sizes = [sys.getsizeof(d) for d in dicts()]
        big = [len(d) >= growth.SMALL for d in dicts()]  # smaller ones grow as they fill
        try:
            out = call.run()
            break
        except Unfinished as u:
            grown = [b and sys.getsizeof(d) != s for d, s, b in zip(dicts(), sizes, big, strict=True)]
            if u.done == done:  # a step that only grew a dict: exactly one
                assert grown.count(True) == 1
                growth_steps.append(step)
            else:  # a slice of clones never grows one
                assert grown.count(True) == 0
            done = u.done
            step += 1
    # the idr, init's children, its process group and its session: one step each, each after
    # GAP slices of clones
    assert len(growth_steps) == 4
    assert all(b - a == growth.GAP + 1 for a, b in itertools.pairwise(growth_steps))
    assert out == "".join(f"{p}\n" for p in sorted(k.root_ns.idr.numbers())[-(EDGE + 500):])


def test_a_sliced_bulk_clone_answers_as_an_unsliced_one() -> None:
    replies = []
    for slice_ in (None, 7):
        c = Control(Kernel())
        c.slice = slice_
        call = c.parse("clone 1 count=100")
        while True:
            try:
                replies.append(call.run())
                break
            except Unfinished:
                pass
    assert replies[0] == replies[1]
    assert len(replies[0].split("\n")) == 101


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_collector_paused_puts_what_was_made_in_the_oldest_generation_and_collects_later() -> None:
    import gc
    import weakref

    assert gc.isenabled() and gc.get_freeze_count() == 0
    with growth.collector_paused():
        assert not gc.isenabled()
        kept = _Node()
        a, b = _Node(), _Node()  # a cycle, garbage once the names go
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects(generation=2))
    assert gone() is not None  # not walked by a young collection on the way out
    gc.collect()
    assert gone() is None  # the next full collection frees it as before


def test_collector_paused_leaves_frozen_objects_frozen() -> None:
    import gc

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with growth.collector_paused():
            _Node()
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
