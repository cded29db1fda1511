"""Site configuration: TOML in, a validated frozen `Site` out.

Validation happens once, at start. Unknown keys are rejected, and every
problem names the file, the key path and what is wrong; all problems are
collected so that `edge check` can print them at once.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge import clearance
from edge.control import geometry
from edge.control.site import (
    ABSOLUTE_MIN_YELLOW_MS,
    MIN_PED_CLEAR_MS,
    MIN_WALK_MS,
    Approach,
    Channel,
    Detector,
    FlashColour,
    Movement,
    Overlap,
    Pattern,
    Phase,
    PhaseTiming,
    Plan,
    Preempt,
    Recall,
    SafetyMinimums,
    SignalKey,
    SignalKind,
    Site,
    TransitPriority,
    Turn,
)
from edge.j2735.mapdata import Geometry
from edge.j2735.sitemap import MapCfg, build_map
from edge.neighbours import MAX_TRAVEL_MS, Link
from edge.schedule import WEEKDAYS, DayPlan, Schedule, parse_hhmm
from edge.vision.config import CameraCfg, Vision, VisionCfg, build_vision

MAX_PHASES = 16
MAX_CHANNELS = 32


class ConfigError(ValueError):
    """A site config with problems; `problems` lists every one, each self-contained."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


# --- the file's schema (pydantic), before cross-checks ----------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Seconds = Annotated[float, Field(ge=0, le=3600)]
FlashName = Literal["red", "yellow", "dark"]


class _SiteSection(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: str = ""
    default_plan: str
    startup_flash_s: Seconds = 6.0
    startup_all_red_s: Seconds = 3.0
    rest: Literal["last", "red"] = "last"
    simultaneous_gap_out: bool = True


class _SafetySection(_Strict):
    min_yellow_s: Annotated[float, Field(ge=ABSOLUTE_MIN_YELLOW_MS / 1000, le=10)] = 3.0
    min_red_clear_s: Annotated[float, Field(ge=0.5, le=10)] = 1.0
    min_green_s: Annotated[float, Field(ge=1, le=60)] = 5.0


class _ApproachCfg(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_]+$")]
    bearing_deg: Annotated[float, Field(ge=0, lt=360)]
    name: str = ""
    # For ITE's clearance check (edge/clearance.py): approach speed, the approach's
    # grade (uphill positive) and the width a through vehicle crosses to clear the junction.
    speed_kmh: Annotated[float, Field(gt=0, le=130)] | None = None
    grade_pct: Annotated[float, Field(ge=-15, le=15)] = 0.0
    width_m: Annotated[float, Field(gt=0, le=200)] | None = None


class _PhaseCfg(_Strict):
    id: Annotated[int, Field(ge=1, le=MAX_PHASES)]
    ring: Annotated[int, Field(ge=1, le=4)]
    group: Annotated[int, Field(ge=1, le=8)]
    movements: list[str] = []
    permissive: list[str] = []
    ped_crossing: str | None = None
    dual_entry: bool = False
    start_up: bool = False
    flash: FlashName = "red"


class _OverlapCfg(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=8)]
    type: Literal["normal", "fya"] = "normal"
    parents: Annotated[list[int], Field(min_length=1)]
    permissive_parents: list[int] = []
    movements: Annotated[list[str], Field(min_length=1)]
    trail_green_s: Seconds = 0.0
    yellow_s: Seconds | None = None
    red_clear_s: Seconds | None = None
    flash: FlashName = "red"


class _ChannelCfg(_Strict):
    id: Annotated[int, Field(ge=1, le=MAX_CHANNELS)]
    phase: int | None = None
    ped: int | None = None
    overlap: str | None = None
    flash: FlashName | None = None


class _DetectorCfg(_Strict):
    id: Annotated[int, Field(ge=1, le=255)]
    input: Annotated[int, Field(ge=1, le=64)]
    type: Literal["vehicle", "ped"] = "vehicle"
    phase: int | None = None
    calls: list[int] | None = None
    extends: list[int] | None = None
    delay_s: Seconds = 0.0
    carryover_s: Seconds = 0.0
    locking: bool = True
    max_presence_s: Seconds = 0.0  # occupied this long: failed (stuck on); 0: off
    no_activity_s: Annotated[float, Field(ge=0, le=86400)] = 0.0  # no vehicle this long: failed


RecallName = Literal["none", "min", "max", "ped", "soft"]


class _TimingCfg(_Strict):
    min_green_s: Seconds | None = None
    passage_s: Seconds | None = None
    max_green_s: Seconds | None = None
    max2_green_s: Seconds | None = None
    yellow_s: Seconds | None = None
    red_clear_s: Seconds | None = None
    red_revert_s: Seconds | None = None
    walk_s: Seconds | None = None
    ped_clear_s: Seconds | None = None
    recall: list[RecallName] | None = None
    added_initial_s: Seconds | None = None
    max_initial_s: Seconds | None = None
    time_before_reduction_s: Seconds | None = None
    time_to_reduce_s: Seconds | None = None
    min_gap_s: Seconds | None = None


class _PatternCfg(_Strict):
    cycle_s: Annotated[float, Field(ge=30, le=300)]
    offset_s: Seconds = 0.0
    coord_phases: Annotated[list[int], Field(min_length=1)]
    splits: dict[str, Seconds]
    force_off: Literal["fixed", "floating"] = "fixed"
    transition: Literal["best", "shortway", "longway", "dwell"] = "best"


class _PlanCfg(_Strict):
    defaults: _TimingCfg = _TimingCfg()
    phase: dict[str, _TimingCfg] = {}
    use_max2: bool = False
    pattern: str | None = None
    adaptive: bool = False  # adaptive timing (docs/adaptive.md); a plan is one or the other


class _PreemptCfg(_Strict):
    id: Annotated[int, Field(ge=1, le=8)]
    priority: Annotated[int, Field(ge=1, le=8)] | None = None
    input: Annotated[int, Field(ge=1, le=64)] | None = None
    approach: str | None = None
    # only for the vehicles of `approach` that take this turn (central's request names it)
    turn: Literal["L", "T", "R"] | None = None
    dwell_phases: Annotated[list[int], Field(min_length=1)]
    min_green_s: Seconds | None = None
    min_walk_s: Seconds = 0.0
    ped_clear_s: Seconds = 5.0
    min_dwell_s: Seconds = 10.0
    max_presence_s: Seconds = 180.0
    # a request with an ETA (central's) preempts this long before the arrival
    lead_s: Annotated[float, Field(ge=0, le=120)] = 20.0


