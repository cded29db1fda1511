"""Site config validation: every problem named with its place, all at once."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from edge.config import ConfigError, compatibility_matrix, load_site, site_from_dict
from edge.control.site import SignalKind

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
FOUR_LEG = ROOT / "examples" / "four_leg_protected.toml"


def base() -> dict[str, Any]:
    return tomllib.loads(FOUR_LEG.read_text())


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        site_from_dict(raw, "site.toml")
    return err.value.problems


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_example_passes(path: Path) -> None:
    site = load_site(path)
    assert site.phases and site.channels


def test_yellow_below_three_seconds_names_plan_and_phase() -> None:
    raw = base()
    raw["plans"]["day"]["phase"]["4"] = {"yellow_s": 2.5}
    assert problems(raw) == ["plan day: phase 4: yellow 2.5 s is below the 3 s minimum"]


def test_unknown_keys_are_rejected_with_their_path_and_the_nearest_valid_key() -> None:
    raw = base()
    raw["phases"][3]["colour"] = "blue"
    raw["site"]["nmae"] = "typo"
    raw["plans"]["day"]["phase"]["2"]["yelow_s"] = 4.0
    raw["approaches"][0]["speed_kph"] = 50
    raw["cameras"] = [{"id": "c", "url": "x", "width": 640, "height": 480, "fsp": 10}]
    found = problems(raw)
    assert "phase 4: unknown key 'colour'" in found  # nothing close: no guess
    assert "site: unknown key 'nmae' (did you mean 'name'?)" in found
    assert "plans.day.phase.2: unknown key 'yelow_s' (did you mean 'yellow_s'?)" in found
    assert "approach N: unknown key 'speed_kph' (did you mean 'speed_kmh'?)" in found
    assert "camera c: unknown key 'fsp' (did you mean 'fps'?)" in found


def test_all_problems_are_reported_at_once() -> None:
    raw = base()
    raw["plans"]["day"]["phase"]["2"]["red_clear_s"] = 0.2
    raw["plans"]["day"]["phase"]["6"]["min_green_s"] = 2
    raw["detectors"][0]["phase"] = 12
    found = problems(raw)
    assert "plan day: phase 2: red clearance 0.2 s is below the site's 1 s minimum" in found
    assert "plan day: phase 6: min green 2 s is below the site's 5 s minimum" in found
    assert "detector 1: calls: no phase 12" in found
    assert len(found) >= 3


def test_wrong_types_are_named() -> None:
    raw = base()
    raw["phases"][0]["ring"] = "one"
    raw["safety"]["min_yellow_s"] = 2.0
    raw["plans"]["day"]["defaults"]["passage_s"] = "2.5"
    found = problems(raw)
    assert "phase 1: ring: Input should be a valid integer (got 'one')" in found
    assert "safety.min_yellow_s: Input should be greater than or equal to 3 (got 2.0)" in found
    assert "plans.day.defaults.passage_s: Input should be a valid number (got '2.5')" in found


def test_conflicting_movements_that_could_time_together_are_rejected() -> None:
    raw = base()
    # Phase 5 (ring 2) given the eastbound left AND the westbound through's opposing
    # through would conflict with phase 2: move 5's left to the north arm's through.
    raw["phases"][4]["movements"] = ["N.T"]
    found = problems(raw)
    assert any("phase 5" in p and "can time together" in p and "N.T" in p for p in found), found


def test_a_phase_whose_own_movements_conflict_is_rejected() -> None:
    raw = base()
    raw["phases"][1]["movements"] = ["W.T", "E.L"]
    found = problems(raw)
    assert any("phase 2: its own movements" in p for p in found), found


def test_unknown_references_are_named() -> None:
    raw = base()
    raw["channels"][0]["phase"] = 9
    raw["phases"][1]["ped_crossing"] = "Q"
    raw["site"]["default_plan"] = "evening"
    found = problems(raw)
    assert "channel 1: phase: no phase 9" in found
    assert "phase 2: ped_crossing: no approach 'Q'" in found
    assert any(p.startswith("site: default_plan: no plan 'evening'") for p in found)


def test_rings_must_be_listed_in_group_order() -> None:
    raw = base()
    raw["phases"][0], raw["phases"][2] = raw["phases"][2], raw["phases"][0]
    found = problems(raw)
    assert any(p.startswith("ring 1: phases must be listed in barrier-group order") for p in found)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\nid=1")
    with pytest.raises(ConfigError) as err:
        load_site(bad)
    assert err.value.problems[0].startswith("not valid TOML")
    with pytest.raises(ConfigError) as err:
        load_site(tmp_path / "missing.toml")
    assert "cannot read the file" in err.value.problems[0]


def test_matrix_marks_conflicts_and_concurrency() -> None:
    site = load_site(FOUR_LEG)
    text = compatibility_matrix(site)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:-1]}
    header = text.splitlines()[0].split()
    assert rows["P2"][header.index("P6")] == "o"
    assert rows["P2"][header.index("P4")] == "X"
    assert rows["P1"][header.index("P2")] == "X"
    assert ((SignalKind.PHASE, 2), (SignalKind.PHASE, 4)) in site.conflicts


def test_input_is_not_mutated() -> None:
    raw = base()
    before = copy.deepcopy(raw)
    site_from_dict(raw)
    assert raw == before


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_edge_check_prints_every_problem_and_fails(tmp_path: Path) -> None:
    text = FOUR_LEG.read_text().replace("yellow_s = 3.0 }", "yellow_s = 2.0 }")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    res = run_cli("check", str(path))
    assert res.returncode == 1
    assert res.stderr.count("is below the 3 s minimum") == 12  # 4 phases x 3 plans
    ok = run_cli("check", "--matrix", *map(str, EXAMPLES))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count(": OK: site") == len(EXAMPLES)


def _through_preempt(**extra: Any) -> dict[str, Any]:
    return {"id": 6, "approach": "E", "turn": "T", "dwell_phases": [2, 6], **extra}


def test_a_turns_preempt_dwells_where_that_turn_goes() -> None:
    site = site_from_dict(base(), "site.toml")
    pre = next(p for p in site.preempts if p.id == 5)  # the example's eastbound through
    assert (pre.approach, pre.turn, pre.dwell_phases, pre.input) == ("W", "T", (2, 6), None)
    raw = base()
    raw["preempts"].append(_through_preempt())
    assert next(p for p in site_from_dict(raw, "x").preempts if p.id == 6).turn == "T"


def test_a_turns_preempt_is_checked_against_its_approach() -> None:
    raw = base()
    raw["preempts"] += [
        _through_preempt(dwell_phases=[1]),  # phase 1 is E.L: does not serve E.T
        {"id": 7, "turn": "T", "dwell_phases": [2, 6]},  # no approach
        _through_preempt(id=8, approach="W", input=16),  # a receiver cannot tell the turn
    ]
    found = problems(raw)
    assert "preempt 6: no dwell phase serves E.T" in found
    assert "preempt 7: turn 'T' needs an approach" in found
    assert any(p.startswith("preempt 8: a receiver cannot tell the turn") for p in found)
    assert "preempt 8: another preempt already serves W.T" in found


def test_an_approach_with_a_turns_preempt_keeps_one_for_all_its_vehicles() -> None:
    raw = base()
    raw["preempts"] = [p for p in raw["preempts"] if p["approach"] != "E" or "turn" in p]
    raw["preempts"].append(_through_preempt())
    assert problems(raw) == [
        "preempt 6: approach E has no preempt without a turn "
        "(for receivers and requests that name none)"
    ]
