"""The adaptive mode against real SUMO: safe links, every signal adaptive, the demand
factor (--scale) and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edge.cli import main as edge_main
from sim.sumo import lockstep, scenarios
from sim.sumo.controllers import edge_control

from tests.sim.link_monitor import LinkMonitor


@pytest.mark.parametrize("name", ["single", "arterial", "tee"])
def test_adaptive_never_shows_conflicting_greens_and_every_signal_is_adaptive(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    original = edge_control.EdgeControl.start

    def start(self: Any, sim: Any, t_ms: int) -> None:
        original(self, sim, t_ms)
        built.append(self)

    monkeypatch.setattr(edge_control.EdgeControl, "start", start)
    scenario = scenarios.resolve(name)
    monitor = LinkMonitor.from_net(str(scenario.net))
    report = lockstep.run(scenario, "edge-adaptive", seed=3, end_s=400, observer=monitor)
    assert monitor.greens_seen > 0
    assert report["collisions"] == 0 and report["arrived"] > 20
    signals = built[0].signals
    assert signals and all(s.controller.control == "adaptive" for s in signals)
    assert all(s.controller.control_reason == "sim command" for s in signals)
    assert not built[0].fault_events


def test_scale_halves_the_demand() -> None:
    scenario = scenarios.resolve("single")
    full = lockstep.run(scenario, "sumo-actuated", seed=1, end_s=600)
    half = lockstep.run(scenario, "sumo-actuated", seed=1, end_s=600, scale=0.5)
    assert 0.4 < half["inserted"] / full["inserted"] < 0.6


def test_scale_from_the_command_line_and_its_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sim", "run", "tee", "--controller", "edge-adaptive", "--end", "120"]
    assert edge_main([*args, "--scale", "0.5"]) == 0
    assert "edge-adaptive seed 1" in capsys.readouterr().out
    assert edge_main([*args, "--scale", "0"]) == 1
    assert "--scale 0: give a demand factor above 0 and at most 10" in capsys.readouterr().err
