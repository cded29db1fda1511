"""The core's events and the detectors' state as Indiana codes (edge/atspm/indiana.py)."""

from __future__ import annotations

import random
import re
from pathlib import Path

from edge.atspm import indiana as ind
from edge.atspm.indiana import HiRes, Translator, tenths
from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Event, Flash, Inputs, Omit, Preempt, Recover

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "edge" / "control"
PROTECTED = ROOT / "examples" / "four_leg_protected.toml"


def core_event_names() -> set[str]:
    """Every event name the core's source can emit (a literal name, or a table's)."""
    names: set[str] = set()
    for path in CORE.glob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'_event\(\s*\w+,\s*"(\w+)"', text))
        names |= set(re.findall(r'Event\(\s*\w+,\s*"(\w+)"', text))
        names |= {f"transit_{k.lower()}" for k in re.findall(r"^(EARLY|EXTEND) = ", text, re.M)}
        for table in re.findall(r"_FYA_EVENTS = \{(.*?)\}", text, re.S):
            names |= set(re.findall(r'"(\w+)"', table))
    # _start_yellow logs its reason ("gap_out", "max_out", "force_off") by name
    names |= {"gap_out", "max_out", "force_off"}
    return names


def test_every_event_the_core_emits_has_a_code() -> None:
    names = core_event_names()
    assert {"phase_green", "preempt_enter", "overlap_flashing_yellow", "mode"} <= names
    assert names - set(ind.EVENT_CODES) == set()


def test_codes_are_the_standard_ones_or_the_device_extras() -> None:
    standard = set(range(0, 219))
    for name, codes in ind.EVENT_CODES.items():
        for c in codes:
            assert c in standard or ind.EXTRA_FIRST <= c <= ind.EXTRA_LAST, (name, c)
    extras = [v for k, v in vars(ind).items() if k.isupper() and isinstance(v, int) and v >= 219]
    assert all(ind.EXTRA_FIRST <= v <= ind.EXTRA_LAST or v == 254 for v in extras)


def test_phase_and_ped_events_map_as_the_enumerations_say() -> None:
    site = load_site(PROTECTED)
    tr = Translator(site)

    def ev(name: str, subject: str) -> list[HiRes]:
        return tr.event(Event(1234, name, subject))

    assert ev("phase_green", "phase 2") == [HiRes(1200, 1, 2)]
    assert ev("gap_out", "phase 4") == [HiRes(1200, 4, 4)]
    assert ev("max_out", "phase 4") == [HiRes(1200, 5, 4)]
    assert ev("force_off", "phase 6") == [HiRes(1200, 6, 6)]
    assert [e.code for e in ev("phase_yellow", "phase 2")] == [7, 8]
    assert [e.code for e in ev("phase_red_clear", "phase 2")] == [9, 10]
    assert [e.code for e in ev("phase_red", "phase 2")] == [11, 12]
    assert ev("ped_walk", "phase 4") == [HiRes(1200, 21, 4)]
    assert ev("ped_clear", "phase 4") == [HiRes(1200, 22, 4)]
    assert ev("ped_dont_walk", "phase 4") == [HiRes(1200, 23, 4)]
    assert ev("preempt_request", "preempt 1") == [HiRes(1200, 102, 1)]
    assert ev("preempt_enter", "preempt 1") == [HiRes(1200, 105, 1)]
    assert ev("preempt_dwell", "preempt 1") == [HiRes(1200, 107, 1)]
    assert ev("preempt_exit", "preempt 1") == [HiRes(1200, 111, 1)]
    assert ev("detector_fault", "detector 3") == [HiRes(1200, 84, 3)]
    assert ev("fault_flash", "") == [HiRes(1200, 173, 5), HiRes(1200, 200, 1)]


def test_tenths_round_to_the_nearest_tenth() -> None:
    assert [tenths(t) for t in (0, 49, 50, 149, 150, 1_000_049)] == [0, 0, 100, 100, 200, 1_000_000]


