"""The IO board's CONFIG derived from a Site: conflict masks, minimum times, flash colours, kinds.

The board holds its own copy of the intersection's safety rules (DESIGN.md,
third layer). Everything here is derived once, at start, from the validated
Site, and from the parts of it that new timing (LoadSite, a plan bundle from
central) cannot change, so the CONFIG the board got at boot fits every timing
the core may later run and never has to be re-sent:

- conflict masks per indication (a TS-2 MMU's channel compatibility and its
  flashing-yellow-arrow programming): the steady mask of channel i has bit j
  set when the signal groups that drive channels i and j conflict in
  `site.conflicts`; a flashing-yellow-arrow head's steady mask (its green
  arrow, and the yellow after it) adds everything its protected parent phases
  conflict with, since the site's table counts the head as yielding; its
  flashing-yellow mask is the head's own row. Masks are made symmetric. Two
  channels of one source (two load switches wired to the same phase, say)
  never conflict.
- pair intergreens, per indication (_pairs): each `site.intergreens[(leaving,
  entering)]` for every pair of channels the two signal groups drive, on any
  GO of the channel; and a phase shown only as the green arrow of a
  flashing-yellow-arrow head (a derived site's protected left) on that head's
  steady indication, never on its flashing arrow, which the core starts and
  ends on its own pairs. A head with several protected parents takes the
  shortest of their intergreens, and none where one parent lists none: the
  board never waits longer than the core.
- min_yellow_ms: the site's safety floor of that channel's change interval,
  which edge.config holds every plan, overlap and preempt to: a vehicle
  yellow of max(site minimum, 3.0 s), a pedestrian clearance of 3.0 s.
- min_red_ms: the site's minimum red clearance.
- flash colour and kind per channel; watchdog 500 ms.

The plans' own (longer) times are kept on the lamps by the host's output
guard (edge/board/guard.py), which follows the timing in force.

A site the board cannot serve (more than 32 channels, a detector on an input
the board does not have, a time below the board's floors, a plan, overlap
or preempt timing a channel below the CONFIG's minimums) raises
BoardConfigError naming the channel, detector or plan at fault. The central
link checks new timing the same way before it stores it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.control.site import (
    ABSOLUTE_MIN_YELLOW_MS,
    MIN_PED_CLEAR_MS,
    FlashColour,
    SignalKey,
    SignalKind,
    Site,
)
from hw import board_safety, codec

WATCHDOG_MS = 500
BOARD_INPUTS = 16  # opto inputs 1..16 on the reference board (wire bits 0..15)

_FLASH_CODE = {
    FlashColour.RED: codec.FLASH_COLOUR_RED,
    FlashColour.YELLOW: codec.FLASH_COLOUR_YELLOW,
    FlashColour.DARK: codec.FLASH_COLOUR_DARK,
}


class BoardConfigError(ValueError):
    """The site cannot be put on the board; `problems` names each channel or detector."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class BoardConfig:
    """The board's view of one site, plus the wire payload and its hash."""

    conflicts: tuple[int, ...]  # steady-indication bitmask per channel
    min_yellow_ms: tuple[int, ...]
    min_red_ms: tuple[int, ...]
    flash: tuple[int, ...]  # codec.FLASH_COLOUR_*
    kinds: tuple[int, ...]  # codec.KIND_*
    watchdog_ms: int
    labels: tuple[str, ...]  # "ch1 phase 2" etc., for messages
    fya_conflicts: tuple[int, ...] = ()  # flashing-yellow-arrow bitmask; () = the steady ones
    # (leaving ch, its indication, entering ch, its indication, ms); codec.IG_*
    intergreens: tuple[tuple[int, int, int, int, int], ...] = ()

    @property
    def channels(self) -> int:
        return len(self.conflicts)

    @property
    def payload(self) -> bytes:
        """The canonical CONFIG payload (hw/PROTOCOL.md section 4)."""
        data: bytes = codec.config_payload(
            list(self.conflicts),
            list(self.min_yellow_ms),
            list(self.min_red_ms),
            list(self.flash),
            list(self.kinds),
            self.watchdog_ms,
            list(self.fya_conflicts) if self.fya_conflicts else None,
            list(self.intergreens),
        )
        return data

    @property
    def config_hash(self) -> int:
        """CRC-32 of the payload: what CONFIG_ACK and HELLO_REPLY must report."""
        value: int = codec.config_hash(self.payload)
        return value

    @property
    def max_red_ms(self) -> int:
        """The board's start-up all-red after RECOVER."""
        return max(self.min_red_ms)


def _key(kind: SignalKind, source: int | str) -> SignalKey:
    return (kind, source)


