"""Where and when a link connects again: the next node of a cluster, and how long to wait.

Rules it keeps (the device link, edge.link.client, and the fleet bench's simulated
devices use this one policy):
- After a connection that was up ends: the next node (`alternates`) after a short
  jittered delay (uniform in [floor_s, first_s] of the backoff), so a fleet that lost its
  link together does not come back in one burst. Not the same node: the node that
  dropped the link is the one most likely going down (lame duck, a restart) or stalled,
  and a restarting node accepts connections seconds before it can answer a CONNECT; the
  nodes of a cluster are equivalent, and moving every device one node on keeps them
  spread.
- After a failed connect: the next node (`alternates`) almost at once (`hop_s`, jittered),
  not after a backoff: a dead node costs one refused connect. Only once every node has
  failed in a row does the exponential backoff (edge.backoff, capped) run, between rounds.
- A connect resets the round; the backoff resets only once a connection has stayed up
  STABLE_S. A link that drops sooner (a broker that accepts and then closes, a client
  id taken over, a flapping network) counts toward the backoff: its waits grow as a
  failed round's do, so a flapping link never reconnects every fraction of a second.
- With one node every failure is a whole round (the backoff as for a single broker).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from edge.backoff import Backoff

HOP_S = 0.2  # the most a client waits before it tries the next node after a failed connect
STABLE_S = 30.0  # a connection up this long ends the backoff; one that drops sooner flaps


class Reconnect:
    """The endpoint to connect to next (`endpoint`, an index) and the wait before it."""

    def __init__(
        self,
        nodes: int,
        first_s: float,
        cap_s: float,
        *,
        hop_s: float = HOP_S,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"reconnect needs at least one broker endpoint, got {nodes}")
        if not 0 < hop_s <= cap_s:
            raise ValueError(f"reconnect hop_s must be in (0, cap_s={cap_s}], got {hop_s}")
        self.nodes = nodes
        self.rng = rng or random.Random()
        self.backoff = Backoff(first_s, cap_s, rng=self.rng)
        self.hop_s = hop_s
        self.endpoint = 0
        self.failed_in_round = 0
        self.clock = clock
        self.up_since: float | None = None

    def connected(self) -> None:
        self.failed_in_round = 0
        self.up_since = self.clock()

    def lost(self) -> float:
        """An established connection ended: the next node, after a short jitter; after a
        connection shorter than STABLE_S, the backoff's next (growing) wait."""
        self.endpoint = (self.endpoint + 1) % self.nodes
        self.failed_in_round = 0
        up_s = 0.0 if self.up_since is None else self.clock() - self.up_since
        self.up_since = None
        if up_s < STABLE_S:
            return self.backoff.next_delay()  # the first is the same short jitter
        self.backoff.reset()
        return self.rng.uniform(self.backoff.floor_s, self.backoff.first_s)

    def failed(self) -> float:
        """A connect failed: the next node; at once within a round, backoff between rounds."""
        self.up_since = None
        self.endpoint = (self.endpoint + 1) % self.nodes
        self.failed_in_round += 1
        if self.failed_in_round < self.nodes:
            return self.rng.uniform(self.hop_s / 10, self.hop_s)
        self.failed_in_round = 0
        return self.backoff.next_delay()
