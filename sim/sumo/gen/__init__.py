"""Seeded SUMO scenarios from families of geometry and demand (`edge sim gen`).

families.py draws a scenario (one random.Random per family and seed),
geometry.py and demand.py turn it into plain XML, write.py writes a folder
that `edge sim run/compare` and the benches read like a shipped scenario.
"""

from __future__ import annotations

from pathlib import Path

from sim.sumo.gen.families import FAMILIES, LEVELS, draw
from sim.sumo.gen.write import write

__all__ = ["FAMILIES", "LEVELS", "generate", "scenario_name"]


def scenario_name(family: str, seed: int, level: str | None = None) -> str:
    return f"{family}-{seed}" + (f"-{level}" if level else "")


def generate(family: str, seed: int, out: Path, level: str | None = None) -> Path:
    """Write scenario FAMILY-SEED into folder `out`; the folder."""
    name = scenario_name(family, seed, level)
    return write(draw(family, seed, level), out, name)
