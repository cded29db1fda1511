"""hw/codec.py's byte loops as whole-block operations, for CPython only: not firmware.

hw/codec.py is written in the MicroPython subset and walks frames a byte at a
time, which on the Pico allocates nothing. On CPython (the host runtime and
the simulator's in-process boards) those loops are most of the link's cost,
so codec.py hands its namespace to install() when it finds CPython's
binascii.crc_hqx, and the functions below replace the loops: a frame's COBS
as one integer operation with codes looked up by where its zeros are (or by
runs between zeros), received bytes taken a run at a time, the CRC-16 by
binascii, packed maps looked up. Rules kept:

- Same results, byte for byte, for every input: the same frames out, the same
  messages, drops and counters in; a bad field still raises the reference's
  ValueError (the reference runs whenever the fast path is not sure).
  tests/hw/test_hw_codec.py checks each against codec.REFERENCE (the loops
  themselves) on random input, and tests/hw/test_hw_micropython.py the vectors
  against MicroPython running the loops.
- Caches are bounded and exact: keyed on the bytes (or zero pattern) they stand
  for, or, for a received frame's code chain, checked against the frame.
- Not flashed (devtools/board_flash.py's FIRMWARE_FILES, hw/manifest.py).
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_CACHE_MAX = 4096  # distinct channel maps, zero patterns remembered (a site uses dozens)
_CHAINS_KEPT = 8  # COBS code chains remembered per frame length, the latest first
_ZERO_FLAGS = bytes.maketrans(bytes(range(256)), b"\x01" + bytes(255))  # zero -> 1, else 0
# The code byte of a run of k non-zero bytes (k < 254).
_CODES = tuple(bytes((k + 1,)) for k in range(254))
# Each byte's two 4-bit codes, even channel (low nibble) first.
_NIBBLES = tuple((b & 0x0F, b >> 4) for b in range(256))


def _cobs_runs(raw: bytes) -> bytes:
    """COBS by the runs between zero bytes (any length)."""
    chunks = raw.split(b"\x00")
    lengths = list(map(len, chunks))
    if max(lengths) < 254:  # a run's length + 1, then the run (a zero after it implied)
        return b"".join(map(bytes.__add__, map(_CODES.__getitem__, lengths), chunks))
    # Longer runs (a large CONFIG): 254-byte blocks, code 0xFF, no zero implied; the last
    # run's code says where the frame ends.
    last = len(chunks) - 1
    out = bytearray()
    for k, chunk in enumerate(chunks):
        n = len(chunk)
        i = 0
        while n - i >= 254:
            out.append(0xFF)
            out += chunk[i : i + 254]
            i += 254
        if i < n or k < last or n == 0:
            out.append(n - i + 1)
            out += chunk[i:]
    return bytes(out)


def install(ns: dict[str, Any]) -> None:
    """Replace the byte loops in hw.codec's namespace `ns`; keep them in ns["REFERENCE"]."""
    max_wire = ns["MAX_WIRE_LEN"]
    decoder = ns["Decoder"]
    ref_pack: Callable[[Any], bytes] = ns["pack_codes"]
    ns["REFERENCE"] = {
        "cobs_encode": ns["cobs_encode"],
        "_cobs_decode_into": ns["_cobs_decode_into"],
        "pack_codes": ref_pack,
        "_unpack_codes": ns["_unpack_codes"],
        "_frame": ns["_frame"],
        "_crc16": ns["_crc16"],
        "Decoder.feed": decoder.feed,
        "Decoder._end_frame": decoder._end_frame,
        "encode_status": ns["encode_status"],
        "encode_outputs": ns["encode_outputs"],
        "_parse": ns["_parse"],
    }
    ref_status: Callable[..., bytes] = ns["encode_status"]
    ref_outputs: Callable[..., bytes] = ns["encode_outputs"]
    ref_parse: Callable[[int, Any, int], dict[str, Any] | None] = ns["_parse"]
    msg_status = ns["MSG_STATUS"]
    msg_outputs = ns["MSG_OUTPUTS"]
    status_head = ns["_STATUS_HEAD"]
    status_tail = ns["_STATUS_TAIL"]
    max_channels = ns["MAX_CHANNELS"]
    max_frame = ns["MAX_FRAME_LEN"]
    known_types = frozenset(ns["_KNOWN_TYPES"])
    packed: dict[bytes, bytes] = {}

    # COBS of a frame shorter than 254 bytes is the frame moved up one byte with a code
    # in the first byte and in each zero's place; the codes depend only on where the
    # zeros are. So, as integers: wire = raw << 8 | codes, raw = (wire & ~codes) >> 8.
    # Encoding looks the codes up by the frame's zero pattern; decoding checks the code
    # chains last seen at that length (a chain whose every code points to the next one
    # and the last to the end is the only reading of the frame), else walks the codes.
    code_ints: dict[bytes, int] = {}  # zero pattern -> the codes, as an int
    chains: dict[int, list[tuple[int, int]]] = {}  # length -> (code positions, codes)

    def cobs_encode(data: Any) -> bytes:
        raw = bytes(data)
        n = len(raw)
        if n >= 254:
            return _cobs_runs(raw)
        value = int.from_bytes(raw, "little") << 8
        pattern = raw.translate(_ZERO_FLAGS)
        codes = code_ints.get(pattern)
        if codes is None:
            codes = int.from_bytes(_cobs_runs(raw), "little") ^ value
            if len(code_ints) >= _CACHE_MAX:
                code_ints.clear()
            code_ints[pattern] = codes
        return (value | codes).to_bytes(n + 1, "little")

    def cobs_decoded(src: Any, n: int) -> bytes | None:
        """src[:n] decoded, or None if it is not valid COBS."""
        if not isinstance(src, (bytes, bytearray)):
            src = bytes(src)
        if n == 0:
            return b""
        if src.find(0, 0, n) >= 0:
            return None  # a zero inside a frame (or a code of 0)
        return _decoded(src, n)

    def _decoded(src: bytes | bytearray, n: int) -> bytes | None:
        # src[:n] (n > 0, no zero byte) decoded, or None.
        wire = int.from_bytes(src[:n], "little")
        seen = chains.get(n)
        if seen is not None:
            for mask, codes in seen:
                if wire & mask == codes:
                    return ((wire & ~mask) >> 8).to_bytes(n - 1, "little")
        # Walk the codes; without 0xFF blocks every code but the first stands for a zero.
        ends = []
        long_block = False
        i = 0
        while i < n:
            code = src[i]
            i += code
            if code == 0xFF:
                long_block = True
            if i < n:
                ends.append(i)
        if i > n:
            return None  # the last block runs past the end
        if not long_block:
            mask = 0xFF
            for e in ends:
                mask |= 0xFF << (8 * e)
            if seen is None:
                seen = chains[n] = []
            seen.insert(0, (mask, wire & mask))
            del seen[_CHAINS_KEPT:]
            return ((wire & ~mask) >> 8).to_bytes(n - 1, "little")
        out = bytearray()
        i = 0
        while i < n:
            code = src[i]
            end = i + code
            out += src[i + 1 : end]
            i = end
            if code != 0xFF and i < n:
                out.append(0)
        return bytes(out)

    def _cobs_decode_into(src: Any, n: int, dst: bytearray) -> int:
        raw = cobs_decoded(src, n)
        if raw is None:
            return -1
        dst[0 : len(raw)] = raw
        return len(raw)

    def _message(self: Any, raw: bytes | None) -> tuple[int, int, dict[str, Any]] | None:
        # The reference _end_frame's checks, in its order, on a frame's decoded bytes.
        if raw is None:
            self.n_bad_cobs += 1
            return None
        n = len(raw)
        if n < 4 or n > max_frame:
            self.n_bad_length += 1
            return None
        if crc_hqx(raw[: n - 2], 0xFFFF) != raw[n - 2] | (raw[n - 1] << 8):
            self.n_bad_crc += 1
            return None
        t = raw[0]
        if t not in known_types:
            self.n_unknown_type += 1
            return None
        body = _parse(t, raw, n)
        if body is None:
            self.n_bad_length += 1
            return None
        self.n_frames += 1
        return (t, raw[1], body)

    def _end_frame(self: Any) -> tuple[int, int, dict[str, Any]] | None:
        return _message(self, cobs_decoded(self._wire, self._n))

    def pack_codes(codes: Any) -> bytes:
        try:
            key = bytes(codes)
        except (TypeError, ValueError):
            return ref_pack(codes)  # raises as the reference does
        hit = packed.get(key)
        if hit is None:
            hit = ref_pack(codes)  # checks every code
            if len(packed) >= _CACHE_MAX:
                packed.clear()
            packed[key] = hit
        return hit

    def _unpack_codes(buf: Any, start: int, n: int) -> list[int]:
        codes: list[int] = []
        for b in buf[start : start + (n + 1) // 2]:
            codes += _NIBBLES[b]
        if n & 1:
            codes.pop()
        return codes

    def _frame(mtype: int, seq: int, payload: Any) -> bytes:
        if seq < 0 or seq > 255:
            raise ValueError("seq out of range")
        raw = bytes((mtype, seq)) + payload
        crc = crc_hqx(raw, 0xFFFF)
        return cobs_encode(raw + bytes((crc & 0xFF, crc >> 8))) + b"\x00"

    def encode_status(
        seq: int,
        state: int,
        fault: int,
        answered_seq: int,
        inputs: int,
        counts: Any,
        lamps: Any,
        rx_errors: int = 0,
        fault_channels: int = 0,
    ) -> bytes:
        # Every field in range: the payload in one go; else the reference raises.
        n = len(lamps)
        if (
            len(counts) == 16
            and n <= max_channels
            and 0 <= inputs <= 0xFFFF
            and 0 <= fault_channels <= 0xFFFFFFFF
        ):
            try:
                head = bytes((state, fault, answered_seq, rx_errors, inputs & 0xFF, inputs >> 8))
                payload = (
                    head
                    + bytes(counts)
                    + bytes((n,))
                    + pack_codes(lamps)
                    + fault_channels.to_bytes(4, "little")
                )
                return _frame(msg_status, seq, payload)
            except (TypeError, ValueError, OverflowError):
                pass
        return ref_status(
            seq, state, fault, answered_seq, inputs, counts, lamps, rx_errors, fault_channels
        )

    def encode_outputs(seq: int, codes: Any, flags: int = 0) -> bytes:
        # Every field in range: _frame's bytes in one go (every tick); else the reference
        # raises (it checks the count, the flags, the codes, then seq, in that order).
        try:
            n = len(codes)
            if n <= max_channels and 0 <= flags <= 255 and 0 <= seq <= 255:
                raw = bytes((msg_outputs, seq, n, flags)) + pack_codes(codes)
                crc = crc_hqx(raw, 0xFFFF)
                return cobs_encode(raw + bytes((crc & 0xFF, crc >> 8))) + b"\x00"
        except (TypeError, ValueError, OverflowError):
            pass
        return ref_outputs(seq, codes, flags)

    def _parse(t: int, buf: Any, n: int) -> dict[str, Any] | None:
        # STATUS and OUTPUTS (every tick) here, the other messages by the reference.
        if t == msg_status:
            ln = n - 4
            if ln < status_head:
                return None
            k = buf[24]
            half = (k + 1) // 2
            if k > max_channels or ln != status_head + half + status_tail:
                return None
            tail = 25 + half
            return {
                "state": buf[2],
                "fault": buf[3],
                "answered_seq": buf[4],
                "rx_errors": buf[5],
                "inputs": buf[6] | (buf[7] << 8),
                "counts": list(buf[8:24]),
                "lamps": _unpack_codes(buf, 25, k),
                "fault_channels": int.from_bytes(buf[tail : tail + 4], "little"),
            }
        if t == msg_outputs:
            ln = n - 4
            if ln < 2:
                return None
            k = buf[2]
            if k > max_channels or ln != 2 + (k + 1) // 2:
                return None
            return {"flags": buf[3], "codes": _unpack_codes(buf, 4, k)}
        return ref_parse(t, buf, n)

    def _crc16(buf: Any, start: int, end: int) -> int:
        return crc_hqx(memoryview(buf)[start:end], 0xFFFF)

    def feed(self: Any, data: Any) -> list[Any]:
        # The reference's byte loop, a run of non-zero bytes at a time.
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        size = len(data)
        whole = self._n == 0 and not self._overflow and 1 < size <= max_wire + 1
        if whole and data.find(0) == size - 1:  # one whole frame, as a link mostly brings
            msg = _message(self, _decoded(data, size - 1))
            return [] if msg is None else [msg]
        msgs = []
        wire = self._wire
        start = 0
        while start < size:
            z = data.find(0, start)
            stop = size if z < 0 else z
            run = stop - start
            if run and not self._overflow:
                room = max_wire - self._n
                if run <= room:
                    wire[self._n : self._n + run] = data[start:stop]
                    self._n += run
                else:
                    wire[self._n : max_wire] = data[start : start + room]
                    self._n = max_wire
                    self._overflow = True
            if z < 0:
                break
            if self._overflow:
                self.n_bad_length += 1
                self._overflow = False
            elif self._n:
                msg = self._end_frame()
                if msg is not None:
                    msgs.append(msg)
            self._n = 0
            start = z + 1
        return msgs

    ns["cobs_encode"] = cobs_encode
    ns["_cobs_decode_into"] = _cobs_decode_into
    ns["pack_codes"] = pack_codes
    ns["_unpack_codes"] = _unpack_codes
    ns["_frame"] = _frame
    ns["_crc16"] = _crc16
    ns["encode_status"] = encode_status
    ns["encode_outputs"] = encode_outputs
    ns["_parse"] = _parse
    decoder.feed = feed
    decoder._end_frame = _end_frame


@contextmanager
def loops(codec: Any) -> Iterator[None]:
    """Within: the module `codec` (hw.codec) as MicroPython runs it, every function
    install() replaced back to its byte loop; for comparisons (tests, timings)."""
    ref = codec.REFERENCE
    fast = {name: getattr(codec, name) for name in ref if "." not in name}
    methods = {name: getattr(codec.Decoder, name) for name in ("feed", "_end_frame")}
    try:
        for name in fast:
            setattr(codec, name, ref[name])
        for name in methods:
            setattr(codec.Decoder, name, ref["Decoder." + name])
        yield
    finally:
        for name, f in fast.items():
            setattr(codec, name, f)
        for name, m in methods.items():
            setattr(codec.Decoder, name, m)
