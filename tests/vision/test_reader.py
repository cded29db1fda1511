"""The frame reader thread (edge/vision/reader.py) keeps the rules its docstring states.

Real threads; nothing here asserts on a duration. The scripted reader records the waits
it is asked for instead of sleeping, and every check reads state the reader thread
recorded at a known point of its script, so the outcome does not depend on scheduling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np
import pytest
from edge.vision import reader as rd
from edge.vision.reader import FrameReader

GUARD_S = 30.0  # only a failing test ever waits this long


def frame(value: int) -> rd.Frame:
    return np.full((2, 2, 3), value, np.uint8)


class Scripted(FrameReader):
    """Each round runs the next step of a script; a wait is recorded, not slept."""

    def __init__(self, rounds: list[Callable[[Scripted], None]]) -> None:
        super().__init__("cam1", "script://cam1", "reader-test")
        self.rounds = rounds
        self.waits: list[float] = []
        self.seen: list[tuple[str, int, int]] = []  # at each round's start: error, attempts, waits
        self.last_round = threading.Event()

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.stopping

    def _read(self) -> None:
        self.seen.append((self.error, self.backoff.attempts, len(self.waits)))
        self.rounds.pop(0)(self)


def boom(r: Scripted) -> None:
    raise ValueError("boom")


def no_frames(r: Scripted) -> None:
    r.error = "nothing"


def three_frames(r: Scripted) -> None:
    for v in (1, 2, 3):
        r.publish(frame(v))


def one_frame_then_raise(r: Scripted) -> None:
    r.publish(frame(4))
    raise RuntimeError("late")


def until_stopped(r: Scripted) -> None:
    r.last_round.set()
    while not r.stopping:
        FrameReader.wait(r, GUARD_S)  # a real wait, woken by stop()


def test_rounds_errors_and_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    r = Scripted([boom, no_frames, three_frames, one_frame_then_raise, until_stopped])
    assert r.error == "not started" and r.latest() is None
    r.start()
    try:
        assert r.last_round.wait(GUARD_S)
        assert r.seen == [
            ("not started", 0, 0),
            # a round that raised: its error named with the source, retried after a backoff
            ("script://cam1: ValueError('boom')", 1, 1),
            # a round without a frame: retried after a longer backoff
            ("nothing", 2, 2),
            # a round that gave frames: the backoff reset, retried at once; error cleared
            ("", 0, 2),
            # frames then an error: the backoff starts again from the first step
            ("script://cam1: RuntimeError('late')", 1, 3),
        ]
        assert all(rd.BACKOFF_MIN_S / 2 <= w <= rd.BACKOFF_MAX_S for w in r.waits)
        # the newest frame only, as often as it is asked for: no backlog, no consuming read
        grab = r.latest()
        assert grab is not None and grab.seq == 4 and int(grab.frame[0, 0, 0]) == 4
        assert r.latest() is grab
    finally:
        r.stop()
    assert "reader-test" not in {t.name for t in threading.enumerate()}  # stop() joined it
    errors = [rec for rec in caplog.records if rec.getMessage().startswith("camera_error")]
    assert [e.exc_info is not None for e in errors] == [True, True]  # with their tracebacks
    assert "ValueError('boom')" in errors[0].getMessage()


def test_seq_rises_by_one_per_frame_and_replaces_the_last() -> None:
    r = Scripted([])
    grabs = [r.publish(frame(v)) for v in range(5)]
    assert [g.seq for g in grabs] == [1, 2, 3, 4, 5]
    assert r.latest() is grabs[-1]


def test_stop_wakes_a_waiting_reader() -> None:
    class Sleeper(FrameReader):
        started = threading.Event()

        def _read(self) -> None:
            self.started.set()
            self.wait(3600)

    r = Sleeper("cam1", "x", "reader-sleeper")
    r.start()
    assert Sleeper.started.wait(GUARD_S)
    r.stop()  # without the wake-up this would join for STOP_JOIN_S and leave it running
    assert "reader-sleeper" not in {t.name for t in threading.enumerate()}
    with pytest.raises(RuntimeError):
        r.start()  # one thread per source, started once


def test_a_stuck_reader_is_logged_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rd, "STOP_JOIN_S", 0.01)
    release = threading.Event()

    class Stuck(FrameReader):
        started = threading.Event()

        def _read(self) -> None:
            self.started.set()
            release.wait(GUARD_S)  # a driver call that ignores stop()

    r = Stuck("cam1", "x", "reader-stuck")
    r.start()
    assert Stuck.started.wait(GUARD_S)
    r.stop()  # returns although the thread cannot end yet (it waits on `release`)
    assert any(rec.getMessage().startswith("camera_stuck camera=cam1") for rec in caplog.records)
    release.set()


def test_pace_holds_the_fps_and_a_late_frame_moves_the_schedule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(rd, "time", Clock)
    r = Scripted([])
    r._next_s = 100.0  # as a round starts
    asked = []
    for t in (100.0, 100.35, 100.36, 100.45):
        now[0] = t
        r.pace(0.1)
        asked.append(round(r.waits[-1], 6))
    # on time: the rest of the period; late (100.35 > 100.2): no wait and no burst after it
    assert asked == [0.1, 0.0, 0.09, 0.1]
