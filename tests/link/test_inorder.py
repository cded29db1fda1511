"""Central's ingest output in order per device (edge/link/inorder.py), without a broker.

Rules: per device the output is strictly increasing except messages marked late; nothing
is released twice; every number that arrived is released (at the latest by `flush`); a gap
filled before its timeout costs nothing (no late message, no gap counted); a gap that is
not filled is given up after the timeout and counted; held messages are bounded.
"""

from __future__ import annotations

import pytest
from edge.link.inorder import MAX_SKIPPED_RANGES, InOrder, Released
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples

T = 15.0


def _feed(order: InOrder[bytes], arrivals: list[tuple[str, int, float]]) -> list[Released[bytes]]:
    out: list[Released[bytes]] = []
    for dev, seq, t in arrivals:
        out += order.expire(t)
        out += order.push(dev, seq, f"{dev}:{seq}".encode(), t)
    return out + order.flush()


# arrivals: (device, seq, time); the times are sorted (the caller's clock goes forward)
arrivals_st = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 30), st.floats(0, 60)),
    max_size=80,
).map(lambda xs: sorted(xs, key=lambda x: x[2]))


@settings(max_examples=examples(300))
@given(arrivals_st)
# a redelivery after its gap was given up: released once, late; its copy a duplicate
@example([("a", 1, 0.0), ("a", 3, 1.0), ("a", 2, 20.0), ("a", 2, 21.0)])
def test_in_order_once_and_complete(arrivals: list[tuple[str, int, float]]) -> None:
    order = InOrder[bytes](gap_timeout_s=T)
    out = _feed(order, arrivals)
    for dev in ("a", "b"):
        mine = [r for r in out if r.device == dev]
        seqs = [r.seq for r in mine]
        assert len(seqs) == len(set(seqs)), seqs  # nothing twice
        first = next((s for d, s, _t in arrivals if d == dev), None)
        # everything from the device's first arrival on is released (earlier ones are
        # duplicates of nothing central knows: below its start)
        assert set(seqs) == {s for d, s, _t in arrivals if d == dev and s >= (first or 0)}
        in_order = [r.seq for r in mine if not r.late]
        assert in_order == sorted(in_order), seqs
        for r in mine:
            assert r.payload == f"{dev}:{r.seq}".encode()
    assert order.held() == 0


@settings(max_examples=examples(200))
@given(
    st.permutations(list(range(1, 21))),
    st.lists(st.integers(1, 20), max_size=10),
)
def test_a_shuffle_within_the_timeout_comes_out_exactly_in_order(
    perm: list[int], dups: list[int]
) -> None:
    order = InOrder[bytes](gap_timeout_s=T)
    order.expect("a", 1)
    arrivals = [("a", s, 0.1 * i) for i, s in enumerate(perm + dups)]  # all within 4 s
    out = _feed(order, arrivals)
    assert [r.seq for r in out] == list(range(1, 21))
    assert not any(r.late for r in out)
    assert order.gaps == 0 and order.late == 0 and order.duplicates == len(dups)


def test_a_gap_not_filled_is_given_up_after_the_timeout() -> None:
    order = InOrder[bytes](gap_timeout_s=T)
    assert [r.seq for r in order.push("a", 1, b"", 0.0)] == [1]
    assert order.push("a", 3, b"", 1.0) == [] and order.push("a", 4, b"", 2.0) == []
    assert order.deadline() == 1.0 + T
    assert order.expire(1.0 + T - 0.01) == []
    assert [r.seq for r in order.expire(1.0 + T)] == [3, 4]
    assert order.gaps == 1 and order.held() == 0
    # the given-up one comes after all: released once, marked late; again: a duplicate
    (late,) = order.push("a", 2, b"", 30.0)
    assert late.late and late.seq == 2
    assert order.push("a", 2, b"", 31.0) == [] and order.duplicates == 1


def test_held_messages_are_bounded() -> None:
    order = InOrder[bytes](gap_timeout_s=T, max_held=3)
    order.expect("a", 1)
    out = [r for s in (2, 3, 4, 5) for r in order.push("a", s, b"", 0.0)]
    assert [r.seq for r in out] == [2, 3, 4, 5] and order.gaps == 1


def test_expect_drops_what_central_already_has() -> None:
    order = InOrder[bytes](gap_timeout_s=T)
    order.push("a", 5, b"", 0.0)
    order.push("a", 7, b"", 0.0)
    order.expect("a", 8)
    assert order.duplicates == 1 and order.held() == 0
    assert [r.seq for r in order.push("a", 8, b"", 1.0)] == [8]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="gap_timeout_s"):
        InOrder[bytes](gap_timeout_s=0)