def _unhonoured(
    site: Site, labels: list[str], min_yellow: list[int], min_red: list[int]
) -> list[str]:
    """Each time of the site's plans, overlaps and preempts below the CONFIG's minimums:
    the board would flash the intersection when the core timed it."""
    problems: list[str] = []
    overlaps = {o.id: o for o in site.overlaps}

    def check(i: int, what: str, change: int, red: int | None) -> None:
        if change < min_yellow[i]:
            problems.append(
                f"{what}: {labels[i]}: change interval {change} ms is below the IO board's "
                f"minimum {min_yellow[i]} ms"
            )
        if red is not None and red < min_red[i]:
            problems.append(
                f"{what}: {labels[i]}: red clearance {red} ms is below the IO board's "
                f"minimum {min_red[i]} ms"
            )

    for i, ch in enumerate(site.channels):
        if ch.kind is SignalKind.OVERLAP:
            ov = overlaps[str(ch.source)]
            check(i, f"overlap {ov.id}", ov.yellow_ms, ov.red_clear_ms)
            continue
        pid = int(ch.source)
        for plan in site.plans.values():
            t = plan.timings.get(pid)
            if t is not None:
                ped = ch.kind is SignalKind.PED
                check(i, f"plan {plan.id}", t.ped_clear_ms if ped else t.yellow_ms, t.red_clear_ms)
        if ch.kind is SignalKind.PED:  # preemption entry may cut a clearance to its own
            for p in site.preempts:
                check(i, f"preempt {p.id}", p.ped_clear_ms, None)
    return problems


def board_config(site: Site, watchdog_ms: int = WATCHDOG_MS) -> BoardConfig:
    """The CONFIG for `site`'s channels, in site.channels order (channel i = bit i)."""
    problems: list[str] = []
    chans = site.channels
    if not chans:
        problems.append("site has no channels: nothing for the board to drive")
    if len(chans) > codec.MAX_CHANNELS:
        problems.append(f"site has {len(chans)} channels; the board drives at most 32")
    for d in site.detectors:
        if not 1 <= d.input <= BOARD_INPUTS:
            problems.append(
                f"detector {d.id}: input {d.input} does not exist on the board (1..{BOARD_INPUTS})"
            )
    for p in site.preempts:
        if p.input is not None and not 1 <= p.input <= BOARD_INPUTS:
            problems.append(
                f"preempt {p.id}: input {p.input} does not exist on the board (1..{BOARD_INPUTS})"
            )
    if problems:
        raise BoardConfigError(problems)

    keys = [_key(ch.kind, ch.source) for ch in chans]
    conflicts, fya_conflicts = _masks(site, keys)
    for (a, b), ms in sorted(site.intergreens.items(), key=str):
        if not 0 <= ms <= 0xFFFF:
            problems.append(
                f"intergreen {a[0].value} {a[1]} -> {b[0].value} {b[1]}: {ms} ms does "
                "not fit the CONFIG (0..65535)"
            )
    intergreens = _pairs(site, keys) if not problems else []
    if len(intergreens) > codec.MAX_INTERGREENS:
        problems.append(
            f"the site's {len(site.intergreens)} pair intergreens make {len(intergreens)} "
            f"on the board's channels and indications; the board holds at most "
            f"{codec.MAX_INTERGREENS} (list fewer pairs, or drive fewer channels)"
        )

    floor_yellow = max(site.safety.min_yellow_ms, ABSOLUTE_MIN_YELLOW_MS)
    red = site.safety.min_red_clear_ms
    min_yellow: list[int] = []
    min_red: list[int] = []
    labels: list[str] = []
    for ch in chans:
        label = f"channel {ch.id} ({ch.kind.value} {ch.source})"
        labels.append(label)
        yellow = MIN_PED_CLEAR_MS if ch.kind is SignalKind.PED else floor_yellow
        # The board refuses a CONFIG below its own floors; say which channel.
        board_floor = (
            board_safety.MIN_CLEAR_FLOOR_MS
            if ch.kind is SignalKind.PED
            else board_safety.MIN_YELLOW_FLOOR_MS
        )
        if yellow < board_floor:
            problems.append(
                f"{label}: change interval {yellow} ms is below the board's floor {board_floor} ms"
            )
        if red < board_safety.MIN_CLEAR_FLOOR_MS:
            problems.append(
                f"{label}: red clearance {red} ms is below the board's floor "
                f"{board_safety.MIN_CLEAR_FLOOR_MS} ms"
            )
        if yellow > 0xFFFF or red > 0xFFFF:
            problems.append(f"{label}: times above 65535 ms do not fit the CONFIG")
        if ch.kind is SignalKind.PED and ch.flash is FlashColour.YELLOW:
            problems.append(f"{label}: a pedestrian head cannot flash yellow")
        min_yellow.append(yellow)
        min_red.append(red)
    if not codec.WATCHDOG_MIN_MS <= watchdog_ms <= codec.WATCHDOG_MAX_MS:
        problems.append(f"watchdog {watchdog_ms} ms outside 100..1000 ms")
    if not problems:
        problems = _unhonoured(site, labels, min_yellow, min_red)
    if problems:
        raise BoardConfigError(problems)
    return BoardConfig(
        conflicts=tuple(conflicts),
        min_yellow_ms=tuple(min_yellow),
        min_red_ms=tuple(min_red),
        flash=tuple(_FLASH_CODE[ch.flash] for ch in chans),
        kinds=tuple(
            codec.KIND_PED if ch.kind is SignalKind.PED else codec.KIND_VEHICLE for ch in chans
        ),
        watchdog_ms=watchdog_ms,
        labels=tuple(labels),
        fya_conflicts=tuple(fya_conflicts),
        intergreens=tuple(intergreens),
    )


