"""Pure camera renderer: SUMO vehicles drawn in perspective from a pole camera, with labels.

World coordinates are SUMO network metres (x east, y north, z up). A camera has no
roll: it turns by its heading (compass degrees, 0 = north, clockwise, like SUMO's
vehicle angle) and tilts down by its pitch. Vehicles are shaded 3-D boxes (a body
and a cabin, a cab and a cargo box, a bus with a window band, a rider on a
motorcycle, an emergency van with a light bar) drawn farthest first; an id buffer
drawn in the same order gives each vehicle's visible fraction, so a label says
exactly what the frame shows. The static scene (sky, ground, road) is drawn once
per view and cached; lighting, lamps, rain, glare, noise and JPEG artefacts are
applied per frame. numpy and OpenCV only; no clock, no global randomness (the
caller passes a numpy Generator), so a seed gives the same frame.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

KINDS: tuple[str, ...] = ("car", "truck", "bus", "motorcycle", "emergency")
CLASS_ID = {k: i for i, k in enumerate(KINDS)}
LIGHTS = ("day", "dusk", "night")
NEAR_M = 0.5  # the near clipping plane: nothing closer to the lens is drawn
FAR_M = 250.0  # vehicles farther than this are a pixel or less: skipped

_ROAD_IDS = itertools.count(1)
Light = Literal["day", "dusk", "night"]
Colour = tuple[int, int, int]  # BGR
FloatArray = npt.NDArray[np.float64]
Frame = npt.NDArray[np.uint8]


class RenderError(ValueError):
    """A view, vehicle or condition that cannot be rendered, with what is wrong."""


@dataclass(frozen=True, slots=True)
class CameraView:
    """A pole camera: position (m), heading (compass deg), pitch (deg down), horizontal fov."""

    x: float
    y: float
    z: float
    heading_deg: float
    pitch_deg: float
    hfov_deg: float = 50.0
    width: int = 640
    height: int = 360

    def __post_init__(self) -> None:
        if not 5.0 <= self.hfov_deg <= 150.0:
            raise RenderError(f"camera hfov {self.hfov_deg} deg: expected 5..150")
        if self.width < 16 or self.height < 16:
            raise RenderError(f"camera frame {self.width}x{self.height}: at least 16x16")
        if not -89.0 <= self.pitch_deg <= 89.0:
            raise RenderError(f"camera pitch {self.pitch_deg} deg: expected -89..89")

    @property
    def focal_px(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    def basis(self) -> FloatArray:
        """Rows: the camera's right, up and forward unit vectors in world coordinates."""
        h, p = math.radians(self.heading_deg), math.radians(self.pitch_deg)
        sh, ch, sp, cp = math.sin(h), math.cos(h), math.sin(p), math.cos(p)
        return np.array(
            [[ch, -sh, 0.0], [sh * sp, ch * sp, cp], [sh * cp, ch * cp, -sp]], dtype=np.float64
        )


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A vehicle as SUMO reports it, its centre (not SUMO's front bumper) at x, y."""

    id: str
    x: float
    y: float
    angle_deg: float  # SUMO: 0 = heading north, clockwise
    length_m: float = 4.5
    width_m: float = 1.8
    height_m: float = 1.5
    kind: str = "car"
    colour: Colour = (170, 170, 170)
    headlights: bool = False
    lane: str = ""  # SUMO lane id, for ground truth per lane zone
    lane_pos_m: float = 0.0  # SUMO lane position of the front bumper

    def __post_init__(self) -> None:
        if self.kind not in CLASS_ID:
            raise RenderError(f"vehicle {self.id!r}: kind {self.kind!r} is not one of {KINDS}")
        if min(self.length_m, self.width_m, self.height_m) <= 0:
            raise RenderError(f"vehicle {self.id!r}: length, width and height must be > 0")


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the weather, the hour and the sensor do to a frame."""

    light: Light = "day"
    rain: float = 0.0  # 0..1: streaks, haze, a darker sky
    glare: float = 0.0  # 0..1: sun flare by day, headlight bloom by night
    noise_sigma: float = 0.0  # sensor noise, grey levels (standard deviation)
    jpeg_quality: int = 0  # 0: none; else the JPEG quality the frame goes through
    exposure: float = 1.0  # brightness jitter around the light's own level

    def __post_init__(self) -> None:
        if self.light not in LIGHTS:
            raise RenderError(f"conditions light {self.light!r}: expected one of {LIGHTS}")
        if not (0.0 <= self.rain <= 1.0 and 0.0 <= self.glare <= 1.0):
            raise RenderError("conditions rain and glare must be within 0..1")
        if self.noise_sigma < 0 or not (self.jpeg_quality == 0 or 5 <= self.jpeg_quality <= 100):
            raise RenderError("conditions noise_sigma >= 0 and jpeg_quality 0 or 5..100")

    @staticmethod
    def sample(rng: np.random.Generator, light: Light | None = None) -> Conditions:
        """Varied conditions for a data set: a light (given or drawn), then the rest."""
        chosen: Light = light or LIGHTS[int(rng.choice(3, p=[0.5, 0.2, 0.3]))]  # type: ignore[assignment]
        rainy = rng.random() < 0.3
        return Conditions(
            light=chosen,
            rain=float(rng.uniform(0.3, 1.0)) if rainy else 0.0,
            glare=float(rng.uniform(0.2, 0.9)) if rng.random() < 0.25 else 0.0,
            noise_sigma=float(rng.uniform(0.0, 9.0)),
            jpeg_quality=int(rng.integers(25, 90)) if rng.random() < 0.6 else 0,
            exposure=float(rng.uniform(0.8, 1.2)),
        )


@dataclass(frozen=True, slots=True)
class Label:
    """One visible vehicle: class, pixel box (x0, y0, x1, y1) clipped to the frame, and
    the fraction of its in-frame silhouette that nothing in front of it hides."""

    vehicle_id: str
    kind: str
    class_id: int
    box: tuple[float, float, float, float]
    visible_fraction: float
    ground_px: tuple[float, float]  # the centre of its footprint on the road, in pixels
    lane: str
    lane_pos_m: float


@dataclass(frozen=True, eq=False)
class Road:
    """The static scene: ground polygons (asphalt, junction) and markings, world metres.

    Compared by identity: the renderer caches the drawn scene per (view, road)."""

    surfaces: tuple[tuple[FloatArray, Colour], ...] = ()
    markings: tuple[tuple[FloatArray, Colour], ...] = ()
    ground: Colour = (70, 110, 90)
    sky: Colour = (230, 200, 160)
    _id: int = field(default_factory=lambda: next(_ROAD_IDS))


EMPTY_ROAD = Road()


# --- geometry -------------------------------------------------------------------------


def camera_coords(view: CameraView, points_xyz: npt.ArrayLike) -> FloatArray:
    """World points (n, 3) -> camera coordinates (right, up, forward), metres."""
    pts = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    cam: FloatArray = (pts - np.array([view.x, view.y, view.z])) @ view.basis().T
    return cam


def _to_pixels(view: CameraView, cam: FloatArray) -> FloatArray:
    f = view.focal_px
    with np.errstate(divide="ignore", invalid="ignore"):
        u = view.width / 2.0 + f * cam[:, 0] / cam[:, 2]
        v = view.height / 2.0 - f * cam[:, 1] / cam[:, 2]
    return np.stack([u, v], axis=1)


def project(view: CameraView, points_xyz: npt.ArrayLike) -> FloatArray:
    """World points (n, 3) -> pixels (n, 2); a point behind the near plane gives NaN."""
    cam = camera_coords(view, points_xyz)
    px = _to_pixels(view, cam)
    px[cam[:, 2] < NEAR_M] = np.nan
    return px


def ground_point(view: CameraView, pixels: npt.ArrayLike) -> FloatArray:
    """Pixels (n, 2) -> the world points (n, 2) where their rays meet the road (z = 0);
    NaN for a pixel at or above the horizon."""
    px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    f = view.focal_px
    rays_cam = np.stack(
        [(px[:, 0] - view.width / 2.0) / f, -(px[:, 1] - view.height / 2.0) / f, np.ones(len(px))],
        axis=1,
    )
    rays = rays_cam @ view.basis()  # camera -> world directions
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -view.z / rays[:, 2]
    out = np.stack([view.x + t * rays[:, 0], view.y + t * rays[:, 1]], axis=1)
    out[~(t > 0)] = np.nan
    return out


def clip_polygon(poly: FloatArray, normal: FloatArray, offset: float) -> FloatArray:
    """Keep the part of a convex or simple polygon where points . normal >= offset."""
    if len(poly) == 0:
        return poly
    d = poly @ normal - offset
    if (d >= 0).all():
        return poly
    if (d < 0).all():
        return poly[:0]
    out: list[FloatArray] = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        da, db = d[i], d[(i + 1) % n]
        if da >= 0:
            out.append(a)
        if (da >= 0) != (db >= 0):
            out.append(a + (b - a) * (da / (da - db)))
    return np.array(out)


_Z_AXIS = np.array([0.0, 0.0, 1.0])


def project_polygon(view: CameraView, poly_xyz: FloatArray) -> FloatArray:
    """A world polygon -> its pixel polygon, clipped at the near plane (maybe empty)."""
    cam = camera_coords(view, poly_xyz)
    if (cam[:, 2] < NEAR_M).any():
        cam = clip_polygon(cam, _Z_AXIS, NEAR_M)
        if len(cam) < 3:
            return np.zeros((0, 2))
    return _to_pixels(view, cam)


def clip_to_frame(view: CameraView, poly_px: FloatArray) -> FloatArray:
    """A pixel polygon cut to the frame rectangle."""
    w, h = float(view.width), float(view.height)
    for normal, off in (((1.0, 0.0), 0.0), ((-1.0, 0.0), -w), ((0.0, 1.0), 0.0), ((0.0, -1.0), -h)):
        poly_px = clip_polygon(poly_px, np.array(normal), off)
        if len(poly_px) < 3:
            return np.zeros((0, 2))
    return poly_px


def offset_polyline(shape: FloatArray, offset_m: float) -> FloatArray:
    """A polyline (n, 2) moved sideways by offset_m (positive: to the right of travel)."""
    pts = np.asarray(shape, dtype=np.float64)
    seg = np.diff(pts, axis=0)
    seg /= np.maximum(np.linalg.norm(seg, axis=1, keepdims=True), 1e-9)
    right = np.stack([seg[:, 1], -seg[:, 0]], axis=1)
    normals = np.vstack([right[:1], right[:-1] + right[1:], right[-1:]])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    return pts + normals * offset_m


def cut_polyline(shape: FloatArray, start_m: float, end_m: float) -> FloatArray:
    """The piece of a polyline between two distances along it."""
    pts = np.asarray(shape, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    start_m, end_m = max(0.0, start_m), min(float(cum[-1]), end_m)
    inner = pts[(cum > start_m) & (cum < end_m)]

    def at(s: float) -> FloatArray:
        return np.array([np.interp(s, cum, pts[:, 0]), np.interp(s, cum, pts[:, 1])])

    return np.vstack([at(start_m), inner, at(end_m)])


def strip_polygon(shape: FloatArray, width_m: float, z: float = 0.0) -> FloatArray:
    """A polyline widened into a polygon (3-D, at height z), e.g. a lane or a marking."""
    left = offset_polyline(shape, -width_m / 2.0)
    right = offset_polyline(shape, width_m / 2.0)
    ring = np.vstack([left, right[::-1]])
    return np.hstack([ring, np.full((len(ring), 1), z)])


# --- vehicle shapes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    s0: float  # along the length, -0.5 rear .. 0.5 front (fractions)
    s1: float
    half_w: float  # fraction of the width
    z0: float  # metres
    z1: float
    colour: Colour
    layer: int  # drawn in layer order, each layer farthest first
    sides_only: bool = False  # a decal (window band, stripe): side faces only


_GLASS: Colour = (60, 45, 40)
_DARK: Colour = (35, 35, 35)
_WHITE: Colour = (225, 225, 225)


def _parts(v: Vehicle) -> list[_Part]:
    """The boxes a vehicle is made of; the variant comes from its id, so it is stable."""
    h = v.height_m
    var = zlib.crc32(v.id.encode()) % 1000 / 1000.0
    c = v.colour
    if v.kind == "car":
        cab_rear = -0.38 + 0.15 * var  # hatchback .. saloon
        cab_front = 0.12 + 0.12 * ((var * 7) % 1.0)
        waist = 0.5 + 0.1 * ((var * 3) % 1.0)
        return [
            _Part(-0.5, 0.5, 1.0, 0.15, h * waist, c, 0),
            _Part(cab_rear, cab_front, 0.86, h * waist, h, _GLASS, 1),
            _Part(cab_rear + 0.04, cab_front - 0.08, 0.8, h * 0.97, h, c, 2),
        ]
    if v.kind == "truck":
        cab = 0.3 - 0.06 * var
        box: Colour = _WHITE if var < 0.5 else c
        return [
            _Part(cab + 0.02, 0.5, 1.0, 0.3, h * 0.78, c, 0),
            _Part(cab + 0.02, 0.5, 0.97, h * 0.5, h * 0.72, _GLASS, 1, sides_only=True),
            _Part(-0.5, cab, 1.0, 0.45, h, box, 0),
        ]
    if v.kind == "bus":
        return [
            _Part(-0.5, 0.5, 1.0, 0.3, h, c, 0),
            _Part(-0.46, 0.5, 1.01, h * 0.5, h * 0.85, _GLASS, 1, sides_only=True),
        ]
    if v.kind == "motorcycle":
        return [
            _Part(-0.5, 0.5, 0.45, 0.3, 1.0, _DARK, 0),
            _Part(-0.2, 0.15, 0.8, 1.0, max(h, 1.55), c, 1),
        ]
    # emergency: a van with a stripe and a light bar
    stripe: Colour = (40, 40, 200) if var < 0.5 else (30, 150, 230)
    return [
        _Part(-0.5, 0.5, 1.0, 0.2, h, c, 0),
        _Part(0.28, 0.5, 1.01, h * 0.55, h * 0.85, _GLASS, 1, sides_only=True),
        _Part(-0.48, 0.2, 1.01, h * 0.35, h * 0.48, stripe, 1, sides_only=True),
        _Part(0.1, 0.3, 0.8, h, h + 0.22, (200, 60, 40), 2),
    ]


_BIT_FRONT = np.array([i & 1 for i in range(8)], bool)
_BIT_LEFT = np.array([i & 2 for i in range(8)], bool)
_BIT_TOP = np.array([i & 4 for i in range(8)], bool)
# faces: corner ring (indices: bit 0 = front, bit 1 = left, bit 2 = top) and shade
_TOP, _FRONT, _REAR, _RIGHT, _LEFT = (
    (4, 5, 7, 6),
    (1, 3, 7, 5),
    (0, 2, 6, 4),
    (0, 1, 5, 4),
    (2, 3, 7, 6),
)
_SHADE = {_TOP: 1.0, _FRONT: 0.8, _REAR: 0.7, _RIGHT: 0.62, _LEFT: 0.55}


def _shade(colour: Colour, k: float) -> Colour:
    return (int(colour[0] * k), int(colour[1] * k), int(colour[2] * k))


# --- scene cache ----------------------------------------------------------------------

_SCENE_CACHE: OrderedDict[tuple[CameraView, int], Frame] = OrderedDict()
_SCENE_CACHE_SIZE = 128


def _scene(view: CameraView, road: Road) -> Frame:
    key = (view, road._id)
    hit = _SCENE_CACHE.get(key)
    if hit is not None:
        _SCENE_CACHE.move_to_end(key)
        return hit
    img = np.empty((view.height, view.width, 3), np.uint8)
    img[:] = road.ground
    horizon = view.height / 2.0 - view.focal_px * math.tan(math.radians(view.pitch_deg))
    top = int(np.clip(math.ceil(horizon), 0, view.height))
    if top > 0:  # the sky, paler towards the horizon
        ramp = np.linspace(0.8, 1.05, top)[:, None, None]
        img[:top] = np.clip(np.array(road.sky)[None, None, :] * ramp, 0, 255).astype(np.uint8)
    for poly, colour in (*road.surfaces, *road.markings):
        px = project_polygon(view, poly)
        if len(px) >= 3:
            pts = np.round(px * 8).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, shift=3)
    _SCENE_CACHE[key] = img
    if len(_SCENE_CACHE) > _SCENE_CACHE_SIZE:
        _SCENE_CACHE.popitem(last=False)
    return img


# --- per-frame effects ----------------------------------------------------------------

_LIGHT_GAIN = {"day": (1.0, 1.0, 1.0), "dusk": (0.62, 0.5, 0.48), "night": (0.26, 0.22, 0.2)}
_noise_bank: dict[tuple[int, int], npt.NDArray[np.int16]] = {}


def _noise(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> npt.NDArray[np.int16]:
    """Sensor noise from a fixed bank (drawing 700k normals a frame costs ~10 ms)."""
    h, w = shape
    bank = _noise_bank.get(shape)
    if bank is None:
        bank = (np.random.default_rng(7).standard_normal((h + 32, w + 32, 3)) * 64).astype(np.int16)
        _noise_bank[shape] = bank
    oy, ox = int(rng.integers(0, 32)), int(rng.integers(0, 32))
    part = bank[oy : oy + h, ox : ox + w]
    scaled: npt.NDArray[np.int16] = (part * round(sigma * 4)) >> 8
    return scaled


def _glow(img: Frame, lamps: list[tuple[float, float, float, Colour]], strength: float) -> None:
    """Bloom around lamps: drawn at quarter size, blurred, added."""
    h, w = img.shape[:2]
    small = np.zeros((h // 4 + 1, w // 4 + 1, 3), np.uint8)
    for u, v, r, colour in lamps:
        cv2.circle(small, (int(u / 4), int(v / 4)), max(1, int(r * 2.5 / 4)), colour, -1)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.addWeighted(img, 1.0, big, strength, 0.0, dst=img)


# --- render ---------------------------------------------------------------------------


def render(
    view: CameraView,
    vehicles: Sequence[Vehicle],
    conditions: Conditions,
    rng: np.random.Generator,
    road: Road = EMPTY_ROAD,
    with_labels: bool = True,
) -> tuple[Frame, list[Label]]:
    """Draw one frame (BGR uint8, view.height x view.width) and label each visible vehicle
    (`with_labels=False`: no labels, a quarter less work, for a camera feed)."""
    img = _scene(view, road).copy()
    # vehicle tags at half resolution: enough for visible fractions, 4x cheaper to count
    ids = np.zeros(((view.height + 1) // 2, (view.width + 1) // 2), np.int16)
    basis = view.basis()
    origin = np.array([view.x, view.y, view.z])
    if vehicles:
        centres = np.array([[v.x, v.y, v.height_m / 2.0] for v in vehicles])
        cam_c = (centres - origin) @ basis.T
        reach = np.array([max(v.length_m, v.width_m, v.height_m) / 2.0 + 0.5 for v in vehicles])
        d = np.maximum(cam_c[:, 2], NEAR_M)
        f = view.focal_px
        # the bounding sphere's pixel box must touch the frame (or the sphere the lens)
        margin = f * reach / d
        pu = np.abs(f * cam_c[:, 0] / d) - margin < view.width / 2.0
        pv = np.abs(f * cam_c[:, 1] / d) - margin < view.height / 2.0
        keep = ((cam_c[:, 2] < reach) | (pu & pv)) & (cam_c[:, 2] > -reach) & (cam_c[:, 2] < FAR_M)
        order = [int(k) for k in np.argsort(-cam_c[:, 2], kind="stable") if keep[k]]
    else:
        order = []
    drawn = [vehicles[k] for k in order]
    f = view.focal_px
    silhouettes = _draw_vehicles(img, ids, view, drawn, basis, origin)
    lamps: list[tuple[float, float, float, Colour]] = []
    for n, veh in enumerate(drawn):
        if silhouettes[n] and (veh.headlights or veh.kind == "emergency"):
            for lamp in _lamps(view, veh, f):
                u, v = int(lamp[0]), int(lamp[1])
                # a lamp shows only where its own vehicle (or nothing) is in front
                inside = 0 <= u < view.width and 0 <= v < view.height
                if not inside or int(ids[v // 2, u // 2]) in (0, n + 1):
                    lamps.append(lamp)
    labels = _labels(view, drawn, ids, silhouettes) if with_labels else []
    _finish(img, view, conditions, rng, lamps)
    return img, labels


_Geometry = tuple[FloatArray, list[Colour], list[int], list[bool]]
_GEOMETRY: OrderedDict[tuple[str, str, float, float, float, Colour], _Geometry] = OrderedDict()


def _geometry(v: Vehicle) -> _Geometry:
    """The vehicle's boxes as arrays (s0, s1, half_w, z0, z1), colours, layers, decal flags."""
    key = (v.id, v.kind, v.length_m, v.width_m, v.height_m, v.colour)
    hit = _GEOMETRY.get(key)
    if hit is None:
        parts = _parts(v)
        spec = np.array([[p.s0, p.s1, p.half_w, p.z0, p.z1] for p in parts])
        hit = (
            spec,
            [p.colour for p in parts],
            [p.layer for p in parts],
            [p.sides_only for p in parts],
        )
        _GEOMETRY[key] = hit
        if len(_GEOMETRY) > 4096:
            _GEOMETRY.popitem(last=False)
    return hit


_RINGS = (_TOP, _FRONT, _REAR, _RIGHT, _LEFT)
_RING_INDEX = np.array(_RINGS)


def _draw_vehicles(
    img: Frame,
    ids: npt.NDArray[np.int16],
    view: CameraView,
    drawn: list[Vehicle],
    basis: FloatArray,
    origin: FloatArray,
) -> list[list[npt.NDArray[np.int32]]]:
    """Shadows and visible faces, farthest vehicle first; each vehicle's tag (its index
    + 1) into ids. Returns each vehicle's drawn polygons (pixels, 3 fractional bits).

    All corners of all boxes are computed and projected in one numpy pass; the loop
    that remains only picks faces and calls OpenCV."""
    if not drawn:
        return []
    geoms = [_geometry(v) for v in drawn]
    counts = [len(g[0]) + 1 for g in geoms]  # + the shadow box
    shadow = np.array([[-0.53, 0.53, 1.12, 0.0, 0.0]])
    spec = np.vstack([row for g in geoms for row in (g[0], shadow)])
    owner = np.repeat(np.arange(len(drawn)), counts)
    veh = np.array([[v.x, v.y, math.radians(v.angle_deg), v.length_m, v.width_m] for v in drawn])
    vx, vy, ang, length, width = (veh[owner, i][:, None] for i in range(5))
    s = np.where(_BIT_FRONT, spec[:, 1:2], spec[:, 0:1]) * length
    w = np.where(_BIT_LEFT, -spec[:, 2:3], spec[:, 2:3]) * (width / 2.0)
    z = np.where(_BIT_TOP, spec[:, 4:5], spec[:, 3:4])
    sa, ca = np.sin(ang), np.cos(ang)
    world = np.stack([vx + s * sa + w * ca, vy + s * ca - w * sa, z], axis=-1)
    cam = (world - origin) @ basis.T
    depth_ok = cam[..., 2] >= NEAR_M
    with np.errstate(divide="ignore", invalid="ignore"):
        zc = np.where(depth_ok, cam[..., 2], 1.0)
        u = view.width / 2.0 + view.focal_px * cam[..., 0] / zc
        v = view.height / 2.0 - view.focal_px * cam[..., 1] / zc
    pts = np.round(np.stack([u, v], axis=-1) * 8).clip(-(2**28), 2**28).astype(np.int32)
    ring_front = np.all(depth_ok[:, _RING_INDEX], axis=2)  # (rows, 5)
    any_front = np.any(depth_ok, axis=1)
    # the camera in each vehicle's frame decides which faces show
    rx, ry = view.x - veh[owner, 0], view.y - veh[owner, 1]
    sa1, ca1 = np.sin(veh[owner, 2]), np.cos(veh[owner, 2])
    cs = rx * sa1 + ry * ca1
    cw = rx * ca1 - ry * sa1
    half = spec[:, 2] * veh[owner, 4] / 2.0
    faces = np.stack(
        [
            view.z > spec[:, 4],
            cs > spec[:, 1] * veh[owner, 3],
            cs < spec[:, 0] * veh[owner, 3],
            cw > half,
            cw < -half,
        ],
        axis=1,
    )
    depth = cam[..., 2].mean(axis=1).tolist()
    faces_l: list[list[bool]] = faces.tolist()
    ring_front_l: list[list[bool]] = np.asarray(ring_front).tolist()
    any_front_l: list[bool] = np.asarray(any_front).tolist()
    out: list[list[npt.NDArray[np.int32]]] = []
    row = 0
    for n, (g, count) in enumerate(zip(geoms, counts, strict=True)):
        polys: list[npt.NDArray[np.int32]] = []
        tag = n + 1
        sh = row + count - 1
        if any_front_l[sh]:
            ring = _RING_INDEX[0]
            px = pts[sh, ring] if ring_front_l[sh][0] else _clipped(view, world[sh, ring])
            if px is not None:
                cv2.fillConvexPoly(img, px, (28, 28, 28), cv2.LINE_AA, 3)
        colours, layers, decals = g[1], g[2], g[3]
        for k in sorted(range(count - 1), key=lambda i: (layers[i], -depth[row + i])):
            r = row + k
            if not any_front_l[r]:
                continue
            for f, ring in enumerate(_RINGS):
                if not faces_l[r][f] or (decals[k] and f < 3):
                    continue
                idx = _RING_INDEX[f]
                px = pts[r, idx] if ring_front_l[r][f] else _clipped(view, world[r, idx])
                if px is None:
                    continue
                cv2.fillConvexPoly(img, px, _shade(colours[k], _SHADE[ring]), cv2.LINE_AA, 3)
                cv2.fillConvexPoly(ids, px, tag, cv2.LINE_8, 4)
                polys.append(px)
        out.append(polys)
        row += count
    return out


def _clipped(view: CameraView, face: FloatArray) -> npt.NDArray[np.int32] | None:
    px = project_polygon(view, face)
    return np.round(px * 8).astype(np.int32) if len(px) >= 3 else None


def _lamps(view: CameraView, veh: Vehicle, f: float) -> list[tuple[float, float, float, Colour]]:
    """Headlights (facing the camera), tail lights (away), an emergency light bar."""
    a = math.radians(veh.angle_deg)
    fwd = np.array([math.sin(a), math.cos(a), 0.0])
    right = np.array([math.cos(a), -math.sin(a), 0.0])
    centre = np.array([veh.x, veh.y, 0.0])
    facing = float(fwd[0] * (view.x - veh.x) + fwd[1] * (view.y - veh.y)) > 0
    z = min(0.7, veh.height_m * 0.4)
    end = centre + fwd * veh.length_m * 0.5 * (1 if facing else -1)
    points: list[FloatArray] = []
    sizes: list[tuple[float, Colour]] = []
    if veh.headlights:  # facing: white head lamps; going away: red tail lamps
        lamp: Colour = (230, 250, 255) if facing else (30, 30, 220)
        sides = (0.0,) if veh.kind == "motorcycle" else (-0.38, 0.38)
        for side in sides:
            points.append(end + right * side * veh.width_m + [0, 0, z])
            sizes.append((0.13, lamp))
    if veh.kind == "emergency":  # the light bar, lit day and night
        bar_at = centre + fwd * veh.length_m * 0.2 + [0, 0, veh.height_m + 0.15]
        for side, bar in ((-0.3, (255, 60, 30)), (0.3, (40, 40, 255))):
            points.append(bar_at + right * side * veh.width_m)
            sizes.append((0.16, bar))
    if not points:
        return []
    cam = camera_coords(view, np.array(points))
    out: list[tuple[float, float, float, Colour]] = []
    for (x, y, d), (radius, colour) in zip(cam.tolist(), sizes, strict=True):
        if d >= NEAR_M:
            u = view.width / 2 + f * x / d
            v = view.height / 2 - f * y / d
            out.append((u, v, max(0.8, f * radius / d), colour))
    return out


def _labels(
    view: CameraView,
    drawn: list[Vehicle],
    ids: npt.NDArray[np.int16],
    silhouettes: list[list[npt.NDArray[np.int32]]],
) -> list[Label]:
    """Box from the drawn polygons, visible fraction = the vehicle's own pixels left in
    the tag buffer over its silhouette drawn alone (both at half resolution)."""
    visible = np.bincount(ids.ravel(), minlength=len(drawn) + 1)
    hh, hw = ids.shape
    out: list[Label] = []
    for n, veh in enumerate(drawn):
        seen = int(visible[n + 1])
        polys = silhouettes[n]
        if seen == 0 or not polys:
            continue
        allpts = np.vstack(polys)
        lo, hi = allpts.min(0) // 16, allpts.max(0) // 16 + 1
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(hi[0]), hw), min(int(hi[1]), hh)
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        shift = np.array([x0 * 16, y0 * 16], np.int32)
        for pts in polys:
            cv2.fillConvexPoly(mask, pts - shift, 1, cv2.LINE_8, 4)
        full = int(np.count_nonzero(mask))
        if full == 0:
            continue
        px = allpts / 8.0
        bx0, by0 = np.clip(px.min(0), 0, [view.width, view.height])
        bx1, by1 = np.clip(px.max(0), 0, [view.width, view.height])
        g = project(view, [[veh.x, veh.y, 0.0]])[0]
        out.append(
            Label(
                vehicle_id=veh.id,
                kind=veh.kind,
                class_id=CLASS_ID[veh.kind],
                box=(float(bx0), float(by0), float(bx1), float(by1)),
                visible_fraction=round(min(1.0, seen / full), 4),
                ground_px=(float(g[0]), float(g[1])),
                lane=veh.lane,
                lane_pos_m=veh.lane_pos_m,
            )
        )
    return out


