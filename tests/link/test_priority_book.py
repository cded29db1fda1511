"""The pure mapping of central's priority requests to the core's commands
(edge/link/priority.py), shared by the link harness and `edge run`."""

from __future__ import annotations

import dataclasses

from edge.config import load_config
from edge.control.messages import Preempt, TransitRequest
from edge.control.site import Detector, Site, TransitPriority
from edge.link.messages import EmergencyPriorityRequest, TransitPriorityRequest
from edge.link.priority import (
    PriorityBook,
    body_of,
    entry_s,
    key_of,
    kind_of,
    queue_ahead_veh,
    request_lead_s,
)

from tests.link.harness import SITE


def site(transit: bool = False) -> Site:
    s = load_config(str(SITE)).site
    return (
        dataclasses.replace(s, transit=TransitPriority(0.2, 8000, 10_000, 90_000)) if transit else s
    )


NOW = 0  # the requests below arrive at 0 with an ETA inside the preempts' lead time


def ev(
    vehicle: str, approach: str, cancel: bool = False, expires: int = 10_000, eta_s: float = 10.0
) -> EmergencyPriorityRequest:
    return EmergencyPriorityRequest(f"c-{vehicle}", approach, eta_s, vehicle, cancel, 0, expires)


def bus(vehicle: str, approach: str, cancel: bool = False) -> TransitPriorityRequest:
    return TransitPriorityRequest(
        f"c-{vehicle}", approach, 15.0, vehicle, "12", 60.0, cancel, 0, 10_000
    )


def test_emergency_requests_become_preempts_of_their_approach_once() -> None:
    s, book = site(), PriorityBook()
    assert book.update(ev("E-1", "N")) == "ev:E-1"
    assert book.commands(s, NOW) == [Preempt(4, True)]
    book.update(ev("E-2", "N"))  # a second vehicle on the same approach: nothing new
    assert book.commands(s, NOW) == []
    book.update(ev("E-1", "N", cancel=True))
    assert book.commands(s, NOW) == []  # E-2 still wants preempt 4
    book.update(ev("E-2", "N", cancel=True))
    book.update(ev("E-3", "W"))
    assert book.commands(s, NOW) == [Preempt(1, True), Preempt(4, False)]


def test_an_emergency_request_preempts_from_the_lead_time_before_its_eta() -> None:
    s, book = site(), PriorityBook()
    lead = next(p.lead_ms for p in s.preempts if p.id == 4)
    assert lead == 20_000  # the default: time out the entry, start the queue ahead
    book.update(ev("E-1", "N", eta_s=90.0, expires=120_000))
    due = 90_000 - lead
    assert book.commands(s, due - 1) == []  # still far away: the cross streets run normally
    assert book.commands(s, due) == [Preempt(4, True)]
    assert book.commands(s, due + 5_000) == []  # asked once
    book.update(ev("E-1", "N", cancel=True))
    assert book.commands(s, due + 6_000) == [Preempt(4, False)]


def test_expiry_takes_the_preempt_back() -> None:
    s, book = site(), PriorityBook()
    book.update(ev("E-1", "S", expires=5_000))
    book.update(ev("E-2", "E", expires=9_000))
    assert book.commands(s, NOW) == [Preempt(2, True), Preempt(3, True)]
    assert book.expire(4_999) == []
    assert book.expire(5_000) == ["ev:E-1"]
    assert book.commands(s, NOW) == [Preempt(3, False)]


def test_transit_requests_only_where_the_site_has_transit_priority() -> None:
    book = PriorityBook()
    book.update(bus("B-7", "W"))
    assert book.commands(site(), NOW) == []
    assert book.commands(site(transit=True), NOW) == [TransitRequest("W", True)]
    book.update(bus("B-7", "W", cancel=True))
    assert book.commands(site(transit=True), NOW) == [TransitRequest("W", False)]


def test_stored_requests_restore_and_bad_rows_are_skipped() -> None:
    a, b = ev("E-1", "N"), bus("B-7", "W")
    book = PriorityBook()
    book.restore(
        [
            (key_of(a), kind_of(a), body_of(a)),
            ("ev:X", "ev", '{"approach": "N"}'),
            (key_of(b), kind_of(b), body_of(b)),
        ]
    )
    assert book.requests == {"ev:E-1": a, "transit:B-7": b}
    assert book.commands(site(transit=True), NOW) == [Preempt(4, True), TransitRequest("W", True)]


def test_a_request_naming_its_turn_takes_that_turns_preempt() -> None:
    s, book = site(), PriorityBook()
    assert [(p.id, p.turn) for p in s.preempts if p.approach == "W"] == [(1, None), (5, "T")]
    book.update(dataclasses.replace(ev("E-1", "W"), turn="T"))
    assert book.commands(s, NOW) == [Preempt(5, True)]
    book.update(dataclasses.replace(ev("E-2", "W"), turn="L"))  # no left preempt: the approach's
    book.update(ev("E-3", "N"))  # names no turn: the approach's
    assert book.commands(s, NOW) == [Preempt(1, True), Preempt(4, True)]
    book.update(ev("E-1", "W", cancel=True))
    assert book.commands(s, NOW) == [Preempt(5, False)]