def _masks(site: Site, keys: list[SignalKey]) -> tuple[list[int], list[int]]:
    """Steady and flashing-yellow-arrow conflict masks per channel (module comment)."""

    def conflict(a: SignalKey, b: SignalKey) -> bool:
        return a != b and ((a, b) in site.conflicts or (b, a) in site.conflicts)

    arrows = {
        o.id: [_key(SignalKind.PHASE, p) for p in o.parents]
        for o in site.overlaps
        if o.permissive_parents
    }
    n = len(keys)
    steady = [0] * n
    fya = [0] * n
    for i, a in enumerate(keys):
        parents = arrows.get(str(a[1])) if a[0] is SignalKind.OVERLAP else None
        for j, b in enumerate(keys):
            if i == j or a == b:
                continue
            if conflict(a, b):
                steady[i] |= 1 << j
                fya[i] |= 1 << j
            elif parents and any(conflict(p, b) for p in parents):
                steady[i] |= 1 << j  # the green arrow is its parent's protected left
    for i in range(n):
        for j in range(n):
            if steady[i] >> j & 1:
                steady[j] |= 1 << i
    # A flashing yellow arrow is shown only on vehicle heads; elsewhere one mask.
    fya = [fya[i] if keys[i][0] is SignalKind.OVERLAP and str(keys[i][1]) in arrows
           else steady[i] for i in range(n)]  # fmt: skip
    return steady, fya


def _pairs(site: Site, keys: list[SignalKey]) -> list[tuple[int, int, int, int, int]]:
    """The CONFIG's intergreens (module comment), sorted; pairs of 0 ms add nothing to
    the conflict masks and are left out, as are those another pair implies."""
    # What shows each signal group: (channel, indication, the groups the shown
    # indication stands for). A group's own channel shows it on any GO; a green arrow
    # stands for every protected parent of its flashing-yellow-arrow head.
    shows: dict[SignalKey, list[tuple[int, int, tuple[SignalKey, ...]]]] = {}
    arrows = {o.id: o.parents for o in site.overlaps if o.permissive_parents}
    for i, key in enumerate(keys):
        shows.setdefault(key, []).append((i, codec.IG_ANY, (key,)))
        parents = arrows.get(str(key[1])) if key[0] is SignalKind.OVERLAP else None
        if parents:
            stands = tuple(_key(SignalKind.PHASE, p) for p in parents)
            for p in stands:
                if p not in keys:  # a parent with a channel of its own is paired there
                    shows.setdefault(p, []).append((i, codec.IG_STEADY, stands))
    out: dict[tuple[int, int, int, int], int] = {}
    for a, b in site.intergreens:
        for i, ia, leaving in shows.get(a, ()):
            for j, jb, entering in shows.get(b, ()):
                if i == j:
                    continue
                # The shortest over what each side stands for; none if one lists none.
                owed = [site.intergreens.get((x, y), 0) for x in leaving for y in entering]
                ms = min(owed)
                if ms > 0:
                    out[(i, ia, j, jb)] = ms
    # A green arrow's end is never later than its head's last GO end: a pair leaving
    # the arrow is implied by the same pair leaving any GO, when that one is as long.
    return [
        (i, ia, j, jb, ms)
        for (i, ia, j, jb), ms in sorted(out.items())
        if not (ia == codec.IG_STEADY and out.get((i, codec.IG_ANY, j, jb), 0) >= ms)
    ]
