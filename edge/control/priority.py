"""Transit signal priority: early green and green extension for a bus, within limits.

The rules (tests/control/test_transit_priority.py checks each):

1. A request names an approach (a bus detected on it, or central's request).
   It is served by the approach's through phase: the phase with APPROACH.T
   among its movements, else the first phase serving the approach. Several
   requests are served one at a time, first come first served.
2. Green extension: when that phase is green and would end (gap-out,
   max-out, or a coordination force-off) while other phases are waiting, it
   is held, for at most `max_extension_ms`. A coordinated phase is never
   held past its permissive window, so the cycle and the offset stay.
3. Early green: when that phase is not green, every phase that must end
   before it can start (same ring, or another barrier group) ends as soon as
   its own minimum green and pedestrian intervals allow, for at most
   `max_early_ms`, and the phase is called. A coordinated phase is never
   truncated.
4. Budget: the time during which priority overrides normal operation (an
   extension held, an early green running) adds up, over any window of one
   cycle, to at most `max_share` of that cycle. An override starts only with
   budget left and ends when it runs out: an override of length L starting
   at S with U used in [S - W, S] has L <= share * W - U, so every later
   window holds too. W is the cycle in force; when new timing changes it
   during an override, the override is cut to the new cycle's budget too
   (never below the time it has already run).
5. Nothing here shortens a yellow, a red clearance, a minimum green or a
   walk: priority only decides whether a green that may end does end, or
   ends a green that may end. Preemption and an operator stop (all red,
   flash) release it.

Pure and clock-free like the rest of the core: times are the caller's ms.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.control.messages import Event
from edge.control.site import Site, TransitPriority

EXTEND = "extend"
EARLY = "early"
# Closed overrides are kept this long: a cycle (300 s at most, edge.config) in force
# after new timing still sees every override inside its window.
HISTORY_MS = 300_000


def transit_phase(site: Site, approach: str) -> int | None:
    """Index of the phase that serves transit from this approach, or None."""
    through = f"{approach}.T"
    for i, p in enumerate(site.phases):
        if any(m.name == through for m in p.movements + p.permissive):
            return i
    for i, p in enumerate(site.phases):
        if any(m.approach == approach for m in p.movements + p.permissive):
            return i
    return None


@dataclass(slots=True)
class _Override:
    kind: str  # EXTEND or EARLY
    phase: int  # the transit phase (index) it serves
    start: int
    cap: int  # it ends by then: its maximum or the budget, whichever is first


class TransitState:
    """Requests, the override running now, and the priority time used."""

    def __init__(self, site: Site, settings: TransitPriority, events: list[Event]) -> None:
        self.settings = settings
        self.phase_of = {a.id: transit_phase(site, a.id) for a in site.approaches}
        self.requests: dict[str, int] = {}  # approach -> requested at
        self.active: _Override | None = None
        self.used: list[tuple[int, int]] = []  # closed overrides (start, end)
        self.events = events  # the controller's event list

    # -- requests ------------------------------------------------------------------------

    def request(self, now: int, approach: object, on: bool) -> str | None:
        """Record a request or its cancellation; why it is refused, or None."""
        if not isinstance(approach, str) or approach not in self.phase_of:
            return f"unknown approach {approach!r}"
        if self.phase_of[approach] is None:
            return f"no phase serves approach {approach}"
        if on:
            self.requests.setdefault(approach, now)
        elif self.requests.pop(approach, None) is not None:
            target = self.target()
            if self.active is not None and self.active.phase != target:
                self.close(now)
        return None

    def target(self) -> int | None:
        """The phase of the earliest request still on."""
        if not self.requests:
            return None
        approach = min(self.requests, key=lambda a: (self.requests[a], a))
        return self.phase_of[approach]

    # -- budget --------------------------------------------------------------------------

    def used_ms(self, now: int, window_ms: int) -> int:
        """Priority time inside [now - window, now], the running override included."""
        lo = now - window_ms
        spans = list(self.used)
        if self.active is not None:
            spans.append((self.active.start, min(now, self.active.cap)))
        return sum(max(0, min(e, now) - max(s, lo)) for s, e in spans)

    def _open(self, now: int, kind: str, phase: int, cycle_ms: int, label: str) -> bool:
        self.used = [(s, e) for s, e in self.used if e > now - max(cycle_ms, HISTORY_MS)]
        left = int(self.settings.max_share * cycle_ms) - self.used_ms(now, cycle_ms)
        longest = self.settings.max_extension_ms if kind == EXTEND else self.settings.max_early_ms
        if left <= 0:
            return False
        self.active = _Override(kind, phase, now, now + min(left, longest))
        self.events.append(Event(now, f"transit_{kind}", label))
        return True

    def retune(self, now: int, cycle_ms: int) -> None:
        """The cycle changed (new plan or timing): the running override keeps its budget."""
        a = self.active
        if a is None:
            return
        if a.cap > now:
            lo = a.start - cycle_ms
            before = sum(max(0, min(e, a.start) - max(s, lo)) for s, e in self.used)
            budget = int(self.settings.max_share * cycle_ms) - before
            longest = (
                self.settings.max_extension_ms if a.kind == EXTEND else self.settings.max_early_ms
            )
            a.cap = max(now, min(a.cap, a.start + budget, a.start + longest))  # what ran, ran
        if a.cap <= now:
            self.close(now)

    def close(self, now: int) -> None:
        """End the running override (a green ended, a request went, preemption came)."""
        a = self.active
        if a is None:
            return
        end = max(a.start, min(now, a.cap))
        self.used.append((a.start, end))
        self.active = None
        self.events.append(Event(now, "transit_end", a.kind, f"{end - a.start} ms"))

    def deadline(self) -> int | None:
        return self.active.cap if self.active is not None else None

    # -- decisions (the controller asks; rule 5: only about greens that may end) ---------

    def hold(self, now: int, i: int, cycle_ms: int, label: str) -> bool:
        """Phase i is green and would end now: hold it for transit?"""
        a = self.active
        if a is not None and a.kind == EXTEND and a.phase == i:
            if now < a.cap:
                return True
            self.close(now)
            return False
        if a is not None or self.target() != i:
            return False
        return self._open(now, EXTEND, i, cycle_ms, label)

    def truncate(self, now: int, target_red: bool, cycle_ms: int, label: str) -> bool:
        """A green that must end before the transit phase may end now: end it?"""
        a = self.active
        target = self.target()
        if a is not None and a.kind == EARLY:
            if now < a.cap and target == a.phase:
                return True
            self.close(now)
            return False
        if a is not None or target is None or not target_red:
            return False
        return self._open(now, EARLY, target, cycle_ms, label)

    def green_started(self, now: int, i: int) -> None:
        if self.active is not None and self.active.kind == EARLY and self.active.phase == i:
            self.close(now)

    def green_ended(self, now: int, i: int) -> None:
        if self.active is not None and self.active.kind == EXTEND and self.active.phase == i:
            self.close(now)
