"""``python -m pidfs_fuse.oracle [--steps N] [--seed S] [--seconds T] [--report FILE]``: the
differential run of ``make difftest``. Prints the coverage report; exits 1 on a mismatch (its
message is the shrunk, replayable script), 2 when the real side cannot run here."""

from __future__ import annotations

import argparse
import sys

from .driver import SKIPPED, Coverage, Mismatch
from .machine import run
from .real_side import available


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pidfs_fuse.oracle", description=__doc__)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=None, help="fixed seed (default: fresh randomness)")
    p.add_argument("--seconds", type=float, default=900, help="stop starting new sequences after this")
    p.add_argument("--steps-per-run", type=int, default=40)
    p.add_argument("--report", help="also write the coverage report to this file")
    a = p.parse_args(argv)
    why = available()
    if why:
        print(f"difftest: cannot run the real side: {why}", file=sys.stderr)
        return 2
    cov = Coverage()
    status = 0
    try:
        run(a.steps, a.seed, steps_per_run=a.steps_per_run, max_seconds=a.seconds, coverage=cov)
    except Mismatch as e:
        print(f"MISMATCH\n{e}\n", file=sys.stderr)
        status = 1
    text = cov.report(SKIPPED)
    print(text)
    if a.report:
        with open(a.report, "w") as f:
            f.write(text + "\n")
    if status == 0 and cov.steps < a.steps:
        print(f"difftest: only {cov.steps} of {a.steps} steps ran within {a.seconds:.0f}s", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