class _NeighbourCfg(_Strict):
    """An upstream neighbour whose outflow arrives here (edge/neighbours.py `Link`)."""

    device: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]  # its link id
    detectors: Annotated[list[Annotated[int, Field(ge=1, le=255)]], Field(min_length=1)]
    release_phases: Annotated[list[Annotated[int, Field(ge=1, le=MAX_PHASES)]], Field(min_length=1)]
    phases: Annotated[list[int], Field(min_length=1)]  # this site's
    distance_m: Annotated[float, Field(gt=0, le=10_000)] | None = None
    speed_kmh: Annotated[float, Field(gt=0, le=150)] | None = None
    travel_s: Annotated[float, Field(gt=0, le=MAX_TRAVEL_MS / 1000)] | None = None
    loop_m: Annotated[float, Field(ge=0, le=30)] = 1.8  # its stop-bar loops' length


class _TransitCfg(_Strict):
    max_share: Annotated[float, Field(gt=0, le=0.5)] = 0.1
    max_extension_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    max_early_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    cycle_s: Annotated[float, Field(ge=30, le=300)] = 100.0


class _ExceptionDayCfg(_Strict):
    date: str
    day_plan: str
    name: str = ""


class _ScheduleCfg(_Strict):
    day_plans: Annotated[dict[str, dict[str, str]], Field(min_length=1)]
    week: dict[str, str]
    exceptions: list[_ExceptionDayCfg] = []


class _SiteFile(_Strict):
    site: _SiteSection
    safety: _SafetySection = _SafetySection()
    approaches: Annotated[list[_ApproachCfg], Field(min_length=2, max_length=8)]
    phases: Annotated[list[_PhaseCfg], Field(min_length=1, max_length=MAX_PHASES)]
    overlaps: list[_OverlapCfg] = []
    channels: Annotated[list[_ChannelCfg], Field(max_length=MAX_CHANNELS)] = []
    detectors: list[_DetectorCfg] = []
    preempts: list[_PreemptCfg] = []
    transit: _TransitCfg | None = None
    patterns: dict[str, _PatternCfg] = {}
    schedule: _ScheduleCfg | None = None
    plans: Annotated[dict[str, _PlanCfg], Field(min_length=1)]
    # Per-pair intergreens (edge/control/intergreens.py): leaving group -> entering group ->
    # seconds from the end of the leaving green to the entering green, e.g.
    # P2 = { P4 = 5.1, Ped4 = 4.6 }; groups named as `edge check`'s matrix names them.
    intergreens: dict[str, dict[str, Seconds]] = {}
    vision: VisionCfg | None = None
    cameras: list[CameraCfg] = []
    map: MapCfg | None = None  # J2735 MAP geometry (edge/j2735/sitemap.py)
    # Upstream signals whose released vehicles arrive here (edge/link/outflow.py).
    neighbour: list[_NeighbourCfg] = []


# Timing fields every phase needs once defaults are merged (seconds).
_REQUIRED = ("min_green_s", "passage_s", "max_green_s", "yellow_s", "red_clear_s")
_PED_REQUIRED = ("walk_s", "ped_clear_s")
_OPTIONAL_DEFAULTS = {
    "red_revert_s": 2.0,
    "added_initial_s": 0.0,
    "max_initial_s": 0.0,
    "time_before_reduction_s": 0.0,
    "time_to_reduce_s": 0.0,
}


MIN_MAX_PRESENCE_S = 60.0  # a car may wait a whole red on a stop-bar loop
MIN_NO_ACTIVITY_S = 300.0


def ms(seconds: float) -> int:
    return round(seconds * 1000)


# --- loading ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """Everything a site file holds: the core's Site, the runtime's schedule, the cameras."""

    site: Site
    schedule: Schedule | None
    vision: Vision | None = None
    map: Geometry | None = None  # the [map] table: lanes, stop lines, signal groups (J2735)
    # Advice that does not stop the site from running (ITE clearance intervals).
    warnings: tuple[str, ...] = ()
    # The [[neighbour]] entries: upstream signals' outflows projected into arrivals.
    neighbours: tuple[Link, ...] = ()


def load_site(path: str | Path) -> Site:
    """Read and validate a site TOML file; raise ConfigError naming every problem."""
    return load_config(path).site


def load_config(path: str | Path) -> SiteConfig:
    """As load_site, with the time-of-day schedule."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return config_from_dict(raw, source, base=Path(path).resolve().parent)


def site_from_dict(raw: Mapping[str, Any], source: str = "<config>") -> Site:
    return config_from_dict(raw, source).site


def config_from_dict(
    raw: Mapping[str, Any], source: str = "<config>", base: Path | None = None
) -> SiteConfig:
    """`base`: the directory relative file names (model, reference images) start from."""
    try:
        cfg = _SiteFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [_describe_error(raw, e) for e in exc.errors()]) from None
    problems: list[str] = []
    built = _build(cfg, problems)
    vision = geometry = None
    if built is not None:
        vision = build_vision(cfg.vision, cfg.cameras, built[0], problems.append, base)
        geometry = build_map(cfg.map, built[0], problems.append)
    if problems or built is None:
        raise ConfigError(source, problems)
    site, schedule = built
    neighbours = _build_neighbours(cfg.neighbour, site, problems.append)
    if problems:
        raise ConfigError(source, problems)
    warnings = _clearance_warnings(cfg.approaches, site)
    return SiteConfig(
        site,
        schedule,
        vision=vision,
        map=geometry,
        warnings=tuple(warnings),
        neighbours=neighbours,
    )


_LIST_SECTIONS = {
    "phases": "phase",
    "approaches": "approach",
    "overlaps": "overlap",
    "channels": "channel",
    "detectors": "detector",
    "preempts": "preempt",
    "cameras": "camera",
}
_NESTED_SECTIONS = {"zones": "zone", "lines": "line"}  # inside a camera


def _describe_error(raw: Mapping[str, Any], err: Any) -> str:
    """Turn a pydantic error into 'phase 4: yellow_s: Input should be ...'."""
    loc = list(err["loc"])
    where: list[str] = []
    if len(loc) >= 2 and loc[0] == "neighbour" and isinstance(loc[1], int):
        items = raw.get("neighbour")
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        device = item.get("device") if isinstance(item, dict) else None
        where.append(f"neighbour[{loc[1]}]" + (f" (device {device})" if device else ""))
        loc = loc[2:]
    elif len(loc) >= 2 and loc[0] in _LIST_SECTIONS and isinstance(loc[1], int):
        items = raw.get(loc[0])
        ident = None
        if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            ident = items[loc[1]].get("id")
        label = _LIST_SECTIONS[loc[0]]
        where.append(f"{label} {ident}" if ident is not None else f"{loc[0]}[{loc[1]}]")
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        loc = loc[2:]
        if len(loc) >= 2 and loc[0] in _NESTED_SECTIONS and isinstance(loc[1], int):
            sub = item.get(loc[0]) if isinstance(item, dict) else None
            row = sub[loc[1]] if isinstance(sub, list) and loc[1] < len(sub) else None
            rid = row.get("id") if isinstance(row, dict) else None
            label = _NESTED_SECTIONS[loc[0]]
            where.append(f"{label} {rid}" if rid is not None else f"{loc[0]}[{loc[1]}]")
            loc = loc[2:]
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        # Named after its parent: "phase 3: unknown key 'min_gren' (did you mean ...)".
        key = str(loc.pop()) if loc else ""
        msg = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, _keys_at(err["loc"][:-1]), n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    else:
        msg += f" (got {_shown(err.get('input'))})"
    path = ".".join(str(x) for x in loc)
    head = ": ".join([*where, path] if path else where)
    return f"{head}: {msg}" if head else msg


def _shown(value: Any) -> str:
    """A bad value as the file gave it, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _keys_at(loc: Sequence[int | str]) -> list[str]:
    """The keys the schema allows at `loc` (a pydantic error location), or none."""
    node: Any = _SiteFile
    for part in loc:
        node = _unwrap(node)
        origin = typing.get_origin(node)
        if isinstance(part, int) and origin is list:
            node = typing.get_args(node)[0]
        elif origin is dict:
            node = typing.get_args(node)[1]
        elif isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = node.model_fields[str(part)].annotation
        else:
            return []
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def _unwrap(node: Any) -> Any:
    """Strip Annotated[...] and `| None` from a field's type."""
    while True:
        origin = typing.get_origin(node)
        if origin is Annotated:
            node = typing.get_args(node)[0]
        elif origin in (types.UnionType, typing.Union):
            args = [a for a in typing.get_args(node) if a is not type(None)]
            if len(args) != 1:
                return node
            node = args[0]
        else:
            return node


