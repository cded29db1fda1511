"""The hi-res log's files: ASC/3 `.datZ`, MaxTime's XML, the ATSPM CSV (pure; bytes/text).

- `.datZ` (what an Econolite ASC/3 writes and ATSPM's AscToIndianaDecoder reads): a zlib
  stream whose content is a 20-character start time ("MM/DD/YYYY HH:MM:SS", padded with
  a space), seven header lines (the first ends the start time's line: version, resource,
  intersection, IP, MAC, "Controller data log beginning:,<time>", "Phases in use:,1,2,..")
  and then 4-byte records: event code (1 byte), parameter (1 byte), tenths of a second
  since the start time (2 bytes, big-endian; the decoder reads it signed, so a file
  spans at most 3276.7 s: FILE_S is 15 minutes, as the controllers write them).
  A parameter above 255 is written as 255 (the enumerations' own convention).
- XML as MaxTime's `/v1/asclog/xml/full` serves it (ATSPM's MaxtimeToIndianaDecoder
  reads every `Event` element's TimeStamp, EventTypeID and Parameter):
  `<EventResponses><Event ID= TimeStamp="2026-01-05T07:00:00.1" EventTypeID= Parameter=/>`.
- CSV with the columns the `atspm` package (and UDOT's import) takes: TimeStamp,
  DeviceId, EventId, Parameter.
Timestamps are naive (the device's clock; UTC on the device, the simulator's own day in
simulation), at 0.1 s.
"""

from __future__ import annotations

import csv
import io
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

FILE_S = 15 * 60
_RECORD = struct.Struct(">BBH")
_START_FMT = "%m/%d/%Y %H:%M:%S"


@dataclass(frozen=True, slots=True)
class Record:
    """One logged event at its wall time."""

    at: datetime
    code: int
    param: int


def stamp(at: datetime) -> str:
    """ISO time at 0.1 s: 2026-01-05T07:00:00.1"""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{at.microsecond // 100_000}"


def file_start(at: datetime) -> datetime:
    """The start of the 15-minute file `at` falls in."""
    base = at.replace(minute=0, second=0, microsecond=0)
    return base + timedelta(seconds=(at - base).total_seconds() // FILE_S * FILE_S)


def datz(
    start: datetime,
    records: Iterable[Record],
    *,
    phases: Sequence[int] = (),
    resource: str = "edge",
    intersection: str = "0",
) -> bytes:
    """One .datZ file: the records from `start` (each within FILE_S of it, in order)."""
    head = (
        start.strftime(_START_FMT).ljust(20)
        + "Version:,edge 1\n"
        + f"Resource:,{resource}\n"
        + f"Intersection:,{intersection}\n"
        + "IP Address:,0.0.0.0\n"
        + "MAC Address:,00:00:00:00:00:00\n"
        + f"Controller data log beginning:,{start.strftime(_START_FMT)}\n"
        + "Phases in use:,"
        + ",".join(str(p) for p in phases)
        + "\n"
    )
    body = bytearray(head.encode("ascii"))
    for r in records:
        tenths = round((r.at - start).total_seconds() * 10)
        if not 0 <= tenths < 32768:
            raise ValueError(f".datZ from {start}: event at {r.at} is outside the file's span")
        body += _RECORD.pack(r.code & 0xFF, min(r.param, 255), tenths)
    return zlib.compress(bytes(body))


def read_datz(data: bytes) -> tuple[datetime, list[Record]]:
    """A .datZ file back (the reading side of `datz`, for tests and tools)."""
    raw = zlib.decompress(data)
    start = datetime.strptime(raw[:20].decode("ascii").strip(), _START_FMT)
    pos, lines = 20, 0
    while lines < 7:
        pos = raw.index(b"\n", pos) + 1
        lines += 1
    out = []
    for k in range(pos, len(raw) - 3, 4):
        code, param, tenths = _RECORD.unpack_from(raw, k)
        out.append(Record(start + timedelta(seconds=tenths / 10), code, param))
    return start, out


def split_files(records: Iterable[Record]) -> Iterator[tuple[datetime, list[Record]]]:
    """Records (in time order) grouped into their 15-minute files."""
    start: datetime | None = None
    chunk: list[Record] = []
    for r in records:
        s = file_start(r.at)
        if s != start:
            if start is not None:
                yield start, chunk
            start, chunk = s, []
        chunk.append(r)
    if start is not None:
        yield start, chunk


def xml_lines(records: Iterable[Record], first_id: int = 1) -> Iterator[str]:
    """MaxTime's `/v1/asclog/xml/full` document, a line at a time."""
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<EventResponses>\n'
    for k, r in enumerate(records, first_id):
        yield (
            f'  <Event ID="{k}" TimeStamp="{stamp(r.at)}" '
            f'EventTypeID="{r.code}" Parameter="{r.param}"/>\n'
        )
    yield "</EventResponses>\n"


def xml(records: Iterable[Record], first_id: int = 1) -> str:
    return "".join(xml_lines(records, first_id))


def csv_header() -> str:
    return "TimeStamp,DeviceId,EventId,Parameter\n"


def csv_rows(device: str, records: Iterable[Record]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows((stamp(r.at).replace("T", " "), device, r.code, r.param) for r in records)
    return buf.getvalue()


def parse_since(text: str) -> datetime:
    """`since` as ATSPM sends it to MaxTime ("MM-dd-yyyy HH:mm:ss.f") or ISO 8601."""
    text = text.strip()
    for fmt in ("%m-%d-%Y %H:%M:%S.%f", "%m-%d-%Y %H:%M:%S", "%m-%d-%Y"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    try:
        at = datetime.fromisoformat(text)
        # an offset can take year 1 or 9999 out of datetime's range: OverflowError
        return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise ValueError(
            f"since={text!r}: give MM-DD-YYYY HH:MM:SS.f (as ATSPM sends it) or ISO 8601"
        ) from None
