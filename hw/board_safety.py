"""The IO board's own safety logic: checks every output map, watchdog, latched flash, recovery.

Pure: no pins, no clock. Every call takes `now_ms`, a millisecond tick count as
MicroPython's time.ticks_ms() gives it (it wraps at 2**30); any monotonic
integer milliseconds work as well, since only differences are used, through
ticks_diff. Elapsed times are accumulated call by call and saturate, so a
channel that stays red for weeks is still "red long enough" after the tick
counter wraps; the only requirement is a call at least every 2**29 ms.

This is the last of the three safety layers (DESIGN.md) and does not trust the
host. Each channel's state code falls in one of three categories, by its kind:

                  vehicle channel              pedestrian channel
    GO            GREEN, FLASH_YELLOW          GREEN (walk)
    CHANGE        YELLOW                       FLASH_RED (ped clearance)
    STOP          RED, FLASH_RED, DARK         RED (don't walk), DARK

Rules checked on every OUTPUTS map while RUNNING, in this order; the first one
broken names the fault, the map is not driven, and the board goes to FLASH:

  1. FAULT_BAD_MAP        the map has exactly the configured number of
                          channels and each code is valid for its kind.
  2. FAULT_CONFLICT       no two conflicting channels are both outside STOP.
                          Conflicts are per indication (a TS-2 MMU's channel
                          compatibility plus its flashing-yellow-arrow card):
                          each channel has a steady mask (green ball or arrow,
                          walk, and the yellow or clearance after them) and a
                          flashing-yellow mask (FLASH_YELLOW and the yellow
                          that ends it), a subset of the steady one. i and j
                          conflict when each one's mask for what it shows
                          names the other; so a green arrow conflicts with
                          the opposing through, its flashing yellow arrow not.
  3. per channel, lowest channel first, from the state driven until now:
     FAULT_CHANGE_SKIPPED GO may go only to GO or CHANGE (no GREEN -> RED).
     FAULT_CHANGE_SHORT   CHANGE may go to STOP only after min_yellow_ms in
                          CHANGE (vehicle: yellow; ped: ped clearance).
     FAULT_BAD_SEQUENCE   CHANGE may not go back to GO; STOP may not go to
                          CHANGE.
     FAULT_RED_CLEARANCE  STOP may go to GO only when every conflicting channel
                          has been in STOP for at least ITS min_red_ms.
     FAULT_INTERGREEN     an indication may start only when, for each configured
                          pair intergreen (leaving, its indication, this
                          channel, this indication, ms), leaving's indication
                          is not shown and ended at least ms ago.
  Intergreens are per indication too: each side of a pair names any GO of its
  channel, its steady indication (green ball or arrow, walk) or its flashing
  yellow arrow. An indication starts when the channel enters GO showing it, or
  turns from one GO indication to the other (a flashing yellow arrow into a
  green arrow, or back); a pair on any GO starts from STOP and where a flashing
  yellow arrow turns into a green arrow (as version 2 first read it). An indication
  ends when the channel stops showing it (a green arrow turning into the
  flashing arrow ends the arrow), so a permissive flashing arrow that ended is
  not the end of the protected green arrow on the same head: a green the
  core may start after the one, before the other, is not refused.
  Intervals are measured between frame arrivals, so each minimum is checked
  with TIMING_SLACK_MS of allowance for serial and scheduler jitter.
  A map equal to the one driven now while RUNNING keeps every rule again
  whatever the time (same categories and masks: no transition, and the
  conflicts were checked on it), so it is driven without walking the rules
  again; any way into FLASH, CONFIG or RECOVER forgets it.

Other ways into FLASH: FAULT_WATCHDOG (no valid OUTPUTS for watchdog_ms while
RUNNING or ALL_RED), FAULT_HOST_FLASH (the host sets OUTPUTS_FLAG_FLASH),
FAULT_NOT_RUNNING (a code outside STOP during the start-up all-red),
FAULT_INTERNAL (force_flash from the pin loop), FAULT_POWER_ON (the state at
reset). All of them go through _enter_flash, which is idempotent: the first
fault is kept until RECOVER.

FLASH is latched. In FLASH each channel shows its flash colour and the
flash-transfer relay flag is set. The only way out is RECOVER with the hash of
the stored config: ALL_RED (every channel RED) for the longest min_red_ms of
any channel, then RUNNING, starting from "every channel has been red that
long". CONFIG is accepted only in FLASH.
"""

