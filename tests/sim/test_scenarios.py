"""Shipped networks are built from their plain sources, and rebuilt when one is newer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sim.sumo.errors import SimError
from sim.sumo.scenarios import SHIPPED, resolve


def _copy(tmp: Path, name: str) -> Path:
    folder = tmp / name
    shutil.copytree(SHIPPED / name, folder, ignore=shutil.ignore_patterns("*.net.xml"))
    return folder


def test_a_network_built_from_another_scenarios_sources_follows_them(tmp_path: Path) -> None:
    arterial = _copy(tmp_path, "arterial")
    transit = _copy(tmp_path, "transit")
    net = resolve(str(transit)).net
    assert net == transit / "transit.net.xml" and net.is_file()
    built = net.stat().st_mtime_ns
    resolve(str(transit))
    assert net.stat().st_mtime_ns == built  # nothing newer: not built again
    edges = arterial / "arterial.edg.xml"
    later = built + 5_000_000_000
    os.utime(edges, ns=(later, later))  # the arterial's edges change
    resolve(str(transit))
    assert net.stat().st_mtime_ns > built


def test_a_recipe_whose_input_is_missing_says_which(tmp_path: Path) -> None:
    _copy(tmp_path, "transit")  # without ../arterial beside it
    with pytest.raises(
        SimError, match=r"transit\.netccfg: input file\(s\) not found: .*arterial\.nod\.xml"
    ):
        resolve(str(tmp_path / "transit"))
