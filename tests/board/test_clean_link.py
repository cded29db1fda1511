"""On a clean link the output guard holds nothing: the lamps are the core's maps, tick by tick.

Driven through the real path (controller -> output guard -> the real firmware core over the
fake wire, 1 ms each way, no bit errors): whatever valid timing the site has, the guard's
minimums are never stricter than the core's, so `guard_held` and `guard_skipped` stay 0.
The derived sites of `edge sim gen` (cross 3, 6, 9 and tee 6) broke this: their pair
intergreens leave a red of 3.3-3.5 s after a change (intergreen less the yellow), longer
than the 3 s start-up all red, and the guard asked it of channels that had shown nothing
yet. The core owes nothing there (intergreens.py rule 4: the start-up all red covers a
group that has not shown a green), so the first greens were held 300-500 ms and the lag
carried through every interval after them until a green longer than its minimum.
"""

from __future__ import annotations

import copy
import tomllib
from typing import Any

from edge.config import config_from_dict
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hw import codec
from tests.board.checks import check_trace
from tests.board.fakelink import CROSSING, FakeLink
from tests.hypothesis_profiles import examples

SITE_RAW = tomllib.loads(CROSSING.read_text())
RUN_MS = 40_000


def site_with(all_red_s: float, red_clear_s: float, igs: dict[str, dict[str, float]]) -> Any:
    raw = copy.deepcopy(SITE_RAW)
    raw["site"]["startup_all_red_s"] = all_red_s
    raw["plans"]["fast"]["defaults"]["red_clear_s"] = red_clear_s
    if igs:
        raw["intergreens"] = igs
    return config_from_dict(raw).site


def clean_run(site: Any, calls: list[tuple[int, int]]) -> FakeLink:
    """RUN_MS on a clean link; `calls`: (ms after the start, input levels) to set."""
    fl = FakeLink(site)
    fl.connect()
    start = fl.now
    for at, raw in sorted(calls):
        fl.step_to(start + at)
        fl.raw_inputs = raw
    fl.step_to(start + RUN_MS)
    return fl


def assert_held_nothing(fl: FakeLink) -> None:
    assert fl.state == codec.STATE_RUNNING
    assert check_trace(fl.driver.config, fl.trace) == []
    stats = fl.driver.stats()
    assert (stats["guard_held"], stats["guard_skipped"]) == (0, 0)


def test_start_up_all_red_shorter_than_a_pairs_red_holds_nothing() -> None:
    """As the derived sites: a 1.2 s start-up all red, a pair's red after its change of
    3.2 s (6.2 s intergreen less the 3 s yellow). Held the first green before the fix."""
    site = site_with(1.2, 1.0, {"P4": {"P2": 6.2}, "P2": {"P4": 6.2}})
    assert_held_nothing(clean_run(site, [(0, 0b011)]))


_TENTHS = st.integers(0, 40).map(lambda k: k / 10)


@settings(max_examples=examples(20), deadline=None)
@given(
    all_red=st.integers(10, 40).map(lambda k: k / 10),
    red_clear=st.integers(10, 20).map(lambda k: k / 10),
    ig24=st.none() | _TENTHS,
    ig42=st.none() | _TENTHS,
    ig_ped=st.none() | _TENTHS,
    calls=st.lists(
        st.tuples(st.integers(0, RUN_MS // 100).map(lambda k: k * 100), st.integers(0, 7)),
        max_size=8,
    ),
)
@example(all_red=1.2, red_clear=1.0, ig24=2.2, ig42=2.2, ig_ped=None, calls=[(0, 3)])
def test_clean_link_holds_nothing_whatever_the_timing(
    all_red: float,
    red_clear: float,
    ig24: float | None,
    ig42: float | None,
    ig_ped: float | None,
    calls: list[tuple[int, int]],
) -> None:
    """Any start-up all red, red clearance and pair intergreens (each at least its floor:
    yellow plus the minimum red; the walk's, its clearance), any detector calls."""
    igs: dict[str, dict[str, float]] = {}
    if ig24 is not None:
        igs.setdefault("P2", {})["P4"] = 4.0 + ig24
    if ig42 is not None:
        igs.setdefault("P4", {})["P2"] = 4.0 + ig42
    if ig_ped is not None:
        igs.setdefault("Ped2", {})["P4"] = 3.0 + ig_ped
    assert_held_nothing(clean_run(site_with(all_red, red_clear, igs), calls))
