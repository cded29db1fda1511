"""The NTCIP 1202 v03 objects the agent serves, and what a SET of them asks of the core.

OIDs are NTCIP 1202's ASC tree, 1.3.6.1.4.1.1206.4.2.1 (v03 keeps v02's numbers for all
of these), as compiled from the 1202 ASC MIB in Metrolla-Inc/ntcipy,
py_mibs/ASC_MIB1.py (phase 1.x, detector 2.x, unit 3.x, coord 4.x, preempt 6.x); the
overlap status group table (9.4.1.2-4) as used by MMITSS and other readers
(mmitss/mmitss-az src/mrp/traffic-controller-interface/StandardMib.py names the phase
ones). Units as in the standard: phaseWalk, PedestrianClear, MinimumGreen, Maximum1/2,
MaximumInitial, TimeBeforeReduction and TimeToReduce in seconds; Passage, YellowChange,
RedClear, RedRevert, AddedInitial and MinimumGap in tenths.

The rules this module keeps (pure: no sockets, no clock, testable by itself):
- Group objects are 8-bit masks: bit k of group g is number 8*(g-1)+k+1 (numbers as
  edge/ntcip/core.py gives them: phases and preempts by id, overlaps, vehicle detectors
  and patterns by their place in the site file).
- `plan_set` checks a SET's varbinds whole, against the site and the latest status,
  before anything is asked of the core: one bad varbind refuses them all with its
  index and an SNMP error (`SetRefused`), and then no command is issued and the remote
  state is unchanged. What it returns are the core's own commands (edge/control/
  messages.py), for the same path the MQTT commands take (the driver's queue, then
  edge/control/commands.py's checks).
- Remote control (omit, hold, pattern, preempt) is held by the agent and released
  as a whole by `release` when unitBackupTime lapses without a SET (0: never).
- systemPatternControl: 0 standby (the schedule's plan), 1..N the site's plans in file
  order, 254 free, 255 flash; coordPatternStatus reads the same way.
- Force-off and the calls act when set (a force-off on the phases green then, a call
  placed once, as the core latches calls); pedestrian omit and unitControl's functions
  (dimming, interconnect, walk rest, non-actuated calls, minimum recall) have no
  command in this core: 0 is accepted, any bit refused (wrongValue).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from edge.control.messages import Flash, ForceOff, Hold, Omit, PlaceCall, Preempt, SetMode, SetPlan
from edge.control.site import Site
from edge.control.states import COORDINATED, FAULT, FLASH, FREE, STARTUP_FLASH
from edge.ntcip.core import Status, plan_numbers, vehicle_detectors

Oid = tuple[int, ...]
ASC: Oid = (1, 3, 6, 1, 4, 1, 1206, 4, 2, 1)

# phase (1)
MAX_PHASES = (*ASC, 1, 1, 0)
PHASE_ENTRY = (*ASC, 1, 2, 1)
MAX_PHASE_GROUPS = (*ASC, 1, 3, 0)
PHASE_STATUS = (*ASC, 1, 4, 1)  # .2 Reds .3 Yellows .4 Greens .5 DontWalks .6 PedClears
# .7 Walks .8 VehCalls .9 PedCalls .10 PhaseOns .11 PhaseNexts
PHASE_CONTROL = (*ASC, 1, 5, 1)  # .2 PhaseOmit .3 PedOmit .4 Hold .5 ForceOff .6 VehCall
# .7 PedCall
# detector (2)
MAX_DETECTORS = (*ASC, 2, 1, 0)
MAX_DETECTOR_GROUPS = (*ASC, 2, 3, 0)
DETECTOR_STATUS = (*ASC, 2, 4, 1)  # .2 Active .3 Alarms
# unit (3)
UNIT_BACKUP_TIME = (*ASC, 3, 3, 0)
UNIT_CONTROL_STATUS = (*ASC, 3, 5, 0)
UNIT_FLASH_STATUS = (*ASC, 3, 6, 0)
UNIT_ALARM_STATUS2 = (*ASC, 3, 7, 0)
UNIT_ALARM_STATUS1 = (*ASC, 3, 8, 0)
UNIT_CONTROL = (*ASC, 3, 10, 0)
# coord (4)
MAX_PATTERNS = (*ASC, 4, 5, 0)
COORD_PATTERN_STATUS = (*ASC, 4, 10, 0)
LOCAL_FREE_STATUS = (*ASC, 4, 11, 0)
COORD_CYCLE_STATUS = (*ASC, 4, 12, 0)
SYSTEM_PATTERN_CONTROL = (*ASC, 4, 14, 0)
# preempt (6)
MAX_PREEMPTS = (*ASC, 6, 1, 0)
PREEMPT_CONTROL = (*ASC, 6, 3, 1)  # .1 Number .2 State
# overlap (9)
MAX_OVERLAPS = (*ASC, 9, 1, 0)
MAX_OVERLAP_GROUPS = (*ASC, 9, 3, 0)
OVERLAP_STATUS = (*ASC, 9, 4, 1)  # .2 Reds .3 Yellows .4 Greens

OMIT, PED_OMIT, HOLD, FORCE_OFF, VEH_CALL, PED_CALL = 2, 3, 4, 5, 6, 7
CONTROL_NAMES = {
    OMIT: "phaseControlGroupPhaseOmit",
    PED_OMIT: "phaseControlGroupPedOmit",
    HOLD: "phaseControlGroupHold",
    FORCE_OFF: "phaseControlGroupForceOff",
    VEH_CALL: "phaseControlGroupVehCall",
    PED_CALL: "phaseControlGroupPedCall",
}
STANDBY, FREE_PATTERN, FLASH_PATTERN = 0, 254, 255
FLASH_MODES = frozenset({FLASH, FAULT, STARTUP_FLASH})
SOURCE = "ntcip"  # who set the mode, as the core's outputs show it

# unitControlStatus, unitFlashStatus, localFreeStatus enumerations (1: other)
SYSTEM_CONTROL, BACKUP_MODE, TIMEBASE = 2, 4, 6
NOT_FLASH, FLASH_AUTOMATIC, FLASH_LOCAL_MANUAL, FLASH_FAULT, FLASH_STARTUP = 2, 3, 4, 5, 7
NOT_FREE, COMMAND_FREE, COORD_FREE = 2, 3, 6
# unitAlarmStatus1 bits driven here
ALARM1_COORD_ACTIVE, ALARM1_LOCAL_FREE, ALARM1_LOCAL_FLASH, ALARM1_MMU_FLASH = 1, 2, 4, 8


def mask(numbers: Iterable[int], group: int) -> int:
    """The 8-bit mask of `numbers` in `group` (1-based)."""
    lo = 8 * (group - 1) + 1
    return sum(1 << (n - lo) for n in numbers if lo <= n < lo + 8)


def members(value: int, group: int) -> list[int]:
    return [8 * (group - 1) + k + 1 for k in range(8) if value >> k & 1]


def groups(ids: Iterable[int]) -> range:
    top = max(ids, default=0)
    return range(1, (top + 7) // 8 + 1)


@dataclass(frozen=True, slots=True)
class Remote:
    """What central has set over SNMP (the agent's own state)."""

    masks: MappingProxyType[tuple[int, int], int] = field(
        default_factory=lambda: MappingProxyType({})
    )  # (phaseControlGroup column, group) -> the mask last written
    pattern: int = STANDBY
    preempts: frozenset[int] = frozenset()
    backup_s: int = 60
    lapsed: bool = False  # the backup timer ran out: backup mode until the next SET

    def ids(self, column: int) -> frozenset[int]:
        return frozenset(
            n for (c, g), v in self.masks.items() if c == column for n in members(v, g)
        )

    @property
    def active(self) -> bool:
        """Remote control in force (what the backup timer releases)."""
        return bool(self.ids(OMIT) or self.ids(HOLD) or self.pattern or self.preempts)


class SetRefused(Exception):
    """A SET refused whole: `index` (0-based varbind), `error` an SNMP error name."""

    def __init__(self, index: int, error: str, why: str) -> None:
        super().__init__(f"varbind {index + 1}: {why}")
        self.index, self.error, self.why = index, error, why


def read_table(site: Site, st: Status, remote: Remote) -> dict[Oid, int]:
    """Every readable object's value."""
    phases = [p.id for p in site.phases]
    pgroups = groups(phases)
    t: dict[Oid, int] = {
        MAX_PHASES: len(phases),
        MAX_PHASE_GROUPS: len(pgroups),
    }
    timing = site.plans.get(st.plan) or site.plans[site.default_plan]
    for p in site.phases:
        tm = timing.timings[p.id]
        s, ds = 1000, 100  # ms per second, per tenth
        for col, v in (
            (1, p.id),
            (2, tm.walk_ms // s),
            (3, tm.ped_clear_ms // s),
            (4, tm.min_green_ms // s),
            (5, tm.passage_ms // ds),
            (6, tm.max_green_ms // s),
            (7, tm.max2_green_ms // s),
            (8, tm.yellow_ms // ds),
            (9, tm.red_clear_ms // ds),
            (10, tm.red_revert_ms // ds),
            (11, tm.added_initial_ms // ds),
            (12, tm.max_initial_ms // s),
            (13, tm.time_before_reduction_ms // s),
            (15, tm.time_to_reduce_ms // s),
            (17, tm.min_gap_ms // ds),
            (22, p.ring),
        ):
            t[(*PHASE_ENTRY, col, p.id)] = min(v, 255)
    status_cols = (
        st.reds, st.yellows, st.greens, st.dont_walks, st.ped_clears, st.walks,
        st.veh_calls, st.ped_calls, st.ons, st.nexts,
    )  # fmt: skip
    for g in pgroups:
        t[(*PHASE_STATUS, 1, g)] = g
        for col, ids in enumerate(status_cols, start=2):
            t[(*PHASE_STATUS, col, g)] = mask(ids, g)
        t[(*PHASE_CONTROL, 1, g)] = g
        for col in CONTROL_NAMES:
            t[(*PHASE_CONTROL, col, g)] = remote.masks.get((col, g), 0)
    dets = vehicle_detectors(site)
    dgroups = groups(dets.values())
    t[MAX_DETECTORS] = len(dets)
    t[MAX_DETECTOR_GROUPS] = len(dgroups)
    for g in dgroups:
        t[(*DETECTOR_STATUS, 1, g)] = g
        t[(*DETECTOR_STATUS, 2, g)] = mask(st.det_active, g)
        t[(*DETECTOR_STATUS, 3, g)] = mask(st.det_alarms, g)
    overlaps = range(1, len(site.overlaps) + 1)
    ogroups = groups(overlaps)
    t[MAX_OVERLAPS] = len(overlaps)
    t[MAX_OVERLAP_GROUPS] = len(ogroups)
    for g in ogroups:
        t[(*OVERLAP_STATUS, 1, g)] = g
        for col, ids in enumerate((st.ov_reds, st.ov_yellows, st.ov_greens), start=2):
            t[(*OVERLAP_STATUS, col, g)] = mask(ids, g)
    t[MAX_PREEMPTS] = len(site.preempts)
    for pre in site.preempts:
        t[(*PREEMPT_CONTROL, 1, pre.id)] = pre.id
        t[(*PREEMPT_CONTROL, 2, pre.id)] = int(pre.id in remote.preempts)
    t[UNIT_BACKUP_TIME] = remote.backup_s
    t[UNIT_CONTROL_STATUS] = (
        SYSTEM_CONTROL if remote.active else BACKUP_MODE if remote.lapsed else TIMEBASE
    )
    t[UNIT_FLASH_STATUS] = flash_status(st, remote)
    t[UNIT_ALARM_STATUS1] = (
        (ALARM1_COORD_ACTIVE if st.control == COORDINATED else 0)
        | (ALARM1_LOCAL_FREE if st.control == FREE and st.mode not in FLASH_MODES else 0)
        | (ALARM1_LOCAL_FLASH if st.mode == FLASH else 0)
        | (ALARM1_MMU_FLASH if st.mode == FAULT else 0)
    )
    t[UNIT_ALARM_STATUS2] = 0
    t[UNIT_CONTROL] = 0
    t[MAX_PATTERNS] = len(site.plans)
    numbers = plan_numbers(site)
    t[COORD_PATTERN_STATUS] = (
        FLASH_PATTERN
        if st.mode in FLASH_MODES
        else FREE_PATTERN
        if st.control == FREE
        else numbers.get(st.plan, 0)
    )
    t[LOCAL_FREE_STATUS] = (
        NOT_FREE
        if st.control == COORDINATED
        else COMMAND_FREE
        if "command" in st.control_reason
        else COORD_FREE
    )
    t[COORD_CYCLE_STATUS] = (st.cycle_ms or 0) // 1000
    t[SYSTEM_PATTERN_CONTROL] = remote.pattern
    return t


def flash_status(st: Status, remote: Remote) -> int:
    if st.mode == STARTUP_FLASH:
        return FLASH_STARTUP
    if st.mode == FAULT:
        return FLASH_FAULT
    if st.mode == FLASH:
        return FLASH_AUTOMATIC if remote.pattern == FLASH_PATTERN else FLASH_LOCAL_MANUAL
    return NOT_FLASH


# More varbinds than writable objects a site has: each may ask 8 commands of one step,
# so a longer SET (thousands fit a datagram) would hold up the control tick.
MAX_SET_VARBINDS = 64

WRITABLE_SCALARS = {
    SYSTEM_PATTERN_CONTROL: "systemPatternControl",
    UNIT_CONTROL: "unitControl",
    UNIT_BACKUP_TIME: "unitBackupTime",
}


def plan_set(
    site: Site,
    st: Status,
    remote: Remote,
    varbinds: Sequence[tuple[Oid, object]],
    scheduled_plan: str,
) -> tuple[Remote, list[object]]:
    """Check a SET whole; the new remote state and the core commands it asks for.

    Raises SetRefused for the first bad varbind: then nothing is to be applied."""
    if len(varbinds) > MAX_SET_VARBINDS:
        raise SetRefused(
            MAX_SET_VARBINDS, "tooBig", f"{len(varbinds)} varbinds: at most {MAX_SET_VARBINDS}"
        )
    phases = {p.id: p for p in site.phases}
    preempts = {p.id for p in site.preempts}
    masks = dict(remote.masks)
    pattern, pre_on, backup_s = remote.pattern, set(remote.preempts), remote.backup_s
    touched: list[tuple[int, int, int]] = []  # (column, group, value) in varbind order
    new_pattern: int | None = None
    for i, (oid, value) in enumerate(varbinds):
        name = _name(oid)
        if name is None:
            raise SetRefused(i, "notWritable", f"{_dotted(oid)} is not writable here")
        if not isinstance(value, int) or isinstance(value, bool):
            raise SetRefused(i, "wrongType", f"{name} takes an INTEGER, not {value!r}")
        if oid[:-2] == PHASE_CONTROL:
            col, g = oid[-2], oid[-1]
            if not 0 <= value <= 255:
                raise SetRefused(i, "wrongValue", f"{name}.{g} = {value}: a mask is 0..255")
            if g not in groups(phases):
                raise SetRefused(i, "noCreation", f"{name}.{g}: no phase group {g}")
            ids = members(value, g)
            unknown = [n for n in ids if n not in phases]
            if unknown:
                raise SetRefused(i, "wrongValue", f"{name}.{g} = {value}: no phase {unknown}")
            if col == PED_OMIT and value:
                raise SetRefused(i, "wrongValue", f"{name}: pedestrian omit is not supported")
            no_ped = [n for n in ids if phases[n].ped_crossing is None]
            if col == PED_CALL and no_ped:
                raise SetRefused(
                    i, "wrongValue", f"{name}: phase {no_ped} has no pedestrian signal"
                )
            masks[(col, g)] = value
            touched.append((col, g, value))
        elif oid[:-1] == (*PREEMPT_CONTROL, 2):
            n = oid[-1]
            if n not in preempts:
                raise SetRefused(i, "noCreation", f"{name}.{n}: no preempt {n}")
            if value not in (0, 1):
                raise SetRefused(i, "wrongValue", f"{name}.{n} = {value}: 0 or 1")
            if value and (st.mode in FLASH_MODES or st.mode == "all_red"):
                raise SetRefused(
                    i, "inconsistentValue", f"{name}.{n}: the intersection is in {st.mode}"
                )
            (pre_on.add if value else pre_on.discard)(n)
        elif oid == SYSTEM_PATTERN_CONTROL:
            if not (
                value in (STANDBY, FREE_PATTERN, FLASH_PATTERN) or 1 <= value <= len(site.plans)
            ):
                raise SetRefused(
                    i, "wrongValue",
                    f"{name} = {value}: 0 standby, 1..{len(site.plans)} a plan, "
                    "254 free, 255 flash",
                )  # fmt: skip
            new_pattern = value
        elif oid == UNIT_CONTROL:
            if value != 0:
                raise SetRefused(
                    i, "wrongValue", f"{name} = {value}: none of its functions is supported"
                )
        elif oid == UNIT_BACKUP_TIME:
            if not 0 <= value <= 65535:
                raise SetRefused(i, "wrongValue", f"{name} = {value}: 0..65535 s")
            backup_s = value
    new = Remote(MappingProxyType(masks), pattern, frozenset(pre_on), backup_s, False)
    commands: list[object] = []
    # phase control, in varbind order; hold as one set (the core's Hold adds to it)
    for col, g, value in touched:
        ids = members(value, g)
        if col == OMIT:
            commands += [Omit(n, on=n in ids) for n in members(255, g) if n in phases]
        elif col == FORCE_OFF:
            commands += [ForceOff(n) for n in ids if n in st.greens]
        elif col in (VEH_CALL, PED_CALL):
            commands += [PlaceCall(n, ped=col == PED_CALL) for n in ids]
    if any(col == HOLD for col, _, _ in touched) and new.ids(HOLD) != remote.ids(HOLD):
        commands.append(Hold(None))
        if new.ids(HOLD):
            commands.append(Hold(tuple(sorted(new.ids(HOLD)))))
    for n in sorted(preempts):
        if (n in pre_on) != (n in remote.preempts):
            commands.append(Preempt(n, on=n in pre_on))
    if new_pattern is not None:
        commands += pattern_commands(site, pattern, new_pattern, scheduled_plan)
        new = replace(new, pattern=new_pattern)
    return new, commands


def pattern_commands(site: Site, old: int, new: int, scheduled_plan: str) -> list[object]:
    """From one systemPatternControl value to another."""
    out: list[object] = []
    if old == FLASH_PATTERN and new != FLASH_PATTERN:
        out.append(Flash(False))
    if old == FREE_PATTERN and new != FREE_PATTERN:
        out.append(SetMode("plan", SOURCE))
    plans = list(site.plans)
    if new == FLASH_PATTERN:
        out.append(Flash(True))
    elif new == FREE_PATTERN:
        out.append(SetMode(FREE, SOURCE))
    elif new == STANDBY:
        if 1 <= old <= len(plans):
            out.append(SetPlan(scheduled_plan))
    else:
        out.append(SetPlan(plans[new - 1]))
    return out


def release(site: Site, remote: Remote, scheduled_plan: str) -> tuple[Remote, list[object]]:
    """The backup timer ran out: every remote control back to local (backup mode)."""
    out: list[object] = [Omit(n, on=False) for n in sorted(remote.ids(OMIT))]
    if remote.ids(HOLD):
        out.append(Hold(None))
    out += [Preempt(n, on=False) for n in sorted(remote.preempts)]
    out += pattern_commands(site, remote.pattern, STANDBY, scheduled_plan)
    return Remote(backup_s=remote.backup_s, lapsed=True), out


def _name(oid: Oid) -> str | None:
    if len(oid) == len(PHASE_CONTROL) + 2 and oid[:-2] == PHASE_CONTROL:
        return CONTROL_NAMES.get(oid[-2])
    if len(oid) == len(PREEMPT_CONTROL) + 2 and oid[:-1] == (*PREEMPT_CONTROL, 2):
        return "preemptControlState"
    return WRITABLE_SCALARS.get(oid)


def _dotted(oid: Oid) -> str:
    return ".".join(map(str, oid))
