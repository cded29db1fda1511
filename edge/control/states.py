"""The names of the core's intervals and modes, shared by its feature modules.

Intervals are small ints (indexes into the lamp tables of outputs.py): a
phase's vehicle interval is an `Interval` (intervals.py: RED, GREEN, YELLOW,
RED_CLEAR, with its transition table); a pedestrian signal's DONT_WALK, WALK
or PED_CLEAR; an overlap's as a phase's, plus TRAIL (trailing green) and
FYA_FLASH (a flashing yellow arrow's permissive interval).

Controller modes and control modes are strings: they appear in the outputs
and in events, so their spelling is part of the core's contract.
"""

from __future__ import annotations

from edge.control.intervals import Interval

NEVER = 1 << 62  # a deadline that does not come

# Phase vehicle intervals (intervals.py's enum).
RED, GREEN, YELLOW, RED_CLEAR = Interval
# Pedestrian intervals.
DONT_WALK, WALK, PED_CLEAR = 0, 1, 2
# Overlap intervals (GREEN/YELLOW/RED_CLEAR as phases, plus trailing green).
TRAIL = 4
FYA_FLASH = 5  # a flashing-yellow-arrow overlap in its permissive interval

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
