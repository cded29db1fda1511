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
