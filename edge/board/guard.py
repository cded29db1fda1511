"""Shapes each output map so that the lamps keep the board's rules and the core's minimums,
even when frames are lost: sans-IO.

The board times every interval between the arrivals of the frames that start
and end it (hw/PROTOCOL.md section 7). On a clean link that is the
controller's own timing. On a lossy link it is not: if the frame that starts
a yellow is lost, the board's yellow starts a tick late, and a controller
yellow of exactly the minimum would end "short" on the board, which then goes
to flash for a fault the controller never made. The guard prevents that
without trusting itself for safety (the board still checks everything).

A held interval pushes the next ones later, and a later start must not make
what follows shorter: the lamps never show a green, walk, change interval or
red clearance shorter than the core timed it, or, where the core timed it
longer than any minimum it has for it, shorter than that minimum (the guard
may end such a long green on time and so catch up). The guard only ever
lengthens an interval or starts one later; it never cuts one short. The
minimums come from the site in force (core_minimums, set by the driver
whenever the controller takes new timing); a channel's GO and the red
clearance after it keep the larger of those in force when the controller
started that GO and those in force now.

- Per channel it keeps the category the board has confirmed driving (from
  STATUS lamps) and an upper bound of when it started: the send time of the
  OUTPUTS whose STATUS first showed it (the board switched on that frame's
  arrival or an earlier one). It also keeps when the controller's own
  category last changed and how long its last GO and CHANGE lasted.
- A category change is sent only from a confirmed category, and then kept
  until STATUS confirms it: at most one transition is in flight per channel,
  so the board is always in the old or the new category, both known.
- GO -> CHANGE (or to STOP, through CHANGE) only after the confirmed GO has
  lasted min(the controller's GO, go_ms): a green or walk that started late
  ends late.
- CHANGE -> STOP only after the confirmed change interval has lasted the
  longer of the channel's min_yellow_ms (the board's) and the controller's
  own change interval.
- STOP -> GO only while the board is RUNNING and every conflicting channel j
  is confirmed STOP, not in flight, for the longer of its min_red_ms (the
  board's) and min(how long the controller had j stopped when it started
  this GO, red_ms[j]); until then the channel stays red (a later green).
  The core's part is owed only by a j that has shown a GO or change interval
  since the guard began (sent, or confirmed by STATUS): as in the core
  (intergreens.py rule 4), the start-up all red covers a group that has shown
  nothing, so the board's min_red_ms alone holds it.
  Conflicts are per indication, as the board checks them: i starting a
  steady indication (green, walk) or a flashing yellow arrow and j showing,
  or last having shown, one conflict when each one's mask for it names the
  other (BoardConfig.conflicts, .fya_conflicts). j's indication is the
  steady one if any steady code was sent since j last left STOP, so the
  guard is never laxer than the board, whichever frames were lost. A
  flashing yellow arrow turning into a green arrow starts a steady
  indication: the same check, the arrow flashing on until it passes.
- STOP -> CHANGE (a green that was never shown ends) stays STOP, and the
  channel is listed in `skipped` for the driver, which calls the phase again
  so the core serves it rather than believe it did: only a lag longer than a
  whole green does that (a lag that grows with every lost frame is cut so);
  CHANGE -> GO finishes the change first.
- Outside RUNNING (the board's start-up all-red, flash) every channel is sent
  stopped, as the board requires.

On a clean link none of this changes a map: the controller's intervals are
at least the configured minimums and every STATUS confirms its frame within
milliseconds. Codes the kind does not have are passed through unchanged: the
board refuses them (FAULT_BAD_MAP), which is the right answer to a bug.
Times are the host's real send times. Two frames see about the same serial
latency, so the board measures about the interval between their sends; the
guard allows TOLERANCE_MS of the board's 50 ms timing slack for the host's
own wake-up jitter between two ticks (a few ms normally; a tick late by more
is held back a tick) and leaves the rest for the line and the board's loop.
The core's own times are compared the same way, so "never shorter" above holds
to within TOLERANCE_MS (a fifth of a tick): the send jitter of one frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge.board.config import BoardConfig
from edge.control.site import PhaseTiming, SignalKey, SignalKind, Site
from hw import codec

STOP, GO, CHANGE, BAD = 0, 1, 2, 3
TOLERANCE_MS = 20  # of the board's TIMING_SLACK_MS (50): host send jitter it absorbs
_LONG_AGO = -(1 << 40)  # the controller's categories before the first map: stopped "forever"
STEADY, FYA = 1, 2  # which conflict mask an indication uses (the board's `use`)

# Category of each state code 0..15 by channel kind (as hw/board_safety.py).
_CAT_VEHICLE = (STOP, STOP, CHANGE, GO, STOP, GO) + (BAD,) * 10
_CAT_PED = (STOP, STOP, BAD, GO, CHANGE, BAD) + (BAD,) * 10


def _use(code: int) -> int:
    """The conflict mask a GO or CHANGE code uses: the flashing yellow arrow's, or steady."""
    return FYA if code == codec.FLASH_YELLOW else STEADY


