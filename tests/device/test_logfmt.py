"""Logs for journald: one line per event, key=value, priority prefix under systemd."""

from __future__ import annotations

import logging

from edge.device.logfmt import KeyValueFormatter


def record(
    msg: str, *args: object, level: int = logging.INFO, exc: bool = False
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("edge.runtime", level, __file__, 1, msg, args, exc_info)


def test_event_name_and_pairs() -> None:
    f = KeyValueFormatter(priority_prefix=False)
    line = f.format(record("runtime_status plan=%s ticks=%d", "day", 12))
    assert line == "level=info logger=edge.runtime event=runtime_status plan=day ticks=12"


def test_free_text_quoted_and_priority_prefix() -> None:
    f = KeyValueFormatter(priority_prefix=True)
    line = f.format(
        record('board_refused port=%s: wrong config "x"', "/dev/ttyACM0", level=logging.ERROR)
    )
    assert line.startswith("<3>level=error logger=edge.runtime event=board_refused")
    assert 'msg="wrong config \\"x\\""' in line


def test_traceback_stays_on_one_line() -> None:
    f = KeyValueFormatter(priority_prefix=True)
    line = f.format(record("task_failed task=%s", "status", exc=True, level=logging.ERROR))
    assert "\n" not in line
    assert 'exc="Traceback' in line and "boom\\nsecond line" in line


def test_a_value_ending_in_a_newline_stays_on_one_line() -> None:
    # Review of issue 20: `=\S*$` matched `a=b\n` (`$` matches before a final newline), so
    # the pair went out raw and the rest of the record became a journal line of its own.
    f = KeyValueFormatter(priority_prefix=True)
    line = f.format(record("web_refused path=%s client=%s", "a=b\n level=error", "10.0.0.9"))
    assert "\n" not in line and line.startswith("<6>level=info logger=edge.runtime"), line
