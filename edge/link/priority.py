"""Central's priority requests as commands for the control core. Pure.

An emergency request in force becomes Preempt(on) for the preempts of its
approach (those of its turn, where it names one the site has) from its
request lead before the vehicle's arrival (received at + ETA): early enough
to time out the entry and to discharge the queue ahead of the vehicle, not so
early that the cross streets wait for a vehicle still minutes away. The
request lead (`request_lead_s`, the one formula the simulator's central uses
too) is the preempt's `lead_s`, or the time to clear the way where that is
longer: `entry + 2 s + 2 s x queue`, at most 60 s, where `entry` is the
longest a conflicting green of the plan in force takes to end (minimum
green, yellow, red clearance) and `queue` the vehicles a lane waiting for
the vehicle's movement (the core's queue estimate per phase, from its loops
or cameras, over the phase's stop-bar loops). Once due, a request stays due
until cancelled or expired: the queue it discharges shrinks, and the
preempt must not lapse before the vehicle is through; a cancel, or a new
request for the vehicle whose arrival moved more than DUE_RESET_S later (it
stopped or was rerouted), starts it over. The callers ask again
every second, so a request falls due on time.
A transit request becomes the core's TransitRequest for its approach (when
the site has transit priority). A cancel, or expiry at the command's TTL
(a lost radio or bus never cancels), drops the request, and what the core was
asked for is taken back. `edge run`'s central link (edge/link/endpoint.py)
keeps the book; storing the requests (so they are in force again after a
restart) stays with it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge.control.messages import Preempt, TransitRequest
from edge.control.site import Plan, Site, Turn
from edge.control.site import Preempt as SitePreempt
from edge.link import messages
from edge.link.messages import EmergencyPriorityRequest, TransitPriorityRequest

log = logging.getLogger(__name__)

Request = EmergencyPriorityRequest | TransitPriorityRequest

# Time to clear the way: end the conflicting greens (their minimums and full
# clearances), then discharge the queue ahead of the vehicle, one vehicle a lane
# every SAT_HEADWAY_S after STARTUP_LOST_S (saturation flow); never more than
# MAX_LEAD_S ahead of the arrival (the cross streets would wait for nothing).
SAT_HEADWAY_S = 2.0
STARTUP_LOST_S = 2.0
MAX_LEAD_S = 60.0
# A replacing request (same vehicle) whose arrival moved later by more than this is a new
# approach (stopped, rerouted): what had fallen due is dropped. Within it, ETA jitter of a
# vehicle still coming keeps its preempt (the lead it fell due on may have shrunk since).
DUE_RESET_S = 5.0


def arrival_ms(req: EmergencyPriorityRequest) -> int:
    """When the vehicle is expected at the stop bar (received at + ETA), UTC ms."""
    return req.received_ms + round(req.eta_s * 1000)


def entry_s(site: Site, pre: SitePreempt, plan: Plan | None = None) -> float:
    """The longest a green outside the dwell takes to end: its minimum, yellow and red
    clearance (`plan`: the one in force; the site's default when not given)."""
    timings = (plan or site.plans[site.default_plan]).timings
    dwell = set(pre.dwell_phases)
    return max(
        (
            (t.min_green_ms + t.yellow_ms + t.red_clear_ms) / 1000
            for pid, t in timings.items()
            if pid not in dwell
        ),
        default=0.0,
    )


def request_lead_s(pre: SitePreempt, entry: float, queue_veh: float) -> float:
    """How long before the vehicle's arrival its request acts: the preempt's lead, or
    the time to clear the way (`entry`, then `queue_veh` vehicles a lane) if longer."""
    clear = entry + STARTUP_LOST_S + SAT_HEADWAY_S * max(queue_veh, 0.0)
    return max(pre.lead_ms / 1000, min(MAX_LEAD_S, clear))


def queue_ahead_veh(site: Site, queues: Sequence[float], approach: str, turn: str | None) -> float:
    """Vehicles a lane waiting ahead of a vehicle on `approach` making `turn` (through
    where not named): the most over the phases serving that movement of each phase's
    queue estimate (`queues[i]`, vehicles, in the order of site.phases) over its
    stop-bar loops (one a lane)."""
    want = turn or Turn.THROUGH.value
    best = 0.0
    for i, ph in enumerate(site.phases):
        served = [m for m in (*ph.movements, *ph.permissive) if m.approach == approach]
        if not any(m.turn.value == want for m in served) or i >= len(queues):
            continue
        lanes = sum(1 for d in site.detectors if not d.ped and ph.id in d.calls)
        best = max(best, queues[i] / max(lanes, 1))
    return best


def kind_of(req: Request) -> str:
    return "ev" if isinstance(req, EmergencyPriorityRequest) else "transit"


def key_of(req: Request) -> str:
    """One request per vehicle and kind: a newer one replaces it, a cancel ends it."""
    return f"{kind_of(req)}:{req.vehicle_id}"


def body_of(req: Request) -> str:
    """The request as stored (Store.save_priority); `restore` reads it back."""
    return messages.dumps({k: getattr(req, k) for k in req.__slots__})


def preempts_for(site: Site, approach: str, turn: str | None) -> list[SitePreempt]:
    """The preempts a request for `approach` (and `turn`, if named) asks for.

    A turn with preempts of its own takes those; otherwise the approach's
    preempts without a turn (edge.config gives every approach with a turn's
    preempt one of those).
    """
    mine = [p for p in site.preempts if p.approach == approach]
    return [p for p in mine if turn is not None and p.turn == turn] or [
        p for p in mine if p.turn is None
    ]


@dataclass
class PriorityBook:
    """The requests in force, and the preempts and transit approaches asked of the core."""

    requests: dict[str, Request] = field(default_factory=dict)
    preempting: set[int] = field(default_factory=set)
    transiting: set[str] = field(default_factory=set)
    due: set[tuple[str, int]] = field(default_factory=set)  # (request key, preempt id) fallen due

    def restore(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Stored requests (Store.active_priorities: key, kind, body) in force again."""
        for key, kind, body in rows:
            try:
                fields = json.loads(body)
                req: Request = (
                    EmergencyPriorityRequest(**fields)
                    if kind == "ev"
                    else TransitPriorityRequest(**fields)
                )
            except (ValueError, TypeError) as exc:
                log.error("stored priority request %s unreadable: %s", key, exc)
                continue
            self.requests[key] = req

    def update(self, req: Request) -> str:
        """A request (or its cancel) from central; returns its key. A cancel, or a new
        request whose arrival is more than DUE_RESET_S later than the one it replaces,
        drops what had fallen due for the key: it falls due again on its own lead."""
        key = key_of(req)
        old = self.requests.get(key)
        if req.cancel:
            self.requests.pop(key, None)
        else:
            self.requests[key] = req
        if req.cancel or (
            isinstance(old, EmergencyPriorityRequest)
            and isinstance(req, EmergencyPriorityRequest)
            and arrival_ms(req) - arrival_ms(old) > DUE_RESET_S * 1000
        ):
            self.due = {(k, pid) for k, pid in self.due if k != key}
        return key

    def expire(self, utc_ms: int) -> list[str]:
        """Drop the requests past their expiry; returns their keys."""
        gone = [k for k, r in self.requests.items() if r.expires_ms <= utc_ms]
        for key in gone:
            del self.requests[key]
        return gone

    def commands(
        self,
        site: Site,
        utc_ms: int,
        queues: Sequence[float] = (),
        plan: Plan | None = None,
    ) -> list[Preempt | TransitRequest]:
        """What the core must be told so it holds exactly the requests in force and due.

        `queues`: the core's queue estimate per phase (vehicles, in the order of
        site.phases; none known: the lead alone); `plan`: the plan in force."""
        out: list[Preempt | TransitRequest] = []
        due: set[tuple[str, int]] = set()
        for key, req in self.requests.items():
            if not isinstance(req, EmergencyPriorityRequest):
                continue
            queue = queue_ahead_veh(site, queues, req.approach, req.turn) if queues else 0.0
            for pre in preempts_for(site, req.approach, req.turn):
                lead = request_lead_s(pre, entry_s(site, pre, plan), queue)
                arrival = arrival_ms(req)
                if (key, pre.id) in self.due or utc_ms >= arrival - round(lead * 1000):
                    due.add((key, pre.id))
        self.due = due  # cancelled and expired requests drop out here
        wanted = {pid for _, pid in due}
        out += [Preempt(pid, True) for pid in sorted(wanted - self.preempting)]
        out += [Preempt(pid, False) for pid in sorted(self.preempting - wanted)]
        self.preempting = wanted
        if site.transit is None:
            return out
        buses = {
            r.approach for r in self.requests.values() if isinstance(r, TransitPriorityRequest)
        }
        out += [TransitRequest(a, True) for a in sorted(buses - self.transiting)]
        out += [TransitRequest(a, False) for a in sorted(self.transiting - buses)]
        self.transiting = buses
        return out