def category(kind: int, code: int) -> int:
    """STOP, GO, CHANGE or BAD for a state code on a channel of `kind` (codec.KIND_*)."""
    table = _CAT_PED if kind == codec.KIND_PED else _CAT_VEHICLE
    return table[code] if 0 <= code < len(table) else BAD


@dataclass(frozen=True, slots=True)
class CoreMinimums:
    """Per channel (site.channels order): the longest minimum the core times for a GO
    (min green with variable initial, walk, an overlap's parents' plus its trail) and
    for the red clearance after its change interval, over every plan of a site; the
    latter also covers the longest intergreen the channel's group leaves (less its
    shortest change interval), so that a conflicting GO held late is never shown
    sooner after the change than the core's intergreen allowed it. A flashing-yellow-
    arrow head's green arrow also leaves its protected parents' pairs: arrow_red_ms,
    held only after the head has shown a green arrow (before that, as for every
    channel, the start-up all red covers them, as in the core)."""

    go_ms: tuple[int, ...]
    red_ms: tuple[int, ...]
    arrow_red_ms: tuple[int, ...] = ()  # () = none


def core_minimums(site: Site) -> CoreMinimums:
    """The guard's minimums for `site`, from all its plans and overlaps."""
    floor = site.safety

    def over_plans(pid: int, value: Callable[[PhaseTiming], int]) -> int:
        return max(
            (value(p.timings[pid]) for p in site.plans.values() if pid in p.timings), default=0
        )

    def green(pid: int) -> int:  # min green, or the variable initial's longest
        return over_plans(
            pid,
            lambda t: max(
                t.min_green_ms, t.max_initial_ms if t.added_initial_ms else 0, floor.min_green_ms
            ),
        )

    def owed(key: SignalKey, change_ms: int) -> int:  # an intergreen's red after the change
        return max(
            (ms - change_ms for (a, _), ms in site.intergreens.items() if a == key), default=0
        )

    def shortest_yellow(pid: int) -> int:
        return min(
            (t.yellow_ms for p in site.plans.values() if (t := p.timings.get(pid)) is not None),
            default=0,
        )

    overlaps = {o.id: o for o in site.overlaps}
    go: list[int] = []
    red: list[int] = []
    arrow: list[int] = []
    for ch in site.channels:
        if ch.kind is SignalKind.OVERLAP:
            ov = overlaps[str(ch.source)]
            parents = (*ov.parents, *ov.permissive_parents)
            go.append(max((green(p) for p in parents), default=0) + ov.trail_green_ms)
            ig = owed((ch.kind, ov.id), ov.yellow_ms)
            red.append(max(ov.red_clear_ms, floor.min_red_clear_ms, ig))
            arrow.append(
                max(
                    (owed((SignalKind.PHASE, p), shortest_yellow(p)) for p in ov.parents), default=0
                )
                if ov.permissive_parents
                else 0
            )
            continue
        pid = int(ch.source)
        go.append(over_plans(pid, lambda t: t.walk_ms) if ch.kind is SignalKind.PED else green(pid))
        shortest = min(
            (
                t.ped_clear_ms if ch.kind is SignalKind.PED else t.yellow_ms
                for p in site.plans.values()
                if (t := p.timings.get(pid)) is not None
            ),
            default=0,
        )
        ig = owed((ch.kind, pid), shortest)
        red.append(max(over_plans(pid, lambda t: t.red_clear_ms), floor.min_red_clear_ms, ig))
        arrow.append(0)
    return CoreMinimums(tuple(go), tuple(red), tuple(arrow) if any(arrow) else ())


