# This file must run under MicroPython too, so it has no annotations; mypy
# still checks its bodies but not that its functions call unannotated ones.
# mypy: disable-error-code="no-untyped-call"
"""Test program run unchanged under CPython and real MicroPython; outputs are compared line by line.

Written in the MicroPython subset like hw/ itself. Every function takes the hw
modules as arguments (`c` codec, `bs` board_safety, `bd` board) and an `out`
callable that receives one text line per result; each line is
"<section> <name> <canonical value>". Lines of CPython and MicroPython must be
equal. The data here (exact-byte vectors, safety scenarios with the expected
state and fault after every step) is also asserted on directly by the CPython
tests, so both interpreters are held to the same expectations.
"""

_HEX = "0123456789abcdef"


def canon(v):
    """A text form of nested results that both interpreters print the same way."""
    if v is None:
        return "N"
    if v is True:
        return "T"
    if v is False:
        return "F"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, (bytes, bytearray)):
        # Not bytes.hex(): MicroPython returns b"" (not "") for empty input.
        return "x" + "".join([_HEX[b >> 4] + _HEX[b & 15] for b in v])
    if isinstance(v, (list, tuple)):
        return "[" + ",".join([canon(x) for x in v]) + "]"
    if isinstance(v, dict):
        keys = sorted(v.keys())
        return "{" + ",".join([k + ":" + canon(v[k]) for k in keys]) + "}"
    return "?" + str(type(v))


# --- exact-byte vectors --------------------------------------------------------
# (name, function of the codec module giving the wire bytes, expected hex)

VECTORS = [
    ("hello", lambda c: c.encode_hello(0), "02010402eedb00"),
    (
        "hello_reply",
        lambda c: c.encode_hello_reply(0, "hw-0.2.0", 2, 1, 4, 0x71194848),
        "028111020201044848197168772d302e322e3001010101010101010101010101010101010101010103152200",
    ),
    (
        "hello_reply_record",
        lambda c: c.encode_hello_reply(
            0, "hw-0.2.0", 2, 14, 4, 0x71194848, 2, (14, 0, 7, 6, 0b10, 123456)
        ),
        "02811102020e044848197168772d302e322e3001010101010101020e02070206020201010440e20103592100",
    ),
    (
        "config",
        lambda c: c.encode_config(
            1,
            [0b1010, 0b0101, 0b0010, 0b0001],
            [3000, 3000, 5000, 5000],
            [1000, 1500, 1000, 1000],
            [1, 0, 2, 2],
            [0, 0, 1, 1],
            500,
        ),
        "07020104f4010a010106b80be803010205010105b80bdc050102020101088813"
        "e8030201010101088813e80302010a01010205010102020101020101010103"
        "9c0d00",
    ),
    (
        "config_fya_intergreen",
        lambda c: c.encode_config(
            1,
            [0b1010, 0b0101, 0b0010, 0b0001],
            [3000, 3000, 5000, 5000],
            [1000, 1500, 1000, 1000],
            [1, 0, 2, 2],
            [0, 0, 1, 1],
            500,
            [0b1000, 0b0101, 0b0010, 0b0001],
            [(0, 0, 1, 0, 4000), (1, 0, 0, 0, 4500)],
        ),
        "07020104f4010a010106b80be803010205010105b80bdc050102020101088813"
        "e8030201010101088813e803020108010102050101020201010201010102020501a00f01059411b94900",
    ),
    (
        "config_indication_intergreen",  # channel bytes 0x41: channel 1, its steady GO
        lambda c: c.encode_config(
            1,
            [0b10, 0b01],
            [3000, 3000],
            [1000, 1000],
            [0, 0],
            [0, 0],
            500,
            [0b10, 0b00],
            [(0, c.IG_ANY, 1, c.IG_STEADY, 4500), (1, c.IG_STEADY, 0, c.IG_ANY, 5500)],
        ),
        "07020102f40102010105b80be803010201010105b80be80301020201010101010102020541941141057c15607400",
    ),
    ("config_ack", lambda c: c.encode_config_ack(1, 0x71194848), "098201484819712f7300"),
    ("outputs", lambda c: c.encode_outputs(7, [3, 1, 1, 3, 2, 1, 1]), "040307070713311201902f00"),
    (
        "outputs_flash_flag",
        lambda c: c.encode_outputs(255, [1, 1, 1, 1], c.OUTPUTS_FLAG_FLASH),
        "0903ff04011111cc5500",
    ),
    ("outputs_empty", lambda c: c.encode_outputs(3, []), "03030301034c4600"),
    (
        "status",
        lambda c: c.encode_status(
            9,
            1,
            0,
            7,
            0x8005,
            [2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255],
            [3, 1, 1, 3, 2, 1, 1],
            0,
        ),
        "048309010207040580020201010101010101010101010107ff071331120101010103ad6b00",
    ),
    ("recover", lambda c: c.encode_recover(2, 0x71194848), "090402484819713cc400"),
    ("ack", lambda c: c.encode_ack(3, 4, 2), "0784030402df2600"),
    ("nak", lambda c: c.encode_nak(4, 2, 1, 2), "08850402010269a700"),
]


