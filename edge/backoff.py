"""The one retry backoff of the project: the IO board's serial port, the MQTT link to
central and the cameras all wait with it between attempts.

Rules it keeps:

- exponential: the ceiling starts at `first_s` and doubles after each attempt;
- capped, and never overflowing: the ceiling stops growing once it reaches
  `cap_s`. No power is ever computed, so any number of attempts (a board
  unplugged for a month) gives a finite delay; tested over 100,000 attempts;
- jittered (full jitter): each delay is uniform in [floor_s, ceiling], so a
  fleet that lost its broker together does not come back together; the floor
  keeps a failing loop from spinning;
- every delay lies in [floor_s, cap_s]; reset() after a success starts again
  from `first_s`.

Bad parameters (not finite, or not 0 < floor_s <= first_s <= cap_s) raise
ValueError naming them, at construction.
"""

from __future__ import annotations

import math
import random


class Backoff:
    """Delays between retries: next_delay() after each failure, reset() after a success."""

    def __init__(
        self,
        first_s: float,
        cap_s: float,
        *,
        floor_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        floor = first_s / 2 if floor_s is None else floor_s
        values = {"floor_s": floor, "first_s": first_s, "cap_s": cap_s}
        if not all(math.isfinite(v) for v in values.values()) or not (
            0 < floor <= first_s <= cap_s
        ):
            raise ValueError(f"backoff needs finite 0 < floor_s <= first_s <= cap_s, got {values}")
        self.first_s = first_s
        self.cap_s = cap_s
        self.floor_s = floor
        self.attempts = 0  # failures since the last reset (an int: it cannot overflow)
        self._ceiling = first_s
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self.attempts = 0
        self._ceiling = self.first_s

    def next_delay(self) -> float:
        """The wait before the next attempt, in seconds."""
        ceiling = self._ceiling
        self._ceiling = min(self.cap_s, ceiling * 2)  # stops growing at the cap
        self.attempts += 1
        delay = self._rng.uniform(self.floor_s, ceiling)
        return min(ceiling, max(self.floor_s, delay))  # uniform() may round past an end
