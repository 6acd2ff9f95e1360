"""growth.py: big dicts grow between slices of bulk work, keeping their keys and order."""

from __future__ import annotations

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


def test_a_sliced_bulk_clone_grows_each_dict_in_a_step_of_its_own() -> None:
    k = Kernel(pid_max=4194304)
    c = Control(k)
    c.slice = 250
    call = c.parse(f"clone 1 count={EDGE + 500}")
    done, empty_steps = 0, 0
    while True:
        try:
            out = call.run()
            break
        except Unfinished as u:
            empty_steps += u.done == done  # a step that only grew a dict
            done = u.done
    # the idr, init's children, its process group and its session: one step each
    assert empty_steps == 4
    assert len(out.split()) == EDGE + 500
