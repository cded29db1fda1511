"""The link's pure parts: signatures, plan bundles, commands, backup timer, spool, counts."""

from __future__ import annotations

import datetime
import json
import sqlite3
import tomllib
from typing import Any

import pytest
from edge.control.controller import Controller
from edge.control.messages import Flash, Hold, Inputs, SetMode
from edge.link import signing, topics
from edge.link.central import signed_bundle, signed_command
from edge.link.counts import CountsAggregator
from edge.link.errors import Rejected
from edge.link.messages import EmergencyPriorityRequest, LogEvent, with_seq
from edge.link.plans import MAX_PLAN_BYTES, plan_at, verify_bundle
from edge.link.session import (
    Ack,
    ControlCommand,
    DeviceSession,
    InstallPlan,
    PriorityRequest,
    SendState,
)
from edge.store import Store

from tests.link.harness import SITE, Keys, fill_disk, site_plans

DEV = "dev-1"
SITE_RAW = tomllib.loads(SITE.read_text())
NOW = 1_700_000_000_000


def verify(raw: bytes, keys: Keys, high_water: int = 0, now: int | None = None) -> Any:
    return verify_bundle(
        raw,
        device=DEV,
        trusted={signing.key_id(keys.central.public_key()): keys.central.public_key()},
        high_water=high_water,
        site_raw=SITE_RAW,
        now_ms=now if now is not None else signing_now(),
    )


def signing_now() -> int:
    import time

    return time.time_ns() // 1_000_000


def rejected(fn: Any) -> Rejected:
    with pytest.raises(Rejected) as info:
        fn()
    return info.value


# -- plan bundles ----------------------------------------------------------------------


def test_good_bundle_gives_a_site_with_the_new_timing(keys: Keys) -> None:
    plans = site_plans()
    plans["day"]["defaults"]["max_green_s"] = 25
    raw = signed_bundle(keys.central, DEV, 3, plans, "night", detectors=[{"id": 5, "delay_s": 2}])
    bundle, _body = verify(raw, keys)
    assert bundle.version == 3
    assert bundle.default_plan == "night"
    assert bundle.site.plans["day"].timings[4].max_green_ms == 25_000
    det5 = next(d for d in bundle.site.detectors if d.id == 5)
    assert det5.delay_ms == 2000


def _reason(keys: Keys, raw: bytes, **kw: Any) -> tuple[str, str]:
    r = rejected(lambda: verify(raw, keys, **kw))
    return r.code, r.reason


