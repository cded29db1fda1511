"""hw/codec.py under CPython: exact bytes, independent CRC/COBS oracles, round trips, fuzzing."""

from __future__ import annotations

import binascii
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from hw.codec_cpython import loops
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hw import codec
from tests.hypothesis_profiles import examples

from . import harness

PROGRAM = harness.program()
VECTORS: list[tuple[str, Any, str]] = PROGRAM["VECTORS"]
PROTOCOL_MD = Path(harness.HW_DIR) / "PROTOCOL.md"

Message = tuple[int, int, dict[str, Any]]


def ref_cobs_decode(data: bytes) -> bytes | None:
    """COBS decoding restated from the definition, as an oracle."""
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            return None
        block = data[i + 1 : i + code]
        if 0 in block:
            return None
        out += block
        i += code
        if code < 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def crc_ok(raw: bytes) -> bool:
    """CRC-16/CCITT-FALSE by the standard library (binascii.crc_hqx with init 0xFFFF)."""
    if len(raw) < 4:
        return False
    return binascii.crc_hqx(raw[:-2], 0xFFFF) == int.from_bytes(raw[-2:], "little")


def decode_one(frame: bytes) -> Message:
    msg = codec.decode_frame(frame)
    assert msg is not None
    return (msg[0], msg[1], msg[2])


# --- exact bytes -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "make", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_exact_bytes(name: str, make: Any, expected: str) -> None:
    frame = make(codec)
    assert frame.hex() == expected
    raw = ref_cobs_decode(frame[:-1])
    assert frame[-1] == 0 and 0 not in frame[:-1]
    assert raw is not None and crc_ok(raw), name


def test_outputs_worked_example_byte_by_byte() -> None:
    # The example in hw/PROTOCOL.md, built here from its parts.
    payload = bytes([7, 0x00, 0x13, 0x31, 0x12, 0x01])  # 7 channels, flags, packed codes
    raw = bytes([codec.MSG_OUTPUTS, 7]) + payload
    crc = binascii.crc_hqx(raw, 0xFFFF)
    assert crc == 0x2F90
    raw += crc.to_bytes(2, "little")
    assert raw.hex(" ") == "03 07 07 00 13 31 12 01 90 2f"
    wire = bytes.fromhex("04 03 07 07 07 13 31 12 01 90 2f 00")
    assert codec.encode_outputs(7, [3, 1, 1, 3, 2, 1, 1]) == wire
    assert codec.cobs_decode(wire[:-1]) == raw


def test_protocol_md_quotes_the_codec() -> None:
    text = PROTOCOL_MD.read_text()
    assert "04 03 07 07 07 13 31 12 01 90 2F 00" in text
    assert "03 07 07 00 13 31 12 01 90 2F" in text
    for name, make, _ in VECTORS:
        if name != "outputs_empty":
            assert "`" + make(codec).hex(" ").upper() + "`" in text, name
    for name, value in re.findall(r"\| `(MSG_[A-Z_]+)` \| 0x([0-9A-F]{2}) \|", text):
        assert getattr(codec, name) == int(value, 16), name
    for name, value in re.findall(r"\| `(FAULT_[A-Z_]+)` \| (\d+) \|", text):
        assert getattr(codec, name) == int(value), name
    for name, value in re.findall(r"\| `(NAK_[A-Z_]+)` \| (\d+) \|", text):
        assert getattr(codec, name) == int(value), name


def test_state_codes_are_the_host_contract() -> None:
    assert (codec.DARK, codec.RED, codec.YELLOW, codec.GREEN) == (0, 1, 2, 3)
    assert (codec.FLASH_RED, codec.FLASH_YELLOW) == (4, 5)
    assert (codec.STATE_ALL_RED, codec.STATE_RUNNING, codec.STATE_FLASH) == (0, 1, 2)
    assert codec.STATE_STARTING == codec.STATE_ALL_RED


