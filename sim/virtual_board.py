"""Virtual IO board: the hw/ firmware core (hw.board.Board) on the host, behind a real pty.

The host opens the pty's slave path with pyserial exactly as it opens
/dev/ttyACM0, so the runtime's serial code runs unchanged. A thread plays the
Pico's main loop (hw/main.py): read what arrived, hand it to the firmware,
write the replies, tick the watchdog, sample the inputs, drive the lamps,
every `loop_ms` (1 ms by default, like the Pico) or at once when bytes
arrive. Time is time.monotonic(), the host's clock too, so a test can compare
the board's timestamps with the host's.

What tests and the simulator get:
- observation: state, fault, lamps (codes driven), flash (flash-transfer
  relay), a timestamped lamp trace (every change of state, fault or codes)
  and a log of every valid OUTPUTS received (arrival time, seq, map, flags,
  and when the lamps were driven);
- faults to inject: cut() / restore() the line (bytes stop passing, the port
  stays), unplug() / replug() (the pty closes, the host's port vanishes, a
  new pty appears at the same link path), a bit-error rate on both
  directions, stall(ms) (the firmware hangs; 500 ms or more and the RP2040's
  hardware watchdog resets the chip), reset() (power cycle), inject(bytes)
  (a frame as if from the host, e.g. a conflicting map), and boards that
  speak another protocol version or store a different config than was sent.

Run as a process: `python -m sim.virtual_board --link /tmp/edge-board`
prints a JSON line {"event": "ready", "path": ...} and then one per lamp
change (`--repl PATH --flash-dir DIR` also serves the USB REPL for mpremote,
sim/raw_repl.py); it reads commands on stdin (`inputs 0x0003`, `ber 1e-3`, `cut`,
`restore`, `unplug`, `replug`, `stall 600`, `reset`, `status`, `quit`, and the
field faults of sim/field.py: `fault CH KIND [COLOUR]` with CH 0-based and KIND
stuck_on / welded, dead, short, dual, frozen; `clear`).

The field: every loop the firmware's lamp-sense inputs are read from a
sim/field.Field that follows the driven lamps (with any injected faults), and
the board's field monitor (hw/monitor.py) judges them; its power-up
self-test reads the field with every output off. The fault record store
survives reset() as the Pico's flash does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import select
import signal
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hw import board, codec
from sim.field import Field, FieldFault

HW_WATCHDOG_MS = 500  # RP2040 watchdog in hw/main.py: a hung loop resets the chip
_TICKS_MAX = 0x3FFFFFFF


@dataclass(frozen=True, slots=True)
class LampChange:
    """The board's outputs from time t (monotonic s) on."""

    t: float
    state: int
    fault: int
    lamps: tuple[int, ...]

    @property
    def flash(self) -> bool:
        return bool(self.state == codec.STATE_FLASH)


@dataclass(frozen=True, slots=True)
class RxOutputs:
    """A valid OUTPUTS the firmware received: arrival, seq, map, flags, lamps driven at."""

    t_rx: float
    seq: int
    codes: tuple[int, ...]
    flags: int
    t_driven: float
    state: int  # board state after it


class _OtherVersionBoard(board.Board):  # type: ignore[misc]
    """Firmware built for another protocol version: answers HELLO with its own version."""

    def __init__(self, now_ms: int, version: int, firmware: str) -> None:
        super().__init__(now_ms, firmware)
        self.version = version

    def handle(self, now_ms: int, msg: Any) -> bytes:
        t, _seq, body = msg
        if t == codec.MSG_HELLO:
            self.hello_ok = body["version"] == self.version
            s = self.safety
            reply: bytes = codec.encode_hello_reply(
                self._next_seq(),
                self.firmware,
                s.state,
                s.fault,
                s.channels,
                s.config_hash,
                self.version,
            )
            return reply
        out: bytes = super().handle(now_ms, msg)
        return out


def _tamper_config(body: dict[str, Any]) -> dict[str, Any]:
    # A board that stores something else than it was sent (a bad flash write):
    # one more millisecond of red on channel 0, and the hash of what it stored.
    body = dict(body)
    body["min_red_ms"] = [body["min_red_ms"][0] + 1, *body["min_red_ms"][1:]]
    payload = codec.config_payload(
        body["conflicts"],
        body["min_yellow_ms"],
        body["min_red_ms"],
        body["flash"],
        body["kinds"],
        body["watchdog_ms"],
    )
    body["config_hash"] = codec.config_hash(payload)
    return body