def _finish(
    img: Frame,
    view: CameraView,
    c: Conditions,
    rng: np.random.Generator,
    lamps: list[tuple[float, float, float, Colour]],
) -> None:
    """Light, lamps, rain, glare, noise and compression, in place."""
    gain = _LIGHT_GAIN[c.light]
    k = c.exposure * (1.0 - 0.25 * c.rain)
    if (gain, k) != ((1.0, 1.0, 1.0), 1.0):  # a per-channel table: cv2.multiply is slower
        lut = np.clip(np.arange(256.0)[:, None] * (np.array(gain) * k)[None, :], 0, 255)
        cv2.LUT(img, lut.astype(np.uint8).reshape(256, 1, 3), dst=img)
    night = c.light != "day"
    for u, v, r, colour in lamps:
        cv2.circle(img, (int(u * 4), int(v * 4)), max(1, int(r * 4)), colour, -1, cv2.LINE_AA, 2)
    if lamps and (night or c.glare > 0):
        _glow(img, lamps, (0.9 if c.light == "night" else 0.5) + c.glare)
    if c.rain > 0:
        _rain(img, view, c.rain, rng)
    if c.glare > 0 and c.light == "day":
        _sun(img, c.glare, rng)
    if c.noise_sigma > 0:
        noisy = img.astype(np.int16) + _noise((view.height, view.width), rng, c.noise_sigma)
        np.clip(noisy, 0, 255, out=noisy)
        img[:] = noisy
    if c.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, c.jpeg_quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            img[:] = decoded


