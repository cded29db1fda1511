"""Controller modes: start-up flash, start-up all red, run, all red, flash, fault flash.

Rules this module keeps (tests/control/test_commands.py, test_monitor.py and
test_timeline.py check them):

1. Power-up: start-up flash for the site's start-up flash time, then start-up
   all red for its all-red time, then run: every phase is called once (NEMA
   start-up) and the start-up phases start green as the gate allows.
2. All red and flash are asked for by the operator (commands.py) and entered
   from run only once every phase, crossing and overlap is red (no green is
   cut short: they clear through yellow and red clearance first, and no green
   starts meanwhile). Flash may be asked again from all red. All red ends when
   no longer asked: the rings resume with whatever is called.
3. Leaving flash (Flash off, Automatic) and recovering from a fault go through
   start-up all red, never straight into greens (commands.py).
4. Fault flash latches on any internal error, an illegal interval move
   (intervals.py) or a conflict the monitor saw; the operator requests are
   dropped. Only a Recover command leaves it.
5. Entering start-up all red, all red or flash puts every phase, crossing and
   overlap to red at once and clears the rings; red revert counts from then,
   except entering all red (everything was already red).

State owned here: the mode, when a timed mode ends, the operator's all red and
flash requests, and the fault latched (None: none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.control import intergreens
from edge.control.states import (
    ALL_RED,
    FAULT,
    FLASH,
    NEVER,
    RUN,
    STARTUP_ALL_RED,
    STARTUP_FLASH,
)

if TYPE_CHECKING:
    from edge.control.controller import Controller


class Modes:
    def __init__(self, startup_flash_end: int) -> None:
        self.mode = STARTUP_FLASH
        self.end = startup_flash_end  # when a timed mode (start-up) ends
        self.all_red_req = False
        self.flash_req = False
        self.fault: str | None = None

    def advance(self, ctl: Controller, now: int) -> bool:
        """Rule 1's start-up; True when the sequencer runs this step (run or all red)."""
        mode = self.mode
        if mode in (STARTUP_FLASH, STARTUP_ALL_RED):
            if now < self.end:
                return False
            if mode == STARTUP_FLASH:
                self.start(ctl, now, STARTUP_ALL_RED, ctl.site.startup_all_red_ms)
                if now < self.end:
                    return False
            self._start_run(ctl, now)
        return self.mode not in (FLASH, FAULT)

    def after_pass(self, ctl: Controller, now: int, stopping: bool) -> bool:
        """Rule 2: enter all red or flash once all is red; leave all red. True if changed."""
        mode = self.mode
        if mode == RUN and stopping and _all_clear(ctl):
            if self.flash_req:
                self._enter_flash(ctl, now)
            else:
                self.start(ctl, now, ALL_RED, NEVER)
                ctl._event(now, "all_red_enter")
            return True
        if mode == ALL_RED and not self.all_red_req:
            if self.flash_req:
                self._enter_flash(ctl, now)
                return True
            ctl._event(now, "all_red_exit")
            self.start(ctl, now, RUN, NEVER)
            ctl.rings.resume(ctl)
            return True
        if mode == ALL_RED and self.flash_req:
            self._enter_flash(ctl, now)
            return True
        return False

    def _enter_flash(self, ctl: Controller, now: int) -> None:
        self.start(ctl, now, FLASH, NEVER)
        ctl._event(now, "flash_enter", "", "operator flash")

    def start(self, ctl: Controller, now: int, mode: str, duration_ms: int) -> None:
        """Enter `mode` for `duration_ms` (NEVER: until something ends it); rule 5."""
        self.mode = mode
        self.end = now + duration_ms if duration_ms != NEVER else NEVER
        ctl._dirty = True
        ctl._event(now, "mode", mode)
        if mode in (STARTUP_ALL_RED, FLASH, ALL_RED):
            intergreens.cut_greens(ctl, now)  # the greens shown until now end now
            # Flash ended any red interval: count red from now.
            ctl.intervals.all_red(None if mode == ALL_RED else now)
            ctl.peds.clear()
            ctl.overlaps.clear()
            ctl.rings.clear()

    def _start_run(self, ctl: Controller, now: int) -> None:
        self.start(ctl, now, RUN, NEVER)
        timers = ctl.timers
        timers.vcall = [True] * len(timers.vcall)  # NEMA start-up: every phase called once
        ctl.rings.start_up(ctl, now)

    def enter_fault(self, ctl: Controller, now: int, reason: str) -> None:
        """Rule 4: latch fault flash; the operator's requests are dropped."""
        self.fault = reason
        self.start(ctl, now, FAULT, NEVER)
        self.all_red_req = False
        self.flash_req = False
        ctl._event(now, "fault_flash", "", reason)


def _all_clear(ctl: Controller) -> bool:
    return ctl.intervals.all_clear() and ctl.peds.all_clear() and ctl.overlaps.all_red()
