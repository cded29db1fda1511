"""`edge bench board` end to end, shortened: real pty, board process, figures with units."""

from __future__ import annotations

import asyncio

from devtools.bench import board as bench


def test_board_bench_measures_latency_and_rate() -> None:
    result = asyncio.run(bench._run(bench.SITE, tick_s=1.0, flat_s=0.5))
    assert result["frames"] >= 8
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["p99_ms"] <= bench.GOAL_P99_MS
    assert result["fps"] > 10
    assert result["flat_frames"] > 5


def test_monitor_bench_json_shape_and_no_false_trip() -> None:
    """`edge bench monitor --json`, shortened: one trial per fault, 0.05 simulated hours."""
    from devtools.bench import monitor as monitor_bench

    result, extra = monitor_bench.bench(trials=1, hours=0.05)
    assert set(result) == {"faults", "false_trips", "hours_simulated"}
    assert set(result["faults"]) == set(monitor_bench.EXPECTED)
    for kind, f in result["faults"].items():
        assert set(f) == {"n", "min_ms", "p50_ms", "p99_ms", "max_ms"}, kind
        # A conflict whose other channel ends its green first is a dual indication.
        assert f["n"] + extra["wrong_class"][kind] == 1, kind
        assert 0 <= f["min_ms"] <= f["p50_ms"] <= f["p99_ms"] <= f["max_ms"]
    assert result["faults"]["conflict"]["max_ms"] <= 450
    assert result["faults"]["red_fail"]["max_ms"] <= 1500
    assert result["false_trips"] == 0 and result["hours_simulated"] == 0.05
