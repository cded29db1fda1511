"""The local event log (edge run without a broker): a store that refuses writes is
logged once and its rows written once it takes writes again; the task never fails
(a failed runtime task would stop the runtime, and the board would flash)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from edge.config import load_config
from edge.device.eventlog import EventLog, EventLogExtension
from edge.link.device import NO_BOARD
from edge.runtime import Runtime

from tests.link.harness import SITE, read_only


def test_a_refused_write_is_logged_and_its_rows_written_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.device.eventlog")
    ext = EventLogExtension(tmp_path / "edge.db")
    ev = EventLog(tmp_path / "edge.db", Runtime(load_config(str(SITE)), NO_BOARD), ext)

    async def body() -> None:
        read_only(ev.store)
        for k in range(3):
            ev.rows.append((k, "phase_green", "2", ""))
            await ev._flush()  # used to raise: task_failed, the runtime stopped
        assert len(ev.held) == 3 and not ev.rows  # kept by the task, in order
        read_only(ev.store, on=False)
        await ev._flush()
        assert ev.held == [] and not ev.rows

    asyncio.run(body())
    assert [r[:2] for r in ev.store.recent_events()] == [(0, "phase_green"), (1, "phase_green"),
                                                          (2, "phase_green")]  # fmt: skip
    ev.store.close()
    msgs = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("event_log_write_failed") for m in msgs) == 1
    assert "event_log_write_recovered" in msgs
