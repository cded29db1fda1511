"""The project's own arrivals on green and split failures (edge/atspm/measures.py)."""

from __future__ import annotations

from collections.abc import Sequence

from edge.atspm.measures import Sample, arrivals_on_green, split_failures
from edge.control.states import GREEN, RED, RED_CLEAR, YELLOW


def timeline(spans: Sequence[tuple[int, int]], present: set[int]) -> list[Sample]:
    """One phase: (interval, ticks) spans; the detector occupied at the ticks in `present`."""
    out, k = [], 0
    for iv, n in spans:
        for _ in range(n):
            out.append(Sample(k * 100, (iv,), (k in present,)))
            k += 1
    return out


CYCLE = [(RED, 10), (GREEN, 100), (YELLOW, 40), (RED_CLEAR, 20), (RED, 60)]


def test_arrivals_count_rising_edges_by_the_phase_at_that_tick() -> None:
    # on at ticks 10 (green starts: on green), 20-22 (one arrival), 110 (yellow: not green)
    s = timeline(CYCLE, {10, 20, 21, 22, 110, 5})
    got = arrivals_on_green(s, {0: [0]})
    assert (got[0].total, got[0].on_green) == (4, 2)


def test_a_split_failure_needs_both_occupancies_above_79_percent() -> None:
    green = set(range(10, 110))  # the whole green
    red5 = set(range(150, 200))  # the first 5 s from the start of red clearance
    assert split_failures(timeline(CYCLE, green | red5), {0: [0]}) == {0: (1, 1)}
    short_red = set(range(150, 189))  # 39 of 50 ticks: 78 %
    assert split_failures(timeline(CYCLE, green | short_red), {0: [0]}) == {0: (1, 0)}
    short_green = set(range(10, 89))  # 79 of 100 ticks: not above 79 %
    assert split_failures(timeline(CYCLE, short_green | red5), {0: [0]}) == {0: (1, 0)}
    # the red window not covered by the samples: the cycle is not counted
    assert split_failures(timeline(CYCLE[:4], green | red5), {0: [0]}) == {0: (0, 0)}


def test_detectors_of_a_phase_count_together() -> None:
    s = [
        Sample(x.t_ms, x.intervals, (x.present[0], not x.present[0]))
        for x in timeline(CYCLE, set())
    ]
    assert split_failures(s, {0: [0, 1]}) == {0: (1, 1)}
    assert split_failures(s, {0: [0]}) == {0: (1, 0)}
