"""`edge bench link --quick --json` runs and reports the figures it promises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devtools.bench import run_bench


def test_bench_link_quick(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("EDGE_BENCH_LINK_DEVICES", "10")
    monkeypatch.setenv("EDGE_BENCH_LINK_SECONDS", "2")
    assert run_bench("link", json_out=True, quick=True) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["devices"] == 10 and res["lost"] == 0 and res["qos1_unacked"] == 0
    assert res["msgs_per_s"] > 50
    assert res["plans_applied"] == 3 and 0 < res["plan_ack_p99_ms"] < 2000
    assert 8 <= res["spat_hz"] <= 11
