"""Plan bundles from central: parse, check and turn into a validated Site.

A bundle's body (inside a signed envelope, see signing.py):

    {"type": "plan_bundle", "device": "dev-1", "version": 12,
     "issued_ms": ..., "expires_ms": ...,
     "default_plan": "day",
     "plans": {"day": {<same keys as [plans.day] in the site TOML>}, ...},
     "patterns": {<as [patterns] in the site TOML>},            (optional)
     "schedule": {<as [schedule] in the site TOML>},             (optional)
     "detectors": [{"id": 5, "delay_s": 2.0, "carryover_s": 1.0}]}

The bundle's plans (and patterns and schedule, when given) replace the
site's; its detector entries change the conditioning of existing detectors.
Without a schedule the bundle's default plan runs all day. The merged config goes through
edge.config, so a bundle is refused for exactly the reasons (and with the
same messages) that `edge check` gives for the site file, and then for the
IO board's CONFIG, which stays the one the board got at boot (its minimums are
the site's safety floors, edge/board/config.py), so a bundle the board could
not honour is refused (`invalid_plan`) before it is stored. Checks, in order:
size, JSON, signature, body shape, device, expiry, version, site validation,
the board's.
`expires_ms` bounds when a bundle may be accepted (a bundle stuck in a queue
is not applied late); once accepted it stays in force until replaced.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.board.config import BoardConfigError, board_config
from edge.config import ConfigError, SiteConfig, config_from_dict
from edge.control.site import Site
from edge.link.errors import Rejected
from edge.link.messages import describe_errors, dumps, parse_json_object
from edge.link.signing import open_envelope

MAX_PLAN_BYTES = 64 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
    # Same shapes as the site TOML's [patterns] and [schedule]; checked by edge.config.
    patterns: Annotated[dict[str, dict[str, Any]], Field(max_length=32)] | None = None
    schedule: dict[str, Any] | None = None
    detectors: Annotated[list[_DetectorSetting], Field(max_length=255)] = []


@dataclass(frozen=True, slots=True)
class Bundle:
    """A verified, validated bundle, ready to store and apply."""

    version: int
    digest: str  # SHA-256 of the signed body text
    expires_ms: int
    config: SiteConfig  # the device's site with this bundle's plans, patterns, schedule
    default_plan: str

    @property
    def site(self) -> Site:
        return self.config.site


def digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def bundle_body(
    device: str,
    version: int,
    issued_ms: int,
    expires_ms: int,
    plans: Mapping[str, Any],
    default_plan: str,
    schedule: Mapping[str, Any] | None = None,
    detectors: Sequence[Mapping[str, Any]] = (),
    patterns: Mapping[str, Any] | None = None,
) -> str:
    """Build a bundle body (central side); sign it with signing.sign."""
    body: dict[str, Any] = {
        "type": "plan_bundle",
        "device": device,
        "version": version,
        "issued_ms": issued_ms,
        "expires_ms": expires_ms,
        "default_plan": default_plan,
        "plans": dict(plans),
        "detectors": list(detectors),
    }
    if schedule is not None:
        body["schedule"] = dict(schedule)
    if patterns is not None:
        body["patterns"] = dict(patterns)
    return dumps(body)


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
    return Bundle(
        version=b.version,
        digest=digest(body),
        expires_ms=b.expires_ms,
        config=merged_config(b, site_raw),
        default_plan=b.default_plan,
    )


def merged_config(b: _BundleBody, site_raw: Mapping[str, Any]) -> SiteConfig:
    """The site config with the bundle's plan set, validated by edge.config."""
    raw = copy.deepcopy(dict(site_raw))
    raw["plans"] = copy.deepcopy(b.plans)
    if b.patterns is not None:
        raw["patterns"] = copy.deepcopy(b.patterns)
    # The bundle's schedule replaces the site's; without one its default plan runs all day.
    raw.pop("schedule", None)
    if b.schedule is not None:
        raw["schedule"] = copy.deepcopy(b.schedule)
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
    try:
        config = config_from_dict(raw, source=f"plan bundle v{b.version}")
    except ConfigError as exc:
        raise Rejected("invalid_plan", "; ".join(exc.problems + problems)) from None
    if problems:
        raise Rejected("invalid_plan", "; ".join(problems))
    try:  # the IO board keeps the CONFIG it got at boot: the new timing must fit it
        board_config(config.site)
    except BoardConfigError as exc:
        raise Rejected("invalid_plan", "; ".join(exc.problems)) from None
    return config


def plan_at(config: SiteConfig, when: dt.datetime) -> str:
    """The plan the time-of-day schedule wants at local time `when` (else the default)."""
    if config.schedule is None:
        return config.site.default_plan
    return config.schedule.plan_at(when) or config.site.default_plan
