"""Operator and central commands: check each one, then apply it to the core.

Rules this module keeps:

1. A command is applied whole or not at all: every argument is checked first
   (phase and preempt ids known, flags true or false, a plan that exists, new
   timing for the same intersection), and a bad one is rejected with a reason
   naming what is wrong (event `command_rejected`); an applied one is echoed
   (`command_applied`). Anything that is not a command is rejected too; none
   raises.
2. Commands only set requests; the sequencer acts on them at its next pass:
   a hold keeps a green (never past a stop), a force-off ends a green no
   sooner than its minimums allow, an omit skips a called phase, all red and
   flash clear through yellow and red clearance first.
3. Plans and new timing wait for a safe point (controller.py rule 2): SetPlan
   and LoadSite only make them pending. A SetPlan names a plan of the timing
   that runs next, so central's new timing still waiting is not dropped.
4. Leaving flash (Flash off, Automatic) and recovering from a fault restart
   through start-up all red, never straight into greens.
5. No preemption request is taken while the intersection is held in flash or
   all red.

The operator state the commands set lives where the sequencer reads it every
pass: on the controller `hold`, `omit`, `force_off`, `pending_plan`,
`pending_site` and `mode_override`; max 2 on the phase timers (timing.py);
the all red and flash requests on the modes (modes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.control import transit
from edge.control.messages import (
    AllRed,
    Automatic,
    Flash,
    ForceOff,
    Hold,
    LoadSite,
    Omit,
    PlaceCall,
    Preempt,
    Recover,
    SetMode,
    SetPlan,
    TransitRequest,
    UseMax2,
)
from edge.control.site import Site
from edge.control.states import (
    CONTROL_MODES,
    COORDINATED,
    FAULT,
    FLASH,
    GREEN,
    STARTUP_ALL_RED,
)

if TYPE_CHECKING:
    from edge.control.controller import Controller


def apply_all(ctl: Controller, now: int, commands: tuple[object, ...]) -> None:
    """Apply this step's commands in order; each is echoed or rejected as an event."""
    for cmd in commands:
        err = apply(ctl, now, cmd)
        if err:
            ctl._event(now, "command_rejected", type(cmd).__name__, err)
        else:
            ctl._event(now, "command_applied", type(cmd).__name__, repr(cmd))
        ctl._dirty = True


def apply(ctl: Controller, now: int, cmd: object) -> str | None:
    """Apply one command; return why it was rejected, or None."""
    for flag in ("on", "ped"):
        value = getattr(cmd, flag, False)
        if not isinstance(value, bool):
            return f"{flag} must be true or false, not {value!r}"
    for kind, handler in _HANDLERS:
        if isinstance(cmd, kind):
            return handler(ctl, now, cmd)
    return f"not a command: {cmd!r}"


def _phase_arg(ctl: Controller, phase: object) -> int | None:
    if isinstance(phase, int) and not isinstance(phase, bool) and phase in ctl.index:
        return ctl.index[phase]
    return None


def _hold(ctl: Controller, now: int, cmd: Hold) -> str | None:
    if cmd.phases is None:
        ctl.hold = [False] * len(ctl.hold)
        return None
    if not isinstance(cmd.phases, tuple):
        return f"phases must be a tuple of phase ids, not {cmd.phases!r}"
    idx = [_phase_arg(ctl, p) for p in cmd.phases]
    if None in idx:
        return f"unknown phase in {cmd.phases!r}"
    for i in idx:
        assert i is not None
        ctl.hold[i] = True
    return None


def _phase_command(ctl: Controller, now: int, cmd: ForceOff | PlaceCall | Omit) -> str | None:
    i = _phase_arg(ctl, cmd.phase)
    if i is None:
        return f"unknown phase {cmd.phase!r}"
    if isinstance(cmd, ForceOff):
        if ctl.intervals.iv[i] != GREEN:
            return f"phase {cmd.phase} is not green"
        ctl.force_off[i] = True
    elif isinstance(cmd, PlaceCall):
        if cmd.ped and not ctl.has_ped[i]:
            return f"phase {cmd.phase} has no pedestrian signal"
        if cmd.ped:
            ctl.peds.call[i] = True
        else:
            ctl.timers.vcall[i] = True
    else:
        ctl.omit[i] = cmd.on
    return None


def _all_red(ctl: Controller, now: int, cmd: AllRed) -> str | None:
    ctl.modes.all_red_req = cmd.on
    return None


def _flash(ctl: Controller, now: int, cmd: Flash) -> str | None:
    if cmd.on:
        ctl.modes.flash_req = True
    elif ctl.modes.mode == FLASH:
        ctl.modes.flash_req = False
        ctl.modes.start(ctl, now, STARTUP_ALL_RED, ctl.site.startup_all_red_ms)
    else:
        ctl.modes.flash_req = False
    return None


