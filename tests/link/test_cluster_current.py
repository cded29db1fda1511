"""When a rolling restart may stop the next node (edge.link.nats.not_current), on
fabricated /jsz reports of three nodes, without a cluster.

Rules: only a stream's or consumer's leader's report counts (a follower lists the other
replicas as not current whatever they are); every replica current, or heard from within
2 s and little behind; one meta leader all nodes agree on; every stream led; a node that
does not answer blocks; a consumer nobody leads does not (a device session's orphan).
"""

from __future__ import annotations

from typing import Any

from edge.link.nats import not_current

NAMES = ["n1", "n2", "n3"]


def _rep(name: str, current: bool = True, lag: int = 0, active_s: float = 0.2) -> dict[str, Any]:
    return {"name": name, "current": current, "lag": lag, "active": int(active_s * 1e9)}


def _asset(leader: str, reps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cluster": {"leader": leader, "replicas": reps}}


def _reports(msgs_reps: list[dict[str, Any]] | None = None) -> list[dict[str, Any] | None]:
    """n2 leads $MQTT_msgs, n3 its ingest consumer; each node reports what it holds,
    followers with the others not current (as 2.9 does)."""
    follower = [_rep("n1", False, 9, 0), _rep("n3", False, 9, 0)]
    msgs_leader = msgs_reps or [_rep("n1"), _rep("n3")]
    reports: list[dict[str, Any] | None] = []
    for name in NAMES:
        stream = {"name": "$MQTT_msgs", **_asset("n2", msgs_leader if name == "n2" else follower)}
        cons = {
            "name": "ingest",
            **_asset("n3", [_rep("n1"), _rep("n2")] if name == "n3" else follower),
        }
        stream["consumer_detail"] = [cons]
        reports.append(
            {
                "meta_cluster": {"leader": "n1"},
                "account_details": [{"stream_detail": [stream]}],
            }
        )
    return reports


def test_followers_saying_not_current_do_not_count() -> None:
    assert not_current(_reports(), NAMES) == []


def test_a_replica_behind_by_the_leader_s_report_blocks() -> None:
    lagging = [_rep("n1", False, 5000, 0.1), _rep("n3")]
    assert not_current(_reports(lagging), NAMES) == [
        "stream $MQTT_msgs: replica n1 current False, lag 5000"
    ]
    silent = [_rep("n1", False, 1, 30.0), _rep("n3")]
    assert not_current(_reports(silent), NAMES) == [
        "stream $MQTT_msgs: replica n1 current False, lag 1"
    ]
    # a loaded leader samples a follower two entries behind, heard from just now: fine
    assert not_current(_reports([_rep("n1", False, 2, 0.1), _rep("n3")]), NAMES) == []
    # a replica missing from the leader's report
    assert not_current(_reports([_rep("n3")]), NAMES) == [
        "stream $MQTT_msgs: 1 replicas beside its leader"
    ]


def test_meta_leader_and_answers() -> None:
    r = _reports()
    r[2] = {**(r[2] or {}), "meta_cluster": {"leader": "n2"}}
    assert not_current(r, NAMES) == ["meta leader not settled (['n1', 'n2'])"]
    r = _reports()
    r[0] = None  # n1 does not answer
    assert not_current(r, NAMES) == ["n1: no /jsz answer"]


def test_a_stream_nobody_leads_blocks_a_consumer_nobody_leads_does_not() -> None:
    r = _reports()
    for rep in r:
        st = (rep or {})["account_details"][0]["stream_detail"][0]
        st["cluster"]["leader"] = ""
        st["consumer_detail"][0]["cluster"]["leader"] = ""
    assert not_current(r, NAMES) == ["stream $MQTT_msgs: no leader reports it"]
