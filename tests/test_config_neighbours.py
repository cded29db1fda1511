"""`[[neighbour]]` in a site file (edge/config.py `_build_neighbours`): the projection links
it builds, and every problem named by its entry and key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from edge.cli import main
from edge.config import ConfigError, config_from_dict
from edge.neighbours import Link

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def site(name: str = "four_leg_protected") -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / f"{name}.toml").read_text())


def entry(**kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"device": "up-1", "detectors": [3, 4], "release_phases": [2]}
    e.update(phases=[6], distance_m=250, speed_kmh=50)
    e.update(kw)
    return {k: v for k, v in e.items() if v is not None}


def problems(*entries: dict[str, Any], name: str = "four_leg_protected") -> list[str]:
    with pytest.raises(ConfigError) as exc:
        config_from_dict({**site(name), "neighbour": list(entries)}, "site.toml")
    return exc.value.problems


def test_an_entry_becomes_a_projection_link() -> None:
    cfg = config_from_dict(
        {
            **site(),
            "neighbour": [
                entry(),
                entry(
                    device="up-2",
                    detectors=[1],
                    distance_m=None,
                    speed_kmh=None,
                    travel_s=12.5,
                    loop_m=3,
                ),
            ],
        }
    )
    assert cfg.neighbours == (
        Link("up-1", ((3, 1.8, (2,)), (4, 1.8, (2,))), (6,), 18_000, 50 / 3.6),
        Link("up-2", ((1, 3.0, (2,)),), (6,), 12_500, 0.0),
    )
    assert config_from_dict(site()).neighbours == ()  # none declared: none built


def test_unknown_and_pedestrian_only_phases_are_named() -> None:
    assert problems(entry(phases=[6, 9])) == ["neighbour[0] (device up-1): phases: no phase 9"]
    assert problems(entry(phases=[4]), name="midblock_ped") == [
        "neighbour[0] (device up-1): phases: phase 4 serves no vehicles; it cannot take arrivals"
    ]


@pytest.mark.parametrize(
    ("kw", "said"),
    [
        ({"travel_s": -3, "distance_m": None}, "travel_s: Input should be greater than 0 (got -3)"),
        ({"speed_kmh": 0}, "speed_kmh: Input should be greater than 0 (got 0)"),
        ({"travel_s": 2000, "distance_m": None}, "travel_s: Input should be less than or equal"),
        ({"distance_m": 9000, "speed_kmh": 20}, "a 1620 s trip is not between two neighbours"),
        ({"distance_m": 5}, "a 0.36 s trip is not between two neighbours (1-300 s)"),
        ({"travel_s": 20}, "give travel_s or distance_m with speed_kmh, not both"),
        ({"speed_kmh": None}, "give travel_s, or distance_m with speed_kmh"),
        ({"loop_m": -1}, "loop_m: Input should be greater than or equal to 0"),
        ({"detectors": []}, "detectors: List should have at least 1 item"),
        ({"detectors": [3, 3]}, "detectors: an id is listed twice"),
        ({"device": "up/1"}, "device: String should match pattern"),
        ({"speed": 50}, "unknown key 'speed' (did you mean 'speed_kmh'?)"),
    ],
)
def test_bad_values_are_named_with_entry_and_key(kw: dict[str, Any], said: str) -> None:
    (problem,) = problems(entry(**kw))
    assert problem.startswith("neighbour[0] (device up") and said in problem, problem


def test_a_detector_in_two_entries_would_count_twice() -> None:
    assert problems(entry(), entry(detectors=[4, 5], phases=[2])) == [
        "neighbour[1] (device up-1): detectors: detector 4 is already in neighbour[0]: "
        "its releases would count twice"
    ]
    config_from_dict({**site(), "neighbour": [entry(), entry(device="up-2")]})  # another device


def test_edge_check_prints_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.toml"
    text = (EXAMPLES / "four_leg_protected.toml").read_text()
    path.write_text(
        text + '\n[[neighbour]]\ndevice = "up-1"\ndetectors = [3]\n'
        "release_phases = [2]\nphases = [9]\ntravel_s = 20\n"
    )
    assert main(["check", str(path)]) == 1
    assert f"{path}: neighbour[0] (device up-1): phases: no phase 9" in capsys.readouterr().err


def test_too_many_upstream_devices_are_refused() -> None:
    """Each device keeps a share of the projection's bound: a site listening to more
    devices than MAX_NEIGHBOUR_DEVICES would leave each too little (or none)."""
    from edge.config import MAX_NEIGHBOUR_DEVICES

    many = [entry(device=f"up-{i}", detectors=[3]) for i in range(MAX_NEIGHBOUR_DEVICES + 1)]
    assert problems(*many) == [
        f"neighbour: {MAX_NEIGHBOUR_DEVICES + 1} upstream devices; a site listens to at most "
        f"{MAX_NEIGHBOUR_DEVICES}"
    ]
    config_from_dict({**site(), "neighbour": many[:-1]}, "site.toml")  # at the limit: fine
