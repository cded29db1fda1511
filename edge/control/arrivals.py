"""Neighbours' predicted arrivals: hold a green for a platoon, call a phase ahead of it.

A neighbouring signal (or the simulator standing in for one) projects the
vehicles its stop-bar loops released into arrivals at this signal's stop
lines: `Inputs.arrivals`, pairs of (phase id, ms ahead). Rules this module
keeps (tests/control/test_arrivals.py checks each):

1. The latest set wins: each set received replaces the one before, and every
   set expires EXPIRE_MS after it came. `Inputs.arrivals = None` (the default)
   brings nothing new; with no set in force the core runs exactly as one that
   never had this input (no hold, no call, no extra deadline).
2. The hold: a green whose passage has run out with no loop extending it does
   not gap out while an arrival for its phase is due within its hold window.
   Only the gap-out waits: an operator force-off, a stop, coordination and
   max-out decide before it (timing.py rule 5), and preemption takes the rings
   before the end of green is asked, so the max timer bounds the hold as it
   bounds actuation.
2a. The window shrinks with the queue the hold keeps waiting: HOLD_MS with no
   vehicle waiting on the phases that conflict with it, down to HOLD_FLOOR_MS
   as they reach the adaptive mode's `full_queue_veh` (linear between; the
   count is timing.py's `_waiting`, the one that shortens the adaptive gap,
   adaptive.py rule 2). At a peak a predicted car, which may come late or
   turn, does not hold a full queue at red any more than a straggler on the
   loops does (docs/adaptive.md, ninth pass).
3. The call: a phase with an arrival due within CALL_MS is called, non-locking
   (timing.py rule 1): the call drops with the prediction.
4. The saturation guard: neither rule acts for a phase while it or a phase
   conflicting with it last ended its green by max-out (a saturated
   neighbourhood runs plain actuation); that phase's next green ending any
   other way (gap-out, force-off, a stop) clears it, so a phase on max recall,
   which never gaps out, cannot keep it on for good.
5. Bad input (an unknown phase id, a phase with no vehicle heads, a time ahead
   outside 0..MAX_AHEAD_MS, a malformed pair) is ignored, as is every pair of a
   set beyond MAX_PAIRS; each set that had any is reported once, as one
   `input_error` event with the count and the first bad pair (controller.py
   rule 5), so no set, however large or odd, can stall or flash the tick.

Deadlines: each arrival entering and leaving its windows, and the set's
expiry, so quiet steps stay quiet in between. Rule 2a's window needs none of
its own: the hold is asked only when a green's passage runs out (a deadline)
or on a busy step, and the queue it reads changes only on busy steps.
Integer ms, no clock, no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.control.controller import Controller

HOLD_MS = 5000  # H: hold a gapped-out green for an arrival due this soon (none waiting)
HOLD_FLOOR_MS = 1000  # the hold window with a full queue waiting on conflicting phases
CALL_MS = 8000  # C: call a phase for an arrival due this soon
EXPIRE_MS = 2000  # a set of arrivals stops counting this long after it came
MAX_AHEAD_MS = 600_000  # further ahead than this is not a prediction: bad input
MAX_PAIRS = 256  # a set larger than any junction's approaches and lanes could need


class Arrivals:
    def __init__(self) -> None:
        self.due: tuple[tuple[int, int], ...] = ()  # (phase index, absolute ms due)
        self.expires = 0  # the set in force counts while now < expires
        self.hold = 0  # bitmask: phases with an arrival due within HOLD_MS now
        self.call = 0  # bitmask: phases with an arrival due within CALL_MS now
        self.maxed = 0  # bitmask: phases whose last green ended by max-out (rule 4)

    def receive(self, ctl: Controller, now: int, pairs: object) -> None:
        """Rule 1 and 5: a new set replaces the one in force."""
        items = pairs if isinstance(pairs, tuple | list) else (pairs,)
        due: list[tuple[int, int]] = []
        bad: list[object] = []
        for pair in items[:MAX_PAIRS]:
            ok = (
                isinstance(pair, tuple | list)
                and len(pair) == 2
                and type(pair[0]) is int
                and type(pair[1]) is int
                and 0 <= pair[1] <= MAX_AHEAD_MS
            )
            i = ctl.index.get(pair[0]) if ok else None
            if i is None or not ctl.has_veh[i]:
                bad.append(pair)
                continue
            due.append((i, now + pair[1]))
        over = max(len(items) - MAX_PAIRS, 0)
        if bad or over:
            what = f"{len(bad)} bad predicted arrival(s)"
            if bad:
                what += f", the first {_describe(bad[0])}"
            if over:
                what += f"; {over} beyond the {MAX_PAIRS} a set may hold, ignored"
            ctl._event(now, "input_error", "arrivals", what)
        self.due = tuple(due)
        self.expires = now + EXPIRE_MS

    def refresh(self, now: int) -> None:
        """The hold and call masks at `now` (once per busy step, before the passes)."""
        if not self.due and not self.hold | self.call:
            return
        hold = call = 0
        if self.due and now >= self.expires:
            self.due = ()
        for i, t in self.due:
            if t - HOLD_MS <= now < t:
                hold |= 1 << i
            if t - CALL_MS <= now < t:
                call |= 1 << i
        self.hold, self.call = hold, call

    def _guarded(self, ctl: Controller, i: int) -> bool:
        """Rule 4: phase i or a conflicting phase last ended its green by max-out."""
        return bool(self.maxed & (ctl.rings.conf_mask[i] | 1 << i))

    def window_ms(self, ctl: Controller, i: int) -> int:
        """Rule 2a: phase i's hold window, by the queue waiting on its conflicting phases."""
        full = ctl.adaptive.params.full_queue_veh
        share = min(ctl.timers._waiting(ctl, i) / full, 1.0) if full > 0 else 1.0
        return HOLD_MS - int((HOLD_MS - HOLD_FLOOR_MS) * share)

    def holds(self, ctl: Controller, i: int, now: int) -> bool:
        """Rules 2 and 2a: phase i's gapped-out green waits for an arrival."""
        if not self.hold >> i & 1 or self._guarded(ctl, i):
            return False
        w = self.window_ms(ctl, i)
        return any(j == i and t - w <= now < t for j, t in self.due)

    def calls(self, ctl: Controller) -> int:
        """Rule 3: bitmask of phases called by a predicted arrival."""
        mask = self.call
        if not mask or not self.maxed:
            return mask
        for i in range(mask.bit_length()):
            if mask >> i & 1 and self._guarded(ctl, i):
                mask &= ~(1 << i)
        return mask

    def green_ended(self, i: int, reason: str) -> None:
        """Rule 4: a max-out sets the guard, any other end of that green clears it."""
        if reason == "max_out":
            self.maxed |= 1 << i
        else:
            self.maxed &= ~(1 << i)

    def deadlines(self, times: list[int]) -> None:
        if self.due:
            times.append(self.expires)
            for _i, t in self.due:
                times += (t - CALL_MS, t - HOLD_MS, t)


def _describe(pair: object) -> str:
    """A bad pair for the event, in bounded time and never raising: no repr of its own
    (it may raise, or be huge), no str of an int too long to print."""

    def num(x: int) -> str:
        return str(x) if -(10**12) < x < 10**12 else "an out-of-range int"

    if isinstance(pair, tuple | list) and len(pair) == 2 and all(type(x) is int for x in pair):
        return f"({num(pair[0])}, {num(pair[1])})"
    if isinstance(pair, tuple | list):
        return f"a {type(pair).__name__} of {len(pair)}"
    return f"a {type(pair).__name__}"
