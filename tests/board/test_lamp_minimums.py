"""New timing on the lamps: whatever the core runs, no lamp shows an interval shorter than its
minimum.

Driven through the real path: controller -> output guard -> the real firmware core
(hw.board) over the fake wire, with the new timing given as central gives it (a plan
bundle checked by edge.link.plans, then LoadSite), and measured on the board's lamps.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from typing import Any

from edge.board.config import board_config
from edge.board.driver import BoardDriver
from edge.config import config_from_dict
from edge.control.messages import LoadSite
from edge.control.site import Site
from edge.link.plans import bundle_body, check_body
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hw import codec
from tests.board.checks import check_lamp_minimums, check_trace, plan_minimums
from tests.board.fakelink import CROSSING, FakeLink
from tests.hypothesis_profiles import examples

SITE_RAW = tomllib.loads(CROSSING.read_text())
# The site file's plan: long clearances, as a cautious first timing.
LONG = {
    "min_green_s": 8, "passage_s": 0.5, "max_green_s": 10, "yellow_s": 4.0,
    "red_clear_s": 2.0, "walk_s": 6, "ped_clear_s": 5,
}  # fmt: skip
# Central's new timing: every time at the site's floor or the MUTCD minimum.
SHORT = {
    "min_green_s": 5, "passage_s": 0.5, "max_green_s": 6, "yellow_s": 3.0,
    "red_clear_s": 1.0, "walk_s": 4, "ped_clear_s": 3,
}  # fmt: skip
SETTLE_MS = 60_000  # the old timing's last intervals are over by then


def site_raw(defaults: dict[str, float]) -> dict[str, Any]:
    raw = copy.deepcopy(SITE_RAW)
    raw["plans"]["fast"]["defaults"] = dict(defaults)
    return raw


def bundled(raw: dict[str, Any], defaults: dict[str, float]) -> Site:
    """The site with `defaults` as the plan, as a plan bundle from central gives it."""
    plans = copy.deepcopy(raw["plans"])
    plans["fast"]["defaults"] = dict(defaults)
    body = bundle_body("dev", 1, 0, 1 << 50, plans, "fast")
    return check_body(body, device="dev", high_water=0, site_raw=raw, now_ms=None).site


def run_new_timing(
    old: Site, new: Site, *, config: Any = None, ber: float = 0.0, seed: int = 1
) -> tuple[FakeLink, int]:
    """30 s on the old timing, new timing loaded, 2 minutes more; (link, time applied)."""
    fl = FakeLink(old, ber=ber, seed=seed)
    if config is not None:
        fl.driver = BoardDriver(old, fl.now, config=config)
    fl.connect()
    fl.step_to(fl.now + 30_000)
    fl.driver.command(LoadSite(new, "fast"))
    assert fl.run_until(lambda: fl.driver.controller.site is new, 60_000)
    applied = fl.now
    fl.step_to(applied + 120_000)
    return fl, applied


def lamp_problems(fl: FakeLink, old: Site, new: Site, applied: int) -> list[str]:
    cfg = fl.driver.config
    plans = {"old": old.plans["fast"], "new": new.plans["fast"]}
    both = plan_minimums(dataclasses.replace(new, plans=plans), "old", "new")
    return (
        check_trace(cfg, fl.trace)
        + check_lamp_minimums(cfg, fl.trace, both)
        + check_lamp_minimums(cfg, fl.trace, plan_minimums(new, "fast"), applied + SETTLE_MS)
    )


def test_shorter_new_timing_shows_its_minimums_on_the_lamps() -> None:
    """Issue 15: a valid bundle with shorter clearances than the site file's plan.

    The board used to keep minimums derived from the site file's plan (4 s yellow, 5 s
    pedestrian clearance); the guard stretched each change to them and took it out of
    the next green and walk: 3 s greens (5 s minimum), 2 s walks (4 s minimum).
    """
    raw = site_raw(LONG)
    old = config_from_dict(raw).site
    new = bundled(raw, SHORT)
    fl, applied = run_new_timing(old, new)
    assert lamp_problems(fl, old, new, applied) == []
    assert fl.driver.config == board_config(new)  # the board's CONFIG fits the new timing
    assert fl.driver.stats()["guard_held"] == 0  # on a clean link the lamps are the core's
    greens = [lamps for t, s, _f, lamps in fl.trace if t > applied and s == codec.STATE_RUNNING]
    assert any(codec.GREEN in lamps for lamps in greens)


def test_a_board_stricter_than_the_timing_delays_greens_never_shortens_them() -> None:
    """A board whose minimums are longer than the core's (as the old per-plan CONFIG was):
    the guard stretches the changes and starts the next greens later, and each green and
    walk still lasts its minimum; one it had to skip is called again."""
    raw = site_raw(LONG)
    old = config_from_dict(raw).site
    new = bundled(raw, SHORT)
    strict = dataclasses.replace(
        board_config(old), min_yellow_ms=(4000, 4000, 5000), min_red_ms=(2000, 2000, 2000)
    )
    fl, applied = run_new_timing(old, new, config=strict)
    assert lamp_problems(fl, old, new, applied) == []
    assert fl.state == codec.STATE_RUNNING
    stats = fl.driver.stats()
    assert stats["guard_held"] > 0
    assert stats["guard_skipped"] > 0  # 2 s more a cycle than the core gives: lag, cut so


def test_new_timing_survives_a_board_recovery() -> None:
    """The board flashes (watchdog) after new timing took effect: the controller restarts
    its start-up sequence on the new timing, not on the site file's."""
    raw = site_raw(SHORT)
    old = config_from_dict(raw).site
    new = bundled(raw, LONG)
    fl, _applied = run_new_timing(old, new)
    fl.disconnect()
    fl.step_to(fl.now + 1500)
    assert fl.state == codec.STATE_FLASH
    fl.connect()
    recovered = fl.now
    assert fl.run_until(lambda: fl.state == codec.STATE_RUNNING, 10_000)
    assert fl.driver.controller.site is new
    fl.step_to(fl.now + 90_000)
    cfg = fl.driver.config
    assert check_lamp_minimums(cfg, fl.trace, plan_minimums(new, "fast"), recovered) == []


