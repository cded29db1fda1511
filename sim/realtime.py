"""`edge run --sim SCENARIO`: the real runtime against SUMO and a virtual board, in real time.

The same Runtime supervisor as on a device (edge/runtime.py) drives a
VirtualBoard (the hw/ firmware behind a real pty, on its own thread) through
its real serial code. One more named task, `sumo`, advances SUMO (libsumo)
in wall-clock time times `speed`, 0.1 s steps (the runtime's clock and the
board's firmware clock run at the same `speed`, so every interval is as
timed): every step the stop-bar detectors of the junction become the
board's raw inputs (the board debounces them and reports them in its STATUS,
as from loop cards), and the lamps the board drives become SUMO's signal
state. The board's lamps, not the
controller's wishes, are what traffic sees: a flash shows in SUMO as an
all-way stop. A terminal view prints a line per `view_every_s` (colour only
on a terminal): the runtime's mode, the board state, each phase's display,
vehicles halted per approach, and vehicles in and out.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from edge.assemble import site_extensions
from edge.board.config import board_config
from edge.board.runner import EXIT_CONFIG
from edge.config import SiteConfig, config_from_dict
from edge.control.messages import Lamp
from edge.extensions import Task
from edge.runtime import EXIT_ERROR, Runtime, WebOptions, install_signals

from hw import codec
from sim.sumo import engine
from sim.sumo.controllers.base import LinkRenderer, write_additional
from sim.sumo.controllers.edge_control import detector_sumo_id
from sim.sumo.controllers.push_buttons import PushButtons
from sim.sumo.derive import Derivation, derive
from sim.sumo.emergency import EmergencyFeed
from sim.sumo.errors import SimError
from sim.sumo.lockstep import sumo_args
from sim.sumo.network import signal_junctions
from sim.sumo.scenarios import resolve
from sim.virtual_board import VirtualBoard

log = logging.getLogger(__name__)

STEP_S = 0.1
_VEHICLE_NUMBER = 0x10  # traci/libsumo LAST_STEP_VEHICLE_NUMBER
_LAMP = {0: " ", 1: "r", 2: "Y", 3: "G", 4: "f", 5: "F"}
_PED = {0: " ", 1: ".", 3: "W", 4: "d"}
_COLOUR = {"G": "\033[32m", "Y": "\033[33m", "r": "\033[31m", "F": "\033[33m", "f": "\033[31m"}
_BOARD = {codec.STATE_ALL_RED: "ALL_RED", codec.STATE_RUNNING: "RUN", codec.STATE_FLASH: "FLASH"}


@dataclass(slots=True)
class SimSummary:
    """What a run showed; tests read it."""

    sim_s: float = 0.0
    sumo_steps: int = 0
    green_steps: int = 0  # SUMO steps with at least one green link
    modes: list[str] = field(default_factory=list)  # the runtime modes seen, in order
    conflicts: list[str] = field(default_factory=list)  # conflicting greens the board drove
    arrived: int = 0
    code: int = 0
    preempt_inputs: int = 0  # times the preemption receiver's input came on
    preempted_s: float = 0.0  # simulated time the runtime's controller spent preempted


def pick(scenario: str, tls: str | None) -> Derivation:
    sc = resolve(scenario)
    junctions = signal_junctions(sc.net)
    if not junctions:
        raise SimError(f"{scenario}: no traffic light")
    chosen = [j for j in junctions if tls is None or j.tls == tls]
    if not chosen:
        raise SimError(f"{scenario}: no traffic light {tls!r}; there are "
                       + ", ".join(j.tls for j in junctions))  # fmt: skip
    return derive(chosen[0])


class SumoTask:
    """The `sumo` task: SUMO in wall-clock time, coupled to the virtual board."""

    def __init__(
        self,
        scenario: str,
        d: Derivation,
        vb: VirtualBoard,
        rt: Runtime,
        workdir: Path,
        *,
        speed: float,
        duration_s: float | None,
        out: TextIO,
        view_every_s: float,
        world: Any = None,
    ) -> None:
        self.scenario = resolve(scenario)
        self.d = d
        self.vb = vb
        self.rt = rt
        self.work = workdir
        self.speed = speed
        self.duration_s = duration_s
        self.out = out
        self.view_every_s = view_every_s
        self.colour = out.isatty()
        self.summary = SimSummary()
        self.sim: Any = None
        site = d.site
        self.renderer = LinkRenderer(d.links, [ch.id for ch in site.channels])
        inputs = {det.id: det.input for det in site.detectors}
        self.dets = [(detector_sumo_id(d.tls, b.id), inputs[b.id]) for b in d.detectors]
        cfg = board_config(site)
        n = cfg.channels
        self.conflict_pairs = [
            (i, j) for i in range(n) for j in range(i + 1, n) if cfg.conflicts[i] >> j & 1
        ]
        self.labels = cfg.labels
        self.approaches = {arm.id: arm.in_edges for arm in d.arms if arm.in_edges}
        # Emergency vehicles near the junction: the receiver's board inputs (no central here).
        self.emergency = EmergencyFeed([d], central=False)
        self.buttons = PushButtons([d])
        self.world = world  # sim.camera.source.World for sim:// cameras, or None
        self.lanes = {det.lane for det in d.detectors}

    def start_sumo(self) -> None:
        """Before the runtime starts: SUMO's start blocks for a few hundred ms."""
        self.sim = self._start_sumo()

    def _start_sumo(self) -> Any:
        elements = [
            f'<laneAreaDetector id="{detector_sumo_id(self.d.tls, det.id)}" lane="{det.lane}" '
            f'pos="{det.pos_m:.2f}" length="{det.length_m:.2f}" period="86400" '
            'file="NUL" friendlyPos="true"/>'
            for det in self.d.detectors
        ]
        extra = [write_additional(self.work / "edge_detectors.add.xml", elements)]
        end = self.scenario.begin_s + 24 * 3600
        sim = engine.start(sumo_args(self.scenario, 1, end, STEP_S, self.work, extra))
        for sumo_id, _ in self.dets:
            sim.lanearea.subscribe(sumo_id, [_VEHICLE_NUMBER])
        self.buttons.start(sim)
        return sim

    async def run(self) -> None:
        await self._loop(self.sim)

    async def _loop(self, sim: Any) -> None:
        s = self.summary
        wall0 = time.monotonic()
        next_view = 0.0
        last_state = ""
        while True:
            wall = time.monotonic() - wall0
            if self.duration_s is not None and wall >= self.duration_s:
                self.rt.request_stop("duration")
                return
            target_steps = int(wall * self.speed / STEP_S)
            while s.sumo_steps < target_steps:
                last_state = self._step(sim, last_state)
            mode = self.rt.status()["mode"]
            if not s.modes or s.modes[-1] != mode:
                s.modes.append(mode)
            if wall >= next_view:
                next_view += self.view_every_s
                self._view(sim)
            wake = (s.sumo_steps + 1) * STEP_S / self.speed
            await asyncio.sleep(min(0.5, max(0.0, wake - (time.monotonic() - wall0))))

    def _step(self, sim: Any, last_state: str) -> str:
        s = self.summary
        results = sim.lanearea.getAllSubscriptionResults()
        mask = self.emergency.input_mask(self.d.tls)
        self.buttons.update(sim)
        mask |= self.buttons.input_mask(self.d.tls)  # pedestrians' push buttons
        for sumo_id, io_input in self.dets:
            if results.get(sumo_id, {}).get(_VEHICLE_NUMBER, 0) > 0:
                mask |= 1 << (io_input - 1)
        self.vb.set_inputs(mask)
        lamps = self.vb.lamps
        if self.vb.state == codec.STATE_RUNNING:
            for i, j in self.conflict_pairs:
                if lamps[i] == codec.GREEN and lamps[j] == codec.GREEN:
                    s.conflicts.append(f"{s.sim_s:.1f} s: {self.labels[i]} and {self.labels[j]}")
        state = self.renderer.render([Lamp(c) for c in lamps]) if lamps else last_state
        if state and state != last_state:
            sim.trafficlight.setRedYellowGreenState(self.d.tls, state)
        if "G" in state or "g" in state:
            s.green_steps += 1
        sim.simulationStep()
        self.emergency.update(sim)
        s.preempt_inputs = self.emergency.requests
        if self.rt.driver.controller.pre >= 0:
            s.preempted_s += STEP_S
        s.sumo_steps += 1
        s.sim_s = s.sumo_steps * STEP_S
        if self.world is not None:
            self.world.update(sim, s.sim_s, self.lanes)
        s.arrived += sim.simulation.getArrivedNumber()
        return state

    def _view(self, sim: Any) -> None:
        out = self.rt.driver.outputs
        cells = []
        if out is not None:
            for p, lamp, ped in zip(self.d.site.phases, out.phases, out.peds, strict=True):
                ch = _LAMP.get(int(lamp), "?")
                text = f"{p.id}{ch}{_PED.get(int(ped), '?')}"
                if self.colour and ch in _COLOUR:
                    text = f"{_COLOUR[ch]}{text}\033[0m"
                cells.append(text)
        queues = " ".join(
            f"{arm}:{sum(sim.edge.getLastStepHaltingNumber(e) for e in edges)}"
            for arm, edges in self.approaches.items()
        )
        st = self.rt.status()
        board = _BOARD.get(self.vb.state, "?")
        in_net = sim.vehicle.getIDCount()
        cams = ""
        if "vision" in st:
            cams = " | cameras " + " ".join(f"{c}:{h}" for c, h in st["vision"]["cameras"].items())
        print(
            f"{self.summary.sim_s:7.1f}s {st['mode']:<16} board {board:<7} | {' '.join(cells)}"
            f" | halted {queues}{cams} | in {in_net} out {self.summary.arrived}"
            f" | jitter p99 {st['jitter_ms']['p99']:.1f} ms",
            file=self.out,
            flush=True,
        )


