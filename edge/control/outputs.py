"""The outputs: lamps per signal group and channel, SPaT, and the conflict monitor's check.

Rules this module keeps (tests/control/test_spat.py, test_monitor.py and the
golden traces check them):

1. In start-up flash, flash and fault flash every channel shows its configured
   flash colour (red, yellow or dark), crossings are dark and SPaT gives no
   times. Otherwise each signal group shows its interval's lamp (a phase with
   no vehicle movement, or no crossing, is dark) and each channel its source's.
2. SPaT (`spat`): a green's earliest end is its minimum (or its crossing's
   interval, if later), its latest the max timer (None while it does not run),
   its likely end the latest while a loop extends it, else the passage timer's;
   a yellow's end is known. Absolute times on the caller's clock.
3. The outputs are rebuilt only when a display changed (the controller's
   `_dirty`); when only a timer moved (`_timers_dirty`) the last outputs are
   restamped with a new SPaT. Every rebuild goes through the conflict monitor:
   a conflict latches fault flash and the fault flash outputs go out instead.
4. Each step's events go out once, with that step's outputs.
5. The status (`status`, messages.Status) is the contract for displays (the
   page): per phase the interval as shown to a technician and the time left in
   it, the max timer's time left, the calls, hold and omit; per detector its
   presence. Built on request from the state as the last step left it; it
   never exposes the core's arrays nor its NEVER.
6. The tick view (`tick_view`, messages.TickView) is what the runtime's tick
   record reads, once per tick: per phase the interval and the vehicle and
   pedestrian calls, per ring the phase next, per detector its presence, the
   plan and the cycle timer. Copies (tuples), built on request in one pass over
   the arrays, without the status's timers.

State owned here: the last outputs, and the tables built from the site (each
channel's source, the flash lamps, SPaT's all-red and flash rows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.control.messages import Lamp, Outputs, PhaseStatus, PhaseTiming, Status, TickView
from edge.control.site import FlashColour, SignalKind, Site
from edge.control.states import (
    ALL_RED,
    FAULT,
    FLASH,
    GREEN,
    NEVER,
    PED_CLEAR,
    RED_CLEAR,
    RUN,
    STARTUP_FLASH,
    WALK,
    YELLOW,
)

if TYPE_CHECKING:
    from edge.control.controller import Controller

# Lamps by interval (the intervals' values index these; overlaps add TRAIL and FYA_FLASH).
VEH_LAMP = (Lamp.RED, Lamp.GREEN, Lamp.YELLOW, Lamp.RED, Lamp.GREEN, Lamp.FLASH_YELLOW)
PED_LAMP = (Lamp.RED, Lamp.GREEN, Lamp.FLASH_RED)
FLASH_LAMP = {
    FlashColour.RED: Lamp.FLASH_RED,
    FlashColour.YELLOW: Lamp.FLASH_YELLOW,
    FlashColour.DARK: Lamp.DARK,
}


class Display:
    def __init__(self) -> None:
        self.last: Outputs | None = None

    def build_indexes(
        self, site: Site, index: dict[int, int], overlap_index: dict[str, int],
        has_veh: list[bool],
    ) -> None:  # fmt: skip
        self.channel_src: list[tuple[int, int]] = []  # (0 veh / 1 ped / 2 overlap, index)
        for ch in site.channels:
            if ch.kind is SignalKind.PHASE:
                self.channel_src.append((0, index[int(ch.source)]))
            elif ch.kind is SignalKind.PED:
                self.channel_src.append((1, index[int(ch.source)]))
            else:
                self.channel_src.append((2, overlap_index[str(ch.source)]))
        self.flash_channels = tuple(FLASH_LAMP[ch.flash] for ch in site.channels)
        phases = site.phases
        self.spat_red = tuple(PhaseTiming(p.id, Lamp.RED, None, None, None) for p in phases)
        self.spat_flash = tuple(
            PhaseTiming(p.id, FLASH_LAMP[p.flash] if has_veh[i] else Lamp.DARK, None, None, None)
            for i, p in enumerate(phases)
        )

    def emit(self, ctl: Controller, now: int) -> Outputs:
        """This step's outputs (rule 3) with its events (rule 4)."""
        if ctl._timers_dirty and not ctl._dirty and self.last is not None:
            self.last = self.last.restamped(now, (), self.spat(ctl))
        ctl._timers_dirty = False
        if ctl._dirty or self.last is None:
            self.last = self.build(ctl, now)
            ctl._dirty = False
            reason = ctl.monitor.check(now, self.last)
            if reason is not None and ctl.modes.mode != FAULT:
                ctl.modes.enter_fault(ctl, now, reason)
                self.last = self.build(ctl, now)
                ctl._dirty = False
        events = tuple(ctl.events)
        ctl.events.clear()
        return self.last.restamped(now, events)

    def build(self, ctl: Controller, now: int) -> Outputs:
        """Rule 1: the lamps of every signal group and channel now."""
        mode = ctl.modes.mode
        site = ctl.site
        has_veh = ctl.has_veh
        n = len(site.phases)
        if mode in (STARTUP_FLASH, FLASH, FAULT):
            veh = tuple(
                FLASH_LAMP[p.flash] if has_veh[i] else Lamp.DARK for i, p in enumerate(site.phases)
            )
            peds = (Lamp.DARK,) * n
            ovs = tuple(FLASH_LAMP[o.flash] for o in site.overlaps)
            return Outputs(
                now, mode, self.flash_channels, veh, peds, ovs, (), ctl.modes.fault,
                self.spat(ctl), ctl.control, ctl.control_reason, ctl.dets.failed_ids,
            )  # fmt: skip
        has_ped = ctl.has_ped
        veh = tuple(
            VEH_LAMP[v] if has_veh[i] else Lamp.DARK for i, v in enumerate(ctl.intervals.iv)
        )
        peds = tuple(PED_LAMP[v] if has_ped[i] else Lamp.DARK for i, v in enumerate(ctl.peds.iv))
        ovs = tuple(VEH_LAMP[v] for v in ctl.overlaps.iv)
        srcs = (veh, peds, ovs)
        channels = tuple(srcs[kind][idx] for kind, idx in self.channel_src)
        return Outputs(
            now, mode, channels, veh, peds, ovs, (), ctl.modes.fault, self.spat(ctl),
            ctl.control, ctl.control_reason, ctl.dets.failed_ids,
        )  # fmt: skip

    def spat(self, ctl: Controller) -> tuple[PhaseTiming, ...]:
        """Rule 2: each phase's display and when it can/will end."""
        mode = ctl.modes.mode
        if mode != RUN and mode != ALL_RED:
            return self.spat_flash
        out = list(self.spat_red)
        t = ctl.timers
        ped_iv, ped_end = ctl.peds.iv, ctl.peds.end
        phases = ctl.site.phases
        for i, v in enumerate(ctl.intervals.iv):
            if v == GREEN:
                lo = max(t.min_end[i], ped_end[i] if ped_iv[i] else 0)
                hi = None if t.max_end[i] == NEVER else max(t.max_end[i], lo)
                likely = hi if t.ext_count[i] else max(lo, min(t.pass_end[i], hi or NEVER))
                out[i] = PhaseTiming(phases[i].id, Lamp.GREEN, lo, hi, likely)
            elif v == YELLOW:
                end = ctl.intervals.end[i]
                out[i] = PhaseTiming(phases[i].id, Lamp.YELLOW, end, end, end)
        return tuple(out)


