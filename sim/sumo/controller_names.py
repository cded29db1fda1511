"""The names `edge sim run --controller` takes: cheap to import (the CLI's help lists them).

sim/sumo/controllers builds each; this module only names them.
"""

from __future__ import annotations

# SUMO's own programs, by the tlLogic type each runs (None: the static program).
SUMO_TYPES = {
    "sumo-static": None,
    "sumo-actuated": "actuated",
    "sumo-delay": "delay_based",
    "sumo-nema": "NEMA",
    "sumo-actuated-ite": "actuated",
}
# `edge-neighbours`: `edge` plus the neighbours' predicted arrivals (sim/sumo/neighbours.py).
NAMES = (
    "edge",
    "edge-adaptive",
    "edge-neighbours",
    "edge-board",
    *SUMO_TYPES,
    "webster",
    "max-pressure",
)
# The controller on rendered cameras (sim/camera, edge/vision): slow (a frame per camera
# per step), so kept out of NAMES, which the baseline comparisons and tests sweep.
CAMERA_NAMES = ("edge-camera", "edge-camera-labels", "edge-camera-adaptive")
# `edge-no-preempt`, `edge-adaptive-no-preempt`: the same controller with the
# emergency feed traced but requesting nothing (the "without priority" runs).
NO_PREEMPT = "-no-preempt"
PREEMPTING = ("edge", "edge-adaptive", "edge-neighbours", "edge-board")
# `edge-no-tsp`, `edge-adaptive-no-tsp`: buses traced, no transit priority asked for.
NO_TSP = "-no-tsp"
TRANSIT = ("edge", "edge-adaptive", "edge-neighbours")


def known(name: str) -> bool:
    """Is this a controller name make_controller builds?"""
    base = name.removesuffix(NO_PREEMPT)
    bus = name.removesuffix(NO_TSP)
    return (
        name in NAMES + CAMERA_NAMES
        or (base != name and base in PREEMPTING)
        or (bus != name and bus in TRANSIT)
    )


def all_names() -> list[str]:
    """Every name known() accepts, for help texts and errors."""
    return [
        *NAMES,
        *CAMERA_NAMES,
        *(n + NO_PREEMPT for n in PREEMPTING),
        *(n + NO_TSP for n in TRANSIT),
    ]