def _build(cfg: _SiteFile, problems: list[str]) -> tuple[Site, Schedule | None] | None:
    def bad(msg: str) -> None:
        problems.append(msg)

    _check_unique(cfg, bad)
    for a in cfg.approaches:
        for key in ("grade_pct", "width_m"):
            if key in a.model_fields_set and a.speed_kmh is None:
                bad(f"approach {a.id}: {key} needs speed_kmh (the approach speed)")
    approaches = tuple(Approach(a.id, a.bearing_deg) for a in cfg.approaches)
    arm_ids = {a.id for a in approaches}

    def movements(owner: str, names: list[str]) -> tuple[Movement, ...]:
        out = []
        for name in names:
            try:
                out.append(geometry.resolve_movement(name, approaches))
            except geometry.GeometryError as exc:
                bad(f"{owner}: {exc}")
        return tuple(out)

    phase_ids = [p.id for p in cfg.phases]
    phases: list[Phase] = []
    for p in cfg.phases:
        label = f"phase {p.id}"
        if p.ped_crossing is not None and p.ped_crossing not in arm_ids:
            bad(f"{label}: ped_crossing: no approach {p.ped_crossing!r}")
        phases.append(
            Phase(
                id=p.id,
                ring=p.ring,
                group=p.group,
                movements=movements(label, p.movements),
                permissive=movements(label, p.permissive),
                ped_crossing=p.ped_crossing if p.ped_crossing in arm_ids else None,
                dual_entry=p.dual_entry,
                start_up=p.start_up,
                flash=FlashColour(p.flash),
            )
        )
        _check_permissive(phases[-1], bad)
        if not (p.movements or p.permissive or p.ped_crossing):
            bad(f"{label}: serves nothing: give it movements, permissive or ped_crossing")
    _check_rings(phases, bad)

    safety = SafetyMinimums(
        min_yellow_ms=ms(cfg.safety.min_yellow_s),
        min_red_clear_ms=ms(cfg.safety.min_red_clear_s),
        min_green_ms=ms(cfg.safety.min_green_s),
    )
    patterns = {name: _build_pattern(name, pc, phases, bad) for name, pc in cfg.patterns.items()}
    plans = {
        pid: _build_plan(pid, pc, phases, safety, bad, patterns) for pid, pc in cfg.plans.items()
    }
    schedule = _build_schedule(cfg.schedule, set(plans), bad) if cfg.schedule else None
    if cfg.site.default_plan not in plans:
        bad(f"site: default_plan: no plan {cfg.site.default_plan!r} (plans: {sorted(plans)})")
    default = plans.get(cfg.site.default_plan)

    overlaps = []
    for o in cfg.overlaps:
        label = f"overlap {o.id}"
        for key, ids in (("parents", o.parents), ("permissive_parents", o.permissive_parents)):
            for parent in ids:
                if parent not in phase_ids:
                    bad(f"{label}: {key}: no phase {parent}")
        served = movements(label, o.movements)
        if o.type == "fya":
            _check_fya_arrow(label, served, o.parents, phases, bad)
            if not o.permissive_parents:
                bad(f"{label}: a flashing-yellow-arrow overlap needs permissive_parents")
            if set(o.parents) & set(o.permissive_parents):
                bad(f"{label}: a phase cannot be both a parent and a permissive parent")
            if o.trail_green_s:
                bad(f"{label}: a flashing-yellow-arrow overlap has no trailing green")
            rings = {p.ring for p in phases if p.id in (*o.parents, *o.permissive_parents)}
            if len(rings) > 1:
                bad(f"{label}: parents and permissive parents must be in one ring")
        elif o.permissive_parents:
            bad(f'{label}: permissive_parents needs type = "fya"')
        parent_timings = [
            default.timings[p] for p in o.parents if default is not None and p in default.timings
        ]
        yellow = ms(o.yellow_s) if o.yellow_s is not None else None
        red = ms(o.red_clear_s) if o.red_clear_s is not None else None
        if yellow is None:
            yellow = max((t.yellow_ms for t in parent_timings), default=safety.min_yellow_ms)
        if red is None:
            red = max((t.red_clear_ms for t in parent_timings), default=safety.min_red_clear_ms)
        _check_clearance(label, yellow, red, safety, bad)
        overlaps.append(
            Overlap(
                id=o.id,
                parents=tuple(o.parents),
                movements=served,
                trail_green_ms=ms(o.trail_green_s),
                yellow_ms=yellow,
                red_clear_ms=red,
                flash=FlashColour(o.flash),
                permissive_parents=tuple(o.permissive_parents) if o.type == "fya" else (),
            )
        )

    channels = _build_channels(cfg, phases, bad)
    detectors = _build_detectors(cfg, phases, bad)
    preempts = _build_preempts(cfg, phases, arm_ids, safety, bad)
    if ms(cfg.site.startup_all_red_s) < safety.min_red_clear_ms:
        bad(
            f"site: startup_all_red_s: {cfg.site.startup_all_red_s} s is below the site's "
            f"{cfg.safety.min_red_clear_s} s minimum red clearance"
        )
    starts = [p for p in phases if p.start_up]
    if len({p.group for p in starts}) > 1:
        bad("phases: start_up phases must all be in one barrier group")
    if len({p.ring for p in starts}) < len(starts):
        bad("phases: at most one start_up phase per ring")

    if problems:
        return None
    conflicts = _conflicts(phases, overlaps, approaches, bad)
    if problems:
        return None
    intergreens = _build_intergreens(
        cfg.intergreens, phases, overlaps, plans, safety, conflicts, bad
    )
    if problems:
        return None
    site = Site(
        id=cfg.site.id,
        name=cfg.site.name,
        approaches=approaches,
        phases=tuple(phases),
        overlaps=tuple(overlaps),
        channels=channels,
        detectors=detectors,
        plans=plans,
        default_plan=cfg.site.default_plan,
        safety=safety,
        startup_flash_ms=ms(cfg.site.startup_flash_s),
        startup_all_red_ms=ms(cfg.site.startup_all_red_s),
        rest_in_red=cfg.site.rest == "red",
        simultaneous_gap_out=cfg.site.simultaneous_gap_out,
        conflicts=frozenset(conflicts),
        intergreens=intergreens,
        preempts=preempts,
        transit=_build_transit(cfg.transit),
    )
    return site, schedule