def codec_vectors(c, out):
    for name, make, _expected in VECTORS:
        frame = make(c)
        out("vector " + name + " " + canon(frame))
        out("decoded " + name + " " + canon(c.decode_frame(frame)))
    out("crc16 check " + canon(c.crc16(b"123456789")))
    out("crc32 check " + canon(c.crc32(b"123456789")))
    out("crc16 empty " + canon(c.crc16(b"")))
    out("crc32 empty " + canon(c.crc32(b"")))
    cases = [
        b"",
        b"\x00",
        b"\x00\x00",
        b"\x11\x22\x00\x33",
        b"\x11\x22\x33\x44",
        b"\x11\x00\x00\x00",
        bytes(range(1, 255)),
        bytes(range(1, 256)),
        bytes(range(0, 256)),
        bytes(range(1, 255)) + b"\x00",
        bytes(range(2, 256)) + b"\x00",
    ]
    for i in range(len(cases)):
        enc = c.cobs_encode(cases[i])
        out("cobs " + str(i) + " " + canon([len(enc), enc[:8], enc[-4:]]))
        out("uncobs " + str(i) + " " + canon(c.cobs_decode(enc) == cases[i]))
    for bad in (b"\x00", b"\x05\x11", b"\x02\x00", b"\x03\x11\x00\x01"):
        out("uncobs_bad " + canon(bad) + " " + canon(c.cobs_decode(bad)))
    out("pack " + canon(c.pack_codes([1, 2, 3, 4, 5])))
    out("unpack " + canon(c.unpack_codes(b"\x21\x43\x05", 5)))
    out("next_seq " + canon([c.next_seq(0), c.next_seq(254), c.next_seq(255)]))


def _errors(c, calls):
    # Which encoder calls raise ValueError (the codec's only exception).
    res = []
    for call in calls:
        try:
            call(c)
            res.append("ok")
        except ValueError:
            res.append("ValueError")
    return res


ENCODER_ERRORS = [
    lambda c: c.encode_hello(256),
    lambda c: c.encode_outputs(256, [1]),
    lambda c: c.encode_outputs(-1, [1]),
    lambda c: c.encode_outputs(0, [16]),
    lambda c: c.encode_outputs(0, [1] * 33),
    lambda c: c.encode_outputs(0, [1] * 32),
    lambda c: c.encode_hello_reply(0, "x" * 17, 0, 0, 0, 0),
    lambda c: c.encode_hello_reply(0, "x" * 16, 0, 0, 0, 0),
    lambda c: c.encode_hello_reply(0, "tab\there", 0, 0, 0, 0),
    lambda c: c.encode_config(0, [0], [0], [0], [0], [0], 99),
    lambda c: c.encode_config(0, [0], [0], [0], [0], [0], 1001),
    lambda c: c.encode_config(0, [0], [0], [0], [0], [0], 1000),
    lambda c: c.encode_config(0, [], [], [], [], [], 500),
    lambda c: c.encode_config(0, [0, 0], [0], [0], [0], [0], 500),
    lambda c: c.encode_config(0, [1 << 32], [0], [0], [0], [0], 500),
    lambda c: c.encode_config(0, [0], [65536], [0], [0], [0], 500),
    lambda c: c.encode_status(0, 0, 0, 0, 0x10000, [0] * 16, []),
    lambda c: c.encode_status(0, 0, 0, 0, 0, [0] * 15, []),
    lambda c: c.encode_status(0, 0, 0, 0, 0, [256] + [0] * 15, []),
    lambda c: c.encode_recover(0, -1),
    lambda c: c.encode_nak(0, 1, 1, 256),
]


def codec_errors(c, out):
    out("encoder_errors " + canon(_errors(c, ENCODER_ERRORS)))


# --- decoder: streams, garbage, deterministic fuzz ------------------------------


class Lcg:
    """Tiny deterministic random source (same numbers in both interpreters)."""

    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def _sample_frames(c):
    frames = []
    for _name, make, _expected in VECTORS:
        frames.append(make(c))
    return frames


def _summary(msgs):
    # (type, seq, body) of each message, bodies in canonical text.
    return [[m[0], m[1], canon(m[2])] for m in msgs]


