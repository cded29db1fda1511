"""The tests' J2735 decoder: pycrate's own compile of the ETSI ITS modules, independent of
the device's encoder (asn1tools, edge/j2735/codec.py).

The frame is decoded with pycrate's DSRC MessageFrame (pycrate_asn1dir.ITS: the J2735
MessageFrame of the earlier DSRC module) and, split by hand per X.691 (an extension bit,
a 15-bit messageId, a length determinant), its message again with the 2018 module
(pycrate_asn1dir.ITS_IS.DSRC). Receiver-side helpers rebuild absolute times from TimeMarks
as a vehicle would: the message's own minute of the year and ms within the minute give
"now"; a TimeMark before now's tenth of the hour lies in the next hour.
"""

from __future__ import annotations

import datetime
from typing import Any

from pycrate_asn1dir import ITS, ITS_IS

HOUR_MS = 3_600_000


def split_frame(frame: bytes) -> tuple[int, bytes]:
    """(messageId, the message's own encoding) from a MessageFrame's bits, by hand."""
    head = int.from_bytes(frame[:2], "big")
    assert head >> 15 == 0, "no extension additions in a MessageFrame"
    msg_id = head & 0x7FFF
    first = frame[2]
    if first < 0x80:
        length, start = first, 3
    else:
        assert first >> 6 == 0b10, "a message under 16 K"
        length, start = ((first & 0x3F) << 8) | frame[3], 4
    assert len(frame) == start + length, "the frame holds exactly its message"
    return msg_id, frame[start:]


def decode(frame: bytes) -> tuple[int, dict[str, Any]]:
    """(messageId, the SPAT or MapData as pycrate's 2018 DSRC module reads it)."""
    old = ITS.DSRC.MessageFrame
    old.from_uper(frame)
    val = old.get_val()
    msg_id, inner = split_frame(frame)
    assert val["messageId"] == msg_id
    assert val["value"][0] == {19: "SPAT", 18: "MapData"}[msg_id]
    typ = ITS_IS.DSRC.SPAT if msg_id == 19 else ITS_IS.DSRC.MapData
    typ.from_uper(inner)
    decoded: dict[str, Any] = typ.get_val()
    return msg_id, decoded


def now_ms(year: int, moy: int, dsecond: int) -> int:
    """UTC ms of a message's minute of the year and ms within it."""
    start = datetime.datetime(year, 1, 1, tzinfo=datetime.UTC)
    return round(start.timestamp() * 1000) + moy * 60_000 + dsecond


def absolute(timemark: int, now: int) -> int | None:
    """A TimeMark as a UTC ms time, read at `now` (None: unknown or over an hour)."""
    if timemark >= 36000:
        return None
    hour = now - now % HOUR_MS
    t = hour + timemark * 100
    if t < now - now % 100:  # before now's tenth: the next hour
        t += HOUR_MS
    return t
