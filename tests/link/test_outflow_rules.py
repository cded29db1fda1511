"""edge/link/outflow.py's rules without a broker: what is sent, what is taken in, what the
core gets, and that no payload can make the parser raise anything but a rejection."""

from __future__ import annotations

import json

import pytest
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp
from edge.link import messages
from edge.link.errors import Rejected
from edge.link.outflow import FLOOD_BURST, MAX_QUEUED, REPORT_EVERY_S, Outflow
from edge.neighbours import Link
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.control.timeline import make_site
from tests.hypothesis_profiles import examples
from tests.link.schemas import check

G, R = Lamp.GREEN, Lamp.RED
LINK = Link("up-1", ((3, 2.0, (2,)),), (6,), 4000)


def outflow(links: tuple[Link, ...] = (LINK,)) -> tuple[Outflow, list[tuple[str, str]]]:
    reports: list[tuple[str, str]] = []
    out = Outflow("me", (2, 4), frozenset({3, 5}), links, lambda s, d: reports.append((s, d)))
    return out, reports


def test_releases_go_out_once_by_their_ages_and_only_vehicle_loops() -> None:
    out, _ = outflow()
    out.observe(0, frozenset({3, 5, 22}), (G, R))
    out.observe(100, frozenset(), (G, R))  # 3 and 5 released; 22 is a push button
    assert out.message(1_700_000_000_000, 0) is not None  # ages are never negative
    assert out.message(1_700_000_000_000, 900) is None  # a second with none sends nothing
    out.observe(200, frozenset({3}), (R, G))
    out.observe(1200, frozenset(), (R, G))
    body = out.message(1_700_000_001_000, 1500)
    assert body is not None
    check("outflow", body)
    assert json.loads(body)["rel"] == [[3, 300, 1000, [4]]]


def test_the_queue_is_bounded_oldest_dropped() -> None:
    out, _ = outflow()
    for k in range(MAX_QUEUED + 3):
        out.observe(200 * k, frozenset({3}), (G, R))
        out.observe(200 * k + 100, frozenset(), (G, R))
    assert len(out.queue) == MAX_QUEUED and out.queue_dropped == 3
    body = out.message(0, 200 * MAX_QUEUED)
    assert body is not None and len(json.loads(body)["rel"]) == MAX_QUEUED
    messages.parse_outflow(body.encode(), "me")  # what it sends, a neighbour takes


def test_received_releases_reach_the_core_once_a_second_then_run_out() -> None:
    out, _ = outflow()
    out.receive("up-1", b'{"dev":"up-1","ts":0,"rel":[[3,500,0,[2]]]}', 10_000, 0.0)
    out.receive("up-2", b'{"dev":"up-2","ts":0,"rel":[[3,0,0,[2]]]}', 10_000, 0.0)  # not named
    assert out.received == 1
    assert out.take(10_000) == ((6, 3500),)  # released at 9.5 s, 4 s to travel
    assert [out.take(t) for t in range(10_100, 11_000, 100)] == [None] * 9
    assert out.take(11_000) == ((6, 2500),)
    assert out.take(14_000) == ()  # arrived: one empty set
    assert {out.take(t) for t in range(14_100, 30_000, 100)} == {None}


def test_a_bad_outflow_is_reported_once_a_minute_per_device_with_the_count() -> None:
    out, reports = outflow((LINK, Link("up-2", ((1, 2.0, (2,)),), (6,), 4000)))
    out.receive("up-1", b"{", 0, 100.0)
    out.receive("up-1", b"[]", 0, 101.0)
    out.receive("up-2", b"[]", 0, 101.0)
    out.receive("up-1", b"[]", 0, 100.0 + REPORT_EVERY_S)
    assert out.rejected == 4 and out.received == 0 and out.take(0) is None
    assert [s for s, _ in reports] == ["up-1", "up-2", "up-1"]
    assert reports[0][1].startswith("malformed: outflow is not JSON")
    assert reports[2][1].endswith("(2 since the last report)")


@given(st.binary(max_size=300) | st.from_regex(r"[\[\]{}\",:0-9a-z -]{0,200}").map(str.encode))
@example(b"[" * 100_000)
@example(b'{"dev":"up-1","ts":true,"rel":[]}')
@example(b'{"dev":"up-1","ts":1,"rel":[[true,0,0,[]]]}')
@example(b'{"dev":"up-1","ts":1,"rel":[[1,0,0,[1.5]]]}')
@example(b'{"dev":["up-1"],"ts":1,"rel":[]}')
@settings(max_examples=examples(300))
def test_no_payload_makes_the_parser_raise_but_a_rejection(payload: bytes) -> None:
    try:
        rels = messages.parse_outflow(payload, "up-1")
    except Rejected:
        return
    assert all(1 <= d <= 255 and 0 <= a <= messages.MAX_RELEASE_AGE_MS for d, a, _o, _p in rels)


@pytest.mark.parametrize("dev", [True, 1, None, ["up-1"], {"a": 1}, "x" * 10_000])
def test_a_wrong_device_field_is_a_rejection_that_names_it_briefly(dev: object) -> None:
    with pytest.raises(Rejected) as exc:
        messages.parse_outflow(json.dumps({"dev": dev, "ts": 1, "rel": []}).encode(), "up-1")
    assert exc.value.code == "wrong_device" and len(exc.value.reason) < 200