def test_the_request_lead_is_the_time_to_clear_the_way_where_that_is_longer() -> None:
    s = site()
    north = next(p for p in s.preempts if p.id == 4)
    # phases 2 and 6 (outside the dwell): 10 s minimum green, 4 s yellow, 1.5 s red
    assert entry_s(s, north) == 15.5
    fast = dataclasses.replace(
        s.plans["day"],
        timings={
            k: dataclasses.replace(t, min_green_ms=5000) for k, t in s.plans["day"].timings.items()
        },
    )
    assert entry_s(s, north, fast) == 10.5  # the plan in force, when given
    assert request_lead_s(north, 15.5, 0.0) == 20.0  # 15.5 + 2 s: the lead is longer
    assert request_lead_s(north, 15.5, 5.0) == 27.5  # + 2 s start-up + 2 s a vehicle
    assert request_lead_s(north, 15.5, 100.0) == 60.0  # never more than a minute ahead
    assert request_lead_s(north, 15.5, -3.0) == 20.0  # a bad estimate counts as none
    far = dataclasses.replace(north, lead_ms=90_000)
    assert request_lead_s(far, 15.5, 100.0) == 90.0  # a site's own longer lead stands


def test_the_queue_ahead_is_a_lane_of_the_vehicles_own_movement() -> None:
    s = site()
    queues = [0.0] * len(s.phases)
    queues[7] = 6.0  # phase 8: N.T and N.R, one stop-bar loop
    queues[2] = 3.0  # phase 3: N.L
    assert queue_ahead_veh(s, queues, "N", None) == 6.0  # no turn named: through
    assert queue_ahead_veh(s, queues, "N", "T") == 6.0
    assert queue_ahead_veh(s, queues, "N", "L") == 3.0
    assert queue_ahead_veh(s, queues, "S", None) == 0.0
    assert queue_ahead_veh(s, [], "N", None) == 0.0  # nothing known
    two = dataclasses.replace(
        s, detectors=(*s.detectors, Detector(99, 16, False, (8,), (8,), 0, 0, False))
    )
    assert queue_ahead_veh(two, queues, "N", None) == 3.0  # two lanes: 6 vehicles, 3 a lane


def test_a_queue_ahead_brings_the_request_forward_and_it_stays_due() -> None:
    """Issue 17: the device requests as early as the simulator's central, from its own
    queue estimate; once due, the preempt holds while the queue discharges."""
    s, book = site(), PriorityBook()
    book.update(ev("E-1", "N", eta_s=35.0, expires=120_000))
    queues = [0.0] * len(s.phases)
    assert book.commands(s, NOW, queues) == []  # 35 s away, the 20 s lead: not yet
    queues[7] = 10.0  # ten vehicles stand at N's through: 15.5 + 2 + 20 = 37.5 s
    assert book.commands(s, NOW, queues) == [Preempt(4, True)]
    queues[7] = 0.0  # the queue discharges under the preempt ...
    assert book.commands(s, 1_000, queues) == []  # ... which stays, 34 s ahead of the vehicle
    assert 4 in book.preempting
    book.update(ev("E-1", "N", cancel=True))
    assert book.commands(s, 2_000, queues) == [Preempt(4, False)] and not book.due
    book.update(ev("E-2", "N", eta_s=35.0, expires=120_000))
    assert book.commands(s, 2_000, queues) == []  # a new vehicle starts afresh


def test_a_replacing_request_whose_arrival_moved_later_is_not_due_any_more() -> None:
    """Review 28 (M2): due is kept per request key (the vehicle), so a newer request for
    the same vehicle, ten minutes out now or re-requested after a cancel, kept the
    preempt on until expiry. A later arrival (> DUE_RESET_S) or a cancel starts over."""
    s, book = site(), PriorityBook()
    book.update(EmergencyPriorityRequest("c1", "N", 10.0, "E-1", False, 0, 900_000))
    assert book.commands(s, 0) == [Preempt(4, True)]
    # re-sent at 5 s: the vehicle stopped, now 600 s out (a fresh book would not preempt)
    book.update(EmergencyPriorityRequest("c2", "N", 600.0, "E-1", False, 5_000, 900_000))
    assert book.commands(s, 6_000) == [Preempt(4, False)] and not book.preempting
    # ETA jitter of a vehicle still coming (arrival 3 s later) keeps what fell due
    book.update(EmergencyPriorityRequest("c3", "N", 10.0, "E-1", False, 0, 900_000))
    assert book.commands(s, 0) == [Preempt(4, True)]
    book.update(EmergencyPriorityRequest("c4", "N", 12.0, "E-1", False, 1_000, 900_000))
    assert book.due == {("ev:E-1", 4)}
    assert book.commands(s, 1_000) == [] and book.preempting == {4}
    # a cancel and a re-request before the next ask: the new one falls due on its own
    book.update(ev("E-1", "N", cancel=True))
    book.update(EmergencyPriorityRequest("c5", "N", 600.0, "E-1", False, 1_000, 900_000))
    assert book.commands(s, 2_000) == [Preempt(4, False)]
