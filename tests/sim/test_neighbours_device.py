"""The device's path (edge/neighbours.py `Releases` and `Projection`, as edge/link/outflow.py
runs them) gives the simulator's `edge-neighbours` arrivals set for set: on a generated
2-signal arterial, every signal's releases go through the device's classes beside the
simulator's own, and each tick's set for each core is compared."""

from __future__ import annotations

from typing import Any

import pytest
from edge.control.messages import Lamp
from edge.neighbours import SEND_MS, Link, Projection, Releases
from sim.sumo import lockstep
from sim.sumo.controllers.edge_control import EdgeControl
from sim.sumo.gen import generate
from sim.sumo.scenarios import Scenario, resolve

END_S = 400.0


@pytest.fixture(scope="module")
def arterial(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    folder = generate("arterial", 1, tmp_path_factory.mktemp("nbd") / "arterial", "moderate")
    return resolve(str(folder))


def test_the_devices_projection_gives_the_simulators_sets(arterial: Scenario) -> None:
    compared: list[int] = []
    differ: list[tuple[str, int, Any, Any]] = []

    def attach(ctl: Any) -> None:
        assert isinstance(ctl, EdgeControl) and ctl.neighbours is not None
        nb = ctl.neighbours
        releases = {tls: Releases(ids) for tls, ids in nb.phase_ids.items()}
        links: dict[str, list[Link]] = {}
        for f in nb.feeds:  # each feed as the downstream's [[neighbour]] would declare it
            links.setdefault(f.down, []).append(
                Link(f.up, f.loops, f.phases, f.travel_ms, f.speed_mps)
            )
        proj = {tls: Projection(links.get(tls, [])) for tls in nb.phase_ids}

        class Both:  # the simulator's Neighbours, with the device's path beside it
            def released(self, tls: str, t: int, occupied: frozenset[int], lamps: Any) -> None:
                nb.released(tls, t, occupied, lamps)
                rels = releases[tls].step(t, occupied, list[Lamp](lamps))
                for p in proj.values():  # every neighbour hears; each takes its links' loops
                    p.receive(tls, t, rels)

            def take(self, tls: str, t: int) -> Any:
                want = nb.take(tls, t)
                got = proj[tls].take(t) if t % SEND_MS == 0 else None
                compared.append(bool(want))
                if got != want:
                    differ.append((tls, t, want, got))
                return want

        ctl.neighbours = Both()  # type: ignore[assignment]

    lockstep.run(arterial, "edge-neighbours", 1, END_S, attach=attach)
    assert sum(compared) > 20  # non-empty sets compared
    assert differ == []
