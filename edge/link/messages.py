"""Message bodies on the wire: builders for what the device sends, parsers for
what central sends. Pure: no clock, no I/O. The JSON schemas in schemas/ and
asyncapi.yaml describe every one of them; the tests check real messages
against those schemas.

Outgoing JSON is compact (no spaces). Times are UTC milliseconds since the
epoch (`*_ms`), rounded to 100 ms where the source is the controller (which
works in 0.1 s). SPaT follows SAE J2735 in spirit: per signal group an
`eventState` (MovementPhaseState) and min/max/likely end times as a J2735
TimeMark (tenths of a second within the UTC hour, 36001 = unknown).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.control.messages import Lamp, Outputs
from edge.link.errors import Rejected
from edge.neighbours import MAX_AGE_MS
from edge.store import LEGACY_STREAM, STREAM_ID

SCHEMA_VERSION = 1
MAX_COMMAND_BYTES = 4096
MAX_COMMAND_LIFETIME_MS = 24 * 3600 * 1000
TIMEMARK_UNKNOWN = 36001


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --- SPaT ------------------------------------------------------------------------------

# J2735 MovementPhaseState for each lamp of a vehicle signal group.
EVENT_STATE = {
    Lamp.DARK: 1,  # dark
    Lamp.FLASH_RED: 2,  # stop-Then-Proceed
    Lamp.RED: 3,  # stop-And-Remain
    Lamp.GREEN: 6,  # protected-Movement-Allowed
    Lamp.YELLOW: 8,  # protected-clearance
    Lamp.FLASH_YELLOW: 9,  # caution-Conflicting-Traffic
}
# Pedestrian signals: walk is a protected movement, flashing don't walk its clearance.
PED_EVENT_STATE = {
    Lamp.DARK: 1,
    Lamp.RED: 3,
    Lamp.GREEN: 6,
    Lamp.FLASH_RED: 8,
}


def timemark(utc_ms: int | None) -> int:
    """J2735 TimeMark: tenths of a second since the start of the UTC hour."""
    if utc_ms is None:
        return TIMEMARK_UNKNOWN
    return (utc_ms // 100) % 36000


def spat(
    device: str,
    cnt: int,
    utc_ms: int,
    ctl_now_ms: int,
    out: Outputs,
    phase_ids: Sequence[int],
) -> str:
    """One SPaT message. `ctl_now_ms` is the controller's clock at `utc_ms`."""
    offset = utc_ms - ctl_now_ms
    groups = []
    for i, pid in enumerate(phase_ids):
        lamp = out.phases[i]
        entry: dict[str, int] = {"sg": pid, "s": EVENT_STATE[lamp]}
        if i < len(out.spat):
            t = out.spat[i]
            entry["min"] = timemark(None if t.min_end_ms is None else t.min_end_ms + offset)
            entry["max"] = timemark(None if t.max_end_ms is None else t.max_end_ms + offset)
            entry["lik"] = timemark(None if t.likely_end_ms is None else t.likely_end_ms + offset)
        ped = out.peds[i]
        if ped != Lamp.DARK:
            entry["ped"] = PED_EVENT_STATE.get(ped, 1)
        groups.append(entry)
    return dumps(
        {
            "dev": device,
            "cnt": cnt % 128,
            "ts": utc_ms,
            "moy": timemark(utc_ms),
            "mode": out.mode,
            "sg": groups,
        }
    )


# --- status, acks, events, counts --------------------------------------------------------


def status_online(
    device: str,
    *,
    utc_ms: int,
    firmware: str,
    config_hash: str,
    plan_version: int,
    plan: str,
    board: str,
    mode: str,
    central: str,
) -> str:
    """The birth message: published retained on every connect and on every change."""
    return dumps(
        {
            "dev": device,
            "state": "online",
            "ts": utc_ms,
            "firmware": firmware,
            "config_hash": config_hash,
            "plan_version": plan_version,
            "plan": plan,
            "board": board,
            "mode": mode,
            "central": central,
            "v": SCHEMA_VERSION,
        }
    )


def status_offline(device: str) -> str:
    """The last will: the broker publishes it, retained, when the device drops off."""
    return dumps({"dev": device, "state": "offline", "v": SCHEMA_VERSION})


def ack(
    device: str,
    *,
    utc_ms: int,
    ref: str | None,
    kind: Literal["plan", "command"],
    status: Literal["accepted", "applied", "rejected", "done"],
    code: str | None = None,
    reason: str = "",
    version: int | None = None,
) -> str:
    obj: dict[str, Any] = {"dev": device, "ts": utc_ms, "ref": ref, "kind": kind, "status": status}
    if code is not None:
        obj["code"] = code
    if reason:
        obj["reason"] = reason[:2000]
    if version is not None:
        obj["version"] = version
    return dumps(obj)


