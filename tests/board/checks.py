"""An independent checker of a board's lamp trace: was every display legal, and did every
interval last the core's minimum for it?

Written from hw/PROTOCOL.md and the site's plans, not from hw/board_safety.py or the
guard, and used on the virtual board's trace and the fake link's alike: a trace is a
list of (t_ms, state, fault, lamps) at every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge.board.config import BoardConfig
from edge.board.guard import BAD, CHANGE, GO, STOP, TOLERANCE_MS, category
from edge.control.site import SignalKind, Site

from hw import codec

SLACK_MS = 50  # the board's TIMING_SLACK_MS: intervals it accepts this much short

_FLASH_CODES = (codec.FLASH_RED, codec.FLASH_YELLOW, codec.DARK)

Change = tuple[float, int, int, Sequence[int]]


def check_trace(cfg: BoardConfig, trace: Iterable[Change]) -> list[str]:
    """Problems found in the trace (empty when every display was legal)."""
    problems: list[str] = []
    n = cfg.channels
    conflicts = [[j for j in range(n) if cfg.conflicts[i] >> j & 1] for i in range(n)]
    flash_map = [_FLASH_CODES[c] for c in cfg.flash]
    cat = [STOP] * n
    since = [0.0] * n
    prev_state: int | None = None
    for t, state, _fault, lamps in trace:
        if state == codec.STATE_FLASH:
            if lamps and list(lamps) != flash_map:
                problems.append(f"{t:.0f} ms: flash shows {list(lamps)}, not {flash_map}")
            prev_state = state
            continue
        if len(lamps) != n:
            problems.append(f"{t:.0f} ms: {len(lamps)} channels driven, configured {n}")
            continue
        if state == codec.STATE_ALL_RED:
            if any(c != codec.RED for c in lamps):
                problems.append(f"{t:.0f} ms: all-red shows {list(lamps)}")
            if prev_state != codec.STATE_ALL_RED:
                cat = [STOP] * n
                since = [t] * n
            prev_state = state
            continue
        if prev_state == codec.STATE_FLASH:
            problems.append(f"{t:.0f} ms: RUNNING straight from FLASH, no all-red")
        prev_state = state
        new = [category(cfg.kinds[i], lamps[i]) for i in range(n)]
        for i in range(n):
            if new[i] == BAD:
                problems.append(f"{t:.0f} ms: channel {i} shows code {lamps[i]}")
            if new[i] != STOP:
                for j in conflicts[i]:
                    if j > i and new[j] != STOP:
                        problems.append(f"{t:.0f} ms: conflicting channels {i} and {j} open")
        for i in range(n):
            old, k = cat[i], new[i]
            if old == k:
                continue
            if old == GO and k == STOP:
                problems.append(f"{t:.0f} ms: channel {i} GO -> STOP without change interval")
            elif (old == CHANGE and k == GO) or (old == STOP and k == CHANGE):
                problems.append(f"{t:.0f} ms: channel {i} bad sequence {old} -> {k}")
            elif old == CHANGE and t - since[i] < cfg.min_yellow_ms[i] - SLACK_MS:
                problems.append(
                    f"{t:.0f} ms: channel {i} change interval {t - since[i]:.0f} ms "
                    f"< {cfg.min_yellow_ms[i]} ms"
                )
            elif k == GO:
                for j in conflicts[i]:
                    if t - since[j] < cfg.min_red_ms[j] - SLACK_MS:
                        problems.append(
                            f"{t:.0f} ms: channel {i} goes {t - since[j]:.0f} ms after "
                            f"conflicting channel {j} stopped (< {cfg.min_red_ms[j]} ms)"
                        )
        for i in range(n):
            if new[i] != cat[i]:
                cat[i] = new[i]
                since[i] = t
    return problems


def watchdog_flashes(
    trace: Iterable[Change], arrivals: Sequence[float], watchdog_ms: int
) -> list[tuple[float, float]]:
    """(flash time, quiet ms before it) of every FAULT_WATCHDOG flash, from OUTPUTS arrivals."""
    out: list[tuple[float, float]] = []
    prev_state: int | None = None
    for t, state, fault, _lamps in trace:
        entered = state == codec.STATE_FLASH and prev_state != codec.STATE_FLASH
        if entered and fault == codec.FAULT_WATCHDOG:
            # A frame arriving at the deadline is too late (it triggers the flash).
            before = [a for a in arrivals if a < t]
            quiet = t - before[-1] if before else float("inf")
            out.append((t, quiet))
        prev_state = state
    return out


@dataclass(frozen=True, slots=True)
class Minimums:
    """Per channel: the shortest GO (green, walk), change interval (yellow, pedestrian
    clearance) and red clearance before a conflicting GO that the lamps may show; 0: not
    checked."""

    go_ms: tuple[int, ...]
    change_ms: tuple[int, ...]
    red_ms: tuple[int, ...]


def plan_minimums(site: Site, *plans: str) -> Minimums:
    """The core's minimums for each channel under the given plans (the smallest of them),
    from the Site (a plan's own values, the site's floors where higher)."""
    safety = site.safety
    overlaps = {o.id: o for o in site.overlaps}
    go: list[int] = []
    change: list[int] = []
    red: list[int] = []
    for ch in site.channels:
        if ch.kind is SignalKind.OVERLAP:
            ov = overlaps[str(ch.source)]
            go.append(0)  # an overlap's green follows its parents
            change.append(ov.yellow_ms)
            red.append(ov.red_clear_ms)
            continue
        timings = [site.plans[p].timings[int(ch.source)] for p in plans]
        red.append(min(max(t.red_clear_ms, safety.min_red_clear_ms) for t in timings))
        if ch.kind is SignalKind.PED:
            go.append(min(t.walk_ms for t in timings))
            change.append(min(t.ped_clear_ms for t in timings))
        else:
            go.append(min(max(t.min_green_ms, safety.min_green_ms) for t in timings))
            change.append(min(max(t.yellow_ms, safety.min_yellow_ms) for t in timings))
    return Minimums(tuple(go), tuple(change), tuple(red))


def check_lamp_minimums(
    cfg: BoardConfig, trace: Iterable[Change], mins: Minimums, from_ms: float = 0
) -> list[str]:
    """Intervals the lamps showed shorter than `mins` (within the guard's TOLERANCE_MS).

    Measured on the board's lamps while RUNNING, for intervals that start at or after
    from_ms and end while RUNNING (flash ends any interval, safely). The red clearance
    of channel j is from its lamp's change to STOP to the GO of a conflicting channel;
    a red that began with the board's start-up all-red is the start-up's, not checked.
    """
    problems: list[str] = []
    n = cfg.channels
    conflicts = [[j for j in range(n) if cfg.conflicts[i] >> j & 1] for i in range(n)]
    names = ("STOP", "GO", "CHANGE")
    cat: list[int | None] = [None] * n
    since = [0.0] * n
    from_all_red = [True] * n
    prev_state: int | None = None
    for t, state, _fault, lamps in trace:
        if state == codec.STATE_ALL_RED and prev_state != codec.STATE_ALL_RED:
            cat, since, from_all_red = [STOP] * n, [t] * n, [True] * n
        prev_state = state
        if state != codec.STATE_RUNNING:
            if state == codec.STATE_FLASH:
                cat = [None] * n
            continue
        new = [category(cfg.kinds[i], lamps[i]) for i in range(n)]
        for i in range(n):
            old = cat[i]
            if old is None or old == new[i]:
                continue
            lasted = t - since[i]
            need = {GO: mins.go_ms[i], CHANGE: mins.change_ms[i]}.get(old, 0)
            if since[i] >= from_ms and lasted + TOLERANCE_MS < need:
                problems.append(
                    f"{t:.0f} ms: channel {i} {names[old]} lasted {lasted:.0f} ms < {need} ms"
                )
            if new[i] == GO:
                for j in conflicts[i]:
                    gap = t - since[j]
                    if cat[j] != STOP or from_all_red[j] or since[j] < from_ms:
                        continue
                    if gap + TOLERANCE_MS < mins.red_ms[j]:
                        problems.append(
                            f"{t:.0f} ms: channel {i} GO {gap:.0f} ms after channel {j} "
                            f"stopped < {mins.red_ms[j]} ms"
                        )
        for i in range(n):
            if new[i] != cat[i]:
                if cat[i] is not None:
                    from_all_red[i] = False
                cat[i] = new[i]
                since[i] = t
    return problems
