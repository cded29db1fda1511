"""The real-footage ground truth: its file keeps the loader's rules and its frames can be read."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from devtools.vision.truth import (
    CLASSES,
    KINDS,
    TRUTH,
    TruthError,
    frame_image,
    frame_images,
    load_truth,
    parse_truth,
    zone_counts,
)

RAW: dict[str, Any] = json.loads(TRUTH.read_text())


def test_the_shipped_file_keeps_the_rules() -> None:
    truth = load_truth()
    assert len(truth.frames) == 17
    assert {f.source for f in truth.frames} == set(truth.sources)
    for f in truth.frames:
        for v in f.vehicles:
            assert v.cls in CLASSES and v.box[3] - v.box[1] >= 12
        assert all(o.kind in KINDS for o in f.non_vehicles)
    # Every video has zones that hold vehicles (an empty zone, like the car park's bays with
    # only a cyclist in them, still checks for false counts).
    for name, src in truth.sources.items():
        if name.endswith((".mp4", ".gif")):
            assert src.zones, name
            seen = {z: 0 for z in src.zones}
            for f in truth.frames:
                if f.source == name:
                    for z, n in zone_counts(truth, f).items():
                        seen[z] += n
            assert any(seen.values()), (name, seen)


def test_zone_counts_by_bottom_centre() -> None:
    truth = load_truth()
    by_key = {(f.source, f.frame): f for f in truth.frames}
    # Only parked cars at 660: three on each kerb, none in the travel lanes.
    assert zone_counts(truth, by_key["cvtc_traffic.mp4", 660]) == {"Z1": 3, "Z2": 0, "Z3": 3}
    # The school bus passing at 540 counts in the travel lanes.
    assert zone_counts(truth, by_key["cvtc_traffic.mp4", 540])["Z2"] == 2
    assert zone_counts(truth, by_key["rknn_cars.mp4", 53]) == {"Z1": 6, "Z2": 2}


def _set(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to a copy of the raw file: set the value at a path of keys and indexes."""

    def apply(raw: dict[str, Any]) -> None:
        node: Any = raw
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return apply


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("frames", 0, "vehicles", 0, "box", value=[600, 10, 641, 40]), "outside the 640x360"),
        (_set("frames", 0, "vehicles", 0, "box", value=[50, 10, 50, 40]), "empty or outside"),
        (_set("frames", 0, "vehicles", 0, "box", value=[50, 40, 90, 10]), "empty or outside"),
        (_set("frames", 0, "vehicles", 0, "box", value=[50.5, 10, 90, 40]), "four integers"),
        (_set("frames", 0, "vehicles", 0, "box", value=[50, 10, 90, 21]), "under 12 px tall"),
        (_set("frames", 0, "vehicles", 0, "cls", value="bicycle"), "class 'bicycle'"),
        (_set("frames", 0, "vehicles", 0, "partial", value="yes"), "partial must be"),
        (_set("frames", 0, "non_vehicles", 0, "kind", value="dog"), "kind 'dog'"),
        (_set("frames", 0, "source", value="other.mp4"), "not listed"),
        (_set("frames", 0, "width", value=320), "bad frame index or size"),
        (_set("frames", 12, "frame", value=3), "only frame 0"),
        (
            _set("sources", "cvtc_traffic.mp4", "zones", "Z1", value=[[0, 0], [10, 10]]),
            "3 or more points",
        ),
        (
            _set("sources", "cvtc_traffic.mp4", "zones", "Z1", value=[[0, 0], [10, 10], [20, 20]]),
            "no area",
        ),
        (
            _set(
                "sources",
                "cvtc_traffic.mp4",
                "zones",
                "Z1",
                value=[[0, 0], [100, 100], [100, 0], [0, 50]],
            ),
            "edges 0 and 2 cross",
        ),
        (
            _set("sources", "cvtc_traffic.mp4", "zones", "Z1", value=[[0, 0], [700, 0], [0, 100]]),
            "leaves",
        ),
        (_set("frames_scaled_to_width", value=1280), "frames_scaled_to_width"),
    ],
)
def test_a_broken_file_is_refused_naming_where(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    raw = copy.deepcopy(RAW)
    change(raw)
    with pytest.raises(TruthError, match=message) as err:
        parse_truth(raw, "gt")
    assert str(err.value).startswith("gt")


def test_frame_12_is_a_still() -> None:
    # The parametrised case above relies on it.
    assert RAW["frames"][12]["source"].endswith(".jpg")


def test_every_frame_reads_at_its_recorded_size(footage: Path) -> None:
    truth = load_truth()
    wanted: dict[str, list[int]] = defaultdict(list)
    size = {}
    for f in truth.frames:
        wanted[f.source].append(f.frame)
        size[f.source, f.frame] = (f.height, f.width, 3)
    for source, frames in wanted.items():
        got = dict(frame_images(source, frames, footage))
        assert sorted(got) == sorted(frames), source
        for n, img in got.items():
            assert img.shape == size[source, n], (source, n)


def test_reading_past_the_end_or_a_still_frame_1_is_an_error(footage: Path) -> None:
    assert frame_image("dog.jpg", 0, footage).shape == (480, 640, 3)
    with pytest.raises(ValueError, match="only frame 0"):
        frame_image("dog.jpg", 1, footage)
    with pytest.raises(ValueError, match="ends before frame 100000"):
        frame_image("person-bicycle-car-detection.gif", 100000, footage)
    with pytest.raises(FileNotFoundError, match="footage not found"):
        frame_image("missing.mp4", 0, footage)