def decoder_stream(c, out):
    frames = _sample_frames(c)
    stream = b"\x00\x00\xff\x13garbage\x00"
    for f in frames:
        stream += f + b"\x01\x02\x03\x00" + b"\x00"
    stream += b"\x05" * 400 + b"\x00" + frames[4]
    rng = Lcg(7)
    d = c.Decoder()
    msgs = []
    i = 0
    while i < len(stream):
        k = 1 + rng.next(40)
        msgs += d.feed(stream[i : i + k])
        i += k
    out("stream msgs " + canon(_summary(msgs)))
    out("stream counters " + canon(d.counters()))
    out("stream dropped " + canon(d.dropped()))
    whole = c.Decoder()
    same = _summary(whole.feed(stream)) == _summary(msgs)
    out("stream same_as_whole " + canon(same))


def _mutate(rng, frame):
    b = bytearray(frame)
    kind = rng.next(5)
    if kind == 0:
        i = rng.next(len(b))
        b[i] ^= 1 << rng.next(8)
    elif kind == 1:
        b = b[: rng.next(len(b))] + b"\x00"
    elif kind == 2:
        i = rng.next(len(b))
        b = b[:i] + bytes((rng.next(256),)) + b[i:]
    elif kind == 3:
        i = rng.next(len(b))
        b[i] = rng.next(256)
    else:
        b = bytearray()
        for _ in range(rng.next(60)):
            b.append(rng.next(256))
    return bytes(b)


def decoder_fuzz(c, out, first, last):
    """Rounds first..last-1; each chunk of rounds has its own seed."""
    frames = _sample_frames(c)
    rng = Lcg(12345 + first)
    d = c.Decoder()
    got = 0
    for r in range(first, last):
        f = frames[rng.next(len(frames))]
        data = _mutate(rng, f) if r % 4 else f
        msgs = d.feed(data)
        got += len(msgs)
        if msgs:
            out("fuzz " + str(r) + " " + canon(_summary(msgs)))
    out("fuzz counters " + str(first) + " " + canon(d.counters()))
    out("fuzz got " + str(first) + " " + canon(got))


# --- board safety scenarios ------------------------------------------------------
# Test intersection: ch0 NS through, ch1 EW through (vehicle); ch2 NS crossing
# (walks with NS), ch3 EW crossing (pedestrian). Conflicts: 0-1, 0-3, 1-2.

CONFLICTS = [0b1010, 0b0101, 0b0010, 0b0001]
MIN_YELLOW_MS = [3000, 3000, 5000, 5000]
MIN_RED_MS = [1000, 1500, 1000, 1000]
FLASH = [1, 0, 2, 2]  # NS flashes yellow, EW red, crossings dark
KINDS = [0, 0, 1, 1]
WATCHDOG_MS = 500

ALL_RED = [1, 1, 1, 1]
NS_GO = [3, 1, 3, 1]
EW_GO = [1, 3, 1, 3]

# Step: (now_ms, op, arg, expected state, expected fault, expected result).
# ops: "config" (arg: config kwargs or None for the test intersection),
# "recover" (arg: hash, or None for the stored one), "out" (arg: codes),
# "outf" (arg: (codes, flags)), "tick", "force" (arg: fault).
# Result: the op's return value (fault, NAK reason or state); None: not checked.
# States: 0 ALL_RED, 1 RUNNING, 2 FLASH. Faults: see hw/codec.py.


def _hold(t0, t1, codes, state=1, fault=0):
    return [(t, "out", codes, state, fault, 0) for t in range(t0, t1 + 1, 100)]


def _join(*parts):
    # Lists of steps, one after the other.
    steps = []
    for p in parts:
        steps.extend(p)
    return steps


def _start():
    # Configure at 0, RECOVER at 10, all-red for max(min_red) = 1500 ms, RUNNING at 1510.
    steps = [(0, "config", None, 2, 1, 0), (10, "recover", None, 0, 0, 0)]
    steps += _hold(110, 1410, ALL_RED, 0, 0)
    steps += _hold(1510, 1610, ALL_RED)
    return steps


def _ns_then_ew():
    steps = _start()
    steps += _hold(1710, 5610, NS_GO)
    steps += _hold(5710, 10610, [3, 1, 4, 1])  # NS crossing: ped clearance 5000 ms
    steps += _hold(10710, 10710, [3, 1, 1, 1])
    steps += _hold(10810, 13710, [2, 1, 1, 1])  # NS yellow 3000 ms
    steps += _hold(13810, 14710, ALL_RED)  # red clearance 1000 ms
    steps += _hold(14810, 15510, EW_GO)
    return steps