def _check_permissive(phase: Phase, bad: Any) -> None:
    """`permissive` means a permissive left turn, yielding to opposing traffic and to the
    walk it turns across, and nothing else: a through or a right turn never yields."""
    for m in phase.permissive:
        if m.turn is not Turn.LEFT:
            bad(
                f"phase {phase.id}: permissive: {m.name} is not a left turn; only a left turn "
                "can be permissive (yield to opposing traffic and pedestrians): a through or "
                "right turn never yields, so list it in movements"
            )


def _check_fya_arrow(
    label: str, served: tuple[Movement, ...], parents: list[int], phases: list[Phase], bad: Any
) -> None:
    """A flashing yellow arrow serves left turns, and its green arrow is its parents' own
    protected left: each parent serves it in `movements`, so the arrow's conflicts are the
    parent's (the conflict table counts the overlap itself as yielding)."""
    for m in served:
        if m.turn is not Turn.LEFT:
            bad(f"{label}: a flashing-yellow-arrow overlap serves left turns; {m.name} is not one")
    by_id = {p.id: p for p in phases}
    for pid in parents:
        parent = by_id.get(pid)
        if parent is None:
            continue  # named as a missing parent already
        for m in served:
            if m.turn is Turn.LEFT and m not in parent.movements:
                bad(
                    f"{label}: its green arrow shows with phase {pid}, which does not serve "
                    f'{m.name} protected (give phase {pid} movements = ["{m.name}"])'
                )


def _clearance_warnings(arms: list[_ApproachCfg], site: Site) -> list[str]:
    """Where a yellow or red clearance is below ITE's for the approaches it serves.

    Yellow: every vehicle movement, at its approach's speed and grade. Red clearance:
    through movements, across their approach's width (a turn's path and speed differ).
    """
    by_id = {a.id: a for a in arms}

    def needs(served: tuple[Movement, ...]) -> tuple[tuple[int, str], tuple[int, str]]:
        yellow, red = (0, ""), (0, "")
        for m in served:
            a = by_id[m.approach]
            if a.speed_kmh is None:
                continue
            v = clearance.mps(a.speed_kmh)
            slope = f", {a.grade_pct:+g} % grade" if a.grade_pct else ""
            y = clearance.required_ms(clearance.yellow_s(v, a.grade_pct / 100))
            yellow = max(yellow, (y, f"approach {a.id} at {a.speed_kmh:g} km/h{slope}"))
            if m.turn is Turn.THROUGH and a.width_m is not None:
                r = clearance.required_ms(clearance.red_clear_s(a.width_m, v))
                red = max(red, (r, f"{a.width_m:g} m from approach {a.id} at {a.speed_kmh:g} km/h"))
        return yellow, red

    def compare(label: str, yellow_ms: int, red_ms: int, served: tuple[Movement, ...]) -> None:
        (need_y, why_y), (need_r, why_r) = needs(served)
        if yellow_ms < need_y:
            out.append(
                f"{label}: yellow {_tenths(yellow_ms)} s is below ITE's "
                f"{_tenths(need_y)} s for {why_y}"
            )
        if red_ms < need_r:
            out.append(
                f"{label}: red clearance {_tenths(red_ms)} s is below ITE's "
                f"{_tenths(need_r)} s to clear {why_r}"
            )

    out: list[str] = []
    for plan in site.plans.values():
        for p in site.phases:
            t = plan.timings.get(p.id)
            if t is not None:
                served = (*p.movements, *p.permissive)
                compare(f"plan {plan.id}: phase {p.id}", t.yellow_ms, t.red_clear_ms, served)
    for o in site.overlaps:
        compare(f"overlap {o.id}", o.yellow_ms, o.red_clear_ms, o.movements)
    # An intergreen counts from the end of green: it holds the leaving stream's kinematic
    # yellow and at least the minimum red clearance (edge/intergreen.py), whatever the
    # conflict point; below that, the approach's speed says it is too short.
    served_by: dict[SignalKey, tuple[Movement, ...]] = {
        (SignalKind.PHASE, p.id): (*p.movements, *p.permissive) for p in site.phases
    }
    served_by.update({(SignalKind.OVERLAP, o.id): o.movements for o in site.overlaps})
    for (a, b), value in sorted(site.intergreens.items(), key=str):
        (need_y, why_y), _ = needs(served_by.get(a, ()))
        if need_y and value < need_y + site.safety.min_red_clear_ms:
            out.append(
                f"intergreens: {group_name(a)} -> {group_name(b)}: {_tenths(value)} s is below "
                f"ITE's yellow {_tenths(need_y)} s for {why_y} + the "
                f"{_tenths(site.safety.min_red_clear_ms)} s minimum red clearance"
            )
    return out


def _tenths(value_ms: int) -> str:
    """Seconds as a controller shows them (3.0), with any finer digits kept (3.05)."""
    return f"{value_ms / 1000:.1f}" if value_ms % 100 == 0 else f"{value_ms / 1000:g}"


MIN_TRAVEL_MS = 1000  # a link shorter than this is one junction, not two
# Upstream devices one site may listen to: far more than any junction's approaches
# have signals upstream, and few enough that each keeps a useful share of the
# projection's bound (edge/neighbours.py rule 5: MAX_PENDING // devices).
MAX_NEIGHBOUR_DEVICES = 32


