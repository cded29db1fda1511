"""Shapes each output map so the board accepts it even when frames are lost: sans-IO.

The board times every interval between the arrivals of the frames that start
and end it (hw/PROTOCOL.md section 7). On a clean link that is the
controller's own timing. On a lossy link it is not: if the frame that starts
a yellow is lost, the board's yellow starts a tick late, and a controller
yellow of exactly the minimum would end "short" on the board, which then goes
to flash for a fault the controller never made. The guard prevents that
without trusting itself for safety (the board still checks everything):

- Per channel it keeps the category the board has confirmed driving (from
  STATUS lamps) and an upper bound of when it started: the send time of the
  OUTPUTS whose STATUS first showed it (the board switched on that frame's
  arrival or an earlier one).
- A category change is sent only from a confirmed category, and then kept
  until STATUS confirms it: at most one transition is in flight per channel,
  so the board is always in the old or the new category, both known.
- CHANGE -> STOP only after the confirmed change interval has lasted the
  channel's min_yellow_ms; until then the change is held (a longer yellow).
- STOP -> GO only while the board is RUNNING and every conflicting channel
  is confirmed STOP, not in flight, for its min_red_ms; until then the
  channel stays red (a later green).
- GO -> STOP goes through CHANGE; STOP -> CHANGE (a green that was never
  shown ends) stays STOP; CHANGE -> GO finishes the change first.
- Outside RUNNING (the board's start-up all-red, flash) every channel is sent
  stopped, as the board requires.

On a clean link none of this changes a map: the controller's intervals are
at least the configured minimums and every STATUS confirms its frame within
milliseconds. Codes the kind does not have are passed through unchanged: the
board refuses them (FAULT_BAD_MAP), which is the right answer to a bug.
Times are the host's real send times. Two frames see about the same serial
latency, so the board measures about the interval between their sends; the
guard allows TOLERANCE_MS of the board's 50 ms timing slack for the host's
own wake-up jitter between two ticks (a few ms normally; a tick late by more
is held back a tick) and leaves the rest for the line and the board's loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.board.config import BoardConfig
from hw import codec

STOP, GO, CHANGE, BAD = 0, 1, 2, 3
TOLERANCE_MS = 20  # of the board's TIMING_SLACK_MS (50): host send jitter it absorbs

# Category of each state code 0..15 by channel kind (as hw/board_safety.py).
_CAT_VEHICLE = (STOP, STOP, CHANGE, GO, STOP, GO) + (BAD,) * 10
_CAT_PED = (STOP, STOP, BAD, GO, CHANGE, BAD) + (BAD,) * 10


def category(kind: int, code: int) -> int:
    """STOP, GO, CHANGE or BAD for a state code on a channel of `kind` (codec.KIND_*)."""
    table = _CAT_PED if kind == codec.KIND_PED else _CAT_VEHICLE
    return table[code] if 0 <= code < len(table) else BAD


class OutputGuard:
    """Per-channel board-confirmed state; shape() turns a wanted map into a sendable one."""

    def __init__(self, config: BoardConfig) -> None:
        self.config = config
        n = config.channels
        self._tables = [_CAT_PED if k == codec.KIND_PED else _CAT_VEHICLE for k in config.kinds]
        self._conflicts = [
            tuple(j for j in range(n) if (config.conflicts[i] >> j) & 1) for i in range(n)
        ]
        self._change_code = [
            codec.FLASH_RED if k == codec.KIND_PED else codec.YELLOW for k in config.kinds
        ]
        self.running = False
        self.confirmed = [STOP] * n
        self.since_ms = [0] * n
        self.sent = [STOP] * n
        self.sent_code = [int(codec.RED)] * n
        self.held = 0  # channel-ticks sent differently from the wanted map while running

    def _cat(self, i: int, code: int) -> int:
        return self._tables[i][code] if 0 <= code < 16 else BAD

    def board_recovered(self, since_ms: int) -> None:
        """The board entered its start-up all-red at or before since_ms: all channels stopped."""
        n = self.config.channels
        self.running = False
        self.confirmed = [STOP] * n
        self.since_ms = [since_ms] * n
        self.sent = [STOP] * n
        self.sent_code = [int(codec.RED)] * n

    def board_running(self) -> None:
        self.running = True

    def board_stopped(self) -> None:
        """The board is in flash (or unknown): nothing but stopped codes until a recovery."""
        self.running = False

    def confirm(self, sent_ms: int, lamps: Sequence[int]) -> None:
        """STATUS lamps answering an OUTPUTS sent at sent_ms (board ALL_RED or RUNNING)."""
        for i in range(min(len(lamps), self.config.channels)):
            c = self._cat(i, lamps[i])
            if c != self.confirmed[i]:
                self.confirmed[i] = c
                self.since_ms[i] = sent_ms

    def in_flight(self) -> int:
        """Channels whose last sent category the board has not confirmed yet."""
        return sum(1 for s, c in zip(self.sent, self.confirmed, strict=True) if s != c)

    def shape(self, now_ms: int, wanted: Sequence[int]) -> list[int]:
        """The map to send now for the controller's `wanted` map; updates what was sent."""
        n = self.config.channels
        out: list[int] = []
        if len(wanted) != n:
            # Not ours to fix: the board refuses a wrong count (FAULT_BAD_MAP).
            return [int(c) for c in wanted]
        if not self.running:
            for i in range(n):
                w = int(wanted[i])
                code = w if self._cat(i, w) == STOP else int(codec.RED)
                out.append(code)
                self.sent[i] = STOP
                self.sent_code[i] = code
            return out
        cfg = self.config
        for i in range(n):
            w = int(wanted[i])
            want = self._cat(i, w)
            conf = self.confirmed[i]
            sent = self.sent[i]
            if want == BAD:
                code = w
            elif sent != conf:  # a transition in flight: repeat it until confirmed
                code = w if want == sent else self.sent_code[i]
            elif want == conf:
                code = w
            elif conf == GO:  # to CHANGE, or to STOP through CHANGE
                code = w if want == CHANGE else self._change_code[i]
            elif conf == CHANGE:  # to STOP (or back to GO) once the change has lasted
                if now_ms - self.since_ms[i] >= cfg.min_yellow_ms[i] - TOLERANCE_MS:
                    code = w if want == STOP else int(codec.RED)
                else:
                    code = self.sent_code[i]
            elif want == GO and self._cleared(now_ms, i):
                code = w
            else:  # stays stopped: green not yet allowed, or a change of a green never shown
                code = self.sent_code[i]
            out.append(code)
            self.sent[i] = self._cat(i, code)
            self.sent_code[i] = code
            if code != w:
                self.held += 1
        return out

    def _cleared(self, now_ms: int, i: int) -> bool:
        min_red = self.config.min_red_ms
        for j in self._conflicts[i]:
            if self.confirmed[j] != STOP or self.sent[j] != STOP:
                return False
            if now_ms - self.since_ms[j] < min_red[j] - TOLERANCE_MS:
                return False
        return True
