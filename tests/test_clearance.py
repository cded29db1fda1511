"""ITE's kinematic yellow and red clearance (edge/clearance.py), and `edge check`'s
warnings where a site's timing falls below them for its stated speeds and widths."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from edge import clearance
from edge.config import ConfigError, config_from_dict, load_config
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MPH = 0.44704  # m/s


@pytest.mark.parametrize(
    ("speed_mps", "grade", "yellow_s"),
    [
        (30 * MPH, 0.0, 3.2),  # ITE's tables (10 ft/s^2, 1 s): 30 mph -> 3.2 s
        (45 * MPH, 0.0, 4.3),  # 45 mph -> 4.3 s
        (clearance.mps(50), 0.0, 3.3),  # 1 + 13.89 / 6.1 = 3.28
        (clearance.mps(50), -0.04, 3.7),  # downhill 4 %: 1 + 13.89 / 5.32 = 3.61
        (clearance.mps(50), 0.04, 3.1),  # uphill 4 %: 1 + 13.89 / 6.88 = 3.02
    ],
)
def test_yellow_matches_the_formula(speed_mps: float, grade: float, yellow_s: float) -> None:
    assert clearance.required_ms(clearance.yellow_s(speed_mps, grade)) == round(yellow_s * 1000)


def test_red_clearance_matches_the_formula() -> None:
    # (20 m + 6.1 m) / 13.89 m/s = 1.88 s
    assert clearance.red_clear_s(20.0, clearance.mps(50)) == pytest.approx(1.8792, abs=1e-4)
    assert clearance.required_ms(clearance.red_clear_s(20.0, clearance.mps(50))) == 1900


def test_inputs_outside_the_formula_are_refused() -> None:
    with pytest.raises(ValueError, match="not positive"):
        clearance.yellow_s(0.0)
    with pytest.raises(ValueError, match="too steep"):
        clearance.yellow_s(10.0, -0.5)
    with pytest.raises(ValueError, match="negative"):
        clearance.red_clear_s(-1.0, 10.0)
    with pytest.raises(ValueError, match="not positive"):
        clearance.red_clear_s(10.0, 0.0)


speeds = st.floats(1.0, 40.0)
grades = st.floats(-0.15, 0.15)


@given(v=speeds, w=speeds, g=grades)
def test_faster_or_downhill_needs_longer_yellow(v: float, w: float, g: float) -> None:
    lo, hi = sorted((v, w))
    assert clearance.yellow_s(lo, g) <= clearance.yellow_s(hi, g)
    assert clearance.yellow_s(v, g) >= clearance.REACTION_S
    assert clearance.yellow_s(v, min(g, 0.0)) >= clearance.yellow_s(v, max(g, 0.0))


@given(v=speeds, w=speeds, width=st.floats(0.0, 100.0))
def test_faster_needs_shorter_red_and_wider_needs_longer(v: float, w: float, width: float) -> None:
    lo, hi = sorted((v, w))
    assert clearance.red_clear_s(width, hi) <= clearance.red_clear_s(width, lo)
    assert clearance.red_clear_s(width, v) <= clearance.red_clear_s(width + 1.0, v)


@given(seconds=st.floats(0.0, 100.0))
def test_requirements_round_up_to_a_tenth(seconds: float) -> None:
    need = clearance.required_ms(seconds)
    assert need % clearance.RESOLUTION_MS == 0
    assert seconds * 1000 - 1e-3 <= need < seconds * 1000 + clearance.RESOLUTION_MS


# --- the site check ---------------------------------------------------------------------


def short_site(**approach: Any) -> dict[str, Any]:
    """The split-phase example with a 3.0 s yellow and a 0.5 s red on every phase."""
    raw = tomllib.loads((EXAMPLES / "four_leg_split.toml").read_text())
    raw["safety"]["min_red_clear_s"] = 0.5
    raw["plans"]["day"]["defaults"].update(yellow_s=3.0, red_clear_s=0.5, red_revert_s=2.0)
    for a in raw["approaches"]:
        for key in ("speed_kmh", "width_m", "grade_pct"):
            a.pop(key, None)
        a.update(approach)
    return raw


def test_short_clearances_are_accepted_where_no_speed_is_stated() -> None:
    assert config_from_dict(short_site(), "site.toml").warnings == ()


def test_short_clearances_are_warned_with_the_place_the_value_and_ites() -> None:
    config = config_from_dict(short_site(speed_kmh=50, width_m=20), "site.toml")
    warned = config.warnings
    assert (
        "plan day: phase 2: yellow 3.0 s is below ITE's 3.3 s for approach W at 50 km/h" in warned
    )
    assert (
        "plan day: phase 2: red clearance 0.5 s is below ITE's 1.9 s to clear 20 m from "
        "approach W at 50 km/h"
    ) in warned
    assert len(warned) == 8  # yellow and red of each of the 4 phases


def test_a_downhill_approach_needs_a_longer_yellow() -> None:
    raw = short_site(speed_kmh=40)
    raw["plans"]["day"]["defaults"].update(yellow_s=3.5, red_clear_s=2.0)
    assert config_from_dict(raw).warnings == ()
    raw["approaches"][0]["grade_pct"] = -10  # N: 1 + 11.1 / (6.1 - 1.96) = 3.69
    assert config_from_dict(raw).warnings == (
        "plan day: phase 8: yellow 3.5 s is below ITE's 3.7 s for approach N at 40 km/h, "
        "-10 % grade",
    )


def test_a_red_clearance_is_judged_on_throughs_only() -> None:
    raw = tomllib.loads((EXAMPLES / "t_junction.toml").read_text())
    raw["approaches"][1]["width_m"] = 40  # S: only turns leave it
    assert load_config(EXAMPLES / "t_junction.toml").warnings == config_from_dict(raw).warnings


def test_grade_or_width_without_a_speed_is_a_problem() -> None:
    raw = short_site(width_m=20, grade_pct=3)
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, "site.toml")
    assert "approach N: grade_pct needs speed_kmh (the approach speed)" in err.value.problems
    assert "approach N: width_m needs speed_kmh (the approach speed)" in err.value.problems


def test_overlaps_are_checked_too() -> None:
    raw: dict[str, Any] = copy.deepcopy(tomllib.loads((EXAMPLES / "t_junction.toml").read_text()))
    raw["overlaps"][0]["yellow_s"] = 3.0
    raw["approaches"][1]["speed_kmh"] = 60  # S, where overlap A's right turn comes from
    warned = config_from_dict(raw).warnings
    assert "overlap A: yellow 3.0 s is below ITE's 3.8 s for approach S at 60 km/h" in warned


def test_shipped_examples_state_speeds_and_warn_only_where_short() -> None:
    for name in ("four_leg_split.toml", "midblock_ped.toml"):
        assert load_config(EXAMPLES / name).warnings == (), name
    assert load_config(EXAMPLES / "t_junction.toml").warnings == (
        "plan day: phase 1: yellow 3.0 s is below ITE's 3.3 s for approach E at 50 km/h",
        "overlap B: yellow 3.0 s is below ITE's 3.3 s for approach E at 50 km/h",
    )


def test_edge_check_prints_warnings_and_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    text = (EXAMPLES / "four_leg_split.toml").read_text()
    path.write_text(
        text.replace("speed_kmh = 40", "speed_kmh = 60").replace("yellow_s = 4.0", "yellow_s = 3.0")
    )
    res = subprocess.run(
        [sys.executable, "-m", "edge.cli", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    assert ": OK: site" in res.stdout
    assert f"{path}: 4 warning(s)" in res.stderr
    warned = (
        f"  {path}: plan day: phase 2: yellow 3.0 s is below ITE's 3.8 s for approach W at 60 km/h"
    )
    assert warned in res.stderr.splitlines()
    assert res.stderr.count("is below ITE's") == 4  # phases 2, 4, 6, 8
