"""Central's ingest output, in order per device: QoS 1 counts and events released in each
device's sequence order, duplicates dropped, a gap waited for and then given up.

Why: the broker delivers at least once, and on a cluster not always in order. A message
delivered to an ingest connection that dies before it is acknowledged comes again only
when JetStream's ack wait (`mqtt.ack_wait`, 10 s in edge.link.nats) runs out, behind newer
ones (a rolling restart does this to a few messages of most devices). A device numbers its
spooled messages 1, 2, 3, ... (edge.store: never reused, gaps only when its spool
overflowed, which it reports), so a missing number is a message still on its way.

Streams: a device's numbers are per stream (its store's random id, edge.store): a re-flashed
device starts a new stream at 1 under the same id. Everything below is per (device, stream);
"device" is short for that pair. The legacy stream ("", firmware from before streams) has
no known start; every other stream starts at 1.

Rules it keeps:
- Per device, what `push` and `expire` return has strictly increasing sequence numbers,
  except a message marked `late`: one whose gap was given up before it came.
- Nothing is released twice: a number at or below the device's last released one is a
  duplicate (dropped, counted), unless it is in a gap given up (then released once, late).
- A message above the next expected number is held until the gap below it fills, or
  until `gap_timeout_s` after the gap was first seen (longer than the broker's ack wait, so
  a redelivery fills it), or while more than `max_held` are held for the device; then the
  gap is given up (its size counted in `gaps`) and the held messages go out in order.
- The wait for a gap starts when it is first seen: when the gap below the held messages
  fills (or is given up) and others stay held behind a later gap, that gap's wait starts then.
- At most MAX_SKIPPED_RANGES given-up ranges are remembered per device (the oldest go:
  a message of theirs coming later is then dropped as a duplicate), however they split.
- A stream's first number is 1 (its 2 arriving before its 1 waits for the 1, as any gap);
  the legacy stream's is its first arrival. Unless the caller says what it expects
  (`expect`: central restarting from its store passes the last number it has + 1, and the
  numbers it has: the holes among them are given-up gaps, so a redelivery still comes).
- Time is the caller's (`now`, seconds): no clock in here, so it is a pure state machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# longer than the cluster's ack wait (10 s) three times: a redelivery that goes to an ingest
# connection closing with its node waits another ack wait
GAP_TIMEOUT_S = 35.0
MAX_HELD = 4096
MAX_SKIPPED_RANGES = 64  # given-up ranges remembered per device (to release late ones once)

P = TypeVar("P")  # what the caller carries with a number (a payload, a topic and payload)


LEGACY_STREAM = ""  # edge.store.LEGACY_STREAM (not imported: this module stays pure)


@dataclass(frozen=True)
class Released(Generic[P]):
    device: str
    seq: int
    payload: P
    late: bool = False  # its gap had been given up: it comes after higher numbers
    stream: str = LEGACY_STREAM


@dataclass
class _Device(Generic[P]):
    next: int
    held: dict[int, P] = field(default_factory=dict)
    gap_since: float | None = None  # when the current gap below `held` was first seen
    skipped: list[list[int]] = field(default_factory=list)  # given up: [lo, hi] inclusive


class InOrder(Generic[P]):
    def __init__(self, gap_timeout_s: float = GAP_TIMEOUT_S, max_held: int = MAX_HELD) -> None:
        if gap_timeout_s <= 0 or max_held < 1:
            raise ValueError(
                f"InOrder: gap_timeout_s must be > 0 and max_held >= 1, "
                f"got {gap_timeout_s} and {max_held}"
            )
        self.gap_timeout_s = gap_timeout_s
        self.max_held = max_held
        self._devices: dict[tuple[str, str], _Device[P]] = {}
        self.duplicates = 0
        self.gaps = 0  # sequence numbers given up (not there when their wait ran out)
        self.late = 0

    def expect(
        self, device: str, seq: int, have: Iterable[int] = (), stream: str = LEGACY_STREAM
    ) -> None:
        """The next number `device` should send in `stream` (central's last stored one + 1).
        What is held below it is dropped as duplicates; what is above stays held. `have`:
        the numbers the caller already has; those missing between its lowest and `seq` are
        taken as given-up gaps (released once, late, if they come)."""
        d = self._devices.get((device, stream))
        if d is None:
            d = self._devices[device, stream] = _Device[P](seq)
            start = None
        else:
            start = d.next  # below it, what is missing is given up (in `skipped`) already
        below = sorted({s for s in have if s < seq})
        for lo, hi in zip(below, [*below[1:], seq][: len(below)], strict=True):
            lo = lo if start is None else max(lo, start - 1)
            if hi - lo > 1:
                d.skipped.append([lo + 1, hi - 1])
        d.skipped.sort()
        del d.skipped[:-MAX_SKIPPED_RANGES]
        for s in [s for s in d.held if s < seq]:
            del d.held[s]
            self.duplicates += 1
        d.next = seq
        d.gap_since = d.gap_since if d.held else None

    def push(
        self, device: str, seq: int, payload: P, now: float, stream: str = LEGACY_STREAM
    ) -> list[Released[P]]:
        key = (device, stream)
        d = self._devices.get(key)
        if d is None:
            d = self._devices[key] = _Device[P](seq if stream == LEGACY_STREAM else 1)
        if seq < d.next:
            if _take(d.skipped, seq):
                self.late += 1
                return [Released(device, seq, payload, late=True, stream=stream)]
            self.duplicates += 1
            return []
        if seq in d.held:
            self.duplicates += 1
            return []
        d.held[seq] = payload
        out = self._release(key, d)
        if d.held and (out or d.gap_since is None):
            d.gap_since = now  # a new gap (the one below was filled): its wait starts now
        if len(d.held) > self.max_held:
            out += self._give_up(key, d, now)
        return out

    def expire(self, now: float) -> list[Released[P]]:
        """Give up every gap older than the timeout; what was held behind it, in order."""
        out: list[Released[P]] = []
        for key, d in self._devices.items():
            while d.gap_since is not None and now - d.gap_since >= self.gap_timeout_s:
                out += self._give_up(key, d, now)
        return out

    def flush(self) -> list[Released[P]]:
        """Everything held, in order, its gaps given up (the ingest is stopping)."""
        out: list[Released[P]] = []
        for key, d in self._devices.items():
            while d.held:
                out += self._give_up(key, d, None)
        return out

    def deadline(self) -> float | None:
        """When the earliest gap runs out (for the caller's timer), None if none."""
        times = [d.gap_since for d in self._devices.values() if d.gap_since is not None]
        return min(times) + self.gap_timeout_s if times else None

    def held(self) -> int:
        return sum(len(d.held) for d in self._devices.values())

    def _release(self, key: tuple[str, str], d: _Device[P]) -> list[Released[P]]:
        out: list[Released[P]] = []
        while d.next in d.held:
            out.append(Released(key[0], d.next, d.held.pop(d.next), stream=key[1]))
            d.next += 1
        if not d.held:
            d.gap_since = None
        return out

    def _give_up(self, key: tuple[str, str], d: _Device[P], now: float | None) -> list[Released[P]]:
        """Skip the gap below the lowest held number and release what follows it; the
        next gap (if any) starts its wait now."""
        low = min(d.held)
        self.gaps += low - d.next
        d.skipped.append([d.next, low - 1])
        del d.skipped[:-MAX_SKIPPED_RANGES]
        d.next = low
        d.gap_since = None
        out = self._release(key, d)
        if d.held:
            d.gap_since = now
        return out


def _take(ranges: list[list[int]], seq: int) -> bool:
    """Remove `seq` from the given-up ranges; whether it was in one."""
    for i, (lo, hi) in enumerate(ranges):
        if lo <= seq <= hi:
            parts = [[lo, seq - 1]] if lo < seq else []
            parts += [[seq + 1, hi]] if seq < hi else []
            ranges[i : i + 1] = parts
            del ranges[:-MAX_SKIPPED_RANGES]
            return True
    return False