def test_detectors_peds_and_calls_come_from_the_state_tick_to_tick() -> None:
    site = load_site(PROTECTED)
    tr = Translator(site)
    dets = site.detectors
    n, m = len(dets), len(site.phases)
    ped = next(k for k, d in enumerate(dets) if d.ped)
    car = next(k for k, d in enumerate(dets) if not d.ped)
    off, none = (False,) * n, (False,) * m
    assert tr.step(0, None, off, none) == []
    on = tuple(k in (ped, car) for k in range(n))
    calls = (True,) + (False,) * (m - 1)
    got = tr.step(100, None, on, calls)
    assert HiRes(100, 82, dets[car].id) in got
    assert HiRes(100, 90, dets[ped].id) in got
    assert [HiRes(100, 45, p) for p in dets[ped].calls] == [e for e in got if e.code == 45]
    assert HiRes(100, 43, site.phases[0].id) in got
    assert tr.step(200, None, on, calls) == []  # no change, no event
    got = tr.step(300, None, off, none)
    assert {e.code for e in got} == {81, 89, 44}


def test_a_flashing_yellow_arrow_ends_when_its_overlap_leaves_it() -> None:
    site = load_site(ROOT / "examples" / "four_leg_split.toml")
    tr = Translator(site)
    tr.overlap_no = {"A": 1}
    assert tr.event(Event(0, "overlap_flashing_yellow", "overlap A")) == [HiRes(0, 32, 1)]
    assert tr.event(Event(100, "overlap_green", "overlap A")) == [
        HiRes(100, 33, 1),
        HiRes(100, 61, 1),
    ]
    assert tr.event(Event(200, "overlap_yellow", "overlap A")) == [HiRes(200, 63, 1)]


def test_a_plan_logs_its_pattern_cycle_offset_and_splits() -> None:
    site = load_site(PROTECTED)
    coordinated = [pid for pid, p in site.plans.items() if p.pattern is not None]
    free = [pid for pid, p in site.plans.items() if p.pattern is None]
    tr = Translator(site)
    for pid in free:
        assert tr.pattern(0, pid) == [HiRes(0, 131, 254)]
    for pid in coordinated:
        pat = site.plans[pid].pattern
        assert pat is not None
        got = {e.code: e.param for e in tr.pattern(0, pid)}
        assert got[131] == list(site.plans).index(pid) + 1
        assert got[132] == round(pat.cycle_ms / 1000)
        for phase, split in pat.splits_ms.items():
            assert got[133 + phase] == round(split / 1000)


def test_a_controller_run_logs_only_mapped_events_in_time_order() -> None:
    """Minutes of random traffic, a preempt, operator flash and recovery: every core event
    is translated (none falls through), times never go back, parameters fit."""
    site = load_site(PROTECTED)
    ctl = Controller(site, now_ms=0)
    tr = Translator(site, ctl.plan.id)
    rng = random.Random(7)
    ids = [d.id for d in site.detectors]
    logged: list[HiRes] = []
    seen: set[str] = set()
    for k in range(1, 6000):
        t = k * 100
        cmds: tuple[object, ...] = ()
        if k == 2000 and site.preempts:
            cmds = (Preempt(site.preempts[0].id),)
        if k == 2600 and site.preempts:
            cmds = (Preempt(site.preempts[0].id, on=False),)
        if k == 3000:
            cmds = (Omit(site.phases[0].id),)
        if k == 4000:
            cmds = (Flash(),)
        if k == 4500:
            cmds = (Flash(on=False), Recover())
        occupied = frozenset(i for i in ids if rng.random() < 0.15)
        out = ctl.step(t, Inputs(occupied=occupied, commands=cmds))
        for e in out.events:
            seen.add(e.name)
            assert e.name in ind.EVENT_CODES, e
        present = tuple(bool(p) for p in ctl.det_present)
        logged += tr.step(t, out, present, tuple(bool(c) for c in ctl.vcall))
    assert {"phase_green", "phase_yellow", "ped_walk", "mode"} <= seen
    assert [e.t_ms for e in logged] == sorted(e.t_ms for e in logged)
    assert all(0 <= e.param <= 255 and 0 <= e.code <= 255 for e in logged)
    codes = {e.code for e in logged}
    assert {1, 8, 10, 11, 21, 22, 23, 81, 82, 43, 173} <= codes
