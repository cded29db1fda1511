"""`edge run --sim SCENARIO`: the real runtime against SUMO and a virtual board, in real time."""

from __future__ import annotations

import sys


def run_sim(
    scenario: str, *, tls: str | None = None, speed: float = 1.0, duration_s: float | None = None
) -> int:
    print(f"edge run --sim {scenario}: not available yet", file=sys.stderr)
    return 2
