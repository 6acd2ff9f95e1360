"""``python -m bench.compare RUN.json RUN.json [RUN.json ...]``: do several ``make bench`` runs agree?

Each file is one ``python -m bench --json`` run (``make bench-runs`` writes three). For every
row found in all of them (matched by benchmark and case), each ratio column (a name containing
``ratio``, and ``value``, the figure a goal is checked on) is printed run by run with its
deviation: the largest ``|run / median - 1|``. A figure whose runs stray more than ``--within``
(default 20%) from their median is marked; the exit status is 1 when any does, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys


def _key(row: dict) -> tuple[str, str]:
    return str(row.get("bench", "?")), str(row.get("case", ""))


def _ratio_columns(row: dict) -> list[str]:
    return [k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and ("ratio" in k or k == "value") and not k.endswith("spread")]


def compare(runs: list[list[dict]], within: float) -> tuple[list[list[str]], int]:
    """Table rows (benchmark, case, column, values..., deviation, ok) and how many strayed."""
    by_run = [{_key(r): r for r in rows} for rows in runs]
    out: list[list[str]] = []
    bad = 0
    for key in by_run[0]:
        if not all(key in m for m in by_run[1:]):
            continue
        for col in _ratio_columns(by_run[0][key]):
            got = [m[key].get(col) for m in by_run]
            vals = [float(v) for v in got if isinstance(v, (int, float))]
            if len(vals) != len(got):
                continue
            med = statistics.median(vals)
            dev = max(abs(v / med - 1) for v in vals) if med else 0.0
            ok = dev <= within
            bad += not ok
            out.append([key[0], key[1][:60], col, *(f"{v:.3g}" for v in vals), f"±{dev:.0%}",
                        "yes" if ok else "NO"])
    return out, bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compare",
                                 description="Check that the ratios of several `python -m bench "
                                             "--json` runs agree within a tolerance.")
    ap.add_argument("runs", nargs="+", metavar="RUN.json")
    ap.add_argument("--within", type=float, default=0.20,
                    help="largest allowed |run / median - 1| (default 0.20)")
    args = ap.parse_args(argv)
    if len(args.runs) < 2:
        print("bench.compare: give at least two runs to compare", file=sys.stderr)
        return 2
    runs = []
    for path in args.runs:
        try:
            with open(path) as f:
                runs.append(json.load(f)["results"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"bench.compare: {path}: not a `python -m bench --json` run ({e})", file=sys.stderr)
            return 2
    table, bad = compare(runs, args.within)
    head = ["bench", "case", "column", *(f"run{i + 1}" for i in range(len(runs))), "deviation", "ok"]
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(head)]
    for row in [head, ["-" * w for w in widths], *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\n{len(table) - bad} of {len(table)} figures within ±{args.within:.0%} of their median "
          f"across {len(runs)} runs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
