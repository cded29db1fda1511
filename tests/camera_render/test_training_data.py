"""Training examples: the letterboxed input and its boxes still show the same vehicle."""

from __future__ import annotations

import numpy as np
from models.data import cut
from models.letterbox import INPUT_H, INPUT_W, PAD
from sim.camera.dataset import Sample
from sim.camera.render import CameraView, Conditions, Vehicle, render
from sim.camera.views import LaneZone

VIEW = CameraView(x=0.0, y=0.0, z=10.0, heading_deg=0.0, pitch_deg=15.0, hfov_deg=50.0)


def sample() -> Sample:
    cars = [
        Vehicle("near", -2.0, 30.0, 180.0, colour=(20, 20, 230)),
        Vehicle("far", 3.0, 55.0, 180.0, colour=(230, 20, 20)),
    ]
    frame, labels = render(VIEW, cars, Conditions(), np.random.default_rng(0))
    zone = LaneZone("l", "N", ((150.0, 60.0), (500.0, 60.0), (500.0, 330.0), (150.0, 330.0)),
                    ((150.0, 320.0), (500.0, 320.0)), 100.0, 60.0)  # fmt: skip
    return Sample(frame, labels, VIEW, (zone,), cars, Conditions(), "test", "N")


def test_boxes_follow_the_picture_into_the_input() -> None:
    s = sample()
    for seed in range(12):
        image, boxes = cut(s, np.random.default_rng(seed))
        assert image.shape == (INPUT_H, INPUT_W, 3) and image.dtype == np.uint8
        kept = boxes[boxes[:, 5] == 0]
        assert len(kept) >= 1
        for cls, x0, y0, x1, y1, _ in kept:
            assert cls == 0
            assert 0 <= x0 < x1 <= INPUT_W and 0 <= y0 < y1 <= INPUT_H
            patch = image[int(y0) : int(y1), int(x0) : int(x1)].astype(int)
            # a saturated red or blue body (RGB now) shows inside each box
            red = (patch[..., 0] > 150) & (patch[..., 2] < 80)
            blue = (patch[..., 2] > 150) & (patch[..., 0] < 80)
            assert (red | blue).mean() > 0.1
        # the picture fills one side of the input; the rest is the contract's grey
        grey = np.all(image == PAD, axis=2)
        assert grey.mean() < 0.7
        assert grey[:, 0].all() or grey[0].all() or grey[:, -1].all() or grey[-1].all()