def _scenarios():
    s = {}
    s["startup_passes_all_red"] = _start()
    s["normal_cycle"] = _ns_then_ew()
    s["conflicting_greens"] = _join(_start(), [(1710, "out", [3, 3, 1, 1], 2, 2, 2)])
    s["green_vs_walk"] = _join(_start(), [(1710, "out", [1, 3, 3, 1], 2, 2, 2)])
    s["yellow_too_short"] = _join(
        _start(),
        _hold(1710, 5610, [3, 1, 1, 1]),
        _hold(5710, 7710, [2, 1, 1, 1]),
        [(7710, "out", ALL_RED, 2, 4, 4)],
    )
    # 2950 ms of yellow: within TIMING_SLACK_MS of 3000, accepted.
    s["yellow_within_slack"] = _join(
        _start(),
        _hold(1710, 5610, [3, 1, 1, 1]),
        _hold(5710, 8610, [2, 1, 1, 1]),
        [(8660, "out", ALL_RED, 1, 0, 0)],
    )
    # 2940 ms of yellow: refused.
    s["yellow_just_short"] = _join(
        _start(),
        _hold(1710, 5610, [3, 1, 1, 1]),
        _hold(5710, 8610, [2, 1, 1, 1]),
        [(8650, "out", ALL_RED, 2, 4, 4)],
    )
    s["yellow_skipped"] = _join(
        _start(), _hold(1710, 3010, [3, 1, 1, 1]), [(3110, "out", ALL_RED, 2, 3, 3)]
    )
    s["walk_to_dont_walk_skips_clearance"] = _join(
        _start(), _hold(1710, 3010, NS_GO), [(3110, "out", [3, 1, 1, 1], 2, 3, 3)]
    )
    s["ped_clearance_short"] = _join(
        _start(),
        _hold(1710, 3010, NS_GO),
        _hold(3110, 7010, [3, 1, 4, 1]),
        [(7110, "out", [3, 1, 1, 1], 2, 4, 4)],
    )
    s["red_clearance_short"] = _join(
        _start(),
        _hold(1710, 5610, [3, 1, 1, 1]),
        _hold(5710, 8710, [2, 1, 1, 1]),
        _hold(8810, 9310, ALL_RED),
        [(9410, "out", [1, 3, 1, 1], 2, 5, 5)],
    )
    # The EW through may go 1000 ms after NS red (NS's own min red), even though
    # EW's own min red is 1500 ms.
    s["red_clearance_uses_conflicting_channels_minimum"] = _join(
        _start(),
        _hold(1710, 5610, [3, 1, 1, 1]),
        _hold(5710, 8710, [2, 1, 1, 1]),
        _hold(8810, 9710, ALL_RED),
        _hold(9810, 9910, [1, 3, 1, 1]),
    )
    s["yellow_back_to_green"] = _join(
        _start(),
        _hold(1710, 3010, [3, 1, 1, 1]),
        _hold(3110, 3510, [2, 1, 1, 1]),
        [(3610, "out", [3, 1, 1, 1], 2, 6, 6)],
    )
    s["red_to_yellow"] = _join(_start(), [(1710, "out", [2, 1, 1, 1], 2, 6, 6)])
    s["flashing_yellow_is_go"] = _join(
        _start(),
        _hold(1710, 2010, [5, 1, 1, 1]),
        _hold(2110, 2510, [3, 1, 1, 1]),
        [(2610, "out", [5, 1, 1, 1], 1, 0, 0), (2710, "out", ALL_RED, 2, 3, 3)],
    )
    s["unused_channel_dark"] = _join(_start(), _hold(1710, 2010, [1, 1, 0, 1]))
    s["bad_code"] = _join(_start(), [(1710, "out", [1, 1, 6, 1], 2, 7, 7)])
    s["yellow_on_ped_head"] = _join(_start(), [(1710, "out", [1, 1, 2, 1], 2, 7, 7)])
    s["wrong_channel_count"] = _join(_start(), [(1710, "out", [1, 1, 1], 2, 7, 7)])
    s["green_during_all_red"] = _join(_start()[:4], [(310, "out", [3, 1, 1, 1], 2, 10, 10)])
    s["host_requests_flash"] = _join(_start(), [(1710, "outf", (NS_GO, 1), 2, 9, 9)])
    # Watchdog: last OUTPUTS at 2010; still running at 2509, flash at 2510.
    s["watchdog"] = _join(
        _start(),
        _hold(1710, 2010, NS_GO),
        [(2300, "tick", None, 1, 0, 1), (2509, "tick", None, 1, 0, 1)],
        [(2510, "tick", None, 2, 8, 2)],
    )
    # A frame arriving after the deadline, with no tick in between, is too late.
    s["watchdog_late_frame"] = _join(
        _start(), _hold(1710, 2010, NS_GO), [(2600, "out", NS_GO, 2, 8, 0)]
    )
    s["watchdog_during_all_red"] = _join(
        _start()[:3], [(609, "tick", None, 0, 0, 0), (610, "tick", None, 2, 8, 2)]
    )
    # Flash is latched: valid maps and time change nothing until RECOVER, and
    # recovery passes through all-red again.
    s["flash_latched_until_recover"] = _join(
        _start(),
        [(1710, "out", [3, 3, 1, 1], 2, 2, 2)],
        _hold(1810, 6810, ALL_RED, 2, 2),
        [(6900, "tick", None, 2, 2, 2), (60000, "tick", None, 2, 2, 2)],
        [(60010, "recover", None, 0, 0, 0)],
        _hold(60110, 61410, ALL_RED, 0, 0),
        _hold(61510, 61710, ALL_RED),
        _hold(61810, 62010, NS_GO),
    )
    s["recover_refusals"] = [
        (0, "recover", None, 2, 1, 4),  # not configured
        (5, "config", None, 2, 1, 0),
        (10, "recover", 12345, 2, 1, 5),  # hash mismatch
        (20, "recover", None, 0, 0, 0),
        (30, "recover", None, 0, 0, 0),  # idempotent in all-red
    ]
    s["recover_refusals"] += _join(_hold(120, 1420, ALL_RED, 0, 0), _hold(1520, 1520, ALL_RED))
    s["recover_refusals"] += [
        (1530, "recover", None, 1, 0, 3),  # already running
        (1540, "config", None, 1, 0, 3),  # no CONFIG while running
    ]
    s["config_refusals"] = [
        (0, "config", {"conflicts": [0b10, 0b00]}, 2, 1, 2),  # asymmetric
        (1, "config", {"conflicts": [0b01, 0b00]}, 2, 1, 2),  # self-conflict
        (2, "config", {"conflicts": [0b100, 0b00]}, 2, 1, 2),  # beyond last channel
        (3, "config", {"flash": [0, 1], "kinds": [0, 1]}, 2, 1, 2),  # ped flashing yellow
        (4, "config", {"flash": [3, 0]}, 2, 1, 2),  # unknown flash colour
        (5, "config", {"kinds": [0, 2]}, 2, 1, 2),  # unknown kind
        (6, "config", {}, 2, 1, 0),
        (7, "recover", None, 0, 0, 0),
    ]
    s["internal_error_forces_flash"] = _join(_start(), [(1710, "force", 11, 2, 11, None)])
    s["first_fault_is_kept"] = _join(
        _start(),
        [
            (1710, "out", [3, 3, 1, 1], 2, 2, 2),
            (1720, "force", 11, 2, 2, None),
            (3000, "tick", None, 2, 2, 2),
        ],
    )
    # Across the 2**30 wrap of ticks_ms.
    s["ticks_wrap"] = [(_wrap(t), op, a, st, f, r) for t, op, a, st, f, r in _ns_then_ew()]
    _fya_scenarios(s)
    return s