from . import codec

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


TICKS_PERIOD = const(0x40000000)  # MicroPython's ticks_ms() wraps here (2**30)
TICKS_MAX = const(0x3FFFFFFF)
TICKS_HALF = const(0x20000000)

TIMING_SLACK_MS = const(50)  # allowance on every minimum interval, for jitter

_SATURATE_MS = const(0x10000)  # elapsed-time accumulators stop here (> any u16)

_STOP = const(0)
_GO = const(1)
_CHANGE = const(2)
_BAD = const(3)

# Category of each state code 0..15, by channel kind.
_CAT_VEHICLE = b"\x00\x00\x02\x01\x00\x01\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03"
_CAT_PED = b"\x00\x00\x03\x01\x02\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03"

_FLASH_CODES = (codec.FLASH_RED, codec.FLASH_YELLOW, codec.DARK)  # by FLASH_COLOUR_*


def ticks_diff(end, start):
    """end - start in ms, wrap-safe for ticks that wrap at 2**30 (as time.ticks_diff)."""
    return ((end - start + TICKS_HALF) & TICKS_MAX) - TICKS_HALF


def ticks_add(ticks, delta):
    """ticks + delta, wrapped as time.ticks_add does."""
    return (ticks + delta) & TICKS_MAX


MIN_YELLOW_FLOOR_MS = const(3000)
MIN_CLEAR_FLOOR_MS = const(500)


def _beyond(mask, n):
    # Any bit at or above bit n.
    return n < 32 and mask >> n != 0


def conflict_matrix(conflicts, fya, n):
    """bytearray n*n: [i * n + j] bit 1 when conflicts[i] has bit j, bit 2 when fya[i] has."""
    cm = bytearray(n * n)
    for i in range(n):
        for which, mask in ((1, conflicts[i]), (2, fya[i])):
            lo = mask & 0xFFFF
            hi = (mask >> 16) & 0xFFFF
            for j in range(n):
                if (lo >> j if j < 16 else hi >> (j - 16)) & 1:
                    cm[i * n + j] |= which
    return cm


def check_config(body):
    """0 if a decoded CONFIG body is acceptable, else codec.NAK_BAD_CONFIG.

    Checked: 1..32 channels, watchdog_ms in 100..1000, kinds and flash colours
    known (a pedestrian head has no yellow to flash), minimum times not below
    the board's floors, the conflict matrix
    symmetric, with no channel conflicting with itself and no bit beyond the
    last channel; each flashing-yellow mask a subset of its steady mask (a
    pedestrian channel's equal to it); each intergreen naming two different
    configured channels and a known indication of each (no flashing yellow
    arrow on a pedestrian channel).
    """
    conflicts = body["conflicts"]
    fya = body["fya_conflicts"]
    n = len(conflicts)
    if n < 1 or n > codec.MAX_CHANNELS:
        return codec.NAK_BAD_CONFIG
    cm = conflict_matrix(conflicts, fya, n)
    wd = body["watchdog_ms"]
    if wd < codec.WATCHDOG_MIN_MS or wd > codec.WATCHDOG_MAX_MS:
        return codec.NAK_BAD_CONFIG
    for i in range(n):
        kind = body["kinds"][i]
        colour = body["flash"][i]
        if kind != codec.KIND_VEHICLE and kind != codec.KIND_PED:
            return codec.NAK_BAD_CONFIG
        if colour > codec.FLASH_COLOUR_DARK:
            return codec.NAK_BAD_CONFIG
        if kind == codec.KIND_PED and colour == codec.FLASH_COLOUR_YELLOW:
            return codec.NAK_BAD_CONFIG
        # The board's own floors, whatever the host sends: a vehicle yellow of
        # at least 3.0 s, a pedestrian clearance and a red clearance of at least 0.5 s.
        floor = MIN_YELLOW_FLOOR_MS if kind == codec.KIND_VEHICLE else MIN_CLEAR_FLOOR_MS
        if body["min_yellow_ms"][i] < floor or body["min_red_ms"][i] < MIN_CLEAR_FLOOR_MS:
            return codec.NAK_BAD_CONFIG
        # Bits through the matrix: 32-bit masks are heap integers on MicroPython,
        # shifting them bit by bit would make garbage.
        for j in range(n):
            b = cm[i * n + j]
            if (b & 1) != (cm[j * n + i] & 1) or (b == 2):
                return codec.NAK_BAD_CONFIG  # asymmetric, or FYA beyond the steady mask
            if kind == codec.KIND_PED and b in (1, 2):
                return codec.NAK_BAD_CONFIG  # a walk has one mask
        if cm[i * n + i] or _beyond(conflicts[i], n) or _beyond(fya[i], n):
            return codec.NAK_BAD_CONFIG
    kinds = body["kinds"]
    for leaving, li, entering, ei, _ms in body["intergreens"]:
        if leaving >= n or entering >= n or leaving == entering or li > 2 or ei > 2:
            return codec.NAK_BAD_CONFIG
        if (li == codec.IG_FYA and kinds[leaving] == codec.KIND_PED) or (
            ei == codec.IG_FYA and kinds[entering] == codec.KIND_PED
        ):
            return codec.NAK_BAD_CONFIG
    return 0


