"""Big dicts grow between slices of bulk work, not inside one (issue 9 point 4).

A CPython dict grows by copying itself into a table about twice as big once it is two thirds
full. For the dicts a bulk clone fills (the namespace's number map, the parent's children, the
process group's and session's members, a group's threads) that copy costs about 55 ms at
700,000 entries, more beyond, and since all of them hold the same tasks they all grow in the
same clone: 280 ms in one step of ``clone 1 count=1000000``, during which the mount answers
nothing (bench/bulk_bench.py). So before each slice the bulk clone asks ``make_room`` whether
any of them would grow during the slice, and if one would, grows it right then, alone in a step
of its own. A ``cat`` is four or five requests, each of which may wait for the step under way,
so two dicts growing in consecutive steps still made one read wait for both (four 28 ms steps
in a row at 700,000 tasks: a 120 ms read): a dict grows only ``GAP`` slices after the last one
did, and early enough (``margin``) that each of them gets its turn before it would fill.

A dict does not say how full it is, nor can it be grown in advance, so ``_room`` reads its
capacity off ``sys.getsizeof`` (CPython's table layout, calibrated at import on two small dicts;
any other layout reads as unknown and nothing is done), and ``_grow`` adds placeholder keys until
the dict grew, then removes them, leaving its keys and their order as they were. Only
performance depends on CPython's growth rule; the contents never do.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from typing import Any

from .kernel import Task

#: a dict smaller than this grows in well under a millisecond: not worth a look
SMALL = 50_000
#: slices of ordinary work between two growth steps (about 4 ms each on a quiet machine: a
#: ``cat`` that met one growth step meets none of the next)
GAP = 8


def _layout() -> tuple[int, int] | None:
    """(fixed bytes, bytes per entry) of a dict with non-string keys, from one of 8 slots (5
    usable, 1-byte indices) and one of 16 (10 usable), both filled one key at a time; None if
    they do not fit CPython 3.11-3.13's layout."""
    small: dict[int, None] = {}
    big: dict[int, None] = {}
    small[0] = None
    for i in range(6):
        big[i] = None
    g1, g2 = sys.getsizeof(small), sys.getsizeof(big)
    es, rem = divmod(g2 - g1 - 8, 5)
    if rem or es <= 0:
        return None
    return g1 - 8 - 5 * es, es


_LAYOUT = _layout()


#: id of a dict grown by ``_grow`` -> (its size then, the places its placeholders left): the
#: places stay taken until the dict grows again (its size changes)
_left: dict[int, tuple[int, int]] = {}


def _room(d: dict[Any, Any]) -> int | None:
    """How many more keys ``d`` takes before it grows (None: unknown). An upper bound when keys
    other than ``_grow``'s placeholders were deleted since it last grew."""
    if _LAYOUT is None:
        return None
    fixed, es = _LAYOUT
    size = sys.getsizeof(d)
    taken = len(d)
    mark = _left.get(id(d))
    if mark is not None and mark[0] == size:
        taken += mark[1]
    for log2 in range(3, 40):
        n = 1 << log2
        index = 1 if log2 < 8 else 2 if log2 < 16 else 4 if log2 < 32 else 8
        usable = (n << 1) // 3
        if fixed + n * index + usable * es == size:
            return usable - taken
    return None


def _grow(d: dict[Any, Any], limit: int) -> None:
    """Add placeholder keys until ``d`` grew (at most ``limit``), then remove them."""
    size = sys.getsizeof(d)
    keys: list[object] = []
    try:
        while len(keys) < limit:
            key = object()
            d[key] = None
            keys.append(key)
            if sys.getsizeof(d) != size:
                break
    finally:
        for key in keys:
            del d[key]
        _left[id(d)] = (sys.getsizeof(d), len(keys))


def _grows_now(d: dict[Any, Any], n: int, margin: int | None = None) -> bool:
    """Grow ``d`` now if it has room for fewer than ``margin`` more keys (default ``2 * n``,
    leaving room for keys deleted since it last grew); True if it grew."""
    if len(d) < SMALL:
        return False
    room = _room(d)
    if room is None or room >= (2 * n if margin is None else margin):
        return False
    _grow(d, room + 2 * n + 1)
    return True


def margin(n: int, dicts: int) -> int:
    """Room under which a dict grows, with slices of ``n`` clones, ``dicts`` dicts that may all
    be about to fill at once, and ``GAP`` slices between two growth steps: the last one's turn
    comes ``GAP * (dicts - 1)`` slices after the first's, and it must still have room for
    that and two more slices."""
    return (GAP * dicts + 2) * n


def make_room(task: Task, n: int) -> bool:
    """Before ``n`` more clones like ``task`` (a task the bulk clone made): grow the first dict
    they would fill that needs to grow soon (``margin``). True if one grew (end the step there;
    call again after ``GAP`` slices, which grows the next one, if any)."""
    g = task.group
    dicts: list[dict[Any, Any] | None] = [g.threads]
    if g.parent is not None:
        dicts.append(g.parent.children)
    if g.pgrp is not None:
        dicts.append(g.pgrp.pgrp_tasks)
    if g.session is not None:
        dicts.append(g.session.session_tasks)
    dicts.extend(ns.idr.numbers() for ns in task.pid.ns.ancestors)
    m = margin(n, len(dicts))
    return any(d is not None and _grows_now(d, n, m) for d in dicts)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a whole table is built (a restore, a scenario load):
    everything it makes lives on, and the collector's full passes, one each time the heap grew
    by a quarter, walked the growing table again and again (a third of restoring 200,000
    tasks, bench/snapshot_bench.py). What was made is collected later as usual (the mount
    freezes it at once: ``mount/fs.py`` ``settle_heap``).

    At the end what was made joins the oldest generation at once (``gc.freeze`` then
    ``gc.unfreeze``, two list splices) instead of through a young collection, which the first
    allocation after ``gc.enable`` started and which walked the whole new table to free
    nothing (a tenth of restoring a million tasks); the next full collection walks it as
    before. Only when nothing is frozen: unfreezing would also give back what the mount froze."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