# A protected left shown only on a flashing-yellow-arrow head (channel 1) beside the
# through it yields to (channel 0): the arrow conflicts with the through, the flashing
# arrow does not. Pairs per indication: the through's green (any GO) ending owes the
# green arrow (steady) 4.5 s; the green arrow ending owes the through 5.5 s.
FYA_CONFIG = {
    "conflicts": [0b10, 0b01],
    "fya_conflicts": [0b10, 0b00],
    "min_red_ms": [1000, 1000],
    "intergreens": [(0, 0, 1, 1, 4500), (1, 1, 0, 0, 5500)],
}
_R2 = [1, 1]


def _fya_start():
    # Configure at 0, RECOVER at 10, all-red 1000 ms, RUNNING at 1010.
    steps = [(0, "config", FYA_CONFIG, 2, 1, 0), (10, "recover", None, 0, 0, 0)]
    return steps + _hold(110, 910, _R2, 0, 0) + _hold(1010, 1110, _R2)


def _fya_scenarios(s):
    # The through with the permissive flashing arrow, both yellow from 5210, red from 8210.
    through_ends = _join(_fya_start(), _hold(1210, 5110, [3, 5]), _hold(5210, 8110, [2, 2]))
    s["fya_arrow_before_pair_intergreen"] = _join(
        through_ends, _hold(8210, 9210, _R2), [(9310, "out", [1, 3], 2, 12, 12)]
    )
    s["fya_arrow_after_pair_intergreen"] = _join(
        through_ends, _hold(8210, 9610, _R2), _hold(9710, 9810, [1, 3])
    )
    # The flashing arrow stays on through the through's change, then turns green.
    s["fya_flashing_into_green_arrow_before_pair"] = _join(
        _fya_start(),
        _hold(1210, 5110, [3, 5]),
        _hold(5210, 8110, [2, 5]),
        _hold(8210, 9210, [1, 5]),
        [(9310, "out", [1, 3], 2, 12, 12)],
    )
    # The head's GO ends at 5210; the through starts 4.5 s later: owed only after
    # the green arrow, not after the flashing one.
    for name, shown, end in (
        ("fya_green_arrow_end_owes_pair", 3, [(9710, "out", [3, 1], 2, 12, 12)]),
        ("fya_flashing_arrow_end_owes_nothing", 5, _hold(9710, 9810, [3, 1])),
    ):
        s[name] = _join(
            _fya_start(),
            _hold(1210, 5110, [1, shown]),
            _hold(5210, 8110, [1, 2]),
            _hold(8210, 9610, _R2),
            end,
        )
    # The permissive arrow starting while the through runs is no pair's start.
    s["fya_flashing_arrow_beside_green_is_no_pair"] = _join(
        _fya_start(), _hold(1210, 2110, [3, 1]), _hold(2210, 2510, [3, 5])
    )