_SECONDS = st.integers(0, 40).map(lambda k: k / 10)  # 0.0 .. 4.0 s in 0.1 s steps


@st.composite
def timings(draw: st.DrawFn) -> dict[str, float]:
    """A valid plan: every time between the site's floor (or the MUTCD minimum) and above."""
    min_green = 1 + draw(_SECONDS) * 2
    red = 1.0 + draw(_SECONDS) / 2
    return {
        "min_green_s": min_green,
        "passage_s": 0.5,
        "max_green_s": min_green + draw(_SECONDS),
        "yellow_s": 3.0 + draw(_SECONDS) / 2,
        "red_clear_s": red,
        "red_revert_s": max(red, 2.0),
        "walk_s": 4.0 + draw(_SECONDS),
        "ped_clear_s": 3.0 + draw(_SECONDS),
    }


@settings(max_examples=examples(25), deadline=None)
@given(first=timings(), then=timings(), ber=st.sampled_from([0.0, 1e-3]), seed=st.integers(1, 50))
@example(first=LONG, then=SHORT, ber=0.0, seed=1)
@example(first=SHORT, then=LONG, ber=1e-3, seed=3)
# Found: a watchdog flash on the lossy link restarted the controller on the site file's
# timing, and the lamps showed its 4.4 s greens for the new 8 s minimum.
@example(
    first={"min_green_s": 4.4, "passage_s": 0.5, "max_green_s": 7.5, "yellow_s": 4.55,
           "red_clear_s": 2.55, "red_revert_s": 2.55, "walk_s": 7.5, "ped_clear_s": 5.9},
    then={"min_green_s": 8.0, "passage_s": 0.5, "max_green_s": 9.9, "yellow_s": 3.55,
          "red_clear_s": 2.6, "red_revert_s": 2.6, "walk_s": 6.9, "ped_clear_s": 4.5},
    ber=1e-3,
    seed=19,
)  # fmt: skip
def test_any_valid_new_timing_keeps_its_minimums_on_the_lamps(
    first: dict[str, float], then: dict[str, float], ber: float, seed: int
) -> None:
    """Random valid timing before and after, on a clean or a lossy link (frames lost to
    bit errors): every green, walk, change interval and red clearance the lamps show
    lasts at least the core's minimum for it."""
    raw = site_raw(first)
    old = config_from_dict(raw).site
    new = bundled(raw, then)
    fl, applied = run_new_timing(old, new, ber=ber, seed=seed)
    assert lamp_problems(fl, old, new, applied) == []
    assert fl.driver.config == board_config(new)
