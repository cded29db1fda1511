"""Plan bundles from central: parse, check and turn into a validated Site.

A bundle's body (inside a signed envelope, see signing.py):

    {"type": "plan_bundle", "device": "dev-1", "version": 12,
     "issued_ms": ..., "expires_ms": ...,
     "default_plan": "day",
     "plans": {"day": {<same keys as [plans.day] in the site TOML>}, ...},
     "schedule": [{"days": ["mon", ...], "start": "06:30", "plan": "am"}, ...],
     "detectors": [{"id": 5, "delay_s": 2.0, "carryover_s": 1.0}]}

The bundle's plans replace the site's plan set; its detector entries change
the conditioning of existing detectors. The merged config goes through
edge.config, so a bundle is refused for exactly the reasons (and with the
same messages) that `edge check` gives for the site file. Checks, in order:
size, JSON, signature, body shape, device, expiry, version, site validation.
`expires_ms` bounds when a bundle may be accepted (a bundle stuck in a queue
is not applied late); once accepted it stays in force until replaced.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.config import ConfigError, site_from_dict
from edge.control.site import Site
from edge.link.errors import Rejected
from edge.link.messages import describe_errors, dumps, parse_json_object
from edge.link.signing import open_envelope

MAX_PLAN_BYTES = 64 * 1024
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _ScheduleEntry(_Strict):
    days: Annotated[list[Day], Field(min_length=1, max_length=7)] = list(DAYS)
    start: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    plan: Annotated[str, Field(min_length=1, max_length=64)]


class _DetectorSetting(_Strict):
    id: Annotated[int, Field(ge=1, le=255)]
    delay_s: Annotated[float, Field(ge=0, le=3600)] | None = None
    carryover_s: Annotated[float, Field(ge=0, le=3600)] | None = None


class _BundleBody(_Strict):
    type: Literal["plan_bundle"]
    device: str
    version: Annotated[int, Field(ge=1, le=2**53)]
    issued_ms: Annotated[int, Field(ge=0)]
    expires_ms: Annotated[int, Field(ge=0)]
    default_plan: Annotated[str, Field(min_length=1, max_length=64)]
    # Checked by edge.config, with its messages, after merging into the site.
    plans: Annotated[dict[str, dict[str, Any]], Field(min_length=1, max_length=32)]
    schedule: Annotated[list[_ScheduleEntry], Field(max_length=200)] = []
    detectors: Annotated[list[_DetectorSetting], Field(max_length=255)] = []


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    days: frozenset[int]  # 0 = Monday
    start_min: int  # minutes after local midnight
    plan: str


@dataclass(frozen=True, slots=True)
class Bundle:
    """A verified, validated bundle, ready to store and apply."""

    version: int
    digest: str  # SHA-256 of the signed body text
    expires_ms: int
    site: Site  # the device's site with this bundle's plans and detector settings
    default_plan: str
    schedule: tuple[ScheduleEntry, ...]


def digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def bundle_body(
    device: str,
    version: int,
    issued_ms: int,
    expires_ms: int,
    plans: Mapping[str, Any],
    default_plan: str,
    schedule: Sequence[Mapping[str, Any]] = (),
    detectors: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Build a bundle body (central side); sign it with signing.sign."""
    return dumps(
        {
            "type": "plan_bundle",
            "device": device,
            "version": version,
            "issued_ms": issued_ms,
            "expires_ms": expires_ms,
            "default_plan": default_plan,
            "plans": dict(plans),
            "schedule": list(schedule),
            "detectors": list(detectors),
        }
    )


def verify_bundle(
    raw: bytes,
    *,
    device: str,
    trusted: Mapping[str, Ed25519PublicKey],
    high_water: int,
    site_raw: Mapping[str, Any],
    now_ms: int,
) -> tuple[Bundle, str]:
    """Check a signed bundle from the wire; return it and its body text, or raise Rejected."""
    if len(raw) > MAX_PLAN_BYTES:
        raise Rejected(
            "oversized", f"plan bundle is {len(raw)} bytes, the limit is {MAX_PLAN_BYTES}"
        )
    body = open_envelope(raw, trusted)
    return check_body(
        body, device=device, high_water=high_water, site_raw=site_raw, now_ms=now_ms
    ), body


def check_body(
    body: str, *, device: str, high_water: int, site_raw: Mapping[str, Any], now_ms: int | None
) -> Bundle:
    """Everything after the signature. now_ms None skips the expiry (a stored bundle at boot)."""
    obj = parse_json_object(body, "plan bundle")
    try:
        b = _BundleBody.model_validate(obj)
    except ValidationError as exc:
        raise Rejected("schema", describe_errors(exc)) from None
    if b.device != device:
        raise Rejected("wrong_device", f"plan bundle for device {b.device!r}, this is {device!r}")
    if now_ms is not None and now_ms > b.expires_ms:
        raise Rejected(
            "expired",
            f"plan bundle v{b.version} expired {(now_ms - b.expires_ms) / 1000:.1f} s ago",
        )
    if b.version <= high_water:
        raise Rejected(
            "replayed",
            f"plan bundle v{b.version} is not newer than the last accepted version {high_water}",
        )
    site = merged_site(b, site_raw)
    return Bundle(
        version=b.version,
        digest=digest(body),
        expires_ms=b.expires_ms,
        site=site,
        default_plan=b.default_plan,
        schedule=tuple(
            ScheduleEntry(
                frozenset(DAYS.index(d) for d in e.days),
                int(e.start[:2]) * 60 + int(e.start[3:]),
                e.plan,
            )
            for e in b.schedule
        ),
    )


def merged_site(b: _BundleBody, site_raw: Mapping[str, Any]) -> Site:
    raw = copy.deepcopy(dict(site_raw))
    raw["plans"] = copy.deepcopy(b.plans)
    site_section = dict(raw.get("site", {}))
    site_section["default_plan"] = b.default_plan
    raw["site"] = site_section
    problems: list[str] = []
    detectors = [dict(d) for d in raw.get("detectors", [])]
    by_id = {d.get("id"): d for d in detectors}
    for setting in b.detectors:
        target = by_id.get(setting.id)
        if target is None:
            problems.append(f"detector {setting.id}: no such detector in the site")
            continue
        for key in ("delay_s", "carryover_s"):
            value = getattr(setting, key)
            if value is not None:
                target[key] = value
    raw["detectors"] = detectors
    for k, entry in enumerate(b.schedule):
        if entry.plan not in b.plans:
            problems.append(f"schedule[{k}]: plan: no plan {entry.plan!r} in the bundle")
    try:
        site = site_from_dict(raw, source=f"plan bundle v{b.version}")
    except ConfigError as exc:
        problems = exc.problems + problems
        site = None
    if problems or site is None:
        raise Rejected("invalid_plan", "; ".join(problems))
    return site


def plan_at(schedule: Sequence[ScheduleEntry], default: str, weekday: int, minute: int) -> str:
    """The plan the time-of-day schedule wants at local `weekday` (0 = Monday), `minute`.

    The latest entry that started at or before now, looking back up to a week;
    the bundle's default plan if the schedule is empty.
    """
    if not schedule:
        return default
    now = weekday * 1440 + minute
    best: tuple[int, str] | None = None
    for e in schedule:
        for d in e.days:
            start = d * 1440 + e.start_min
            ago = (now - start) % (7 * 1440)
            if best is None or ago < best[0]:
                best = (ago, e.plan)
    return best[1] if best else default