def _wrap(t):
    return (t + 0x40000000 - 6000) & 0x3FFFFFFF


def _config_body(c, arg):
    kw = {
        "conflicts": [0, 0],
        "min_yellow_ms": [3000, 3000],
        "min_red_ms": [1000, 1000],
        "flash": [0, 0],
        "kinds": [0, 0],
    }
    if arg is None:
        kw = {
            "conflicts": CONFLICTS,
            "min_yellow_ms": MIN_YELLOW_MS,
            "min_red_ms": MIN_RED_MS,
            "flash": FLASH,
            "kinds": KINDS,
        }
    else:
        for k in arg:
            kw[k] = arg[k]
    frame = c.encode_config(
        0,
        kw["conflicts"],
        kw["min_yellow_ms"],
        kw["min_red_ms"],
        kw["flash"],
        kw["kinds"],
        WATCHDOG_MS,
        kw.get("fya_conflicts"),
        kw.get("intergreens", ()),
    )
    return c.decode_frame(frame)[2]


def _run_step(c, s, step):
    t, op, arg = step[0], step[1], step[2]
    if op == "recover":
        return s.recover(t, s.config_hash if arg is None else arg)
    if op == "out":
        return s.outputs(t, arg)
    if op == "outf":
        return s.outputs(t, arg[0], arg[1])
    if op == "tick":
        return s.tick(t)
    if op == "force":
        s.force_flash(t, arg)
        return None
    raise ValueError(op)


def run_scenario(c, bs, steps):
    """Run one scenario; a list of (ok, [result, state, fault, lamps]) per step.

    ok also checks the lamps: flash colours in FLASH, all RED in ALL_RED, the
    last accepted map while RUNNING.
    """
    s = bs.BoardSafety(steps[0][0])
    flash_codes = {0: c.FLASH_RED, 1: c.FLASH_YELLOW, 2: c.DARK}
    accepted = None
    res = []
    colours = []
    for step in steps:
        if step[1] == "config":
            body = _config_body(c, step[2])
            r = s.configure(step[0], body)
            if r == 0:
                colours = body["flash"]
        else:
            r = _run_step(c, s, step)
        if step[1] == "recover" and r == 0:
            accepted = None
        lamps = list(s.lamps())
        if step[1] == "out" and r == 0 and s.state == c.STATE_RUNNING:
            accepted = list(step[2])
        if s.state == c.STATE_FLASH:
            want = [flash_codes[f] for f in colours]
        elif s.state == c.STATE_ALL_RED:
            want = [c.RED] * s.channels
        else:
            want = accepted if accepted is not None else [c.RED] * s.channels
        ok = s.state == step[3] and s.fault == step[4] and (step[5] is None or r == step[5])
        ok = ok and lamps == want and s.flash_transfer == (s.state == c.STATE_FLASH)
        res.append((ok, [r, s.state, s.fault, lamps]))
    return res


def safety_scenarios(c, bs, out, group, groups):
    """Scenarios group, group + groups, ... in name order."""
    sc = _scenarios()
    names = sorted(sc.keys())
    for k in range(group, len(names), groups):
        name = names[k]
        res = run_scenario(c, bs, sc[name])
        bad = [i for i in range(len(res)) if not res[i][0]]
        out("scenario " + name + " steps " + canon(len(res)) + " bad " + canon(bad))
        out("scenario " + name + " trace " + canon([r[1] for r in res]))


def safety_helpers(bs, out):
    out("ticks_diff " + canon([bs.ticks_diff(5, 0x3FFFFFFB), bs.ticks_diff(0x3FFFFFFB, 5)]))
    out("ticks_diff plain " + canon([bs.ticks_diff(1500, 1000), bs.ticks_diff(1000, 1500)]))
    out("ticks_add " + canon([bs.ticks_add(0x3FFFFFFF, 1), bs.ticks_add(10, -20)]))


