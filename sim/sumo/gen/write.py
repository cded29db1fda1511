"""Write a drawn scenario as a folder the simulator reads like a shipped one.

Rules this module keeps:
- The folder holds what sim/scenarios/* hold: NAME.nod/.edg/.con.xml, a
  netconvert recipe NAME.netccfg, NAME.rou.xml and NAME.sumocfg, plus
  scenario.json (what was drawn). The network NAME.net.xml is built by
  sim/sumo/scenarios.py on first use, as for the shipped ones; its static
  programs are netconvert's, and `sumo-actuated` rebuilds SUMO's actuated ones.
- A file is rewritten only when its bytes change, so a cached folder keeps its
  network; the same family and seed always give the same bytes.
- Every signal is its own (netconvert --tls.join false is the default; the
  recipe says so anyway): one derived site per junction.
"""

from __future__ import annotations

import json
from pathlib import Path

from sim.sumo.gen import demand, geometry
from sim.sumo.gen.families import Drawn


def _recipe(name: str, pedestrians: bool) -> str:
    peds = (
        '    <pedestrian>\n        <crossings.guess value="true"/>\n    </pedestrian>\n'
        if pedestrians
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!-- Generated (sim/sumo/gen); built by sim/sumo/scenarios.py with netconvert. -->\n"
        "<configuration>\n"
        "    <input>\n"
        f'        <node-files value="{name}.nod.xml"/>\n'
        f'        <edge-files value="{name}.edg.xml"/>\n'
        f'        <connection-files value="{name}.con.xml"/>\n'
        "    </input>\n"
        "    <output>\n"
        f'        <output-file value="{name}.net.xml"/>\n'
        "    </output>\n"
        "    <processing>\n"
        '        <no-turnarounds value="true"/>\n'
        "    </processing>\n"
        "    <tls_building>\n"
        '        <tls.join value="false"/>\n'
        "    </tls_building>\n"
        f"{peds}"
        "    <report>\n"
        '        <no-warnings value="true"/>\n'
        "    </report>\n"
        "</configuration>\n"
    )


def _sumocfg(name: str, duration_s: float) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<configuration>\n"
        "    <input>\n"
        f'        <net-file value="{name}.net.xml"/>\n'
        f'        <route-files value="{name}.rou.xml"/>\n'
        "    </input>\n"
        "    <time>\n"
        '        <begin value="0"/>\n'
        f'        <end value="{duration_s:g}"/>\n'
        "    </time>\n"
        "</configuration>\n"
    )


def files(d: Drawn, name: str) -> dict[str, str]:
    """File name -> text, for the scenario folder."""
    lay = d.layout
    return {
        f"{name}.nod.xml": geometry.nodes_xml(lay),
        f"{name}.edg.xml": geometry.edges_xml(lay),
        f"{name}.con.xml": geometry.connections_xml(lay),
        f"{name}.netccfg": _recipe(name, lay.pedestrians),
        f"{name}.rou.xml": demand.routes_xml(lay, d.demand, d.duration_s),
        f"{name}.sumocfg": _sumocfg(name, d.duration_s),
        "scenario.json": json.dumps({**d.meta, "duration_s": d.duration_s}, indent=1) + "\n",
    }


def write(d: Drawn, folder: Path, name: str) -> Path:
    """Write the folder (only changed files); its path."""
    folder.mkdir(parents=True, exist_ok=True)
    for fname, text in files(d, name).items():
        path = folder / fname
        data = text.encode("utf-8")
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
    return folder