def test_decoded_fields() -> None:
    by_name = {name: make(codec) for name, make, _ in VECTORS}
    assert decode_one(by_name["hello"]) == (codec.MSG_HELLO, 0, {"version": 2})
    no_record = {"fault": 0, "self_test": 0, "boots": 0, "boot": 0, "channels": 0, "uptime_ms": 0}
    assert decode_one(by_name["hello_reply"]) == (
        codec.MSG_HELLO_REPLY,
        0,
        {
            "version": 2,
            "state": 2,
            "fault": 1,
            "channels": 4,
            "config_hash": 0x71194848,
            "firmware": "hw-0.2.0",
            "record": no_record,
        },
    )
    assert decode_one(by_name["hello_reply_record"])[2]["record"] == {
        "fault": codec.FAULT_RED_FAIL,
        "self_test": 0,
        "boots": 7,
        "boot": 6,
        "channels": 0b10,
        "uptime_ms": 123456,
    }
    # A version-1 reply (24 bytes) decodes with no record.
    v1 = codec.encode_hello_reply(0, "hw-0.1.0", 2, 1, 4, 0x41D0C376, 1)
    assert decode_one(v1)[2]["record"] is None and decode_one(v1)[2]["version"] == 1
    fya = decode_one(by_name["config_fya_intergreen"])[2]
    assert fya["fya_conflicts"] == [0b1000, 0b0101, 0b0010, 0b0001]
    assert fya["intergreens"] == [(0, 0, 1, 0, 4000), (1, 0, 0, 0, 4500)]
    by_indication = decode_one(by_name["config_indication_intergreen"])[2]
    assert by_indication["intergreens"] == [
        (0, codec.IG_ANY, 1, codec.IG_STEADY, 4500),
        (1, codec.IG_STEADY, 0, codec.IG_ANY, 5500),
    ]
    t, seq, body = decode_one(by_name["config"])
    assert (t, seq) == (codec.MSG_CONFIG, 1)
    assert body == {
        "watchdog_ms": 500,
        "conflicts": [0b1010, 0b0101, 0b0010, 0b0001],
        "min_yellow_ms": [3000, 3000, 5000, 5000],
        "min_red_ms": [1000, 1500, 1000, 1000],
        "flash": [1, 0, 2, 2],
        "kinds": [0, 0, 1, 1],
        "fya_conflicts": [0b1010, 0b0101, 0b0010, 0b0001],
        "intergreens": [],
        "config_hash": 0x71194848,
    }
    assert decode_one(by_name["outputs_flash_flag"]) == (
        codec.MSG_OUTPUTS,
        255,
        {"flags": codec.OUTPUTS_FLAG_FLASH, "codes": [1, 1, 1, 1]},
    )
    assert decode_one(by_name["status"]) == (
        codec.MSG_STATUS,
        9,
        {
            "state": 1,
            "fault": 0,
            "answered_seq": 7,
            "rx_errors": 0,
            "inputs": 0x8005,
            "counts": [2, 0, 1] + [0] * 12 + [255],
            "lamps": [3, 1, 1, 3, 2, 1, 1],
            "fault_channels": 0,
        },
    )
    assert decode_one(by_name["nak"]) == (
        codec.MSG_NAK,
        4,
        {"acked_type": 2, "acked_seq": 1, "reason": codec.NAK_BAD_CONFIG},
    )


def test_config_hash_is_zlib_crc32_of_payload() -> None:
    args = ([0b10, 0b01], [3000, 3500], [1000, 2000], [0, 1], [0, 0], 250)
    payload = codec.config_payload(*args)
    assert codec.config_hash(payload) == zlib.crc32(payload)
    msg = decode_one(codec.encode_config(9, *args))
    assert msg[2]["config_hash"] == zlib.crc32(payload)
    assert len(payload) == 3 + 14 * 2 + 1


