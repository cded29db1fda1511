"""The scenario generator (`edge sim gen`) and the suite `edge bench suite` runs.

Same family and seed, same bytes; each family builds with netconvert and
derives to sites the device's own validation takes (and the one the family
promises: shared lanes give permissive lefts, pockets protected ones); the
suite's list covers every family and level; a tiny `edge bench suite` run
gives the JSON it documents.
"""

from __future__ import annotations

import filecmp
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from edge.cli import main
from edge.config import load_config
from sim.sumo.derive import derive_all
from sim.sumo.errors import SimError
from sim.sumo.gen import FAMILIES, LEVELS, generate
from sim.sumo.network import signal_junctions
from sim.sumo.scenarios import resolve
from sim.sumo.site_toml import derivation_toml
from sim.sumo.suite import read_spec

# One small scenario per family (a 2-signal arterial, a 2x2 grid); tee 1 and
# cross 2 draw pedestrians.
SMALL = {"tee": 1, "cross": 2, "shared": 1, "arterial": 1, "grid": 1}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_same_seed_writes_the_same_bytes(family: str, tmp_path: Path) -> None:
    a = generate(family, 7, tmp_path / "a", "peak")
    b = generate(family, 7, tmp_path / "b", "peak")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 7
    same, differ, unread = filecmp.cmpfiles(a, b, names, shallow=False)
    assert (same, differ, unread) == (names, [], [])
    other = generate(family, 8, tmp_path / "c", "peak")
    assert (other / "scenario.json").read_bytes() != (a / "scenario.json").read_bytes()


def test_pinning_the_level_changes_only_the_demand(tmp_path: Path) -> None:
    low = generate("cross", 3, tmp_path / "low", "off-peak")
    high = generate("cross", 3, tmp_path / "high", "over-saturated")
    for ext in ("nod.xml", "edg.xml", "con.xml"):
        assert (low / f"cross-3-off-peak.{ext}").read_bytes() == (
            high / f"cross-3-over-saturated.{ext}"
        ).read_bytes()
    lo, hi = (json.loads((d / "scenario.json").read_text()) for d in (low, high))
    assert sum(hi["demand_vph"].values()) > 2 * sum(lo["demand_vph"].values())


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_builds_and_derives_valid_sites(family: str, tmp_path: Path) -> None:
    folder = generate(family, SMALL[family], tmp_path / family)
    scenario = resolve(str(folder))  # netconvert builds the network from the recipe
    assert scenario.net.is_file() and scenario.end_s is not None
    derived = derive_all(signal_junctions(scenario.net))
    meta = json.loads((folder / "scenario.json").read_text())
    assert len(derived) == meta["signals"]
    for d in derived:  # what `edge check` reads: the TOML written out, loaded back
        toml = tmp_path / f"{d.tls}.toml"
        toml.write_text(derivation_toml(d, str(scenario.net)))
        assert load_config(toml).site.phases
    phases = {p["id"] for d in derived for p in d.site_dict["phases"]}
    if family == "shared":  # lefts share the through lane: permissive, no left phases
        assert phases == {2, 4, 6, 8}
    if family == "cross":  # cross 2 has pockets: protected lefts, crosswalks that walk
        assert {1, 5} <= phases
        assert any(p.get("ped_crossing") for d in derived for p in d.site_dict["phases"])


def test_walkers_are_listed_in_departure_order_so_sumo_keeps_them(tmp_path: Path) -> None:
    # SUMO drops (with a warning) a flow listed after one with a later begin:
    # walkers appended after the vehicles' last time slice never walked.
    folder = generate("tee", 1, tmp_path / "tee")
    routes = ET.parse(next(folder.glob("*.rou.xml"))).getroot()
    flows = [el for el in routes if el.tag in ("flow", "personFlow")]
    assert any(el.tag == "personFlow" for el in flows)
    begins = [float(el.get("begin", "0")) for el in flows]
    assert begins == sorted(begins)


def test_the_suite_lists_at_least_30_scenarios_over_every_family_and_level() -> None:
    entries = read_spec()
    assert len(entries) >= 30
    assert {e.family for e in entries} == set(FAMILIES)
    for family in FAMILIES:
        assert {e.level for e in entries if e.family == family} == set(LEVELS), family


def test_a_bad_suite_line_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "suite.txt"
    spec.write_text("# ok\ntee 1 peak\nroundabout 2 peak\n")
    with pytest.raises(SimError, match=r"suite\.txt:3: unknown family 'roundabout'"):
        read_spec(spec)
    spec.write_text("tee 1 peak\ntee 1 rush\n")
    with pytest.raises(SimError, match=r"suite\.txt:2: unknown level 'rush'"):
        read_spec(spec)


def test_a_tiny_suite_run_prints_the_documented_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGE_BENCH_SUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGE_BENCH_SUITE_CHART", str(tmp_path / "suite.png"))
    monkeypatch.setenv("EDGE_BENCH_SUITE_SCENARIOS", "shared-1-off-peak")
    monkeypatch.setenv("EDGE_BENCH_SUITE_CONTROLLERS", "edge,sumo-actuated,sumo-actuated-ite")
    monkeypatch.setenv("EDGE_BENCH_SUITE_JOBS", "1")
    assert main(["bench", "suite", "--quick", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bench"] == "suite" and doc["seeds"] == 1 and doc["episodes"] == 3
    (sc,) = doc["scenarios"]
    assert (sc["name"], sc["kind"], sc["family"], sc["level"]) == (
        "shared-1-off-peak",
        "generated",
        "shared",
        "off-peak",
    )
    delay = sc["delay_s_per_veh"]
    assert set(delay) == {"edge", "sumo-actuated", "sumo-actuated-ite"}
    assert all(v > 0 for v in delay.values())
    ratio = sc["ratio_to_sumo_actuated"]["edge"]
    assert ratio == pytest.approx(delay["edge"] / delay["sumo-actuated"], abs=0.01)
    assert sc["ratio_to_sumo_actuated"]["sumo-actuated"] == 1.0
    gen = doc["summary"]["generated"]
    assert gen["scenarios"] == 1
    assert gen["edge"]["geomean_ratio_to_sumo_actuated"] == pytest.approx(ratio, abs=0.001)
    assert gen["edge"]["worst_scenario_ratio_to_sumo_actuated_ite"] == "shared-1-off-peak"
    assert (tmp_path / "suite.png").stat().st_size > 0


def test_edge_sim_gen_writes_builds_and_derives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t"
    assert main(["sim", "gen", "tee", "--seed", "4", "--level", "peak", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"{out}: 1 signal(s) (1x1), peak,") and "dual-ring" in said
    assert (out / "tee-4-peak.net.xml").is_file()
    assert main(["sim", "gen"]) == 1
    assert "give a FAMILY, or --suite" in capsys.readouterr().err
