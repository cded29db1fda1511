"""ITE's kinematic change and clearance intervals, which `edge check` compares a site's
timing against (ITE, Guidelines for Determining Traffic Signal Change and Clearance
Intervals).

    yellow change     Y = t + v / (2a + 2Gg)
    red clearance     R = (W + L) / v

with t the perception-reaction time (1.0 s), a the comfortable deceleration
(3.05 m/s^2, i.e. 10 ft/s^2), G the approach grade as a fraction (uphill
positive: a downhill approach needs a longer yellow), g = 9.81 m/s^2, v the
approach speed in m/s, W the distance from the stop line to the far side of the
junction a vehicle must clear, and L the vehicle length (6.1 m, i.e. 20 ft).

Rules kept: pure functions of numbers; every input is checked (a speed, width
or grade outside what the formula means raises ValueError); a requirement is
rounded up to the controller's 0.1 s resolution, never down.
"""

from __future__ import annotations

import math

REACTION_S = 1.0
DECELERATION_MPS2 = 3.05
GRAVITY_MPS2 = 9.81
VEHICLE_LENGTH_M = 6.1
RESOLUTION_MS = 100  # the controller times in tenths of a second


def mps(speed_kmh: float) -> float:
    """km/h to m/s."""
    return speed_kmh / 3.6


def yellow_s(speed_mps: float, grade: float = 0.0) -> float:
    """ITE's kinematic yellow change interval for an approach speed and grade (fraction)."""
    if not speed_mps > 0:
        raise ValueError(f"speed {speed_mps!r} m/s is not positive")
    braking = 2 * DECELERATION_MPS2 + 2 * grade * GRAVITY_MPS2
    if not braking > 0:
        raise ValueError(f"grade {grade!r} is too steep downhill to stop on")
    return REACTION_S + speed_mps / braking


def red_clear_s(width_m: float, speed_mps: float) -> float:
    """ITE's red clearance interval: time to clear the junction's width plus a vehicle."""
    if not speed_mps > 0:
        raise ValueError(f"speed {speed_mps!r} m/s is not positive")
    if not width_m >= 0:
        raise ValueError(f"width {width_m!r} m is negative")
    return (width_m + VEHICLE_LENGTH_M) / speed_mps


def required_ms(seconds: float) -> int:
    """A requirement in ms, rounded up to the controller's resolution."""
    steps = math.ceil(round(seconds * 1000 / RESOLUTION_MS, 6))
    return steps * RESOLUTION_MS
