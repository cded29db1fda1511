"""Derivation: every shipped and Hangzhou signal gives a site config the device accepts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from edge.cli import main as edge_main
from edge.config import load_site, site_from_dict
from sim.sumo import scenarios
from sim.sumo.derive import Derivation, derive, derive_all
from sim.sumo.errors import DerivationError, SimError
from sim.sumo.network import read_net, signal_junction, signal_junctions
from sim.sumo.site_toml import derivation_toml

from tests.sim.netbuild import build_net, five_leg, four_leg


def _check_toml(d, tmp_path: Path) -> None:
    text = derivation_toml(d, "test")
    assert tomllib.loads(text) == d.site_dict
    path = tmp_path / f"{d.tls}.toml"
    path.write_text(text)
    site = load_site(path)  # what `edge check` runs
    assert [p.id for p in site.phases] == [p.id for p in d.site.phases]
    assert len(d.links) == max(k.index for k in d.links) + 1


@pytest.mark.parametrize("name", ["single", "tee", "arterial"])
def test_shipped_scenarios_derive(name: str, tmp_path: Path) -> None:
    scenario = scenarios.resolve(name)
    derivations = derive_all(signal_junctions(scenario.net))
    assert derivations
    for d in derivations:
        assert d.phasing.startswith("dual-ring")
        _check_toml(d, tmp_path)
        # every controlled link follows a phase: nothing is left red for ever
        assert all(b.phase is not None for b in d.links)
        assert d.detectors


def test_single_is_8_phase_with_flashing_yellow_arrow_lefts() -> None:
    (d,) = derive_all(signal_junctions(scenarios.resolve("single").net))
    assert d.phasing == "dual-ring+fya"
    phases = {p.id: p for p in d.site.phases}
    assert sorted(phases) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [m.name for m in phases[1].movements] == ["E.L"]
    assert {m.name for m in phases[2].movements} == {"W.T", "W.R"}
    assert not any(p.permissive for p in d.site.phases)
    fya = {o.id: o for o in d.site.overlaps}
    assert sorted(fya) == ["F1", "F3", "F5", "F7"]
    assert fya["F1"].parents == (1,) and fya["F1"].permissive_parents == (2,)
    # the left-turn links show the FYA overlap's channel, green 'G' or flashing 'g'
    left = [b for b in d.links if b.movement == "E.L"]
    assert left and all(b.permissive_phase == 2 and b.phase == 1 for b in left)


def test_protected_lefts_lag_the_through_they_oppose() -> None:
    """Each ring serves its through before its protected left in a barrier group, and a
    flashing-yellow-arrow left's permissive phase (the opposing through) comes first."""
    (d,) = derive_all(signal_junctions(scenarios.resolve("single").net))
    rings: dict[int, list[int]] = {}
    for p in d.site.phases:
        rings.setdefault(p.ring, []).append(p.id)
    assert rings == {1: [2, 1, 4, 3], 2: [6, 5, 8, 7]}
    order = [p.id for p in d.site.phases]
    for o in d.site.overlaps:
        assert all(order.index(q) < order.index(o.parents[0]) for q in o.permissive_parents)


def test_tee_has_a_lone_side_road_phase() -> None:
    (d,) = derive_all(signal_junctions(scenarios.resolve("tee").net))
    by_id = {p.id: p for p in d.site.phases}
    assert sorted(by_id) == [1, 2, 4, 6]
    assert {m.name for m in by_id[4].movements} == {"S.L"}
    assert [a.id for a in d.site.approaches] == ["E", "S", "W"]
    # The stem's right turn (a lane of its own) is an overlap: with its phase and with
    # the main street's protected left into the stem, which it does not cross.
    (rto,) = [o for o in d.site.overlaps if not o.permissive_parents]
    assert (rto.parents, [m.name for m in rto.movements]) == ((4, 1), ["S.R"])
    assert d.phasing == "dual-ring+fya+rto"
    rights = [b for b in d.links if b.movement == "S.R"]
    assert rights and all(b.phase == 4 and b.also_phases == (1,) for b in rights)
    ch = {c.source: c.id for c in d.site.channels}
    assert all(b.channel == ch["R4"] for b in rights)
    owed = d.site_dict["intergreens"]["OR4"]  # its channel has its own intergreens
    # Every pair it leaves is listed: its red clearance ends with the shortest of them
    # (as its phase's would), not its plan's, and never under the site's minimum.
    row = next(o for o in d.site_dict["overlaps"] if o["id"] == "R4")
    floor = d.site.safety.min_red_clear_ms / 1000
    assert row["red_clear_s"] == max(floor, round(min(owed.values()) - row["yellow_s"], 1))
    assert rto.red_clear_ms < d.site.plans["actuated"].timings[4].red_clear_ms