def _recover(ctl: Controller, now: int, cmd: Recover) -> str | None:
    if ctl.modes.mode != FAULT:
        return "not in fault flash"
    ctl.modes.fault = None
    ctl.monitor.reset(now)
    ctl.modes.start(ctl, now, STARTUP_ALL_RED, ctl.site.startup_all_red_ms)
    ctl._event(now, "fault_recovered", "", "restarting through all red")
    return None


def _automatic(ctl: Controller, now: int, cmd: Automatic) -> str | None:
    ctl.hold = [False] * len(ctl.hold)
    ctl.omit = [False] * len(ctl.omit)
    ctl.modes.all_red_req = False
    if ctl.modes.flash_req or ctl.modes.mode == FLASH:
        ctl.modes.flash_req = False
        if ctl.modes.mode == FLASH:
            ctl.modes.start(ctl, now, STARTUP_ALL_RED, ctl.site.startup_all_red_ms)
    return None


def _load_site(ctl: Controller, now: int, cmd: LoadSite) -> str | None:
    if not isinstance(cmd.site, Site):
        return "site is not a Site"
    why = same_intersection(ctl.site, cmd.site)
    if why:
        return why
    if not isinstance(cmd.plan, str) or cmd.plan not in cmd.site.plans:
        return f"unknown plan {cmd.plan!r}"
    ctl.pending_site = cmd.site
    ctl.pending_plan = cmd.plan
    ctl._event(now, "plan_pending", cmd.plan, "new timing")
    return None


def _set_plan(ctl: Controller, now: int, cmd: SetPlan) -> str | None:
    # A plan of the timing that runs next: new timing still waiting for its safe
    # point stays pending (a schedule's plan change must not drop central's timing).
    plans = (ctl.pending_site or ctl.site).plans
    if not isinstance(cmd.plan, str) or cmd.plan not in plans:
        return f"unknown plan {cmd.plan!r}"
    ctl.pending_plan = cmd.plan
    ctl._event(now, "plan_pending", cmd.plan)
    return None


def _preempt(ctl: Controller, now: int, cmd: Preempt) -> str | None:
    k = ctl.preempt.index.get(cmd.preempt) if isinstance(cmd.preempt, int) else None
    if k is None:
        return f"unknown preempt {cmd.preempt!r}"
    if cmd.on and (
        ctl.modes.mode in (FLASH, FAULT) or ctl.modes.flash_req or ctl.modes.all_red_req
    ):
        return "the intersection is held in flash or all red"
    ctl.preempt.request(ctl, now, k, cmd.on, f"preempt {cmd.preempt}")
    return None


def _set_mode(ctl: Controller, now: int, cmd: SetMode) -> str | None:
    if cmd.mode not in (*CONTROL_MODES, "plan"):
        return f"unknown mode {cmd.mode!r} (free, coordinated, adaptive, plan)"
    if not isinstance(cmd.source, str) or not cmd.source:
        return f"source must name who sets the mode, not {cmd.source!r}"
    if cmd.mode == COORDINATED and ctl.plan.pattern is None:
        return f"plan {ctl.plan.id} has no coordination pattern"
    ctl.mode_override = None if cmd.mode == "plan" else (cmd.mode, cmd.source)
    ctl._resolve_control(now)
    ctl._event(now, "mode_coordination", ctl.control, ctl.control_reason)
    return None


def _use_max2(ctl: Controller, now: int, cmd: UseMax2) -> str | None:
    ctl.timers.use_max2 = cmd.on
    return None


def _transit(ctl: Controller, now: int, cmd: TransitRequest) -> str | None:
    return transit.request(ctl, now, cmd)


# In the order the checks ran when this was one chain of isinstance tests.
_HANDLERS: tuple[tuple[type, Callable[[Controller, int, Any], str | None]], ...] = (
    (Hold, _hold),
    (ForceOff, _phase_command),
    (PlaceCall, _phase_command),
    (Omit, _phase_command),
    (AllRed, _all_red),
    (Flash, _flash),
    (Recover, _recover),
    (Automatic, _automatic),
    (LoadSite, _load_site),
    (SetPlan, _set_plan),
    (Preempt, _preempt),
    (TransitRequest, _transit),
    (SetMode, _set_mode),
    (UseMax2, _use_max2),
)


def same_intersection(old: Site, new: Site) -> str | None:
    """Why `new` is not the same intersection with other timing, or None."""
    for name in ("approaches", "phases", "channels", "conflicts", "preempts", "safety"):
        if getattr(old, name) != getattr(new, name):
            return f"new timing changes the intersection's {name}"
    # An overlap's clearance times follow its parents' plans; the rest is wiring.
    shape = [(o.id, o.parents, o.permissive_parents, o.movements, o.flash) for o in old.overlaps]
    if shape != [
        (o.id, o.parents, o.permissive_parents, o.movements, o.flash) for o in new.overlaps
    ]:
        return "new timing changes the intersection's overlaps"
    wiring = [(d.id, d.input, d.ped, d.calls, d.extends) for d in old.detectors]
    if wiring != [(d.id, d.input, d.ped, d.calls, d.extends) for d in new.detectors]:
        return "new timing changes the detector wiring"
    return None
