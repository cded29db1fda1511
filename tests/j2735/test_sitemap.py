"""A site file's [map] table: lanes, stop lines and signal groups, validated; its MAP decodes."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from edge.config import ConfigError, config_from_dict
from edge.j2735 import codec
from edge.j2735.mapdata import map_value

from tests.j2735.decode import decode

ROOT = Path(__file__).resolve().parents[2]
# examples/t_junction.toml: E (phase 6 through, overlap B the FYA left), W (phase 2), S (4).
MAP: dict[str, Any] = {
    "intersection_id": 1201,
    "lat": 45.5231,
    "lon": -122.6765,
    "lanes": [
        {"id": 1, "kind": "ingress", "approach": "E", "nodes": [[12.0, 1.8], [90.0, 1.8]],
         "connects": [{"lane": 5, "movement": "E.T"}]},
        {"id": 2, "kind": "ingress", "approach": "E", "nodes": [[12.0, 5.4], [60.0, 5.4]],
         "connects": [{"lane": 6, "movement": "E.L"}]},
        {"id": 3, "kind": "ingress", "approach": "W", "nodes": [[-12.0, -1.8], [-90.0, -1.8]],
         "connects": [{"lane": 4, "movement": "W.T"}, {"lane": 6, "movement": "W.R"}]},
        {"id": 4, "kind": "egress", "approach": "E", "nodes": [[12.0, -1.8], [90.0, -1.8]]},
        {"id": 5, "kind": "egress", "approach": "W", "nodes": [[-12.0, 1.8], [-90.0, 1.8]]},
        {"id": 6, "kind": "egress", "approach": "S", "nodes": [[-1.8, -12.0], [-1.8, -90.0]]},
        {"id": 7, "kind": "crosswalk", "ped_phase": 2, "nodes": [[-9.0, -10.0], [-9.0, 10.0]]},
    ],
}  # fmt: skip


def load(map_table: dict[str, Any]) -> Any:
    raw = tomllib.loads((ROOT / "examples/t_junction.toml").read_text())
    return config_from_dict({**raw, "map": map_table}, "t_junction.toml")


def test_the_map_decodes_with_its_lanes_stop_lines_and_signal_groups() -> None:
    geometry = load(MAP).map
    msg_id, value = decode(codec.encode(codec.MAP_ID, map_value(geometry)))
    assert msg_id == 18
    (inter,) = value["intersections"]
    assert inter["id"]["id"] == 1201
    assert inter["refPoint"]["lat"] == 455231000 and inter["refPoint"]["long"] == -1226765000
    lanes = {lane["laneID"]: lane for lane in inter["laneSet"]}
    first = lanes[1]["nodeList"][1][0]
    assert first["attributes"]["localNode"] == ["stopLine"]
    assert first["delta"][1] == {"x": 1200, "y": 180}  # cm from the reference point
    groups = {c["connectingLane"]["lane"]: c["signalGroup"] for c in lanes[3]["connectsTo"]}
    assert groups == {4: 2, 6: 2}  # phase 2 serves W.T and W.R
    assert lanes[2]["connectsTo"][0]["signalGroup"] == 22  # E.L: overlap B's arrow (FYA)
    assert lanes[7]["connectsTo"][0]["signalGroup"] == 42  # the crossing's walk (phase 2)
    assert lanes[7]["laneAttributes"]["laneType"][0] == "crosswalk"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"approach": "N"}, "map lane 1: approach 'N' is not one of the site's"),
        ({"connects": [{"lane": 5, "movement": "E.R"}]}, "map lane 1: no phase or overlap"),
        ({"connects": [{"lane": 99, "movement": "E.T"}]}, "lane 1: connects to lane 99"),
        ({"nodes": [[12.0, 1.8], [500.0, 1.8]]}, "lane 1: a node 488.0 m, 0.0 m from"),
        ({"nodes": [[float("nan"), 1.8], [90.0, 1.8]]}, "lane 1: a node nan m, 1.8 m"),
        ({"nodes": [[12.0, 1.8], [1e308, 1.8]]}, "lane 1: a node 1e+308 m, 0.0 m"),
    ],
)
def test_a_bad_map_names_the_lane(change: dict[str, Any], problem: str) -> None:
    lanes = [{**MAP["lanes"][0], **change}, *MAP["lanes"][1:]]
    with pytest.raises(ConfigError) as err:
        load({**MAP, "lanes": lanes})
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_a_crosswalk_names_a_phase_with_a_walk() -> None:
    lanes = [*MAP["lanes"][:-1], {**MAP["lanes"][-1], "ped_phase": 4}]
    with pytest.raises(ConfigError) as err:
        load({**MAP, "lanes": lanes})
    assert any("map lane 7: a crosswalk names ped_phase" in p for p in err.value.problems)
