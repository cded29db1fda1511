"""RiLSA / EN 12675 intergreen for one ordered pair of conflicting streams, from the
distances each stream travels from its stop line (a walk: its kerb) to their conflict point.

    t_ig = t_leave + t_clear - t_enter
    t_clear = (s_clear + L) / v_clear        t_enter = s_enter / v_enter

measured from the end of the leaving stream's green, with
- t_leave: the leaving stream's own change interval, after which its last
  vehicle is taken to cross the stop line: a vehicle's yellow (the ITE
  kinematic yellow of edge/clearance.py stays; RiLSA's own crossing time for
  50 km/h, 3 s, is never longer), 0 for a walk (its clearance is timed from the
  walk's end);
- s_clear: from the leaving stop line to the far edge of the conflict area (the
  point where the paths' centre lines cross, plus half the entering lane's width);
- L: the vehicle length of edge/clearance.py (6.1 m; RiLSA takes 6 m), 0 for a
  pedestrian;
- v_clear: RiLSA's clearing speeds, never above the path's own speed limit:
  10 m/s straight on, 7 m/s turning, 1.2 m/s walking;
- s_enter: from the entering stop line to the near edge of the conflict area
  (the crossing point less half the leaving lane's width), never negative;
- v_enter: RiLSA's convention for an entering vehicle that starts from rest at
  its stop line: a constant 40 km/h (11.1 m/s) from the first metre, i.e. a
  flying start: faster than any real start from rest, so the entry time is
  never overstated and the intergreen never understated. An entering
  pedestrian is given no entry time at all (t_enter = 0): a pedestrian may
  already be at the kerb edge of the conflict area.

Rules kept: pure functions of numbers; an input outside what the formula means
raises ValueError; the result is rounded up to the controller's 0.1 s (never
down) and is never below the leaving stream's change interval plus the site's
floor (`floor_ms`, the minimum red clearance for a vehicle, 0 for a walk,
whose clearance stays as configured).
"""

from __future__ import annotations

from edge.clearance import VEHICLE_LENGTH_M, required_ms

CLEAR_THROUGH_MPS = 10.0
CLEAR_TURN_MPS = 7.0
CLEAR_WALK_MPS = 1.2
ENTER_VEHICLE_MPS = 40 / 3.6


def clearing_speed(kind: str, limit_mps: float | None = None) -> float:
    """RiLSA's clearing speed for a stream of kind 'T' (straight on), 'L'/'R' (turning)
    or 'ped', never above the path's own speed limit."""
    speeds = {"T": CLEAR_THROUGH_MPS, "L": CLEAR_TURN_MPS, "R": CLEAR_TURN_MPS}
    if kind == "ped":
        v = CLEAR_WALK_MPS
    elif kind in speeds:
        v = speeds[kind]
    else:
        raise ValueError(f"stream kind {kind!r} is not T, L, R or ped")
    if limit_mps is not None:
        if not limit_mps > 0:
            raise ValueError(f"speed limit {limit_mps!r} m/s is not positive")
        v = min(v, limit_mps)
    return v


def intergreen_ms(
    leave_ms: int,
    clear_m: float,
    clear_mps: float,
    enter_m: float,
    *,
    vehicle: bool,
    entering_vehicle: bool,
    floor_ms: int,
) -> int:
    """The intergreen (ms) from the end of the leaving green to the entering green.

    `leave_ms`: the leaving stream's change interval (its yellow; 0 for a walk);
    `clear_m`: stop line to the far edge of the conflict area; `clear_mps`: its
    clearing speed; `enter_m`: the entering stop line to the near edge;
    `vehicle`: the leaving stream is a vehicle (adds its length);
    `entering_vehicle`: the entering stream is a vehicle (a walk gets no entry time).
    """
    if leave_ms < 0 or floor_ms < 0:
        raise ValueError(f"negative change interval {leave_ms} ms or floor {floor_ms} ms")
    if not clear_m >= 0:
        raise ValueError(f"clearing distance {clear_m!r} m is negative")
    if not clear_mps > 0:
        raise ValueError(f"clearing speed {clear_mps!r} m/s is not positive")
    if not enter_m == enter_m:  # NaN
        raise ValueError("entering distance is not a number")
    t_clear = (clear_m + (VEHICLE_LENGTH_M if vehicle else 0.0)) / clear_mps
    t_enter = max(enter_m, 0.0) / ENTER_VEHICLE_MPS if entering_vehicle else 0.0
    need = leave_ms + required_ms(max(t_clear - t_enter, 0.0))
    return max(need, leave_ms + floor_ms)
