"""Wire codec of the host <-> IO-board serial link; one module for CPython and MicroPython.

The rules live in hw/PROTOCOL.md; this module is their reference implementation.
In short:

  wire frame   = COBS(raw) 0x00
  raw          = type:u8 seq:u8 payload... crc:u16le
  crc          = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection,
                 no final xor) over type, seq and payload
  multi-byte fields are little-endian; channel state codes are 4 bits, two per
  byte, even channel in the low nibble.

Written in the subset of Python that MicroPython runs, because the same file is
used by the host runtime, the simulator's virtual board and the board itself:
no annotations, no dataclasses, no struct formats, integers and bytearrays only.
COBS and both CRCs are written out here (MicroPython has no `cobs` package and
no CRC-16); they are small enough to port line by line to C.

Encoders (`encode_*`) check their arguments and raise ValueError on a value that
does not fit its field: that is a bug in the caller. The decoder never raises:
it takes bytes as they arrive, returns complete messages and counts every frame
it drops (bad COBS, bad CRC, bad length, unknown type).
"""

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


PROTOCOL_VERSION = const(2)

MAX_CHANNELS = const(32)
N_INPUTS = const(16)
FIRMWARE_LEN = const(16)  # HELLO_REPLY firmware version field, ASCII, NUL padded

TICK_MS = const(100)  # the host sends OUTPUTS every tick
WATCHDOG_MIN_MS = const(100)
WATCHDOG_MAX_MS = const(1000)
WATCHDOG_DEFAULT_MS = const(500)

# Message types. Host -> board below 0x80, board -> host from 0x80.
MSG_HELLO = const(0x01)
MSG_CONFIG = const(0x02)
MSG_OUTPUTS = const(0x03)
MSG_RECOVER = const(0x04)
MSG_HELLO_REPLY = const(0x81)
MSG_CONFIG_ACK = const(0x82)
MSG_STATUS = const(0x83)
MSG_ACK = const(0x84)
MSG_NAK = const(0x85)

# Channel state codes (4 bits on the wire). Pedestrian channels: RED = don't
# walk, GREEN = walk, FLASH_RED = flashing don't walk. 6..15 are reserved.
DARK = const(0)
RED = const(1)
YELLOW = const(2)
GREEN = const(3)
FLASH_RED = const(4)
FLASH_YELLOW = const(5)

# Channel kinds (CONFIG): which change interval the board enforces.
KIND_VEHICLE = const(0)  # GREEN/FLASH_YELLOW -> YELLOW -> RED
KIND_PED = const(1)  # GREEN (walk) -> FLASH_RED (ped clearance) -> RED

# Flash colours (CONFIG): what a channel shows while the board is in flash.
FLASH_COLOUR_RED = const(0)
FLASH_COLOUR_YELLOW = const(1)
FLASH_COLOUR_DARK = const(2)

# Board states (HELLO_REPLY, STATUS).
STATE_ALL_RED = const(0)  # start-up all-red clearance on the way out of flash
STATE_STARTING = const(0)  # the same state, by its other name
STATE_RUNNING = const(1)  # lamps follow the host's OUTPUTS
STATE_FLASH = const(2)  # latched flash; only RECOVER leaves it

# Fault codes (HELLO_REPLY, STATUS): why the board is, or last was, in flash.
# hw/board_safety.py states which rule raises which code.
FAULT_NONE = const(0)
FAULT_POWER_ON = const(1)  # flash since reset; normal start, not a failure
FAULT_CONFLICT = const(2)  # two conflicting channels both not stopped
FAULT_CHANGE_SKIPPED = const(3)  # GREEN/walk left without YELLOW/ped clearance
FAULT_CHANGE_SHORT = const(4)  # YELLOW/ped clearance shorter than its minimum
FAULT_RED_CLEARANCE = const(5)  # GREEN before conflicting channels cleared
FAULT_BAD_SEQUENCE = const(6)  # YELLOW -> GREEN, RED -> YELLOW and the like
FAULT_BAD_MAP = const(7)  # reserved code, code wrong for kind, wrong count
FAULT_WATCHDOG = const(8)  # no valid OUTPUTS within the watchdog time
FAULT_HOST_FLASH = const(9)  # the host asked for flash (OUTPUTS flag)
FAULT_NOT_RUNNING = const(10)  # non-red command during the start-up all-red
FAULT_INTERNAL = const(11)  # firmware error caught by the pin loop
# Version 2: the pair intergreens and the field monitor (lamp sensing, hw/monitor.py).
FAULT_INTERGREEN = const(12)  # a green onset before its pair's intergreen
FAULT_FIELD_CONFLICT = const(13)  # conflicting indications sensed on the field
FAULT_RED_FAIL = const(14)  # no indication at all sensed on a channel (red missing)
FAULT_DUAL_INDICATION = const(15)  # two colours sensed on one head (green with yellow/red)
FAULT_FIELD_CLEARANCE = const(16)  # a sensed yellow or red clearance below its minimum
FAULT_MISMATCH = const(17)  # sensed lamps differ from the driven ones for too long
FAULT_SELF_TEST = const(18)  # the power-up self-test of the sensing failed