def _build_neighbours(cfgs: list[_NeighbourCfg], site: Site, bad: Any) -> tuple[Link, ...]:
    """[[neighbour]] entries as projection links; every problem names the entry and key."""
    by_id = {p.id: p for p in site.phases}
    devices = {nc.device for nc in cfgs}
    if len(devices) > MAX_NEIGHBOUR_DEVICES:
        bad(
            f"neighbour: {len(devices)} upstream devices; a site listens to at most "
            f"{MAX_NEIGHBOUR_DEVICES}"
        )
    seen: dict[tuple[str, int], int] = {}
    out = []
    for n, nc in enumerate(cfgs):
        label = f"neighbour[{n}] (device {nc.device})"
        for key, ids in (
            ("detectors", nc.detectors),
            ("release_phases", nc.release_phases),
            ("phases", nc.phases),
        ):
            if len(set(ids)) < len(ids):
                bad(f"{label}: {key}: an id is listed twice")
        for pid in nc.phases:
            p = by_id.get(pid)
            if p is None:
                bad(f"{label}: phases: no phase {pid}")
            elif not (p.movements or p.permissive):
                bad(f"{label}: phases: phase {pid} serves no vehicles; it cannot take arrivals")
        for det in nc.detectors:
            first = seen.setdefault((nc.device, det), n)
            if first != n:
                bad(
                    f"{label}: detectors: detector {det} is already in neighbour[{first}]: "
                    "its releases would count twice"
                )
        if nc.travel_s is not None and nc.distance_m is not None:
            bad(f"{label}: give travel_s or distance_m with speed_kmh, not both")
            continue
        if nc.travel_s is None and (nc.distance_m is None or nc.speed_kmh is None):
            bad(f"{label}: give travel_s, or distance_m with speed_kmh (the link's free flow)")
            continue
        speed = (nc.speed_kmh or 0.0) / 3.6
        travel = ms(nc.travel_s) if nc.travel_s is not None else ms((nc.distance_m or 0) / speed)
        if not MIN_TRAVEL_MS <= travel <= MAX_TRAVEL_MS:
            bad(
                f"{label}: a {travel / 1000:g} s trip is not between two neighbours "
                f"({MIN_TRAVEL_MS / 1000:g}-{MAX_TRAVEL_MS / 1000:g} s)"
            )
            continue
        loops = tuple((d, nc.loop_m, tuple(nc.release_phases)) for d in nc.detectors)
        out.append(Link(nc.device, loops, tuple(nc.phases), travel, speed))
    return tuple(out)


def _build_transit(tc: _TransitCfg | None) -> TransitPriority | None:
    if tc is None:
        return None
    return TransitPriority(
        max_share=tc.max_share,
        max_extension_ms=ms(tc.max_extension_s),
        max_early_ms=ms(tc.max_early_s),
        cycle_ms=ms(tc.cycle_s),
    )


def _check_unique(cfg: _SiteFile, bad: Any) -> None:
    for section, items in (
        ("approaches", [a.id for a in cfg.approaches]),
        ("phases", [p.id for p in cfg.phases]),
        ("overlaps", [o.id for o in cfg.overlaps]),
        ("channels", [c.id for c in cfg.channels]),
        ("detectors", [d.id for d in cfg.detectors]),
        ("preempts", [p.id for p in cfg.preempts]),
        ("detectors (input)", [d.input for d in cfg.detectors]),
    ):
        seen = set()
        for item in items:
            if item in seen:
                bad(f"{section}: {item!r} is used twice")
            seen.add(item)
    bearings = sorted(a.bearing_deg for a in cfg.approaches)
    for a, b in itertools.pairwise([*bearings, bearings[0] + 360]):
        if b - a < 20:
            bad(f"approaches: bearings {a} and {b} are too close to tell the arms apart")


def _check_rings(phases: list[Phase], bad: Any) -> None:
    rings: dict[int, list[Phase]] = {}
    for p in phases:
        rings.setdefault(p.ring, []).append(p)
    for ring, members in sorted(rings.items()):
        groups = [p.group for p in members]
        if groups != sorted(groups):
            order = ", ".join(f"{p.id} (group {p.group})" for p in members)
            bad(f"ring {ring}: phases must be listed in barrier-group order; got {order}")


def _check_clearance(
    label: str, yellow_ms: int, red_ms: int, safety: SafetyMinimums, bad: Any
) -> None:
    floor = max(safety.min_yellow_ms, ABSOLUTE_MIN_YELLOW_MS)
    if yellow_ms < floor:
        bad(f"{label}: yellow {yellow_ms / 1000:g} s is below the {floor / 1000:g} s minimum")
    if red_ms < safety.min_red_clear_ms:
        bad(
            f"{label}: red clearance {red_ms / 1000:g} s is below the site's "
            f"{safety.min_red_clear_ms / 1000:g} s minimum"
        )


def _build_schedule(sc: _ScheduleCfg, plans: set[str], bad: Any) -> Schedule:
    day_plans = {}
    for name, entries in sc.day_plans.items():
        label = f"schedule: day_plans.{name}"
        parsed = []
        for time_text, plan in entries.items():
            try:
                parsed.append((parse_hhmm(time_text), plan))
            except ValueError as exc:
                bad(f"{label}: {exc}")
                continue
            if plan not in plans:
                bad(f"{label}: {time_text}: no plan {plan!r}")
        parsed.sort()
        if not parsed or parsed[0][0] != 0:
            bad(f"{label}: needs an entry at 00:00 so every minute has a plan")
        day_plans[name] = DayPlan(name, tuple(parsed))
    missing = [d for d in WEEKDAYS if d not in sc.week]
    if missing:
        bad(f"schedule: week: no day plan for {', '.join(missing)}")
    week = sc.week
    for weekday in week:
        if weekday not in WEEKDAYS:
            bad(f"schedule: week.{weekday}: not a weekday ({', '.join(WEEKDAYS)})")
    for weekday, name in week.items():
        if name not in day_plans:
            bad(f"schedule: week.{weekday}: no day plan {name!r}")
    exceptions: dict[dt.date, str] = {}
    for ex in sc.exceptions:
        try:
            day = dt.date.fromisoformat(ex.date)
        except ValueError:
            bad(f"schedule: exception {ex.date!r}: not a date (YYYY-MM-DD)")
            continue
        if ex.day_plan not in day_plans:
            bad(f"schedule: exception {ex.date}: no day plan {ex.day_plan!r}")
        if day in exceptions:
            bad(f"schedule: exception {ex.date} is given twice")
        exceptions[day] = ex.day_plan
    return Schedule(day_plans, tuple(week.get(d, "") for d in WEEKDAYS), exceptions)


