"""The board's message handling, input conditioning and lamp bits: pure, shared by Pico and sim.

Board turns received bytes into replies (HELLO -> HELLO_REPLY, CONFIG ->
CONFIG_ACK or NAK, RECOVER -> ACK or NAK, OUTPUTS -> STATUS) around one
BoardSafety and one FieldMonitor (hw/monitor.py: the sensed lamps); Inputs
debounces the opto inputs and counts rising edges; lamp_bits maps driven
state codes to the 74HC595 chain (hw/PINMAP.md).

The board keeps a fault record across resets in a small store (a file on the
Pico, RecordStore here): the boot count, and the last latched safety fault
(code, channels, the boot and the ms since that boot it latched at). Every
fault but POWER_ON, WATCHDOG and HOST_FLASH is recorded once per latch,
written when it latches (bounded: one 14-byte write per flash). The
power-up self-test of the sensing (monitor.self_test) runs before any
CONFIG; if it fails the board stays in flash (FAULT_SELF_TEST) and refuses
RECOVER (NAK_SELF_TEST).

hw/main.py only moves bytes and bits between these and the pins; the
simulator's virtual board calls the same objects.
"""

from . import board_safety, codec, monitor

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


FIRMWARE_VERSION = "hw-0.2.0"

DEBOUNCE_MS = const(20)  # an input level must hold this long to count
LAMP_BYTES = const(12)  # 32 channels x 3 lamps = 96 bits = 12 x 74HC595

FLASH_HALF_MS = const(500)  # flashing lamps: 1 Hz, 50 % duty
SELF_TEST_PATTERN = const(0xA5)  # the sense chain's strapped 13th register
RECORD_LEN = const(14)
# Not written to the record: the normal start, and a host that went silent or
# handed over (communication: the host logs those itself, and they must not
# overwrite the last safety fault).
_NOT_RECORDED = (codec.CLASS_NONE, codec.CLASS_COMMUNICATION)
_NO_COUNTS = bytes(codec.N_INPUTS)


def flash_phase(now_ms):
    """True in the lit half of each flash second."""
    return (now_ms // FLASH_HALF_MS) & 1 == 0


SELF_TEST_OK = const(0)
SELF_TEST_FAILED = const(1)
SELF_TEST_NOT_RUN = const(2)


def pack_record(boots, fault, channels, uptime_ms, boot):
    """The stored record: boots u16, fault u8, pad u8, channels u32, uptime u32, boot u16."""
    b = bytearray(RECORD_LEN)
    b[0] = boots & 0xFF
    b[1] = (boots >> 8) & 0xFF
    b[2] = fault & 0xFF
    for k in range(4):
        b[4 + k] = (channels >> (8 * k)) & 0xFF
        b[8 + k] = (uptime_ms >> (8 * k)) & 0xFF
    b[12] = boot & 0xFF
    b[13] = (boot >> 8) & 0xFF
    return bytes(b)


def unpack_record(b):
    """(boots, fault, channels, uptime_ms, boot), or None for a missing or short record."""
    if b is None or len(b) != RECORD_LEN:
        return None
    ch = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24)
    up = b[8] | (b[9] << 8) | (b[10] << 16) | (b[11] << 24)
    return (b[0] | (b[1] << 8), b[2], ch, up, b[12] | (b[13] << 8))


class RecordStore:
    """The fault record's storage kept in memory (the simulator; the Pico keeps a file)."""

    def __init__(self):
        self.data = None
        self.writes = 0

    def load(self):
        return self.data

    def save(self, data):
        self.data = bytes(data)
        self.writes += 1