# An intergreen's indication on the wire (IG_ANY, IG_STEADY, IG_FYA) as a mask of uses:
# steady (green ball or arrow, walk), flashing yellow arrow, or either (any GO).
_USE_STEADY = const(1)
_USE_FYA = const(2)
_USE_ANY = const(3)
_IG_USES = bytes((_USE_ANY, _USE_STEADY, _USE_FYA))


class BoardSafety:
    """Safety state of the board; see the module comment for the rules.

    Read after each call: state (codec.STATE_*), fault (codec.FAULT_*),
    channels (configured count, 0 before CONFIG), driven (bytearray: the code
    driven per channel, first `channels` entries), flash_transfer (bool),
    config_hash (0 before CONFIG).
    """

    def __init__(self, now_ms):
        self.state = codec.STATE_FLASH
        self.fault = codec.FAULT_POWER_ON
        self.channels = 0
        self.config_hash = 0
        self.watchdog_ms = codec.WATCHDOG_DEFAULT_MS
        self.recoveries = 0
        self.driven = bytearray(codec.MAX_CHANNELS)
        self._conflicts = []  # per channel: tuple of channels it may conflict with
        # _cm[i * n + j]: bit 1 j conflicts with i's steady indications, bit 2 with its
        # flashing yellow arrow. _use[i]: which of the two i shows (or last showed).
        self._cm = bytearray(0)
        self._use = bytearray(codec.MAX_CHANNELS)
        self._new_use = bytearray(codec.MAX_CHANNELS)
        # Per entering channel: tuples (leaving, leaving's uses, entering's uses, ms).
        self._ig = []
        # ms since each channel's steady GO indication ended, and its flashing arrow.
        self._off_steady_ms = [_SATURATE_MS] * codec.MAX_CHANNELS
        self._off_fya_ms = [_SATURATE_MS] * codec.MAX_CHANNELS
        self.fault_channels = 0  # channels the fault names (bitmask)
        self._bad = 0
        self.kinds = b""
        self._min_yellow = []
        self._min_red = []
        self._flash = []  # per channel: the code shown in flash
        self._kind_cat = []  # per channel: _CAT_VEHICLE or _CAT_PED
        self._max_red_ms = 0
        self._cat = bytearray(codec.MAX_CHANNELS)  # category of driven code
        self._new_cat = bytearray(codec.MAX_CHANNELS)
        self._cat_ms = [0] * codec.MAX_CHANNELS  # ms in the current category
        # ms not yet added to _cat_ms and _off_go_ms (saturating): they are read
        # only when a map changes, so ticks add to one number, not to every channel.
        self._pending_ms = 0
        self._ok = None  # the map driven now, once checked in RUNNING (else None)
        self._quiet_ms = 0  # ms since the last valid OUTPUTS
        self._all_red_ms = 0  # ms in ALL_RED
        self._last_ms = now_ms

    def kind(self, i):
        """codec.KIND_* of channel i."""
        return self.kinds[i]

    def min_yellow(self, i):
        return self._min_yellow[i]

    def min_red(self, i):
        return self._min_red[i]

    def neighbours(self, i):
        """The channels that conflict with some indication of channel i."""
        return self._conflicts[i]

    @property
    def flash_transfer(self):
        """True while the flash-transfer relay must be in flash position."""
        return self.state == codec.STATE_FLASH

    def lamps(self):
        """The codes driven now, one per configured channel."""
        return bytes(self.driven[: self.channels])

    def _advance(self, now_ms):
        dt = ticks_diff(now_ms, self._last_ms)
        self._last_ms = now_ms
        if dt <= 0:
            return
        if dt > _SATURATE_MS:
            dt = _SATURATE_MS
        t = self._pending_ms + dt
        self._pending_ms = t if t < _SATURATE_MS else _SATURATE_MS
        t = self._quiet_ms + dt
        self._quiet_ms = t if t < _SATURATE_MS else _SATURATE_MS
        t = self._all_red_ms + dt
        self._all_red_ms = t if t < _SATURATE_MS else _SATURATE_MS

    def _flush(self):
        # Add the pending ms to every channel's accumulators. Saturating sums
        # regroup: min(min(a + x, S) + y, S) == min(a + min(x + y, S), S), a, x, y >= 0.
        dt = self._pending_ms
        if dt == 0:
            return
        self._pending_ms = 0
        cat_ms = self._cat_ms
        off = self._off_steady_ms
        off_fya = self._off_fya_ms
        for i in range(self.channels):
            t = cat_ms[i] + dt
            cat_ms[i] = t if t < _SATURATE_MS else _SATURATE_MS
            t = off[i] + dt
            off[i] = t if t < _SATURATE_MS else _SATURATE_MS
            t = off_fya[i] + dt
            off_fya[i] = t if t < _SATURATE_MS else _SATURATE_MS

    def _enter_flash(self, fault, channels=0):
        # The one way into flash; a second fault does not overwrite the first.
        if self.state == codec.STATE_FLASH:
            return
        self._ok = None
        self.state = codec.STATE_FLASH
        self.fault = fault
        self.fault_channels = channels
        self._drive_flash()

    def _drive_flash(self):
        for i in range(self.channels):
            self.driven[i] = self._flash[i]

    def force_flash(self, now_ms, fault, channels=0):
        """Go to flash with `fault` (e.g. FAULT_INTERNAL from the pin loop, a field
        fault from the monitor) naming `channels` (bitmask)."""
        self._advance(now_ms)
        self._enter_flash(fault, channels)

    def pair_conflicts(self, i, ui, j, uj):
        """True when channel i showing ui (1 steady, 2 flashing yellow arrow) and
        channel j showing uj conflict."""
        n = self.channels
        return bool(self._cm[i * n + j] & ui and self._cm[j * n + i] & uj)

    def use_of(self, i):
        """Which mask channel i's current (or last) indication uses: 1 steady, 2 FYA."""
        return self._use[i]

    def tick(self, now_ms):
        """Call often (every few ms): watchdog and the end of the all-red. Returns state."""
        self._advance(now_ms)
        if self.state != codec.STATE_FLASH and self._quiet_ms >= self.watchdog_ms:
            self._enter_flash(codec.FAULT_WATCHDOG)
        if self.state == codec.STATE_ALL_RED and self._all_red_ms >= self._max_red_ms:
            self.state = codec.STATE_RUNNING
        return self.state

    def configure(self, now_ms, body):
        """Store a decoded CONFIG body. Returns 0, or a NAK_* reason (nothing changes)."""
        self._advance(now_ms)
        if self.state != codec.STATE_FLASH:
            return codec.NAK_BAD_STATE
        reason = check_config(body)
        if reason:
            return reason
        self._flush()  # over the channels counted until now
        self._ok = None
        conflicts = body["conflicts"]
        fya = body["fya_conflicts"]
        n = len(conflicts)
        self._conflicts = []
        self._flash = []
        self._kind_cat = []
        self.kinds = bytes(body["kinds"])
        self._cm = cm = conflict_matrix(conflicts, fya, n)
        ig = [[] for _ in range(n)]
        for leaving, li, entering, ei, ms in body["intergreens"]:
            ig[entering].append((leaving, _IG_USES[li], _IG_USES[ei], ms))
        self._ig = [tuple(x) for x in ig]
        for i in range(n):
            self._conflicts.append(tuple(j for j in range(n) if cm[i * n + j]))
            self._flash.append(_FLASH_CODES[body["flash"][i]])
            ped = body["kinds"][i] == codec.KIND_PED
            self._kind_cat.append(_CAT_PED if ped else _CAT_VEHICLE)
        self._min_yellow = list(body["min_yellow_ms"])
        self._min_red = list(body["min_red_ms"])
        self._max_red_ms = max(self._min_red)
        self.watchdog_ms = body["watchdog_ms"]
        self.config_hash = body["config_hash"]
        for i in range(codec.MAX_CHANNELS):
            self.driven[i] = codec.DARK
        self.channels = n
        self._drive_flash()
        return 0

    def recover(self, now_ms, config_hash):
        """RECOVER: leave flash through ALL_RED. Returns 0, or a NAK_* reason.

        Idempotent during ALL_RED (the all-red is not restarted).
        """
        self._advance(now_ms)
        if self.channels == 0:
            return codec.NAK_NOT_CONFIGURED
        if config_hash != self.config_hash:
            return codec.NAK_HASH_MISMATCH
        if self.state == codec.STATE_ALL_RED:
            return 0
        if self.state != codec.STATE_FLASH:
            return codec.NAK_BAD_STATE
        self._flush()
        self._ok = None
        self.state = codec.STATE_ALL_RED
        self.fault = codec.FAULT_NONE
        self.recoveries += 1
        self.fault_channels = 0
        for i in range(self.channels):
            self.driven[i] = codec.RED
            self._cat[i] = _STOP
            self._cat_ms[i] = 0
            self._use[i] = 1
            self._off_steady_ms[i] = _SATURATE_MS
            self._off_fya_ms[i] = _SATURATE_MS
        self._quiet_ms = 0
        self._all_red_ms = 0
        return 0

    def outputs(self, now_ms, codes, flags=0):
        """An OUTPUTS map from the host. Returns the fault it caused, or FAULT_NONE.

        Ignored in FLASH. Otherwise it feeds the watchdog (unless the watchdog
        has already expired) and, if it keeps every rule, is driven.
        """
        self.tick(now_ms)
        if self.state == codec.STATE_FLASH:
            return codec.FAULT_NONE
        self._quiet_ms = 0
        if flags & codec.OUTPUTS_FLAG_FLASH:
            self._enter_flash(codec.FAULT_HOST_FLASH)
            return codec.FAULT_HOST_FLASH
        if codes == self._ok:
            return codec.FAULT_NONE  # the map driven now (module comment)
        self._flush()
        self._bad = 0
        fault = self._check(codes)
        if fault:
            self._enter_flash(fault, self._bad)
            return fault
        if self.state == codec.STATE_RUNNING:
            self._ok = list(codes)
            cat = self._cat
            new = self._new_cat
            use = self._use
            for i in range(self.channels):
                if cat[i] == _GO and (new[i] != _GO or self._new_use[i] != use[i]):
                    # The indication shown until now ended (module comment).
                    if use[i] == 2:
                        self._off_fya_ms[i] = 0
                    else:
                        self._off_steady_ms[i] = 0
                if new[i] != cat[i]:
                    cat[i] = new[i]
                    self._cat_ms[i] = 0
                if new[i] != _STOP:
                    use[i] = self._new_use[i]
                self.driven[i] = codes[i]
        return codec.FAULT_NONE

    def _check(self, codes):
        # Returns the first rule broken (module comment), with self._bad naming the
        # channels; fills _new_cat and _new_use for the map.
        n = self.channels
        if len(codes) != n:
            return codec.FAULT_BAD_MAP
        new = self._new_cat
        new_use = self._new_use
        cat = self._cat
        use = self._use
        for i in range(n):
            c = codes[i]
            if c < 0 or c > 15:
                self._bad = 1 << i
                return codec.FAULT_BAD_MAP
            k = self._kind_cat[i][c]
            if k == _BAD:
                self._bad = 1 << i
                return codec.FAULT_BAD_MAP
            new[i] = k
            # A flashing yellow arrow uses its own mask, a yellow keeps the mask of
            # the green it ends; anything else the steady one.
            if c == codec.FLASH_YELLOW:
                new_use[i] = 2
            elif k == _CHANGE and cat[i] != _STOP:
                new_use[i] = use[i]
            else:
                new_use[i] = 1
        if self.state == codec.STATE_ALL_RED:
            for i in range(n):
                if new[i] != _STOP:
                    self._bad = 1 << i
                    return codec.FAULT_NOT_RUNNING
            return codec.FAULT_NONE
        cm = self._cm
        for i in range(n):
            if new[i] != _STOP:
                ui = new_use[i]
                for j in self._conflicts[i]:
                    if new[j] != _STOP and cm[i * n + j] & ui and cm[j * n + i] & new_use[j]:
                        self._bad = (1 << i) | (1 << j)
                        return codec.FAULT_CONFLICT
        cat_ms = self._cat_ms
        for i in range(n):
            old = cat[i]
            k = new[i]
            self._bad = 1 << i
            if old == _GO:
                if k == _STOP:
                    return codec.FAULT_CHANGE_SKIPPED
                if k == _GO and new_use[i] != use[i]:
                    # One GO indication turning into the other starts it. A flashing
                    # yellow arrow turning into a green arrow: the arrow's conflicts
                    # must have cleared as for a green from red.
                    if new_use[i] < use[i]:
                        fault = self._red_cleared(i, new_use[i])
                        if fault:
                            return fault
                    fault = self._intergreens(i, new_use[i], use[i])
                    if fault:
                        return fault
            elif old == _CHANGE:
                if k == _STOP:
                    if cat_ms[i] + TIMING_SLACK_MS < self._min_yellow[i]:
                        return codec.FAULT_CHANGE_SHORT
                elif k == _GO:
                    return codec.FAULT_BAD_SEQUENCE
            elif k == _CHANGE:
                return codec.FAULT_BAD_SEQUENCE
            elif k == _GO:
                fault = self._red_cleared(i, new_use[i]) or self._intergreens(i, new_use[i], 0)
                if fault:
                    return fault
        self._bad = 0
        return codec.FAULT_NONE

    def _red_cleared(self, i, ui):
        # Channel i starts an indication using mask ui: every conflicting red clearance.
        n = self.channels
        cm = self._cm
        cat = self._cat
        cat_ms = self._cat_ms
        for j in self._conflicts[i]:
            # j's red clearance counts when j's last indication conflicts with what
            # i starts.
            if not (cm[i * n + j] & ui and cm[j * n + i] & self._use[j]):
                continue
            if cat[j] != _STOP or cat_ms[j] + TIMING_SLACK_MS < self._min_red[j]:
                self._bad |= 1 << j
                return codec.FAULT_RED_CLEARANCE
        return codec.FAULT_NONE

    def _intergreens(self, i, started, was):
        # Channel i starts indication `started` (a use), showing `was` before (0: STOP):
        # every pair on it that was not already satisfied by `was` (module comment).
        cat = self._cat
        use = self._use
        off = self._off_steady_ms
        off_fya = self._off_fya_ms
        for leaving, lu, eu, ms in self._ig[i]:
            if not eu & started or (
                eu & was and not (eu == _USE_ANY and started == _USE_STEADY and was == _USE_FYA)
            ):
                continue  # a pair on any GO: from STOP, or a flashing arrow turning green
            if cat[leaving] == _GO and use[leaving] & lu:
                ended = -1  # shown now
            elif lu == _USE_ANY:
                ended = off[leaving] if off[leaving] < off_fya[leaving] else off_fya[leaving]
            else:
                ended = off[leaving] if lu == _USE_STEADY else off_fya[leaving]
            if ended < 0 or ended + TIMING_SLACK_MS < ms:
                self._bad |= 1 << leaving
                return codec.FAULT_INTERGREEN
        return codec.FAULT_NONE
