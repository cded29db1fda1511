"""The running intersection as the page sees it: snapshots, the event log, the last hour.

`Recorder.on_tick` is the runtime's `web` tick hook: it runs in the hook's own
thread on each tick's immutable snapshot (edge/tickhooks.py), never inside the
control tick, and only copies the tick's controller events into a bounded deque
and counts detector rising edges and call-to-green waits into one-minute
buckets, a few microseconds a tick. The deques are shared with the page's
handlers (the event loop) and the log capture (any thread): every change and
every copy of them is made under one lock, held for nothing else. Snapshots are
built when a client asks, on the event loop, at most once per tick however many
browsers are open. Minutes are on the runtime's clock, so in
a sped-up simulation "the last hour" is an hour of simulated time.

Delay here is what the controller itself knows without cameras: the wait from a
phase's first call to its green (signal delay per served call), per minute.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from edge.board.session import SessionState, channel_list, fault_class, fault_name, state_name
from edge.control.messages import Event, Lamp
from edge.control.states import GREEN
from edge.device.status import interfaces
from hw import codec

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick

MINUTE_MS = 60_000
HOUR_MINUTES = 60
EVENT_LOG_SIZE = 2000
_WARNING_EVENTS = frozenset({"command_rejected", "fault_flash", "input_error"})

LAMP_NAME = {
    Lamp.DARK: "dark",
    Lamp.RED: "red",
    Lamp.YELLOW: "yellow",
    Lamp.GREEN: "green",
    Lamp.FLASH_RED: "flash_red",
    Lamp.FLASH_YELLOW: "flash_yellow",
}
PED_NAME = {
    Lamp.DARK: "dark",
    Lamp.RED: "dont_walk",
    Lamp.GREEN: "walk",
    Lamp.FLASH_RED: "flash_dont_walk",
}


class Timer(BaseModel):
    """The interval a phase is in and the time left in it, in the runtime's seconds."""

    interval: str  # min_green, passage, max, rest, yellow, red_clear, walk, ped_clear, red
    left_s: float | None
    max_left_s: float | None = None


class PhaseState(BaseModel):
    id: int
    ring: int
    lamp: str
    ped: str
    call: bool
    ped_call: bool
    hold: bool
    omit: bool
    timer: Timer


class OverlapState(BaseModel):
    id: str
    lamp: str


class DetectorState(BaseModel):
    id: int
    on: bool


class BoardState(BaseModel):
    port: str
    session: str
    link: str  # up, or lost: no valid frame (the board flashes by its own watchdog)
    state: str  # as last reported by the board
    fault: str
    latched_fault: str | None
    fault_class: str | None = None  # the board's fault in EN 12675's terms (None: no fault)
    fault_channels: list[int] = []  # site channel ids the board's fault names
    fault_record: str | None = None  # the fault the board recorded across resets
    channels: list[str]  # the map the controller wants, per channel
    lamps: list[str] | None  # what the board drives, when known (the virtual board)
    stats: dict[str, int]


class State(BaseModel):
    """One snapshot of the live intersection (the stream sends these at 10 Hz)."""

    wall: str
    t_s: float
    tick: int
    mode: str
    plan: str
    fault: str | None
    phases: list[PhaseState]
    overlaps: list[OverlapState]
    detectors: list[DetectorState]
    board: BoardState
    jitter_ms: dict[str, float]
    link: str  # not_configured, connected, disconnected
    cameras: str  # not_configured, ok, degraded
    interfaces: dict[str, str] = {}  # the agency interfaces the device runs (edge status's)


class LoggedEvent(BaseModel):
    seq: int
    wall: str
    t_s: float | None
    source: str  # controller, manual, runtime, board, link, sense
    level: str
    name: str
    subject: str = ""
    detail: str = ""


class Minute(BaseModel):
    minute: int  # minutes since the runtime's clock origin
    counts: int  # vehicle detector actuations (rising edges)
    served_calls: int
    mean_wait_s: float | None  # mean wait from first call to green


class History(BaseModel):
    minutes: list[Minute]


def _name(lamp: Lamp, table: dict[Lamp, str]) -> str:
    return table.get(lamp, "dark")


