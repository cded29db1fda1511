"""Transit signal priority in the sequencer: where the core consults priority.py.

The rules of priority itself (which phase serves a request, the extension,
the early green, the budget) are priority.py's; TransitState owns its state.
This module keeps the rules of how the sequencer uses it:

1. A request (TransitRequest) is refused when the site configures no transit
   priority; an accepted one calls its phase (unless it is green or omitted).
2. A green is held past its end only when it would end (its reason to end is
   known) with others waiting, never past a force-off the operator gave, and a
   coordinated one only inside its permissive window. A green that blocks the
   requested phase (same ring, or another barrier group) ends early only when
   it may end; a coordinated one never does.
3. The budget's window is the coordination cycle when coordinated, else the
   configured reference cycle; new timing keeps the requests and retunes the
   budget to the new cycle. Preemption and operator stops release priority
   (controller.py's pass does that before anything else).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.control import coordination
from edge.control.messages import TransitRequest
from edge.control.priority import TransitState
from edge.control.states import GREEN

if TYPE_CHECKING:
    from edge.control.controller import Controller


def request(ctl: Controller, now: int, cmd: TransitRequest) -> str | None:
    if ctl.transit is None:
        return "transit priority is not configured for this site"
    err = ctl.transit.request(now, cmd.approach, cmd.on)
    if err is None and cmd.on:
        i = ctl.transit.phase_of[cmd.approach]
        ctl._event(now, "transit_request", cmd.approach)
        if i is not None and ctl.intervals.iv[i] != GREEN and not ctl.omit[i]:
            ctl.timers.vcall[i] = True
    elif err is None:
        ctl._event(now, "transit_cancel", cmd.approach)
    return err


def settings(ctl: Controller, now: int) -> None:
    """New timing may set, change or drop the transit limits (requests are kept)."""
    new = ctl.site.transit
    if new is None:
        if ctl.transit is not None:
            ctl.transit.close(now)
        ctl.transit = None
    elif ctl.transit is None:
        ctl.transit = TransitState(ctl.site, new, ctl.events)
    else:
        ctl.transit.settings = new


def cycle(ctl: Controller) -> int:
    """The window of transit's budget: the coordinated cycle, else the reference cycle."""
    assert ctl.transit is not None
    pts = ctl.coordinator.points
    return pts.cycle_ms if pts is not None else ctl.transit.settings.cycle_ms


def end_reason(ctl: Controller, now: int, a: int, reason: str, waiting: bool) -> str:
    """Hold the transit phase's green past its end, or end a green that blocks it."""
    assert ctl.transit is not None
    target = ctl.transit.target()
    pts = ctl.coordinator.points
    coord = pts is not None and pts.coord[a]
    window = cycle(ctl)
    label = f"phase {ctl.site.phases[a].id}"
    if target == a:
        if not reason or not waiting or (reason == "force_off" and ctl.force_off[a]):
            return reason
        if pts is not None and coord:
            c = ctl.coordinator.cycle_pos(ctl, now)
            if not coordination.in_window(c, pts.force_off[a], pts.permissive_end[a]):
                return reason
        return "" if ctl.transit.hold(now, a, window, label) else reason
    if reason or target is None or coord or not ctl.rings.conf_mask[target] >> a & 1:
        return reason
    red = ctl.intervals.iv[target] != GREEN
    return "transit" if ctl.transit.truncate(now, red, window, label) else reason
