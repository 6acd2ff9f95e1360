"""``python -m bench [--quick] [--json] [--rounds N] [--only NAME ...] [--no-mount]``: run the
benchmarks.

Prints a header with the machine (nproc, Python, platform) and one table per benchmark; with
``--json`` prints one JSON document instead (``{"machine": {...}, "results": [rows]}``). Rows
carrying a goal have ``ok``; the exit status is 0 either way (a benchmark is not a test).
Figures are medians of interleaved rounds (``rounds.py``); columns ending in ``spread`` are
``(max - min) / median`` over those rounds, printed as percentages, kept as fractions in JSON.
``python -m bench.compare A.json B.json C.json`` checks the ratios of several runs agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from . import model, rounds

MOUNT = "mount"
#: benchmarks in their own modules, each with run(quick) -> rows; NEEDS_MOUNT need a mount
EXTRA = {MOUNT: "mount_bench", "handles": "handles_bench", "snapshot": "snapshot_bench",
         "bulk": "bulk_bench", "restore": "restore_bench", "listing": "listing_bench",
         "ceiling": "ceiling_bench", "tools": "tools_bench"}
NEEDS_MOUNT = {MOUNT, "handles", "bulk", "restore", "listing", "ceiling", "tools"}


def machine_info() -> dict:
    info = {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_kb"] = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return info


def _fmt(v, key: str = "") -> str:
    if key.endswith("spread") and isinstance(v, float):
        return f"{v:.0%}"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if v >= 1000:
            return f"{v:,.0f}"
        if v >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_table(rows: list[dict], out=sys.stdout) -> None:
    """One aligned table per benchmark name; columns are the union of the rows' keys."""
    by_bench: dict[str, list[dict]] = {}
    for r in rows:
        by_bench.setdefault(r.get("bench", "?"), []).append(r)
    for name, rs in by_bench.items():
        cols: list[str] = []
        for r in rs:
            for key in r:
                if key != "bench" and key not in cols:
                    cols.append(key)
        cells = [[_fmt(r.get(c, ""), c) for c in cols] for r in rs]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        print(f"\n== {name}", file=out)
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), file=out)
        print("  ".join("-" * w for w in widths), file=out)
        for row in cells:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=out)


def main(argv: list[str] | None = None) -> int:
    names = list(model.ALL) + list(EXTRA)
    ap = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of pidfs_fuse: the "
                                 "model, and a real mount beside this machine's /proc.")
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds, not minutes)")
    ap.add_argument("--json", action="store_true", help="print machine-readable results")
    ap.add_argument("--rounds", type=int, default=rounds.ROUNDS, metavar="N",
                    help="interleaved rounds per figure (default %(default)s; figures are their "
                         "medians, spread is (max - min) / median)")
    ap.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                    help=f"run only these ({', '.join(names)})")
    ap.add_argument("--no-mount", action="store_true",
                    help="skip the benchmarks through a real FUSE mount (they need root and /dev/fuse)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, not {args.rounds}")
    rounds.ROUNDS = args.rounds
    selected = args.only or [n for n in names if not (n in NEEDS_MOUNT and args.no_mount)]
    info = machine_info()
    info["quick"] = args.quick
    info["rounds"] = args.rounds
    if not args.json:
        print(f"pidfs_fuse benchmarks{' (--quick)' if args.quick else ''}: nproc {info['nproc']}, "
              f"Python {info['python']} ({info['implementation']}), {info['platform']}"
              + (f", {info['cpu']}" if "cpu" in info else ""))
        print(f"each figure: the median of {args.rounds} interleaved rounds; spread = (max - min) / "
              "median over them; ratios are taken inside a round")
    rows: list[dict] = []
    for name in selected:
        t0 = time.perf_counter()
        try:
            if name in EXTRA:
                import importlib

                mod = importlib.import_module(f".{EXTRA[name]}", __package__)
                got = [{"bench": name, "case": r.pop("bench", "?"), **r} for r in mod.run(args.quick)]
            else:
                got = model.ALL[name](args.quick)
        except Exception as e:  # a broken benchmark must not hide the others' figures
            got = [dict(bench=name, error=f"{type(e).__name__}: {e}")]
        for r in got:
            r.setdefault("bench", name)
        rows.extend(got)
        if not args.json:
            print_table(got)
            print(f"  ({time.perf_counter() - t0:.1f} s)")
    if args.json:
        json.dump({"machine": info, "results": rows}, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