class Inputs:
    """Debounced input bitmask and saturating rising-edge counts per input."""

    def __init__(self, now_ms, debounce_ms=DEBOUNCE_MS):
        self.debounce_ms = debounce_ms
        self.state = 0  # debounced bitmask, bit i = input i active
        self.counts = bytearray(codec.N_INPUTS)  # rising edges since take_counts()
        self._held = [0] * codec.N_INPUTS  # ms the raw level has differed
        self._pending = 0  # bits whose raw level differs from state
        self._last_ms = now_ms

    def sample(self, now_ms, raw):
        """Feed the raw input bitmask read at now_ms."""
        dt = board_safety.ticks_diff(now_ms, self._last_ms)
        self._last_ms = now_ms
        if dt < 0:
            dt = 0
        diff = (raw ^ self.state) & 0xFFFF
        if not diff and not self._pending:
            return
        held = self._held
        for i in range(codec.N_INPUTS):
            bit = 1 << i
            if not diff & bit:
                held[i] = 0
                continue
            # First seen now: count from here; still different: add the time.
            held[i] = held[i] + dt if self._pending & bit else 0
            if held[i] >= self.debounce_ms:
                held[i] = 0
                self.state ^= bit
                diff &= ~bit
                if self.state & bit and self.counts[i] < 255:
                    self.counts[i] += 1
        self._pending = diff

    def take_counts(self):
        """The counts since the last call, which are then cleared."""
        out = bytes(self.counts)
        if out != _NO_COUNTS:  # mostly nothing counted: nothing to clear
            for i in range(codec.N_INPUTS):
                self.counts[i] = 0
        return out


def lamp_bits(codes, n, flash_on, buf):
    """Fill `buf` (LAMP_BYTES) with lamp bits for driven `codes[:n]`.

    Channel c uses output bits 3c (red / don't walk), 3c+1 (yellow), 3c+2
    (green / walk); output bit b is on chip b // 8, pin QA + b % 8. buf is in
    shift-out order: buf[0] is for the last chip of the chain, so sending buf
    MSB first leaves chip k holding output bits 8k..8k+7. FLASH_RED and
    FLASH_YELLOW light their lamp only while flash_on.
    """
    for k in range(LAMP_BYTES):
        buf[k] = 0
    for c in range(n):
        lamps = monitor.code_lamps(codes[c], flash_on)
        bit = 3 * c
        while lamps:
            if lamps & 1:
                buf[LAMP_BYTES - 1 - (bit >> 3)] |= 1 << (bit & 7)
            lamps >>= 1
            bit += 1
    return buf


