"""SPaT and MAP frames, decoded by pycrate (tests/j2735/decode.py), agree with the core.

The controller runs with scripted traffic, a preemption and an operator flash, on a UTC
clock that crosses an hour (hh:59:59 -> hh+1:00:00); every frame the device's Publisher
returns is decoded and each signal group's state and minEndTime / maxEndTime / likelyTime,
rebuilt as a receiver would, agree with the core's outputs to the tenth of a second; a
walk's and a pedestrian clearance's end times are the tenth at which its display changes.
"""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.config import config_from_dict
from edge.control.controller import Controller
from edge.control.messages import Flash, Inputs, Lamp, Outputs, Preempt
from edge.demand import RandomDemand
from edge.j2735.publisher import Publisher
from edge.j2735.signals import ped_ends

from tests.j2735.decode import absolute, decode, now_ms

ROOT = Path(__file__).resolve().parents[2]
# The hour boundary falls 100 s into the run, in free operation: greens end in the next
# hour from before it.
UTC0 = round(datetime.datetime(2026, 3, 1, 7, 58, 20, tzinfo=datetime.UTC).timestamp() * 1000)
FLASH_MODES = {"startup_flash", "flash", "fault_flash"}

VEH = {
    Lamp.GREEN: "protected-Movement-Allowed",
    Lamp.YELLOW: "protected-clearance",
    Lamp.RED: "stop-And-Remain",
    Lamp.DARK: "dark",
}
VEH_FLASH = {
    Lamp.FLASH_RED: "stop-Then-Proceed",
    Lamp.FLASH_YELLOW: "caution-Conflicting-Traffic",
    Lamp.DARK: "dark",
}
PERMISSIVE = {
    Lamp.GREEN: "permissive-Movement-Allowed",
    Lamp.YELLOW: "permissive-clearance",
}
PED = {
    Lamp.GREEN: "protected-Movement-Allowed",
    Lamp.FLASH_RED: "protected-clearance",
    Lamp.RED: "stop-And-Remain",
    Lamp.DARK: "dark",
}


@dataclass
class Seen:
    messages: int = 0
    maps: int = 0
    next_hour: int = 0  # end times that lie in the hour after the message's
    states: dict[int, set[str]] = field(default_factory=dict)
    preempt_bits: int = 0
    # per pedestrian group: (its state, the end times announced while shown, preempted)
    ped_shown: dict[int, tuple[str, set[int | None], bool]] = field(default_factory=dict)
    ped_ends_checked: int = 0


def expected_end(t_ms: int | None, now: int) -> int | None:
    return None if t_ms is None else UTC0 + max(t_ms, now - UTC0)


def check_times(timing: dict[str, int], mn: int | None, mx: int | None, lk: int | None,
                now: int, seen: Seen) -> None:  # fmt: skip
    got = absolute(timing["minEndTime"], now)
    assert got == expected_end(mn, now), (timing, mn, now)
    for key, want in (("maxEndTime", mx), ("likelyTime", lk)):
        if want is None:
            assert key not in timing
            continue
        want = max(want, mn or 0) if key == "maxEndTime" else want
        assert absolute(timing[key], now) == expected_end(want, now), (key, timing, want)
    if got is not None and got // 3_600_000 > now // 3_600_000:
        seen.next_hour += 1


def check_ped(group: int, ev: dict[str, Any], now: int, seen: Seen, preempting: bool) -> None:
    """A walk's or clearance's end times: one, known, and when its display changes."""
    state, timing = ev["eventState"], ev["timing"]
    end = absolute(timing["minEndTime"], now)
    if state in ("protected-Movement-Allowed", "protected-clearance"):
        assert end is not None, (group, state, timing)
        assert timing.get("maxEndTime") == timing.get("likelyTime") == timing["minEndTime"]
    else:
        assert end is None, (group, state, timing)
    last = seen.ped_shown.get(group)
    if last is not None and last[0] != state:  # the display changed: at the end it gave
        was, ends, preempted = last
        if was != "stop-And-Remain" and was != "dark" and not preempted:
            assert ends == {now}, (group, was, sorted(e or 0 for e in ends), now)
            seen.ped_ends_checked += 1
        last = None
    if last is None:
        last = (state, set(), preempting)
    last[1].add(end)
    seen.ped_shown[group] = (state, last[1], last[2] or preempting)


