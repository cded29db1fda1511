"""Streams (edge.store's stream rules, docs/fleet.md "Streams"), without a broker: a store
gets its random stream id once and keeps it; a store from before streams gets one at its
first open, its earlier rows still numbered as they were; central keys dedup by (device,
stream, seq) and refuses a stream id that is not what the schema says."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from edge.link import topics
from edge.link.central import Collected
from edge.link.errors import Rejected
from edge.link.messages import spooled_key, with_seq
from edge.store import LEGACY_STREAM, STREAM_ID, Overflow, Store

from tests.link.schemas import check

DEV = "dev-s"


def _publish(store: Store, seq: int, body: str) -> str:
    """What the device's link sends for a spool row (edge.link.client._drain_spool)."""
    stream, n = store.wire(seq)
    return with_seq(DEV, n, body, stream)


def test_a_store_keeps_its_stream_and_a_fresh_one_gets_another(tmp_path: Path) -> None:
    st = Store(tmp_path / "a.db")
    stream = st.stream
    assert STREAM_ID.fullmatch(stream) and st.stream_base == 0
    assert st.spool_append("counts", '{"b":1}', 0) == 1
    st.close()
    for _boot in range(3):  # restarts: the same stream, numbers go on
        st = Store(tmp_path / "a.db")
        assert (st.stream, st.stream_base) == (stream, 0)
        st.close()
    st = Store(tmp_path / "a.db")
    seq = st.spool_append("counts", '{"b":2}', 0)
    assert json.loads(_publish(st, seq, '{"b":2}')) == {
        "dev": DEV,
        "stream": stream,
        "seq": 2,
        "b": 2,
    }
    st.close()
    fresh = Store(tmp_path / "b.db")  # flash.sh: a fresh /var/lib/edge
    assert fresh.stream != stream and fresh.wire(1) == (fresh.stream, 1)
    fresh.close()


def _old_store(path: Path, rows: int) -> None:
    """A store as the firmware before streams left it: spooled rows, no stream."""
    st = Store(path)
    for i in range(rows):
        st.spool_append("events", _body(i), 0)
    st.spool_delete([1, 2])  # delivered
    st.close()
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'stream'")
    db.commit()
    db.close()


def test_a_store_from_before_streams_gets_its_stream_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_store(path, 5)
    st = Store(path)
    stream = st.stream
    assert STREAM_ID.fullmatch(stream) and st.stream_base == 5
    other = Store(path)  # a second process opening it meanwhile (edge cli): the same
    assert (other.stream, other.stream_base) == (stream, 5)
    other.close()
    st.close()
    for _boot in range(3):  # never a new one per boot
        st = Store(path)
        assert (st.stream, st.stream_base) == (stream, 5)
        st.close()
    st = Store(path)
    new = st.spool_append("events", _body(5), 0)
    # rows spooled before the migration go out as then (legacy stream, their numbers);
    # the new stream starts at 1
    sent = [json.loads(_publish(st, r.seq, r.body)) for r in st.spool_pending()]
    assert [(m.get("stream", LEGACY_STREAM), m["seq"]) for m in sent] == [
        ("", 3),
        ("", 4),
        ("", 5),
        (stream, new - 5),
    ]
    assert new - 5 == 1
    for m in sent:
        check("events", m)
    # a spool_overflow note names the dropped rows as central numbers them
    assert st.wire_range(Overflow(3, 4, 2)) == "3..4"
    assert st.wire_range(Overflow(6, 9, 4)) == "1..4"
    assert st.wire_range(Overflow(3, 7, 5)) == "3..5 (no stream) and 1..2"
    st.close()


def _event() -> dict[str, object]:
    return {"t": 100, "name": "x", "subject": "", "detail": "", "src": "link"}


def _body(n: int) -> str:
    return json.dumps({"events": [{**_event(), "detail": str(n)}]})


def test_a_stream_id_of_the_wrong_shape_in_the_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 'XYZ,0' WHERE key = 'stream'")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match=r"bad\.db: meta 'stream' is 'XYZ,0'"):
        Store(path)


def _msg(leaf: str, seq: int, stream: str | None, n: int = 0) -> tuple[str, bytes]:
    obj: dict[str, object] = {"dev": DEV, "seq": seq}
    if stream is not None:
        obj["stream"] = stream
    obj["events"] = [{**_event(), "detail": str(n)}]
    return topics.topic(DEV, leaf), json.dumps(obj).encode()


def test_central_keeps_both_streams_of_a_reflashed_device() -> None:
    old, new = "0123456789abcdef", "fedcba9876543210"
    col = Collected()
    for s in (1, 2, 3):
        col.add(*_msg("events", s, old))
    for s in (1, 2):
        col.add(*_msg("events", s, new))  # re-flashed: numbered from 1 again
    col.add(*_msg("events", 4, old))  # the old stream's last one, still in flight: taken
    col.add(*_msg("events", 2, new))  # a resend within a stream: a duplicate
    col.add(*_msg("events", 4, old))
    col.add(*_msg("events", 2, None))  # firmware before streams: its legacy stream
    col.add(*_msg("events", 2, None))
    assert col.streams(DEV) == [old, new, ""]
    assert col.seqs(DEV, old) == {1, 2, 3, 4} and col.seqs(DEV, new) == {1, 2}
    assert col.seqs(DEV, "") == {2}
    assert col.duplicates == 3 and col.received == 10 and not col.rejected
    assert col.last_seqs() == {(DEV, old): 4, (DEV, new): 2, (DEV, ""): 2}


@pytest.mark.parametrize(
    ("stream", "seq", "why"),
    [
        ("0123456789ABCDEF", 1, "stream must be 16 lowercase hex digits, not '0123456789ABCDEF'"),
        ("0123", 1, "stream must be 16 lowercase hex digits, not '0123'"),
        (7, 1, "stream must be 16 lowercase hex digits, not 7"),
        ("", 1, "stream must be 16 lowercase hex digits, not ''"),
        ("0123456789abcdef", 0, "seq must be an integer >= 1, not 0"),
        ("0123456789abcdef", True, "seq must be an integer >= 1, not True"),
        ("0123456789abcdef", "3", "seq must be an integer >= 1, not '3'"),
    ],
)
def test_a_bad_stream_or_seq_is_refused_saying_what_and_where(
    stream: object, seq: object, why: str
) -> None:
    obj = {"dev": DEV, "stream": stream, "seq": seq, "events": [_event()]}
    with pytest.raises(Rejected, match="schema") as exc:
        spooled_key(obj, f"events from {DEV}")
    assert exc.value.reason == f"events from {DEV}: {why}"
    col = Collected()
    col.add(topics.topic(DEV, "events"), json.dumps(obj).encode())
    assert col.rejected == [f"{topics.topic(DEV, 'events')}: schema: events from {DEV}: {why}"]
    assert col.received == 0 and not col.by_kind["events"]
    col.add(topics.topic(DEV, "counts"), b"[1]")
    assert col.rejected[-1].endswith("counts from dev-s must be a JSON object")
