"""Saving one camera's zones and lines to a real site file: the rest kept, bad edits never written.

Each case writes a real site file in tmp_path (examples/four_leg_protected.toml with
a commented camera section) and saves through edge/vision/siteedit.py as the page
does; the written file is read back with edge.config.load_config, what `edge run`
and `edge check` read.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from edge.config import SiteConfig, load_config
from edge.vision.config import LineCfg, ZoneCfg
from edge.vision.siteedit import LayoutConflict, LayoutProblems, read_hash, save_layout
from edge.web.camlayout import layout_of_camera
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from sim.sumo.site_toml import to_toml

from tests.hypothesis_profiles import examples
from tests.vision.conftest import EXAMPLE
from tests.vision.sitefile import write_site

CAM = "cam-n"


def current(cfg: SiteConfig) -> tuple[list[ZoneCfg], list[LineCfg]]:
    assert cfg.vision is not None
    lay = layout_of_camera(cfg.vision, CAM, cfg.site, None, "")
    return list(lay.zones), list(lay.lines)


def moved(z: ZoneCfg, **change: object) -> ZoneCfg:
    return ZoneCfg.model_validate({**z.model_dump(), **change})


def test_an_edit_changes_the_camera_and_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    path = write_site(tmp_path, video=False)
    before = path.read_text()
    cfg = load_config(path)
    zones, lines = current(cfg)
    stop, left = zones
    zones = [
        moved(stop, polygon=[[60, 180], [160, 180], [150, 110.5], [80, 120]]),
        moved(left, detector=8, fallback="loop"),  # another detector: checked, rebound
        ZoneCfg(id="n-right", approach="N", lane=2, polygon=[[262, 180], [318, 180], [300, 130]]),
    ]
    lines = [*lines, LineCfg(id="n-mid", approach="N", lane=0, points=[[40, 150], [300, 150]])]
    saved = save_layout(path, read_hash(path), CAM, zones, lines, cfg)

    text = path.read_text()
    assert text.startswith(EXAMPLE.read_text())  # the intersection's part, byte for byte
    for comment in ("# measured on site", "# a recorded clip", "# stop-bar queue, lane 0",
                    "the north camera", "# the test's stand-in model"):  # fmt: skip
        assert comment in text
    assert "polygon = [[60, 180], [160, 180], [150, 110.5], [80, 120]]  # measured on site" in text
    assert '[[cameras.zones]]\nid = "n-right"' in text and 'id = "n-mid"' in text
    again = load_config(path)
    assert again.vision is not None and again.vision == saved.config.vision
    assert current(again) == (zones, lines)
    assert again.site == cfg.site and again.schedule == cfg.schedule
    assert read_hash(path) == saved.site_hash
    assert before != text
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_unchanged_layout_writes_the_same_bytes(tmp_path: Path) -> None:
    path = write_site(tmp_path, video=False)
    before = path.read_bytes()
    cfg = load_config(path)
    save_layout(path, read_hash(path), CAM, *current(cfg), cfg)
    assert path.read_bytes() == before


def test_a_zone_and_a_line_removed(tmp_path: Path) -> None:
    path = write_site(tmp_path, video=False)
    cfg = load_config(path)
    zones, _ = current(cfg)
    save_layout(path, read_hash(path), CAM, zones[:1], [], cfg)
    text = path.read_text()
    assert "n-left" not in text and "[[cameras.lines]]" not in text
    assert current(load_config(path)) == (zones[:1], [])


def test_inline_lists_become_tables(tmp_path: Path) -> None:
    """`edge sim init --cameras` writes zones inline; an edit writes them as tables."""
    write_site(tmp_path, video=False)
    raw = tomllib.loads((tmp_path / "site.toml").read_text())
    path = tmp_path / "derived.toml"
    path.write_text(to_toml(raw))
    cfg = load_config(path)
    zones, lines = current(cfg)
    zones[0] = moved(zones[0], polygon=[[61, 180], [160, 180], [150, 120], [80, 120]])
    save_layout(path, read_hash(path), CAM, zones, lines, cfg)
    text = path.read_text()
    assert "zones = [" not in text and text.count("[[cameras.zones]]") == 2
    assert current(load_config(path)) == (zones, lines)


Edit = Callable[[list[ZoneCfg]], list[ZoneCfg]]
BAD: dict[str, tuple[Edit, list[str]]] = {
    "a point outside the frame": (
        lambda z: [moved(z[0], polygon=[[60, 180], [330, 180], [150, 120], [80, 120]]), z[1]],
        ["camera cam-n: zone n-stop: polygon: point 2 (330, 180) is outside the 320x192 frame"],
    ),
    "a queue zone of 3 corners": (
        lambda z: [moved(z[0], polygon=[[60, 180], [160, 180], [150, 120]]), z[1]],
        ["camera cam-n: zone n-stop: a queue zone has 4 corners, stop-bar edge first"],
    ),
    "a queue zone without its length": (
        lambda z: [moved(z[0], length_m=None), z[1]],
        ["camera cam-n: zone n-stop: a queue zone needs length_m (its length along the lane)"],
    ),
    "a duplicate id": (
        lambda z: [z[0], moved(z[1], id="n-stop")],
        ["camera cam-n: zone n-stop: id is also used by camera cam-n: zone n-stop"],
    ),
    "an unknown detector": (
        lambda z: [z[0], moved(z[1], detector=42)],
        ["camera cam-n: zone n-left: detector: no detector 42 in the site"],
    ),
    "a push button": (
        lambda z: [z[0], moved(z[1], detector=22)],
        ["camera cam-n: zone n-left: detector: detector 22 is a push button"],
    ),
    "a detector driven twice": (
        lambda z: [z[0], moved(z[1], detector=4)],
        ["camera cam-n: zone n-left: detector: detector 4 is already driven by zone n-stop"],
    ),
    "crossed edges": (
        lambda z: [moved(z[0], polygon=[[60, 180], [150, 120], [160, 180], [80, 120]]), z[1]],
        ["camera cam-n: zone n-stop: polygon: its edges cross each other"],
    ),
    "an unknown approach": (
        lambda z: [z[0], moved(z[1], approach="Q")],
        ["camera cam-n: zone n-left: approach: no approach 'Q' (approaches: ['E', 'N', 'S', 'W'])"],
    ),
    "no zone": (lambda z: [], ["camera cam-n: zones: a camera needs at least one zone"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_refused_edit_names_the_zone_and_writes_nothing(tmp_path: Path, case: str) -> None:
    path = write_site(tmp_path, video=False)
    before = path.read_bytes()
    cfg = load_config(path)
    zones, lines = current(cfg)
    edit, problems = BAD[case]
    with pytest.raises(LayoutProblems) as err:
        save_layout(path, read_hash(path), CAM, edit(zones), lines, cfg)
    assert err.value.problems == problems
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.onnx", "site.toml"]


def test_a_file_changed_on_disk_read_only_or_not_what_runs_is_refused(tmp_path: Path) -> None:
    path = write_site(tmp_path, video=False)
    cfg = load_config(path)
    zones, lines = current(cfg)
    seen = read_hash(path)
    with path.open("a") as f:
        f.write("# a note added by hand\n")
    changed = path.read_bytes()
    with pytest.raises(LayoutConflict, match="has changed on disk since this layout was loaded"):
        save_layout(path, seen, CAM, zones, lines, cfg)
    assert path.read_bytes() == changed

    path.chmod(0o444)
    with pytest.raises(LayoutConflict, match=r"is read-only \(mode 0444\)"):
        save_layout(path, read_hash(path), CAM, zones, lines, cfg)
    assert path.read_bytes() == changed
    path.chmod(0o644)

    # a timing changed by hand since the runtime started: the file is not what runs
    path.write_text(path.read_text().replace("yellow_s = 4.0", "yellow_s = 4.5", 1))
    assert load_config(path).site != cfg.site
    edited = path.read_bytes()
    with pytest.raises(LayoutConflict, match="differs from what this device runs in the inter"):
        save_layout(path, read_hash(path), CAM, zones, lines, cfg)
    assert path.read_bytes() == edited

    with pytest.raises(LayoutConflict, match="camera cam-s is not in the site file"):
        save_layout(path, read_hash(path), "cam-s", zones, lines, cfg)


def test_mode_and_symlink_are_kept(tmp_path: Path) -> None:
    real = write_site(tmp_path, video=False)
    real.chmod(0o640)
    link = tmp_path / "site-link.toml"
    link.symlink_to(real.name)
    cfg = load_config(link)
    zones, lines = current(cfg)
    zones[1] = moved(zones[1], polygon=[[170, 181], [260, 180], [240, 120], [170, 120]])
    save_layout(link, read_hash(link), CAM, zones, lines, cfg)
    assert link.is_symlink() and os.readlink(link) == real.name
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert current(load_config(real))[0] == zones


# -- property: what is written passes the checks and is what was asked; else nothing ---------

W, H = 320, 192
ODD = st.integers(0, 5).map(lambda n: n == 0)  # one time in six


@st.composite
def rect_zones(draw: st.DrawFn) -> list[ZoneCfg]:
    """1-3 axis-aligned zones (never self-crossing), now and then a corner outside the
    frame, a queue zone without its length or with 3 corners, a detector unknown or
    taken, an id repeated or one the file has (its table is then edited in place)."""
    out = []
    for k in range(draw(st.integers(1, 3))):
        x1 = draw(st.integers(-20, -1)) if draw(ODD) else draw(st.integers(0, 190))
        y1 = draw(st.integers(-20, -1)) if draw(ODD) else draw(st.integers(0, 100))
        x2, y2 = x1 + draw(st.integers(3, 130)), y1 + draw(st.integers(3, 80))
        poly = [[x1, y2], [x2, y2], [x2, y1], [x1, y1]]
        kind = draw(st.sampled_from(["presence", "queue"]))
        if draw(ODD):
            poly = poly[:3]
        length = None if kind == "presence" or draw(ODD) else 30.0
        detector = draw(st.sampled_from([None, 42, 4])) if draw(ODD) else [None, 4, 8][k]
        ident = draw(st.sampled_from(["n-stop", "n-left", f"z{k}", f"z{k}"]))
        out.append(
            ZoneCfg.model_validate(
                {"id": ident, "approach": "N", "lane": k, "polygon": poly, "kind": kind,
                 "length_m": length, "detector": detector}
            )
        )  # fmt: skip
    return out


def acceptable(zones: list[ZoneCfg]) -> bool:
    """The rules, stated independently of edge/vision/config.py, for these zones."""
    dets = [z.detector for z in zones if z.detector is not None]
    ids = [z.id for z in zones]
    return (
        len(ids) == len(set(ids))
        and all(0 <= x <= W and 0 <= y <= H for z in zones for x, y in z.polygon)
        and all(len(z.polygon) == 4 and z.length_m for z in zones if z.kind == "queue")
        and all(d in (4, 8) for d in dets)
        and len(dets) == len(set(dets))
    )


@settings(max_examples=examples(40))
@given(zones=rect_zones())
@example(  # a corner exactly on the frame's edge is inside
    zones=[ZoneCfg(id="z0", approach="N", lane=0, polygon=[[0, 192], [320, 192], [320, 0]])]
)
@example(  # a repeated id was merged into one table: the file lost a zone, no error
    zones=[
        ZoneCfg(id="n-stop", approach="N", lane=0, polygon=[[0, 90], [50, 90], [50, 10]]),
        ZoneCfg(id="n-stop", approach="N", lane=1, polygon=[[60, 90], [110, 90], [110, 10]]),
    ]
)
@example(  # the zones in another order than the file's were written in the file's order
    zones=[
        ZoneCfg(id="n-left", approach="N", lane=0, polygon=[[0, 3], [3, 3], [3, 0]]),
        ZoneCfg(id="n-stop", approach="N", lane=1, polygon=[[0, 3], [3, 3], [3, 0]], detector=4),
    ]
)
def test_only_an_edit_that_passes_the_checks_is_written(tmp_path_factory: pytest.TempPathFactory,
                                                         zones: list[ZoneCfg]) -> None:  # fmt: skip
    tmp = tmp_path_factory.mktemp("prop")
    path = write_site(tmp, video=False)
    before = path.read_bytes()
    cfg = load_config(path)
    try:
        save_layout(path, read_hash(path), CAM, zones, [], cfg)
    except LayoutProblems as exc:
        event("refused")
        assert not acceptable(zones), exc.problems
        assert path.read_bytes() == before
        assert all(p.startswith("camera cam-n: zone ") for p in exc.problems)
        return
    event("written")
    assert acceptable(zones)
    assert current(load_config(path)) == (zones, [])
