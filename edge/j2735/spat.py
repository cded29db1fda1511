"""The J2735 SPAT message (DSRC `SPAT`) from the signal groups' states. Pure: no clock.

Rules it keeps:
- Every time is the core's clock plus one fixed offset (`utc0_ms`, the UTC ms at the
  core's 0, taken once when publishing starts): the message's own time is the core's
  step (out.t_ms), end times are the core's deadlines. Nothing is accumulated from the
  wall clock, so the end time of an interval is the same in every message.
- TimeMark (minEndTime, maxEndTime, likelyTime): tenths of a second within the UTC hour
  in which the end falls, rounded to the nearest tenth: an end in the next hour wraps
  (hh:59:59.5 + 1 s is 5, not 36005); an end an hour or more away is 36000; an unknown
  end is 36001. A minimum end already past (the phase may end at any moment) is sent as
  now; a maximum end is never before the minimum. Leap seconds are not modelled.
- timeStamp / moy: the UTC minute of the year and the ms within the minute of the step.
- IntersectionStatusObject: failureFlash and failureMode in fault flash, preemptIsActive
  while a preempt is served (from its enter/exit events).
- revision (MsgCount) counts changes of any signal group's state, modulo 128.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from edge.j2735.signals import GroupState

TIMEMARK_HOUR = 36000  # also: "more than an hour away"
TIMEMARK_UNKNOWN = 36001
HOUR_MS = 3_600_000

EVENT_STATE = {
    0: "unavailable",
    1: "dark",
    2: "stop-Then-Proceed",
    3: "stop-And-Remain",
    4: "pre-Movement",
    5: "permissive-Movement-Allowed",
    6: "protected-Movement-Allowed",
    7: "permissive-clearance",
    8: "protected-clearance",
    9: "caution-Conflicting-Traffic",
}

# IntersectionStatusObject bits (bit 0 is the string's first)
FAILURE_FLASH, PREEMPT_ACTIVE, FAILURE_MODE = 2, 3, 8


def timemark(end_utc_ms: int | None, now_utc_ms: int) -> int:
    """A J2735 TimeMark for an end time (UTC ms), seen at now_utc_ms."""
    if end_utc_ms is None:
        return TIMEMARK_UNKNOWN
    end = max(end_utc_ms, now_utc_ms)
    if end - now_utc_ms >= HOUR_MS:
        return TIMEMARK_HOUR
    return ((end + 50) // 100) % TIMEMARK_HOUR


def minute_of_year(utc_ms: int) -> tuple[int, int]:
    """(MinuteOfTheYear, DSecond: ms within the minute) of a UTC time."""
    t = datetime.datetime.fromtimestamp(utc_ms / 1000, tz=datetime.UTC)
    start = datetime.datetime(t.year, 1, 1, tzinfo=datetime.UTC)
    minutes = (utc_ms - round(start.timestamp() * 1000)) // 60_000
    return minutes, utc_ms % 60_000


def bits16(*set_bits: int) -> tuple[bytes, int]:
    value = 0
    for b in set_bits:
        value |= 1 << (15 - b)
    return (value.to_bytes(2, "big"), 16)


def spat_value(
    intersection_id: int,
    states: Sequence[GroupState],
    now_ms: int,
    utc0_ms: int,
    *,
    revision: int,
    fault: bool = False,
    preempt: bool = False,
    name: str | None = None,
) -> dict[str, Any]:
    """The SPAT as asn1tools encodes it: one intersection, every signal group."""
    now = utc0_ms + now_ms
    moy, dsecond = minute_of_year(now)
    movements = []
    for g in states:
        mn = None if g.min_end_ms is None else utc0_ms + g.min_end_ms
        mx = None if g.max_end_ms is None else utc0_ms + max(g.max_end_ms, g.min_end_ms or 0)
        likely = None if g.likely_end_ms is None else utc0_ms + g.likely_end_ms
        timing: dict[str, int] = {"minEndTime": timemark(mn, now)}
        if mx is not None:
            timing["maxEndTime"] = timemark(mx, now)
        if likely is not None:
            timing["likelyTime"] = timemark(likely, now)
        movements.append(
            {
                "signalGroup": g.group,
                "state-time-speed": [{"eventState": EVENT_STATE[g.state], "timing": timing}],
            }
        )
    status = [FAILURE_FLASH, FAILURE_MODE] if fault else []
    if preempt:
        status.append(PREEMPT_ACTIVE)
    inter: dict[str, Any] = {
        "id": {"id": intersection_id},
        "revision": revision % 128,
        "status": bits16(*status),
        "moy": moy,
        "timeStamp": dsecond,
        "states": movements,
    }
    if name:
        inter["name"] = name[:63]
    return {"timeStamp": moy, "intersections": [inter]}