class OutputGuard:
    """Per-channel board-confirmed state; shape() turns a wanted map into a sendable one."""

    def __init__(self, config: BoardConfig, minimums: CoreMinimums | None = None) -> None:
        self.config = config
        self._n = n = config.channels
        self._tables = [_CAT_PED if k == codec.KIND_PED else _CAT_VEHICLE for k in config.kinds]
        # _cm[i][j]: bit 1 when j conflicts with i's steady indications, bit 2 with its
        # flashing yellow arrow (the board's conflict_matrix); _conflicts: either.
        fya = config.fya_conflicts or config.conflicts
        self._cm = [
            [(config.conflicts[i] >> j & 1) | (fya[i] >> j & 1) << 1 for j in range(n)]
            for i in range(n)
        ]
        self._conflicts = [
            tuple(j for j in range(n) if self._cm[i][j] or self._cm[j][i]) for i in range(n)
        ]
        # Per channel: the mask of what it shows or last showed (module comment).
        self.use = [STEADY] * n
        self._change_code = [
            codec.FLASH_RED if k == codec.KIND_PED else codec.YELLOW for k in config.kinds
        ]
        # Without a site's minimums: a GO is never shortened at all, a red clearance is
        # the board's.
        self.minimums = minimums if minimums is not None else CoreMinimums((1 << 40,) * n, (0,) * n)
        self._go_min = [0] * n  # per channel: minimums in force when its last GO began
        self._red_min = [0] * n
        self.running = False
        self.confirmed = [STOP] * n
        self.since_ms = [0] * n
        self.sent = [STOP] * n
        self.sent_code = [int(codec.RED)] * n
        # The controller's side: its category, since when, and its last GO and CHANGE.
        self.wanted = [STOP] * n
        self.wanted_since = [_LONG_AGO] * n
        self.steady_since = [_LONG_AGO] * n  # when the controller's steady GO began
        self.shown_steady = [False] * n  # a steady GO sent since the guard began
        # A GO or CHANGE sent or confirmed since the guard began: only such a channel
        # owes the core's red clearance (the start-up all red covers the others).
        self.shown = [False] * n
        # The controller's last STOP: when it began and ended (for a channel no longer
        # stopped that left STOP with or after a conflicting start).
        self.stopped_since = [_LONG_AGO] * n
        self.stop_left = [_LONG_AGO] * n
        self.last_go_ms = [0] * n
        self.last_change_ms = [0] * n
        self.held = 0  # channel-ticks sent differently from the wanted map while running
        self.skipped: list[int] = []  # channels whose controller GO the lamps never showed
        # The last wanted map, when shaping it again would send the same codes and change
        # nothing: the board not running (all sent stopped), or running with the map sent
        # as it is and every channel confirmed in the category sent (no category moves,
        # nothing timed). Cleared whenever the board's state, a confirmed category or the
        # minimums move. None: no such map.
        self._settled: tuple[int, ...] | None = None
        self._confirmed_lamps: Sequence[int] | None = None  # the last lamps confirm() took

    def _cat(self, i: int, code: int) -> int:
        return self._tables[i][code] if 0 <= code < 16 else BAD

    def set_minimums(self, minimums: CoreMinimums) -> None:
        """New timing in force (a GO begun before keeps the minimums it began with)."""
        self.minimums = minimums
        self._settled = None

    def board_recovered(self, since_ms: int) -> None:
        """The board entered its start-up all-red at or before since_ms: all channels stopped."""
        n = self.config.channels
        self._settled = self._confirmed_lamps = None
        self.running = False
        self.confirmed = [STOP] * n
        self.since_ms = [since_ms] * n
        self.sent = [STOP] * n
        self.sent_code = [int(codec.RED)] * n
        self.use = [STEADY] * n

    def board_running(self) -> None:
        self.running = True
        self._settled = None

    def board_stopped(self) -> None:
        """The board is in flash (or unknown): nothing but stopped codes until a recovery."""
        self.running = False
        self._settled = None

    def confirm(self, sent_ms: int, lamps: Sequence[int]) -> None:
        """STATUS lamps answering an OUTPUTS sent at sent_ms (board ALL_RED or RUNNING)."""
        if lamps == self._confirmed_lamps:
            return  # the categories these lamps confirm are confirmed already
        for i in range(min(len(lamps), self._n)):
            c = self._cat(i, lamps[i])
            if c != self.confirmed[i]:
                self.confirmed[i] = c
                self.shown[i] = self.shown[i] or c in (GO, CHANGE)
                self.since_ms[i] = sent_ms
                self._settled = None
        self._confirmed_lamps = lamps

    def in_flight(self) -> int:
        """Channels whose last sent category the board has not confirmed yet."""
        return sum(1 for s, c in zip(self.sent, self.confirmed, strict=True) if s != c)

    def _follow(self, now_ms: int, wanted: Sequence[int]) -> None:
        """Track the controller's categories and the length of its last GO and CHANGE."""
        for i, w in enumerate(wanted):
            cat = self._cat(i, int(w))
            old = self.wanted[i]
            if (
                cat == GO
                and _use(int(w)) == STEADY
                and (old != GO or self.steady_since[i] < self.wanted_since[i])
            ):
                self.steady_since[i] = now_ms  # a green from red, or a flashing arrow's
            if cat in (old, BAD):
                continue
            if old == GO:
                self.last_go_ms[i] = now_ms - self.wanted_since[i]
                if self.running and self.confirmed[i] == STOP and self.sent[i] == STOP:
                    self.skipped.append(i)
            elif old == CHANGE:
                self.last_change_ms[i] = now_ms - self.wanted_since[i]
            if cat == GO:
                self._go_min[i] = self.minimums.go_ms[i]
                self._red_min[i] = self.minimums.red_ms[i]
            if old == STOP:
                self.stopped_since[i] = self.wanted_since[i]
                self.stop_left[i] = now_ms
            self.wanted[i] = cat
            self.wanted_since[i] = now_ms

    def shape(self, now_ms: int, wanted: Sequence[int]) -> list[int]:
        """The map to send now for the controller's `wanted` map; updates what was sent."""
        n = self._n
        out: list[int] = []
        if len(wanted) != n:
            # Not ours to fix: the board refuses a wrong count (FAULT_BAD_MAP).
            return [int(c) for c in wanted]
        key = wanted if type(wanted) is tuple else tuple(wanted)
        if key == self._settled:
            return list(self.sent_code)  # what the last call sent for this map
        self._settled = None
        self._follow(now_ms, wanted)
        if not self.running:
            for i in range(n):
                w = int(wanted[i])
                code = w if self._cat(i, w) == STOP else int(codec.RED)
                out.append(code)
                self.sent[i] = STOP
                self.sent_code[i] = code
            self._settled = key  # all stopped, whatever the time: the same again
            return out
        cfg = self.config
        for i in range(n):
            w = int(wanted[i])
            want = self._cat(i, w)
            conf = self.confirmed[i]
            sent = self.sent[i]
            lasted = now_ms - self.since_ms[i] + TOLERANCE_MS
            if want == BAD:
                code = w
            elif sent != conf:  # a transition in flight: repeat it until confirmed
                code = w if want == sent else self.sent_code[i]
            elif want == conf:
                code = w
            elif conf == GO:  # to CHANGE, or to STOP through CHANGE, once the GO has lasted
                go_min = max(self._go_min[i], self.minimums.go_ms[i])
                if lasted >= min(self.last_go_ms[i], go_min):
                    code = w if want == CHANGE else self._change_code[i]
                else:
                    code = self.sent_code[i]
            elif conf == CHANGE:  # to STOP (or back to GO) once the change has lasted
                if lasted >= max(cfg.min_yellow_ms[i], self.last_change_ms[i]):
                    code = w if want == STOP else int(codec.RED)
                else:
                    code = self.sent_code[i]
            elif want == GO and self._cleared(now_ms, i, _use(w)):
                code = w
            else:  # stays stopped: green not yet allowed, or a change of a green never shown
                code = self.sent_code[i]
            cat = self._cat(i, code)
            if (
                cat == GO
                and sent == GO
                and self.use[i] == FYA
                and _use(code) == STEADY
                and not self._cleared(now_ms, i, STEADY)
            ):
                code = self.sent_code[i]  # a flashing arrow's green arrow not yet allowed
            if cat == GO:
                # A GO from STOP takes its own mask; a steady one after a flashing arrow
                # keeps the steady mask until STOP (never laxer than the board); a
                # change interval keeps the mask of the GO it ends, as on the board.
                self.use[i] = _use(code) if sent == STOP else min(self.use[i], _use(code))
                self.shown_steady[i] = self.shown_steady[i] or _use(code) == STEADY
            elif cat == CHANGE and sent == STOP:
                self.use[i] = STEADY
            out.append(code)
            if cat in (GO, CHANGE):
                self.shown[i] = True
            self.sent[i] = cat
            self.sent_code[i] = code
            if code != w:
                self.held += 1
        if self.sent == self.confirmed and out == list(key):
            self._settled = key
        return out

    def _cleared(self, now_ms: int, i: int, ui: int) -> bool:
        """May channel i start an indication using mask ui now: every channel conflicting
        with it stopped long enough on the lamps."""
        board_red = self.config.min_red_ms
        go_at = self.steady_since[i] if ui == STEADY else self.wanted_since[i]
        cm = self._cm
        for j in self._conflicts[i]:
            if not (cm[i][j] & ui and cm[j][i] & self.use[j]):
                continue
            if self.confirmed[j] != STOP or self.sent[j] != STOP:
                return False
            # The controller's red clearance before this green, up to the core's minimum:
            # none for a channel that has shown nothing (the start-up all red covers it).
            core_red = max(self._red_min[j], self.minimums.red_ms[j]) if self.shown[j] else 0
            arrows = self.minimums.arrow_red_ms
            if arrows and self.use[j] == STEADY and self.shown_steady[j]:
                core_red = max(core_red, arrows[j])  # its green arrow's pairs
            if self.wanted[j] == STOP:
                stopped = go_at - self.wanted_since[j]
            elif self.stop_left[j] >= go_at:  # j left STOP with or after i's start
                stopped = go_at - self.stopped_since[j]
            else:
                stopped = core_red
            need = max(board_red[j], min(max(stopped, 0), core_red))
            if now_ms - self.since_ms[j] + TOLERANCE_MS < need:
                return False
        return True
