"""Interleaved rounds: how every benchmark takes its figures (issue 13 point 5).

This machine is shared and noisy: a figure taken once, or a side measured in one minute and its
comparison in the next, can move by 2x from one run to the next. So each benchmark measures all
of its sides once per round (the mount, then the real /proc, then the floor server...) for
``ROUNDS`` rounds (``python -m bench --rounds N``), a ratio is taken inside each round (both sides
saw the same minute), and each figure is the *median* over the rounds, with its spread:
``(max - min) / median``. A row says ``rounds``; columns ending in ``spread`` are fractions,
printed as percentages.

``interleave({"mount": f, "proc": g})`` -> ``{"mount": [t1..tN], "proc": [...]}``;
``summary(xs)`` -> (median, spread); ``ratios(a, b)`` per round.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

#: rounds per figure; ``python -m bench --rounds N`` (at least 5 for a figure worth quoting)
ROUNDS = 5


def interleave(sides: dict[str, Callable[[], float]], rounds: int | None = None,
               between: Callable[[], object] | None = None) -> dict[str, list[float]]:
    """Run every side once per round, in the order given, for ``rounds`` (default ``ROUNDS``)
    rounds; ``between`` runs before each side (to drop caches, say). Returns the samples."""
    out: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(rounds or ROUNDS):
        for name, fn in sides.items():
            if between is not None:
                between()
            out[name].append(fn())
    return out


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def spread(xs: Sequence[float]) -> float:
    """``(max - min) / median``: 0.1 means the rounds were within 10% of each other."""
    m = statistics.median(xs)
    return (max(xs) - min(xs)) / m if m else 0.0


def summary(xs: Sequence[float]) -> tuple[float, float]:
    """(median, spread) of one figure's samples."""
    return median(xs), spread(xs)


def ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a / b`` inside each round."""
    return [x / y for x, y in zip(a, b, strict=True)]


def figure(name: str, xs: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """``{name: median * scale, name_spread: spread}`` for a row."""
    m, s = summary(xs)
    return {name: m * scale, f"{name}_spread": s}


def ratio_fields(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """``ratio`` (the median of the per-round ratios) and ``spread`` (theirs) for a row."""
    r = ratios(a, b)
    return {"ratio": median(r), "spread": spread(r), "rounds": len(r)}
