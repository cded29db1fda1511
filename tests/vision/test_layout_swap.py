"""A new zone and line layout taken by a running camera: between frames, counts kept by line id.

The processor runs synchronously here (as the lockstep simulator runs it) with the
stand-in model of fixed boxes (tests/vision/sitefile.py), so each step is exact.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from edge.config import load_config
from edge.vision.config import CountLine, Zone
from edge.vision.model import VehicleModel
from edge.vision.pipeline import CameraProcessor
from edge.vision.tracker import Tracker

from tests.vision.conftest import live_frames
from tests.vision.sitefile import write_site
from tests.vision.test_tracker_count_line import LINE, box


def test_a_line_that_keeps_its_id_keeps_its_count_and_a_counted_vehicle() -> None:
    tr = Tracker([LINE])
    for k in range(12):
        tr.update(k * 0.2, [box(100, 110 + 6 * k)])  # crosses y 150 at k = 7
    assert tr.counts == {"l": 1}
    moved = CountLine("l", "cam", "N", 0, ((320.0, 160.0), (0.0, 160.0)))
    other = CountLine("m", "cam", "N", 0, ((320.0, 190.0), (0.0, 190.0)))
    tr.set_lines([moved, other])
    assert tr.counts == {"l": 1, "m": 0}
    for k in range(12, 18):  # the same vehicle on over both lines (y 176 .. 212)
        tr.update(k * 0.2, [box(100, 110 + 6 * k)])
    assert tr.counts == {"l": 1, "m": 1}  # `l` was counted for it already
    tr.set_lines([other])
    assert tr.counts == {"m": 1}


def test_the_processor_takes_a_new_layout_before_its_next_frame(tmp_path: Path) -> None:
    cfg = load_config(write_site(tmp_path))
    assert cfg.vision is not None
    cam = cfg.vision.cameras[0]
    proc = CameraProcessor(cam, cfg.vision, VehicleModel(tmp_path / "fixed.onnx"))
    frames = live_frames(40)
    t = 0.0
    for f in frames[:30]:  # until the health check says ok
        t += 0.1
        st = proc.process(t, f)
    assert {z.id: z.count for z in st.zones} == {"n-stop": 2, "n-left": 1}

    stop = cam.zones[0]
    away = replace(stop, polygon=((0.0, 60.0), (50.0, 60.0), (50.0, 10.0), (0.0, 10.0)),
                   kind="presence", length_m=None)  # fmt: skip
    right = Zone("n-right", cam.id, "N", 2, ((200.0, 190.0), (260.0, 190.0), (230.0, 140.0)),
                 "presence", None, None, "loop")  # fmt: skip
    new = replace(cam, zones=(away, right))
    setter = threading.Thread(target=proc.set_camera, args=(new,))  # from another thread
    setter.start()
    setter.join()
    assert proc.camera is cam  # nothing changes until the processing thread's next frame
    before = proc.inferences
    st = proc.process(t + 0.01, frames[30])  # 10 ms on: not due at infer_fps 5, a new crop
    assert proc.camera is new and proc.inferences == before + 1
    assert {z.id: z.count for z in st.zones} == {"n-stop": 0, "n-right": 1}
    assert not proc.always_infer  # no queue zone any more: the motion gate applies again