# Fault classes (the fault record, HELLO_REPLY), in the terms of EN 12675's list of
# faults a signal controller must detect, one per fault code above.
CLASS_NONE = const(0)
CLASS_CONFLICTING_SIGNALS = const(1)  # conflicting greens (commanded or sensed)
CLASS_INTERGREEN = const(2)  # intergreen / clearance / minimum time violated
CLASS_ABSENCE_OF_RED = const(3)  # red lamp failure: no red on a stopped head
CLASS_CONTRADICTORY_SIGNALS = const(4)  # green with red or yellow on one head
CLASS_NON_COMPLIANCE = const(5)  # signals not as commanded / invalid command
CLASS_COMMUNICATION = const(6)  # the host went silent or asked for flash
CLASS_EQUIPMENT = const(7)  # self-test or internal failure of the board
FAULT_CLASS = b"\x00\x00\x01\x05\x02\x02\x05\x05\x06\x06\x05\x07\x02\x01\x03\x04\x02\x05\x07"

# OUTPUTS flags.
OUTPUTS_FLAG_FLASH = const(0x01)  # host requests flash (its monitor tripped)

# NAK reasons.
NAK_NO_HELLO = const(1)  # no HELLO with this protocol version since reset
NAK_BAD_CONFIG = const(2)  # CONFIG fails the board's checks
NAK_BAD_STATE = const(3)  # not allowed in the current board state
NAK_NOT_CONFIGURED = const(4)  # RECOVER before any CONFIG
NAK_HASH_MISMATCH = const(5)  # RECOVER names another config than the stored one
NAK_UNEXPECTED = const(6)  # a message type the board does not accept
NAK_SELF_TEST = const(7)  # RECOVER refused: the power-up self-test failed

MAX_INTERGREENS = const(255)  # pair intergreens in one CONFIG
# An intergreen names an indication of each channel (the top 2 bits of its channel
# byte): any GO (as version 2 first read these records), the steady one (green ball
# or arrow, walk), or the flashing yellow arrow. 3 is refused by the board.
IG_ANY = const(0)
IG_STEADY = const(1)
IG_FYA = const(2)
_IG_CHANNEL = const(0x3F)  # the channel in the low 6 bits of the byte

_HELLO_LEN = const(1)
_HELLO_REPLY_LEN = const(24)
_HELLO_RECORD_LEN = const(38)  # version 2: with the fault record
_CONFIG_HEAD = const(3)
_CONFIG_REC = const(10)
_CONFIG_FYA = const(4)  # per channel, after the records: the flashing-yellow mask
_CONFIG_IG = const(4)  # per intergreen: leaving u8, entering u8, ms u16
_OUTPUTS_HEAD = const(2)
_STATUS_HEAD = const(23)
_STATUS_TAIL = const(4)  # after the lamps: fault_channels u32
# CONFIG with 32 channels and 255 intergreens: 3 + 32 * 14 + 1 + 255 * 4
MAX_PAYLOAD_LEN = const(1472)
MAX_FRAME_LEN = const(1476)  # type + seq + payload + crc
MAX_WIRE_LEN = const(1482)  # COBS adds 1 byte per 254, rounded up; delimiter not counted


def next_seq(seq):
    """The sequence number after `seq` (wraps 255 -> 0)."""
    return (seq + 1) & 0xFF


# --- checksums ---------------------------------------------------------------


try:  # CPython's C CRC-16/CCITT (the host and the simulator); MicroPython has none
    from binascii import crc_hqx as _crc_hqx
except ImportError:
    _crc_hqx = None


