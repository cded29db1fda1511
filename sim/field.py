"""The street side of the virtual board: what its lamp-sense inputs read, with field faults.

The sensed lamps follow the driven ones after `latency_ms` (the opto's AC
filter), unless a fault on the channel says otherwise:

  stuck_on [COLOUR]  that lamp always lit (a welded load-switch contact; default green);
                     `welded` is the same
  dead [COLOUR]      that lamp never lit (a blown lamp: no current; default red;
                     `all`: the channel's field fuse blown)
  short              the yellow feed shorted into the red: a driven yellow lights red
  dual               a second lamp lit with the driven one (yellow beside green or red,
                     red beside yellow; walk beside don't walk)
  frozen             the channel's lamps stay as they were when the fault came

`clear` removes every fault. Pure: time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw import codec, monitor

RED: int = monitor.RED_LAMP
YELLOW: int = monitor.YELLOW_LAMP
GREEN: int = monitor.GREEN_LAMP

KINDS = ("stuck_on", "welded", "dead", "short", "dual", "frozen")
COLOURS = {
    "red": monitor.RED_LAMP,
    "yellow": monitor.YELLOW_LAMP,
    "green": monitor.GREEN_LAMP,
    "all": monitor.RED_LAMP | monitor.YELLOW_LAMP | monitor.GREEN_LAMP,
}
SENSE_BYTES = 12


@dataclass(frozen=True, slots=True)
class FieldFault:
    kind: str
    lamp: int  # the colour's lamp bit for stuck_on / dead


def parse_fault(args: list[str]) -> tuple[int, FieldFault]:
    """`CH KIND [COLOUR]` (CH 0-based) -> (channel, fault); ValueError naming what is wrong."""
    if len(args) < 2:
        raise ValueError("usage: fault CH KIND [COLOUR]")
    ch = int(args[0])
    if not 0 <= ch < codec.MAX_CHANNELS:
        raise ValueError(f"fault: channel {ch} outside 0..31")
    kind = args[1]
    if kind not in KINDS:
        raise ValueError(f"fault: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    default = "green" if kind in ("stuck_on", "welded") else "red"
    colour = args[2] if len(args) > 2 else default
    if colour not in COLOURS:
        raise ValueError(f"fault: unknown colour {colour!r} (red, yellow, green, all)")
    return ch, FieldFault("stuck_on" if kind == "welded" else kind, COLOURS[colour])


class Field:
    """Sensed lamps of up to 32 channels from the driven codes, the flash phase and faults."""

    def __init__(self, latency_ms: int = 0) -> None:
        self.latency_ms = latency_ms
        self.faults: dict[int, FieldFault] = {}
        self._frozen: dict[int, int] = {}
        self._now: list[int] = [0] * codec.MAX_CHANNELS  # driven lamps, latest
        self._old: list[int] = [0] * codec.MAX_CHANNELS  # before the latest change
        self._since: list[int] = [-(10**9)] * codec.MAX_CHANNELS

    def inject(self, ch: int, fault: FieldFault) -> None:
        self.faults[ch] = fault
        if fault.kind == "frozen":
            self._frozen[ch] = self._now[ch]

    def clear(self) -> None:
        self.faults.clear()
        self._frozen.clear()

    def drive(
        self, now_ms: int, codes: bytes | bytearray | list[int], n: int, flash_on: bool
    ) -> None:
        """The board's outputs at now_ms (its driven codes, first n, and the flash phase)."""
        for c in range(codec.MAX_CHANNELS):
            lamps = monitor.code_lamps(codes[c], flash_on) if c < n else 0
            if lamps != self._now[c]:
                self._old[c] = self._sensed_plain(now_ms, c)
                self._now[c] = lamps
                self._since[c] = now_ms

    def _sensed_plain(self, now_ms: int, c: int) -> int:
        return self._now[c] if now_ms - self._since[c] >= self.latency_ms else self._old[c]

    def lamps(self, now_ms: int, c: int, ped: bool = False) -> int:
        """Channel c's sensed lamps at now_ms."""
        lamps = self._sensed_plain(now_ms, c)
        f = self.faults.get(c)
        if f is None:
            return lamps
        if f.kind == "frozen":
            return self._frozen.get(c, lamps)
        if f.kind == "stuck_on":
            return lamps | f.lamp
        if f.kind == "dead":
            return lamps & ~f.lamp
        if f.kind == "short":
            return (lamps & ~YELLOW) | RED if lamps & YELLOW else lamps
        # dual
        if ped:
            return lamps | (GREEN if lamps & RED else RED)
        return lamps | (RED if lamps & YELLOW else YELLOW)

    def sense(self, now_ms: int, kinds: bytes | list[int] = b"") -> bytearray:
        """The 12 sense bytes (hw/monitor.py's layout) at now_ms."""
        buf = bytearray(SENSE_BYTES)
        for c in range(codec.MAX_CHANNELS):
            ped = c < len(kinds) and kinds[c] == codec.KIND_PED
            lamps = self.lamps(now_ms, c, ped)
            if lamps:
                monitor.set_channel_lamps(buf, c, lamps)
        return buf
