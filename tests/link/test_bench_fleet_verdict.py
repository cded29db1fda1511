"""`edge bench fleet`'s pass/fail (devtools/bench/fleet.py `failures`, a pure function) on
fabricated reports: a report passes only when every acknowledged QoS 1 message arrived and
central's ingest output has no duplicate and nothing out of order, in every phase; a figure
missing from the report fails it too. And the per-device order count it uses."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from devtools.bench.fleet import MUST_BE_ZERO, _order, failures


def _phase() -> dict[str, Any]:
    return {"qos1_lost": 0, "out_of_order": 0, "duplicates_after_ingest": 0, "reconnects": 9}


def _report() -> dict[str, Any]:
    return {
        "mosquitto": {"capacity": {"qos1_lost": 0}, "qos1_lost": 0},
        "nats_cluster": {
            "capacity": {"qos1_lost": 0},
            "node_kill": _phase(),
            "rolling_restart": _phase(),
        },
    }


def test_a_clean_report_passes() -> None:
    assert failures(_report()) == []


@pytest.mark.parametrize("path", [p for p, _what in MUST_BE_ZERO], ids=".".join)
def test_any_loss_or_disorder_fails_the_report(path: tuple[str, ...]) -> None:
    res = _report()
    node: Any = res
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = 13
    (f,) = failures(res)
    assert f.startswith(".".join(path) + " = 13"), f
    # missing, or not a count: not measured is not a pass
    del node[path[-1]]
    assert failures(res) == [f"{'.'.join(path)}: not measured ({dict(MUST_BE_ZERO)[path]})"]
    node[path[-1]] = None
    assert len(failures(copy.deepcopy(res))) == 1


def test_the_lead_s_rolling_restart_fails() -> None:
    # issue 22's run 1: 13 acknowledged messages lost, 59 out of order, on one phase
    res = _report()
    res["nats_cluster"]["rolling_restart"].update(qos1_lost=13, out_of_order=59)
    assert failures(res) == [
        "nats_cluster.rolling_restart.qos1_lost = 13: acknowledged QoS 1 messages lost",
        "nats_cluster.rolling_restart.out_of_order = 59: out of order after central's ingest",
    ]


def test_order_counts_duplicates_and_late_first_arrivals() -> None:
    assert _order([1, 2, 3]) == (0, 0)
    assert _order([1, 3, 2, 3, 4]) == (1, 1)  # 2 after 3; the second 3 a duplicate
    assert _order([5, 1, 2, 3]) == (0, 1)
