"""Hypothesis profiles: a deterministic one for `make test` and CI, an exploring one.

Rules:
- `make test` (and CI) runs the `ci` profile: derandomized (each test draws the same
  examples on every run and machine), no example database, no deadlines (a loaded CI
  machine is slow, not wrong). Landing never depends on the luck of a random draw.
- `make explore` runs the `explore` profile: random draws, the example database on,
  and every test's example budget multiplied by EDGE_HYPOTHESIS_SCALE (default 20).
  A counterexample it finds is a real bug: fix it and pin the case with `@example`.
- A test states its budget as `max_examples=examples(N)`: N in the `ci` profile,
  N * scale when exploring.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("EDGE_HYPOTHESIS_PROFILE", "ci")
SCALE = int(os.environ.get("EDGE_HYPOTHESIS_SCALE", "20")) if PROFILE == "explore" else 1

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def load() -> None:
    if PROFILE not in ("ci", "explore"):
        raise SystemExit(f"EDGE_HYPOTHESIS_PROFILE={PROFILE!r}: expected 'ci' or 'explore'")
    settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """A test's example budget under the profile in force."""
    return n * SCALE
