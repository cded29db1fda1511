"""The controller's and detectors' events in the Indiana hi-res enumerations (pure).

Source: "Indiana Traffic Signal Hi Resolution Data Logger Enumerations" (Sturdevant
et al., Purdue / INDOT, 2012, doi:10.4231/K4RN35SH, with the 2020 update's split codes
203-218), as UDOT's ATSPM carries it (`DataLoggerEnum`, ATSPM.Data.Enums, Apache-2.0,
github.com/udotdevelopment/ATSPM and utahudot/udot-atspm).

The rules this module keeps:

- Every `Event` the control core emits maps to an Indiana code with its parameter (the
  phase, overlap, detector or preempt number), or, where the standard has no code, to
  one of the device's own codes in EXTRA_FIRST..EXTRA_LAST (240-254: above 218, the
  last code the enumerations assign, and below 255; a one-byte code, as .datZ needs).
  `EVENT_CODES` names each; `tests/atspm` checks none is left out.
- Detector on (82) / off (81), pedestrian detector on (90) / off (89) with a pedestrian
  call (45) per phase, and vehicle call registered (43) / dropped (44) come from the
  controller's state (each loop's presence as the controller stepped on it, the phases'
  calls), compared tick to tick: the core emits no events for them. Presence is the
  sensed one (delay and carryover shape calls, not presence, here: ATSPM's measures want
  the loop itself); a pulse shorter than a tick, counted by the board, logs no on/off.
- Times are the controller's ms, rounded to the tenth of a second (the enumerations'
  resolution); within one tick events keep the core's order.
- Parameters are the site's numbers: phases by id, detectors by id, preempts by id,
  overlaps and patterns (plans) by their 1-based place in the site (overlap "A" is
  1 when listed first). Pattern 254 is free (no pattern), as NTCIP's and the vendors'
  logs write it; cycle (132), offset (133) and splits (134-149) in whole seconds, at
  most 255 (a longer cycle also logs 156, the seconds above 255).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.control.messages import Event, Outputs
from edge.control.site import Site

# -- the Indiana codes this device logs ------------------------------------------------
PHASE_BEGIN_GREEN = 1
PHASE_GAP_OUT = 4
PHASE_MAX_OUT = 5
PHASE_FORCE_OFF = 6
PHASE_GREEN_TERMINATION = 7
PHASE_BEGIN_YELLOW = 8
PHASE_END_YELLOW = 9
PHASE_BEGIN_RED_CLEARANCE = 10
PHASE_END_RED_CLEARANCE = 11
PHASE_INACTIVE = 12
PED_BEGIN_WALK = 21
PED_BEGIN_CLEARANCE = 22
PED_BEGIN_DONT_WALK = 23
BARRIER_TERMINATION = 31
FYA_BEGIN_PERMISSIVE = 32
FYA_END_PERMISSIVE = 33
PHASE_CALL_REGISTERED = 43
PHASE_CALL_DROPPED = 44
PED_CALL_REGISTERED = 45
OVERLAP_BEGIN_GREEN = 61
OVERLAP_BEGIN_YELLOW = 63
OVERLAP_OFF = 65
DETECTOR_OFF = 81
DETECTOR_ON = 82
DETECTOR_RESTORED = 83
DETECTOR_FAULT_OTHER = 84
PED_DETECTOR_OFF = 89
PED_DETECTOR_ON = 90
PREEMPT_CALL_ON = 102
PREEMPT_CALL_OFF = 104
PREEMPT_ENTRY = 105
PREEMPT_BEGIN_DWELL = 107
PREEMPT_MAX_PRESENCE = 110
PREEMPT_BEGIN_EXIT = 111
TSP_CHECK_IN = 112
TSP_EARLY_GREEN = 113
TSP_EXTEND_GREEN = 114
TSP_CHECK_OUT = 115
TSP_SERVICE_END = 119
COORD_PATTERN_CHANGE = 131
CYCLE_LENGTH_CHANGE = 132
OFFSET_LENGTH_CHANGE = 133
SPLIT_1_CHANGE = 134  # .. 149 for phase 16
UNIT_FLASH_STATUS = 173
ALARM_ON = 200
ALARM_OFF = 201
ADDITIONAL_CYCLE_LENGTH = 156

# -- the device's own codes (outside the standard's range) -----------------------------
EXTRA_FIRST = 240
EXTRA_LAST = 254
COMMAND_APPLIED = 240  # parameter: 0
COMMAND_REJECTED = 241
ALL_RED = 242  # parameter 1 on, 0 off
INPUT_ERROR = 243
PLAN_PENDING = 244  # parameter: the pattern number
SITE_LOADED = 245
OFFSET_IN_STEP = 246  # parameter: the pattern number
CONTROL_MODE = 247  # parameter: 1 free, 2 coordinated, 3 adaptive
LOG_LOSS = 248  # events lost (parameter: how many, at most 255; the store keeps the count)
CONTROLLER_MODE = 249  # parameter: MODE_NUMBERS

FREE_PATTERN = 254
# NTCIP 1202 unitFlashStatus: 2 not flash, 4 local manual, 5 fault monitor, 7 start-up
FLASH_STATUS = {"run": 2, "all_red": 2, "flash": 4, "fault_flash": 5, "startup_flash": 7}
MODE_NUMBERS = {"startup_flash": 1, "startup_all_red": 2, "run": 3, "all_red": 4, "flash": 5}
MODE_NUMBERS["fault_flash"] = 6
CONTROL_NUMBERS = {"free": 1, "coordinated": 2, "adaptive": 3}

# The core's event names and the codes they log (tests check the core emits no other).
EVENT_CODES: dict[str, tuple[int, ...]] = {
    "phase_green": (PHASE_BEGIN_GREEN,),
    "gap_out": (PHASE_GAP_OUT,),
    "max_out": (PHASE_MAX_OUT,),
    "force_off": (PHASE_FORCE_OFF,),
    "phase_yellow": (PHASE_GREEN_TERMINATION, PHASE_BEGIN_YELLOW),
    "phase_red_clear": (PHASE_END_YELLOW, PHASE_BEGIN_RED_CLEARANCE),
    "phase_red": (PHASE_END_RED_CLEARANCE, PHASE_INACTIVE),
    "ped_walk": (PED_BEGIN_WALK,),
    "ped_clear": (PED_BEGIN_CLEARANCE,),
    "ped_dont_walk": (PED_BEGIN_DONT_WALK,),
    "barrier_cross": (BARRIER_TERMINATION,),
    "overlap_green": (OVERLAP_BEGIN_GREEN,),
    "overlap_flashing_yellow": (FYA_BEGIN_PERMISSIVE,),
    "overlap_yellow": (OVERLAP_BEGIN_YELLOW,),
    "overlap_red": (OVERLAP_OFF,),
    "detector_fault": (DETECTOR_FAULT_OTHER,),
    "detector_recovered": (DETECTOR_RESTORED,),
    "preempt_request": (PREEMPT_CALL_ON,),
    "preempt_cancel": (PREEMPT_CALL_OFF,),
    "preempt_enter": (PREEMPT_ENTRY,),
    "preempt_dwell": (PREEMPT_BEGIN_DWELL,),
    "preempt_timeout": (PREEMPT_MAX_PRESENCE,),
    "preempt_exit": (PREEMPT_BEGIN_EXIT,),
    "transit_request": (TSP_CHECK_IN,),
    "transit_cancel": (TSP_CHECK_OUT,),
    "transit_early": (TSP_EARLY_GREEN,),
    "transit_extend": (TSP_EXTEND_GREEN,),
    "transit_end": (TSP_SERVICE_END,),
    "plan_applied": (COORD_PATTERN_CHANGE, CYCLE_LENGTH_CHANGE, OFFSET_LENGTH_CHANGE),
    "mode_coordination": (CONTROL_MODE, COORD_PATTERN_CHANGE),
    "mode": (CONTROLLER_MODE, UNIT_FLASH_STATUS),
    "flash_enter": (UNIT_FLASH_STATUS,),
    "fault_flash": (UNIT_FLASH_STATUS, ALARM_ON),
    "fault_recovered": (ALARM_OFF,),
    "all_red_enter": (ALL_RED,),
    "all_red_exit": (ALL_RED,),
    "command_applied": (COMMAND_APPLIED,),
    "command_rejected": (COMMAND_REJECTED,),
    "input_error": (INPUT_ERROR,),
    "plan_pending": (PLAN_PENDING,),
    "site_loaded": (SITE_LOADED,),
    "offset_in_step": (OFFSET_IN_STEP,),
}


@dataclass(frozen=True, slots=True)
class HiRes:
    """One hi-res event: when (ms, a multiple of 100 on the controller's clock), code, param."""

    t_ms: int
    code: int
    param: int


def tenths(t_ms: int) -> int:
    """The controller's ms at the log's resolution (0.1 s), as ms."""
    return (t_ms + 50) // 100 * 100


def _number(subject: str) -> int:
    """The number in "phase 2", "detector 11", "preempt 1"; 0 when there is none."""
    tail = subject.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _secs(ms: int) -> int:
    return min(255, max(0, round(ms / 1000)))


class Translator:
    """Tick by tick, the core's outputs and the detectors' state as hi-res events.

    `step(t_ms, outputs, present, calls)`: `outputs` is the step's Outputs (its events
    logged once per step time), `present` the detector presence per site detector
    (the controller's `det_present`, in site order), `calls` the vehicle call per phase.
    """

    def __init__(self, site: Site, plan_id: str | None = None) -> None:
        self.site = site
        self.overlap_no = {o.id: k + 1 for k, o in enumerate(site.overlaps)}
        self.pattern_no = {p: k + 1 for k, p in enumerate(site.plans)}
        self.plan_id = plan_id
        self.present: tuple[bool, ...] | None = None
        self.calls: tuple[bool, ...] | None = None
        self.last_t: int | None = None  # the last step whose events were logged
        self.fya: set[int] = set()  # overlaps in their flashing yellow

    def step(
        self,
        t_ms: int,
        outputs: Outputs | None,
        present: tuple[bool, ...],
        calls: tuple[bool, ...],
    ) -> list[HiRes]:
        out: list[HiRes] = []
        t = tenths(t_ms)
        if self.last_t is None and self.plan_id is not None:
            # the plan in force from the start: stamped with the core's first event
            first = [tenths(e.t_ms) for e in outputs.events] if outputs is not None else []
            out += self.pattern(min([t, *first]), self.plan_id)
        if outputs is not None and (self.last_t is None or outputs.t_ms > self.last_t):
            self.last_t = outputs.t_ms
            for e in outputs.events:
                out += self.event(e)
        out += self._detectors(t, present)
        out += self._calls(t, calls)
        return out

    # -- from the core's events ----------------------------------------------------------

    def event(self, e: Event) -> list[HiRes]:
        t, name, n = tenths(e.t_ms), e.name, _number(e.subject)
        if name in ("overlap_green", "overlap_flashing_yellow", "overlap_yellow", "overlap_red"):
            return self._overlap(t, name, e.subject)
        if name == "plan_applied":
            return self.pattern(t, e.subject)
        if name == "mode":
            return [
                HiRes(t, CONTROLLER_MODE, MODE_NUMBERS.get(e.subject, 0)),
                HiRes(t, UNIT_FLASH_STATUS, FLASH_STATUS.get(e.subject, 1)),
            ]
        if name == "mode_coordination":
            ev = [HiRes(t, CONTROL_MODE, CONTROL_NUMBERS.get(e.subject, 0))]
            if e.subject != "coordinated":
                ev.append(HiRes(t, COORD_PATTERN_CHANGE, FREE_PATTERN))
            return ev
        if name == "flash_enter":
            return [HiRes(t, UNIT_FLASH_STATUS, FLASH_STATUS["flash"])]
        if name == "fault_flash":
            return [HiRes(t, UNIT_FLASH_STATUS, FLASH_STATUS["fault_flash"]), HiRes(t, ALARM_ON, 1)]
        if name == "fault_recovered":
            return [HiRes(t, ALARM_OFF, 1)]
        if name in ("all_red_enter", "all_red_exit"):
            return [HiRes(t, ALL_RED, 1 if name == "all_red_enter" else 0)]
        if name in ("plan_pending", "offset_in_step"):
            return [HiRes(t, EVENT_CODES[name][0], self.pattern_no.get(e.subject, 0))]
        if name == "transit_end":
            return [HiRes(t, TSP_SERVICE_END, 0)]
        codes = EVENT_CODES.get(name)
        if codes is None:
            return []  # a new core event: tests/atspm fails until it is mapped here
        return [HiRes(t, c, n) for c in codes]

    def _overlap(self, t: int, name: str, subject: str) -> list[HiRes]:
        k = self.overlap_no.get(subject.removeprefix("overlap "), 0)
        out = []
        if k in self.fya and name != "overlap_flashing_yellow":
            self.fya.discard(k)
            out.append(HiRes(t, FYA_END_PERMISSIVE, k))
        if name == "overlap_flashing_yellow":
            self.fya.add(k)
        out.append(HiRes(t, EVENT_CODES[name][0], k))
        return out

    def pattern(self, t: int, plan_id: str) -> list[HiRes]:
        """131 (pattern), 132 (cycle), 133 (offset) and the splits of a plan now in force."""
        plan = self.site.plans.get(plan_id)
        if plan is None:
            return []
        pat = plan.pattern
        if pat is None:
            return [HiRes(t, COORD_PATTERN_CHANGE, FREE_PATTERN)]
        cycle_s = round(pat.cycle_ms / 1000)
        out = [
            HiRes(t, COORD_PATTERN_CHANGE, self.pattern_no[plan_id]),
            HiRes(t, CYCLE_LENGTH_CHANGE, min(cycle_s, 255)),
        ]
        if cycle_s > 255:
            out.append(HiRes(t, ADDITIONAL_CYCLE_LENGTH, min(cycle_s - 255, 255)))
        out.append(HiRes(t, OFFSET_LENGTH_CHANGE, _secs(pat.offset_ms)))
        for phase, split_ms in sorted(pat.splits_ms.items()):
            if 1 <= phase <= 16:
                out.append(HiRes(t, SPLIT_1_CHANGE + phase - 1, _secs(split_ms)))
        return out

    # -- from the controller's state -----------------------------------------------------

    def _detectors(self, t: int, present: tuple[bool, ...]) -> list[HiRes]:
        before = self.present or (False,) * len(present)
        self.present = present
        out = []
        for det, was, now in zip(self.site.detectors, before, present, strict=False):
            if was == now:
                continue
            if det.ped:
                out.append(HiRes(t, PED_DETECTOR_ON if now else PED_DETECTOR_OFF, det.id))
                if now:
                    out += [HiRes(t, PED_CALL_REGISTERED, p) for p in det.calls]
            else:
                out.append(HiRes(t, DETECTOR_ON if now else DETECTOR_OFF, det.id))
        return out

    def _calls(self, t: int, calls: tuple[bool, ...]) -> list[HiRes]:
        before = self.calls or (False,) * len(calls)
        self.calls = calls
        return [
            HiRes(t, PHASE_CALL_REGISTERED if now else PHASE_CALL_DROPPED, ph.id)
            for ph, was, now in zip(self.site.phases, before, calls, strict=False)
            if was != now
        ]