def _build_pattern(name: str, pc: _PatternCfg, phases: list[Phase], bad: Any) -> Pattern:
    label = f"pattern {name}"
    by_id = {p.id: p for p in phases}
    cycle = ms(pc.cycle_s)
    splits: dict[int, int] = {}
    for key, seconds in pc.splits.items():
        if not key.isdigit() or int(key) not in by_id:
            bad(f"{label}: splits.{key}: no such phase")
        else:
            splits[int(key)] = ms(seconds)
    for p in phases:
        if p.id not in splits:
            bad(f"{label}: splits: phase {p.id} has no split")
    coord = [by_id[i] for i in pc.coord_phases if i in by_id]
    for i in pc.coord_phases:
        if i not in by_id:
            bad(f"{label}: coord_phases: no phase {i}")
    if len({p.group for p in coord}) > 1 or len({p.ring for p in coord}) < len(coord):
        bad(f"{label}: coord_phases must be in one barrier group, at most one per ring")
    rings = sorted({p.ring for p in phases})
    for ring in rings:
        if not any(p.ring == ring for p in coord):
            bad(f"{label}: ring {ring} has no coordinated phase")
        total = sum(splits.get(p.id, 0) for p in phases if p.ring == ring)
        if total != cycle:
            bad(
                f"{label}: ring {ring} splits add up to {total / 1000:g} s, "
                f"not the {pc.cycle_s:g} s cycle"
            )
    for group in sorted({p.group for p in phases}):
        sums = {
            ring: sum(splits.get(p.id, 0) for p in phases if p.ring == ring and p.group == group)
            for ring in rings
            if any(p.ring == ring and p.group == group for p in phases)
        }
        if len(set(sums.values())) > 1:
            shown = ", ".join(f"ring {r}: {v / 1000:g} s" for r, v in sums.items())
            bad(f"{label}: barrier group {group} splits differ between rings ({shown})")
    if ms(pc.offset_s) >= cycle:
        bad(f"{label}: offset {pc.offset_s:g} s is not below the cycle")
    return Pattern(
        id=name,
        cycle_ms=cycle,
        offset_ms=ms(pc.offset_s),
        coord_phases=tuple(pc.coord_phases),
        splits_ms=splits,
        floating=pc.force_off == "floating",
        transition=pc.transition,
    )


def _build_plan(
    plan_id: str,
    pc: _PlanCfg,
    phases: list[Phase],
    safety: SafetyMinimums,
    bad: Any,
    patterns: dict[str, Pattern],
) -> Plan:
    ids = {p.id for p in phases}
    overrides: dict[int, _TimingCfg] = {}
    for key, timing in pc.phase.items():
        if not key.isdigit() or int(key) not in ids:
            bad(f"plan {plan_id}: phase.{key}: no such phase")
            continue
        overrides[int(key)] = timing
    timings = {}
    for p in phases:
        label = f"plan {plan_id}: phase {p.id}"
        merged = pc.defaults.model_dump(exclude_none=True)
        if p.id in overrides:
            merged.update(overrides[p.id].model_dump(exclude_none=True))
        needed = _REQUIRED + (_PED_REQUIRED if p.ped_crossing else ())
        missing = [k for k in needed if k not in merged]
        if missing:
            bad(f"{label}: missing {', '.join(missing)} (set it in the phase or in defaults)")
            continue
        values = {**_OPTIONAL_DEFAULTS, "walk_s": 0.0, "ped_clear_s": 0.0, **merged}
        t = PhaseTiming(
            min_green_ms=ms(values["min_green_s"]),
            passage_ms=ms(values["passage_s"]),
            max_green_ms=ms(values["max_green_s"]),
            max2_green_ms=ms(values.get("max2_green_s", values["max_green_s"])),
            yellow_ms=ms(values["yellow_s"]),
            red_clear_ms=ms(values["red_clear_s"]),
            red_revert_ms=ms(values["red_revert_s"]),
            walk_ms=ms(values["walk_s"]),
            ped_clear_ms=ms(values["ped_clear_s"]),
            recall=frozenset(Recall(r) for r in values.get("recall", []) if r != "none"),
            added_initial_ms=ms(values["added_initial_s"]),
            max_initial_ms=ms(values["max_initial_s"]),
            time_before_reduction_ms=ms(values["time_before_reduction_s"]),
            time_to_reduce_ms=ms(values["time_to_reduce_s"]),
            min_gap_ms=ms(values.get("min_gap_s", values["passage_s"])),
        )
        _check_timing(label, p, t, safety, bad)
        timings[p.id] = t
    pattern = None
    if pc.pattern is not None:
        pattern = patterns.get(pc.pattern)
        if pattern is None:
            bad(f"plan {plan_id}: pattern: no pattern {pc.pattern!r}")
        else:
            for p in phases:
                pt = timings.get(p.id)
                split = pattern.splits_ms.get(p.id)
                if pt is None or split is None:
                    continue
                ped = pt.walk_ms + pt.ped_clear_ms if p.ped_crossing else 0
                need = max(pt.min_green_ms, ped) + pt.yellow_ms + pt.red_clear_ms
                if split < need:
                    bad(
                        f"plan {plan_id}: pattern {pattern.id}: phase {p.id} split "
                        f"{split / 1000:g} s is below its minimum service {need / 1000:g} s"
                    )
    if pc.adaptive and pc.pattern is not None:
        bad(f"plan {plan_id}: adaptive: a plan is either coordinated (pattern) or adaptive")
    return Plan(
        id=plan_id, timings=timings, use_max2=pc.use_max2, pattern=pattern, adaptive=pc.adaptive
    )


def _check_timing(label: str, p: Phase, t: PhaseTiming, safety: SafetyMinimums, bad: Any) -> None:
    _check_clearance(label, t.yellow_ms, t.red_clear_ms, safety, bad)
    if t.min_green_ms < safety.min_green_ms:
        bad(
            f"{label}: min green {t.min_green_ms / 1000:g} s is below the site's "
            f"{safety.min_green_ms / 1000:g} s minimum"
        )
    if t.max_green_ms < t.min_green_ms:
        bad(f"{label}: max green {t.max_green_ms / 1000:g} s is below min green")
    if t.max2_green_ms < t.min_green_ms:
        bad(f"{label}: max2 green {t.max2_green_ms / 1000:g} s is below min green")
    if t.min_gap_ms > t.passage_ms:
        bad(f"{label}: min gap {t.min_gap_ms / 1000:g} s is above the passage time")
    if t.red_revert_ms < t.red_clear_ms:
        bad(f"{label}: red revert {t.red_revert_ms / 1000:g} s is below its red clearance")
    if p.ped_crossing:
        if t.walk_ms < MIN_WALK_MS:
            bad(f"{label}: walk {t.walk_ms / 1000:g} s is below {MIN_WALK_MS / 1000:g} s")
        if t.ped_clear_ms < MIN_PED_CLEAR_MS:
            bad(
                f"{label}: pedestrian clearance {t.ped_clear_ms / 1000:g} s is below "
                f"{MIN_PED_CLEAR_MS / 1000:g} s"
            )
    if Recall.PED in t.recall and not p.ped_crossing:
        bad(f"{label}: ped recall on a phase with no pedestrian signal")