def _crc16(buf, start, end):
    if _crc_hqx is not None:
        return _crc_hqx(memoryview(buf)[start:end], 0xFFFF)
    crc = 0xFFFF
    for i in range(start, end):
        crc ^= buf[i] << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def crc16(data):
    """CRC-16/CCITT-FALSE of `data`; check value crc16(b"123456789") == 0x29B1."""
    return _crc16(data, 0, len(data))


def crc32(data):
    """CRC-32 (ISO-HDLC, as zlib.crc32); check value crc32(b"123456789") == 0xCBF43926.

    Kept in two 16-bit halves so that MicroPython (31-bit small ints) allocates
    nothing per byte: a 1.5 kB CONFIG is hashed without making garbage.
    """
    lo = 0xFFFF
    hi = 0xFFFF
    for i in range(len(data)):
        lo ^= data[i]
        for _ in range(8):
            carry = lo & 1
            lo = (lo >> 1) | ((hi & 1) << 15)
            hi >>= 1
            if carry:
                lo ^= 0x8320
                hi ^= 0xEDB8
    return ((hi ^ 0xFFFF) << 16) | (lo ^ 0xFFFF)


# --- COBS --------------------------------------------------------------------


def cobs_encode(data):
    """Consistent Overhead Byte Stuffing: `data` without any 0x00 byte.

    A block is a code byte c (1..255) and c - 1 data bytes; a block with c < 255
    stands for its data and one 0x00, except for the last block.
    """
    n = len(data)
    out = bytearray(n + n // 254 + 1)
    code_at = 0
    o = 1
    code = 1
    for i in range(n):
        b = data[i]
        if b == 0:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            if code == 0xFF and i + 1 < n:
                out[code_at] = code
                code_at = o
                o += 1
                code = 1
    out[code_at] = code
    return bytes(out[:o])


def _cobs_decode_into(src, n, dst):
    # Decodes src[:n] into dst; returns the decoded length, or -1 if src[:n]
    # is not valid COBS (a zero byte, or a block running past the end).
    i = 0
    o = 0
    while i < n:
        code = src[i]
        if code == 0:
            return -1
        end = i + code
        if end > n:
            return -1
        i += 1
        while i < end:
            b = src[i]
            if b == 0:
                return -1
            dst[o] = b
            o += 1
            i += 1
        if code != 0xFF and i < n:
            dst[o] = 0
            o += 1
    return o


def cobs_decode(data):
    """Inverse of cobs_encode; None if `data` is not valid COBS."""
    out = bytearray(len(data))
    n = _cobs_decode_into(data, len(data), out)
    if n < 0:
        return None
    return bytes(out[:n])


# --- field helpers -----------------------------------------------------------


def _u16(buf, i):
    return buf[i] | (buf[i + 1] << 8)


def _u32(buf, i):
    return buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)


def _put_u16(buf, i, v):
    buf[i] = v & 0xFF
    buf[i + 1] = (v >> 8) & 0xFF


def _put_u32(buf, i, v):
    buf[i] = v & 0xFF
    buf[i + 1] = (v >> 8) & 0xFF
    buf[i + 2] = (v >> 16) & 0xFF
    buf[i + 3] = (v >> 24) & 0xFF


def _check(v, lo, hi, what):
    if v < lo or v > hi:
        raise ValueError(what + " out of range")
    return v


