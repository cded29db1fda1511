"""A compact CenterNet-style detector: a small stride-32 backbone, a light top-down path
to stride 4, and per-cell heads (class heat map; centre offset and log size).

Exported, the heads become the YOLOv8 detect layout inside the graph: every output cell
is one candidate box (cx, cy, w, h in input pixels) with per-class confidences, peaks
kept (a 3x3 max-pool, CenterNet's NMS) and the rest zeroed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.letterbox import INPUT_H, INPUT_W

STRIDE = 4
NUM_CLASSES = 5
SIZE_LOG_RANGE = (-2.0, 4.5)  # exp() of this, times the stride, bounds box sides in px


def conv(ci: int, co: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(ci, co, k, stride, k // 2, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True)
    )


def dwconv(c: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise: a 3x3's reach at a fraction of its cost."""
    return nn.Sequential(
        nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(inplace=True),
        conv(c, c, k=1),
    )


class Detector(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        # a 4x4 stride-4 stem: no stride-2 feature map, the costliest part to train on a CPU
        self.s4 = nn.Sequential(
            nn.Conv2d(3, 24, 4, 4, 0, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True),
            dwconv(24),
        )  # fmt: skip
        self.s8 = nn.Sequential(conv(24, 48, 2), dwconv(48))
        self.s16 = nn.Sequential(conv(48, 64, 2), dwconv(64), dwconv(64))
        self.s32 = nn.Sequential(conv(64, 96, 2), dwconv(96))
        self.lat16 = conv(96 + 64, 64, k=1)
        self.lat8 = nn.Sequential(conv(64 + 48, 48, k=1), dwconv(48))
        self.lat4 = nn.Sequential(conv(48 + 24, 32, k=1), dwconv(32))
        self.heat = nn.Conv2d(32, num_classes, 1)
        self.reg = nn.Conv2d(32, 4, 1)  # offset x, y (sigmoid); log w, h (stride units)
        nn.init.constant_(self.heat.bias, -2.19)  # start at p = 0.1 (CenterNet)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f4 = self.s4(x)
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        up = F.interpolate(f32, size=f16.shape[-2:], mode="nearest")
        t16 = self.lat16(torch.cat([up, f16], 1))
        up = F.interpolate(t16, size=f8.shape[-2:], mode="nearest")
        t8 = self.lat8(torch.cat([up, f8], 1))
        up = F.interpolate(t8, size=f4.shape[-2:], mode="nearest")
        t4 = self.lat4(torch.cat([up, f4], 1))
        return self.heat(t4), self.reg(t4)


class Exported(nn.Module):
    """images [1, 3, H, W] RGB 0..1 -> [1, 4 + nc, N] (YOLOv8 detect layout)."""

    def __init__(self, net: Detector) -> None:
        super().__init__()
        self.net = net
        gh, gw = INPUT_H // STRIDE, INPUT_W // STRIDE
        gy, gx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        self.register_buffer("gx", gx.reshape(1, 1, -1).float())
        self.register_buffer("gy", gy.reshape(1, 1, -1).float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        heat, reg = self.net(images)
        heat = torch.sigmoid(heat)
        peaks = (F.max_pool2d(heat, 3, 1, 1) == heat).float()
        scores = (heat * peaks).flatten(2)
        reg = reg.flatten(2)
        off = torch.sigmoid(reg[:, 0:2])
        size = torch.exp(reg[:, 2:4].clamp(*SIZE_LOG_RANGE)) * STRIDE
        cx = (self.gx + off[:, 0:1]) * STRIDE
        cy = (self.gy + off[:, 1:2]) * STRIDE
        return torch.cat([cx, cy, size, scores], 1)