def test_hello_reply_firmware_is_sanitised() -> None:
    frame = codec.encode_hello_reply(0, "x", 0, 0, 0, 0)
    raw = bytearray(codec.cobs_decode(frame[:-1]) or b"")
    raw[10:26] = b"ok\x01\xff" + bytes(12)
    raw[-2:] = binascii.crc_hqx(bytes(raw[:-2]), 0xFFFF).to_bytes(2, "little")
    wire = codec.cobs_encode(bytes(raw)) + b"\x00"
    assert decode_one(wire)[2]["firmware"] == "ok??"


def test_longer_hello_is_accepted_for_version_negotiation() -> None:
    raw = bytes([codec.MSG_HELLO, 5, 2, 0xAA, 0xBB])
    raw += binascii.crc_hqx(raw, 0xFFFF).to_bytes(2, "little")
    assert decode_one(codec.cobs_encode(raw) + b"\x00") == (codec.MSG_HELLO, 5, {"version": 2})


@pytest.mark.parametrize(
    "call",
    [
        lambda: codec.encode_hello(256),
        lambda: codec.encode_outputs(256, [1]),
        lambda: codec.encode_outputs(0, [16]),
        lambda: codec.encode_outputs(0, [1] * 33),
        lambda: codec.encode_hello_reply(0, "x" * 17, 0, 0, 0, 0),
        lambda: codec.encode_hello_reply(0, "caf\u00e9", 0, 0, 0, 0),
        lambda: codec.encode_config(0, [0], [0], [0], [0], [0], 99),
        lambda: codec.encode_config(0, [0], [0], [0], [0], [0], 1001),
        lambda: codec.encode_config(0, [], [], [], [], [], 500),
        lambda: codec.encode_config(0, [0] * 33, [0] * 33, [0] * 33, [0] * 33, [0] * 33),
        lambda: codec.encode_config(0, [0, 0], [0], [0], [0], [0], 500),
        lambda: codec.encode_status(0, 0, 0, 0, 0x10000, [0] * 16, []),
        lambda: codec.encode_status(0, 0, 0, 0, 0, [0] * 15, []),
        lambda: codec.encode_recover(0, 1 << 32),
    ],
)
def test_encoders_raise_value_error_on_bad_fields(call: Any) -> None:
    with pytest.raises(ValueError):
        call()


# --- checksums and COBS against independent references -------------------------


def test_crc_check_values() -> None:
    assert codec.crc16(b"123456789") == 0x29B1
    assert codec.crc32(b"123456789") == 0xCBF43926
    assert codec.crc16(b"") == 0xFFFF
    assert codec.crc32(b"") == 0


@given(st.binary(max_size=400))
def test_crc16_matches_binascii(data: bytes) -> None:
    assert codec.crc16(data) == binascii.crc_hqx(data, 0xFFFF)


@given(st.binary(max_size=400))
def test_crc32_matches_zlib(data: bytes) -> None:
    assert codec.crc32(data) == zlib.crc32(data)


# Examples from the COBS definition (Cheshire and Baker) as commonly tabulated.
COBS_EXAMPLES = [
    ("00", "0101"),
    ("0000", "010101"),
    ("001100", "01021101"),
    ("11220033", "0311220233"),
    ("11223344", "0511223344"),
    ("11000000", "0211010101"),
    (bytes(range(1, 255)).hex(), "ff" + bytes(range(1, 255)).hex()),
    (bytes(range(0, 255)).hex(), "01ff" + bytes(range(1, 255)).hex()),
    (bytes(range(1, 256)).hex(), "ff" + bytes(range(1, 255)).hex() + "02ff"),
    (bytes(range(2, 256)).hex() + "00", "ff" + bytes(range(2, 256)).hex() + "0101"),
    (bytes(range(3, 256)).hex() + "0001", "fe" + bytes(range(3, 256)).hex() + "0201"),
]


@pytest.mark.parametrize(("plain", "stuffed"), COBS_EXAMPLES)
def test_cobs_examples(plain: str, stuffed: str) -> None:
    assert codec.cobs_encode(bytes.fromhex(plain)).hex() == stuffed
    assert codec.cobs_decode(bytes.fromhex(stuffed)) == bytes.fromhex(plain)