def _rain(img: Frame, view: CameraView, rain: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    n = int(rain * 260)
    xs = rng.integers(0, w, n)
    ys = rng.integers(0, h, n)
    lens = rng.integers(6, 22, n)
    slant = float(rng.uniform(-0.3, 0.3))
    streaks = np.zeros_like(img)
    for x, y, ln in zip(xs.tolist(), ys.tolist(), lens.tolist(), strict=True):
        cv2.line(streaks, (x, y), (int(x + slant * ln), y + ln), (150, 150, 150), 1)
    cv2.blur(img, (3, 3), dst=img)
    haze = np.full_like(img, 120)
    cv2.addWeighted(img, 1.0 - 0.3 * rain, haze, 0.3 * rain, 0.0, dst=img)
    cv2.add(img, streaks, dst=img)


_sun_template: dict[tuple[int, int], Frame] = {}


def _sun(img: Frame, glare: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    tpl = _sun_template.get((h, w))
    if tpl is None:
        yy, xx = np.mgrid[-h:h, -w:w].astype(np.float32)
        r = np.sqrt(xx**2 + yy**2) / max(h, w)
        tpl = (np.clip(1.0 - r * 1.3, 0.0, 1.0) ** 2 * 255).astype(np.uint8)
        _sun_template[(h, w)] = tpl
    cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h // 3 + 1))
    part = tpl[h - cy : 2 * h - cy, w - cx : 2 * w - cx]
    layer = cv2.merge([part, part, part])
    cv2.addWeighted(img, 1.0, layer, glare, 0.0, dst=img)