def test_a_neighbours_flood_is_dropped_before_it_is_parsed() -> None:
    """Review s30: each outflow is parsed and projected on the event loop that runs the
    control tick (~3 ms for a 256-release one here, more on a Pi), so a compromised
    neighbour publishing as fast as the broker relays could starve the tick. Beyond a
    small burst, a neighbour's outflows over FLOOD_PER_S a second are dropped unparsed."""
    out, reports = outflow()
    good = b'{"dev":"up-1","ts":0,"rel":[[3,0,0,[2]]]}'
    for k in range(1000):
        out.receive("up-1", good, 10_000, 5.0 + k * 0.0001)
    assert out.received == FLOOD_BURST and out.rejected == 1000 - FLOOD_BURST
    assert [(s, d.split(":")[0]) for s, d in reports] == [("up-1", "flood")]
    out.receive("up-1", good, 11_000, 6.2)  # a second on: allowed again
    assert out.received == FLOOD_BURST + 1


@given(st.lists(st.floats(0.0, 0.99), min_size=1, max_size=300))
@settings(max_examples=examples(100))
def test_a_neighbour_sending_once_a_second_is_never_throttled(jitter: list[float]) -> None:
    """However its seconds bunch on the way (each message within a second of its slot)."""
    out, _ = outflow()
    good = b'{"dev":"up-1","ts":0,"rel":[]}'
    for k, j in sorted(enumerate(jitter), key=lambda kj: kj[0] + kj[1]):
        out.receive("up-1", good, 0, 100.0 + k + j)
    assert out.rejected == 0 and out.received == len(jitter)


def test_a_neighbour_entry_naming_this_device_is_ignored_and_reported() -> None:
    """Review s30: `edge check` cannot know the device's id, so a site file copied from
    the upstream could name this device in [[neighbour]]: it then read its own outflow
    and called and held its own phases for its own departures."""
    reports: list[tuple[str, str]] = []
    links = (Link("me", ((3, 2.0, (2,)),), (4,), 4000), LINK)
    out = Outflow("me", (2, 4), frozenset({3}), links, lambda s, d: reports.append((s, d)))
    assert out.neighbours == frozenset({"up-1"})
    assert [s for s, _ in reports] == ["me"] and "names this device" in reports[0][1]
    out.receive("me", b'{"dev":"me","ts":0,"rel":[[3,0,0,[2]]]}', 10_000, 0.0)
    assert out.received == 0 and out.take(10_000) is None


_INT = st.integers(-3, 300) | st.integers(-(10**7), 10**7) | st.booleans()
_REL = st.lists(_INT | st.lists(_INT, max_size=3), min_size=3, max_size=5)


@given(
    st.fixed_dictionaries(
        {"dev": st.just("up-1"), "ts": _INT | st.floats(), "rel": st.lists(_REL, max_size=3)}
    )
)
@example({"dev": "up-1", "ts": -1, "rel": []})
@settings(max_examples=examples(300))
def test_what_the_parser_takes_its_schema_allows(obj: dict[str, object]) -> None:
    """Review s30: the parser and schemas/outflow.json say the same (a negative ts passed)."""
    payload = json.dumps(obj).encode()
    try:
        messages.parse_outflow(payload, "up-1")
    except Rejected:
        return
    check("outflow", payload)


_HOSTILE_REL = st.tuples(
    st.integers(1, 8),  # detector
    st.integers(0, messages.MAX_RELEASE_AGE_MS),  # age
    st.integers(0, messages.MAX_ON_LOOP_MS),  # on the loop
    st.lists(st.integers(1, 8), max_size=4).map(tuple),  # phases showing
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["up-1", "up-2"]),
            st.integers(0, 3000),  # ms to the next outflow
            st.lists(_HOSTILE_REL, max_size=6).map(lambda rs: rs * 43),  # up to 258
        ),
        max_size=12,
    )
)
@example([("up-1", 1000, [(1, 0, 0, (2,))] * 256)] * 3 + [("up-2", 0, [(1, 0, 0, (4,))])])
@settings(max_examples=examples(40), deadline=None)
def test_no_neighbours_outflows_give_the_core_bad_input(
    batches: list[tuple[str, int, list[messages.Release]]],
) -> None:
    """Review s30: whatever valid outflows compromised neighbours send, each set the core
    gets is one it takes whole (no input_error) and names only the links' phases."""
    site = make_site("four")
    ctl = Controller(site)
    links = (
        Link("up-1", tuple((d, 1.8, (2, 6)) for d in range(1, 9)), (2, 6), 4000, 13.0),
        Link("up-2", tuple((d, 1.8, (4, 8)) for d in range(1, 9)), (4, 8), 1000),
    )
    out = Outflow("me", [p.id for p in site.phases], frozenset(), links, lambda s, d: None)
    now = 0
    for device, gap, rels in batches:
        out.receive(device, messages.outflow(device, 0, rels).encode(), now, now / 1000)
        for _ in range(gap // 100 + 1):
            pairs = out.take(now)
            assert pairs is None or {p for p, _ in pairs} <= {2, 6, 4, 8}
            step = ctl.step(now, Inputs(arrivals=pairs))
            assert [e for e in step.events if e.name == "input_error"] == []
            now += 100


def test_a_loop_stuck_on_for_hours_still_sends_what_a_neighbour_takes() -> None:
    """Review s30: a loop occupied longer than MAX_ON_LOOP_MS (a stuck detector, common)
    made the sender's whole second a message every neighbour rejected."""
    out, _ = outflow()
    out.observe(0, frozenset({3, 5}), (G, R))
    out.observe(2 * messages.MAX_ON_LOOP_MS, frozenset(), (G, R))
    body = out.message(0, 2 * messages.MAX_ON_LOOP_MS + 100)
    assert body is not None
    rels = messages.parse_outflow(body.encode(), "me")
    assert [on for _d, _a, on, _p in rels] == [messages.MAX_ON_LOOP_MS] * 2
