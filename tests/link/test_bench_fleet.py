"""`edge bench fleet --quick --json` runs and reports the figures it promises: the raw
capacity load on both brokers, the cluster loses no QoS 1 message through a node SIGKILL
and a rolling restart (lame duck, every replica current, the ingest leaving the node),
central's ingest output has nothing out of order and no duplicate (the bench's own
verdict, `ok`, and its exit status), and every simulated device is connected again at
the end."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devtools.bench import run_bench


def test_bench_fleet_quick(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("EDGE_BENCH_FLEET_DEVICES", "8")
    monkeypatch.setenv("EDGE_BENCH_FLEET_SECONDS", "4")
    rc = run_bench("fleet", json_out=True, quick=True)
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["failures"] == [] and res["ok"] is True and rc == 0, res["failures"]
    assert res["mosquitto"]["msgs_per_s"] > 0 and res["nats_cluster"]["msgs_per_s"] > 0
    assert res["mosquitto"]["qos1_lost"] == 0
    # the raw-socket capacity load: every acknowledged QoS 1 message counted at central,
    # and the CPU of both sides reported
    for broker in ("mosquitto", "nats_cluster"):
        k = res[broker]["capacity"]
        assert k["msgs_per_s"] > 0 and k["qos1_acked"] > 0 and k["qos1_lost"] == 0, k
        assert k["load_cpu_pct"] > 0 and k["broker_cpu_us_per_msg"] > 0, k
    assert res["nats_cluster"]["msgs_stream_at_end"] is not None
    for phase in ("node_kill", "rolling_restart"):
        v = res["nats_cluster"][phase]
        assert v["qos1_lost"] == 0 and v["qos1_unacked_at_end"] == 0, v
        assert v["out_of_order"] == 0 and v["duplicates_after_ingest"] == 0, v
        assert v["devices_connected_at_end"] == 8, v
        assert v["reconnects"] >= 1 and v["reconnect_p99_s"] is not None, v
    assert res["nats_cluster"]["real_device_tick_jitter_max_ms"] is not None
