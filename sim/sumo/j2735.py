"""`edge j2735 --sim SCENARIO`: each signal's J2735 SPaT and MAP, as the device publishes them.

After every controller step of every signal (or the one `tls`), the recorder hands the
step's outputs to that signal's `Publisher` (edge/j2735/publisher.py: the class the
device's `j2735` extension runs) and writes each frame it returns as one line of hex.
The MAP geometry is derived from the SUMO network (sim/sumo/j2735map.py). The
simulated clock starts at `start` (UTC; SIM_EPOCH by default), so a start at hh:59:50
crosses an hour. With `keep=True` it also keeps (tls, outputs, frames) per step, for
the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from edge.control.messages import Outputs
from edge.j2735.publisher import Publisher
from edge.j2735.signals import ped_ends

from sim.sumo.errors import SimError
from sim.sumo.hireslog import SIM_EPOCH
from sim.sumo.j2735map import derived_geometry
from sim.sumo.network import read_net, signal_junctions
from sim.sumo.scenarios import Scenario

START = SIM_EPOCH.replace(tzinfo=UTC)


@dataclass(slots=True)
class Step:
    tls: str
    outputs: Outputs
    frames: list[bytes] = field(default_factory=list)


class J2735Recorder:
    def __init__(
        self,
        scenario: Scenario,
        out: TextIO | None,
        *,
        tls: str | None = None,
        start: datetime = START,
        keep: bool = False,
    ) -> None:
        self.scenario = scenario
        self.out = out
        self.tls = tls
        self.utc0_ms = round(start.timestamp() * 1000) - round(scenario.begin_s * 1000)
        self.keep = keep
        self.steps: list[Step] = []
        self.publishers: dict[str, Publisher] = {}
        self.frames = 0

    def attach(self, ctl: Any) -> None:
        """Record every step of a lockstep controller that runs edge.control (EdgeControl)."""
        if not hasattr(ctl, "on_step"):
            raise SimError(
                f"j2735: controller {getattr(ctl, 'name', ctl)!r} does not run the edge "
                "controller; use --controller edge (or edge-adaptive)"
            )
        junctions = {j.tls: j for j in signal_junctions(self.scenario.net)}
        if self.tls is not None and self.tls not in junctions:
            raise SimError(f"j2735: no signal {self.tls!r} (signals: {', '.join(junctions)})")
        net = read_net(self.scenario.net)
        for d in ctl.derivations:
            if self.tls is None or d.tls == self.tls:
                geometry = derived_geometry(d, junctions[d.tls], net)
                self.publishers[d.tls] = Publisher(d.site, geometry, self.utc0_ms)
        before = ctl.on_step

        def on_step(sig: Any, t_ms: int, out: Outputs) -> None:
            if before is not None:
                before(sig, t_ms, out)
            self.on_step(sig.tls, out, ped_ends(sig.controller.status()))

        ctl.on_step = on_step

    def on_step(self, tls: str, out: Outputs, peds: tuple[int | None, ...] = ()) -> None:
        pub = self.publishers.get(tls)
        if pub is None:
            return
        frames = pub.step(out, peds)
        self.frames += len(frames)
        if self.out is not None:
            self.out.writelines(f.hex() + "\n" for f in frames)
        if self.keep:
            self.steps.append(Step(tls, out, frames))
