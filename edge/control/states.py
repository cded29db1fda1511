"""The names of the core's intervals and modes, shared by its feature modules.

Intervals are IntEnums (their values index the lamp tables of outputs.py),
each with its transition table in the module that owns it: a phase's vehicle
interval is an `Interval` (intervals.py: RED, GREEN, YELLOW, RED_CLEAR); a
pedestrian signal's a `PedInterval` (pedestrians.py: DONT_WALK, WALK,
PED_CLEAR); an overlap's an `OverlapInterval` (overlaps.py: a phase's four,
same values, plus TRAIL, a trailing green, and FYA_FLASH, a flashing yellow
arrow's permissive interval). RED, GREEN, YELLOW and RED_CLEAR here are the
vehicle phase's.

Controller modes and control modes are strings: they appear in the outputs
and in events, so their spelling is part of the core's contract.
"""

from __future__ import annotations

from edge.control.intervals import Interval
from edge.control.overlaps import OverlapInterval
from edge.control.pedestrians import PedInterval

NEVER = 1 << 62  # a deadline that does not come

# Phase vehicle intervals (intervals.py's enum).
RED, GREEN, YELLOW, RED_CLEAR = Interval
# Pedestrian intervals (pedestrians.py's enum).
DONT_WALK, WALK, PED_CLEAR = PedInterval
# Overlaps' own intervals beyond a phase's (overlaps.py's enum): trailing green, and a
# flashing-yellow-arrow overlap in its permissive interval.
TRAIL, FYA_FLASH = OverlapInterval.TRAIL, OverlapInterval.FYA_FLASH

# Controller modes (names appear in outputs and events).
STARTUP_FLASH = "startup_flash"
STARTUP_ALL_RED = "startup_all_red"
RUN = "run"
ALL_RED = "all_red"
FLASH = "flash"
FAULT = "fault_flash"

# Control modes (how greens are timed in RUN), and who chose the one in force.
FREE, COORDINATED, ADAPTIVE = "free", "coordinated", "adaptive"
CONTROL_MODES = (FREE, COORDINATED, ADAPTIVE)
