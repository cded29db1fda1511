"""Tiny SUMO networks for tests, built with netconvert from plain node/edge XML."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from sim.sumo import engine


def build_net(
    folder: Path,
    name: str,
    nodes: Sequence[tuple[str, float, float, str]],
    edges: Sequence[tuple[str, str, str, int]],
    *,
    turnarounds: bool = False,
    routes: str | None = None,
) -> Path:
    """Write name.nod/edg.xml, build name.net.xml; with routes also a .sumocfg (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    nod = "".join(f'<node id="{i}" x="{x}" y="{y}" type="{t}"/>' for i, x, y, t in nodes)
    edg = "".join(
        f'<edge id="{i}" from="{a}" to="{b}" numLanes="{n}" speed="13.89"/>' for i, a, b, n in edges
    )
    (folder / f"{name}.nod.xml").write_text(f"<nodes>{nod}</nodes>")
    (folder / f"{name}.edg.xml").write_text(f"<edges>{edg}</edges>")
    net = folder / f"{name}.net.xml"
    cmd = [
        engine.binary("netconvert"),
        "-n", str(folder / f"{name}.nod.xml"),
        "-e", str(folder / f"{name}.edg.xml"),
        "-o", str(net),
        "--no-warnings",
    ]  # fmt: skip
    if not turnarounds:
        cmd.append("--no-turnarounds")
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    if routes is None:
        return net
    (folder / f"{name}.rou.xml").write_text(f"<routes>{routes}</routes>")
    cfg = folder / f"{name}.sumocfg"
    cfg.write_text(
        "<configuration><input>"
        f'<net-file value="{name}.net.xml"/><route-files value="{name}.rou.xml"/>'
        "</input></configuration>"
    )
    return cfg


def four_leg(
    one_way_east: bool = False,
) -> tuple[list[tuple[str, float, float, str]], list[tuple[str, str, str, int]]]:
    nodes: list[tuple[str, float, float, str]] = [
        ("C", 0, 0, "traffic_light"),
        ("N", 0, 200, "priority"),
        ("E", 200, 0, "priority"),
        ("S", 0, -200, "priority"),
        ("W", -200, 0, "priority"),
    ]
    edges = [("W_in", "W", "C", 2), ("C_E", "C", "E", 2)]
    if not one_way_east:
        edges += [("E_in", "E", "C", 2), ("C_W", "C", "W", 2)]
    for arm in ("N", "S"):
        edges += [(f"{arm}_in", arm, "C", 2), (f"C_{arm}", "C", arm, 1)]
    return nodes, edges


def five_leg() -> tuple[list[tuple[str, float, float, str]], list[tuple[str, str, str, int]]]:
    """A regular five-leg junction: arms every 72 degrees, two lanes in, one out."""
    import math

    nodes: list[tuple[str, float, float, str]] = [("C", 0, 0, "traffic_light")]
    edges: list[tuple[str, str, str, int]] = []
    for k in range(5):
        b = math.radians(72 * k)
        arm = f"A{k}"
        nodes.append((arm, round(200 * math.sin(b), 2), round(200 * math.cos(b), 2), "priority"))
        edges += [(f"{arm}_in", arm, "C", 2), (f"C_{arm}", "C", arm, 1)]
    return nodes, edges


def build_raw(
    folder: Path,
    name: str,
    nodes_xml: str,
    edges_xml: str,
    options: Sequence[str] = (),
    routes: str | None = None,
) -> Path:
    """Like build_net from raw node/edge XML and extra netconvert options (sidewalks,
    crossings, joined signals); with routes also a .sumocfg (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.nod.xml").write_text(f"<nodes>{nodes_xml}</nodes>")
    (folder / f"{name}.edg.xml").write_text(f"<edges>{edges_xml}</edges>")
    net = folder / f"{name}.net.xml"
    cmd = [
        engine.binary("netconvert"),
        "-n", str(folder / f"{name}.nod.xml"),
        "-e", str(folder / f"{name}.edg.xml"),
        "-o", str(net),
        "--no-warnings", "--no-turnarounds",
        *options,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    if routes is None:
        return net
    (folder / f"{name}.rou.xml").write_text(f"<routes>{routes}</routes>")
    cfg = folder / f"{name}.sumocfg"
    cfg.write_text(
        "<configuration><input>"
        f'<net-file value="{name}.net.xml"/><route-files value="{name}.rou.xml"/>'
        "</input></configuration>"
    )
    return cfg
