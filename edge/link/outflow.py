"""Neighbours' outflows over the central link: the device's side of edge/neighbours.py.

What the simulator's `edge-neighbours` does in lockstep (sim/sumo/neighbours.py), a
device does here, with the same projection. Rules it keeps (tests/link/test_outflow.py):

1. Sending (every device): the central link's tick hook (its own thread) finds each
   tick's releases (`Releases.step` over the vehicle detectors of the Inputs the
   controller stepped on and the phases it showed) and queues them, bounded
   (MAX_QUEUED; the oldest dropped, counted). Once a second the link's task sends
   what queued as one `outflow` (QoS 0, not retained), each release by its age
   at sending on the controller's clock, so no clocks need to agree. A second
   with none sends nothing; a link that is down drops them (a release is worth
   seconds).
2. Receiving (a device with `[[neighbour]]` entries): the client subscribes to the
   `outflow` of each device they name and takes no other's, nor a retained one
   (the ACL cannot forbid the retain flag; a release replayed later is stale); a
   [[neighbour]] naming this device itself is ignored, logged and reported. A message
   is parsed (messages.parse_outflow: bounded size and count, every field's type and
   range) and projected at once, on the link's event loop, its releases placed on the
   controller's clock by their ages. A bad one is dropped whole, counted and
   reported: logged and an `outflow_rejected` link event naming the device and
   the first problem, at most one per device per REPORT_EVERY_S (the count of
   the others in the next). The event loop parsing them runs the control tick
   too: a neighbour's outflows beyond FLOOD_BURST, at more than FLOOD_PER_S a
   second, are dropped before they are parsed, counted and reported (`flood`)
   the same way, so no neighbour can buy the tick's time.
3. Into the core: the board driver's step asks `take(now)` (`BoardDriver.arrivals`);
   once a second of the controller's clock it is the projection's set
   (edge/neighbours.py rule 4), else None. A pure call over a bounded list, no lock
   and no I/O (the link and the tick share the event loop's thread): the tick never
   waits on the link. A neighbour silent or gone: its arrivals run out, then
   nothing new, and the core runs exactly as without (arrivals.py rule 1).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence

from edge.control.messages import Lamp
from edge.link import messages
from edge.link.errors import Rejected
from edge.neighbours import SEND_MS, Link, Projection, Release, Releases

log = logging.getLogger(__name__)

MAX_QUEUED = messages.MAX_OUTFLOW_RELEASES  # a second's releases; more are dropped
REPORT_EVERY_S = 60.0
# A neighbour sends once a second; its messages may bunch on the way. More is a flood.
FLOOD_PER_S = 2.0
FLOOD_BURST = 4


class Outflow:
    """One device's outflow: its releases out, its neighbours' in, arrivals to its core."""

    def __init__(
        self,
        device: str,
        phase_ids: Sequence[int],
        vehicle_detectors: frozenset[int],
        links: Sequence[Link],
        report: Callable[[str, str], None],
    ) -> None:
        self.device = device
        self.vehicle_detectors = vehicle_detectors
        self.releases = Releases(phase_ids)
        # (detector, controller ms, ms on the loop, phases showing): filled by the tick
        # hook's thread, emptied by the link's task (deque: atomic ends)
        self.queue: deque[messages.Release] = deque(maxlen=MAX_QUEUED)
        if any(link.device == device for link in links):  # a site file copied from upstream
            detail = "a [[neighbour]] names this device: its own releases are not arrivals here"
            log.error("outflow_config device=%s %s; ignored", device, detail)
            report(device, detail)
            links = [link for link in links if link.device != device]
        self.projection = Projection(links)
        self.neighbours = frozenset(link.device for link in links)
        self.report = report  # (subject, detail) -> an `outflow_rejected` link event
        self._next_take = 0
        self._reported_s: dict[str, float] = {}
        self._unreported: dict[str, int] = {}
        self._allowance: dict[str, tuple[float, float]] = {}  # device: (messages, at mono s)
        self.sent = self.queue_dropped = 0
        self.received = self.rejected = 0

    # -- rule 1 -----------------------------------------------------------------------------

    def observe(self, t_ms: int, occupied: frozenset[int], lamps: Sequence[Lamp]) -> None:
        """The tick hook's thread: this step's releases into the queue."""
        for r in self.releases.step(t_ms, occupied & self.vehicle_detectors, lamps):
            if len(self.queue) == MAX_QUEUED:
                self.queue_dropped += 1
            self.queue.append((r.detector, r.t_ms, r.on_ms, tuple(sorted(r.showing))))

    def message(self, utc_ms: int, now_ms: int) -> str | None:
        """The link's task, once a second: the releases queued since, or None."""
        rels = []
        while self.queue:
            det, t, on, showing = self.queue.popleft()
            age = min(max(now_ms - t, 0), messages.MAX_RELEASE_AGE_MS)
            rels.append((det, age, min(on, messages.MAX_ON_LOOP_MS), showing))  # a stuck loop
        return messages.outflow(self.device, utc_ms, rels) if rels else None

    # -- rule 2 -----------------------------------------------------------------------------

    def receive(self, device: str, payload: bytes, now_ms: int, mono_s: float) -> None:
        """A neighbour's outflow, on the link's event loop; never raises for its content."""
        if device not in self.neighbours:
            return
        allowance, at = self._allowance.get(device, (FLOOD_BURST, mono_s))
        allowance = min(FLOOD_BURST, allowance + max(mono_s - at, 0.0) * FLOOD_PER_S)
        if allowance < 1:
            self._allowance[device] = (allowance, mono_s)
            self._reject(device, f"flood: more than {FLOOD_PER_S:g} outflows a second", mono_s)
            return
        self._allowance[device] = (allowance - 1, mono_s)
        try:
            rels = messages.parse_outflow(payload, device)
        except Rejected as exc:
            self._reject(device, f"{exc.code}: {exc.reason}", mono_s)
            return
        self.received += 1
        self.projection.receive(
            device,
            now_ms,
            [Release(d, now_ms - age, on, frozenset(ps)) for d, age, on, ps in rels],
        )

    def _reject(self, device: str, what: str, mono_s: float) -> None:
        """Counted; reported at most once per device per REPORT_EVERY_S, with the count."""
        self.rejected += 1
        self._unreported[device] = self._unreported.get(device, 0) + 1
        if mono_s - self._reported_s.get(device, -REPORT_EVERY_S) >= REPORT_EVERY_S:
            n = self._unreported.pop(device)
            self._reported_s[device] = mono_s
            detail = what[:300] + (f" ({n} since the last report)" if n > 1 else "")
            log.warning("outflow_rejected device=%s %s", device, detail)
            self.report(device, detail)

    # -- rule 3 -----------------------------------------------------------------------------

    def take(self, now_ms: int) -> tuple[tuple[int, int], ...] | None:
        """The board driver's step: the core's set once a second of its clock, else None."""
        if now_ms < self._next_take:
            return None
        self._next_take = now_ms - now_ms % SEND_MS + SEND_MS
        return self.projection.take(now_ms)

    def status(self) -> dict[str, int]:
        return {
            "outflow_sent": self.sent,
            "outflow_received": self.received,
            "outflow_rejected": self.rejected,
            "outflow_dropped": self.queue_dropped + self.projection.dropped,
        }
