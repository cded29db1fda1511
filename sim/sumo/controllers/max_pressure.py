"""Max-pressure control (Varaiya) over the derived phasing, with safe transitions.

Stages are the sets of phases the derived ring-barrier structure lets time
together (one phase per ring within a barrier group), so a stage never holds
conflicting movements. Pressure of a stage: over each incoming lane it serves,
vehicles on the lane minus the mean on the lanes it feeds. After a minimum
green of 10 s the controller looks every second and moves to the stage of
highest pressure when that beats the current one: links that stop go yellow
(the phase's yellow, >= 3 s), then red clearance, then the new stage starts.
Links green in both stages stay green.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.sumo.derive import Derivation, LinkBinding
from sim.sumo.scenarios import Scenario

MIN_GREEN_MS = 10_000
DECISION_MS = 1_000
_LAST_STEP_VEHICLE_NUMBER = 0x10
GREEN, YELLOW, ALL_RED = 0, 1, 2


@dataclass(slots=True)
class _Signal:
    d: Derivation
    stages: list[frozenset[int]]
    # per from-lane: the stage-independent (phase, to_lanes) it serves
    lane_moves: dict[str, list[tuple[int, str]]]
    stage: int = 0
    next_stage: int = 0
    mode: int = GREEN
    since_ms: int = 0
    until_ms: int = 0
    last_state: str = ""
    dirty: bool = True
    switches: int = 0
    timing: dict[int, tuple[int, int]] = field(default_factory=dict)  # yellow, red ms
    ped: dict[int, tuple[int, int]] = field(default_factory=dict)  # walk, ped clearance ms


def stages_of(d: Derivation) -> list[frozenset[int]]:
    by_group: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for p in d.site.phases:
        by_group[p.group][p.ring].append(p.id)
    out: list[frozenset[int]] = []
    for g in sorted(by_group):
        rings = [by_group[g][r] for r in sorted(by_group[g])]
        for combo in itertools.product(*rings):
            stage = frozenset(combo)
            if stage not in out:
                out.append(stage)
    return out


def _open(b: LinkBinding, stage: frozenset[int]) -> str | None:
    """How a link shows in a stage: 'G', 'g' (yielding, or a flashing yellow arrow) or None."""
    if b.phase is not None and b.phase in stage:
        return "G" if b.protected else "g"
    if b.permissive_phase is not None and b.permissive_phase in stage:
        return "g"
    return None


class MaxPressure:
    name = "max-pressure"

    def __init__(self, derivations: list[Derivation]) -> None:
        self.derivations = derivations
        self.signals: list[_Signal] = []
        self._t_ms = 0

    def prepare(self, scenario: Scenario, workdir: Path) -> list[Path]:
        return []

    def start(self, sim: Any, t_ms: int) -> None:
        lanes: set[str] = set()
        for d in self.derivations:
            moves: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for b in d.links:
                for pid in (b.phase, b.permissive_phase):
                    if pid is not None and b.from_lane:
                        moves[b.from_lane].append((pid, b.to_lane))
                        lanes.update((b.from_lane, b.to_lane))
            plan = d.site.plans[d.site.default_plan]
            timing = {pid: (t.yellow_ms, t.red_clear_ms) for pid, t in plan.timings.items()}
            ped = {
                p.id: (plan.timings[p.id].walk_ms, plan.timings[p.id].ped_clear_ms)
                for p in d.site.phases
                if p.ped_crossing is not None
            }
            sig = _Signal(d, stages_of(d), dict(moves), since_ms=t_ms, timing=timing, ped=ped)
            self.signals.append(sig)
        for lane in sorted(lanes):
            sim.lane.subscribe(lane, [_LAST_STEP_VEHICLE_NUMBER])

    def _pressure(self, s: _Signal, stage: frozenset[int], counts: dict[str, Any]) -> float:
        total = 0.0
        for lane, moves in s.lane_moves.items():
            outs = [to for pid, to in moves if pid in stage]
            if not outs:
                continue
            q_in = counts.get(lane, {}).get(_LAST_STEP_VEHICLE_NUMBER, 0)
            q_out = sum(counts.get(x, {}).get(_LAST_STEP_VEHICLE_NUMBER, 0) for x in outs)
            total += q_in - q_out / len(outs)
        return total

    def step(self, sim: Any, t_ms: int, sensed: bool) -> None:
        self._t_ms = t_ms
        counts: dict[str, Any] | None = None
        for s in self.signals:
            changed = False
            if s.mode == GREEN:
                held = t_ms - s.since_ms
                if held in {s.ped[p][0] for p in s.stages[s.stage] if p in s.ped}:
                    changed = True  # a walk ends: its crossing shows don't walk
                # A stage with crosswalks holds until their walk and clearance are done.
                least = max(
                    [MIN_GREEN_MS] + [sum(s.ped[p]) for p in s.stages[s.stage] if p in s.ped]
                )
                if held >= least and held % DECISION_MS == 0 and len(s.stages) > 1:
                    if counts is None:
                        counts = sim.lane.getAllSubscriptionResults()
                    pressures = [self._pressure(s, st, counts) for st in s.stages]
                    best = max(range(len(s.stages)), key=lambda k: (pressures[k], -k))
                    if best != s.stage and pressures[best] > pressures[s.stage]:
                        leaving = s.stages[s.stage] - s.stages[best]
                        s.next_stage = best
                        s.mode = YELLOW
                        s.until_ms = t_ms + max(s.timing[p][0] for p in leaving)
                        changed = True
            elif s.mode == YELLOW and t_ms >= s.until_ms:
                leaving = s.stages[s.stage] - s.stages[s.next_stage]
                s.mode = ALL_RED
                s.until_ms = t_ms + max(s.timing[p][1] for p in leaving)
                changed = True
            elif s.mode == ALL_RED and t_ms >= s.until_ms:
                s.stage = s.next_stage
                s.mode = GREEN
                s.since_ms = t_ms
                s.switches += 1
                changed = True
            s.dirty = s.dirty or changed

    def apply(self, sim: Any) -> None:
        for s in self.signals:
            if s.dirty:
                self._show(sim, s)
                s.dirty = False

    def _show(self, sim: Any, s: _Signal) -> None:
        now = s.stages[s.stage]
        nxt = s.stages[s.next_stage] if s.mode != GREEN else now
        chars = []
        held = self._t_ms - s.since_ms
        for b in s.d.links:
            c_now, c_next = _open(b, now), _open(b, nxt)
            if b.crossing:  # walk from the stage's start, then don't walk
                walking = s.mode == GREEN and b.phase in s.ped and held < s.ped[b.phase][0]
                chars.append("G" if c_now is not None and walking else "r")
            elif c_now is not None and (s.mode == GREEN or c_now == c_next):
                chars.append(c_now)
            elif c_now is not None and s.mode == YELLOW:
                chars.append("y")
            else:
                chars.append("s" if b.right_on_red else "r")
        state = "".join(chars)
        if state != s.last_state:
            sim.trafficlight.setRedYellowGreenState(s.d.tls, state)
            s.last_state = state

    def notes(self) -> list[str]:
        return [f"{s.d.tls}: {s.switches} stage changes" for s in self.signals]
