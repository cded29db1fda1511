"""A normal overlap wanted again while it clears (overlaps.py rule 2).

A right-turn overlap whose parents sit in both barrier groups (a derived
site's right turn with its through phase and the complementary protected left)
can be wanted again by its next parent while it still clears from the last
one: after the lagging left of one group, the through of the next starts once
its own intergreens have run, which can be sooner than the overlap's yellow and
red clearance. The overlap finishes that clearance and turns green with the
parent; the old core stopped its timers instead and held the overlap yellow
or red for the parent's whole green (cross-1-peak seed 5, issue 17: 27.5 s/veh
without the overlaps, 67.6 with them on the old core, 25.9 with this fix).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Inputs
from edge.control.overlaps import OverlapInterval

SITE = load_site(Path(__file__).parents[1] / "sites/derived_cross_right_overlaps.toml")
_Y, _RC = OverlapInterval.YELLOW, OverlapInterval.RED_CLEAR


@pytest.mark.parametrize("busy", [True, False])
def test_an_overlaps_clearance_lasts_its_time_and_no_longer(busy: bool) -> None:
    ctl = Controller(SITE)
    occupied = frozenset(d.id for d in SITE.detectors if not d.ped) if busy else frozenset()
    # Calls on every phase: each barrier group runs its lagging lefts, then crosses.
    odd = frozenset(d.id for d in SITE.detectors if not d.ped and d.id % 2)
    since = [0] * len(SITE.overlaps)
    last = list(ctl.overlaps.iv)
    greens_after_clearing = 0
    for step in range(1, 20_000):  # 2000 s
        now = step * 100
        ctl.step(now, Inputs(occupied=occupied if busy else odd if step % 600 < 300 else occupied))
        for k, ov in enumerate(SITE.overlaps):
            iv = ctl.overlaps.iv[k]
            if iv != last[k]:
                if last[k] == OverlapInterval.RED and iv == OverlapInterval.GREEN:
                    greens_after_clearing += 1
                since[k], last[k] = now, iv
            limit = {_Y: ov.yellow_ms, _RC: ov.red_clear_ms}.get(iv)
            assert limit is None or now - since[k] <= limit, (
                f"overlap {ov.id} {iv.name} for {now - since[k]} ms (its time: {limit} ms)"
            )
    assert greens_after_clearing > 0
