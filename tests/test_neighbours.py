"""The outflow projection (edge/neighbours.py): one pinned test per rule, and bounds that
hold under any releases."""

from __future__ import annotations

from edge.control.arrivals import MAX_PAIRS
from edge.control.messages import Lamp
from edge.neighbours import (
    ACCEL_MPS2,
    MAX_AGE_MS,
    MAX_PENDING,
    MAX_TRAVEL_MS,
    SEND_AHEAD_MS,
    VEHICLE_M,
    Link,
    Projection,
    Release,
    Releases,
    due_ms,
    lag_ms,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples

G, Y, R = Lamp.GREEN, Lamp.YELLOW, Lamp.RED
LINK = Link("up", ((3, 2.0, (2,)), (4, 2.0, (2, 5))), (6,), 20_000, 50 / 3.6)


def rel(det: int, t: int, on: int = 0, showing: tuple[int, ...] = (2,)) -> Release:
    return Release(det, t, on, frozenset(showing))


# rule 1 ---------------------------------------------------------------------------------


def test_releases_are_falling_edges_with_time_on_loop_and_phases_showing() -> None:
    rs = Releases((2, 4, 5))
    assert rs.step(0, frozenset({3}), (G, R, R)) == []  # occupied at the first step
    assert rs.step(100, frozenset({4}), (Y, R, G)) == [Release(3, 100, 100, frozenset({2, 5}))]
    assert rs.step(200, frozenset({4}), (R, G, R)) == []
    assert rs.step(1500, frozenset(), (R, G, Lamp.FLASH_YELLOW)) == [
        Release(4, 1500, 1400, frozenset({4, 5}))
    ]


# rule 2 ---------------------------------------------------------------------------------


def test_a_release_counts_for_its_loops_while_one_of_their_phases_shows() -> None:
    assert LINK.due(rel(3, 1000)) == 21_000  # no time on the loop: no lag
    assert LINK.due(rel(4, 1000, showing=(5,))) == 21_000
    assert LINK.due(rel(3, 1000, showing=(5,))) is None  # loop 3 releases on phase 2 only
    assert LINK.due(rel(9, 1000)) is None  # not one of the link's loops
    assert LINK.due(rel(3, 1000, showing=())) is None  # released on red: a right turn on red


# rule 3 ---------------------------------------------------------------------------------


def test_the_lag_is_the_time_lost_accelerating_to_the_links_speed() -> None:
    v = 50 / 3.6
    assert lag_ms(v, 2.0, 0) == 0  # unknown time on the loop
    assert lag_ms(0.0, 2.0, 5000) == 0  # unknown speed
    assert lag_ms(v, 2.0, 100) == 0  # crossed it faster than the limit
    stood = lag_ms(v, 2.0, 60_000)  # from (nearly) rest: v / 2a
    assert 0.97 * v / (2 * ACCEL_MPS2) * 1000 < stood <= v / (2 * ACCEL_MPS2) * 1000
    v0 = (2.0 + VEHICLE_M) / 1.0  # 7 m/s over the loop
    assert lag_ms(v, 2.0, 1000) == round((v - v0) ** 2 / (2 * ACCEL_MPS2 * v) * 1000)
    assert due_ms(500, 20_000, v, 2.0, 1000) == 500 + 20_000 + lag_ms(v, 2.0, 1000)


@given(st.floats(0, 40), st.floats(0, 30), st.integers(0, 10**7))
def test_the_lag_is_never_negative_nor_more_than_from_rest(v: float, m: float, on: int) -> None:
    lag = lag_ms(v, m, on)
    assert 0 <= lag <= round(v / (2 * ACCEL_MPS2) * 1000) + 1


# rule 4 ---------------------------------------------------------------------------------


def test_sending_says_nothing_new_while_silent_and_one_empty_set_after_a_platoon() -> None:
    p = Projection([LINK])
    assert p.take(0) is None
    assert p.receive("up", 1000, [rel(3, 1000)]) == 1
    assert p.receive("other", 1000, [rel(3, 1000)]) == 0  # not a neighbour of this link
    assert p.take(2000) is None  # due at 21.0: further than SEND_AHEAD_MS
    assert p.take(21_000 - SEND_AHEAD_MS) == ((6, SEND_AHEAD_MS),)
    assert p.take(20_000) == ((6, 1000),)
    assert p.take(21_000) == ()  # arrived: one empty set says so
    assert p.take(22_000) is None


def test_a_set_is_sorted_by_phase_then_time() -> None:
    link2 = Link("up", ((3, 2.0, (2,)),), (2, 6), 5000)
    p = Projection([LINK, link2])
    p.receive("up", 0, [rel(3, 0), rel(3, -400)])
    assert p.take(0) == ((2, 4600), (2, 5000), (6, 4600), (6, 5000))  # LINK's: too far
    assert p.take(4000) == ((2, 600), (2, 1000), (6, 600), (6, 1000))


def test_a_set_never_exceeds_what_the_core_takes_and_every_phase_keeps_its_soonest() -> None:
    """A neighbour's flood of valid releases (review s30): the set stays within the core's
    MAX_PAIRS (beyond it the core reports an input_error every second and ignores the rest,
    the sorted set's higher phase ids first), each phase keeping its soonest arrivals."""
    near = Link("near", ((1, 2.0, (2,)),), (2,), 3000)
    p = Projection([near, Link("up", ((3, 2.0, (2,)),), (6,), 5000)])
    p.receive("near", 0, [rel(1, -i) for i in range(500)])  # 500 arrivals for phase 2
    p.receive("up", 0, [rel(3, 0)])  # one for phase 6
    pairs = p.take(0)
    assert pairs is not None and len(pairs) == MAX_PAIRS
    assert (6, 5000) in pairs and list(pairs) == sorted(pairs)
    assert [a for ph, a in pairs if ph == 2] == list(range(2501, 3001))[: MAX_PAIRS - 1]
    p = Projection([near])
    p.receive("near", 0, [rel(1, -i) for i in range(100)])
    assert p.take(0) == tuple((2, a) for a in range(2901, 3001))  # under the cap: all of it


# rule 5 ---------------------------------------------------------------------------------


def test_stale_releases_and_absurd_links_are_dropped() -> None:
    p = Projection([LINK, Link("up", ((3, 2.0, (2,)),), (6,), MAX_TRAVEL_MS + 100)])
    assert p.receive("up", MAX_AGE_MS + 1, [rel(3, 0)]) == 0
    assert p.receive("up", 0, [rel(3, 100)]) == 0  # from the future
    assert p.receive("up", 0, [rel(3, 0)]) == 1  # the long link's is dropped
    assert p.dropped == 3


def waiting(p: Projection) -> list[tuple[int, int]]:
    return [pd for pending in p.pending.values() for pd in pending]


def test_pending_is_bounded_dropping_the_earliest() -> None:
    p = Projection([LINK])
    p.receive("up", 0, [rel(3, -i) for i in range(MAX_PENDING + 5)])
    assert len(waiting(p)) == MAX_PENDING and p.dropped == 5
    assert min(d for _p, d in waiting(p)) == 20_000 - MAX_PENDING + 1


def test_one_neighbours_flood_cannot_push_out_anothers_arrivals() -> None:
    """Review s30: with one bound for all, a compromised neighbour's valid releases (due
    later than the honest one's) dropped the honest neighbour's arrivals, earliest first."""
    p = Projection([Link("honest", ((1, 2.0, (2,)),), (2,), 3000), LINK])
    p.receive("honest", 0, [rel(1, 0)])
    p.receive("up", 0, [rel(3, 0)] * MAX_PENDING)
    assert len(waiting(p)) <= MAX_PENDING
    assert p.take(0) == ((2, 3000),)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["up", "x"]),
            st.integers(0, 5000),  # ms since the last batch
            st.lists(
                st.tuples(
                    st.integers(1, 6),
                    st.integers(-70_000, 10),
                    st.integers(0, 100_000),
                    st.frozensets(st.integers(1, 8)),
                ),
                max_size=40,
            ),
        ),
        max_size=40,
    )
)
@example([("up", 0, [(3, 0, 0, frozenset({2}))] * (MAX_PENDING + 1))])
@settings(max_examples=examples(200))
def test_any_releases_give_bounded_sets_of_this_signals_phases(
    batches: list[tuple[str, int, list[tuple[int, int, int, frozenset[int]]]]],
) -> None:
    p = Projection([LINK])
    now = 0
    for device, gap, rels in batches:
        now += gap
        p.receive(device, now, [Release(d, now + t, on, s) for d, t, on, s in rels])
        assert len(waiting(p)) <= MAX_PENDING
        pairs = p.take(now)
        assert len(pairs or ()) <= MAX_PAIRS
        for phase, ahead in pairs or ():
            assert phase == 6 and 0 < ahead <= SEND_AHEAD_MS
