"""The board's field monitor (a TS-2 MMU's job): sensed lamps against the rules and the command.

Pure, like board_safety: no pins, no clock; `now_ms` is a ticks_ms() value.
Each loop the board hands update() the sense inputs: for each channel c, bits
3c (red / don't walk), 3c+1 (yellow), 3c+2 (green / walk), bit b in
sensed[b >> 3] at 1 << (b & 7), a lamp that draws current reads 1
(hw/PINMAP.md). While the board is ALL_RED or RUNNING it compares them with
what it drives and with the CONFIG's rules, and names the first fault:

  FAULT_FIELD_CONFLICT   two channels sensed active (vehicle green or yellow, a
                         flashing yellow arrow within ACTIVE_HOLD_MS of its last
                         flash; walk) whose indications conflict (the CONFIG's
                         per-indication masks, board_safety.pair_conflicts), for
                         CONFLICT_TRIP_MS.
  FAULT_DUAL_INDICATION  one head sensed with two colours (vehicle: any two of
                         red, yellow, green; pedestrian: walk and don't walk) for
                         DUAL_TRIP_MS.
  FAULT_RED_FAIL         a channel not driven DARK with no lamp at all sensed for
                         RED_FAIL_MS (flashing codes light a lamp every second).
  FAULT_FIELD_CLEARANCE  a vehicle head sensed going from green to red with no
                         yellow, or from yellow to red before its min_yellow_ms;
                         or a head sensed starting green while a conflicting
                         vehicle head has been sensed red for less than its
                         min_red_ms; SENSE_SLACK_MS allowed on each.
  FAULT_MISMATCH         a head's sensed lamps differ from the driven lamps for
                         MISMATCH_MS.

Timing windows (TS-2 MMU): a condition is timed only between two updates that
both see it (and a pass longer than MAX_STEP_MS, a stalled loop, counts as
MAX_STEP_MS: what happened meanwhile was not seen), so a conflict or dual
indication shorter than CONFLICT_TRIP_MS (300 ms) never trips, and one that
lasts is tripped within 300 ms plus two update periods plus the sense
latency: by 450 ms whenever those stay under 150 ms (the Pico's loop is
1-2 ms, the opto filter about 10 ms). Red fail:
RED_FAIL_MS (1200 ms), by 1500 ms the same way. MISMATCH_MS (2000 ms) is
longer than all of these, so a fault with a class of its own is named by it.

Bounded work: one update is O(channels) plus, for each sensed-active channel,
a look at the channels it may conflict with: at most 32 x 32 pair tests.
"""

from . import board_safety, codec

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


CONFLICT_TRIP_MS = const(300)
DUAL_TRIP_MS = const(300)
RED_FAIL_MS = const(1200)
MISMATCH_MS = const(2000)
ACTIVE_HOLD_MS = const(600)  # a flashing yellow arrow is dark 500 ms of each second
SENSE_SLACK_MS = const(100)  # sensed intervals: frame jitter plus opto edges
MAX_STEP_MS = const(100)  # a longer pass (a stalled loop) counts this much: unseen time

_SAT = const(0x10000)
_STOP = const(0)
_GO = const(1)
_CHANGE = const(2)
_UNKNOWN = const(3)  # after a reset, or a yellow not seen to follow a green

RED_LAMP = const(1)
YELLOW_LAMP = const(2)
GREEN_LAMP = const(4)


def code_lamps(code, flash_on):
    """The lamps (RED_LAMP | YELLOW_LAMP | GREEN_LAMP bits) a state code lights now."""
    if code == codec.RED:
        return RED_LAMP
    if code == codec.YELLOW:
        return YELLOW_LAMP
    if code == codec.GREEN:
        return GREEN_LAMP
    if code == codec.FLASH_RED:
        return RED_LAMP if flash_on else 0
    if code == codec.FLASH_YELLOW:
        return YELLOW_LAMP if flash_on else 0
    return 0


def channel_lamps(sensed, c):
    """The 3 sense bits of channel c from the sense bytes."""
    b = 3 * c
    k = b >> 3
    v = sensed[k] >> (b & 7)
    if (b & 7) > 5 and k + 1 < len(sensed):
        v |= sensed[k + 1] << (8 - (b & 7))
    return v & 7