def test_every_rejection_has_its_code_and_exact_reason(keys: Keys) -> None:
    plans = site_plans()
    good = signed_bundle(keys.central, DEV, 5, plans, "day")
    kid = signing.key_id(keys.central.public_key())
    rogue_kid = signing.key_id(keys.rogue.public_key())

    # bad signature: body changed after signing
    env = json.loads(good)
    env["body"] = env["body"].replace('"version":5', '"version":6')
    assert _reason(keys, json.dumps(env).encode()) == (
        "bad_signature",
        f"signature does not verify with key {kid}",
    )
    # unknown key
    assert _reason(keys, signed_bundle(keys.rogue, DEV, 5, plans, "day")) == (
        "unknown_key",
        f"unknown signing key {rogue_kid!r}",
    )
    # unsigned (a bare body)
    code, reason = _reason(keys, json.loads(good)["body"].encode())
    assert code == "schema" and "unknown key(s)" in reason
    env = json.loads(good)
    del env["sig"]
    assert _reason(keys, json.dumps(env).encode()) == (
        "bad_signature",
        "envelope: sig: must be a string",
    )
    # replayed / older version
    assert _reason(keys, good, high_water=5) == (
        "replayed",
        "plan bundle v5 is not newer than the last accepted version 5",
    )
    assert _reason(keys, good, high_water=9)[0] == "replayed"
    # expired
    expired = signed_bundle(keys.central, DEV, 6, plans, "day", ttl_s=-10)
    code, reason = _reason(keys, expired)
    assert code == "expired" and reason.startswith("plan bundle v6 expired 1")
    # wrong device
    assert _reason(keys, signed_bundle(keys.central, "dev-2", 6, plans, "day")) == (
        "wrong_device",
        "plan bundle for device 'dev-2', this is 'dev-1'",
    )
    # schema errors
    bad_type = signed_bundle(keys.central, DEV, 6, plans, "day")
    env = json.loads(bad_type)
    body = json.loads(env["body"])
    body["version"] = "7"
    raw = signing.sign(json.dumps(body), keys.central)
    assert _reason(keys, raw) == ("schema", "version: Input should be a valid integer")
    # unsafe timing, unknown phases and detectors: edge check's messages
    unsafe = site_plans()
    unsafe["day"]["phase"]["2"]["min_green_s"] = 3
    unsafe["day"]["phase"]["1"]["yellow_s"] = 2.5
    unsafe["night"]["phase"]["9"] = {"max_green_s": 20}
    raw = signed_bundle(keys.central, DEV, 7, unsafe, "day", detectors=[{"id": 99, "delay_s": 1}])
    code, reason = _reason(keys, raw)
    assert code == "invalid_plan"
    assert reason.split("; ") == [
        "plan day: phase 1: yellow 2.5 s is below the 3 s minimum",
        "plan day: phase 2: min green 3 s is below the site's 5 s minimum",
        "plan night: phase.9: no such phase",
        "detector 99: no such detector in the site",
    ]
    # a schedule naming a plan the bundle lacks: edge.config's message
    week = {d: "all" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    raw = signed_bundle(
        keys.central,
        DEV,
        7,
        plans,
        "day",
        schedule={"day_plans": {"all": {"00:00": "rush"}}, "week": week},
    )
    assert _reason(keys, raw) == (
        "invalid_plan",
        "schedule: day_plans.all: 00:00: no plan 'rush'",
    )
    # oversized
    huge = site_plans()
    huge["day"]["pad"] = "x" * MAX_PLAN_BYTES
    code, reason = _reason(keys, signed_bundle(keys.central, DEV, 8, huge, "day"))
    assert code == "oversized" and reason.endswith(f"the limit is {MAX_PLAN_BYTES}")
    # not JSON, deep nesting
    assert _reason(keys, b"\xff\xfe")[0] == "malformed"
    assert _reason(keys, b"[" * 50_000 + b"]" * 50_000)[0] in ("malformed", "oversized")
    assert _reason(keys, b"[" * 20_000 + b"]" * 20_000)[0] == "malformed"


def test_same_messages_as_edge_check(keys: Keys, tmp_path: Any) -> None:
    """A bundle with the plans of a bad site file is refused with the check's messages."""
    from edge.config import ConfigError, load_site

    bad = SITE.read_text().replace(
        "phase.2 = { min_green_s = 10, max_green_s = 45, yellow_s = 4.0",
        "phase.2 = { min_green_s = 2, max_green_s = 45, yellow_s = 4.0",
    )
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    with pytest.raises(ConfigError) as info:
        load_site(path)
    plans = tomllib.loads(bad)["plans"]
    r = rejected(lambda: verify(signed_bundle(keys.central, DEV, 2, plans, "day"), keys))
    assert r.reason.split("; ") == info.value.problems


def test_bundle_schedule_picks_the_plan_by_local_time(keys: Keys) -> None:
    week = {d: "wd" for d in ("mon", "tue", "wed", "thu", "fri")} | {"sat": "we", "sun": "we"}
    schedule = {
        "day_plans": {"wd": {"00:00": "night", "06:30": "day"}, "we": {"00:00": "night"}},
        "week": week,
        "exceptions": [{"date": "2026-12-25", "day_plan": "we"}],
    }
    raw = signed_bundle(keys.central, DEV, 2, site_plans(), "day", schedule=schedule)
    bundle, _ = verify(raw, keys)
    at = datetime.datetime
    assert plan_at(bundle.config, at(2026, 12, 21, 7, 0)) == "day"  # a Monday
    assert plan_at(bundle.config, at(2026, 12, 21, 6, 29)) == "night"
    assert plan_at(bundle.config, at(2026, 12, 25, 12, 0)) == "night"  # the exception
    assert plan_at(bundle.config, at(2026, 12, 26, 12, 0)) == "night"  # Saturday
    # without a schedule the bundle's default plan runs all day (the site's is dropped)
    bundle, _ = verify(signed_bundle(keys.central, DEV, 2, site_plans(), "night"), keys)
    assert bundle.config.schedule is None
    assert plan_at(bundle.config, at(2026, 12, 21, 7, 0)) == "night"


# -- commands and the backup timer ----------------------------------------------------------


class Memory:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def remember_command(self, command_id: str, expires_ms: int, now_ms: int) -> bool:
        if command_id in self.seen:
            return False
        self.seen.add(command_id)
        return True


def session(keys: Keys, backup_ms: int = 10_000) -> DeviceSession:
    pub = keys.central.public_key()
    return DeviceSession(
        device=DEV,
        trusted={signing.key_id(pub): pub},
        site_raw=SITE_RAW,
        high_water=0,
        memory=Memory(),
        backup_ms=backup_ms,
        approaches=frozenset({"N", "E", "S", "W"}),
    )


def acks(actions: list[Any]) -> list[Ack]:
    return [a for a in actions if isinstance(a, Ack)]


def test_commands_map_to_typed_actions_and_acks(keys: Keys) -> None:
    s = session(keys)
    now = signing_now()
    cid, raw = signed_command(keys.central, DEV, {"kind": "hold", "phases": [2, 6]})
    out = s.on_command(raw, now)
    assert [a.status for a in acks(out)] == ["accepted"]
    assert ControlCommand(cid, Hold((2, 6))) in out
    # replay of the very same signed message
    out = s.on_command(raw, now)
    assert acks(out)[0].code == "replayed" and acks(out)[0].ref == cid
    # emergency priority: stored and handed on as a typed object
    _, raw = signed_command(
        keys.central,
        DEV,
        {"kind": "ev_priority", "approach": "N", "eta_s": 25, "vehicle_id": "E-17"},
    )
    out = s.on_command(raw, now)
    req = next(a for a in out if isinstance(a, PriorityRequest)).request
    assert (req.approach, req.eta_s, req.vehicle_id, req.cancel) == ("N", 25, "E-17", False)
    assert isinstance(req, EmergencyPriorityRequest) and req.turn is None
    _, raw = signed_command(
        keys.central,
        DEV,
        {"kind": "ev_priority", "approach": "N", "eta_s": 25, "vehicle_id": "E-18", "turn": "T"},
    )
    req = next(a for a in s.on_command(raw, now) if isinstance(a, PriorityRequest)).request
    assert isinstance(req, EmergencyPriorityRequest) and req.turn == "T"
    _, raw = signed_command(
        keys.central,
        DEV,
        {"kind": "ev_priority", "approach": "N", "eta_s": 5, "vehicle_id": "x", "turn": "U"},
    )
    assert acks(s.on_command(raw, now))[0].code == "schema"
    _, raw = signed_command(
        keys.central, DEV, {"kind": "ev_priority", "approach": "Q", "eta_s": 5, "vehicle_id": "x"}
    )
    assert acks(s.on_command(raw, now))[0].reason.startswith("approach: no approach 'Q'")
    cid, raw = signed_command(keys.central, DEV, {"kind": "set_mode", "mode": "adaptive"})
    assert ControlCommand(cid, SetMode("adaptive", "central")) in s.on_command(raw, now)
    cid, raw = signed_command(keys.central, DEV, {"kind": "set_mode", "mode": "free"})
    assert ControlCommand(cid, SetMode("free", "central")) in s.on_command(raw, now)
    assert s.overrides == {"hold", "mode"}
    _, raw = signed_command(keys.central, DEV, {"kind": "request_state"})
    assert any(isinstance(a, SendState) for a in s.on_command(raw, now))
    _, raw = signed_command(keys.central, DEV, {"kind": "force_off", "phase": 17})
    a = acks(s.on_command(raw, now))[0]
    assert a.code == "schema" and a.reason.startswith("command.force_off.phase:")
    _, raw = signed_command(keys.central, DEV, {"kind": "call", "phase": 2}, ttl_s=-1)
    assert acks(s.on_command(raw, now))[0].code == "expired"
    _, raw = signed_command(keys.rogue, DEV, {"kind": "call", "phase": 2})
    assert acks(s.on_command(raw, now))[0].code == "unknown_key"


def test_backup_timer_releases_central_overrides(keys: Keys) -> None:
    s = session(keys, backup_ms=10_000)
    now = signing_now()
    _, raw = signed_command(keys.central, DEV, {"kind": "hold", "phases": [2]})
    s.on_command(raw, now)
    _, raw = signed_command(keys.central, DEV, {"kind": "set_mode", "mode": "flash"})
    out = s.on_command(raw, now)
    assert ControlCommand(out[0].ref, Flash(True)) in out  # type: ignore[union-attr]
    assert s.tick(now + 9_999) == []
    out = s.tick(now + 10_000)
    assert [a.command for a in out if isinstance(a, ControlCommand)] == [Hold(None), Flash(False)]
    ev = next(a for a in out if isinstance(a, LogEvent))
    assert ev.name == "backup_timer_expired" and "releasing flash, hold" in ev.detail
    assert s.tick(now + 20_000) == []  # once
    _, raw = signed_command(keys.central, DEV, {"kind": "heartbeat"})
    out = s.on_command(raw, now + 30_000)
    assert any(isinstance(a, LogEvent) and a.name == "central_resumed" for a in out)


def test_clock_offset_to_central_from_verified_commands(keys: Keys) -> None:
    """issued - received per command; the largest of the recent ones (the fastest
    delivery) is the estimate; crossing 1 s either way is an event."""
    from edge.link.messages import command_body
    from edge.link.signing import sign

    s = session(keys)
    assert s.clock_offset_ms is None
    t = signing_now()

    def heartbeat(issued: int, received: int) -> list[Any]:
        body = command_body(
            DEV, f"hb-{issued}-{received}", issued, issued + 60_000, {"kind": "heartbeat"}
        )
        return s.on_command(sign(body, keys.central), received)

    assert not [a for a in heartbeat(t, t + 40) if isinstance(a, LogEvent)]
    heartbeat(t + 1000, t + 1015)  # delivered faster: the better sample
    assert s.clock_offset_ms == -15
    out = heartbeat(t + 5000, t + 1500)  # central's clock now reads 3.5 s ahead
    ev = [a for a in out if isinstance(a, LogEvent)]
    assert s.clock_offset_ms == 3500
    assert [(e.name, e.detail) for e in ev] == [
        ("clock_offset", "central's clock +3500 ms from this device's")
    ]
    names = []
    for k in range(16):  # the old sample ages out once the clock is fixed
        names += [a.name for a in heartbeat(t + 6000 + k, t + 6010 + k) if isinstance(a, LogEvent)]
    assert s.clock_offset_ms == -10
    assert names == ["clock_synced"]


def test_plan_actions(keys: Keys) -> None:
    s = session(keys)
    raw = signed_bundle(keys.central, DEV, 1, site_plans(), "day")
    out = s.on_plan(raw, signing_now())
    assert any(isinstance(a, InstallPlan) for a in out)
    out = s.on_plan(raw, signing_now())
    assert acks(out)[0].code == "replayed"


# -- store and spool ----------------------------------------------------------------------


def test_spool_sequence_numbers_survive_restart_and_deletes(tmp_path: Any) -> None:
    path = tmp_path / "s.db"
    st = Store(path)
    assert [st.spool_append("events", '{"a":1}', 0) for _ in range(3)] == [1, 2, 3]
    st.spool_delete([1, 2, 3])
    st.close()
    st = Store(path)
    assert st.spool_append("counts", '{"b":2}', 0) == 4
    row = st.spool_pending()[0]
    assert json.loads(with_seq(DEV, row.seq, row.body)) == {"dev": DEV, "seq": 4, "b": 2}
    assert st.integrity_check() == "ok"
    assert st.get_meta("x") is None
    st.save_plan(3, "d", b"env", 0)
    with pytest.raises(ValueError):
        st.save_plan(3, "d", b"env", 0)
    assert st.plan_high_water() == 3
    assert st.remember_command("c1", NOW + 1000, NOW)
    assert not st.remember_command("c1", NOW + 1000, NOW)


def test_spool_overflow_drops_oldest_and_remembers_the_gap(tmp_path: Any) -> None:
    st = Store(tmp_path / "s.db", max_spool_rows=10)
    for _ in range(15):
        st.spool_append("events", '{"a":1}', 0)
    assert st.spool_size() == 10
    assert [r.seq for r in st.spool_pending(limit=100)] == list(range(6, 16))
    over = st.take_overflow()
    assert over is not None and (over.first_seq, over.last_seq, over.count) == (1, 5, 5)
    assert st.spool_note("events", '{"note":"A"}', 0, over) == 16  # drops seq 6
    # the note's own insert dropped a row: still to report, cumulative from seq 1
    over = st.take_overflow()
    assert over is not None and (over.first_seq, over.last_seq, over.count) == (1, 6, 6)
    assert st.spool_note("events", '{"note":"B"}', 0, over) == 17  # drops seq 7
    st.spool_delete([16])  # note A arrived, but rows were dropped since: still to report
    over = st.take_overflow()
    assert over is not None and (over.first_seq, over.last_seq, over.count) == (1, 7, 7)
    for _ in range(10):  # a long outage drops note B too, before anyone sent it
        st.spool_append("events", '{"a":2}', 0)
    over = st.take_overflow()  # its range covers note B's seq: no gap goes unexplained
    assert over is not None and (over.first_seq, over.last_seq, over.count) == (1, 17, 16)
    st.max_spool_rows = 100
    seq = st.spool_note("events", '{"note":"C"}', 0, over)  # room again: drops nothing
    assert st.take_overflow() is None
    st.spool_delete([seq])  # the latest note arrived: the range is reported, forgotten
    for _ in range(3):
        st.spool_append("events", '{"a":3}', 0)
    assert st.take_overflow() is None and st._overflow() is None
    assert st.spool_size() == len(st.spool_pending(limit=1000)) == 13


def test_a_full_disk_is_reported_as_such_and_the_store_goes_on_after(tmp_path: Any) -> None:
    st = Store(tmp_path / "s.db")
    st.spool_append("events", '{"a":1}', 0)
    fill_disk(st)
    big = [("events", json.dumps({"pad": "x" * 4000}))] * 20
    # SQLite rolls back by itself on SQLITE_FULL: the error says so, not "cannot rollback"
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        st.spool_extend(big, 0)
    assert st.spool_size() == 1  # nothing half-written, the count still right
    fill_disk(st, full=False)
    assert st.spool_extend(big, 0)[0] == 2
    assert st.spool_size() == 21 and st.integrity_check() == "ok"


# -- counts ---------------------------------------------------------------------------------


def test_counts_volume_occupancy_and_split_failure() -> None:
    from edge.config import site_from_dict

    site = site_from_dict(SITE_RAW)
    ctl = Controller(site)
    agg = CountsAggregator(site, interval_ms=600_000)
    # detector 4 (phase 4 stop bar) occupied all the time: a queue that never clears
    for k in range(3000):
        now = k * 100
        inp = Inputs(occupied=frozenset({4}) if k > 100 else frozenset())
        agg.observe(now, inp, ctl.step(now, inp))
    rec = agg.flush(300_000)
    det4 = next(d for d in rec["detectors"] if d["id"] == 4)
    assert det4["volume"] == 1 and det4["occ"] > 90
    ph4 = next(p for p in rec["phases"] if p["phase"] == 4)
    assert ph4["max_outs"] >= 3 and ph4["split_failures"] >= 3
    assert ph4["green_s"] > 0


def test_acl_file_gives_devices_their_own_subtree_only() -> None:
    acl = topics.acl_file()
    assert "pattern write edge/v1/%u/spat" in acl
    assert "pattern read edge/v1/%u/cmd" in acl
    assert "user central\ntopic readwrite edge/v1/#" in acl
    assert topics.parse("edge/v1/dev-1/spat") == ("dev-1", "spat")
    assert topics.parse("edge/v1/dev+1/spat") is None


def test_new_timing_is_loaded_by_the_core_and_a_different_intersection_refused(
    keys: Keys,
) -> None:
    from edge.config import site_from_dict
    from edge.control.messages import Inputs, LoadSite

    ctl = Controller(site_from_dict(SITE_RAW))
    other = dict(SITE_RAW)
    other["phases"] = [dict(p) for p in SITE_RAW["phases"]]
    other["phases"][0]["dual_entry"] = True
    out = ctl.step(0, Inputs(commands=(LoadSite(site_from_dict(other), "day"),)))
    rejected = [(e.name, e.detail) for e in out.events if e.name.startswith("command")]
    assert rejected == [("command_rejected", "new timing changes the intersection's phases")]
    plans = site_plans()
    plans["day"]["defaults"]["max_green_s"] = 21
    bundle, _ = verify(signed_bundle(keys.central, DEV, 1, plans, "day"), keys)
    names = []
    for now in range(100, 20_000, 100):
        cmds = (LoadSite(bundle.site, "day"),) if now == 100 else ()
        names += [e.name for e in ctl.step(now, Inputs(commands=cmds)).events]
    assert "site_loaded" in names and "plan_applied" in names
    assert ctl.site.plans["day"].timings[3].max_green_ms == 15_000  # phase 3's own override
    assert ctl.site.plans["day"].timings[4].max_green_ms == 21_000


def test_deeply_nested_bodies_are_rejected_not_raised(keys: Keys) -> None:
    s = session(keys)
    deep = "[" * 900 + "]" * 900
    body = '{"type":"plan_bundle","device":"dev-1","version":1,"issued_ms":0,"expires_ms":9e15,'
    body = (
        body.replace("9e15", str(2**52))
        + '"default_plan":"day","plans":{"day":{"x":'
        + deep
        + "}}}"
    )
    out = s.on_plan(signing.sign(body, keys.central), signing_now())
    assert acks(out)[0].status == "rejected"
    cmd = '{"type":"command","device":"dev-1","id":"a","issued_ms":0,"expires_ms":1,"command":'
    out = s.on_command(signing.sign(cmd + deep + "}", keys.central), signing_now())
    assert acks(out)[0].status == "rejected"