# --- whole board over bytes ---------------------------------------------------------


def board_session(c, bd, out):
    """Handshake, running, inputs and a fault, all as bytes in and bytes out."""
    b = bd.Board(0)
    cfg = (CONFLICTS, MIN_YELLOW_MS, MIN_RED_MS, FLASH, KINDS, WATCHDOG_MS)
    h = c.config_hash(c.config_payload(*cfg))
    t = 0
    log = []

    def send(frame):
        reply = b.receive(t, frame)
        log.append(canon(reply))
        msgs = c.Decoder().feed(reply)
        return msgs

    out("board early_config " + canon(_summary(send(c.encode_config(0, *cfg)))))
    out("board bad_hello " + canon(_summary(send(c.encode_hello(1, 2)))))
    out("board config_after_bad_hello " + canon(_summary(send(c.encode_config(2, *cfg)))))
    out("board hello " + canon(_summary(send(c.encode_hello(3)))))
    out("board config " + canon(_summary(send(c.encode_config(4, *cfg)))))
    out("board hash_matches " + canon(h))
    out("board unexpected " + canon(_summary(send(c.encode_ack(5, 1, 1)))))
    out("board recover " + canon(_summary(send(c.encode_recover(6, h)))))
    seq = 7
    raw = 0
    for i in range(20):
        t += 100
        b.tick(t)
        # Input 0 pulses every 400 ms; input 15 bounces (10 ms) and is filtered.
        raw = 0x0001 if (i % 4) < 2 else 0
        b.sample_inputs(t, raw | 0x8000)
        b.sample_inputs(t + 10, raw)
        b.sample_inputs(t + 40, raw)
        codes = ALL_RED if i < 16 else NS_GO
        msgs = send(c.encode_outputs(seq, codes))
        out("board tick " + str(i) + " " + canon(_summary(msgs)))
        seq = c.next_seq(seq)
    t += 100
    out("board garbage " + canon(_summary(send(b"\x07\x01\x02\x00"))))
    msgs = send(c.encode_outputs(seq, [3, 3, 1, 1]))
    out("board conflict " + canon(_summary(msgs)))
    out("board hello_in_flash " + canon(_summary(send(c.encode_hello(0)))))
    out("board decoder " + canon(b.decoder.counters()))
    out("board wire " + canon(log[-3:]))


def inputs_and_lamps(bd, out):
    inp = bd.Inputs(0, 20)
    trace = []
    t = 0
    # (dt, raw): a clean press, a 10 ms glitch, a bouncy release, wrap-around.
    for dt, raw in ((0, 0), (5, 1), (10, 1), (10, 1), (5, 0), (10, 3), (5, 1), (20, 1), (30, 0)):
        t += dt
        inp.sample(t, raw)
        trace.append([t, inp.state, list(inp.counts)[:2]])
    out("inputs trace " + canon(trace))
    out("inputs take " + canon([inp.take_counts()[:2], inp.take_counts()[:2]]))
    sat = bd.Inputs(0, 0)
    for i in range(600):
        sat.sample(i, i & 1)
    out("inputs saturate " + canon(sat.counts[0]))
    buf = bytearray(bd.LAMP_BYTES)
    codes = [1, 2, 3, 4, 5, 0] + [3] * 26
    out("lamps on " + canon(bytes(bd.lamp_bits(codes, 32, True, buf))))
    out("lamps off " + canon(bytes(bd.lamp_bits(codes, 32, False, buf))))
    out("lamps few " + canon(bytes(bd.lamp_bits([3, 1], 2, True, buf))))


# --- the field monitor: faults injected on a simulated street ---------------------------


class MiniField:
    """The street under test: sensed lamps follow the driven ones, 10 ms late, with a fault."""

    def __init__(self, m):
        self.m = m
        self.now = [0] * 4
        self.old = [0] * 4
        self.since = [-100000] * 4
        self.fault = None  # (channel, kind)
        self.frozen = 0

    def drive(self, t, driven, flash_on):
        for c in range(4):
            lamps = self.m.code_lamps(driven[c], flash_on)
            if lamps != self.now[c]:
                self.old[c] = self.now[c] if t - self.since[c] >= 10 else self.old[c]
                self.now[c] = lamps
                self.since[c] = t

    def sense(self, t):
        m = self.m
        buf = bytearray(12)
        for c in range(4):
            lamps = self.now[c] if t - self.since[c] >= 10 else self.old[c]
            if self.fault is not None and self.fault[0] == c:
                kind = self.fault[1]
                if kind == "stuck_on":
                    lamps |= m.GREEN_LAMP
                elif kind == "dead":
                    lamps &= ~m.RED_LAMP
                elif kind == "short" and lamps & m.YELLOW_LAMP:
                    lamps = m.RED_LAMP
                elif kind == "dual":
                    lamps |= m.RED_LAMP if lamps & m.YELLOW_LAMP else m.YELLOW_LAMP
                elif kind == "frozen":
                    lamps = self.frozen
            m.set_channel_lamps(buf, c, lamps)
        return buf