def set_channel_lamps(buf, c, lamps):
    """Write channel c's 3 bits into sense-ordered bytes `buf` (the inverse of channel_lamps)."""
    b = 3 * c
    for k in range(3):
        bit = b + k
        if lamps & (1 << k):
            buf[bit >> 3] |= 1 << (bit & 7)
        else:
            buf[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF


def self_test(sensed_off, pattern, expected=0xA5):
    """Power-up check of the sensing: 0 if it passes, else a bitmask of failing channels
    (bit 31 alone when the chain's pattern byte is wrong).

    sensed_off: the sense bytes read with every lamp output off (/OE high, relay
    released): any lamp sensed on is a welded load switch or a shorted sense
    input. pattern: the byte of the chain's strapped 13th register.
    """
    if pattern != expected:
        return 1 << 31
    bad = 0
    for c in range(codec.MAX_CHANNELS):
        if channel_lamps(sensed_off, c):
            bad |= 1 << c
    return bad


class FieldMonitor:
    """Sensed-lamp checks of one board; see the module comment. Read `fault`, `channels`."""

    def __init__(self, now_ms):
        n = codec.MAX_CHANNELS
        self.fault = codec.FAULT_NONE
        self.channels = 0  # bitmask the fault names
        self._last_ms = now_ms
        self._running = False
        self._prev_conflict = False
        self._conflict_ms = 0
        self._dual_ms = [0] * n
        self._dark_ms = [0] * n
        self._mis_ms = [0] * n
        self._y_ago = [_SAT] * n
        self._scat = bytearray(n)
        self._scat_ms = [0] * n
        self._prev_dual = bytearray(n)
        self._prev_mis = bytearray(n)
        self._lamps = bytearray(n)
        self._active = bytearray(n)
        self._use = bytearray(n)

    def reset(self, now_ms):
        """Forget every timer (the board left flash, or was configured)."""
        for i in range(codec.MAX_CHANNELS):
            self._dual_ms[i] = 0
            self._dark_ms[i] = 0
            self._mis_ms[i] = 0
            self._y_ago[i] = _SAT
            self._scat[i] = _UNKNOWN
            self._scat_ms[i] = 0
            self._prev_dual[i] = 0
            self._prev_mis[i] = 0
        self._conflict_ms = 0
        self._prev_conflict = False
        self.fault = codec.FAULT_NONE
        self.channels = 0
        self._last_ms = now_ms

    def update(self, now_ms, safety, sensed, flash_on):
        """One look at the field. Returns the fault found (FAULT_NONE if none)."""
        dt = board_safety.ticks_diff(now_ms, self._last_ms)
        self._last_ms = now_ms
        if dt < 0:
            dt = 0
        if dt > MAX_STEP_MS:
            dt = MAX_STEP_MS
        if safety.state == codec.STATE_FLASH:
            self._running = False
            return codec.FAULT_NONE
        if not self._running:
            self._running = True
            self.reset(now_ms)
            dt = 0
        n = safety.channels
        driven = safety.driven
        lamps = self._lamps
        active = self._active
        use = self._use
        any_active = False
        for c in range(n):
            got = channel_lamps(sensed, c)
            lamps[c] = got
            code = driven[c]
            ped = safety.kind(c) == codec.KIND_PED
            # Flashing yellow arrow: lit half of each second; it stays active between flashes.
            if got & YELLOW_LAMP:
                self._y_ago[c] = 0
            else:
                t = self._y_ago[c] + dt
                self._y_ago[c] = t if t < _SAT else _SAT
            if ped:
                act = got & GREEN_LAMP
            else:
                act = got & (GREEN_LAMP | YELLOW_LAMP) or (
                    code == codec.FLASH_YELLOW and self._y_ago[c] < ACTIVE_HOLD_MS
                )
            active[c] = 1 if act else 0
            any_active = any_active or act
            # An unexpected green is judged by the steady mask, the strictest.
            use[c] = 1 if got & GREEN_LAMP and code != codec.GREEN else safety.use_of(c)
        # 1. conflicting sensed indications
        conflict = 0
        if any_active:
            for i in range(n):
                if not active[i]:
                    continue
                for j in safety.neighbours(i):
                    if j > i and active[j] and safety.pair_conflicts(i, use[i], j, use[j]):
                        conflict = (1 << i) | (1 << j)
                        break
                if conflict:
                    break
        if conflict and self._prev_conflict:
            self._conflict_ms += dt
        elif not conflict:
            self._conflict_ms = 0
        self._prev_conflict = bool(conflict)
        if conflict and self._conflict_ms >= CONFLICT_TRIP_MS:
            return self._trip(codec.FAULT_FIELD_CONFLICT, conflict)
        fault = codec.FAULT_NONE
        bad = 0
        for c in range(n):
            got = lamps[c]
            code = driven[c]
            ped = safety.kind(c) == codec.KIND_PED
            # 2. dual indication
            if ped:
                dual = got & RED_LAMP and got & GREEN_LAMP
            else:
                dual = got not in (0, RED_LAMP, YELLOW_LAMP, GREEN_LAMP)
            if dual and self._prev_dual[c]:
                self._dual_ms[c] += dt
            elif not dual:
                self._dual_ms[c] = 0
            self._prev_dual[c] = 1 if dual else 0
            if dual and self._dual_ms[c] >= DUAL_TRIP_MS and not fault:
                fault, bad = codec.FAULT_DUAL_INDICATION, 1 << c
            # 3. red fail: no lamp at all on a channel in use
            if got or code == codec.DARK:
                self._dark_ms[c] = 0
            else:
                t = self._dark_ms[c] + dt
                self._dark_ms[c] = t if t < _SAT else _SAT
                if t >= RED_FAIL_MS and fault == codec.FAULT_NONE:
                    fault, bad = codec.FAULT_RED_FAIL, 1 << c
            # 5. sensed against driven
            mis = got != code_lamps(code, flash_on)
            if mis and self._prev_mis[c]:
                t = self._mis_ms[c] + dt
                self._mis_ms[c] = t if t < _SAT else _SAT
            elif not mis:
                self._mis_ms[c] = 0
            self._prev_mis[c] = 1 if mis else 0
            t = self._scat_ms[c] + dt
            self._scat_ms[c] = t if t < _SAT else _SAT
        if fault:
            return self._trip(fault, bad)
        # 4. sensed clearances, at each sensed change of category
        for c in range(n):
            got = lamps[c]
            if got & GREEN_LAMP and driven[c] != codec.GREEN:
                continue  # a green not driven (yet, or at all): the other checks judge it
            elif got & GREEN_LAMP or (got & YELLOW_LAMP and driven[c] == codec.FLASH_YELLOW):
                k = _GO
            elif got & YELLOW_LAMP:
                k = _CHANGE
            elif got & RED_LAMP:
                k = _STOP
            else:
                continue  # dark between two lamps, or a flash's off half: no change
            old = self._scat[c]
            if k == _CHANGE and old != _GO:
                k = _UNKNOWN  # a yellow from red or from the unknown times nothing
            if k == old:
                continue
            ped = safety.kind(c) == codec.KIND_PED
            short = old == _GO or self._scat_ms[c] + SENSE_SLACK_MS < safety.min_yellow(c)
            if old != _UNKNOWN and k == _STOP and not ped and short:
                return self._trip(codec.FAULT_FIELD_CLEARANCE, 1 << c)
            if k == _GO and old == _STOP:
                for j in safety.neighbours(c):
                    if safety.kind(j) == codec.KIND_PED or self._scat[j] != _STOP:
                        continue  # walks: the commanded rules; active ones: the conflict timer
                    if not safety.pair_conflicts(c, use[c], j, safety.use_of(j)):
                        continue
                    if self._scat_ms[j] + SENSE_SLACK_MS < safety.min_red(j):
                        return self._trip(codec.FAULT_FIELD_CLEARANCE, (1 << c) | (1 << j))
            self._scat[c] = k
            self._scat_ms[c] = 0
        for c in range(n):
            if self._mis_ms[c] >= MISMATCH_MS:
                return self._trip(codec.FAULT_MISMATCH, 1 << c)
        return codec.FAULT_NONE

    def _trip(self, fault, channels):
        self.fault = fault
        self.channels = channels
        return fault
