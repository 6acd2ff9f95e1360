"""bench/rounds.py and bench/compare.py: the arithmetic every benchmark figure goes through."""

from __future__ import annotations

import json

import pytest

from bench import compare, rounds


def test_interleave_runs_every_side_once_per_round_in_order():
    calls: list[str] = []

    def side(name: str, value: float):
        def run() -> float:
            calls.append(name)
            return value
        return run

    got = rounds.interleave({"a": side("a", 1.0), "b": side("b", 2.0)}, rounds=3)
    assert calls == ["a", "b"] * 3
    assert got == {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}


def test_summary_is_median_and_spread_over_median():
    assert rounds.summary([1.0, 4.0, 2.0, 3.0, 10.0]) == (3.0, 3.0)
    assert rounds.ratio_fields([2.0, 6.0, 3.0], [1.0, 2.0, 3.0]) == {"ratio": 2.0, "spread": 1.0,
                                                                    "rounds": 3}
    assert rounds.figure("mount_us", [1e-6, 3e-6, 2e-6], 1e6) == pytest.approx(
        {"mount_us": 2.0, "mount_us_spread": 1.0})


def _run(tmp_path, name: str, ratio: float, extra: bool = False) -> str:
    rows = [{"bench": "mount", "case": "ps -ef", "ratio": ratio, "ratio_spread": 0.5,
             "mount_us": 9.0 * ratio}]
    if extra:  # a row the other runs lack is left out
        rows.append({"bench": "mount", "case": "only here", "ratio": 7.0})
    p = tmp_path / name
    p.write_text(json.dumps({"machine": {}, "results": rows}))
    return str(p)


def test_compare_checks_ratio_columns_of_rows_in_every_run(tmp_path, capsys):
    runs = [_run(tmp_path, f"r{i}.json", r, extra=i == 0) for i, r in enumerate((1.0, 1.1, 1.3))]
    assert compare.main(runs) == 0  # 1.3 is 18% above the median 1.1, 1.0 is 9% below
    out = capsys.readouterr().out
    assert "mount  ps -ef  ratio   1     1.1   1.3   ±18%       yes" in out
    assert "only here" not in out and "mount_us" not in out and "ratio_spread" not in out
    assert "1 of 1 figures within ±20% of their median across 3 runs" in out


def test_compare_fails_on_a_stray_run_and_on_bad_input(tmp_path, capsys):
    stray = [_run(tmp_path, f"s{i}.json", r) for i, r in enumerate((1.0, 1.0, 1.5))]
    assert compare.main(stray) == 1
    out = capsys.readouterr().out
    assert "±50%       NO" in out and "0 of 1 figures" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert compare.main([stray[0], str(bad)]) == 2
    assert "bad.json: not a `python -m bench --json` run" in capsys.readouterr().err
    assert compare.main([stray[0]]) == 2


def test_a_tools_round_is_matched_when_both_runs_made_the_same_requests() -> None:
    from bench.tools_bench import matched

    ours = {"lookup": 8, "open": 400_000, "read": 80_000, "release": 400_000}
    # the replay's own fetches and forgets do not count; 1% of the mount's total may differ
    assert matched(ours, {**ours, "fetched": 3, "forget": 50_000})
    assert matched(ours, {**ours, "read": 80_000 + 8_800})
    assert not matched(ours, {**ours, "read": 80_000 + 8_801})
    # what the last full run showed: the replay's entries had expired, 532,000 more lookups
    assert not matched({"lookup": 8, "readlink": 800_592}, {"lookup": 532_532, "readlink": 800_592})
    assert not matched(ours, {k: v for k, v in ours.items() if k != "read"})
