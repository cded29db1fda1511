"""SUMO's own controllers: the network's programs, or SUMO's actuated/delay/NEMA types.

`sumo-static` leaves the network's programs alone. For the other types the
network is rebuilt once with `netconvert --tls.rebuild --tls.default-type
TYPE` (plain output, so nothing else of the network changes), the new
tlLogic elements are copied into an additional file under programID
`sim-TYPE`, their link indices checked against the network, and each signal
is switched to that program at the start with trafficlight.setProgram.

`sumo-actuated-ite` is SUMO's actuated program run at the device's
clearances: netconvert's programs change in a 3 s yellow with no all-red,
where a derived site keeps ITE yellows and red clearances (sim/sumo/derive.py,
~6 s a change). Each yellow takes the longest yellow of the links it ends and
is followed by an all-red as long as their longest red clearance, so the
baseline and the device pay the same lost time per change.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sim.sumo import engine
from sim.sumo.controller_names import SUMO_TYPES
from sim.sumo.controllers.base import write_additional
from sim.sumo.errors import SimError
from sim.sumo.network import SignalJunction
from sim.sumo.scenarios import Scenario

# Per signal: link index -> (yellow s, red clearance s), what the device shows that link.
Clearances = dict[str, dict[int, tuple[float, float]]]


class SumoProgram:
    def __init__(
        self, name: str, junctions: list[SignalJunction], clearances: Clearances | None = None
    ) -> None:
        self.name = name
        self.tls_type = SUMO_TYPES[name]
        self.program_id = f"sim-{name.removeprefix('sumo-')}"
        self.junctions = junctions
        self.clearances = clearances

    def prepare(self, scenario: Scenario, workdir: Path) -> list[Path]:
        if self.tls_type is None:
            return []
        prefix = workdir / f"rebuilt_{self.tls_type}"
        cmd = [
            engine.binary("netconvert"),
            "--sumo-net-file", str(scenario.net),
            "--tls.rebuild",
            "--tls.default-type", self.tls_type,
            "--plain-output-prefix", str(prefix),
            "--output-file", str(workdir / "rebuilt.net.xml"),
            "--no-warnings",
        ]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            raise SimError(
                f"netconvert took over 600 s rebuilding {self.tls_type} programs"
            ) from None
        tll = Path(f"{prefix}.tll.xml")
        if done.returncode != 0 or not tll.is_file():
            raise SimError(
                f"netconvert could not build {self.tls_type} programs for {scenario.net}: "
                f"{done.stderr.strip()}"
            )
        root = ET.parse(tll).getroot()
        self._check_link_indices(root)
        elements = []
        wanted = {j.tls for j in self.junctions}
        for logic in root.iter("tlLogic"):
            if logic.get("id") not in wanted:
                continue
            logic.set("programID", self.program_id)
            if self.clearances is not None:
                with_clearances(logic, self.clearances[logic.get("id", "")])
            logic.tail = None
            elements.append(ET.tostring(logic, encoding="unicode").strip())
        missing = wanted - {e.get("id") for e in root.iter("tlLogic")}
        if missing:
            raise SimError(f"netconvert built no {self.tls_type} program for {sorted(missing)}")
        return [write_additional(workdir / f"programs_{self.tls_type}.add.xml", elements)]

    def _check_link_indices(self, root: ET.Element) -> None:
        ours = {
            (k.from_edge, k.to_edge, k.from_lane, k.to_lane): (j.tls, k.index)
            for j in self.junctions
            for k in j.links
        }
        for c in root.iter("connection"):
            if c.get("tl") is None:
                continue
            key = (
                c.get("from", ""),
                c.get("to", ""),
                f"{c.get('from')}_{c.get('fromLane')}",
                f"{c.get('to')}_{c.get('toLane')}",
            )
            want = ours.get(key)
            got = (c.get("tl"), int(c.get("linkIndex", "-1")))
            if want is not None and want != got:
                raise SimError(
                    f"netconvert renumbered the signal links ({key[2]} -> {key[3]}: "
                    f"{want} became {got}); cannot load its {self.tls_type} programs"
                )

    def start(self, sim: Any, t_ms: int) -> None:
        if self.tls_type is None:
            return
        for j in self.junctions:
            sim.trafficlight.setProgram(j.tls, self.program_id)

    def step(self, sim: Any, t_ms: int, sensed: bool) -> None:
        return None

    def apply(self, sim: Any) -> None:
        return None

    def notes(self) -> list[str]:
        return []


def with_clearances(logic: ET.Element, per_link: dict[int, tuple[float, float]]) -> None:
    """Stretch each yellow to its links' yellow and follow it with their red clearance.

    A link without a clearance of its own (one the device keeps red) takes the
    signal's longest. Phases are only inserted, so a program that jumps by
    phase index (`next`) is refused rather than rewired.
    """
    tls = logic.get("id")
    if any(ph.get("next") is not None for ph in logic.iter("phase")):
        raise SimError(
            f"signal {tls}: its program jumps by phase index (next=); cannot add clearances"
        )
    longest = (
        max((y for y, _ in per_link.values()), default=3.0),
        max((r for _, r in per_link.values()), default=0.0),
    )
    phases = list(logic.iter("phase"))
    for ph in phases:
        state = ph.get("state", "")
        ending = [i for i, c in enumerate(state) if c == "y"]
        if not ending:
            continue
        yellow = max(per_link.get(i, longest)[0] for i in ending)
        red = max(per_link.get(i, longest)[1] for i in ending)
        ph.set("duration", f"{yellow:g}")
        if red > 0:
            all_red = ET.Element("phase", duration=f"{red:g}", state=state.replace("y", "r"))
            logic.insert(list(logic).index(ph) + 1, all_red)
    ET.indent(logic, space="    ", level=1)
