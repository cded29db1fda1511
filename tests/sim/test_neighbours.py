"""`edge-neighbours` (sim/sumo/neighbours.py) on a generated 2-signal arterial, real SUMO.

The feeds come from the network (each signal's approach from the other one,
none from the boundary), the downstream cores receive arrivals projected
from the upstream stop-bar releases, and with the neighbours silenced the
run is `edge`'s, tick for tick. The device's path (edge/neighbours.py `Releases` and
`Projection`, as edge/link/outflow.py runs them, each feed declared as a
`[[neighbour]]` entry would be) gives the simulator's sets, tick for tick.
"""

from __future__ import annotations

from typing import Any

import pytest
from edge.control.messages import Lamp
from edge.neighbours import SEND_MS, Link, Projection, Releases
from sim.sumo import lockstep
from sim.sumo.controllers.edge_control import EdgeControl
from sim.sumo.derive import derive_all
from sim.sumo.gen import generate
from sim.sumo.neighbours import Neighbours
from sim.sumo.network import read_net, signal_junctions
from sim.sumo.scenarios import Scenario, resolve

END_S = 400.0
# Long enough for the arrivals to change a tick: since arrivals rule 2a (the hold
# window shrinks with the conflicting queue) the first change here is at 478.8 s.
RECEIVE_END_S = 600.0


@pytest.fixture(scope="module")
def arterial(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    folder = generate("arterial", 1, tmp_path_factory.mktemp("nb") / "arterial", "moderate")
    return resolve(str(folder))


def test_feeds_link_the_two_signals_both_ways(arterial: Scenario) -> None:
    ds = derive_all(signal_junctions(arterial.net))
    assert len(ds) == 2
    nb = Neighbours.build(read_net(arterial.net), ds)
    pairs = {(f.up, f.down) for f in nb.feeds}
    a, b = sorted(d.tls for d in ds)
    assert pairs == {(a, b), (b, a)}
    for f in nb.feeds:
        down = next(d for d in ds if d.tls == f.down)
        assert f.phases and set(f.phases) <= set(down.phase_ids())
        assert f.loops and 1_000 < f.travel_ms < 120_000, f
    # Boundary approaches have no feed: each signal is fed on one approach only.
    assert sorted(f.down for f in nb.feeds) == [a, b]


def _run(
    scenario: Scenario, name: str, silent: bool = False, end_s: float = END_S
) -> tuple[list[Any], Any]:
    ticks: list[Any] = []
    held: list[EdgeControl] = []

    def attach(ctl: Any) -> None:
        assert isinstance(ctl, EdgeControl)
        held.append(ctl)
        if ctl.neighbours is not None:
            ctl.neighbours.silent = silent
        ctl.on_step = lambda s, t, out: ticks.append((s.tls, t, out.channels, out.events))

    report = lockstep.run(scenario, name, 1, end_s, attach=attach)
    return ticks, (held[0], report)


def test_downstream_cores_receive_arrivals(arterial: Scenario) -> None:
    ticks, (ctl, report) = _run(arterial, "edge-neighbours", end_s=RECEIVE_END_S)
    nb = ctl.neighbours
    assert nb is not None and nb.released_count > 20 and nb.sent_count > 20
    assert report["controller"] == "edge-neighbours"
    plain, _ = _run(arterial, "edge", end_s=RECEIVE_END_S)
    assert ticks != plain  # the arrivals held or called something


def test_silenced_neighbours_run_as_edge(arterial: Scenario) -> None:
    silenced, (ctl, rep_nb) = _run(arterial, "edge-neighbours", silent=True)
    assert ctl.neighbours is not None and ctl.neighbours.released_count > 20
    plain, (_ctl, rep_edge) = _run(arterial, "edge")
    assert silenced == plain
    assert rep_nb["mean_delay_s"] == rep_edge["mean_delay_s"]


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