@given(st.binary(max_size=700))
def test_cobs_round_trip(data: bytes) -> None:
    enc = codec.cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert codec.cobs_decode(enc) == data
    assert ref_cobs_decode(enc) == data


@given(st.binary(max_size=80))
def test_cobs_decode_agrees_with_reference(data: bytes) -> None:
    assert codec.cobs_decode(data) == ref_cobs_decode(data)


# --- round trips -----------------------------------------------------------------

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
codes = st.lists(st.integers(0, 15), max_size=codec.MAX_CHANNELS)
firmware = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=16)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, Message]:
    seq = draw(u8)
    kind = draw(st.integers(0, 8))
    if kind == 0:
        v = draw(u8)
        return codec.encode_hello(seq, v), (codec.MSG_HELLO, seq, {"version": v})
    if kind == 1:
        fw, state, fault, n, h, v = (
            draw(firmware),
            draw(u8),
            draw(u8),
            draw(st.integers(0, 32)),
            draw(u32),
            draw(u8),
        )
        body = {
            "version": v,
            "state": state,
            "fault": fault,
            "channels": n,
            "config_hash": h,
            "firmware": fw,
            "record": None,
        }
        rec = draw(st.tuples(u8, u8, u16, u16, u32, u32))
        if v >= 2:
            body["record"] = dict(
                zip(
                    ("fault", "self_test", "boots", "boot", "channels", "uptime_ms"),
                    rec,
                    strict=True,
                )
            )
        frame = codec.encode_hello_reply(seq, fw, state, fault, n, h, v, rec)
        return frame, (codec.MSG_HELLO_REPLY, seq, body)
    if kind == 2:
        n = draw(st.integers(1, codec.MAX_CHANNELS))
        conflicts = draw(st.lists(u32, min_size=n, max_size=n))
        yellow = draw(st.lists(u16, min_size=n, max_size=n))
        red = draw(st.lists(u16, min_size=n, max_size=n))
        flash = draw(st.lists(u8, min_size=n, max_size=n))
        kinds = draw(st.lists(u8, min_size=n, max_size=n))
        wd = draw(st.integers(codec.WATCHDOG_MIN_MS, codec.WATCHDOG_MAX_MS))
        fya = draw(st.lists(u32, min_size=n, max_size=n))
        ch, ind = st.integers(0, 63), st.integers(0, 3)
        igs = draw(st.lists(st.tuples(ch, ind, ch, ind, u16), max_size=12))
        payload = codec.config_payload(conflicts, yellow, red, flash, kinds, wd, fya, igs)
        body = {
            "fya_conflicts": fya,
            "intergreens": igs,
            "watchdog_ms": wd,
            "conflicts": conflicts,
            "min_yellow_ms": yellow,
            "min_red_ms": red,
            "flash": flash,
            "kinds": kinds,
            "config_hash": zlib.crc32(payload),
        }
        frame = codec.encode_config(seq, conflicts, yellow, red, flash, kinds, wd, fya, igs)
        return frame, (codec.MSG_CONFIG, seq, body)
    if kind == 3:
        h = draw(u32)
        return codec.encode_config_ack(seq, h), (codec.MSG_CONFIG_ACK, seq, {"config_hash": h})
    if kind == 4:
        cs, flags = draw(codes), draw(u8)
        body = {"flags": flags, "codes": cs}
        return codec.encode_outputs(seq, cs, flags), (codec.MSG_OUTPUTS, seq, body)
    if kind == 5:
        state, fault, ans, rx, inputs = draw(u8), draw(u8), draw(u8), draw(u8), draw(u16)
        counts = draw(st.lists(u8, min_size=16, max_size=16))
        lamps = draw(codes)
        fch = draw(u32)
        body = {
            "state": state,
            "fault": fault,
            "answered_seq": ans,
            "rx_errors": rx,
            "inputs": inputs,
            "counts": counts,
            "lamps": lamps,
            "fault_channels": fch,
        }
        frame = codec.encode_status(seq, state, fault, ans, inputs, counts, lamps, rx, fch)
        return frame, (codec.MSG_STATUS, seq, body)
    if kind == 6:
        h = draw(u32)
        return codec.encode_recover(seq, h), (codec.MSG_RECOVER, seq, {"config_hash": h})
    if kind == 7:
        t, s = draw(u8), draw(u8)
        return codec.encode_ack(seq, t, s), (codec.MSG_ACK, seq, {"acked_type": t, "acked_seq": s})
    t, s, r = draw(u8), draw(u8), draw(u8)
    body = {"acked_type": t, "acked_seq": s, "reason": r}
    return codec.encode_nak(seq, t, s, r), (codec.MSG_NAK, seq, body)