def status(ctl: Controller) -> Status:
    """Rule 5: the snapshot displays read."""
    now = ctl.last_now
    t = ctl.timers
    ends = ctl.intervals.end
    ped_iv, ped_end, pcall = ctl.peds.iv, ctl.peds.end, ctl.peds.call
    phases = []
    for i, v in enumerate(ctl.intervals.iv):
        max_left = max(0, t.max_end[i] - now) if t.max_end[i] != NEVER else None
        left: int | None = None
        if v == GREEN:
            if ped_iv[i] == WALK or ped_iv[i] == PED_CLEAR:
                name, left = ("walk" if ped_iv[i] == WALK else "ped_clear"), ped_end[i]
            elif now < t.min_end[i]:
                name, left = "min_green", t.min_end[i]
            elif now < t.pass_end[i]:
                name, left = "passage", t.pass_end[i]
            else:
                name = "rest" if max_left is None else "max"
                left = None if max_left is None else t.max_end[i]
        elif v in (YELLOW, RED_CLEAR):
            name, left, max_left = ("yellow" if v == YELLOW else "red_clear"), ends[i], None
        else:
            name, max_left = "red", None
        left_ms = None if left is None else max(0, left - now)
        pid = ctl.site.phases[i].id
        calls = (t.vcall[i], pcall[i], ctl.hold[i], ctl.omit[i])
        phases.append(PhaseStatus(pid, name, left_ms, max_left, *calls))
    return Status(now, ctl.plan.id, tuple(phases), tuple(ctl.dets.present))


def tick_view(ctl: Controller) -> TickView:
    """Rule 6: the runtime's per-tick read."""
    coord = ctl.coordinator
    cycle = (
        coord.cycle_pos(ctl, ctl.last_now)
        if coord.points is not None and ctl.plan.pattern is not None
        else None
    )
    return TickView(
        ctl.last_now,
        tuple(ctl.intervals.iv),
        tuple(bool(c) for c in ctl.timers.vcall),
        tuple(bool(p) for p in ctl.dets.present),
        tuple(bool(c) for c in ctl.peds.call),
        tuple(ctl.rings.ring_next),
        ctl.plan.id,
        cycle,
        tuple(e if v else None for v, e in zip(ctl.peds.iv, ctl.peds.end, strict=True)),
    )
