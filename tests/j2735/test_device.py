"""The `j2735` extension on a real Runtime (no board: the test steps its controller, as the
web tests do): built by edge run's assembly from a device file's [j2735] table and the
site's [map], it sends every frame to a UDP receiver on loopback, off the tick."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

import pytest
from edge.assemble import SetupError, edge_run_extensions
from edge.config import config_from_dict
from edge.j2735.device import J2735
from edge.runtime import Runtime

from tests.j2735.decode import decode
from tests.j2735.test_sitemap import MAP, ROOT


def site_with_map() -> tuple[Runtime, object]:
    raw = tomllib.loads((ROOT / "examples/t_junction.toml").read_text())
    config = config_from_dict({**raw, "map": MAP}, "t_junction+map")
    return Runtime(config, "/nonexistent/edge-j2735-test-port"), config


def test_frames_reach_a_roadside_unit_on_loopback(tmp_path: Path) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    port = rx.getsockname()[1]
    device = tmp_path / "device.toml"
    device.write_text(f'[j2735]\nrsu = "127.0.0.1:{port}"\n')
    rt, config = site_with_map()
    (ext,) = [e for e in edge_run_extensions(config, str(device)) if isinstance(e, J2735)]  # type: ignore[arg-type]
    rt.add(ext)
    now = rt.board.clock_ms()
    seconds = set()
    for _ in range(25):  # 2.5 s of ticks: 25 SPaT, a MAP in each second they touch
        now += 100
        rt.driver.tick(now)
        rt.ticks += 1
        seconds.add(now // 1000)
        ext.on_tick(rt.tick_snapshot())
    total = 25 + len(seconds)
    got: list[int] = []
    try:
        while len(got) < total:
            got.append(decode(rx.recv(65535))[0])
    finally:
        rx.close()
        ext.stop()
    assert got.count(19) == 25 and got.count(18) == len(seconds)
    assert got[0] == 18  # the MAP first
    assert ext.status_fields()["j2735"]["sent_udp"] == total


def test_a_bad_rsu_is_a_setup_error_naming_the_file(tmp_path: Path) -> None:
    device = tmp_path / "device.toml"
    device.write_text('[j2735]\nrsu = "rsu.local"\n')
    _rt, config = site_with_map()
    with pytest.raises(SetupError, match=r"device.toml: \[j2735\] rsu 'rsu.local': give HOST:PORT"):
        edge_run_extensions(config, str(device))  # type: ignore[arg-type]
