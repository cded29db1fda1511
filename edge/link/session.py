"""The device side of the protocol with central, sans-IO: bytes from the plan
and cmd topics in, acknowledgements and typed actions out.

Rules it keeps:
1. Nothing from central acts before it is verified: size, JSON, signature by
   a provisioned key, shape, device, expiry, then replay (plan version above
   the high-water mark; command id not seen before).
2. Every refused message gets a `rejected` ack with a code and the exact
   reason (and a log line); nothing is half-applied: a plan bundle is one
   action, stored and applied whole or not at all.
3. Backup timer (NTCIP 1202 unit backup time): central-issued overrides
   (holds, flash) lapse back to local operation when no valid message has
   come from central for `backup_ms`. Local control never waits for central.

The shell (device.py) persists InstallPlan before sending its `accepted` ack,
and sends the `applied` ack when the controller reports the plan applied.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.control.messages import Command as CoreCommand
from edge.control.messages import Flash, ForceOff, Hold, PlaceCall, SetMode
from edge.link.errors import Rejected
from edge.link.keyring import Keyring
from edge.link.messages import (
    MAX_COMMAND_BYTES,
    Command,
    EmergencyPriorityRequest,
    LogEvent,
    TransitPriorityRequest,
    parse_command,
)
from edge.link.plans import Bundle, verify_bundle
from edge.link.signing import open_envelope

log = logging.getLogger(__name__)

CLOCK_SAMPLES = 16  # commands the clock offset estimate looks back over
CLOCK_WARN_MS = 1000  # beyond this the time bases disagree enough to say so (an event)


class CommandMemory(Protocol):
    def remember_command(self, command_id: str, expires_ms: int, now_ms: int) -> bool: ...


# --- actions for the shell ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    ref: str | None
    kind: str  # "plan" | "command"
    status: str  # "accepted" | "applied" | "rejected" | "done"
    code: str | None = None
    reason: str = ""
    version: int | None = None
    correlation: bytes | None = None


@dataclass(frozen=True, slots=True)
class InstallPlan:
    bundle: Bundle
    envelope: bytes
    correlation: bytes | None


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """Hand to the controller; `ref` is the central command id (None: the link's own)."""

    ref: str | None
    command: CoreCommand
    correlation: bytes | None = None


@dataclass(frozen=True, slots=True)
class PriorityRequest:
    request: EmergencyPriorityRequest | TransitPriorityRequest


@dataclass(frozen=True, slots=True)
class SendState:
    ref: str
    correlation: bytes | None


@dataclass(frozen=True, slots=True)
class InstallCertificate:
    """The fleet CA's certificate for the key the device staged (edge/device/certs.py)."""

    ref: str
    pem: str
    correlation: bytes | None


Action = (
    Ack | InstallPlan | ControlCommand | PriorityRequest | SendState | LogEvent | InstallCertificate
)


@dataclass
class DeviceSession:
    device: str
    trusted: Mapping[str, Ed25519PublicKey]
    site_raw: Mapping[str, Any]
    high_water: int
    memory: CommandMemory
    backup_ms: int = 300_000
    approaches: frozenset[str] = frozenset()
    last_central_ms: int | None = None
    overrides: set[str] = field(default_factory=set)  # "hold", "flash", "mode"
    lapsed: bool = False
    # central's clock minus ours, as seen in verified commands (issued - received)
    clock_samples: deque[int] = field(default_factory=lambda: deque(maxlen=CLOCK_SAMPLES))
    clock_off: bool = False  # the estimate is beyond CLOCK_WARN_MS (event logged once)
    keyring: Keyring | None = None  # `trusted` is its active keys; the root key moves them
    # the latest plan refused while the keys were unconfirmed (one, bounded): the broker
    # may hand over the retained plan before the retained root statement; it is checked
    # again, in full, once the statement has confirmed the keys
    held_plan: tuple[bytes, bytes | None] | None = None

    @property
    def clock_offset_ms(self) -> int | None:
        """Central's clock minus this device's, in ms (None: no command heard yet).

        Each verified command gives issued - received: the offset less that
        command's one-way delay. The largest of the last few is the one that
        travelled fastest, so the best estimate (an underestimate by the
        smallest delay, milliseconds on a healthy link). Expiry checks and
        coordination's common time base both assume it is small.
        """
        return max(self.clock_samples) if self.clock_samples else None

    def _clock(self, issued_ms: int, now_ms: int) -> list[Action]:
        self.clock_samples.append(issued_ms - now_ms)
        off = self.clock_offset_ms or 0
        far = abs(off) > CLOCK_WARN_MS
        if far == self.clock_off:
            return []
        self.clock_off = far
        name = "clock_offset" if far else "clock_synced"
        detail = f"central's clock {off:+d} ms from this device's"
        return [LogEvent(now_ms, name, "", detail, "link")]

    # -- plan bundles --------------------------------------------------------------

    def _keys_confirmed(self) -> None:
        """Central's keys are not trusted while a lost keyring state is unconfirmed."""
        if self.keyring is not None and not self.keyring.confirmed:
            raise Rejected(
                "unknown_key",
                "this device's key state was lost: it trusts central's keys again once "
                "central's retained root-signed key statement confirms them",
            )

    def on_plan(self, raw: bytes, now_ms: int, correlation: bytes | None = None) -> list[Action]:
        try:
            if self.keyring is not None and not self.keyring.confirmed:
                self.held_plan = (raw, correlation)
            self._keys_confirmed()
            bundle, _body = verify_bundle(
                raw,
                device=self.device,
                trusted=self.trusted,
                high_water=self.high_water,
                site_raw=self.site_raw,
                now_ms=now_ms,
            )
        except RecursionError:
            rej = Rejected("malformed", "plan bundle nested too deep")
            log.warning("plan bundle rejected: %s: %s", rej.code, rej.reason)
            return [Ack(None, "plan", "rejected", rej.code, rej.reason, None, correlation)]
        except Rejected as rej:
            log.warning("plan bundle rejected: %s: %s", rej.code, rej.reason)
            return [
                Ack(None, "plan", "rejected", rej.code, rej.reason, None, correlation),
                LogEvent(now_ms, "plan_rejected", rej.code, rej.reason, "link"),
            ]
        self.high_water = bundle.version
        out: list[Action] = self._heard(now_ms)
        out.append(InstallPlan(bundle, raw, correlation))
        return out

    # -- commands --------------------------------------------------------------------

    def on_command(self, raw: bytes, now_ms: int, correlation: bytes | None = None) -> list[Action]:
        ref: str | None = None
        try:
            if len(raw) > MAX_COMMAND_BYTES:
                raise Rejected(
                    "oversized", f"command is {len(raw)} bytes, the limit is {MAX_COMMAND_BYTES}"
                )
            if self.keyring is not None and self.keyring.is_root_signed(raw):
                return self._rollover(self.keyring, raw, now_ms, correlation)
            self._keys_confirmed()
            body = open_envelope(raw, self.trusted)
            cmd = parse_command(body, self.device, now_ms)
            ref = cmd.id
            if not self.memory.remember_command(cmd.id, cmd.expires_ms, now_ms):
                raise Rejected("replayed", f"command {cmd.id!r} was already received")
            actions = self._heard(now_ms)
            actions += self._clock(cmd.issued_ms, now_ms)
            actions += self._command(cmd, now_ms, correlation)
            return actions
        except RecursionError:
            log.warning("command rejected: malformed: nested too deep")
            return [
                Ack(
                    ref,
                    "command",
                    "rejected",
                    "malformed",
                    "command nested too deep",
                    None,
                    correlation,
                )
            ]
        except Rejected as rej:
            log.warning("command %s rejected: %s: %s", ref, rej.code, rej.reason)
            return [
                Ack(ref, "command", "rejected", rej.code, rej.reason, None, correlation),
                LogEvent(now_ms, "command_rejected", rej.code, rej.reason, "link"),
            ]

    def _rollover(self, ring: Keyring, raw: bytes, now_ms: int, corr: bytes | None) -> list[Action]:
        """A root-signed key rollover (edge/link/keyring.py); refusals raise Rejected."""
        what = ring.apply(raw, self.device, now_ms)
        log.warning("key_rollover %s", what)
        out: list[Action] = [
            Ack(None, "command", "done", reason=what, correlation=corr),
            LogEvent(now_ms, "key_rollover", "", what, "link"),
        ]
        if self.held_plan is not None and ring.confirmed:
            (plan, plan_corr), self.held_plan = self.held_plan, None
            out += self.on_plan(plan, now_ms, plan_corr)
        return out

    def _command(self, cmd: Command, now_ms: int, corr: bytes | None) -> list[Action]:
        a = cmd.args
        accepted = Ack(cmd.id, "command", "accepted", correlation=corr)
        if cmd.kind in ("ev_priority", "transit_priority"):
            if self.approaches and a["approach"] not in self.approaches:
                raise Rejected(
                    "schema",
                    f"approach: no approach {a['approach']!r} (site has "
                    f"{', '.join(sorted(self.approaches))})",
                )
            req: EmergencyPriorityRequest | TransitPriorityRequest
            if cmd.kind == "ev_priority":
                req = EmergencyPriorityRequest(
                    cmd.id,
                    a["approach"],
                    a["eta_s"],
                    a["vehicle_id"],
                    a["cancel"],
                    now_ms,
                    cmd.expires_ms,
                    a.get("turn"),
                )
            else:
                req = TransitPriorityRequest(
                    cmd.id,
                    a["approach"],
                    a["eta_s"],
                    a["vehicle_id"],
                    a["route"],
                    a["late_s"],
                    a["cancel"],
                    now_ms,
                    cmd.expires_ms,
                )
            detail = f"{a['vehicle_id']} on {a['approach']} eta {a['eta_s']} s"
            name = f"{cmd.kind}_{'cancel' if a['cancel'] else 'request'}"
            return [PriorityRequest(req), accepted, LogEvent(now_ms, name, cmd.id, detail, "link")]
        if cmd.kind == "set_mode":
            mode = a["mode"]
            if mode == "flash":
                self.overrides.add("flash")
                return [ControlCommand(cmd.id, Flash(True), corr), accepted]
            set_mode = SetMode(mode, "central")
            out: list[Action] = [ControlCommand(cmd.id, set_mode, corr), accepted]
            if "flash" in self.overrides:
                out.insert(0, ControlCommand(None, Flash(False)))
                self.overrides.discard("flash")
            self.overrides.add("mode")  # released back to the plan's own mode
            return out
        if cmd.kind == "hold":
            phases = tuple(a["phases"])
            if phases:
                self.overrides.add("hold")
            else:
                self.overrides.discard("hold")
            return [ControlCommand(cmd.id, Hold(phases or None), corr), accepted]
        if cmd.kind == "force_off":
            return [ControlCommand(cmd.id, ForceOff(a["phase"]), corr), accepted]
        if cmd.kind == "call":
            return [ControlCommand(cmd.id, PlaceCall(a["phase"], a["ped"]), corr), accepted]
        if cmd.kind == "release":
            return [*self._release(now_ms, cmd.id, corr), accepted]
        if cmd.kind == "request_state":
            return [SendState(cmd.id, corr)]
        if cmd.kind == "heartbeat":
            return [Ack(cmd.id, "command", "done", correlation=corr)]
        if cmd.kind == "certificate":
            return [InstallCertificate(cmd.id, a["pem"], corr)]
        raise Rejected("unsupported", f"command kind {cmd.kind!r}")

    def _release(self, now_ms: int, ref: str | None, corr: bytes | None) -> list[Action]:
        out: list[Action] = []
        if "hold" in self.overrides:
            out.append(ControlCommand(ref, Hold(None), corr))
        if "flash" in self.overrides:
            out.append(ControlCommand(ref, Flash(False), corr))
        if "mode" in self.overrides:
            out.append(ControlCommand(ref, SetMode("plan", "central"), corr))  # the plan's own
        self.overrides.clear()
        return out

    # -- central liveness -----------------------------------------------------------

    def _heard(self, now_ms: int) -> list[Action]:
        out: list[Action] = []
        if self.lapsed:
            gap = (now_ms - (self.last_central_ms or now_ms)) / 1000
            out.append(LogEvent(now_ms, "central_resumed", "", f"silent for {gap:.1f} s", "link"))
            self.lapsed = False
        self.last_central_ms = now_ms
        return out

    def tick(self, now_ms: int) -> list[Action]:
        """Run the backup timer; call it every step or so."""
        if self.last_central_ms is None or self.lapsed:
            return []
        if now_ms - self.last_central_ms < self.backup_ms:
            return []
        self.lapsed = True
        lapsing = sorted(self.overrides)
        out: list[Action] = [
            LogEvent(
                now_ms,
                "backup_timer_expired",
                "",
                f"no word from central for {self.backup_ms / 1000:g} s; "
                + (f"releasing {', '.join(lapsing)}" if lapsing else "no overrides active"),
                "link",
            )
        ]
        out += self._release(now_ms, None, None)
        return out
