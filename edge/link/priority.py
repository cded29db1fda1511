"""Central's priority requests as commands for the control core. Pure.

An emergency request in force becomes Preempt(on) for the preempts of its
approach (those of its turn, where it names one the site has) from the
preempt's lead time before the vehicle's arrival (received at + ETA): early
enough to time out the entry and start the queue ahead of the vehicle, not
so early that the cross streets wait for a vehicle still minutes away. The
callers ask again every second, so a request falls due on time.
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
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge.control.messages import Preempt, TransitRequest
from edge.control.site import Preempt as SitePreempt
from edge.control.site import Site
from edge.link import messages
from edge.link.messages import EmergencyPriorityRequest, TransitPriorityRequest

log = logging.getLogger(__name__)

Request = EmergencyPriorityRequest | TransitPriorityRequest


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
        """A request (or its cancel) from central; returns its key."""
        key = key_of(req)
        if req.cancel:
            self.requests.pop(key, None)
        else:
            self.requests[key] = req
        return key

    def expire(self, utc_ms: int) -> list[str]:
        """Drop the requests past their expiry; returns their keys."""
        gone = [k for k, r in self.requests.items() if r.expires_ms <= utc_ms]
        for key in gone:
            del self.requests[key]
        return gone

    def commands(self, site: Site, utc_ms: int) -> list[Preempt | TransitRequest]:
        """What the core must be told so it holds exactly the requests in force and due."""
        out: list[Preempt | TransitRequest] = []
        wanted = {
            pre.id
            for req in self.requests.values()
            if isinstance(req, EmergencyPriorityRequest)
            for pre in preempts_for(site, req.approach, req.turn)
            if utc_ms >= req.received_ms + round(req.eta_s * 1000) - pre.lead_ms
        }
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
