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
from sim.sumo.loops import Loops, loop_elements, loop_id
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
        self.predictor: _Predictor | None = None

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
        if self.use_detectors and _HOLD_S + _CALL_S > 0:
            self.predictor = _Predictor(self.derivations)

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
        if self.predictor is not None:
            self.predictor.update(sim, self.signals)
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
        ev, tsp = self.emergency, self.transit
        for s in self.signals:
            cmds: tuple[object, ...] = ()
            if now:  # sampled at the step's end: the tick at that time takes them
                cmds = (ev.take(s.tls) if ev is not None else ()) + s.commands
                if tsp is not None:
                    cmds += tsp.take(s.tls)
                s.commands = ()
                s.occupied = self.buttons.pressed.get(s.tls, frozenset())
            inputs = NO_INPUTS
            if s.detectors:
                occupied = self.loops.occupied(s.tls, t_ms)
                inputs = Inputs(
                    occupied=occupied | s.occupied if s.occupied else occupied, commands=cmds
                )
            elif cmds:
                inputs = Inputs(commands=cmds)
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


# --- PROTOTYPE: predicted arrivals from the neighbours (an oracle upper bound) ---------
import os  # noqa: E402

from sim.sumo.derive import LinkBinding as LinkBindingT  # noqa: E402

_HOLD_S = float(os.environ.get("EDGE_NB_HOLD_S", "0"))
_CALL_S = float(os.environ.get("EDGE_NB_CALL_S", "0"))
_MIN_DIST_M = float(os.environ.get("EDGE_NB_MIN_DIST_M", "10"))
_VFRAC = float(os.environ.get("EDGE_NB_VFRAC", "0.7"))
_K = float(os.environ.get("EDGE_NB_K", "0"))
_REAL = os.environ.get("EDGE_NB_REAL", "0") == "1"
_CAP_MS = int(float(os.environ.get("EDGE_NB_CAP_S", "0")) * 1000)
_SAT = os.environ.get("EDGE_NB_SAT", "0") == "1"
_SOFT = os.environ.get("EDGE_NB_SOFT", "0") == "1"
_ALL = os.environ.get("EDGE_NB_ALL", "0") == "1"  # every approach, not only links from a signal


class _Predictor:
    """Vehicles moving on the links between signals, with the phase that serves them next."""

    def __init__(self, derivations: list[Derivation]) -> None:
        self.index = {d.tls: k for k, d in enumerate(derivations)}
        self.bits: dict[tuple[str, int], tuple[int, int]] = {}
        for d in derivations:
            pos = {p.id: k for k, p in enumerate(d.site.phases)}
            for b in d.links:
                if b.phase is None or b.crossing or b.phase not in pos:
                    continue
                call = 1 << pos[b.phase]
                hold = call
                if b.permissive_phase is not None and b.permissive_phase in pos:
                    hold |= 1 << pos[b.permissive_phase]
                self.bits[(d.tls, b.index)] = (hold, call)
        if _REAL:  # no route known: every vehicle of an approach for its through phase(s)
            by_edge: dict[tuple[str, str], list[LinkBindingT]] = {}
            for d in derivations:
                for b in d.links:
                    if (d.tls, b.index) in self.bits:
                        by_edge.setdefault((d.tls, b.from_lane.rsplit("_", 1)[0]), []).append(b)
            approach: dict[tuple[str, str], tuple[int, int]] = {}
            for (tls, _e), bs in by_edge.items():
                thr = [b for b in bs if b.movement.endswith(".T")] or bs
                h = c = 0
                for b in thr:
                    h |= self.bits[(tls, b.index)][0]
                    c |= self.bits[(tls, b.index)][1]
                for b in bs:
                    approach[(tls, b.index)] = (h, c)
            self.bits = approach
        out_edges: set[str] = set()
        in_edges: dict[str, float] = {}
        for d in derivations:
            for a in d.arms:
                pass
        from sim.sumo.network import signal_junctions

        self.edges: dict[str, float] = {}
        self._net_edges = (out_edges, in_edges)
        self._derivs = derivations
        self._ready = False

    def setup(self, sim: Any) -> None:
        pass

    def update(self, sim: Any, signals: list[_Signal]) -> None:
        if not self._ready:
            self._init_edges(sim)
            self._ready = True
        n = len(signals)
        hold = [0] * n
        call = [0] * n
        counts = [[0] * len(s.site.phases) for s in signals]
        for edge, vmax in self.edges.items():
            for v in sim.edge.getLastStepVehicleIDs(edge):
                speed = sim.vehicle.getSpeed(v)
                if speed < 2.0 and not _REAL:
                    continue
                nxt = sim.vehicle.getNextTLS(v)
                if not nxt:
                    continue
                tls, link, dist, _state = nxt[0]
                if dist < _MIN_DIST_M:
                    continue
                bits = self.bits.get((tls, link))
                if bits is None:
                    continue
                eta = dist / vmax if _REAL else dist / max(speed, _VFRAC * vmax)
                k = self.index[tls]
                if eta <= _HOLD_S:
                    hold[k] |= bits[0]
                    b = bits[0]
                    while b:
                        low = b & -b
                        counts[k][low.bit_length() - 1] += 1
                        b ^= low
                if eta <= _CALL_S:
                    call[k] |= bits[1]
        for k, s in enumerate(signals):
            c = s.controller
            c.pred_k = _K
            c.pred_sat = _SAT
            c.pred_cap_ms = _CAP_MS
            if c.pred_hold != hold[k] or c.pred_call != call[k] or c.pred_n != counts[k]:
                c.pred_hold, c.pred_call, c.pred_n = hold[k], call[k], counts[k]
                c.pred_soft = _SOFT
                c.deadline = 0  # re-evaluate at the next tick
            elif hold[k] and _CAP_MS:
                c.deadline = 0  # a capped hold may have run out

    def _init_edges(self, sim: Any) -> None:
        # Walk back from each approach through plain nodes (pocket starts) to a signal.
        signals = {d.tls for d in self._derivs}
        for d in self._derivs:
            signals.update(sim.trafficlight.getControlledJunctions(d.tls))
        incoming: set[str] = set()
        for d in self._derivs:
            for lane in sim.trafficlight.getControlledLanes(d.tls):
                incoming.add(lane.rsplit("_", 1)[0])
        for e in incoming:
            path = [e]
            node = sim.edge.getFromJunction(e)
            seen = {sim.edge.getToJunction(e), node}
            while node not in signals and len(path) < 4:
                ins = [x for x in sim.junction.getIncomingEdges(node) if not x.startswith(":")]
                if len(ins) != 1 or sim.edge.getFromJunction(ins[0]) in seen:
                    break  # a junction, or a dead end turning back
                path.append(ins[0])
                node = sim.edge.getFromJunction(ins[0])
                seen.add(node)
            if node in signals or _ALL:
                for x in path:
                    self.edges[x] = sim.lane.getMaxSpeed(x + "_0")
