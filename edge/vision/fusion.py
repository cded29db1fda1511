"""Camera zones, loops and recalls merged into the controller's detector inputs: pure.

A detector driven by a zone takes its presence from the camera while the
camera is healthy (the loop's own input is then ignored, as are its pulse
counts). When the camera is not healthy the detector falls back, by the
zone's `fallback`: to its loop (the board input, as if there were no
camera), or to a recall: a calling detector then calls its phases whenever
they are not green, and lets go while they are (so the green gaps out after
its minimum: a minimum recall); an extend-only detector stops extending.
This is the degradation ladder cameras + loops -> loops -> recalls; flash
is only ever the safety layers' decision.

A queue zone's estimate (vehicles waiting in it) goes to the controller as
`Inputs.queues` for the calling detector of the same camera and lane, while
the camera is healthy: the adaptive mode then counts that lane's queue from
the camera instead of its loops (docs/adaptive.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from edge.control.messages import NOT_RED, Inputs, Outputs
from edge.control.site import Site
from edge.vision.config import Vision

CAMERA = "camera"
LOOP = "loop"
RECALL = "recall"


@dataclass(frozen=True, slots=True)
class Binding:
    detector: int
    zone: str
    camera: str
    fallback: str
    calls: tuple[int, ...]


def bindings(site: Site, vision: Vision) -> tuple[Binding, ...]:
    dets = {d.id: d for d in site.detectors}
    return tuple(
        Binding(z.detector, z.id, z.camera, z.fallback, dets[z.detector].calls)
        for c in vision.cameras
        for z in c.zones
        if z.detector is not None and z.detector in dets
    )


def queue_bindings(site: Site, vision: Vision) -> tuple[tuple[int, str], ...]:
    """(detector, queue zone id): a queue zone's own calling detector, else the
    calling detector whose zone is on the same camera and lane."""
    calls = {d.id for d in site.detectors if d.calls and not d.ped}
    out = []
    for c in vision.cameras:
        lane_det = {
            z.lane: z.detector
            for z in c.zones
            if z.kind == "presence" and z.detector is not None and z.detector in calls
        }
        for z in c.zones:
            if z.kind != "queue":
                continue
            det = z.detector if z.detector in calls else lane_det.get(z.lane)
            if det is not None:
                out.append((det, z.id))
    return tuple(out)


def green_phases(site: Site, out: Outputs | None) -> frozenset[int]:
    if out is None:
        return frozenset()
    return frozenset(
        p.id for p, lamp in zip(site.phases, out.phases, strict=True) if lamp in NOT_RED
    )


def fuse(
    inputs: Inputs,
    binds: tuple[Binding, ...],
    zone_presence: Mapping[str, bool | None],
    green: frozenset[int],
    queue_binds: tuple[tuple[int, str], ...] = (),
    zone_queues: Mapping[str, float | None] | None = None,
) -> tuple[Inputs, dict[int, str]]:
    """The step's Inputs with camera-driven detectors replaced; and each one's source.

    `zone_presence[zone]`: True/False from a healthy camera, None when unreliable;
    `zone_queues[zone]`: vehicles waiting in a queue zone, None when unreliable.
    """
    zq = zone_queues or {}
    queues = tuple((det, q) for det, zone in queue_binds if (q := zq.get(zone)) is not None)
    if queues:
        mine = {det for det, _ in queues}
        kept = tuple(q for q in inputs.queues if q[0] not in mine)
        inputs = replace(inputs, queues=kept + queues)  # the rest (arrivals too) as given
    if not binds:
        return inputs, {}
    occupied = set(inputs.occupied)
    replaced: set[int] = set()
    sources: dict[int, str] = {}
    for b in binds:
        seen = zone_presence.get(b.zone)
        if seen is not None:
            sources[b.detector] = CAMERA
            replaced.add(b.detector)
            if seen:
                occupied.add(b.detector)
            else:
                occupied.discard(b.detector)
        elif b.fallback == LOOP:
            sources[b.detector] = LOOP
        else:
            sources[b.detector] = RECALL
            replaced.add(b.detector)
            if any(p not in green for p in b.calls):
                occupied.add(b.detector)
            else:
                occupied.discard(b.detector)
    actuations = tuple((d, n) for d, n in inputs.actuations if d not in replaced)
    return replace(inputs, occupied=frozenset(occupied), actuations=actuations), sources