class Board:
    """Sans-IO board: receive(now, bytes) -> reply bytes; tick(now) between.

    Attributes: safety (BoardSafety), monitor (FieldMonitor), inputs (Inputs),
    decoder (codec.Decoder), self_test (SELF_TEST_*), boots, record (the stored
    record as unpack_record gives it, or None).
    """

    def __init__(self, now_ms, firmware=FIRMWARE_VERSION, debounce_ms=DEBOUNCE_MS, store=None):
        self.firmware = firmware
        self.safety = board_safety.BoardSafety(now_ms)
        self.monitor = monitor.FieldMonitor(now_ms)
        self.inputs = Inputs(now_ms, debounce_ms)
        self.decoder = codec.Decoder()
        self.hello_ok = False  # a HELLO with our protocol version since reset
        self.self_test = SELF_TEST_NOT_RUN
        self.store = store if store is not None else RecordStore()
        self.record = unpack_record(self.store.load())
        self.boots = 1 if self.record is None else (self.record[0] + 1) & 0xFFFF
        rec = self.record if self.record is not None else (0, 0, 0, 0, 0)
        self.store.save(pack_record(self.boots, rec[1], rec[2], rec[3], rec[4]))
        self.uptime_ms = 0
        self._last_ms = now_ms
        self._recorded = False  # this latch's fault is in the record
        self._seq = 0
        self._dropped_reported = 0

    def _next_seq(self):
        s = self._seq
        self._seq = codec.next_seq(s)
        return s

    def tick(self, now_ms):
        """Watchdog and all-red timing, the fault record; call every loop. Returns the state."""
        dt = board_safety.ticks_diff(now_ms, self._last_ms)
        self._last_ms = now_ms
        if dt > 0:
            up = self.uptime_ms + dt
            self.uptime_ms = up if up < 0xFFFFFFFF else 0xFFFFFFFF
        state = self.safety.tick(now_ms)
        self._keep_record()
        return state

    def _keep_record(self):
        s = self.safety
        if s.state != codec.STATE_FLASH:
            self._recorded = False
        elif not self._recorded and codec.FAULT_CLASS[s.fault] not in _NOT_RECORDED:
            self._recorded = True
            self.record = (self.boots, s.fault, s.fault_channels, self.uptime_ms, self.boots)
            self.store.save(pack_record(*self.record))

    def run_self_test(self, now_ms, sensed_off, pattern):
        """The power-up check of the sensing (monitor.self_test), once, before CONFIG.

        Returns 0 or the failing channels' bitmask; a failure latches FAULT_SELF_TEST.
        """
        bad = monitor.self_test(sensed_off, pattern)
        self.self_test = SELF_TEST_FAILED if bad else SELF_TEST_OK
        if bad:
            s = self.safety
            s.fault = codec.FAULT_SELF_TEST  # replaces POWER_ON: it is why we stay in flash
            s.fault_channels = bad & 0xFFFFFFFF
            self._keep_record()
        return bad

    def sense(self, now_ms, sensed, flash_on):
        """The sense inputs read this loop (after the lamps were driven). Returns a fault or 0."""
        s = self.safety
        fault = self.monitor.update(now_ms, s, sensed, flash_on)
        if fault:
            s.force_flash(now_ms, fault, self.monitor.channels)
            self._keep_record()
        return fault

    def sample_inputs(self, now_ms, raw):
        """Raw input bitmask from the pins."""
        self.inputs.sample(now_ms, raw)

    def receive(self, now_ms, data):
        """Bytes from the host; returns the bytes to send back (maybe b"")."""
        out = b""
        for msg in self.decoder.feed(data):
            out += self.handle(now_ms, msg)
        return out

    def handle(self, now_ms, msg):
        """One decoded message (type, seq, body); returns the encoded reply."""
        t, seq, body = msg
        s = self.safety
        if t == codec.MSG_OUTPUTS:
            s.outputs(now_ms, body["codes"], body["flags"])
            return self.status(seq)
        if t == codec.MSG_HELLO:
            self.hello_ok = body["version"] == codec.PROTOCOL_VERSION
            rec = self.record if self.record is not None else (0, 0, 0, 0, 0)
            return codec.encode_hello_reply(
                self._next_seq(),
                self.firmware,
                s.state,
                s.fault,
                s.channels,
                s.config_hash,
                codec.PROTOCOL_VERSION,
                (rec[1], self.self_test, self.boots, rec[4], rec[2], rec[3]),
            )
        if t == codec.MSG_CONFIG:
            reason = codec.NAK_NO_HELLO if not self.hello_ok else s.configure(now_ms, body)
            if reason:
                return codec.encode_nak(self._next_seq(), t, seq, reason)
            return codec.encode_config_ack(self._next_seq(), s.config_hash)
        if t == codec.MSG_RECOVER:
            if not self.hello_ok:
                reason = codec.NAK_NO_HELLO
            elif self.self_test == SELF_TEST_FAILED:
                reason = codec.NAK_SELF_TEST
            else:
                reason = s.recover(now_ms, body["config_hash"])
            if reason:
                return codec.encode_nak(self._next_seq(), t, seq, reason)
            return codec.encode_ack(self._next_seq(), t, seq)
        return codec.encode_nak(self._next_seq(), t, seq, codec.NAK_UNEXPECTED)

    def status(self, answered_seq):
        """The STATUS frame answering OUTPUTS `answered_seq`; clears the edge counts."""
        s = self.safety
        dropped = self.decoder.dropped()
        rx_errors = dropped - self._dropped_reported
        self._dropped_reported = dropped
        return codec.encode_status(
            self._next_seq(),
            s.state,
            s.fault,
            answered_seq,
            self.inputs.state,
            self.inputs.take_counts(),
            s.lamps(),
            rx_errors if rx_errors < 255 else 255,
            s.fault_channels,
        )
