"""The hi-res log's files (edge/atspm/formats.py), read back by decoders written here from
the formats' specifications, not from the writer:

- .datZ as ATSPM's AscToIndianaDecoder reads it: skip the 2-byte zlib header, inflate the
  raw deflate stream, parse the first 20 characters as a date, skip to the seventh line
  feed, then 4-byte records: code, parameter, a SIGNED big-endian count of tenths;
- XML as the MaxtimeToIndianaDecoder reads it: every `Event` element's attributes;
- CSV with the atspm package's columns.
"""

from __future__ import annotations

import csv
import io
import struct
import xml.etree.ElementTree as ET
import zlib
from datetime import datetime, timedelta

import pytest
from edge.atspm.formats import (
    FILE_S,
    Record,
    csv_header,
    csv_rows,
    datz,
    file_start,
    parse_since,
    read_datz,
    split_files,
    stamp,
    xml,
)
from hypothesis import given
from hypothesis import strategies as st

START = datetime(2026, 1, 5, 7, 15)


def asc_decode(data: bytes) -> list[tuple[datetime, int, int]]:
    """AscToIndianaDecoder's steps, from its description (independent of read_datz)."""
    raw = zlib.decompressobj(-15).decompress(data[2:])  # DeflateStream after 2 bytes
    text = raw[:20].decode("ascii")
    start = None
    for fmt in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p"):
        try:
            start = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    assert start is not None, f"not a date: {text!r}"
    pos, feeds = 20, 0
    while feeds < 7:
        feeds += raw[pos] == 0x0A
        pos += 1
    out = []
    while pos + 4 <= len(raw):
        code, param = raw[pos], raw[pos + 1]
        (tenths,) = struct.unpack(">h", raw[pos + 2 : pos + 4])
        out.append((start + timedelta(seconds=tenths / 10), code, param))
        pos += 4
    return out


records = st.lists(
    st.builds(
        lambda dt, c, p: Record(START + timedelta(milliseconds=dt * 100), c, p),
        st.integers(0, FILE_S * 10 - 1),
        st.integers(0, 255),
        st.integers(0, 255),
    ),
    max_size=200,
).map(lambda rs: sorted(rs, key=lambda r: r.at))


@given(records)
def test_datz_reads_back_in_atspms_decoder_and_ours(rs: list[Record]) -> None:
    data = datz(START, rs, phases=(2, 4, 6, 8), resource="C")
    assert asc_decode(data) == [(r.at, r.code, r.param) for r in rs]
    assert read_datz(data) == (START, rs)


def test_a_datz_header_is_20_characters_then_seven_lines() -> None:
    raw = zlib.decompress(datz(START, [Record(START, 1, 2)], phases=(2, 6)))
    assert raw[:20] == b"01/05/2026 07:15:00 "
    head, body = raw.rsplit(b"\n", 1)
    assert head.count(b"\n") == 6 and b"Phases in use:,2,6" in head
    assert body == bytes([1, 2, 0, 0])


def test_an_event_outside_the_file_or_a_large_parameter() -> None:
    with pytest.raises(ValueError, match="outside the file"):
        datz(START, [Record(START - timedelta(seconds=1), 1, 2)])
    assert asc_decode(datz(START, [Record(START, 132, 300)])) == [(START, 132, 255)]


def test_files_are_15_minutes_from_the_quarter_hour() -> None:
    assert file_start(datetime(2026, 1, 5, 7, 29, 59, 900_000)) == START
    rs = [Record(START + timedelta(seconds=s), 1, 1) for s in (0, 899.9, 900, 2000)]
    got = [(s, len(c)) for s, c in split_files(rs)]
    assert got == [
        (START, 2),
        (START + timedelta(minutes=15), 1),
        (START + timedelta(minutes=30), 1),
    ]


def test_xml_is_maxtimes_document() -> None:
    rs = [Record(START + timedelta(milliseconds=100), 82, 5), Record(START, 1, 2)]
    root = ET.fromstring(xml(rs))
    assert root.tag == "EventResponses"
    got = [
        (e.get("TimeStamp"), e.get("EventTypeID"), e.get("Parameter")) for e in root.iter("Event")
    ]
    assert got == [("2026-01-05T07:15:00.1", "82", "5"), ("2026-01-05T07:15:00.0", "1", "2")]
    assert datetime.fromisoformat("2026-01-05T07:15:00.1") == START + timedelta(milliseconds=100)


def test_csv_has_the_atspm_columns() -> None:
    text = csv_header() + csv_rows("C,1", [Record(START, 1, 2)])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows == [
        {"TimeStamp": "2026-01-05 07:15:00.0", "DeviceId": "C,1", "EventId": "1", "Parameter": "2"}
    ]


def test_since_as_atspm_sends_it_or_iso() -> None:
    at = datetime(2026, 1, 5, 7, 15, 0, 100_000)
    assert parse_since("01-05-2026 07:15:00.1") == at
    assert parse_since("2026-01-05T07:15:00.1") == at
    assert parse_since("2026-01-05T08:15:00.1+01:00") == at
    assert stamp(at) == "2026-01-05T07:15:00.1"
    with pytest.raises(ValueError, match="since='yesterday'"):
        parse_since("yesterday")
    # an offset that takes the time out of datetime's years: a clear error, not a 500
    for edge_of_time in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(ValueError, match="since="):
            parse_since(edge_of_time)
