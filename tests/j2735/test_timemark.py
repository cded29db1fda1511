"""TimeMark (minEndTime / maxEndTime / likelyTime): tenths within the UTC hour, rolled over."""

from __future__ import annotations

from edge.j2735.spat import minute_of_year, timemark
from hypothesis import example, given
from hypothesis import strategies as st

from tests.j2735.decode import absolute, now_ms

HOUR_MS = 3_600_000
T_0759 = 1_772_351_940_000  # 2026-03-01T07:59:00Z


def test_pinned_timemarks() -> None:
    at_5959 = T_0759 + 59_000  # hh:59:59.0
    assert timemark(at_5959 + 500, at_5959) == 35995
    assert timemark(at_5959 + 1_500, at_5959) == 5  # hh+1:00:00.5: rolled over, not 36005
    assert timemark(at_5959 + HOUR_MS, at_5959) == 36000  # an hour or more away
    assert timemark(None, at_5959) == 36001  # unknown
    assert timemark(at_5959 - 3_000, at_5959) == 35990  # a minimum end passed: now
    assert timemark(at_5959 + 1_049, at_5959) == 0  # nearest tenth, in the next hour
    assert timemark(at_5959 + 1_050, at_5959) == 1


@given(
    now=st.integers(T_0759 - 10 * HOUR_MS, T_0759 + 10 * HOUR_MS).map(lambda t: t - t % 100),
    ahead=st.integers(0, HOUR_MS - 51),
)
@example(now=T_0759 + 59_900, ahead=100)  # the last tenth of the hour to the first
@example(now=T_0759 + 59_900, ahead=HOUR_MS - 51)
def test_a_receiver_rebuilds_every_end_within_the_hour(now: int, ahead: int) -> None:
    end = now + ahead
    got = absolute(timemark(end, now), now)
    assert got is not None
    assert abs(got - end) <= 50  # to the nearest tenth of a second


@given(st.integers(1_767_225_600_000, 1_798_761_599_999))  # through 2026
def test_minute_of_year_and_dsecond_give_the_time_back(t: int) -> None:
    moy, dsecond = minute_of_year(t)
    assert 0 <= moy <= 527040 and 0 <= dsecond < 60_000
    assert now_ms(2026, moy, dsecond) == t
