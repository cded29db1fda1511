"""Camera health from its frames: ok, disconnected, frozen, dark, obstructed, moved.

Pure: the caller passes the time and each frame (or that none came). A
condition must hold for HOLD_S before it is reported and be gone for
CLEAR_S before the camera is ok again, so a flicker does not toggle the
controller between camera and loops; everything is reported within 5 s.
- disconnected: no frame for NO_FRAME_S;
- frozen: the same picture frame after frame (mean change under
  FROZEN_DIFF grey levels: a live sensor always has noise; a hung encoder
  or driver repeats its buffer, a codec at most settles its last bits);
- dark: the picture is black: mean luma under `dark_level` and not even
  its brightest 0.1 % lit (a night scene has headlights and street lights);
- obstructed: no detail (variance of the Laplacian under `sharpness_min`):
  a covered, fogged or out-of-focus lens;
- moved: the view no longer lines up with the reference (phase correlation
  shift above MOVED_FRACTION of the width, or no correlation peak), judged
  on the median of the last few checks (moving vehicles drop out of it),
  blurred (sensor noise drops out). The reference is the configured image,
  else the first good frame after start.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

OK = "ok"
DISCONNECTED = "disconnected"
FROZEN = "frozen"
DARK = "dark"
OBSTRUCTED = "obstructed"
MOVED = "moved"
HOLD_S = 2.0
CLEAR_S = 3.0
NO_FRAME_S = 2.0
CHECK_EVERY_S = 0.5
MOVED_FRACTION = 0.03
MIN_PEAK = 0.03  # phase correlation response below this: nothing lines up
MEDIAN_OF = 3
LIGHTS_PCT = 90.0  # the view comparison clips the brightest 10 % (headlights)
FROZEN_DIFF = 0.25  # a live sensor changes by 1-3 levels a frame from noise alone
SMALL_W = 160


def small_gray(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    gray = np.asarray(
        cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame, np.uint8
    )
    h, w = gray.shape[:2]
    if w <= SMALL_W:
        return gray
    size = (SMALL_W, max(1, round(h * SMALL_W / w)))
    return np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), np.uint8)


@dataclass(frozen=True, slots=True)
class Measures:
    mean: float
    bright: float  # 99.9th percentile luma
    sharpness: float  # variance of the Laplacian
    shift_px: float | None  # against the reference, in small-picture pixels
    peak: float | None


def measure(
    gray: npt.NDArray[np.uint8],
    reference: npt.NDArray[np.float32] | None,
    background: npt.NDArray[np.float32] | None = None,
) -> Measures:
    mean = float(cv2.mean(gray)[0])
    hist = cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel()
    bright = float(np.searchsorted(np.cumsum(hist), 0.999 * gray.size))
    sharp = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    shift = peak = None
    if reference is not None and background is not None and reference.shape == gray.shape:
        # phaseCorrelate applies the window in place: give it copies
        (dx, dy), peak = cv2.phaseCorrelate(
            _without_lights(reference), _without_lights(background), _window(gray.shape)
        )
        shift = float((dx * dx + dy * dy) ** 0.5)
        peak = float(peak)
    return Measures(mean, bright, sharp, shift, peak)


_WINDOWS: dict[tuple[int, int], npt.NDArray[np.float32]] = {}


def _without_lights(img: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The view's structure: clipped at its LIGHTS_PCT percentile, then the gradient
    magnitude. At night moving headlights and their glow are the brightest things in
    view and made phase correlation follow them instead of the road's edges and
    markings (a parked camera judged moved most of the night)."""
    top = float(np.percentile(img, LIGHTS_PCT))
    clipped = np.minimum(img, np.float32(top))
    gx = cv2.Sobel(clipped, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(clipped, cv2.CV_32F, 0, 1)
    return np.asarray(cv2.magnitude(gx, gy), np.float32)


def aligned(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The picture as the view comparison sees it: blurred, float."""
    return np.asarray(cv2.GaussianBlur(gray, (5, 5), 0), np.float32)


def _window(shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    key = (shape[1], shape[0])
    if key not in _WINDOWS:
        _WINDOWS[key] = np.asarray(cv2.createHanningWindow(key, cv2.CV_32F), np.float32)
    return _WINDOWS[key]


class HealthMonitor:
    def __init__(
        self,
        reference: npt.NDArray[np.uint8] | None = None,
        *,
        dark_level: float = 20.0,
        sharpness_min: float = 15.0,
    ) -> None:
        self.dark_level = dark_level
        self.sharpness_min = sharpness_min
        self.reference = aligned(small_gray(reference)) if reference is not None else None
        self._recent: deque[npt.NDArray[np.uint8]] = deque(maxlen=MEDIAN_OF)
        self.state = DISCONNECTED
        self.detail = "no frame yet"
        self.measures: Measures | None = None
        self._last_frame_s: float | None = None
        self._last_sub: npt.NDArray[np.uint8] | None = None
        self._same_since: float | None = None
        self._next_check = 0.0
        self._raw = OK
        self._raw_since = 0.0
        self._raw_detail = ""
        self._started: float | None = None

    def frame(self, t_s: float, frame: npt.NDArray[np.uint8]) -> str:
        """A new frame at t_s; returns the (held) health."""
        if self._started is None:
            self._started = t_s
        self._last_frame_s = t_s
        h, w = frame.shape[:2]
        size = (min(w, SMALL_W * 2), max(1, round(h * min(w, SMALL_W * 2) / w)))
        # nearest neighbour keeps the sensor's noise (averaging would hide it); C, no GIL
        sub = np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST), np.uint8)
        last, self._last_sub = self._last_sub, sub
        same = (
            last is not None
            and last.shape == sub.shape
            and float(np.mean(cv2.mean(cv2.absdiff(last, sub))[:3])) < FROZEN_DIFF
        )
        if same:
            if self._same_since is None:
                self._same_since = t_s
        else:
            self._same_since = None
        if t_s >= self._next_check:
            self._next_check = t_s + CHECK_EVERY_S
            self._judge(t_s, small_gray(frame))
        return self.poll(t_s)

    def poll(self, t_s: float) -> str:
        """Without a frame (called on every cycle): notices a camera gone silent."""
        if self._started is None:
            self._started = t_s
        if self._last_frame_s is None or t_s - self._last_frame_s > NO_FRAME_S:
            since = self._last_frame_s if self._last_frame_s is not None else self._started
            self._set_raw(t_s, DISCONNECTED, f"no frame for {t_s - since:.1f} s")
        self._settle(t_s)
        return self.state

    def _judge(self, t_s: float, gray: npt.NDArray[np.uint8]) -> None:
        if self._recent and self._recent[-1].shape != gray.shape:
            self._recent.clear()
        self._recent.append(gray)
        background = None
        if self.reference is not None and len(self._recent) == MEDIAN_OF:
            a, b, c = self._recent  # the median of three, in OpenCV (fast, outside the GIL)
            med = cv2.max(cv2.min(a, b), cv2.min(cv2.max(a, b), c))
            background = aligned(np.asarray(med, np.uint8))
        m = measure(gray, self.reference, background)
        self.measures = m
        if m.mean < self.dark_level and m.bright < 2 * self.dark_level:
            self._set_raw(t_s, DARK, f"mean luma {m.mean:.0f}, brightest {m.bright:.0f}")
        elif self._same_since is not None and t_s - self._same_since >= 0.5:
            self._set_raw(t_s, FROZEN, f"identical frames for {t_s - self._same_since:.1f} s")
        elif m.sharpness < self.sharpness_min:
            self._set_raw(t_s, OBSTRUCTED, f"no detail: Laplacian variance {m.sharpness:.1f}")
        elif (
            m.shift_px is not None
            and m.peak is not None
            and (m.shift_px > MOVED_FRACTION * gray.shape[1] or m.peak < MIN_PEAK)
        ):
            self._set_raw(
                t_s, MOVED, f"view shifted {m.shift_px:.1f} px (of {gray.shape[1]}), "
                f"correlation {m.peak:.2f}"
            )  # fmt: skip
        else:
            self._set_raw(t_s, OK, "")
            if self.reference is None and self.state == OK:
                self.reference = aligned(gray)  # the first good view is the reference

    def _set_raw(self, t_s: float, state: str, detail: str) -> None:
        # The hold counts from the first fault: one fault turning into another (a dark
        # picture the codec then freezes) keeps counting.
        if (state == OK) != (self._raw == OK):
            self._raw_since = t_s
        self._raw = state
        self._raw_detail = detail

    def _settle(self, t_s: float) -> None:
        held = t_s - self._raw_since
        if self._raw == self.state or (self._raw != OK and self.state != OK):
            self.state, self.detail = self._raw, self._raw_detail
        elif self._raw == OK and (held >= CLEAR_S or self.state == DISCONNECTED):
            self.state, self.detail = OK, ""
        elif self._raw != OK and (held >= HOLD_S or self._raw == DISCONNECTED):
            self.state, self.detail = self._raw, self._raw_detail