def test_shared_lanes_give_permissive_lefts() -> None:
    for d in derive_all(signal_junctions(scenarios.resolve("arterial").net)):
        lefts = {m.name for p in d.site.phases for m in p.permissive}
        assert lefts == {"N.L", "E.L", "S.L", "W.L"}
        assert all(not b.protected for b in d.links if b.movement.endswith(".L"))


def test_hangzhou_1x1(hangzhou_dir: Path, tmp_path: Path) -> None:
    (d,) = derive_all(signal_junctions(scenarios.resolve("hangzhou-1x1").net))
    assert d.phasing.startswith("dual-ring") and len(d.site.phases) == 8
    _check_toml(d, tmp_path)


def test_hangzhou_4x4_every_junction(hangzhou_dir: Path, tmp_path: Path) -> None:
    derivations = derive_all(signal_junctions(scenarios.resolve("hangzhou-4x4").net))
    assert len(derivations) == 16
    for d in derivations:
        _check_toml(d, tmp_path)
        # a stop-bar loop per lane; the 4 inputs left are the preemption receiver's
        # (one per approach), so no setback loops fit on the 16-input board
        assert sum(det.kind == "stop-bar" for det in d.detectors) == 12
        whole = [p for p in d.site.preempts if p.turn is None]
        assert sorted(p.input or 0 for p in whole) == [13, 14, 15, 16]
        # protected lefts: a through vehicle's preempt per approach, no receiver input
        through = [p for p in d.site.preempts if p.turn == "T"]
        assert len(through) == 4 and all(p.input is None for p in through)
        assert len(d.detectors) == 12
        assert all(det.calls for det in d.detectors if det.kind == "stop-bar")
        assert not any(det.calls for det in d.detectors if det.kind == "setback")


def test_one_way_street(tmp_path: Path) -> None:
    nodes, edges = four_leg(one_way_east=True)
    net = build_net(tmp_path, "oneway", nodes, edges)
    d = derive(signal_junction(read_net(net), "C"))
    arms = {a.id: a for a in d.arms}
    assert arms["E"].in_edges == () and arms["W"].out_edges == ()
    (west,) = [p for p in d.site.phases if any(m.name == "W.T" for m in p.movements)]
    # the one-way approach has no opposing flow: its left is protected in its through phase
    assert "W.L" in {m.name for m in west.movements}
    assert not any(m.approach == "E" for p in d.site.phases for m in p.movements)
    assert len([p for p in d.site.phases if p.group == west.group]) == 1
    _check_toml(d, tmp_path)


def test_five_leg_junction_is_split_phased(tmp_path: Path) -> None:
    nodes, edges = five_leg()
    net = build_net(tmp_path, "five", nodes, edges)
    d = derive(signal_junction(read_net(net), "C"))
    assert d.phasing == "split"
    assert len(d.site.phases) == 5
    assert len({p.group for p in d.site.phases}) == 5
    # exits no L/T/R name reaches ride with their approach's phase, said in the notes
    assert all(b.phase is not None for b in d.links)
    assert any("rides with phase" in n for n in d.notes)
    _check_toml(d, tmp_path)