@given(messages())
def test_round_trip(item: tuple[bytes, Message]) -> None:
    frame, expected = item
    assert 0 not in frame[:-1] and frame[-1] == 0
    assert len(frame) <= codec.MAX_WIRE_LEN + 1
    assert codec.decode_frame(frame) == expected


@given(st.lists(messages(), max_size=8), st.lists(st.integers(1, 50), min_size=1))
def test_any_split_of_a_stream_decodes_the_same(
    items: list[tuple[bytes, Message]], cuts: list[int]
) -> None:
    stream = b"".join(f for f, _ in items)
    d = codec.Decoder()
    got: list[Message] = []
    i = 0
    k = 0
    while i < len(stream):
        step = cuts[k % len(cuts)]
        got += d.feed(stream[i : i + step])
        i += step
        k += 1
    assert got == [m for _, m in items]
    assert d.n_frames == len(items) and d.dropped() == 0


# --- dropping and counting -------------------------------------------------------


def test_decoder_counts_each_kind_of_bad_frame() -> None:
    good = codec.encode_outputs(1, [1, 1])
    raw = codec.cobs_decode(good[:-1]) or b""
    bad_crc = bytearray(raw)
    bad_crc[3] ^= 0x01
    unknown = bytes([0x7E, 1]) + raw[2:-2]
    unknown += binascii.crc_hqx(unknown, 0xFFFF).to_bytes(2, "little")
    short_payload = bytes([codec.MSG_OUTPUTS, 1, 5, 0])  # says 5 channels, has none
    short_payload += binascii.crc_hqx(short_payload, 0xFFFF).to_bytes(2, "little")
    d = codec.Decoder()
    stream = b"".join(
        [
            b"\x00\x00",  # empty frames: ignored
            codec.cobs_encode(bytes(bad_crc)) + b"\x00",
            codec.cobs_encode(unknown) + b"\x00",
            codec.cobs_encode(short_payload) + b"\x00",
            b"\x05\x01\x00",  # COBS block runs past the end
            b"\x02\x01\x00",  # decodes to one byte: shorter than any frame
            b"\x07" * (codec.MAX_WIRE_LEN + 5) + b"\x00",  # too long, dropped whole
            good,
        ]
    )
    assert d.feed(stream) == [(codec.MSG_OUTPUTS, 1, {"flags": 0, "codes": [1, 1]})]
    assert d.counters() == {
        "frames": 1,
        "bad_cobs": 1,
        "bad_crc": 1,
        "bad_length": 3,
        "unknown_type": 1,
    }
    assert d.dropped() == 6