def with_seq(device: str, seq: int, body: str, stream: str = LEGACY_STREAM) -> str:
    """Add the device id, its store's stream id and the sequence number in that stream
    (edge.store's stream rules) to a spooled body (a JSON object text). The legacy
    stream (rows spooled before the store had one) is sent without a stream, as then."""
    assert body.startswith("{") and len(body) > 2
    assert stream == LEGACY_STREAM or STREAM_ID.fullmatch(stream), stream
    head = f'"stream":"{stream}",' if stream else ""
    return f'{{"dev":{dumps(device)},{head}"seq":{seq},{body[1:]}'


def spooled_key(obj: dict[str, Any], what: str) -> tuple[str, int]:
    """A spooled message's (stream, seq), what central keys dedup and order by (with the
    device); raises Rejected ("schema") naming the field and `what`. A message without a
    stream (firmware from before streams) is in its device's legacy stream ("")."""
    stream = obj.get("stream", LEGACY_STREAM)
    if "stream" in obj and not (isinstance(stream, str) and STREAM_ID.fullmatch(stream)):
        raise Rejected(
            "schema", f"{what}: stream must be 16 lowercase hex digits, not {stream!r:.40}"
        )
    seq = obj.get("seq")
    if type(seq) is not int or seq < 1:
        raise Rejected("schema", f"{what}: seq must be an integer >= 1, not {seq!r:.40}")
    return stream, seq


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event row for the `events` topic: from the controller or from the link."""

    utc_ms: int
    name: str
    subject: str = ""
    detail: str = ""
    source: Literal["control", "link", "runtime"] = "control"


def hires_body(events: Sequence[tuple[int, int, int]]) -> str:
    """A batch of the ATSPM hi-res log (edge/atspm): [UTC ms, Indiana code, parameter]
    each, oldest first; without dev/seq (see with_seq)."""
    return dumps({"enumerations": "indiana", "events": [list(e) for e in events]})


def events_body(events: Sequence[LogEvent]) -> str:
    """A batch of events, without dev/seq (see with_seq)."""
    return dumps(
        {
            "events": [
                {
                    "t": e.utc_ms - e.utc_ms % 100,
                    "name": e.name,
                    "subject": e.subject,
                    "detail": e.detail[:500],
                    "src": e.source,
                }
                for e in events
            ]
        }
    )


def state(device: str, *, utc_ms: int, ref: str | None, fields: dict[str, Any]) -> str:
    return dumps({"dev": device, "ts": utc_ms, "ref": ref, **fields})


# --- commands from central -----------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
PhaseId = Annotated[int, Field(ge=1, le=16)]


class _EvPriority(_Strict):
    kind: Literal["ev_priority"]
    approach: Annotated[str, Field(min_length=1, max_length=16)]
    eta_s: Annotated[float, Field(ge=0, le=600)]
    vehicle_id: Ident
    cancel: bool = False
    turn: Literal["L", "T", "R"] | None = None  # the vehicle's turn, where central knows it


class _TransitPriority(_Strict):
    kind: Literal["transit_priority"]
    approach: Annotated[str, Field(min_length=1, max_length=16)]
    eta_s: Annotated[float, Field(ge=0, le=600)]
    vehicle_id: Ident
    route: Annotated[str, Field(max_length=32)] = ""
    late_s: Annotated[float, Field(ge=-3600, le=3600)] = 0.0
    cancel: bool = False


class _SetMode(_Strict):
    kind: Literal["set_mode"]
    mode: Literal["free", "coordinated", "adaptive", "flash"]


class _Hold(_Strict):
    kind: Literal["hold"]
    phases: Annotated[list[PhaseId], Field(max_length=16)]  # [] releases every hold


class _ForceOff(_Strict):
    kind: Literal["force_off"]
    phase: PhaseId


class _Call(_Strict):
    kind: Literal["call"]
    phase: PhaseId
    ped: bool = False


class _Release(_Strict):
    kind: Literal["release"]


class _RequestState(_Strict):
    kind: Literal["request_state"]


class _Heartbeat(_Strict):
    kind: Literal["heartbeat"]


class _Certificate(_Strict):
    """The fleet CA's answer to the device's certificate request (edge/device/certs.py)."""

    kind: Literal["certificate"]
    pem: Annotated[str, Field(min_length=1, max_length=3000)]


CommandModel = (
    _EvPriority
    | _TransitPriority
    | _SetMode
    | _Hold
    | _ForceOff
    | _Call
    | _Release
    | _RequestState
    | _Heartbeat
    | _Certificate
)


class _CommandBody(_Strict):
    type: Literal["command"]
    device: str
    id: Ident
    issued_ms: Annotated[int, Field(ge=0)]
    expires_ms: Annotated[int, Field(ge=0)]
    command: Annotated[CommandModel, Field(discriminator="kind")]


@dataclass(frozen=True, slots=True)
class EmergencyPriorityRequest:
    """An emergency vehicle asks for a green on `approach` in `eta_s` (preemption is separate)."""

    request_id: str
    approach: str
    eta_s: float
    vehicle_id: str
    cancel: bool
    received_ms: int
    expires_ms: int
    turn: str | None = None  # L, T or R where central knows it: a turn's own preempt


@dataclass(frozen=True, slots=True)
class TransitPriorityRequest:
    request_id: str
    approach: str
    eta_s: float
    vehicle_id: str
    route: str
    late_s: float
    cancel: bool
    received_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Command:
    """A verified command from central."""

    id: str
    issued_ms: int
    expires_ms: int
    kind: str
    args: dict[str, Any]


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """'command.phase: Input should be ...; ...' (pydantic errors, one line)."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] == "missing":
            msg = "required key is missing"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse_json_object(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Rejected("malformed", f"{what} is not JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise Rejected("schema", f"{what} must be a JSON object")
    return obj


def parse_command(body: str, device: str, now_ms: int) -> Command:
    """A signed command's body -> Command; raises Rejected (schema, wrong_device, expired)."""
    obj = parse_json_object(body, "command")
    try:
        cmd = _CommandBody.model_validate(obj)
    except ValidationError as exc:
        raise Rejected("schema", describe_errors(exc)) from None
    if cmd.device != device:
        raise Rejected("wrong_device", f"command for device {cmd.device!r}, this is {device!r}")
    if now_ms > cmd.expires_ms:
        raise Rejected("expired", f"command expired {(now_ms - cmd.expires_ms) / 1000:.1f} s ago")
    if cmd.expires_ms - now_ms > MAX_COMMAND_LIFETIME_MS:
        raise Rejected("schema", "expires_ms: more than 24 h ahead")
    args = cmd.command.model_dump()
    kind = args.pop("kind")
    return Command(cmd.id, cmd.issued_ms, cmd.expires_ms, kind, args)


def command_body(
    device: str, command_id: str, issued_ms: int, expires_ms: int, command: dict[str, Any]
) -> str:
    """Build a command body (central side); sign it with signing.sign."""
    return dumps(
        {
            "type": "command",
            "device": device,
            "id": command_id,
            "issued_ms": issued_ms,
            "expires_ms": expires_ms,
            "command": command,
        }
    )


# --- outflow: a neighbour's releases (edge/link/outflow.py) --------------------------------

MAX_OUTFLOW_BYTES = 16_384
MAX_OUTFLOW_RELEASES = 256  # a second of releases at the busiest junction is far fewer
MAX_RELEASE_AGE_MS = MAX_AGE_MS  # older is history, not a prediction
MAX_ON_LOOP_MS = 3_600_000
Release = tuple[int, int, int, tuple[int, ...]]  # (detector, age ms, on the loop ms, phases)


def outflow(device: str, utc_ms: int, releases: Sequence[Release]) -> str:
    """One second's releases: [detector id, ms before sending, ms on the loop, phase ids
    showing green or yellow then] each, oldest first. Ages, not times: the receiver
    places them on its own clock."""
    return dumps(
        {
            "dev": device,
            "ts": utc_ms,
            "rel": [[d, age, on, list(ps)] for d, age, on, ps in releases],
        }
    )


def parse_outflow(payload: bytes, device: str) -> list[Release]:
    """A neighbour's outflow -> its releases; raises Rejected (oversized, malformed, schema,
    wrong_device) naming the first problem. Bounded in time and never raises otherwise."""
    if len(payload) > MAX_OUTFLOW_BYTES:
        raise Rejected(
            "oversized", f"outflow of {len(payload)} bytes (at most {MAX_OUTFLOW_BYTES})"
        )
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise Rejected("malformed", f"outflow is not JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict) or set(obj) != {"dev", "ts", "rel"}:
        raise Rejected("schema", "outflow must be an object of exactly dev, ts and rel")
    if obj["dev"] != device:
        raise Rejected(
            "wrong_device", f"outflow names device {str(obj['dev'])[:64]!r} on {device!r}'s topic"
        )
    ts, rel = obj["ts"], obj["rel"]
    if (
        type(ts) is not int
        or ts < 0
        or not isinstance(rel, list)
        or len(rel) > MAX_OUTFLOW_RELEASES
    ):
        raise Rejected(
            "schema",
            f"outflow: ts must be an integer >= 0, rel a list of at most {MAX_OUTFLOW_RELEASES}",
        )
    out: list[Release] = []
    for i, r in enumerate(rel):
        ok = (
            isinstance(r, list)
            and len(r) == 4
            and all(type(x) is int for x in r[:3])
            and 1 <= r[0] <= 255
            and 0 <= r[1] <= MAX_RELEASE_AGE_MS
            and 0 <= r[2] <= MAX_ON_LOOP_MS
            and isinstance(r[3], list)
            and len(r[3]) <= 16
            and all(type(p) is int and 1 <= p <= 16 for p in r[3])
        )
        if not ok:
            raise Rejected(
                "schema",
                f"outflow: rel[{i}] must be [detector 1-255, age 0-{MAX_RELEASE_AGE_MS} ms, "
                f"on the loop 0-{MAX_ON_LOOP_MS} ms, up to 16 phase ids 1-16]",
            )
        out.append((r[0], r[1], r[2], tuple(r[3])))
    return out