def check_spat(site: Any, out: Outputs, spat: dict[str, Any], seen: Seen, preempting: bool) -> None:
    (inter,) = spat["intersections"]
    now = now_ms(2026, inter["moy"], inter["timeStamp"])
    assert now == UTC0 + out.t_ms
    assert spat["timeStamp"] == inter["moy"]
    status, nbits = inter["status"]
    assert nbits == 16
    assert bool(status & (1 << (15 - 3))) == preempting  # preemptIsActive
    assert bool(status & (1 << (15 - 2))) == (out.mode == "fault_flash")  # failureFlash
    seen.preempt_bits += preempting
    by_group = {m["signalGroup"]: m["state-time-speed"] for m in inter["states"]}
    flash = out.mode in FLASH_MODES
    for i, p in enumerate(site.phases):
        (ev,) = by_group.pop(p.id)
        want = (VEH_FLASH if flash else VEH)[out.phases[i]]
        assert ev["eventState"] == want, (p.id, out.mode, out.phases[i])
        t = out.spat[i]
        check_times(ev["timing"], t.min_end_ms, t.max_end_ms, t.likely_end_ms, now, seen)
        seen.states.setdefault(p.id, set()).add(want)
        if p.permissive:  # its permissive movements: their own group, permissive states
            (perm,) = by_group.pop(60 + p.id)
            lamp = out.phases[i]
            if flash:
                assert perm["eventState"] == VEH_FLASH[lamp]
            else:
                assert perm["eventState"] == PERMISSIVE.get(lamp, VEH[lamp])
                check_times(perm["timing"], t.min_end_ms, t.max_end_ms, t.likely_end_ms, now,
                            seen)  # fmt: skip
            seen.states.setdefault(60 + p.id, set()).add(perm["eventState"])
        if p.ped_crossing:
            (ped,) = by_group.pop(40 + p.id)
            assert ped["eventState"] == PED[out.peds[i]]
            check_ped(40 + p.id, ped, now, seen, preempting)
            seen.states.setdefault(40 + p.id, set()).add(ped["eventState"])
    for k, ov in enumerate(site.overlaps):
        (ev,) = by_group.pop(21 + k)
        lamp = out.overlaps[k]
        if flash:
            assert ev["eventState"] == VEH_FLASH[lamp]
        elif lamp == Lamp.FLASH_YELLOW:
            assert ev["eventState"] == "permissive-Movement-Allowed"
            i = [p.id for p in site.phases].index(ov.permissive_parents[0])
            t = out.spat[i]
            check_times(ev["timing"], t.min_end_ms, t.max_end_ms, t.likely_end_ms, now, seen)
        elif lamp == Lamp.YELLOW:
            assert ev["eventState"] in ("protected-clearance", "permissive-clearance")
        else:
            assert ev["eventState"] == VEH[lamp]
        seen.states.setdefault(21 + k, set()).add(ev["eventState"])
    assert not by_group, f"signal groups nobody expected: {sorted(by_group)}"
    seen.messages += 1


def run(
    site_file: str,
    seconds: int,
    commands: dict[int, tuple[object, ...]],
    permissive: dict[int, list[str]] | None = None,
) -> Seen:
    raw = tomllib.loads((ROOT / site_file).read_text())
    for p in raw["phases"]:
        p["permissive"] = (permissive or {}).get(p["id"], p.get("permissive", []))
    site = config_from_dict(raw, site_file).site
    ctl = Controller(site, 0)
    demand = RandomDemand(site, seed=5, veh_per_hour=700)
    pub = Publisher(site, None, UTC0)
    seen = Seen()
    preempting = False
    out = None
    for t in range(0, seconds * 1000, 100):
        inputs = demand.inputs(t, 100, out)
        if t in commands:
            inputs = Inputs(inputs.occupied, inputs.actuations, commands[t])
        out = ctl.step(t, inputs)
        for ev in out.events:
            if ev.name == "preempt_enter":
                preempting = True
            elif ev.name == "preempt_exit":
                preempting = False
        frames = pub.step(out, ped_ends(ctl.status()))
        assert len(frames) == 1  # SPaT every tick; no MAP without geometry
        msg_id, spat = decode(frames[0])
        assert msg_id == 19
        check_spat(site, out, spat, seen, preempting)
        flash_states = {"stop-Then-Proceed", "caution-Conflicting-Traffic"}
        shown = {m["state-time-speed"][0]["eventState"] for m in spat["intersections"][0]["states"]}
        assert bool(shown & flash_states) <= (out.mode in FLASH_MODES)
    return seen


def test_spat_across_an_hour_with_preemption_and_flash_agrees_with_the_core() -> None:
    commands: dict[int, tuple[object, ...]] = {
        150_000: (Preempt(1),),
        185_000: (Preempt(1, on=False),),
        240_000: (Flash(),),
        270_000: (Flash(on=False),),
    }
    seen = run("examples/four_leg_protected.toml", 300, commands)
    assert seen.messages == 3000
    assert seen.next_hour > 0, "no end time crossed the hour"
    assert seen.preempt_bits > 50, "the preemption was not in the SPaT"
    assert "caution-Conflicting-Traffic" in seen.states[2]  # the operator flash: yellow
    assert "stop-Then-Proceed" in seen.states[4]  # and red on the side street
    assert "protected-Movement-Allowed" in seen.states[42]  # a walk
    assert seen.ped_ends_checked >= 6, "no walk or clearance ended"


def test_a_flashing_yellow_arrow_is_permissive_its_arrow_protected() -> None:
    seen = run("examples/t_junction.toml", 180, {})
    fya = seen.states[22]  # overlap B, the westbound left
    assert {"protected-Movement-Allowed", "permissive-Movement-Allowed"} <= fya
    assert "caution-Conflicting-Traffic" not in fya  # flash only in flash
    assert seen.ped_ends_checked >= 2, "no walk or clearance ended"


def test_a_phase_s_permissive_left_is_its_own_permissive_group() -> None:
    # phase 2's green ball (the eastbound through) also lets the eastbound left go, yielding
    seen = run("examples/four_leg_protected.toml", 120, {}, permissive={2: ["W.L"]})
    assert {"permissive-Movement-Allowed", "permissive-clearance"} <= seen.states[62]
    assert "protected-Movement-Allowed" in seen.states[2]