def _field_run(c, bd, fault, onset_ms, steps, clear_ms=10**9):
    """Start the test intersection, run `steps` (codes, ms), the fault from onset_ms
    to clear_ms.

    Returns [state, fault, fault_channels, flash time - onset, record fault]."""
    m = bd.monitor
    b = bd.Board(0)
    f = MiniField(m)
    b.run_self_test(0, f.sense(0), bd.SELF_TEST_PATTERN)
    b.receive(0, c.encode_hello(0))
    b.receive(0, c.encode_config(1, CONFLICTS, MIN_YELLOW_MS, MIN_RED_MS, FLASH, KINDS, 500))
    b.receive(0, c.encode_recover(2, b.safety.config_hash))
    t = 0
    flash_at = None
    steps = [(ALL_RED, 2000)] + steps  # noqa: RUF005 (MicroPython has no star in lists)
    for codes, ms in steps:
        end = t + ms
        while t < end:
            t += 5
            if t == onset_ms:
                f.fault = fault
                f.frozen = f.now[fault[0]]
            if t == clear_ms:
                f.fault = None
            if t % 100 == 0:
                b.receive(t, c.encode_outputs(0, codes))
            b.tick(t)
            s = b.safety
            on = bd.flash_phase(t)
            f.drive(t, s.driven, on)
            b.sense(t, f.sense(t), on)
            if flash_at is None and s.state == c.STATE_FLASH:
                flash_at = t
    s = b.safety
    rec = b.record[1] if b.record is not None else 0
    return [
        s.state,
        s.fault,
        s.fault_channels,
        None if flash_at is None else flash_at - onset_ms,
        rec,
    ]


NS_GO = [3, 1, 3, 1]
FIELD_CASES = [
    (
        "normal",
        (0, "none"),
        10**9,
        [(NS_GO, 5000), ([3, 1, 4, 1], 5000), ([2, 1, 1, 1], 3000), (ALL_RED, 1000), (EW_GO, 3000)],
    ),
    ("conflict", (1, "stuck_on"), 4000, [(NS_GO, 5000)]),
    ("conflict_short", (1, "stuck_on"), 4000, [(NS_GO, 5000)]),
    ("red_fail", (1, "dead"), 4000, [(NS_GO, 5000)]),
    ("dual_indication", (0, "dual"), 4000, [(NS_GO, 5000)]),
    (
        "short_clearance",
        (0, "short"),
        12000,
        [(NS_GO, 5000), ([3, 1, 4, 1], 5000), ([2, 1, 1, 1], 1000)],
    ),
    ("mismatch", (0, "frozen"), 12000, [(NS_GO, 5000), ([3, 1, 4, 1], 5000), ([2, 1, 1, 1], 3000)]),
]


def field_faults(c, bd, out, only):
    for name, fault, onset, steps in FIELD_CASES:
        if name != only:
            continue
        clear = onset + 195 if name == "conflict_short" else 10**9  # under 200 ms: no trip
        out("field " + name + " " + canon(_field_run(c, bd, fault, onset, steps, clear)))


FUZZ_CHUNK = 200
SCENARIO_GROUPS = 4


def jobs(fuzz_rounds):
    """Independent units of work, each small enough for MicroPython's heap (about 1 MB)."""
    names = ["codec", "board"] + ["field " + case[0] for case in FIELD_CASES]
    for first in range(0, fuzz_rounds, FUZZ_CHUNK):
        names.append("fuzz " + str(first) + " " + str(min(first + FUZZ_CHUNK, fuzz_rounds)))
    for g in range(SCENARIO_GROUPS):
        names.append("scenarios " + str(g))
    return names


def run_job(c, bs, bd, out, job):
    """Run one job of jobs()."""
    words = job.split(" ")
    if words[0] == "codec":
        codec_vectors(c, out)
        codec_errors(c, out)
        decoder_stream(c, out)
        safety_helpers(bs, out)
        inputs_and_lamps(bd, out)
    elif words[0] == "board":
        board_session(c, bd, out)
    elif words[0] == "field":
        field_faults(c, bd, out, words[1])
    elif words[0] == "fuzz":
        decoder_fuzz(c, out, int(words[1]), int(words[2]))
    elif words[0] == "scenarios":
        safety_scenarios(c, bs, out, int(words[1]), SCENARIO_GROUPS)
    else:
        raise ValueError(job)