def test_longest_frame_fits_and_one_more_byte_does_not() -> None:
    n = codec.MAX_CHANNELS
    frame = codec.encode_config(
        0,
        [0xFFFFFFFF] * n,
        [0xFFFF] * n,
        [0xFFFF] * n,
        [255] * n,
        [255] * n,
        1000,
        [0xFFFFFFFF] * n,
        [(63, 3, 63, 3, 0xFFFF)] * codec.MAX_INTERGREENS,
    )
    raw = codec.cobs_decode(frame[:-1]) or b""
    assert len(raw) == codec.MAX_FRAME_LEN
    assert len(frame) - 1 <= codec.MAX_WIRE_LEN
    assert codec.decode_frame(frame) is not None
    longer = bytearray(raw[:-2]) + b"\x01"
    longer += binascii.crc_hqx(bytes(longer), 0xFFFF).to_bytes(2, "little")
    d = codec.Decoder()
    assert d.feed(codec.cobs_encode(bytes(longer)) + b"\x00") == []
    assert d.n_bad_length == 1


# --- fuzzing -------------------------------------------------------------------------

_VALID_FRAMES = [make(codec) for _, make, _ in VECTORS]


def _check_stream_against_oracle(stream: bytes) -> None:
    """Feed a stream; every message must come from a chunk with a correct CRC."""
    d = codec.Decoder()
    chunks = stream.split(b"\x00")
    complete, tail = chunks[:-1], chunks[-1]
    nonempty = 0
    for chunk in complete:
        msgs = d.feed(chunk + b"\x00")
        if chunk:
            nonempty += 1
        assert len(msgs) <= 1
        if msgs:
            raw = ref_cobs_decode(chunk)
            assert raw is not None and crc_ok(raw)
            assert len(chunk) <= codec.MAX_WIRE_LEN
            assert (msgs[0][0], msgs[0][1]) == (raw[0], raw[1])
    assert d.feed(tail) == []
    assert d.n_frames + d.dropped() == nonempty
    # Fed in one piece, the stream gives the same messages and counters.
    whole = codec.Decoder()
    again = whole.feed(stream)
    assert len(again) == d.n_frames and whole.counters() == d.counters()


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    _check_stream_against_oracle(data)


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        frame = bytearray(draw(st.sampled_from(_VALID_FRAMES)))
        for _ in range(draw(st.integers(0, 3))):
            op = draw(st.integers(0, 3))
            i = draw(st.integers(0, len(frame) - 1)) if frame else 0
            if op == 0 and frame:
                frame[i] ^= 1 << draw(st.integers(0, 7))
            elif op == 1 and frame:
                del frame[i]
            elif op == 2:
                frame.insert(i, draw(u8))
            elif frame:
                frame[i] = draw(u8)
        parts.append(bytes(frame))
    return b"".join(parts)


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(mutated_streams())
def test_fuzz_mutated_frames_never_raise_or_pass_bad_crc(stream: bytes) -> None:
    _check_stream_against_oracle(stream)


def test_every_single_bit_flip_is_caught() -> None:
    # Exhaustive over the vectors: a one-bit error anywhere before the
    # delimiter never yields a message.
    for frame in _VALID_FRAMES:
        for i in range(len(frame) - 1):
            for bit in range(8):
                bad = bytearray(frame)
                bad[i] ^= 1 << bit
                assert codec.Decoder().feed(bytes(bad) + b"\x00") == [], (frame.hex(), i, bit)


# --- CPython's whole-block versions (hw/codec_cpython.py) against the byte loops ----------


def test_cpython_runs_the_whole_block_versions() -> None:
    assert codec.cobs_encode is not codec.REFERENCE["cobs_encode"]
    assert codec.Decoder.feed is not codec.REFERENCE["Decoder.feed"]


def both(call: Any) -> tuple[Any, Any]:
    """call() with the whole-block versions and with the loops: a result or the error."""

    def outcome() -> Any:
        try:
            return ("ok", call())
        except Exception as exc:  # the same exception, type and message, is the rule
            return ("raised", type(exc), str(exc))

    fast = outcome()
    with loops(codec):
        return fast, outcome()


# Runs of 253..255 non-zero bytes (the block limit), zeros, anything.
_runs = st.lists(
    st.one_of(
        st.binary(max_size=8),
        st.just(b"\x00"),
        st.integers(250, 520).map(lambda k: bytes([0x5A]) * k),
    ),
    max_size=6,
).map(b"".join)


