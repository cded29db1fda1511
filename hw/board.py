"""The board's message handling, input conditioning and lamp bits: pure, shared by Pico and sim.

Board turns received bytes into replies (HELLO -> HELLO_REPLY, CONFIG ->
CONFIG_ACK or NAK, RECOVER -> ACK or NAK, OUTPUTS -> STATUS) around one
BoardSafety; Inputs debounces the opto inputs and counts rising edges;
lamp_bits maps driven state codes to the 74HC595 chain (hw/PINMAP.md).
hw/main.py only moves bytes and bits between these and the pins; the
simulator's virtual board calls the same objects.
"""

from . import board_safety, codec

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


FIRMWARE_VERSION = "hw-0.1.0"

DEBOUNCE_MS = const(20)  # an input level must hold this long to count
LAMP_BYTES = const(12)  # 32 channels x 3 lamps = 96 bits = 12 x 74HC595

_LAMP_RED = const(1)
_LAMP_YELLOW = const(2)
_LAMP_GREEN = const(4)


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
        code = codes[c]
        if code == codec.RED:
            lamps = _LAMP_RED
        elif code == codec.YELLOW:
            lamps = _LAMP_YELLOW
        elif code == codec.GREEN:
            lamps = _LAMP_GREEN
        elif code == codec.FLASH_RED:
            lamps = _LAMP_RED if flash_on else 0
        elif code == codec.FLASH_YELLOW:
            lamps = _LAMP_YELLOW if flash_on else 0
        else:
            lamps = 0
        bit = 3 * c
        while lamps:
            if lamps & 1:
                buf[LAMP_BYTES - 1 - (bit >> 3)] |= 1 << (bit & 7)
            lamps >>= 1
            bit += 1
    return buf


class Board:
    """Sans-IO board: receive(now, bytes) -> reply bytes; tick(now) between.

    Attributes: safety (BoardSafety), inputs (Inputs), decoder (codec.Decoder).
    """

    def __init__(self, now_ms, firmware=FIRMWARE_VERSION, debounce_ms=DEBOUNCE_MS):
        self.firmware = firmware
        self.safety = board_safety.BoardSafety(now_ms)
        self.inputs = Inputs(now_ms, debounce_ms)
        self.decoder = codec.Decoder()
        self.hello_ok = False  # a HELLO with our protocol version since reset
        self._seq = 0
        self._dropped_reported = 0

    def _next_seq(self):
        s = self._seq
        self._seq = codec.next_seq(s)
        return s

    def tick(self, now_ms):
        """Watchdog and all-red timing; call every loop. Returns the board state."""
        return self.safety.tick(now_ms)

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
            return codec.encode_hello_reply(
                self._next_seq(), self.firmware, s.state, s.fault, s.channels, s.config_hash
            )
        if t == codec.MSG_CONFIG:
            reason = codec.NAK_NO_HELLO if not self.hello_ok else s.configure(now_ms, body)
            if reason:
                return codec.encode_nak(self._next_seq(), t, seq, reason)
            return codec.encode_config_ack(self._next_seq(), s.config_hash)
        if t == codec.MSG_RECOVER:
            if not self.hello_ok:
                reason = codec.NAK_NO_HELLO
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
        )
