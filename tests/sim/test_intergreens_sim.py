"""Intergreens derived from SUMO networks' conflict geometry (real netconvert networks).

Every conflicting pair of a derived site gets a RiLSA intergreen
(edge/intergreen.py) no shorter than the leaving yellow + the minimum red
clearance (a walk: its pedestrian clearance); the derived TOML states the
same table; walks get pairs both ways.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from edge.config import site_from_dict
from edge.control.site import SignalKind
from sim.sumo.derive import derive
from sim.sumo.network import signal_junctions
from sim.sumo.scenarios import resolve
from sim.sumo.site_toml import derivation_toml

from tests.sim.test_derive_crossings import _four_leg


def test_the_single_intersection_gets_a_full_matrix_that_round_trips() -> None:
    (junction,) = signal_junctions(resolve("single").net)
    assert junction.paths, "no link geometry read"
    d = derive(junction)
    site = d.site
    assert set(site.intergreens) == set(site.conflicts)
    plan = site.plans[site.default_plan]
    shorter = 0
    for (a, _b), value in site.intergreens.items():
        if a[0] is SignalKind.PHASE:
            t = plan.timings[int(a[1])]
            assert value >= t.yellow_ms + site.safety.min_red_clear_ms
            shorter += value < t.yellow_ms + t.red_clear_ms
    assert shorter > len(site.intergreens) // 2  # most pairs clear sooner than the blanket
    again = site_from_dict(tomllib.loads(derivation_toml(d, "single")), "<written>")
    assert again.intergreens == site.intergreens


def test_walks_get_pairs_both_ways(tmp_path: Path) -> None:
    (junction,) = signal_junctions(resolve(str(_four_leg(tmp_path))).net)
    site = derive(junction).site
    plan = site.plans[site.default_plan]
    walks = {(a, b): v for (a, b), v in site.intergreens.items() if a[0] is SignalKind.PED}
    into = {(a, b): v for (a, b), v in site.intergreens.items() if b[0] is SignalKind.PED}
    assert walks and into
    for (a, _b), value in walks.items():
        assert value >= plan.timings[int(a[1])].ped_clear_ms  # the clearance stays whole