class BitErrors:
    """Flips each bit with probability `ber`, independently (geometric gaps between errors)."""

    def __init__(self, ber: float, rng: random.Random) -> None:
        self.ber = ber
        self.rng = rng
        self.flipped = 0
        self._gap = self._next_gap()

    def _next_gap(self) -> int:
        if self.ber <= 0:
            return 1 << 62
        if self.ber >= 1:
            return 0
        u = 1.0 - self.rng.random()  # (0, 1]
        return int(math.log(u) / math.log1p(-self.ber))

    def apply(self, data: bytes) -> bytes:
        nbits = len(data) * 8
        if self._gap >= nbits:
            self._gap -= nbits
            return data
        out = bytearray(data)
        pos = self._gap
        while pos < nbits:
            out[pos >> 3] ^= 1 << (pos & 7)
            self.flipped += 1
            pos += 1 + self._next_gap()
        self._gap = pos - nbits
        return bytes(out)


class VirtualBoard:
    """hw.board.Board behind a pty, on its own loop thread. Use as a context manager."""

    def __init__(
        self,
        link: str | Path | None = None,
        *,
        loop_ms: float = 1.0,
        firmware: str = board.FIRMWARE_VERSION,
        protocol_version: int = codec.PROTOCOL_VERSION,
        tamper_config: bool = False,
        seed: int = 0,
        on_change: Callable[[LampChange], None] | None = None,
        record_rx: bool = True,
        time_scale: float = 1.0,
    ) -> None:
        self.link = Path(link) if link is not None else None
        # The firmware's clock runs this many times faster than the wall (edge run --sim
        # --speed): its watchdog and minimum times scale with the host's clock.
        self.time_scale = time_scale
        self.loop_s = loop_ms / 1000.0
        self.firmware = firmware
        self.protocol_version = protocol_version
        self.tamper_config = tamper_config
        self.on_change = on_change
        self.record_rx = record_rx
        self._rng = random.Random(seed)
        self.field = Field()
        self._store = board.RecordStore()
        self._lock = threading.Condition()
        self._master = -1
        self._slave = -1
        self.pty_name = ""
        self._board = self._new_board()
        self._inputs = 0
        self._cut = False
        self._ber_rx: BitErrors | None = None
        self._ber_tx: BitErrors | None = None
        self._flipped_before = 0
        self._stall_s = 0.0
        self._reset_req = False
        self._inject: list[bytes] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.trace: list[LampChange] = []
        self.rx: deque[RxOutputs] = deque(maxlen=500_000)
        self.resets = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._last: tuple[int, int, tuple[int, ...]] | None = None
        self._open_pty()

    # -- lifetime -----------------------------------------------------------------

    def _new_board(self) -> Any:
        now = self._now_ms(time.monotonic())
        if self.protocol_version != codec.PROTOCOL_VERSION:
            b: Any = _OtherVersionBoard(now, self.protocol_version, self.firmware)
        else:
            b = board.Board(now, self.firmware, store=self._store)
        # Power-up self-test: every output off (and the field's faults, if any).
        self.field.drive(now, bytes(codec.MAX_CHANNELS), 0, False)
        b.run_self_test(now, self.field.sense(now + 1000), board.SELF_TEST_PATTERN)
        return b

    def _now_ms(self, t: float) -> int:
        return int(t * self.time_scale * 1000) & _TICKS_MAX

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        # Raw from the start: no echo, no line discipline, whoever opens it. The
        # board keeps the slave open too, so the host can close and reopen it
        # without the master seeing a hang-up.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.pty_name = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.pty_name)
            tmp.replace(self.link)

    def _close_pty(self) -> None:
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    @property
    def path(self) -> str:
        """What the host opens: the link path if one was given, else the pty's own name."""
        return str(self.link) if self.link is not None else self.pty_name

    def start(self) -> VirtualBoard:
        with self._lock:
            self._record(time.monotonic())
        self._thread = threading.Thread(target=self._run, name="virtual-board", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._close_pty()

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation ----------------------------------------------------------------

    @property
    def state(self) -> int:
        with self._lock:
            s: int = self._board.safety.state
            return s

    @property
    def fault(self) -> int:
        with self._lock:
            f: int = self._board.safety.fault
            return f

    @property
    def lamps(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._board.safety.lamps())

    @property
    def flash(self) -> bool:
        """Flash-transfer relay in flash position."""
        with self._lock:
            return bool(self._board.safety.flash_transfer)

    @property
    def fault_channels(self) -> int:
        """Bitmask of the channels the board's fault names."""
        with self._lock:
            c: int = self._board.safety.fault_channels
            return c

    @property
    def record(self) -> list[int] | None:
        """The fault record kept across resets: [boots, fault, channels, uptime_ms, boot]."""
        with self._lock:
            r = self._board.record
            return list(r) if r is not None else None

    @property
    def config_hash(self) -> int:
        with self._lock:
            h: int = self._board.safety.config_hash
            return h

    def snapshot(self) -> tuple[list[LampChange], list[RxOutputs]]:
        """Copies of the lamp trace and the OUTPUTS log, consistent with each other."""
        with self._lock:
            return list(self.trace), list(self.rx)

    def wait_for(self, predicate: Callable[[VirtualBoard], bool], timeout_s: float) -> bool:
        """Poll `predicate(self)` on every change, until true or timeout. Returns the last value."""
        deadline = time.monotonic() + timeout_s
        while True:
            if predicate(self):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._lock:
                self._lock.wait(min(left, 0.05))

    # -- faults and inputs ----------------------------------------------------------------

    def set_inputs(self, mask: int) -> None:
        """Raw input levels, bit k-1 = board input k active (debounced by the firmware)."""
        with self._lock:
            self._inputs = mask & 0xFFFF

    def cut(self) -> None:
        """The line goes dead: nothing passes either way; the port stays open."""
        with self._lock:
            self._cut = True

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def unplug(self) -> None:
        """The cable (USB) is pulled: the pty closes and the link path disappears."""
        with self._lock:
            self._close_pty()

    def replug(self) -> None:
        """A new pty at the same link path (a new /dev/pts/N, as a USB port re-enumerates)."""
        with self._lock:
            if self._master < 0:
                self._open_pty()

    def set_ber(self, ber: float) -> None:
        """Bit-error rate on both directions (0 turns it off)."""
        with self._lock:
            self._flipped_before += sum(
                b.flipped for b in (self._ber_rx, self._ber_tx) if b is not None
            )
            if ber > 0:
                self._ber_rx = BitErrors(ber, random.Random(self._rng.random()))
                self._ber_tx = BitErrors(ber, random.Random(self._rng.random()))
            else:
                self._ber_rx = self._ber_tx = None

    @property
    def bits_flipped(self) -> int:
        """Bits flipped by set_ber() so far, both directions."""
        with self._lock:
            now = sum(b.flipped for b in (self._ber_rx, self._ber_tx) if b is not None)
            return self._flipped_before + now

    def stall(self, ms: int) -> None:
        """The firmware hangs for ms; at 500 ms the hardware watchdog resets the chip."""
        with self._lock:
            self._stall_s = min(ms, HW_WATCHDOG_MS) / 1000.0
            self._reset_req = ms >= HW_WATCHDOG_MS

    def reset(self) -> None:
        """Power cycle: the firmware restarts in flash with POWER_ON, config lost."""
        with self._lock:
            self._reset_req = True

    def field_fault(self, ch: int, fault: FieldFault) -> None:
        """A fault on the street side of channel ch (sim/field.py)."""
        with self._lock:
            self.field.inject(ch, fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.field.clear()

    def inject(self, data: bytes) -> None:
        """Bytes handed to the firmware as if they came from the host."""
        with self._lock:
            self._inject.append(bytes(data))

    # -- the loop (hw/main.py's run(), with a pty for the UART) ----------------------------

    def _record(self, t: float) -> None:
        s = self._board.safety
        key = (s.state, s.fault, tuple(s.lamps()))
        if key != self._last:
            self._last = key
            change = LampChange(t, *key)
            self.trace.append(change)
            if self.on_change is not None:
                self.on_change(change)
            self._lock.notify_all()

    def _handle(self, t: float, data: bytes, out: bytearray) -> None:
        b = self._board
        now = self._now_ms(t)
        for msg in b.decoder.feed(data):
            mtype, seq, body = msg
            if mtype == codec.MSG_CONFIG and self.tamper_config:
                msg = (mtype, seq, _tamper_config(body))
            out += b.handle(now, msg)
            if mtype == codec.MSG_OUTPUTS:
                self._record(t)
                if self.record_rx:
                    t_driven = time.monotonic()
                    self.rx.append(
                        RxOutputs(
                            t, seq, tuple(body["codes"]), body["flags"], t_driven, b.safety.state
                        )
                    )
                    self._lock.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                stall_s, self._stall_s = self._stall_s, 0.0
                master = self._master
            if stall_s:
                time.sleep(stall_s)
                with self._lock:
                    if self._reset_req:
                        self._reset_locked(time.monotonic())
                continue
            readable = False
            if master >= 0:
                try:
                    r, _, _ = select.select([master], [], [], self.loop_s)
                    readable = bool(r)
                except (OSError, ValueError):
                    readable = False
            else:
                time.sleep(self.loop_s)
            data = b""
            if readable:
                try:
                    data = os.read(master, 4096)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError:
                    data = b""
                    time.sleep(self.loop_s)
            t = time.monotonic()
            with self._lock:
                if self._reset_req:
                    self._reset_locked(t)
                out = bytearray()
                if data:
                    self.bytes_in += len(data)
                    if not self._cut:
                        if self._ber_rx is not None:
                            data = self._ber_rx.apply(data)
                        self._handle(t, data, out)
                for extra in self._inject:
                    self._handle(t, extra, bytearray())  # replies to injected frames go nowhere
                self._inject.clear()
                now = self._now_ms(t)
                b = self._board
                b.tick(now)
                b.sample_inputs(now, self._inputs)
                flash_on = board.flash_phase(now)
                s = b.safety
                self.field.drive(now, s.driven, s.channels, flash_on)
                b.sense(now, self.field.sense(now, s.kinds), flash_on)
                self._record(t)
                if out and not self._cut and self._master >= 0:
                    reply = bytes(out)
                    if self._ber_tx is not None:
                        reply = self._ber_tx.apply(reply)
                    with contextlib.suppress(OSError):
                        os.write(self._master, reply)
                    self.bytes_out += len(reply)

    def _reset_locked(self, t: float) -> None:
        self._reset_req = False
        self.resets += 1
        self._board = self._new_board()
        self._record(t)


# --- process mode ------------------------------------------------------------------------


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _change_json(c: LampChange) -> dict[str, Any]:
    return {"event": "lamps", "t": c.t, "state": c.state, "fault": c.fault, "lamps": list(c.lamps)}


def _command(vb: VirtualBoard, line: str) -> bool:
    parts = line.split()
    if not parts:
        return True
    cmd, args = parts[0], parts[1:]
    if cmd == "inputs":
        vb.set_inputs(int(args[0], 0))
    elif cmd == "ber":
        vb.set_ber(float(args[0]))
    elif cmd == "cut":
        vb.cut()
    elif cmd == "restore":
        vb.restore()
    elif cmd == "unplug":
        vb.unplug()
    elif cmd == "replug":
        vb.replug()
    elif cmd == "stall":
        vb.stall(int(args[0]))
    elif cmd == "reset":
        vb.reset()
    elif cmd == "status":
        _emit(
            {
                "event": "status",
                "t": time.monotonic(),
                "state": vb.state,
                "fault": vb.fault,
                "lamps": list(vb.lamps),
                "flash": vb.flash,
                "pty": vb.pty_name,
                "resets": vb.resets,
                "fault_channels": vb.fault_channels,
                "record": vb.record,
            }
        )
    elif cmd == "fault":
        from sim.field import parse_fault

        try:
            ch, fault = parse_fault(args)
        except ValueError as e:
            _emit({"event": "error", "detail": str(e)})
            return True
        vb.field_fault(ch, fault)
    elif cmd == "clear":
        vb.clear_faults()
    elif cmd == "quit":
        return False
    else:
        _emit({"event": "error", "detail": f"unknown command {cmd!r}"})
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.virtual_board", description=__doc__)
    parser.add_argument("--link", help="symlink to create to the pty (default: print its name)")
    parser.add_argument("--loop-ms", type=float, default=1.0, help="main loop period (ms)")
    parser.add_argument("--ber", type=float, default=0.0, help="bit-error rate, both directions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol-version", type=int, default=codec.PROTOCOL_VERSION)
    parser.add_argument("--firmware", default=board.FIRMWARE_VERSION)
    parser.add_argument("--tamper-config", action="store_true", help="store another config")
    parser.add_argument("--repl", help="also serve the USB REPL (mpremote) on a pty linked here")
    parser.add_argument("--flash-dir", help="with --repl: the directory standing for the flash")
    parser.add_argument(
        "--frames", action="store_true", help="print every OUTPUTS received (for benchmarks)"
    )
    args = parser.parse_args(argv)
    vb = VirtualBoard(
        args.link,
        loop_ms=args.loop_ms,
        firmware=args.firmware,
        protocol_version=args.protocol_version,
        tamper_config=args.tamper_config,
        seed=args.seed,
        on_change=lambda c: _emit(_change_json(c)),
        record_rx=args.frames,
    )
    if args.ber:
        vb.set_ber(args.ber)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def read_commands() -> None:
        # Only `quit` stops the board: a closed stdin (a background job) does not.
        for line in sys.stdin:
            if not _command(vb, line):
                stop.set()
                return

    repl = None
    if args.repl:
        from sim.raw_repl import RawRepl

        repl = RawRepl(args.flash_dir or f"{args.repl}.flash", args.repl, on_reset=vb.reset)
        repl.start()
    vb.start()
    ready = {"event": "ready", "path": vb.path, "pty": vb.pty_name, "pid": os.getpid()}
    if repl is not None:
        ready["repl"] = repl.path
    _emit(ready)
    if not sys.stdin.isatty():
        threading.Thread(target=read_commands, name="commands", daemon=True).start()
    while not stop.wait(0.05):
        while args.frames and vb.rx:
            f = vb.rx.popleft()
            _emit(
                {
                    "event": "rx",
                    "seq": f.seq,
                    "t_rx": f.t_rx,
                    "t_driven": f.t_driven,
                    "codes": list(f.codes),
                }
            )
    vb.stop()
    if repl is not None:
        repl.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
