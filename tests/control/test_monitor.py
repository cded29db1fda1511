"""The software conflict monitor, driven directly with hand-made display sequences.

Site "four" (tests/control/timeline.py): phases 2 and 6 (east-west) conflict
with 4 and 8 (north-south); the crosswalk of 4 crosses the east arm, used by
phase 6. Site minimums: yellow 3 s, red clearance 1 s, green 5 s.

Each sequence is a list of frames (t s, vehicle lamps, pedestrian lamps); a
lamp not named is RED (don't walk for pedestrians). Every frame is held and
checked every 100 ms until the next one, as the controller would step.
"""

from __future__ import annotations

import pytest
from edge.control.messages import Lamp, Outputs
from edge.control.monitor import Monitor

from tests.control.timeline import make_site, ms

G, Y, R = Lamp.GREEN, Lamp.YELLOW, Lamp.RED
WALK, FDW = Lamp.GREEN, Lamp.FLASH_RED  # pedestrian walk, flashing don't walk

Frame = tuple[float, dict[int, Lamp], dict[int, Lamp]]

SITE = make_site("four")
PHASES = [p.id for p in SITE.phases]


def _outputs(t_ms: int, mode: str, veh: dict[int, Lamp], peds: dict[int, Lamp]) -> Outputs:
    phases = tuple(veh.get(p, R) for p in PHASES)
    ped = tuple(peds.get(p, R) for p in PHASES)
    return Outputs(t_ms, mode, phases, phases, ped, ())


def first_fault(frames: list[Frame], mode: str = "run") -> tuple[float, str] | None:
    """Check every 100 ms; return (t s, reason) of the first fault, or None."""
    monitor = Monitor(SITE)
    end = ms(frames[-1][0]) + 2000
    for k, (t, veh, peds) in enumerate(frames):
        stop = ms(frames[k + 1][0]) if k + 1 < len(frames) else end
        for now in range(ms(t), stop, 100):
            reason = monitor.check(now, _outputs(now, mode, veh, peds))
            if reason is not None:
                return now / 1000, reason
    return None


CORRECT: list[Frame] = [
    (0.0, {}, {}),
    (2.0, {2: G, 6: G}, {2: WALK}),
    (7.0, {2: G, 6: G}, {2: FDW}),
    (13.0, {2: Y, 6: Y}, {}),
    (16.0, {}, {}),
    (17.0, {4: G, 8: G}, {}),
    (22.0, {4: Y, 8: Y}, {}),
    (25.0, {}, {}),
    (26.0, {2: G, 6: G}, {}),
]


def test_correct_sequence_passes() -> None:
    assert first_fault(CORRECT) is None


def test_recycle_after_a_step_of_dont_walk_passes() -> None:
    """A crossing called during its clearance walks again after don't walk, even one step."""
    frames: list[Frame] = [
        (0.0, {}, {}), (2.0, {2: G}, {2: WALK}), (7.0, {2: G}, {2: FDW}), (13.0, {2: G}, {}),
        (13.1, {2: G}, {2: WALK}),
    ]  # fmt: skip
    assert first_fault(frames) is None


def test_flash_is_not_checked() -> None:
    """In flash every head flashes; conflicting heads flashing yellow are not a fault."""
    assert first_fault([(0.0, {2: Lamp.FLASH_YELLOW, 4: Lamp.FLASH_YELLOW}, {})], "flash") is None


@pytest.mark.parametrize(
    ("frames", "at", "words"),
    [
        pytest.param(
            [(0.0, {}, {}), (2.0, {2: G, 4: G}, {})],
            2.0,
            ("conflict", "phase 2", "phase 4"),
            id="conflicting-greens",
        ),
        pytest.param(
            [(0.0, {}, {}), (2.0, {6: G}, {}), (8.0, {6: G}, {4: WALK})],
            8.0,
            ("conflict", "ped 4", "phase 6"),
            id="walk-against-conflicting-green",
        ),
        pytest.param(
            [(0.0, {}, {}), (2.0, {2: G}, {}), (8.0, {}, {})],
            8.0,
            ("phase 2", "green ended without yellow"),
            id="green-to-red-without-yellow",
        ),
        pytest.param(
            [(0.0, {}, {}), (2.0, {2: G}, {}), (8.0, {2: Y}, {}), (10.9, {}, {})],
            10.9,
            ("phase 2", "yellow 2900 ms"),
            id="short-yellow",
        ),
        pytest.param(
            [(0.0, {}, {}), (2.0, {2: G}, {}), (8.0, {2: Y}, {}), (10.0, {2: G}, {})],
            10.0,
            ("phase 2", "yellow returned to green"),
            id="yellow-back-to-green",
        ),
        pytest.param(
            [
                (0.0, {}, {}),
                (2.0, {2: G}, {}),
                (8.0, {2: Y}, {}),
                (11.0, {}, {}),
                (11.5, {4: G}, {}),
            ],
            11.5,
            ("phase 4", "500 ms of red", "phase 2"),
            id="short-red-clearance-before-conflicting-green",
        ),
        pytest.param(
            [(0.0, {}, {}), (2.0, {2: G}, {}), (6.0, {2: Y}, {})],
            6.0,
            ("phase 2", "green 4000 ms"),
            id="short-green",
        ),
        pytest.param(
            [(0.0, {}, {}), (2.0, {2: G}, {2: WALK}), (7.0, {2: G}, {})],
            7.0,
            ("ped 2", "walk ended without pedestrian clearance"),
            id="walk-ended-without-clearance",
        ),
        pytest.param(  # a recycle in the step its clearance ended (pedestrians.py rule 6)
            [
                (0.0, {}, {}),
                (2.0, {2: G}, {2: WALK}),
                (7.0, {2: G}, {2: FDW}),
                (13.0, {2: G}, {2: WALK}),
            ],
            13.0,
            ("ped 2", "pedestrian clearance returned to walk"),
            id="clearance-back-to-walk",
        ),
    ],
)
def test_violation_gives_a_reason(frames, at, words) -> None:
    fault = first_fault(frames)
    assert fault is not None, "the monitor accepted an unsafe sequence"
    t, reason = fault
    assert t == at, reason
    for word in words:
        assert word in reason, reason


def test_minimums_are_inclusive() -> None:
    """Exactly the minimum green (5 s), yellow (3 s) and red clearance (1 s) is fine."""
    frames: list[Frame] = [
        (0.0, {}, {}),
        (2.0, {2: G}, {}),
        (7.0, {2: Y}, {}),
        (10.0, {}, {}),
        (11.0, {4: G}, {}),
    ]
    assert first_fault(frames) is None
