"""Time-of-day schedule: day plans, the week, exception days, and their errors."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import pytest
from edge.config import ConfigError, config_from_dict, load_config

FOUR_LEG = Path(__file__).resolve().parents[1] / "examples" / "four_leg_protected.toml"


@pytest.mark.parametrize(
    ("when", "plan"),
    [
        ("2026-11-25 05:59", "night"),  # a Wednesday
        ("2026-11-25 06:00", "day"),
        ("2026-11-25 07:15", "peak"),
        ("2026-11-25 17:00", "peak"),
        ("2026-11-25 23:59", "night"),
        ("2026-11-28 07:15", "night"),  # Saturday
        ("2026-11-28 12:00", "day"),
        ("2026-12-25 07:15", "night"),  # Christmas, a Friday, runs the weekend day plan
    ],
)
def test_plan_at(when: str, plan: str) -> None:
    schedule = load_config(FOUR_LEG).schedule
    assert schedule is not None
    assert schedule.plan_at(dt.datetime.fromisoformat(when)) == plan


def test_next_change() -> None:
    schedule = load_config(FOUR_LEG).schedule
    assert schedule is not None
    at = dt.datetime.fromisoformat
    assert schedule.next_change(at("2026-11-25 06:30")) == at("2026-11-25 07:00")
    assert schedule.next_change(at("2026-11-25 22:30")) == at("2026-11-26 00:00")


def raw() -> dict[str, Any]:
    return tomllib.loads(FOUR_LEG.read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s["day_plans"]["weekday"].pop("00:00"), "needs an entry at 00:00"),
        (lambda s: s["day_plans"]["weekday"].update({"25:00": "day"}), "not a time of day"),
        (lambda s: s["day_plans"]["weekday"].update({"12:00": "lunch"}), "no plan 'lunch'"),
        (lambda s: s["week"].pop("sun"), "no day plan for sun"),
        (lambda s: s["week"].update({"funday": "weekday"}), "not a weekday"),
        (
            lambda s: s["exceptions"].append({"date": "2026-13-01", "day_plan": "weekend"}),
            "not a date",
        ),
    ],
)
def test_schedule_errors(mutate: Any, message: str) -> None:
    cfg = raw()
    mutate(cfg["schedule"])
    with pytest.raises(ConfigError) as err:
        config_from_dict(cfg)
    assert any(message in p for p in err.value.problems), err.value.problems
