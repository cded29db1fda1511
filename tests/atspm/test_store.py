"""The device's hi-res store (edge/atspm/store.py): bounded, oldest first, loss reported."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from edge.atspm import store as store_mod
from edge.atspm.indiana import LOG_LOSS, HiRes
from edge.atspm.store import RETAIN_S, HiResStore, pack, unpack
from hypothesis import given
from hypothesis import strategies as st

DAY_MS = 24 * 3600 * 1000


def second(t_ms: int, n: int = 10) -> list[HiRes]:
    return [HiRes(t_ms + 100 * k, 82 if k % 2 else 81, k + 1) for k in range(n)]


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 65535)), min_size=1
    )
)
def test_packing_keeps_every_event(rows: list[tuple[int, int, int]]) -> None:
    t0 = 1_700_000_000_000
    events = [HiRes(t0 + dt, c, p) for dt, c, p in sorted(rows)]
    assert unpack(events[0].t_ms, pack(events)) == events


def test_events_persist_and_read_back_from_a_time(tmp_path: Path) -> None:
    s = HiResStore(tmp_path / "h.sqlite")
    s.append(second(1000))
    s.append(second(2000))
    s.close()
    s = HiResStore(tmp_path / "h.sqlite")
    assert s.since(0) == second(1000) + second(2000)
    assert s.since(2000) == second(2000)
    assert s.since(1500) == second(1000)[5:] + second(2000)
    assert s.since(2050, limit=3) == second(2000)[1:4]
    assert s.status()["oldest_ms"] == 1000 and s.status()["dropped"] == 0


def test_the_cap_drops_the_oldest_and_counts_them_silently_after_seven_days(
    tmp_path: Path,
) -> None:
    size = len(pack(second(0)))
    s = HiResStore(tmp_path / "h.sqlite", max_bytes=size * 5)
    for k in range(8):  # a day apart: what goes is older than 7 days once it goes
        s.append(second(k * 2 * DAY_MS))
    st = s.status()
    assert st["bytes"] <= size * 5
    assert st["dropped"] == 30 and st["dropped_until_ms"] == 4 * DAY_MS + 900
    assert [e for e in s.since(0) if e.code == LOG_LOSS] == []  # nothing younger was lost
    assert s.since(0)[0].t_ms == 6 * DAY_MS


def test_dropping_events_younger_than_seven_days_is_logged_where_it_happens(
    tmp_path: Path,
) -> None:
    size = len(pack(second(0)))
    s = HiResStore(tmp_path / "h.sqlite", max_bytes=size * 3)
    for k in range(5):
        s.append(second(k * 1000))
    events = s.since(0)
    losses = [e for e in events if e.code == LOG_LOSS]
    assert losses and all(e.t_ms < RETAIN_S * 1000 for e in losses)
    assert sum(e.param for e in losses) == s.status()["dropped"] == 30
    assert s.status()["bytes"] <= size * 3 + 2 * len(pack(losses[:1]))
    assert second(4000)[-1] in events  # the newest always stays


def test_lost_events_are_counted(tmp_path: Path) -> None:
    s = HiResStore(tmp_path / "h.sqlite")
    s.append([HiRes(1000, LOG_LOSS, 7), *second(1000)], lost=7)
    assert s.status()["lost"] == 7


def test_a_failed_append_leaves_nothing_half_written(tmp_path: Path) -> None:
    s = HiResStore(tmp_path / "h.sqlite")
    s.append(second(0))
    s._db.execute("CREATE TRIGGER no BEFORE INSERT ON hires BEGIN SELECT RAISE(ABORT, 'full'); END")
    try:
        s.append(second(1000))
    except sqlite3.Error:
        pass
    else:
        raise AssertionError("the append should have failed")
    assert s.since(0) == second(0) and s.bytes == len(pack(second(0)))


def test_reading_pages_through_the_rows_between_two_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_mod, "PAGE_ROWS", 2)
    s = HiResStore(tmp_path / "h.sqlite")
    for k in range(7):
        s.append(second(k * 1000))
    everything = [e for k in range(7) for e in second(k * 1000)]
    assert list(s.iter_since(0)) == everything
    assert list(s.iter_since(1500, 4200)) == [e for e in everything if 1500 <= e.t_ms < 4200]
    assert s.since(0, limit=25) == everything[:25]