class Recorder:
    """Per-tick bookkeeping for the page, and the snapshot builder."""

    def __init__(self, rt: Runtime, board_lamps: Callable[[], Sequence[int]] | None = None) -> None:
        self.rt = rt
        self.board_lamps = board_lamps
        self._lock = threading.RLock()  # guards events, seq and minutes; held for nothing else
        self.events: deque[LoggedEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self.seq = 0
        self.minutes: deque[Minute] = deque(maxlen=HOUR_MINUTES)
        n = len(rt.site.phases)
        self._call_at: list[int | None] = [None] * n
        self._was_green = [False] * n
        self._det_prev: list[bool] = []
        self._vehicle_det = [not d.ped for d in rt.site.detectors]
        self._cache: tuple[int, State, str] | None = None
        self.host: str | None = None  # the address the page listens on, once bound
        self.port: int | None = None  # the page's port, once bound
        self.closing = False  # the runtime is shutting down: live streams end

    # -- per tick ---------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        """One tick's snapshot (in the hook's thread; _call_at and friends are its own)."""
        out = tick.outputs
        if out is None:
            return
        for ev in out.events:
            self._add_controller_event(ev)
        now = tick.now_ms
        counts, served, waits = 0, 0, 0.0
        present = tick.present
        if len(self._det_prev) != len(present):
            self._det_prev = list(present)
        for k, on in enumerate(present):
            if on and not self._det_prev[k] and self._vehicle_det[k]:
                counts += 1
        self._det_prev = list(present)
        for i, iv in enumerate(tick.intervals):
            green = iv == GREEN
            if tick.calls[i] and not green and self._call_at[i] is None:
                self._call_at[i] = now
            if green and not self._was_green[i]:
                at = self._call_at[i]
                if at is not None:
                    served += 1
                    waits += (now - at) / 1000
                self._call_at[i] = None
            self._was_green[i] = green
        with self._lock:
            minute = self._minute(now)
            minute.counts += counts
            if served:
                n = minute.served_calls
                mean = minute.mean_wait_s or 0.0
                minute.mean_wait_s = (mean * n + waits) / (n + served)
                minute.served_calls = n + served

    def _minute(self, now_ms: int) -> Minute:
        m = now_ms // MINUTE_MS
        if not self.minutes or self.minutes[-1].minute != m:
            self.minutes.append(Minute(minute=m, counts=0, served_calls=0, mean_wait_s=None))
        return self.minutes[-1]

    def _add_controller_event(self, ev: Event) -> None:
        level = (
            "warning" if ev.name in ("command_rejected", "fault_flash", "input_error") else "info"
        )
        self.add("controller", level, ev.name, ev.subject, ev.detail, t_ms=ev.t_ms)

    def add(
        self,
        source: str,
        level: str,
        name: str,
        subject: str = "",
        detail: str = "",
        t_ms: int | None = None,
    ) -> LoggedEvent:
        wall = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        t_s = None if t_ms is None else t_ms / 1000
        with self._lock:
            self.seq += 1
            ev = LoggedEvent(
                seq=self.seq, wall=wall, t_s=t_s, source=source, level=level, name=name,
                subject=subject, detail=detail,
            )  # fmt: skip
            self.events.append(ev)
        return ev

    # -- on request -------------------------------------------------------------------------

    def state(self) -> State:
        """The live snapshot; built at most once per control tick."""
        return self._cached()[0]

    def state_json(self) -> str:
        """The snapshot as JSON, encoded once per tick for every open stream."""
        return self._cached()[1]

    def _cached(self) -> tuple[State, str]:
        cached = self._cache
        if cached is None or cached[0] != self.rt.ticks:
            st = self._build()
            cached = (self.rt.ticks, st, st.model_dump_json())
            self._cache = cached
        return cached[1], cached[2]

    def _build(self) -> State:
        rt = self.rt
        drv = rt.driver
        core = drv.controller.status()  # the core's documented status (outputs.py rule 5)
        out = drv.outputs
        site = rt.site
        now = core.t_ms
        phases = []
        for i, (ph, st) in enumerate(zip(site.phases, core.phases, strict=True)):
            lamp = out.phases[i] if out is not None else Lamp.DARK
            ped = out.peds[i] if out is not None else Lamp.DARK
            phases.append(
                PhaseState(
                    id=ph.id,
                    ring=ph.ring,
                    lamp=_name(lamp, LAMP_NAME),
                    ped=_name(ped, PED_NAME),
                    call=st.call,
                    ped_call=st.ped_call,
                    hold=st.hold,
                    omit=st.omit,
                    timer=Timer(
                        interval=st.interval,
                        left_s=_seconds(st.left_ms),
                        max_left_s=_seconds(st.max_left_ms),
                    ),
                )
            )
        overlaps = [
            OverlapState(id=ov.id, lamp=_name(out.overlaps[k] if out else Lamp.DARK, LAMP_NAME))
            for k, ov in enumerate(site.overlaps)
        ]
        detectors = [
            DetectorState(id=d.id, on=on)
            for d, on in zip(site.detectors, core.detectors, strict=True)
        ]
        s = drv.session
        lamps = None
        if self.board_lamps is not None:
            lamps = [_name(Lamp(c), LAMP_NAME) if c in Lamp._value2member_map_ else "dark"
                     for c in self.board_lamps()]  # fmt: skip
        board = BoardState(
            port=rt.board.port,
            session=s.state.value,
            link="lost" if s.state in _NO_LINK else "up",
            state=state_name(s.board_state) if s.board_state is not None else "UNKNOWN",
            fault=fault_name(s.board_fault),
            latched_fault=fault_name(drv.latched_fault) if drv.latched_fault is not None else None,
            fault_class=(
                fault_class(s.board_fault)
                if s.board_fault not in (codec.FAULT_NONE, codec.FAULT_POWER_ON)
                else None
            ),
            fault_channels=[
                site.channels[c].id
                for c in channel_list(s.fault_channels)
                if c < len(site.channels)
            ],
            fault_record=s.fault_record.describe() if s.fault_record is not None else None,
            channels=[_name(c, LAMP_NAME) for c in out.channels] if out is not None else [],
            lamps=lamps,
            stats=drv.stats(),
        )
        status = rt.status()
        return State(
            wall=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            t_s=now / 1000,
            tick=rt.ticks,
            mode=out.mode if out is not None else "none",
            plan=core.plan,
            fault=out.fault if out is not None else None,
            phases=phases,
            overlaps=overlaps,
            detectors=detectors,
            board=board,
            jitter_ms={k: float(v) for k, v in status["jitter_ms"].items()},
            link=_link_summary(rt),
            cameras=_camera_summary(rt),
            interfaces=interfaces(status),
        )

    def history(self) -> History:
        with self._lock:
            minutes = [m.model_copy() for m in self.minutes]
        return History(minutes=minutes)

    def event_log(
        self,
        *,
        source: str | None = None,
        level: str | None = None,
        text: str | None = None,
        after: int = 0,
        limit: int = 200,
    ) -> list[LoggedEvent]:
        """Newest last; filtered by source, level (at least), and a substring."""
        min_level = _LEVELS.get(level or "debug", 0)
        needle = (text or "").lower()
        with self._lock:
            events = list(self.events)
        out = [
            ev
            for ev in events
            if ev.seq > after
            and (source is None or ev.source == source)
            and _LEVELS.get(ev.level, 0) >= min_level
            and (not needle or needle in f"{ev.name} {ev.subject} {ev.detail}".lower())
        ]
        return out[-limit:]


_NO_LINK = frozenset({SessionState.CLOSED, SessionState.HELLO})
_LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _link_summary(rt: Runtime) -> str:
    if rt.link is None:
        return "not_configured"
    try:
        return "connected" if rt.link.link_status().get("connected") else "disconnected"
    except Exception:
        return "unknown"


def _camera_summary(rt: Runtime) -> str:
    if rt.sensing is None:
        return "not_configured"
    try:
        cams = rt.sensing.cameras()
    except Exception:
        return "unknown"
    return "ok" if all(c.get("health") == "ok" for c in cams) else "degraded"


class LogCapture(logging.Handler):
    """The runtime's own log lines (board, runtime, link, sense) into the page's event log."""

    SOURCES = (
        ("edge.board", "board"),
        ("edge.runtime", "runtime"),
        ("edge.link", "link"),
        ("edge.sense", "sense"),
        ("edge.vision", "sense"),
        ("edge.web", "web"),
    )

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(logging.INFO)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        try:
            source = next((s for p, s in self.SOURCES if record.name.startswith(p)), None)
            if source is None:
                return
            text = record.getMessage()
            name, _, detail = text.partition(" ")
            if name.startswith(("manual_", "zones_")):
                return  # the page logs technicians' actions itself, with the user as subject
            self.recorder.add(source, record.levelname.lower(), name, "", detail)
        except Exception:
            self.handleError(record)