def pack_codes(codes):
    """Channel state codes, 4 bits each, two per byte, even channel in the low nibble."""
    n = len(codes)
    out = bytearray((n + 1) // 2)
    for i in range(n):
        c = _check(codes[i], 0, 15, "state code")
        if i & 1:
            out[i >> 1] |= c << 4
        else:
            out[i >> 1] = c
    return bytes(out)


def _unpack_codes(buf, start, n):
    codes = []
    for i in range(n):
        b = buf[start + (i >> 1)]
        codes.append((b >> 4) if i & 1 else (b & 0x0F))
    return codes


def unpack_codes(data, n):
    """Inverse of pack_codes for `n` channels."""
    return _unpack_codes(data, 0, n)


def _frame(mtype, seq, payload):
    _check(seq, 0, 255, "seq")
    n = len(payload)
    raw = bytearray(n + 4)
    raw[0] = mtype
    raw[1] = seq
    raw[2 : 2 + n] = payload
    crc = _crc16(raw, 0, n + 2)
    raw[n + 2] = crc & 0xFF
    raw[n + 3] = crc >> 8
    return cobs_encode(raw) + b"\x00"


# --- encoders ----------------------------------------------------------------


def encode_hello(seq, version=PROTOCOL_VERSION):
    """HELLO, host -> board: the host's protocol version."""
    return _frame(MSG_HELLO, seq, bytes((_check(version, 0, 255, "version"),)))


def encode_hello_reply(
    seq, firmware, state, fault, channels, config_hash, version=PROTOCOL_VERSION, record=None
):
    """HELLO_REPLY, board -> host. `firmware` is printable ASCII, at most 16 bytes.

    record (version 2): (fault, self_test, boots, rec_boot, channels, uptime_ms)
    of the fault record the board keeps across resets; None: all zero. A
    version-1 reply (version=1) has no record.
    """
    fw = firmware.encode()
    if len(fw) > FIRMWARE_LEN:
        raise ValueError("firmware version longer than 16 bytes")
    p = bytearray(_HELLO_REPLY_LEN if version < 2 else _HELLO_RECORD_LEN)
    if version >= 2 and record is not None:
        p[24] = _check(record[0], 0, 255, "record fault")
        p[25] = _check(record[1], 0, 255, "self test")
        _put_u16(p, 26, _check(record[2], 0, 0xFFFF, "boots"))
        _put_u16(p, 28, _check(record[3], 0, 0xFFFF, "record boot"))
        _put_u32(p, 30, _check(record[4], 0, 0xFFFFFFFF, "record channels"))
        _put_u32(p, 34, _check(record[5], 0, 0xFFFFFFFF, "record uptime"))
    p[0] = _check(version, 0, 255, "version")
    p[1] = _check(state, 0, 255, "state")
    p[2] = _check(fault, 0, 255, "fault")
    p[3] = _check(channels, 0, MAX_CHANNELS, "channels")
    _put_u32(p, 4, _check(config_hash, 0, 0xFFFFFFFF, "config_hash"))
    for i in range(len(fw)):
        p[8 + i] = _check(fw[i], 0x20, 0x7E, "firmware character")
    return _frame(MSG_HELLO_REPLY, seq, p)


def config_payload(
    conflicts,
    min_yellow_ms,
    min_red_ms,
    flash,
    kinds,
    watchdog_ms=WATCHDOG_DEFAULT_MS,
    fya_conflicts=None,
    intergreens=(),
):
    """The canonical CONFIG payload; its CRC-32 is the config hash.

    conflicts[i] is channel i's conflict bitmask for its steady indications
    (green ball or arrow, walk, their yellow / clearance): bit j set: i and j
    must never both be active; fya_conflicts[i] (default conflicts[i]) the same
    for its flashing yellow arrow and the yellow that ends it; flash[i] a
    FLASH_COLOUR_*; kinds[i] a KIND_*; intergreens a list of (leaving,
    leaving_indication, entering, entering_indication, ms), indications IG_*:
    entering may not start that indication until ms after leaving's indication
    ended. Only field ranges are checked here; the board checks the rest.
    """
    n = len(conflicts)
    _check(n, 1, MAX_CHANNELS, "channel count")
    if len(min_yellow_ms) != n or len(min_red_ms) != n or len(flash) != n or len(kinds) != n:
        raise ValueError("per-channel lists differ in length")
    if fya_conflicts is None:
        fya_conflicts = conflicts
    if len(fya_conflicts) != n:
        raise ValueError("per-channel lists differ in length")
    m = _check(len(intergreens), 0, MAX_INTERGREENS, "intergreen count")
    fya_at = _CONFIG_HEAD + _CONFIG_REC * n
    ig_at = fya_at + _CONFIG_FYA * n + 1
    p = bytearray(ig_at + _CONFIG_IG * m)
    p[0] = n
    _put_u16(p, 1, _check(watchdog_ms, WATCHDOG_MIN_MS, WATCHDOG_MAX_MS, "watchdog_ms"))
    for i in range(n):
        r = _CONFIG_HEAD + _CONFIG_REC * i
        _put_u32(p, r, _check(conflicts[i], 0, 0xFFFFFFFF, "conflict mask"))
        _put_u16(p, r + 4, _check(min_yellow_ms[i], 0, 0xFFFF, "min_yellow_ms"))
        _put_u16(p, r + 6, _check(min_red_ms[i], 0, 0xFFFF, "min_red_ms"))
        p[r + 8] = _check(flash[i], 0, 255, "flash colour")
        p[r + 9] = _check(kinds[i], 0, 255, "kind")
        _put_u32(p, fya_at + 4 * i, _check(fya_conflicts[i], 0, 0xFFFFFFFF, "fya mask"))
    p[ig_at - 1] = m
    for k in range(m):
        leaving, leaving_ind, entering, entering_ind, ms = intergreens[k]
        r = ig_at + _CONFIG_IG * k
        p[r] = _check(leaving, 0, _IG_CHANNEL, "intergreen channel") | (
            _check(leaving_ind, 0, 3, "intergreen indication") << 6
        )
        p[r + 1] = _check(entering, 0, _IG_CHANNEL, "intergreen channel") | (
            _check(entering_ind, 0, 3, "intergreen indication") << 6
        )
        _put_u16(p, r + 2, _check(ms, 0, 0xFFFF, "intergreen ms"))
    return bytes(p)


def config_hash(payload):
    """Config hash: CRC-32 of the canonical CONFIG payload (see config_payload)."""
    return crc32(payload)


def encode_config(
    seq,
    conflicts,
    min_yellow_ms,
    min_red_ms,
    flash,
    kinds,
    watchdog_ms=WATCHDOG_DEFAULT_MS,
    fya_conflicts=None,
    intergreens=(),
):
    """CONFIG, host -> board; arguments as config_payload."""
    payload = config_payload(
        conflicts, min_yellow_ms, min_red_ms, flash, kinds, watchdog_ms, fya_conflicts, intergreens
    )
    return _frame(MSG_CONFIG, seq, payload)


def encode_config_ack(seq, config_hash):
    """CONFIG_ACK, board -> host: the hash of the config now stored."""
    p = bytearray(4)
    _put_u32(p, 0, _check(config_hash, 0, 0xFFFFFFFF, "config_hash"))
    return _frame(MSG_CONFIG_ACK, seq, p)


def encode_outputs(seq, codes, flags=0):
    """OUTPUTS, host -> board, every tick: one state code per channel."""
    n = _check(len(codes), 0, MAX_CHANNELS, "channel count")
    return _frame(MSG_OUTPUTS, seq, bytes((n, _check(flags, 0, 255, "flags"))) + pack_codes(codes))


def encode_status(
    seq, state, fault, answered_seq, inputs, counts, lamps, rx_errors=0, fault_channels=0
):
    """STATUS, board -> host, the answer to each OUTPUTS.

    inputs: u16 bitmask (bit i = input i active); counts: 16 rising-edge counts
    (0..255) since the last STATUS; lamps: the state codes actually driven;
    fault_channels: bitmask of the channels the current fault names.
    """
    if len(counts) != N_INPUTS:
        raise ValueError("counts must have 16 entries")
    n = _check(len(lamps), 0, MAX_CHANNELS, "channel count")
    p = bytearray(_STATUS_HEAD)
    p[0] = _check(state, 0, 255, "state")
    p[1] = _check(fault, 0, 255, "fault")
    p[2] = _check(answered_seq, 0, 255, "answered_seq")
    p[3] = _check(rx_errors, 0, 255, "rx_errors")
    _put_u16(p, 4, _check(inputs, 0, 0xFFFF, "inputs"))
    for i in range(N_INPUTS):
        p[6 + i] = _check(counts[i], 0, 255, "count")
    p[22] = n
    tail = bytearray(_STATUS_TAIL)
    _put_u32(tail, 0, _check(fault_channels, 0, 0xFFFFFFFF, "fault_channels"))
    return _frame(MSG_STATUS, seq, bytes(p) + pack_codes(lamps) + bytes(tail))


def encode_recover(seq, config_hash):
    """RECOVER, host -> board: leave latched flash, for the config with this hash."""
    p = bytearray(4)
    _put_u32(p, 0, _check(config_hash, 0, 0xFFFFFFFF, "config_hash"))
    return _frame(MSG_RECOVER, seq, p)


def encode_ack(seq, acked_type, acked_seq):
    """ACK, board -> host: the message (type, seq) was carried out."""
    return _frame(
        MSG_ACK, seq, bytes((_check(acked_type, 0, 255, "type"), _check(acked_seq, 0, 255, "seq")))
    )


def encode_nak(seq, acked_type, acked_seq, reason):
    """NAK, board -> host: the message (type, seq) was refused for `reason` (NAK_*)."""
    p = bytes(
        (
            _check(acked_type, 0, 255, "type"),
            _check(acked_seq, 0, 255, "seq"),
            _check(reason, 0, 255, "reason"),
        )
    )
    return _frame(MSG_NAK, seq, p)


# --- decoding ----------------------------------------------------------------


def _ascii(buf, start, n):
    # Printable ASCII up to the first NUL; anything else becomes "?".
    out = bytearray()
    for i in range(start, start + n):
        b = buf[i]
        if b == 0:
            break
        out.append(b if 0x20 <= b <= 0x7E else 0x3F)
    return bytes(out).decode()


def _parse(t, buf, n):
    # Payload is buf[2:n - 2]. Returns the body dict, or None on a bad length.
    p = 2
    ln = n - 4
    if t == MSG_OUTPUTS:
        if ln < _OUTPUTS_HEAD:
            return None
        k = buf[p]
        if k > MAX_CHANNELS or ln != _OUTPUTS_HEAD + (k + 1) // 2:
            return None
        return {"flags": buf[p + 1], "codes": _unpack_codes(buf, p + 2, k)}
    if t == MSG_STATUS:
        if ln < _STATUS_HEAD:
            return None
        k = buf[p + 22]
        if k > MAX_CHANNELS or ln != _STATUS_HEAD + (k + 1) // 2 + _STATUS_TAIL:
            return None
        counts = []
        for i in range(N_INPUTS):
            counts.append(buf[p + 6 + i])
        return {
            "state": buf[p],
            "fault": buf[p + 1],
            "answered_seq": buf[p + 2],
            "rx_errors": buf[p + 3],
            "inputs": _u16(buf, p + 4),
            "counts": counts,
            "lamps": _unpack_codes(buf, p + _STATUS_HEAD, k),
            "fault_channels": _u32(buf, p + _STATUS_HEAD + (k + 1) // 2),
        }
    if t == MSG_HELLO:
        # Longer HELLOs are accepted (extra bytes ignored) so that any version
        # can at least learn the other side's version.
        if ln < _HELLO_LEN:
            return None
        return {"version": buf[p]}
    if t == MSG_HELLO_REPLY:
        if ln < _HELLO_REPLY_LEN:
            return None
        body = {
            "version": buf[p],
            "state": buf[p + 1],
            "fault": buf[p + 2],
            "channels": buf[p + 3],
            "config_hash": _u32(buf, p + 4),
            "firmware": _ascii(buf, p + 8, FIRMWARE_LEN),
            "record": None,
        }
        if ln >= _HELLO_RECORD_LEN:
            body["record"] = {
                "fault": buf[p + 24],
                "self_test": buf[p + 25],
                "boots": _u16(buf, p + 26),
                "boot": _u16(buf, p + 28),
                "channels": _u32(buf, p + 30),
                "uptime_ms": _u32(buf, p + 34),
            }
        return body
    if t == MSG_CONFIG:
        if ln < _CONFIG_HEAD:
            return None
        k = buf[p]
        fya_at = p + _CONFIG_HEAD + _CONFIG_REC * k
        ig_at = fya_at + _CONFIG_FYA * k + 1
        if k > MAX_CHANNELS or ln < ig_at - p:
            return None
        m = buf[ig_at - 1]
        if ln != ig_at - p + _CONFIG_IG * m:
            return None
        fya = []
        for i in range(k):
            fya.append(_u32(buf, fya_at + 4 * i))
        intergreens = []
        for i in range(m):
            r = ig_at + _CONFIG_IG * i
            a = buf[r]
            b = buf[r + 1]
            intergreens.append((a & _IG_CHANNEL, a >> 6, b & _IG_CHANNEL, b >> 6, _u16(buf, r + 2)))
        conflicts = []
        min_yellow = []
        min_red = []
        flash = []
        kinds = []
        for i in range(k):
            r = p + _CONFIG_HEAD + _CONFIG_REC * i
            conflicts.append(_u32(buf, r))
            min_yellow.append(_u16(buf, r + 4))
            min_red.append(_u16(buf, r + 6))
            flash.append(buf[r + 8])
            kinds.append(buf[r + 9])
        return {
            "watchdog_ms": _u16(buf, p + 1),
            "conflicts": conflicts,
            "min_yellow_ms": min_yellow,
            "min_red_ms": min_red,
            "flash": flash,
            "kinds": kinds,
            "fya_conflicts": fya,
            "intergreens": intergreens,
            "config_hash": crc32(memoryview(buf)[p : p + ln]),
        }
    if t in (MSG_CONFIG_ACK, MSG_RECOVER):
        if ln != 4:
            return None
        return {"config_hash": _u32(buf, p)}
    if t == MSG_ACK:
        if ln != 2:
            return None
        return {"acked_type": buf[p], "acked_seq": buf[p + 1]}
    if t == MSG_NAK:
        if ln != 3:
            return None
        return {"acked_type": buf[p], "acked_seq": buf[p + 1], "reason": buf[p + 2]}
    return None


_KNOWN_TYPES = (
    MSG_HELLO,
    MSG_CONFIG,
    MSG_OUTPUTS,
    MSG_RECOVER,
    MSG_HELLO_REPLY,
    MSG_CONFIG_ACK,
    MSG_STATUS,
    MSG_ACK,
    MSG_NAK,
)


class Decoder:
    """Incremental frame decoder for either direction of the link.

    feed(data) takes any chunk of received bytes and returns a list of complete
    messages, each a tuple (type, seq, body) with `body` a dict of the fields
    (see PROTOCOL.md for the names). It never raises on bad input; dropped
    frames are counted in n_bad_cobs, n_bad_crc, n_bad_length, n_unknown_type,
    good ones in n_frames. Empty frames (0x00 0x00) are ignored, not counted.
    Buffers are allocated once.
    """

    def __init__(self):
        self._wire = bytearray(MAX_WIRE_LEN)
        self._raw = bytearray(MAX_WIRE_LEN)
        self._n = 0
        self._overflow = False
        self.n_frames = 0
        self.n_bad_cobs = 0
        self.n_bad_crc = 0
        self.n_bad_length = 0
        self.n_unknown_type = 0

    def dropped(self):
        """Frames dropped so far, all reasons together."""
        return self.n_bad_cobs + self.n_bad_crc + self.n_bad_length + self.n_unknown_type

    def counters(self):
        """All counters by name."""
        return {
            "frames": self.n_frames,
            "bad_cobs": self.n_bad_cobs,
            "bad_crc": self.n_bad_crc,
            "bad_length": self.n_bad_length,
            "unknown_type": self.n_unknown_type,
        }

    def reset(self):
        """Forget a partly received frame (e.g. after reopening the port)."""
        self._n = 0
        self._overflow = False

    def feed(self, data):
        msgs = []
        wire = self._wire
        for i in range(len(data)):
            b = data[i]
            if b == 0:
                if self._overflow:
                    self.n_bad_length += 1
                    self._overflow = False
                elif self._n:
                    msg = self._end_frame()
                    if msg is not None:
                        msgs.append(msg)
                self._n = 0
            elif self._overflow:
                pass
            elif self._n < MAX_WIRE_LEN:
                wire[self._n] = b
                self._n += 1
            else:
                self._overflow = True
        return msgs

    def _end_frame(self):
        raw = self._raw
        n = _cobs_decode_into(self._wire, self._n, raw)
        if n < 0:
            self.n_bad_cobs += 1
            return None
        if n < 4 or n > MAX_FRAME_LEN:
            self.n_bad_length += 1
            return None
        if _crc16(raw, 0, n - 2) != _u16(raw, n - 2):
            self.n_bad_crc += 1
            return None
        t = raw[0]
        if t not in _KNOWN_TYPES:
            self.n_unknown_type += 1
            return None
        body = _parse(t, raw, n)
        if body is None:
            self.n_bad_length += 1
            return None
        self.n_frames += 1
        return (t, raw[1], body)


def decode_frame(data):
    """Decode one wire frame (trailing 0x00 optional): (type, seq, body) or None."""
    d = Decoder()
    msgs = d.feed(data)
    if not msgs:
        msgs = d.feed(b"\x00")
    if msgs:
        return msgs[0]
    return None


# On CPython (the host and the simulator, where binascii has the CRC) the byte loops
# above are swapped for whole-block versions with the same results: hw/codec_cpython.py,
# which is not part of the firmware. REFERENCE then holds the loops themselves.
if _crc_hqx is not None:
    from .codec_cpython import install

    install(globals())
