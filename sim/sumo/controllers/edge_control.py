"""The project's own controller (edge.control) on every signal, stepped directly.

Each signal gets a `Controller` built from its derived site. Every 100 ms the
loops (SUMO lane-area detectors: a stop-bar loop per incoming lane and, where
the lane is long enough, a setback loop upstream) and the crossings' push
buttons (pressed by SUMO's pedestrians, push_buttons.py) give the detector presence,
the controller steps, and its channel outputs (the load-switch map the IO
board would drive) become the SUMO link states.
The `webster` baseline reuses this with a fixed-time plan and no detectors;
`edge-adaptive` runs the same controllers switched to the adaptive mode
(`SetMode("adaptive")` at the first step, as a technician would locally).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.control.controller import Controller
from edge.control.messages import NO_INPUTS, Inputs, Lamp, Outputs, SetMode
from edge.control.site import Site

from sim.sumo.controllers.base import LinkRenderer, write_additional
from sim.sumo.controllers.push_buttons import PushButtons
from sim.sumo.derive import Derivation
from sim.sumo.emergency import EmergencyFeed
from sim.sumo.scenarios import Scenario
from sim.sumo.transit import TransitFeed

_LAST_STEP_VEHICLE_NUMBER = 0x10  # traci constant, same value for libsumo


def detector_sumo_id(tls: str, det_id: int) -> str:
    return f"edge.{tls}.{det_id}"


@dataclass(slots=True)
class _Signal:
    tls: str
    site: Site
    controller: Controller
    renderer: LinkRenderer
    detectors: list[tuple[int, str]]  # (detector id, SUMO detector id)
    occupied: frozenset[int] = frozenset()
    channels: tuple[Lamp, ...] = ()
    last_channels: tuple[Lamp, ...] | None = None
    last_state: str = ""
    commands: tuple[object, ...] = ()  # sent with the next step
    barriers: int = 0  # barrier crossings, for the mean cycle


class EdgeControl:
    def __init__(
        self,
        derivations: list[Derivation],
        sites: list[Site] | None = None,
        name: str = "edge",
        notes: list[str] | None = None,
        mode: str | None = None,
    ) -> None:
        self.name = name
        self.mode = mode  # a control mode to switch every signal to at the start
        self.extra_notes = notes or []
        self.derivations = derivations
        self.sites = sites or [d.site for d in derivations]
        self.use_detectors = sites is None
        self.buttons = PushButtons(derivations if self.use_detectors else [])
        self.signals: list[_Signal] = []
        self.fault_events: list[str] = []
        # Emergency vehicles -> the preempts of their approach (None: not traced).
        self.emergency: EmergencyFeed | None = None
        # Buses -> transit priority on their approach (None: not traced).
        self.transit: TransitFeed | None = None
        # Called after every step of every signal (sim/sumo/hireslog.py: --hires-log).
        self.on_step: Callable[[_Signal, int, Outputs], None] | None = None

    def prepare(self, scenario: Scenario, workdir: Path) -> list[Path]:
        if not self.use_detectors:
            return []
        elements = []
        for d in self.derivations:
            for det in d.detectors:
                elements.append(
                    f'<laneAreaDetector id="{detector_sumo_id(d.tls, det.id)}" lane="{det.lane}" '
                    f'pos="{det.pos_m:.2f}" length="{det.length_m:.2f}" period="86400" '
                    'file="NUL" friendlyPos="true"/>'
                )
        return [write_additional(workdir / "edge_detectors.add.xml", elements)]

    def start(self, sim: Any, t_ms: int) -> None:
        self.buttons.start(sim)
        for d, site in zip(self.derivations, self.sites, strict=True):
            dets = [(det.id, detector_sumo_id(d.tls, det.id)) for det in d.detectors]
            if self.use_detectors:
                for _, sumo_id in dets:
                    sim.lanearea.subscribe(sumo_id, [_LAST_STEP_VEHICLE_NUMBER])
            self.signals.append(
                _Signal(
                    tls=d.tls,
                    site=site,
                    controller=Controller(site, now_ms=t_ms),
                    renderer=LinkRenderer(d.links, [ch.id for ch in site.channels]),
                    detectors=dets if self.use_detectors else [],
                    commands=(SetMode(self.mode, "sim"),) if self.mode else (),
                )
            )

    def step(self, sim: Any, t_ms: int, sensed: bool) -> None:
        if sensed and self.use_detectors:
            results = sim.lanearea.getAllSubscriptionResults()
            self.buttons.update(sim)
            for s in self.signals:
                s.occupied = self.buttons.pressed[s.tls] | frozenset(
                    det_id
                    for det_id, sumo_id in s.detectors
                    if results.get(sumo_id, {}).get(_LAST_STEP_VEHICLE_NUMBER, 0) > 0
                )
        ev, tsp = self.emergency, self.transit
        if sensed and ev is not None:
            ev.update(sim)
        if sensed and tsp is not None:
            tsp.update(sim)
        for s in self.signals:
            cmds = (ev.take(s.tls) if ev is not None else ()) + s.commands
            if tsp is not None:
                cmds += tsp.take(s.tls)
            s.commands = ()
            inputs = (
                Inputs(occupied=s.occupied, commands=cmds) if s.detectors or cmds else NO_INPUTS
            )
            out = s.controller.step(t_ms, inputs)
            if self.on_step is not None:
                self.on_step(s, t_ms, out)
            s.channels = out.channels
            s.barriers += sum(1 for e in out.events if e.name == "barrier_cross")
            if out.fault is not None and not self.fault_events:
                self.fault_events.append(
                    f"{s.tls}: fault flash at {t_ms / 1000:.1f} s: {out.fault}"
                )

    def apply(self, sim: Any) -> None:
        for s in self.signals:
            if s.channels is s.last_channels or s.channels == s.last_channels:
                continue
            s.last_channels = s.channels
            state = s.renderer.render(s.channels)
            if state != s.last_state:
                sim.trafficlight.setRedYellowGreenState(s.tls, state)
                s.last_state = state

    def cycles_s(self, simulated_s: float) -> dict[str, float]:
        """Each signal's mean cycle: every barrier group served once per cycle."""
        out = {}
        for s in self.signals:
            groups = len({p.group for p in s.site.phases})
            if groups > 1 and s.barriers:
                out[s.tls] = simulated_s * groups / s.barriers
        return out

    def notes(self) -> list[str]:
        out = [f"{d.tls}: {n}" for d in self.derivations for n in d.notes]
        return out + self.extra_notes + self.fault_events
