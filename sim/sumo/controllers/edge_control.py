"""The project's own controller (edge.control) on every signal, stepped directly.

Each signal gets a `Controller` built from its derived site. Every 100 ms the
loops (sim/sumo/loops.py: SUMO induction loops with the detectors' positions
and lengths, a stop-bar loop per incoming lane and, where the lane is long
enough, a setback loop upstream) and the crossings' push buttons (pressed by
SUMO's pedestrians, push_buttons.py) give the detector presence, the
controller steps, and its channel outputs (the load-switch map the IO board
would drive) become the SUMO link states.

The controller's ticks run behind SUMO: once SUMO has run a step (T - S, T],
the ticks inside it, T - S + 100 ... T, run, each on what the loops showed
in its own 100 ms (as a board sampling its inputs at 10 Hz sees them: every
vehicle, no latency, nothing from after the tick). Push buttons and
emergency and transit requests are sampled at T and reach the tick at T.
The tick at T's displays show in SUMO for the next step (sample and hold,
as the runner shows them: sim/sumo/controllers/base.py), so a change decided
inside a step shows at its end, up to 0.9 s late at 1 s steps, never early.
The `webster` baseline reuses this with a fixed-time plan and no detectors;
`edge-adaptive` runs the same controllers switched to the adaptive mode
(`SetMode("adaptive")` at the first step, as a technician would locally);
`edge-neighbours` runs them as `edge` plus the neighbours' predicted arrivals
(sim/sumo/neighbours.py: projected from upstream stop-bar releases).
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
from sim.sumo.loops import Loops, loop_elements, loop_id
from sim.sumo.neighbours import Neighbours
from sim.sumo.scenarios import Scenario
from sim.sumo.transit import TransitFeed

TICK_MS = 100

detector_sumo_id = loop_id  # the SUMO id of a derived detector (sim/realtime.py uses it too)


@dataclass(slots=True)
class _Signal:
    tls: str
    site: Site
    controller: Controller
    renderer: LinkRenderer
    detectors: list[tuple[int, str]]  # (detector id, SUMO detector id)
    occupied: frozenset[int] = frozenset()  # push buttons pressed (the loops are per tick)
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
        self.loops = Loops(derivations if self.use_detectors else [])
        self.last_tick_ms: int | None = None  # the latest controller tick run
        self.signals: list[_Signal] = []
        self.fault_events: list[str] = []
        # Emergency vehicles -> the preempts of their approach (None: not traced).
        self.emergency: EmergencyFeed | None = None
        # Buses -> transit priority on their approach (None: not traced).
        self.transit: TransitFeed | None = None
        # Called after every step of every signal (sim/sumo/hireslog.py: --hires-log).
        self.on_step: Callable[[_Signal, int, Outputs], None] | None = None
        # Predicted arrivals from upstream releases (`edge-neighbours`; None: not sent).
        self.neighbours: Neighbours | None = None

    def prepare(self, scenario: Scenario, workdir: Path) -> list[Path]:
        if not self.use_detectors:
            return []
        elements = loop_elements(self.derivations)
        return [write_additional(workdir / "edge_detectors.add.xml", elements)]

    def start(self, sim: Any, t_ms: int) -> None:
        self.buttons.start(sim)
        if self.use_detectors:
            self.loops.start(sim)
        for d, site in zip(self.derivations, self.sites, strict=True):
            dets = [(det.id, detector_sumo_id(d.tls, det.id)) for det in d.detectors]
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
        # Every tick of the step SUMO has just run, at once (the module's docstring).
        if not sensed:
            return
        last = self.last_tick_ms
        ticks = [t_ms] if last is None else list(range(last + TICK_MS, t_ms + 1, TICK_MS))
        self.last_tick_ms = t_ms
        if self.use_detectors:
            self.loops.update(sim, t_ms)
            self.buttons.update(sim)
        ev, tsp = self.emergency, self.transit
        if ev is not None:
            ev.update(sim)
        if tsp is not None:
            tsp.update(sim)
        for tick in ticks:
            self._tick(tick, now=tick == t_ms)

    def finish(self, sim: Any, t_ms: int) -> None:
        """At the run's end (t_ms): the ticks of the last step SUMO ran, before t_ms, so
        a run of N s has ticked all of its N s (what `edge j2735 --sim` publishes)."""
        last = self.last_tick_ms
        ticks = [] if last is None else list(range(last + TICK_MS, t_ms, TICK_MS))
        if not ticks:
            return
        if self.use_detectors:
            self.loops.update(sim, t_ms)
        for tick in ticks:
            self._tick(tick, now=False)
        self.last_tick_ms = ticks[-1]

    def _tick(self, t_ms: int, now: bool) -> None:
        ev, tsp, nb = self.emergency, self.transit, self.neighbours
        for s in self.signals:
            cmds: tuple[object, ...] = ()
            if now:  # sampled at the step's end: the tick at that time takes them
                cmds = (ev.take(s.tls) if ev is not None else ()) + s.commands
                if tsp is not None:
                    cmds += tsp.take(s.tls)
                s.commands = ()
                s.occupied = self.buttons.pressed.get(s.tls, frozenset())
            inputs = NO_INPUTS
            occupied = frozenset[int]()
            if s.detectors:
                occupied = self.loops.occupied(s.tls, t_ms)
                inputs = Inputs(
                    occupied=occupied | s.occupied if s.occupied else occupied,
                    commands=cmds,
                    arrivals=nb.take(s.tls, t_ms) if nb is not None else None,
                )
            elif cmds:
                inputs = Inputs(commands=cmds)
            out = s.controller.step(t_ms, inputs)
            if nb is not None:
                nb.released(s.tls, t_ms, occupied, out.phases)
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
