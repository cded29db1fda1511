"""Derivation of joined signals: one SUMO program over several junctions (netconvert `tl`).

A joined signal whose links all run between its outer arms derives like one
junction (its arms are the outer edges); one where a vehicle meets two of its
stop lines (links on the edges between the junctions) is refused, naming the
edges and the way out.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sim.sumo.derive import derive
from sim.sumo.errors import DerivationError
from sim.sumo.lockstep import run
from sim.sumo.network import signal_junctions
from sim.sumo.scenarios import resolve

from tests.sim.netbuild import build_raw


def _edges(*rows: tuple[str, str, str]) -> str:
    return "".join(
        f'<edge id="{i}" from="{a}" to="{b}" numLanes="1" speed="13.89"/>' for i, a, b in rows
    )


def test_two_crossings_of_one_way_streets_on_one_program_derive(tmp_path: Path) -> None:
    # Junction A: an eastbound one-way street crosses a northbound one; junction B,
    # 400 m north on a westbound one-way street, runs on the same program (tl="J").
    nodes = (
        '<node id="A" x="0" y="0" type="traffic_light" tl="J"/>'
        '<node id="B" x="0" y="400" type="traffic_light" tl="J"/>'
        '<node id="Aw" x="-200" y="0"/><node id="Ae" x="200" y="0"/>'
        '<node id="As" x="0" y="-200"/><node id="An" x="0" y="150"/>'
        '<node id="Bw" x="-200" y="400"/><node id="Be" x="200" y="400"/>'
    )
    edges = _edges(
        ("Aw_A", "Aw", "A"), ("A_Ae", "A", "Ae"),  # eastbound through A
        ("As_A", "As", "A"), ("A_An", "A", "An"),  # northbound through A
        ("Be_B", "Be", "B"), ("B_Bw", "B", "Bw"),  # westbound through B
    )  # fmt: skip
    routes = """
    <flow id="e" from="Aw_A" to="A_Ae" begin="0" end="200" period="6"/>
    <flow id="n" from="As_A" to="A_An" begin="0" end="200" period="8"/>
    <flow id="w" from="Be_B" to="B_Bw" begin="0" end="200" period="7"/>
    """
    cfg = build_raw(tmp_path, "joined_ok", nodes, edges, routes=routes)
    sc = resolve(str(cfg))
    (j,) = signal_junctions(sc.net)
    assert j.nodes == ("A", "B") and not j.inner_edges
    d = derive(j)
    served = sorted(m.name for p in d.site.phases for m in p.movements + p.permissive)
    # A's turns (eastbound left into the northbound street, northbound right) and
    # B's westbound through: arms are the outer edges by bearing, across both junctions.
    assert served == ["E.T", "S.R", "S.T", "W.L", "W.T"]
    r = run(sc, "edge", 1, 300)
    assert r["collisions"] == 0 and r["teleports"] == 0 and r["running_at_end"] <= 6


def test_divided_road_joined_signal_is_refused_naming_the_inner_edges(tmp_path: Path) -> None:
    # A side street crosses a divided road: two junctions 20 m apart on one program;
    # every side-street vehicle stops at both.
    nodes = (
        '<node id="A" x="0" y="0" type="traffic_light" tl="J"/>'
        '<node id="B" x="0" y="20" type="traffic_light" tl="J"/>'
        '<node id="S" x="0" y="-200"/><node id="N" x="0" y="220"/>'
        '<node id="W1" x="-200" y="0"/><node id="E1" x="200" y="0"/>'
        '<node id="W2" x="-200" y="20"/><node id="E2" x="200" y="20"/>'
    )
    edges = _edges(
        ("S_A", "S", "A"), ("A_B", "A", "B"), ("B_N", "B", "N"),
        ("N_B", "N", "B"), ("B_A", "B", "A"), ("A_S", "A", "S"),
        ("W1_A", "W1", "A"), ("A_E1", "A", "E1"),  # eastbound carriageway
        ("E2_B", "E2", "B"), ("B_W2", "B", "W2"),  # westbound carriageway
    )  # fmt: skip
    net = build_raw(tmp_path, "joined_bad", nodes, edges)
    (j,) = signal_junctions(net)
    assert sorted(j.inner_edges) == ["A_B", "B_A"]
    with pytest.raises(DerivationError) as err:
        derive(j)
    text = str(err.value)
    assert "joins 2 junctions (A, B)" in text
    assert "A_B" in text and "B_A" in text and "two of its stop lines" in text
    assert "--tls.join false" in text
