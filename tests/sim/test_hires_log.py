"""The ATSPM hi-res log of a simulated hour, read by the `atspm` package from PyPI.

`edge sim run SCENARIO --hires-log DIR` writes each signal's events (sim/sumo/hireslog.py);
the `atspm` package (Oregon DOT's production aggregation, DuckDB underneath) reads the CSV
and the detector configuration written beside it, and its arrivals on green and split
failures must agree with the project's own counts (edge/atspm/measures.py, from the
controller's state tick by tick) within 2 %. The .datZ files hold the same events.

`atspm` is a dev extra (pyproject.toml says why); a checkout without it skips the
package comparison, CI (CI set) fails instead.
"""

from __future__ import annotations

import csv
import importlib
import os
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from edge.atspm.formats import read_datz
from edge.atspm.measures import arrivals_on_green, split_failures
from edge.cli import main
from sim.sumo.hireslog import SIM_EPOCH, HiResRecorder
from sim.sumo.lockstep import run
from sim.sumo.scenarios import resolve

HOUR_S = 3600
SCALE = 1.4  # demand above the scenario's: some cycles fail (at 1.3 only 3 did on main 21dfcaa)


@pytest.fixture(scope="module")
def atspm() -> ModuleType:
    try:
        package = importlib.import_module("atspm")
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the atspm package (a dev extra) is not installed: {exc}")
        pytest.skip(f"the atspm package (a dev extra) is not installed: {exc}")
    return package


@pytest.fixture(scope="module")
def hour(tmp_path_factory: pytest.TempPathFactory) -> HiResRecorder:
    rec = HiResRecorder(tmp_path_factory.mktemp("hires"), samples=True)
    run(resolve("single"), "edge", 1, HOUR_S, scale=SCALE, hires=rec)
    return rec


def own_counts(rec: HiResRecorder, tls: str) -> tuple[int, int, int]:
    """Arrivals, arrivals on green (advance loops), split failures (stop-bar loops)."""
    site = rec.signals[tls].site
    index = {p.id: i for i, p in enumerate(site.phases)}
    advance: dict[int, list[int]] = {}
    presence: dict[int, list[int]] = {}
    for k, det in enumerate(site.detectors):
        phases = [index[p] for p in dict.fromkeys(det.calls + det.extends)]
        if det.ped:
            continue
        if rec.kinds[tls][det.id] == "setback":
            advance[k] = phases
        else:
            for i in phases:
                presence.setdefault(i, []).append(k)
    samples = rec.logs[tls].samples
    aog = arrivals_on_green(samples, advance).values()
    sf = split_failures(samples, presence).values()
    return sum(a.total for a in aog), sum(a.on_green for a in aog), sum(f for _, f in sf)


def package_counts(atspm: ModuleType, out: Path) -> tuple[float, float, float]:
    pd: Any = importlib.import_module("pandas")  # atspm's dependency (no type stubs)
    raw = pd.read_csv(out / "C.csv", parse_dates=["TimeStamp"])
    config = pd.read_csv(out / "detector_config.csv")
    # ATSPM's definition: both occupancies above 79 % (the package tests >=)
    above = 0.79 + 1e-9
    aggregations: list[dict[str, Any]] = [
        {"name": "arrival_on_green", "params": {"latency_offset_seconds": 0}},
        {
            "name": "split_failures",
            "params": {
                "red_time": 5,
                "red_occupancy_threshold": above,
                "green_occupancy_threshold": above,
                "by_approach": True,
                "by_cycle": False,
            },
        },
    ]
    with atspm.SignalDataProcessor(
        raw_data=raw, detector_config=config, bin_size=15, verbose=0, aggregations=aggregations
    ) as p:
        p.load()
        p.aggregate()
        aog = p.conn.query("SELECT * FROM arrival_on_green").df()
        sf = p.conn.query("SELECT * FROM split_failures").df()
    green = float((aog.Percent_AOG * aog.Total_Actuations).sum())
    return float(aog.Total_Actuations.sum()), green, float(sf.Split_Failure.sum())


def test_the_atspm_package_agrees_with_the_controllers_own_counts(
    atspm: ModuleType, hour: HiResRecorder
) -> None:
    arrivals, on_green, failures = own_counts(hour, "C")
    theirs = package_counts(atspm, hour.out_dir)
    assert arrivals > 300 and 0 < on_green < arrivals and failures >= 5
    ours = (arrivals, on_green, failures)
    for what, a, b in zip(("arrivals", "on green", "split failures"), ours, theirs, strict=True):
        assert abs(a - b) <= 0.02 * a, f"{what}: ours {a}, the atspm package's {b}"
    assert abs(on_green / arrivals - theirs[1] / theirs[0]) <= 0.02


def test_the_datz_files_hold_the_csvs_events_in_quarter_hours(hour: HiResRecorder) -> None:
    files = sorted((hour.out_dir / "C").glob("*.datZ"))
    starts = [SIM_EPOCH + timedelta(minutes=15 * k) for k in range(4)]
    assert [f.name for f in files] == [f"C_{s:%Y_%m_%d_%H%M}.datZ" for s in starts]
    from_datz = []
    for f, start in zip(files, starts, strict=True):
        got_start, records = read_datz(f.read_bytes())
        assert got_start == start
        from_datz += [(r.at, r.code, r.param) for r in records]
    with open(hour.out_dir / "C.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    from_csv = [
        (datetime.fromisoformat(r["TimeStamp"]), int(r["EventId"]), int(r["Parameter"]))
        for r in rows
    ]
    assert {r["DeviceId"] for r in rows} == {"C"}
    assert from_datz == from_csv and len(from_csv) > 1000


def test_edge_sim_run_writes_the_hires_log(tmp_path: Path) -> None:
    out = tmp_path / "hires"
    assert main(["sim", "run", "tee", "--end", "300", "--hires-log", str(out)]) == 0
    signals = [p for p in out.iterdir() if p.is_dir()]
    assert signals and all(list(p.glob("*.datZ")) for p in signals)
    assert all((out / f"{p.name}.csv").is_file() for p in signals)
    assert main(["sim", "run", "tee", "--end", "60", "--controller", "max-pressure",
                 "--hires-log", str(out)]) == 1  # fmt: skip