@settings(max_examples=examples(300))
@given(st.one_of(st.binary(max_size=600), _runs))
@example(b"")
@example(bytes(40))
@example(b"\x5a" * 254)
@example(b"\x5a" * 254 + b"\x00")
@example(b"\x5a" * 508 + b"\x01")
def test_cobs_whole_blocks_equal_the_loops(data: bytes) -> None:
    fast, loops = both(lambda: codec.cobs_encode(data))
    assert fast == loops
    fast, loops = both(lambda: codec.cobs_decode(data))
    assert fast == loops


@settings(max_examples=examples(300))
@given(st.lists(st.integers(-2, 17), max_size=34), u8, u8)
def test_outputs_and_codes_equal_the_loops(cs: list[int], seq: int, flags: int) -> None:
    fast, loops = both(lambda: codec.pack_codes(cs))
    assert fast == loops
    fast, loops = both(lambda: codec.encode_outputs(seq, cs, flags))
    assert fast == loops
    fast, loops = both(lambda: codec.pack_codes(bytes(c & 0xFF for c in cs)))
    assert fast == loops


@settings(max_examples=examples(300))
@given(
    st.tuples(st.integers(-1, 256), st.integers(-1, 256), u8, st.integers(-1, 256)),
    st.integers(-1, 0x10000),
    st.lists(st.integers(-1, 256), min_size=15, max_size=17),
    st.one_of(st.lists(st.integers(-1, 16), max_size=34), st.binary(max_size=33)),
    st.integers(-1, 1 << 32),
)
@example((1, 0, 7, 0), 0x11, [0] * 16, [1, 3, 1, 2] * 3, 0)
def test_status_equals_the_loops(
    head: tuple[int, int, int, int], inputs: int, counts: list[int], lamps: Any, fch: int
) -> None:
    state, fault, ans, rx = head
    fast, loops = both(
        lambda: codec.encode_status(9, state, fault, ans, inputs, counts, lamps, rx, fch)
    )
    assert fast == loops


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(messages().map(lambda m: m[0]), st.binary(max_size=40)), max_size=8),
    st.lists(st.integers(1, 60), min_size=1),
    st.sampled_from(["cut", "long", "as made"]),
)
def test_decoder_equals_the_loops(parts: list[bytes], cuts: list[int], how: str) -> None:
    stream = b"".join(parts)
    if how == "long":  # past MAX_WIRE_LEN without a delimiter, then on
        stream = stream[:20] + b"\x33" * (codec.MAX_WIRE_LEN + 5) + stream
    chunks = []
    i = k = 0
    while i < len(stream):
        chunks.append(stream[i : i + cuts[k % len(cuts)]])
        i += cuts[k % len(cuts)]
        k += 1
    if how == "as made":  # frame by frame (and the junk as it is)
        chunks = parts

    def run() -> tuple[list[Any], dict[str, int]]:
        d = codec.Decoder()
        msgs = [m for c in chunks for m in d.feed(memoryview(c) if k % 2 else c)]
        return msgs, d.counters()

    fast, loops = both(run)
    assert fast == loops


@pytest.mark.parametrize("extra", [-1, 0, 1])
@pytest.mark.parametrize("cut", [1, 7, 5000])
def test_decoder_at_the_frame_limit_equals_the_loops(extra: int, cut: int) -> None:
    good = codec.encode_outputs(1, [1, 3])
    stream = b"\x33" * (codec.MAX_WIRE_LEN + extra) + b"\x00" + good

    def run() -> tuple[list[Any], dict[str, int]]:
        d = codec.Decoder()
        msgs = [m for i in range(0, len(stream), cut) for m in d.feed(stream[i : i + cut])]
        return msgs, d.counters()

    fast, loops = both(run)
    assert fast == loops and len(fast[1][0]) == 1
