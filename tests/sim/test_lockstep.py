"""Lockstep runs with real SUMO: every controller, determinism, safety of what SUMO shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edge.cli import main as edge_main
from sim.sumo import engine, scenarios
from sim.sumo.controllers import NAMES
from sim.sumo.errors import SimError
from sim.sumo.lockstep import run

from tests.sim.link_monitor import LinkMonitor
from tests.sim.netbuild import build_net, five_leg

REPORT_KEYS = {
    "controller", "seed", "inserted", "arrived", "mean_delay_s", "mean_travel_time_s",
    "teleports", "ev_mean_delay_s", "ev_mean_travel_time_s", "wall_s", "sim_speedup",
    "queues", "stops_per_vehicle", "timeseries",
}  # fmt: skip


@pytest.mark.parametrize("controller", NAMES)
def test_every_controller_runs_a_short_episode(controller: str) -> None:
    report = run(scenarios.resolve("single"), controller, seed=2, end_s=240)
    assert set(report) >= REPORT_KEYS
    assert report["controller"] == controller
    assert report["inserted"] > 50
    assert report["arrived"] > 20
    assert report["collisions"] == 0
    assert report["mean_delay_s"] is not None and report["mean_delay_s"] >= 0
    queues = report["queues"]
    assert set(queues) == {f"C:{e}" for e in ("N_in", "E_in", "S_in", "W_in")}
    assert all(q["max"] >= q["mean"] >= 0 for q in queues.values())


def _numbers(report: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in report.items() if k not in ("wall_s", "sim_speedup")}


@pytest.mark.parametrize("controller", ["edge", "max-pressure"])
def test_same_seed_same_report(controller: str) -> None:
    scenario = scenarios.resolve("tee")
    a = run(scenario, controller, seed=7, end_s=300)
    b = run(scenario, controller, seed=7, end_s=300)
    c = run(scenario, controller, seed=8, end_s=300)
    assert _numbers(a) == _numbers(b)
    assert _numbers(a) != _numbers(c)


@pytest.mark.parametrize("step", [0.1, 1.0])
@pytest.mark.parametrize("name", ["single", "arterial"])
def test_edge_never_shows_conflicting_greens(name: str, step: float) -> None:
    scenario = scenarios.resolve(name)
    monitor = LinkMonitor.from_net(str(scenario.net))
    report = run(scenario, "edge", seed=1, end_s=300, step_length_s=step, observer=monitor)
    assert monitor.steps == round(300 / step)
    assert monitor.greens_seen > 0
    assert monitor.violations == []
    assert report["collisions"] == 0


def test_five_leg_split_phasing_runs_safely(tmp_path: Path) -> None:
    nodes, edges = five_leg()
    routes = "".join(
        f'<flow id="f{a}{b}" from="A{a}_in" to="C_A{b}" begin="0" end="200" period="exp(0.03)"/>'
        for a in range(5)
        for b in range(5)
        if a != b
    )
    cfg = build_net(tmp_path, "five", nodes, edges, routes=routes)
    scenario = scenarios.resolve(str(cfg))
    monitor = LinkMonitor.from_net(str(scenario.net))
    report = run(scenario, "edge", seed=1, end_s=300, step_length_s=0.1, observer=monitor)
    assert monitor.violations == []
    assert report["arrived"] > 20


def test_without_end_runs_until_every_vehicle_has_left(tmp_path: Path) -> None:
    from tests.sim.netbuild import four_leg

    nodes, edges = four_leg()
    routes = "".join(
        f'<vehicle id="v{k}" depart="{k * 4}"><route edges="{a}_in C_{b}"/></vehicle>'
        for k, (a, b) in enumerate(
            [("W", "E"), ("N", "S"), ("E", "W"), ("S", "N"), ("W", "N"), ("E", "S")] * 2
        )
    )
    cfg = build_net(tmp_path, "few", nodes, edges, routes=routes)
    report = run(scenarios.resolve(str(cfg)), "edge", seed=1)
    assert report["inserted"] == report["arrived"] == 12
    assert report["running_at_end"] == 0
    assert report["simulated_s"] < 400


def test_traci_fallback_gives_the_same_numbers() -> None:
    scenario = scenarios.resolve("tee")
    a = run(scenario, "edge", seed=3, end_s=120)
    b = run(scenario, "edge", seed=3, end_s=120, use_traci=True)
    assert _numbers(a) == _numbers(b)


def test_missing_sumo_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "sumo_home", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SimError, match="not found: install the simulator extras"):
        engine.binary("sumo")


def test_sumo_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    from tests.sim.netbuild import four_leg

    nodes, edges = four_leg()
    cfg = build_net(
        tmp_path, "bad", nodes, edges, routes='<vehicle id="x" depart="0" route="nope"/>'
    )
    for use_traci in (False, True):
        with pytest.raises(SimError, match="SUMO"):
            run(scenarios.resolve(str(cfg)), "edge", seed=1, end_s=60, use_traci=use_traci)


def test_bad_names_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SimError, match="unknown controller"):
        run(scenarios.resolve("tee"), "fastest", seed=1, end_s=10)
    with pytest.raises(SimError, match="not found"):
        scenarios.resolve("no-such-scenario")
    assert edge_main(["sim", "run", "no-such-scenario"]) == 1
    assert "not found" in capsys.readouterr().err


def test_run_and_compare_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert edge_main(["sim", "run", "tee", "--end", "120", "--report", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report) >= REPORT_KEYS
    chart = tmp_path / "c.png"
    args = ["sim", "compare", "tee", "--controllers", "edge,sumo-static", "--seeds", "2"]
    assert edge_main([*args, "--end", "120", "--chart", str(chart)]) == 0
    text = capsys.readouterr().out
    assert "edge" in text and "sumo-static" in text and "±" in text
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_speed_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a timed assert: prints the speed-up so a slow-down shows in the log."""
    report = run(scenarios.resolve("single"), "edge", seed=1, end_s=900)
    assert report["sim_speedup"] is not None and report["sim_speedup"] > 0
    with capsys.disabled():
        print(
            f"\nsim speed: single intersection, edge controller: {report['sim_speedup']}x real time"
        )