def _build_channels(cfg: _SiteFile, phases: list[Phase], bad: Any) -> tuple[Channel, ...]:
    by_id = {p.id: p for p in phases}
    overlap_ids = {o.id for o in cfg.overlaps}
    out = []
    for c in cfg.channels:
        label = f"channel {c.id}"
        given = [k for k in ("phase", "ped", "overlap") if getattr(c, k) is not None]
        if len(given) != 1:
            bad(f"{label}: give exactly one of phase, ped or overlap")
            continue
        kind = given[0]
        source: int | str
        if kind == "overlap":
            source = str(c.overlap)
            if source not in overlap_ids:
                bad(f"{label}: overlap: no overlap {source!r}")
            flash = c.flash or next((o.flash for o in cfg.overlaps if o.id == source), "red")
            out.append(Channel(c.id, SignalKind.OVERLAP, source, FlashColour(flash)))
            continue
        pid = c.phase if kind == "phase" else c.ped
        assert pid is not None
        phase = by_id.get(pid)
        if phase is None:
            bad(f"{label}: {kind}: no phase {pid}")
            continue
        if kind == "ped":
            if phase.ped_crossing is None:
                bad(f"{label}: ped: phase {pid} has no ped_crossing")
            out.append(Channel(c.id, SignalKind.PED, pid, FlashColour(c.flash or "dark")))
        else:
            if not (phase.movements or phase.permissive):
                bad(f"{label}: phase: phase {pid} has no vehicle movements to show")
            out.append(
                Channel(c.id, SignalKind.PHASE, pid, FlashColour(c.flash or phase.flash.value))
            )
    return tuple(out)


def _build_preempts(
    cfg: _SiteFile, phases: list[Phase], arms: set[str], safety: SafetyMinimums, bad: Any
) -> tuple[Preempt, ...]:
    by_id = {p.id: p for p in phases}
    inputs = {d.input for d in cfg.detectors}
    out = []
    for pc in cfg.preempts:
        label = f"preempt {pc.id}"
        dwell = [by_id[i] for i in pc.dwell_phases if i in by_id]
        for i in pc.dwell_phases:
            if i not in by_id:
                bad(f"{label}: dwell_phases: no phase {i}")
        for a, b in itertools.combinations(dwell, 2):
            if a.ring == b.ring or a.group != b.group:
                bad(f"{label}: dwell phases {a.id} and {b.id} cannot time together")
        if pc.approach is not None and pc.approach not in arms:
            bad(f"{label}: approach: no approach {pc.approach!r}")
        if pc.turn is not None:
            _check_turn_preempt(cfg, pc, dwell, label, bad)
        if pc.input is not None and pc.input in inputs:
            bad(f"{label}: input {pc.input} is also a detector's input")
        min_green = ms(pc.min_green_s) if pc.min_green_s is not None else safety.min_green_ms
        if min_green < safety.min_green_ms:
            bad(
                f"{label}: min green {min_green / 1000:g} s is below the site's "
                f"{safety.min_green_ms / 1000:g} s minimum"
            )
        if ms(pc.ped_clear_s) < MIN_PED_CLEAR_MS:
            bad(
                f"{label}: pedestrian clearance {pc.ped_clear_s:g} s is below "
                f"{MIN_PED_CLEAR_MS / 1000:g} s"
            )
        out.append(
            Preempt(
                id=pc.id,
                priority=pc.priority if pc.priority is not None else pc.id,
                input=pc.input,
                approach=pc.approach,
                turn=pc.turn,
                dwell_phases=tuple(pc.dwell_phases),
                min_green_ms=min_green,
                min_walk_ms=ms(pc.min_walk_s),
                ped_clear_ms=ms(pc.ped_clear_s),
                min_dwell_ms=ms(pc.min_dwell_s),
                max_presence_ms=ms(pc.max_presence_s),
                lead_ms=ms(pc.lead_s),
            )
        )
    return tuple(out)


def _check_turn_preempt(
    cfg: _SiteFile, pc: _PreemptCfg, dwell: list[Phase], label: str, bad: Any
) -> None:
    """A turn's preempt: its dwell serves that movement; the approach keeps one for all."""
    if pc.approach is None:
        bad(f"{label}: turn {pc.turn!r} needs an approach")
        return
    name = f"{pc.approach}.{pc.turn}"
    if not any(m.name == name for p in dwell for m in (*p.movements, *p.permissive)):
        bad(f"{label}: no dwell phase serves {name}")
    if pc.input is not None:
        bad(f"{label}: a receiver cannot tell the turn: wire its input to the approach's preempt")
    same = [o.id for o in cfg.preempts if o.approach == pc.approach and o.id != pc.id]
    if not any(o.turn is None for o in cfg.preempts if o.id in same):
        bad(
            f"{label}: approach {pc.approach} has no preempt without a turn "
            "(for receivers and requests that name none)"
        )
    if any(o.turn == pc.turn for o in cfg.preempts if o.id in same):
        bad(f"{label}: another preempt already serves {name}")


def _build_detectors(cfg: _SiteFile, phases: list[Phase], bad: Any) -> tuple[Detector, ...]:
    by_id = {p.id: p for p in phases}
    out = []
    for d in cfg.detectors:
        label = f"detector {d.id}"
        ped = d.type == "ped"
        base = [d.phase] if d.phase is not None else []
        calls = d.calls if d.calls is not None else base
        extends = d.extends if d.extends is not None else ([] if ped else base)
        if not calls and not extends:
            bad(f"{label}: neither calls nor extends a phase (give phase, calls or extends)")
        for key, ids in (("calls", calls), ("extends", extends)):
            for pid in ids:
                if pid not in by_id:
                    bad(f"{label}: {key}: no phase {pid}")
                elif ped and by_id[pid].ped_crossing is None:
                    bad(f"{label}: a push button for phase {pid}, which has no ped_crossing")
        if ped and extends:
            bad(f"{label}: a push button cannot extend a green")
        if 0 < d.max_presence_s < MIN_MAX_PRESENCE_S:
            bad(
                f"{label}: max_presence_s {d.max_presence_s:g} s would fail a car waiting out "
                f"a red; give 0 (off) or at least {MIN_MAX_PRESENCE_S:g} s"
            )
        if 0 < d.no_activity_s < MIN_NO_ACTIVITY_S:
            bad(
                f"{label}: no_activity_s {d.no_activity_s:g} s is shorter than a quiet spell; "
                f"give 0 (off) or at least {MIN_NO_ACTIVITY_S:g} s"
            )
        out.append(
            Detector(
                id=d.id,
                input=d.input,
                ped=ped,
                calls=tuple(calls),
                extends=tuple(extends),
                delay_ms=ms(d.delay_s),
                carryover_ms=ms(d.carryover_s),
                locking=d.locking,
                max_presence_ms=ms(d.max_presence_s),
                no_activity_ms=ms(d.no_activity_s),
            )
        )
    return tuple(out)


