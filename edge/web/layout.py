"""What the page draws, from the site alone (pure): arms, lanes, heads, crosswalks, rings.

The site has no lane geometry, so each arm gets one inbound lane per turn its
movements use (left, through, right, from the kerb's far side inward), each
with the signal head of the group that serves it: an overlap when one carries
the movement, else the phase that serves it protected, else the phase it runs
permissive under. Detectors are drawn on the lanes of the phases they call.
"""

from __future__ import annotations

from pydantic import BaseModel

from edge.control.site import SignalKind, Site, Turn

_TURN_ORDER = {Turn.LEFT: 0, Turn.THROUGH: 1, Turn.RIGHT: 2}


class Head(BaseModel):
    """The signal group a lane's head shows: kind is phase or overlap."""

    kind: str
    id: str
    permissive: bool = False


class Lane(BaseModel):
    turn: str  # L, T or R
    movement: str  # e.g. N.L
    head: Head | None  # None: no signal group serves this movement


class Arm(BaseModel):
    id: str
    bearing_deg: float
    lanes: list[Lane]
    crosswalk_phase: int | None  # the phase whose pedestrian signal crosses this arm
    detectors: list[int]  # vehicle detectors on this arm's lanes


class RingPhase(BaseModel):
    id: int
    group: int
    movements: list[str]
    has_ped: bool


class Ring(BaseModel):
    ring: int
    phases: list[RingPhase]


class ChannelInfo(BaseModel):
    id: int
    kind: str
    source: str


class DetectorInfo(BaseModel):
    id: int
    input: int
    ped: bool
    calls: list[int]
    extends: list[int]
    arm: str | None


class Layout(BaseModel):
    site: str
    name: str
    arms: list[Arm]
    rings: list[Ring]
    overlaps: list[str]
    channels: list[ChannelInfo]
    detectors: list[DetectorInfo]
    plans: list[str]


def layout_of(site: Site) -> Layout:
    heads: dict[str, Head] = {}
    for ph in site.phases:
        for m in ph.permissive:
            heads.setdefault(m.name, Head(kind="phase", id=str(ph.id), permissive=True))
    for ph in site.phases:
        for m in ph.movements:
            heads[m.name] = Head(kind="phase", id=str(ph.id))
    for ov in site.overlaps:
        for m in ov.movements:
            heads[m.name] = Head(kind="overlap", id=ov.id)
    turns: dict[str, dict[Turn, str]] = {a.id: {} for a in site.approaches}
    for ph in site.phases:
        for m in (*ph.movements, *ph.permissive):
            turns.setdefault(m.approach, {})[m.turn] = m.name
    for ov in site.overlaps:
        for m in ov.movements:
            turns.setdefault(m.approach, {})[m.turn] = m.name
    crosswalks = {ph.ped_crossing: ph.id for ph in site.phases if ph.ped_crossing}
    arm_of_phase: dict[int, str] = {}
    for ph in site.phases:
        for m in (*ph.movements, *ph.permissive):
            arm_of_phase.setdefault(ph.id, m.approach)
    det_arm: dict[int, str | None] = {}
    for det in site.detectors:
        phases = det.calls or det.extends
        if det.ped:
            det_arm[det.id] = next(
                (ph.ped_crossing for ph in site.phases if ph.id in phases and ph.ped_crossing),
                None,
            )
        else:
            det_arm[det.id] = next((arm_of_phase[p] for p in phases if p in arm_of_phase), None)
    arms = [
        Arm(
            id=a.id,
            bearing_deg=a.bearing_deg,
            lanes=[
                Lane(turn=t.value, movement=name, head=heads.get(name))
                for t, name in sorted(turns.get(a.id, {}).items(), key=lambda x: _TURN_ORDER[x[0]])
            ],
            crosswalk_phase=crosswalks.get(a.id),
            detectors=[d.id for d in site.detectors if not d.ped and det_arm.get(d.id) == a.id],
        )
        for a in site.approaches
    ]
    rings: dict[int, list[RingPhase]] = {}
    for ph in site.phases:
        rings.setdefault(ph.ring, []).append(
            RingPhase(
                id=ph.id,
                group=ph.group,
                movements=[m.name for m in ph.movements] + [m.name + "(p)" for m in ph.permissive],
                has_ped=ph.ped_crossing is not None,
            )
        )
    return Layout(
        site=site.id,
        name=site.name,
        arms=arms,
        rings=[Ring(ring=r, phases=p) for r, p in sorted(rings.items())],
        overlaps=[o.id for o in site.overlaps],
        channels=[
            ChannelInfo(id=ch.id, kind=_KIND[ch.kind], source=str(ch.source))
            for ch in site.channels
        ],
        detectors=[
            DetectorInfo(
                id=d.id,
                input=d.input,
                ped=d.ped,
                calls=list(d.calls),
                extends=list(d.extends),
                arm=det_arm.get(d.id),
            )
            for d in site.detectors
        ],
        plans=sorted(site.plans),
    )


_KIND = {SignalKind.PHASE: "phase", SignalKind.OVERLAP: "overlap", SignalKind.PED: "ped"}
