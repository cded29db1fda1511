"""What the runner needs from a signal controller, and the display -> SUMO state rendering.

Every controller is stepped every 100 ms of simulated time (`step`); `sensed`
says SUMO has advanced since the last call, so detector values are new.
`apply` shows the current displays in SUMO; the runner calls it once per
SUMO step, at the step's start (sample and hold), so with 1 s SUMO steps a
display reaches SUMO up to 0.9 s late, never early. Controllers that leave
SUMO's own programs running do nothing in either.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from edge.control.messages import Lamp

from sim.sumo.derive import LinkBinding
from sim.sumo.scenarios import Scenario

# SUMO link states for a display. Flashing red is an all-way stop ('s': stop,
# then go when clear); flashing yellow and dark are 'o' (no signal, yield).
_GREEN_PROTECTED = "G"
_GREEN_PERMISSIVE = "g"
_STATE = {
    Lamp.YELLOW: "y",
    Lamp.RED: "r",
    Lamp.FLASH_RED: "s",
    Lamp.FLASH_YELLOW: "o",
    Lamp.DARK: "o",
}


class SignalControl(Protocol):
    name: str

    def prepare(self, scenario: Scenario, workdir: Path) -> list[Path]:
        """Write what SUMO must load (detectors, programs); return the additional files."""
        ...

    def start(self, sim: Any, t_ms: int) -> None: ...

    def step(self, sim: Any, t_ms: int, sensed: bool) -> None: ...

    def apply(self, sim: Any) -> None: ...

    def notes(self) -> list[str]: ...


class LinkRenderer:
    """Turns the site's channel displays into a SUMO state string for one signal."""

    def __init__(self, links: Sequence[LinkBinding], channel_ids: Sequence[int]) -> None:
        pos = {cid: k for k, cid in enumerate(channel_ids)}
        self._links = [
            (
                pos.get(b.channel, -1) if b.channel is not None else -1,
                b.protected,
                b.right_on_red,
                b.permissive_phase is not None,
                b.crossing,
            )
            for b in links
        ]

    def render(self, lamps: Sequence[Lamp]) -> str:
        out = []
        for k, protected, rtor, fya, crossing in self._links:
            lamp = lamps[k] if k >= 0 else Lamp.RED
            if crossing:  # walk: peds may start; flashing don't walk: only finish
                out.append("G" if lamp is Lamp.GREEN else "r")
            elif lamp is Lamp.GREEN:
                out.append(_GREEN_PROTECTED if protected else _GREEN_PERMISSIVE)
            elif lamp is Lamp.FLASH_YELLOW and fya:
                out.append(_GREEN_PERMISSIVE)  # flashing yellow arrow: turn, yielding
            elif lamp is Lamp.RED and rtor:
                out.append("s")
            else:
                out.append(_STATE[lamp])
        return "".join(out)


def write_additional(path: Path, elements: Sequence[str]) -> Path:
    body = "\n".join(f"    {e}" for e in elements)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<additional>\n{body}\n</additional>\n'
    )
    return path