def _conflicts(
    phases: list[Phase], overlaps: list[Overlap], approaches: tuple[Approach, ...], bad: Any
) -> dict[tuple[SignalKey, SignalKey], tuple[str, str]]:
    """Derive the conflict table and reject any sequence that could time a conflict."""
    groups = geometry.signal_groups(
        ((p.id, p.movements, p.permissive, p.ped_crossing) for p in phases),
        ((o.id, o.movements, bool(o.permissive_parents)) for o in overlaps),
    )
    table = geometry.conflict_pairs(groups, approaches)
    for g in groups:
        why = geometry.first_conflict(g, g, approaches)
        if why is not None:
            bad(f"{g.label}: its own movements {why[0]} and {why[1]} conflict")
    for key_a, key_b in sorted(concurrent_pairs(phases, overlaps), key=str):
        why = table.get((key_a, key_b))
        if why is not None:
            bad(
                f"{_label(key_a)} and {_label(key_b)} can time together but "
                f"{why[0]} conflicts with {why[1]}"
            )
    return table


def group_name(key: SignalKey) -> str:
    """A signal group's short name, as the compatibility matrix and [intergreens] write it."""
    kind, ident = key
    return {SignalKind.PHASE: "P", SignalKind.PED: "Ped", SignalKind.OVERLAP: "O"}[kind] + str(
        ident
    )


def intergreen_floor_ms(
    key: SignalKey, phases: Sequence[Phase], overlaps: Sequence[Overlap], plans: Mapping[str, Plan],
    safety: SafetyMinimums,
) -> int:  # fmt: skip
    """The least intergreen a pair leaving `key` may state: the leaving group's longest
    yellow (in any plan) plus the site's minimum red clearance; for a walk, its longest
    pedestrian clearance (the flashing don't walk stays whole, as without a table)."""
    kind, ident = key
    if kind is SignalKind.OVERLAP:
        o = next(o for o in overlaps if o.id == ident)
        return max(o.yellow_ms, safety.min_yellow_ms) + safety.min_red_clear_ms
    timings = [pl.timings[int(ident)] for pl in plans.values() if int(ident) in pl.timings]
    if kind is SignalKind.PED:
        return max((t.ped_clear_ms for t in timings), default=0)
    yellow = max((t.yellow_ms for t in timings), default=0)
    return max(yellow, safety.min_yellow_ms) + safety.min_red_clear_ms


def _build_intergreens(
    raw: Mapping[str, Mapping[str, float]],
    phases: list[Phase],
    overlaps: list[Overlap],
    plans: Mapping[str, Plan],
    safety: SafetyMinimums,
    conflicts: Mapping[tuple[SignalKey, SignalKey], tuple[str, str]],
    bad: Any,
) -> dict[tuple[SignalKey, SignalKey], int]:
    """The [intergreens] table: each entry a conflicting pair of known groups, never below
    the leaving group's yellow plus the site's minimum red clearance."""
    groups: dict[str, SignalKey] = {}
    for p in phases:
        if p.movements or p.permissive:
            groups[group_name((SignalKind.PHASE, p.id))] = (SignalKind.PHASE, p.id)
        if p.ped_crossing is not None:
            groups[group_name((SignalKind.PED, p.id))] = (SignalKind.PED, p.id)
    for o in overlaps:
        groups[group_name((SignalKind.OVERLAP, o.id))] = (SignalKind.OVERLAP, o.id)
    known = ", ".join(groups)
    out: dict[tuple[SignalKey, SignalKey], int] = {}
    for a_name, row in raw.items():
        a = groups.get(a_name)
        if a is None:
            bad(f"intergreens: {a_name}: no such signal group (groups: {known})")
            continue
        for b_name, seconds in row.items():
            where = f"intergreens: {a_name} -> {b_name}"
            b = groups.get(b_name)
            if b is None:
                bad(f"{where}: no such signal group {b_name!r} (groups: {known})")
                continue
            if (a, b) not in conflicts:
                bad(f"{where}: {_label(a)} and {_label(b)} do not conflict: no intergreen")
                continue
            value = ms(seconds)
            floor = intergreen_floor_ms(a, phases, overlaps, plans, safety)
            if value < floor:
                what = (
                    "its pedestrian clearance"
                    if a[0] is SignalKind.PED
                    else ("its yellow + the minimum red clearance")
                )
                bad(f"{where}: {seconds:g} s is below {_tenths(floor)} s ({what})")
                continue
            out[(a, b)] = value
    return out


def _label(key: SignalKey) -> str:
    kind, ident = key
    return {"phase": "phase", "ped": "the crosswalk of phase", "overlap": "overlap"}[
        kind.value
    ] + f" {ident}"


def concurrent_pairs(
    phases: list[Phase] | tuple[Phase, ...], overlaps: list[Overlap] | tuple[Overlap, ...]
) -> set[tuple[SignalKey, SignalKey]]:
    """Signal-group pairs that the ring-barrier structure lets show at once (one order each)."""

    def together(a: Phase, b: Phase) -> bool:
        return a.id == b.id or (a.ring != b.ring and a.group == b.group)

    by_id = {p.id: p for p in phases}
    members: list[tuple[SignalKey, list[Phase]]] = []
    for p in phases:
        members.append(((SignalKind.PHASE, p.id), [p]))
        if p.ped_crossing:
            members.append(((SignalKind.PED, p.id), [p]))
    for o in overlaps:
        shown_with = [*o.parents, *o.permissive_parents]
        members.append(((SignalKind.OVERLAP, o.id), [by_id[i] for i in shown_with if i in by_id]))
    pairs = set()
    for i, (ka, pa) in enumerate(members):
        for kb, pb in members[i:]:
            if ka == kb:
                continue
            if any(together(x, y) for x in pa for y in pb):
                pairs.add((ka, kb))
    return pairs


def compatibility_matrix(site: Site) -> str:
    """A readable matrix: 'X' conflict, 'o' may time together, '.' never timed together."""
    keys: list[SignalKey] = [
        (SignalKind.PHASE, p.id) for p in site.phases if p.movements or p.permissive
    ]
    keys += [(SignalKind.PED, p.id) for p in site.phases if p.ped_crossing]
    keys += [(SignalKind.OVERLAP, o.id) for o in site.overlaps]
    together = concurrent_pairs(site.phases, site.overlaps)
    names = [group_name(k) for k in keys]
    width = max(len(n) for n in names) + 1
    lines = [" " * width + "".join(n.rjust(width) for n in names)]
    for a, na in zip(keys, names, strict=True):
        row = [na.ljust(width)]
        for b in keys:
            if a == b:
                mark = "-"
            elif (a, b) in site.conflicts:
                mark = "X"
            elif (a, b) in together or (b, a) in together:
                mark = "o"
            else:
                mark = "."
            row.append(mark.rjust(width))
        lines.append("".join(row))
    lines.append(
        "X conflict (never together)   o times together   . compatible, never timed together"
    )
    return "\n".join(lines)
