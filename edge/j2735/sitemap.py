"""A site file's `[map]` table: the intersection's geometry for J2735 MAP, validated.

    [map]
    intersection_id = 1001          # J2735 IntersectionID, 0..65535
    lat = 45.52                     # reference point (WGS-84 degrees), e.g. the centre
    lon = -122.68
    lane_width_m = 3.5              # optional

    [[map.lanes]]
    id = 1                          # 1..255, unique
    kind = "ingress"                # ingress | egress | crosswalk
    approach = "S"                  # one of the site's approaches (not for a crosswalk)
    nodes = [[1.8, -12.0], [1.8, -80.0]]   # metres east, north of lat/lon; stop line first
    connects = [{ lane = 6, movement = "S.T" }]

    [[map.lanes]]
    id = 20
    kind = "crosswalk"
    ped_phase = 2                   # the phase whose pedestrian signal the crossing shows
    nodes = [[-8.0, -10.0], [8.0, -10.0]]

The signal group of a connection is found from the site (edge/j2735/signals.py's
numbers): the overlap that serves the movement (an arrow, a flashing yellow arrow) if
any, else the phase that serves it protected, else the phase that serves it
permissively (its permissive group). Every problem is reported with the lane it is in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.control.site import Site
from edge.j2735.mapdata import Connection, Geometry, GeometryError, Lane, validate
from edge.j2735.signals import overlap_group, ped_group, permissive_group, phase_group


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectCfg(_Strict):
    lane: Annotated[int, Field(ge=1, le=255)]
    movement: str


class LaneCfg(_Strict):
    id: Annotated[int, Field(ge=1, le=255)]
    kind: Literal["ingress", "egress", "crosswalk"]
    approach: str | None = None
    nodes: Annotated[list[tuple[float, float]], Field(min_length=2, max_length=63)]
    connects: Annotated[list[ConnectCfg], Field(max_length=16)] = []
    ped_phase: int | None = None


class MapCfg(_Strict):
    intersection_id: Annotated[int, Field(ge=0, le=65535)]
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    lane_width_m: Annotated[float, Field(gt=0, le=30)] = 3.5
    name: Annotated[str, Field(max_length=63)] = ""
    lanes: Annotated[list[LaneCfg], Field(min_length=1, max_length=255)]


def movement_group(site: Site, movement: str) -> int | None:
    """The signal group that shows a movement (e.g. "N.L"), None when none serves it."""
    for ov in site.overlaps:
        if any(m.name == movement for m in ov.movements):
            return overlap_group(site, ov.id)
    for p in site.phases:
        if any(m.name == movement for m in p.movements):
            return phase_group(p.id)
    for p in site.phases:
        if any(m.name == movement for m in p.permissive):
            return permissive_group(p.id)
    return None


def build_map(cfg: MapCfg | None, site: Site, bad: Callable[[str], None]) -> Geometry | None:
    """The geometry, or None (each problem handed to `bad`, as "map lane N: ...")."""
    if cfg is None:
        return None
    arms = [a.id for a in site.approaches]
    phases = {p.id: p for p in site.phases}
    lanes: list[Lane] = []
    ok = True
    for lc in cfg.lanes:
        where = f"map lane {lc.id}"
        approach = None
        if lc.kind == "crosswalk":
            phase = phases.get(lc.ped_phase) if lc.ped_phase is not None else None
            if phase is None or phase.ped_crossing is None:
                bad(f"{where}: a crosswalk names ped_phase, a phase with a pedestrian signal")
                ok = False
                continue
            conns: tuple[Connection, ...] = (Connection(lc.id, "", ped_group(phase.id)),)
        else:
            if lc.ped_phase is not None:
                bad(f"{where}: ped_phase is for crosswalks")
                ok = False
            if lc.approach not in arms:
                bad(f"{where}: approach {lc.approach!r} is not one of the site's {arms}")
                ok = False
                continue
            approach = arms.index(lc.approach) + 1
            found: list[Connection] = []
            for c in lc.connects:
                if lc.kind != "ingress":
                    bad(f"{where}: only an ingress lane connects")
                    ok = False
                    break
                group = movement_group(site, c.movement)
                if group is None:
                    bad(f"{where}: no phase or overlap serves movement {c.movement!r}")
                    ok = False
                    continue
                found.append(Connection(c.lane, c.movement.rsplit(".", 1)[-1], group))
            conns = tuple(found)
        lanes.append(Lane(lc.id, lc.kind, tuple(lc.nodes), approach, conns))
    if not ok:
        return None
    geometry = Geometry(
        cfg.intersection_id, cfg.lat, cfg.lon, tuple(lanes), cfg.lane_width_m, cfg.name
    )
    try:
        validate(geometry)
    except GeometryError as exc:
        bad(f"map: {exc}")
        return None
    return geometry
