"""The AsyncAPI document and JSON schemas agree with the code that builds messages."""

from __future__ import annotations

import json
from typing import Any

import yaml
from edge.config import load_site
from edge.control.controller import Controller
from edge.demand import RandomDemand
from edge.link import messages, topics
from edge.link.central import signed_bundle, signed_command
from edge.link.counts import CountsAggregator
from edge.link.errors import CODES
from edge.link.messages import LogEvent

from tests.link.harness import ROOT, SCHEMAS, SITE, Keys, site_plans
from tests.link.schemas import LEAF_SCHEMA, check, validator

ASYNCAPI = ROOT / "edge" / "link" / "asyncapi.yaml"


# asyncapi channel -> (enrolment topic leaf, the device's action)
ENROL_CHANNELS = {"enrolCsr": ("csr", "send"), "enrolCert": ("cert", "receive")}


def test_asyncapi_names_every_topic_with_its_qos_retain_and_schema() -> None:
    doc: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text())
    assert doc["asyncapi"].startswith("3.")
    channels = doc["channels"]
    assert set(channels) == set(topics.SPECS) | set(ENROL_CHANNELS)
    for name, (leaf, action) in ENROL_CHANNELS.items():  # the bootstrap listener's two
        assert channels[name]["address"] == f"{topics.ENROL_ROOT}/{{device}}/{leaf}"
        assert topics.enrol_topic("dev-1", leaf) == f"{topics.ENROL_ROOT}/dev-1/{leaf}"
        (op,) = [
            o for o in doc["operations"].values() if o["channel"]["$ref"] == f"#/channels/{name}"
        ]
        assert op["action"] == action and op["bindings"]["mqtt"] == {"qos": 1, "retain": False}
        ref = doc["components"]["messages"][name]["payload"]["$ref"]
        assert ref == f"./schemas/enrol_{leaf}.json"
    for leaf, spec in topics.SPECS.items():
        assert channels[leaf]["address"] == f"{topics.ROOT}/{{device}}/{leaf}"
        ops = [
            o for o in doc["operations"].values() if o["channel"]["$ref"] == f"#/channels/{leaf}"
        ]
        assert len(ops) == 1, leaf
        op = ops[0]
        assert op["action"] == ("send" if spec.from_device else "receive")
        assert op["bindings"]["mqtt"] == {"qos": spec.qos, "retain": spec.retain}, leaf
        msg = doc["components"]["messages"][leaf]
        ref = msg["payload"]["$ref"]
        assert ref == f"./schemas/{LEAF_SCHEMA[leaf]}.json"
        assert (ASYNCAPI.parent / ref).exists()
    used = {p.name for p in SCHEMAS.glob("*.json")}
    assert used == {f"{n}.json" for n in LEAF_SCHEMA.values()} | {
        "plan_bundle.json",
        "command.json",
        "enrol_csr.json",
        "enrol_cert.json",
    }
    for name in used:
        validator(name.removesuffix(".json"))  # each is a valid draft 2020-12 schema
    codes = json.loads((SCHEMAS / "ack.json").read_text())["properties"]["code"]["enum"]
    assert codes == list(CODES)


def test_built_messages_match_their_schemas(keys: Keys) -> None:
    site = load_site(SITE)
    ctl = Controller(site)
    demand = RandomDemand(site, seed=3, veh_per_hour=900)
    agg = CountsAggregator(site, 60_000)
    out = None
    ids = [p.id for p in site.phases]
    events: list[LogEvent] = []
    for k in range(3000):
        now = k * 100
        inp = demand.inputs(now, 100, out)
        out = ctl.step(now, inp)
        agg.observe(now, inp, out)
        events += [
            LogEvent(1_700_000_000_000 + e.t_ms, e.name, e.subject, e.detail) for e in out.events
        ]
        if k % 97 == 0:
            check("spat", messages.spat("dev-1", k, 1_700_000_000_000 + now, now, out, ids))
    rec = agg.flush(300_000)
    rec["interval_s"] = 300.0
    check("counts", messages.with_seq("dev-1", 7, messages.dumps(rec)))
    check("counts", messages.with_seq("dev-1", 7, messages.dumps(rec), "0123456789abcdef"))
    check("events", messages.with_seq("dev-1", 8, messages.events_body(events)))
    hires = [(1_700_000_000_000, 1, 2), (1_700_000_000_100, 82, 300)]
    check("hires", messages.with_seq("dev-1", 9, messages.hires_body(hires), "00ff00ff00ff00ff"))
    check(
        "status",
        messages.status_online(
            "dev-1",
            utc_ms=1,
            firmware="x",
            config_hash="0123456789abcdef",
            plan_version=0,
            plan="day",
            board="ok",
            mode="run",
            central="ok",
        ),
    )
    check("status", messages.status_offline("dev-1"))
    for code in CODES:
        check(
            "ack",
            messages.ack(
                "dev-1", utc_ms=1, ref=None, kind="plan", status="rejected", code=code, reason="why"
            ),
        )
    raw = signed_bundle(
        keys.central,
        "dev-1",
        1,
        site_plans(),
        "day",
        schedule={
            "day_plans": {"all": {"00:00": "night", "06:00": "day"}},
            "week": dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "all"),
        },
        detectors=[{"id": 5, "delay_s": 1.5}],
    )
    check("envelope", raw)
    check("plan_bundle", json.loads(raw)["body"])
    for cmd in (
        {"kind": "ev_priority", "approach": "N", "eta_s": 20, "vehicle_id": "E1", "cancel": False},
        {
            "kind": "transit_priority",
            "approach": "E",
            "eta_s": 40,
            "vehicle_id": "bus-9",
            "route": "12",
            "late_s": 90,
        },
        {"kind": "set_mode", "mode": "flash"},
        {"kind": "hold", "phases": [2, 6]},
        {"kind": "force_off", "phase": 2},
        {"kind": "call", "phase": 4, "ped": True},
        {"kind": "release"},
        {"kind": "request_state"},
        {"kind": "heartbeat"},
        {"kind": "certificate", "pem": "-----BEGIN CERTIFICATE-----\n...\n"},
    ):
        _, env = signed_command(keys.central, "dev-1", cmd)
        check("envelope", env)
        check("command", json.loads(env)["body"])
