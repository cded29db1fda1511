"""An independent checker of a board's lamp trace: was every display legal?

Written from hw/PROTOCOL.md, not from hw/board_safety.py, and used on the
virtual board's trace and the fake link's alike: a trace is a list of
(t_ms, state, fault, lamps) at every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from edge.board.config import BoardConfig
from edge.board.guard import BAD, CHANGE, GO, STOP, category

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
