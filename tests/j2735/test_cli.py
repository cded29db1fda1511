"""`edge j2735 --sim`: SUMO in lockstep; every line a MessageFrame pycrate decodes, SPaT at
10 Hz and MAP at 1 Hz, the MAP's lanes derived from the network; across an hour."""

from __future__ import annotations

from pathlib import Path

from edge.cli import main

from tests.j2735.decode import absolute, decode, now_ms


def test_the_command_writes_what_the_device_publishes(tmp_path: Path) -> None:
    out = tmp_path / "frames.hex"
    argv = ["j2735", "--sim", "single", "--seconds", "20", "--out", str(out)]
    assert main([*argv, "--start", "2026-03-01T07:59:50"]) == 0
    ids = []
    crossed = 0
    for line in out.read_text().splitlines():
        msg_id, value = decode(bytes.fromhex(line))
        ids.append(msg_id)
        (inter,) = value["intersections"]
        if msg_id == 18:
            kinds = {lane["laneAttributes"]["directionalUse"] for lane in inter["laneSet"]}
            assert kinds == {(2, 2), (1, 2)}  # ingress and egress lanes
            assert all(
                "connectsTo" in ln
                for ln in inter["laneSet"]
                if ln["laneAttributes"]["directionalUse"] == (2, 2)
            )
            continue
        now = now_ms(2026, inter["moy"], inter["timeStamp"])
        for m in inter["states"]:
            end = absolute(m["state-time-speed"][0]["timing"]["minEndTime"], now)
            crossed += end is not None and end // 3_600_000 > now // 3_600_000
    assert ids.count(19) == 200 and ids.count(18) == 20
    assert crossed > 0  # end times in the next hour, read right


def test_a_derived_map_has_the_crossings_with_their_walk_groups(tmp_path: Path) -> None:
    from edge.j2735 import codec
    from edge.j2735.mapdata import map_value
    from edge.j2735.signals import SignalGroups
    from sim.sumo.derive import derive_all
    from sim.sumo.j2735map import derived_geometry
    from sim.sumo.network import read_net, signal_junctions
    from sim.sumo.scenarios import resolve

    from tests.sim.test_derive_crossings import _four_leg

    scenario = resolve(str(_four_leg(tmp_path)))
    junctions = signal_junctions(scenario.net)
    (d,) = derive_all(junctions)
    geometry = derived_geometry(d, junctions[0], read_net(scenario.net))
    _id, value = decode(codec.encode(codec.MAP_ID, map_value(geometry)))
    lanes = value["intersections"][0]["laneSet"]
    walks = {
        ln["connectsTo"][0]["signalGroup"]
        for ln in lanes
        if ln["laneAttributes"]["laneType"][0] == "crosswalk"
    }
    assert len(walks) == 4
    assert walks <= set(SignalGroups(d.site).groups())  # each a pedestrian group in the SPaT
    assert all(40 < g < 60 for g in walks)
