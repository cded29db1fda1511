"""The runner's link keeper: an error it does not know while (re)opening the port is
logged and retried, never the end of the runner (the board flashes by its own watchdog
meanwhile); only stop() or a refusal ends it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from edge.backoff import Backoff
from edge.board.runner import EXIT_OK, BoardRunner
from edge.config import load_site

from tests.board.procs import CROSSING


def test_an_unknown_error_opening_the_port_is_logged_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge.board.runner")
    # pyserial refuses a URL scheme it does not know with ValueError, not an OSError.
    runner = BoardRunner(load_site(CROSSING), "bogus://no-such-port", backoff=Backoff(0.001, 0.002))

    async def body() -> int:
        task = asyncio.create_task(runner.run())
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while runner.backoff.attempts < 30 and not task.done() and loop.time() < end:
            await asyncio.sleep(0.01)
        assert not task.done(), "the runner ended on a port error"
        stepped = runner.driver.stepped
        await asyncio.sleep(0.3)
        assert stepped is not None and runner.driver.stepped is not None
        assert runner.driver.stepped[0] > stepped[0]  # the controller stepped on meanwhile
        runner.stop()
        return await asyncio.wait_for(task, 5)

    assert asyncio.run(body()) == EXIT_OK
    errors = [r for r in caplog.records if r.getMessage().startswith("board_link_error")]
    assert len(errors) >= 30
    assert "invalid URL, protocol 'bogus' not known" in errors[0].getMessage()
    # the traceback once, not with every retry
    assert sum(bool(r.exc_info) for r in errors) == 1