def test_u_turns_ride_with_the_protected_left_or_stay_red(tmp_path: Path) -> None:
    nodes, edges = four_leg()
    net = build_net(tmp_path, "uturn", nodes, edges, turnarounds=True)
    j = signal_junction(read_net(net), "C")
    d = derive(j)
    uturns = [k.index for k in j.links if k.dir == "t"]
    assert uturns
    for i in uturns:
        b = d.links[i]
        assert b.movement == ""
        if b.phase is None:
            assert any(f"link {i} " in n and "kept red" in n for n in d.notes)
    _check_toml(d, tmp_path)


def test_no_traffic_light_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [("C", 0, 0, "priority"), ("W", -200, 0, "priority"), ("E", 200, 0, "priority")]
    edges = [("W_in", "W", "C", 1), ("C_E", "C", "E", 1)]
    net = build_net(tmp_path, "plain", nodes, edges)
    with pytest.raises(SimError, match="no traffic lights"):
        signal_junctions(net)
    assert edge_main(["sim", "init", str(net)]) == 1
    assert "no traffic lights" in capsys.readouterr().err


def test_derivation_error_names_the_signal_and_reasons() -> None:
    err = DerivationError("J9", ["dual-ring: a", "split: b"])
    assert "J9" in str(err) and "dual-ring: a" in str(err)


def test_init_writes_a_config_edge_check_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tee.toml"
    assert edge_main(["sim", "init", "tee", "-o", str(out)]) == 0
    assert edge_main(["check", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    site_from_dict(tomllib.loads(out.read_text()))


def test_init_needs_tls_when_several(capsys: pytest.CaptureFixture[str]) -> None:
    assert edge_main(["sim", "init", "arterial"]) == 1
    assert "--tls" in capsys.readouterr().err
    assert edge_main(["sim", "init", "arterial", "--tls", "J2"]) == 0


def test_simulator_cameras_run_the_simulator_model() -> None:
    """A derived site with cameras runs the model trained on the renders, not the default
    for real cameras (which undercounts renders: docs/vision.md)."""
    from edge.config import config_from_dict
    from edge.vision.config import DEFAULT_MODEL, SIM_MODEL
    from sim.camera.source import with_cameras

    scenario = scenarios.resolve("single")
    (d,) = derive_all(signal_junctions(scenario.net))
    raw = with_cameras(d, scenario.net)
    vision = config_from_dict(raw, "single (derived)").vision
    assert vision is not None and len(vision.cameras) == 4
    assert vision.model == SIM_MODEL != DEFAULT_MODEL


def _right_overlaps_keep_their_rules(d: Derivation) -> int:
    """Each right-turn overlap of a derivation: one right turn whose lanes carry no
    through, parents its own phase and the protected left from the arm it turns
    into, and its links bound to the overlap's channel. Returns how many."""
    site = d.site
    phases = {p.id: p for p in site.phases}
    channel = {c.source: c.id for c in site.channels}
    lane_turns: dict[str, set[str]] = {}
    for b in d.links:
        if b.movement and not b.crossing:
            lane_turns.setdefault(b.from_lane, set()).add(b.movement.split(".")[1])
    n = 0
    for o in site.overlaps:
        if o.permissive_parents:
            continue
        n += 1
        (m,) = o.movements
        own, *lefts = o.parents
        assert m.name.endswith(".R")
        assert m.approach in {x.approach for x in phases[own].movements}
        assert [x.name for p in lefts for x in phases[p].movements] == [f"{m.to}.L"]
        assert all(phases[p].group != phases[own].group for p in lefts)
        links = [b for b in d.links if b.movement == m.name]
        assert links and all(b.channel == channel[o.id] for b in links)
        assert all("T" not in lane_turns[b.from_lane] for b in links)
    return n


def test_right_overlaps_only_where_no_through_shares_the_lane(hangzhou_dir: Path) -> None:
    # hangzhou-1x1: its rights share the kerb lane with the through: no overlap
    (d,) = derive_all(signal_junctions(scenarios.resolve("hangzhou-1x1").net))
    assert _right_overlaps_keep_their_rules(d) == 0 and "rto" not in d.phasing
    found = sum(
        _right_overlaps_keep_their_rules(d)
        for d in derive_all(signal_junctions(scenarios.resolve("hangzhou-4x4").net))
    )
    assert found > 0
