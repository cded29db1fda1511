"""What the NTCIP agent reads of the control core: the one adapter (keep reads here).

The rules it keeps:
- It reads only the tick's read-only record (edge/tickhooks.py `Tick`: the outputs, the
  intervals, calls, presence, pedestrian calls, next phases, plan, cycle position) and
  the frozen site: never the live controller, so it runs in the tick hook's thread.
- `Status` is immutable; the agent swaps in a new one per tick (a plain assignment).
- Numbers are NTCIP's: a phase or preempt is its site id (1..255); an overlap, a
  vehicle detector (push buttons are not) and a pattern are their place in the site
  file, from 1 (derived sites name detectors, not number them).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.control.messages import Lamp
from edge.control.site import Site
from edge.control.states import FAULT, FLASH, RED, STARTUP_FLASH
from edge.tickhooks import Tick

RED_LAMPS = frozenset({Lamp.RED, Lamp.FLASH_RED})
YELLOW_LAMPS = frozenset({Lamp.YELLOW, Lamp.FLASH_YELLOW})
FLASH_MODES = frozenset({FLASH, FAULT, STARTUP_FLASH})


@dataclass(frozen=True, slots=True)
class Status:
    """One tick of the intersection, as sets of ids (phases, overlaps, detectors)."""

    reds: frozenset[int] = frozenset()
    yellows: frozenset[int] = frozenset()
    greens: frozenset[int] = frozenset()
    dont_walks: frozenset[int] = frozenset()
    ped_clears: frozenset[int] = frozenset()
    walks: frozenset[int] = frozenset()
    veh_calls: frozenset[int] = frozenset()
    ped_calls: frozenset[int] = frozenset()
    ons: frozenset[int] = frozenset()  # phases timing (green, yellow or red clearance)
    nexts: frozenset[int] = frozenset()
    ov_reds: frozenset[int] = frozenset()
    ov_yellows: frozenset[int] = frozenset()
    ov_greens: frozenset[int] = frozenset()
    det_active: frozenset[int] = frozenset()
    det_alarms: frozenset[int] = frozenset()
    mode: str = STARTUP_FLASH
    control: str = ""
    control_reason: str = ""
    plan: str = ""
    cycle_ms: int | None = None


def plan_numbers(site: Site) -> dict[str, int]:
    """NTCIP pattern number of each plan: its place in the site file, from 1."""
    return {name: n for n, name in enumerate(site.plans, start=1)}


def vehicle_detectors(site: Site) -> dict[object, int]:
    """Each vehicle detector's NTCIP number, by its site id."""
    return {d.id: n for n, d in enumerate((d for d in site.detectors if not d.ped), start=1)}


def status_of(tick: Tick, site: Site) -> Status:
    """The tick's record as the agent serves it."""
    out = tick.outputs
    ids = [p.id for p in site.phases]
    if out is None:
        return Status(plan=tick.plan)

    def where(lamps: tuple[Lamp, ...], keys: list[int], want: frozenset[Lamp]) -> frozenset[int]:
        return frozenset(k for k, lamp in zip(keys, lamps, strict=False) if lamp in want)

    has_ped = [p.ped_crossing is not None for p in site.phases]
    peds = tuple(lamp if ped else Lamp.DARK for lamp, ped in zip(out.peds, has_ped, strict=False))
    ov_ids = list(range(1, len(site.overlaps) + 1))
    dets = vehicle_detectors(site)
    return Status(
        reds=where(out.phases, ids, RED_LAMPS),
        yellows=where(out.phases, ids, YELLOW_LAMPS),
        greens=where(out.phases, ids, frozenset({Lamp.GREEN})),
        dont_walks=where(peds, ids, frozenset({Lamp.RED})),
        ped_clears=where(peds, ids, frozenset({Lamp.FLASH_RED})),
        walks=where(peds, ids, frozenset({Lamp.GREEN})),
        veh_calls=frozenset(i for i, c in zip(ids, tick.calls, strict=False) if c),
        ped_calls=frozenset(i for i, c in zip(ids, tick.ped_calls, strict=False) if c),
        ons=frozenset(i for i, v in zip(ids, tick.intervals, strict=False) if v != RED),
        nexts=frozenset(ids[k] for k in tick.nexts if 0 <= k < len(ids)),
        ov_reds=where(out.overlaps, ov_ids, RED_LAMPS),
        ov_yellows=where(out.overlaps, ov_ids, YELLOW_LAMPS),
        ov_greens=where(out.overlaps, ov_ids, frozenset({Lamp.GREEN})),
        det_active=frozenset(
            dets[d.id]
            for d, on in zip(site.detectors, tick.present, strict=False)
            if on and d.id in dets
        ),
        det_alarms=frozenset(dets[d] for d in out.detector_faults if d in dets),
        mode=out.mode,
        control=out.control,
        control_reason=out.control_reason,
        plan=tick.plan,
        cycle_ms=tick.cycle_ms,
    )