async def simulate(
    scenario: str,
    *,
    tls: str | None = None,
    speed: float = 1.0,
    duration_s: float | None = None,
    out: TextIO = sys.stdout,
    view_every_s: float | None = None,
    signals: bool = True,
    web: WebOptions | None = None,
    cameras: bool = False,
    snmp: int | None = None,
) -> SimSummary:
    """Run the runtime, a virtual board and SUMO until duration_s (wall) or a signal.

    `cameras`: each approach's rendered camera (sim://) drives the zones' detectors,
    the loops staying their fallback (edge/vision)."""
    d = pick(scenario, tls)
    config = SiteConfig(site=d.site, schedule=None)
    world = None
    if cameras:
        from sim.camera.source import World, register, with_cameras

        net = resolve(scenario).net
        raw = with_cameras(d, net)
        config = config_from_dict(raw, f"{scenario} (derived)")
        world = World()
        register(d, net, world)
    every = view_every_s if view_every_s is not None else (1.0 if out.isatty() else 5.0)
    with tempfile.TemporaryDirectory(prefix="edge-run-sim-") as tmp:
        work = Path(tmp)
        with VirtualBoard(work / "ttyBOARD", record_rx=False, time_scale=speed) as vb:
            rt = Runtime(config, vb.path, speed=speed, extensions=site_extensions(config))
            task = SumoTask(
                scenario, d, vb, rt, work,
                speed=speed, duration_s=duration_s, out=out, view_every_s=every, world=world,
            )  # fmt: skip
            rt.add(Task("sumo", task.run))  # its end or failure is the runtime's own
            if web is not None:
                from edge.web.server import WebPage

                # The page shows the virtual board's own lamps beside the controller's map.
                rt.add(WebPage(web.port, host=web.host, credentials_path=web.credentials,
                               board_lamps=lambda: vb.lamps))  # fmt: skip
            if snmp is not None:
                from edge.ntcip.agent import NtcipAgent
                from edge.ntcip.settings import dev_settings

                rt.add(NtcipAgent(dev_settings(snmp)))  # the README's development user
            if signals:
                install_signals(rt)
            print(
                f"{scenario}: junction {d.tls}, {len(d.site.phases)} phases, "
                f"{len(d.detectors)} detectors, speed x{speed:g}; virtual board on {vb.path}",
                file=out,
                flush=True,
            )
            task.start_sumo()
            try:
                task.summary.code = await rt.run()
            finally:
                engine.close(task.sim)
    return task.summary


def run_sim(
    scenario: str,
    *,
    tls: str | None = None,
    speed: float = 1.0,
    duration_s: float | None = None,
    web: WebOptions | None = None,
    cameras: bool = False,
    snmp: int | None = None,
) -> int:
    """`edge run --sim`: returns the runtime's exit code (1 on a SUMO/scenario error)."""
    from edge.ntcip.agent import SnmpBindError
    from edge.web.server import WebError

    for name in ("edge.board.driver", "edge.board.runner"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        summary = asyncio.run(
            simulate(
                scenario,
                tls=tls,
                speed=speed,
                duration_s=duration_s,
                web=web,
                cameras=cameras,
                snmp=snmp,
            )
        )
    except SimError as exc:
        print(f"edge run --sim: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (WebError, SnmpBindError) as exc:
        print(f"edge run --sim: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"simulated {summary.sim_s:.0f} s, {summary.arrived} vehicles through, "
        f"modes {' -> '.join(summary.modes)}, conflicting greens {len(summary.conflicts)}"
    )
    return summary.code
