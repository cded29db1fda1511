"""Plan bundles and the IO board: new timing never needs another board CONFIG, and a bundle
the board could not honour is refused before it is stored.

The board keeps the CONFIG it got at boot from the site file; its minimums are the
site's safety floors, which edge.config holds every plan to. So every bundle the
site's checks accept fits the board, and one that does not is refused `invalid_plan`.
"""

from __future__ import annotations

import copy
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from edge.board.config import board_config
from edge.config import config_from_dict
from edge.link import signing
from edge.link.central import signed_bundle
from edge.link.errors import Rejected
from edge.link.plans import bundle_body, check_body
from edge.link.session import Ack, DeviceSession, InstallPlan
from edge.store import Store
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples
from tests.link.harness import SITE, Keys

DEV = "dev-1"
SITE_RAW = tomllib.loads(SITE.read_text())


def one_plan(timing: dict[str, float]) -> dict[str, Any]:
    """A bundle's plan set: one free plan `day` with these defaults on every phase."""
    return {"day": {"defaults": {"passage_s": 2.0, **timing}}}


def checked(plans: dict[str, Any], site_raw: dict[str, Any] = SITE_RAW) -> Any:
    body = bundle_body(DEV, 1, 0, 1 << 50, plans, "day")
    return check_body(body, device=DEV, high_water=0, site_raw=site_raw, now_ms=None)


_TENTHS = st.integers(0, 60).map(lambda k: k / 10)  # 0.0 .. 6.0 s


@st.composite
def valid_timing(draw: st.DrawFn) -> dict[str, float]:
    """Every time at the site's floor (yellow 3 s, red 1 s, green 5 s; walk 4 s and
    pedestrian clearance 3 s by MUTCD) or above it."""
    red = 1.0 + draw(_TENTHS) / 2
    min_green = 5.0 + draw(_TENTHS)
    return {
        "min_green_s": min_green,
        "max_green_s": min_green + draw(_TENTHS) * 3,
        "yellow_s": 3.0 + draw(_TENTHS) / 2,
        "red_clear_s": red,
        "red_revert_s": max(red, 2.0),
        "walk_s": 4.0 + draw(_TENTHS),
        "ped_clear_s": 3.0 + draw(_TENTHS) * 2,
    }


SHORTEST = {
    "min_green_s": 5.0, "max_green_s": 5.0, "yellow_s": 3.0, "red_clear_s": 1.0,
    "red_revert_s": 2.0, "walk_s": 4.0, "ped_clear_s": 3.0,
}  # fmt: skip


@settings(max_examples=examples(40), deadline=None)
@given(timing=valid_timing())
@example(timing=SHORTEST)  # issue 15: clearances shorter than the site file's plans
def test_every_accepted_bundle_keeps_the_boards_config(timing: dict[str, float]) -> None:
    """The board's CONFIG from the site file fits any timing the site's checks accept
    (it used to follow the site file's plans: 5 s pedestrian clearance, 1.5 s red)."""
    bundle = checked(one_plan(timing))
    assert board_config(bundle.site) == board_config(config_from_dict(SITE_RAW).site)


def test_a_bundle_below_the_boards_minimums_is_refused_and_not_stored(
    keys: Keys, tmp_path: Path
) -> None:
    """A site that asks for 1.5 s red clearances: its board holds them, and a bundle with
    1.2 s is refused with the site check's message, before anything is stored."""
    raw = copy.deepcopy(SITE_RAW)
    raw["safety"]["min_red_clear_s"] = 1.5
    assert set(board_config(config_from_dict(raw).site).min_red_ms) == {1500}
    pub = keys.central.public_key()
    store = Store(tmp_path / "edge.db")
    session = DeviceSession(
        device=DEV,
        trusted={signing.key_id(pub): pub},
        site_raw=raw,
        high_water=0,
        memory=store,
        backup_ms=10_000,
        approaches=frozenset({"N", "E", "S", "W"}),
    )
    short = one_plan({**SHORTEST, "red_clear_s": 1.2})
    out = session.on_plan(
        signed_bundle(keys.central, DEV, 1, short, "day"), time.time_ns() // 10**6
    )
    acks = [a for a in out if isinstance(a, Ack)]
    assert [(a.status, a.code) for a in acks] == [("rejected", "invalid_plan")]
    assert acks[0].reason.startswith(
        "plan day: phase 1: red clearance 1.2 s is below the site's 1.5 s minimum"
    )
    assert not any(isinstance(a, InstallPlan) for a in out)
    assert session.high_water == 0 and store.latest_plan() is None
    ok = one_plan({**SHORTEST, "red_clear_s": 1.5})
    out = session.on_plan(signed_bundle(keys.central, DEV, 1, ok, "day"), time.time_ns() // 10**6)
    assert any(isinstance(a, InstallPlan) for a in out)


def test_a_bundle_for_a_site_the_board_cannot_drive_is_refused() -> None:
    """The bundle path asks the board's own check too: a site edge.config accepts but the
    board cannot drive (a loop on input 20 of a 16-input board) takes no new timing."""
    raw = copy.deepcopy(SITE_RAW)
    raw["detectors"][0]["input"] = 20
    det = raw["detectors"][0]["id"]
    with pytest.raises(Rejected) as info:
        checked(one_plan(SHORTEST), raw)
    assert (info.value.code, info.value.reason) == (
        "invalid_plan",
        f"detector {det}: input 20 does not exist on the board (1..16)",
    )