def test_a_restart_from_the_store_still_takes_what_is_missing_below_its_last() -> None:
    """Review 28 (M1): the ingest stopped with gap 5 given up (1-4, 6, 7 stored); after a
    restart the broker redelivers 5. `expect` with the stored numbers takes it, once."""
    order = InOrder[bytes](gap_timeout_s=T)
    order.expect("a", 8, [1, 2, 3, 4, 6, 7])
    (late,) = order.push("a", 5, b"", 1.0)
    assert late.seq == 5 and late.late
    assert order.push("a", 5, b"", 2.0) == [] and order.push("a", 6, b"", 2.0) == []
    assert order.duplicates == 2 and order.gaps == 0
    assert [r.seq for r in order.push("a", 8, b"", 3.0)] == [8]
    # a second expect (the device known) adds only the holes above what it had
    order.expect("a", 12, [9, 11])
    assert order.push("a", 5, b"", 4.0) == []
    assert [r.seq for r in order.push("a", 10, b"", 4.0)] == [10]


def test_a_later_gap_waits_its_own_timeout() -> None:
    """Review 28 (L1): when the first gap fills with messages still held behind a later
    one, the later gap's wait starts then, not at the first gap's time."""
    order = InOrder[bytes](gap_timeout_s=T)
    order.push("a", 1, b"", 0.0)
    order.push("a", 3, b"", 0.0)  # gap {2} from 0
    order.push("a", 5, b"", 10.0)  # gap {4} from 10, behind gap {2}
    assert [r.seq for r in order.push("a", 2, b"", 14.0)] == [2, 3]
    assert order.deadline() == 14.0 + T
    assert order.expire(T) == [] and order.gaps == 0
    assert [r.seq for r in order.push("a", 4, b"", 20.0)] == [4, 5] and order.gaps == 0


def test_late_arrivals_do_not_grow_the_given_up_ranges_without_bound() -> None:
    """Review 28 (L2): alternate late arrivals split one given-up range in many."""
    order = InOrder[bytes](gap_timeout_s=T)
    order.push("a", 1, b"", 0.0)
    order.push("a", 2001, b"", 0.0)
    order.expire(T)
    for s in range(3, 2001, 2):
        assert order.push("a", s, b"", T + 1)[0].late
    assert len(order._devices["a", ""].skipped) <= MAX_SKIPPED_RANGES


# --- streams: a re-flashed device numbers a new stream from 1 (edge.store) -----------------

# (stream, seq, time) of one device: the legacy stream "" and two store streams
stream_arrivals_st = st.lists(
    st.tuples(st.sampled_from(["", "s1", "s2"]), st.integers(1, 20), st.floats(0, 60)),
    max_size=80,
).map(lambda xs: sorted(xs, key=lambda x: x[2]))


@settings(max_examples=examples(300))
@given(stream_arrivals_st)
# the field defect: a re-flashed device's new stream repeats the old one's numbers; an old
# stream's message still in flight (a redelivery) comes after: taken once, as its own
@example([("s1", 1, 0.0), ("s1", 2, 0.1), ("s2", 1, 5.0), ("s2", 2, 5.1), ("s1", 3, 6.0)])
# a new stream's 2 before its 1 (a cluster's redelivery order): the 2 waits for the 1
@example([("s2", 2, 0.0), ("s2", 1, 1.0)])
def test_each_stream_in_order_once_and_complete(arrivals: list[tuple[str, int, float]]) -> None:
    order = InOrder[bytes](gap_timeout_s=T)
    out: list[Released[bytes]] = []
    for stream, seq, t in arrivals:
        out += order.expire(t)
        out += order.push("a", seq, f"{stream}:{seq}".encode(), t, stream)
    out += order.flush()
    for stream in ("", "s1", "s2"):
        mine = [r for r in out if r.stream == stream]
        seqs = [r.seq for r in mine]
        assert len(seqs) == len(set(seqs)), seqs  # nothing twice within a stream
        sent = [s for st_, s, _t in arrivals if st_ == stream]
        # a stream starts at 1, so every number it sent is released; the legacy stream's
        # start is its first arrival (firmware before streams: central cannot know it)
        start = 1 if stream else (sent[0] if sent else 0)
        assert set(seqs) == {s for s in sent if s >= start}
        in_order = [r.seq for r in mine if not r.late]
        assert in_order == sorted(in_order), seqs
        times = [t for st_, _s, t in arrivals if st_ == stream]
        ones = [t for st_, s, t in arrivals if st_ == stream and s == 1]
        if stream and ones and ones[0] - times[0] < T:  # its 1 in time: it goes out first
            assert in_order[:1] == [1], seqs
        for r in mine:
            assert r.payload == f"{stream}:{r.seq}".encode() and r.device == "a"
    assert order.held() == 0


def test_a_stream_expected_after_a_restart_continues_and_a_new_one_starts_at_1() -> None:
    order = InOrder[bytes](gap_timeout_s=T)
    order.expect("a", 4, [1, 2, 3], stream="s1")  # central's store has s1 up to 3
    assert order.push("a", 3, b"", 0.0, "s1") == [] and order.duplicates == 1
    assert [(r.stream, r.seq) for r in order.push("a", 4, b"", 0.0, "s1")] == [("s1", 4)]
    assert order.push("a", 2, b"", 0.0, "s2") == []  # held: waits for s2's 1
    assert [r.seq for r in order.push("a", 1, b"", 1.0, "s2")] == [1, 2]
    assert order.gaps == 0 and order.late == 0
