"""What the device sends, tick by tick: SPaT at 10 Hz, MAP at 1 Hz, as UPER MessageFrames.

One `Publisher` per signal, fed every control tick's outputs in order (the device's
`j2735` extension, edge/j2735/device.py, and the simulator's recorder,
sim/sumo/j2735.py, use this same class, so `edge j2735 --sim` writes what a device
publishes). Rules it keeps:
- A SPaT for every new tenth of a second of the core's clock (10 Hz at the 100 ms
  tick); a MAP first and then at every new second of it (1 Hz), before that tick's SPaT.
  The MAP is encoded once (the geometry does not change while running).
- Times come from the core's clock plus `utc0_ms` (edge/j2735/spat.py): no drift.
- The SPaT's revision counts changes of the signal groups' states (modulo 128).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from edge.control.messages import Outputs
from edge.control.site import Site
from edge.j2735 import codec
from edge.j2735.mapdata import Geometry, map_value
from edge.j2735.signals import GroupState, SignalGroups
from edge.j2735.spat import spat_value


def default_intersection_id(site: Site) -> int:
    """A stable IntersectionID for a site without a [map] table: from its id."""
    return int.from_bytes(hashlib.sha256(site.id.encode()).digest()[:2], "big")


class Publisher:
    def __init__(self, site: Site, geometry: Geometry | None, utc0_ms: int) -> None:
        self.site = site
        self.geometry = geometry
        self.utc0_ms = utc0_ms
        self.groups = SignalGroups(site)
        self.intersection_id = (
            geometry.intersection_id if geometry is not None else default_intersection_id(site)
        )
        self.map_frame = (
            codec.encode(codec.MAP_ID, map_value(geometry)) if geometry is not None else None
        )
        self.revision = 0
        self.last_states: tuple[int, ...] = ()
        self.last_tenth: int | None = None
        self.last_second: int | None = None
        self.last: list[GroupState] = []  # the last SPaT's groups (tests compare them)

    def step(self, out: Outputs, peds: Sequence[int | None] = ()) -> list[bytes]:
        """The frames due at this tick (MAP first), oldest first; peds: signals.ped_ends."""
        states = self.groups.read(out, peds)  # every tick: the adapter tracks onsets and events
        frames: list[bytes] = []
        second = out.t_ms // 1000
        if self.map_frame is not None and second != self.last_second:
            self.last_second = second
            frames.append(self.map_frame)
        tenth = out.t_ms // 100
        if tenth == self.last_tenth:
            return frames
        self.last_tenth = tenth
        now_states = tuple(g.state for g in states)
        if self.last_states and now_states != self.last_states:
            self.revision = (self.revision + 1) % 128
        self.last_states = now_states
        self.last = states
        value = spat_value(
            self.intersection_id,
            states,
            out.t_ms,
            self.utc0_ms,
            revision=self.revision,
            fault=out.mode == "fault_flash",
            preempt=self.groups.preempting,
        )
        frames.append(codec.encode(codec.SPAT_ID, value))
        return frames
