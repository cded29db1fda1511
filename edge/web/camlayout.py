"""A camera's zone and count-line layout as the page's editor sees it, and what can edit it.

The editor reads a camera's zones and lines as they run (in the site file's own
terms: the `[[cameras.zones]]` / `[[cameras.lines]]` keys) with the sha256 of the
site file, and sends them back with that hash to be saved (edge/vision/siteedit.py
checks and writes; `LayoutEditor.apply_layout` runs them). A sensing view that is
not a LayoutEditor (a stand-in) shows its cameras but cannot be edited.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from edge.control.site import Site
from edge.vision.config import Camera, LineCfg, Vision, ZoneCfg


@runtime_checkable
class LayoutEditor(Protocol):
    """The runtime's cameras, editable (edge.vision.sensing.Sensing)."""

    @property
    def vision(self) -> Vision: ...

    def apply_layout(self, camera: Camera) -> None: ...


class CameraLayout(BaseModel):
    """One camera's zones and count lines (frame pixels), for the page's editor."""

    camera: str
    width: int  # the frame size the zones are drawn on
    height: int
    zones: list[ZoneCfg]
    lines: list[LineCfg]
    approaches: list[str]  # what a zone's or line's `approach` may name
    detectors: list[int]  # the site's vehicle detectors, which a zone may drive
    site_hash: str | None  # the site file's sha256, sent back with an edit; None: no file
    editable: bool
    why: str = ""  # why it cannot be saved, when not editable


def layout_of_camera(
    vision: Vision, camera_id: str, site: Site, site_hash: str | None, why: str
) -> CameraLayout:
    cam = next(c for c in vision.cameras if c.id == camera_id)
    zones = [
        ZoneCfg(
            id=z.id,
            approach=z.approach,
            lane=z.lane,
            polygon=[[x, y] for x, y in z.polygon],
            kind=z.kind,  # type: ignore[arg-type]  # "presence" or "queue", as checked
            detector=z.detector,
            length_m=z.length_m,
            fallback=z.fallback,  # type: ignore[arg-type]  # "loop" or "recall"
        )
        for z in cam.zones
    ]
    lines = [
        LineCfg(id=ln.id, approach=ln.approach, lane=ln.lane, points=[list(p) for p in ln.points])
        for ln in cam.lines
    ]
    return CameraLayout(
        camera=cam.id,
        width=cam.width,
        height=cam.height,
        zones=zones,
        lines=lines,
        approaches=[a.id for a in site.approaches],
        detectors=[d.id for d in site.detectors if not d.ped],
        site_hash=site_hash,
        editable=site_hash is not None and not why,
        why=why,
    )
