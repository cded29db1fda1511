"""`edge bench traffic`: controllers side by side in lockstep (and the episode pool).

traffic: every controller on every shipped scenario, seeds 1..5, one simulated
hour each (the scenarios' demand), mean delay per vehicle and travel time
(mean and sample standard deviation over seeds); in the JSON also the
emergency vehicles' figures, the delay per signal as `edge sim compare` and
docs/priority.md define it (`ev_at_signal_median_s`: approach, 150 m, to
junction exit; sim/sumo/ev_trace.py), not the loss between stop lines. `edge bench preemption`
(sim/sumo/ev_bench.py) and `edge bench suite` (sim/sumo/suite.py) run their
episodes through this module's pool.

Episodes run in a process pool (libsumo holds one simulation per process),
two by default (the reference machine has two cores), longest first.
`--quick` is a smoke run: two small scenarios, one seed, 600 s.
EDGE_BENCH_TRAFFIC_SCENARIOS / _CONTROLLERS / _SEEDS / _END_S / _JOBS narrow
or change a run (comma-separated names, a seed count, seconds, workers);
EDGE_BENCH_SAVE=FILE writes the JSON object to FILE as well.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.sumo.controllers import NAMES
from sim.sumo.errors import SimError
from sim.sumo.metrics import summarise
from sim.sumo.scenarios import REPO, resolve

SCENARIOS = ("single", "tee", "arterial", "hangzhou-1x1", "hangzhou-4x4")
CONTROLLERS = (
    "edge",
    "edge-adaptive",
    "sumo-static",
    "sumo-actuated",
    "sumo-actuated-ite",
    "sumo-delay",
    "sumo-nema",
    "webster",
    "max-pressure",
)
SEEDS = 5
END_S = 3600.0
JOBS = 2
# Rough cost of an episode, for longest-first ordering (signals x vehicles).
_COST = {"hangzhou-4x4": 40, "arterial": 8, "hangzhou-1x1": 4}


@dataclass(frozen=True, slots=True)
class Job:
    scenario: str
    controller: str
    seed: int
    end_s: float | None  # None: until every vehicle has left
    preemption: bool = True


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (netconvert): on a shared
    machine the wall time says little, the CPU time what an idle core would take."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _episode(job: Job) -> dict[str, Any]:
    from sim.sumo.lockstep import run

    cpu = _cpu_s()
    r = run(resolve(job.scenario), job.controller, job.seed, job.end_s, preemption=job.preemption)
    r["cpu_s"] = round(_cpu_s() - cpu, 2)
    r.pop("timeseries", None)
    r.pop("queues", None)
    r["scenario_name"] = job.scenario  # the name asked for (a .sumocfg may be named otherwise)
    return r


def _progress(n: int, total: int, job: Job, r: dict[str, Any]) -> None:
    print(
        f"[{n}/{total}] {Path(job.scenario).name} {job.controller}"
        f"{'' if job.preemption else ' (no priority)'} seed {job.seed}: "
        f"delay {r['mean_delay_s']} s/veh, {r['wall_s']:.0f} s wall",
        file=sys.stderr,
        flush=True,
    )


Progress = Callable[[int, int, Job, dict[str, Any]], None]


def run_jobs(
    jobs: Sequence[Job],
    workers: int,
    cost: Callable[[Job], float] | None = None,
    progress: Progress = _progress,
) -> list[dict[str, Any]]:
    """Every episode's report, in the order of `jobs`; run longest (`cost`) first,
    `progress` told of each as it ends (a line on stderr by default)."""
    weigh = cost or (lambda job: _COST.get(job.scenario, 1))
    order = sorted(range(len(jobs)), key=lambda k: -weigh(jobs[k]))
    done: dict[int, dict[str, Any]] = {}
    if workers <= 1:
        for k in order:
            done[k] = _episode(jobs[k])
            progress(len(done), len(jobs), jobs[k], done[k])
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_episode, jobs[k]): k for k in order}
            for f in as_completed(futures):
                k = futures[f]
                done[k] = f.result()
                progress(len(done), len(jobs), jobs[k], done[k])
    return [done[k] for k in range(len(jobs))]


def commit() -> str:
    """The repository's commit (with '+dirty' when the tree has changes), or 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=10", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _env_list(name: str, default: Sequence[str], allowed: Sequence[str]) -> list[str]:
    raw = os.environ.get(name)
    if not raw:
        return list(default)
    items = [x.strip() for x in raw.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        raise SimError(f"{name}: unknown {bad}; choose from {', '.join(allowed)}")
    return items


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SimError(f"{name}: not a number: {raw!r}") from None
    if value <= 0:
        raise SimError(f"{name}: must be positive, not {raw}")
    return value


def _stat(rows: list[dict[str, Any]], key: str) -> tuple[float | None, float | None]:
    return summarise([float(r[key]) for r in rows if r.get(key) is not None])


def aggregate(
    reports: list[dict[str, Any]], group: Callable[[dict[str, Any]], tuple[str, ...]]
) -> list[dict[str, Any]]:
    """One row per group: mean and spread (sample sd) over seeds of each figure."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in reports:
        groups.setdefault(group(r), []).append(r)
    rows = []
    for key, mine in groups.items():
        row: dict[str, Any] = {"scenario": key[0], "controller": key[1], "runs": len(mine)}
        if len(key) > 2:
            row["preemption"] = key[2] == "on"
        for fig in (
            "mean_delay_s",
            "mean_travel_time_s",
            "ev_mean_delay_s",
            "ev_mean_travel_time_s",
            "ev_free_flow_ratio",
            "ev_at_signal_median_s",  # docs/priority.md's delay per signal (issue 17)
            "ev_recovered_2_cycles_pct",
            "ped_mean_time_loss_s",
            "arrived",
            "teleports",
            "sim_speedup",
        ):
            mean, sd = _stat(mine, fig)
            row[fig] = mean
            row[fig.removesuffix("_s") + "_sd" + ("_s" if fig.endswith("_s") else "")] = sd
        row["wall_s"] = round(sum(float(r["wall_s"]) for r in mine), 1)
        row["cpu_s"] = round(sum(float(r.get("cpu_s", 0.0)) for r in mine), 1)
        row["seeds"] = sorted(int(r["seed"]) for r in mine)
        rows.append(row)
    return rows


def _cell(mean: float | None, sd: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]], first: str) -> str:
    header = [first, *[c[0] for c in cols]]
    body = []
    for r in rows:
        cells = [r["label"]]
        for _, key in cols:
            sd_key = key.removesuffix("_s") + "_sd" + ("_s" if key.endswith("_s") else "")
            digits = 0 if key in ("arrived", "teleports", "sim_speedup") else 1
            digits = 2 if key.endswith("_ratio") else digits
            cells.append(_cell(r.get(key), r.get(sd_key), digits))
        body.append(cells)
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def _save(doc: dict[str, Any]) -> None:
    """EDGE_BENCH_SAVE=FILE keeps the JSON object too, whichever way it is printed."""
    path = os.environ.get("EDGE_BENCH_SAVE")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=1) + "\n")


def _settings(quick: bool) -> tuple[int, float, int]:
    seeds = 1 if quick else int(_env_number("EDGE_BENCH_TRAFFIC_SEEDS", SEEDS))
    end_s = 600.0 if quick else _env_number("EDGE_BENCH_TRAFFIC_END_S", END_S)
    workers = int(_env_number("EDGE_BENCH_TRAFFIC_JOBS", JOBS))
    return seeds, end_s, workers


def run_traffic_bench(json_out: bool, quick: bool, machine: str) -> int:
    try:
        scenarios = _env_list(
            "EDGE_BENCH_TRAFFIC_SCENARIOS", ("single", "tee") if quick else SCENARIOS, SCENARIOS
        )
        controllers = _env_list("EDGE_BENCH_TRAFFIC_CONTROLLERS", CONTROLLERS, NAMES)
        seeds, end_s, workers = _settings(quick)
        for name in scenarios:  # every scenario found before anything runs
            resolve(name)
        jobs = [
            Job(sc, c, s, end_s)
            for sc in scenarios
            for c in controllers
            for s in range(1, seeds + 1)
        ]
        head, reports = _measure("traffic", jobs, seeds, end_s, workers, machine)
    except SimError as exc:
        print(f"edge bench traffic: error: {exc}", file=sys.stderr)
        return 1
    rows = aggregate(reports, lambda r: (r["scenario_name"], r["controller"]))
    if _saved_as_json(head, rows, json_out):
        return 0
    print(
        f"edge bench traffic: {len(controllers)} controllers x {len(scenarios)} scenarios x "
        f"{seeds} seed(s), {end_s:g} s simulated each; commit {head['commit']}; {machine}"
    )
    cols = [
        ("delay s/veh", "mean_delay_s"),
        ("travel s", "mean_travel_time_s"),
        ("arrived", "arrived"),
        ("teleports", "teleports"),
        ("EV delay s", "ev_mean_delay_s"),
        ("x real time", "sim_speedup"),
    ]
    for sc in scenarios:
        mine = [dict(r, label=r["controller"]) for r in rows if r["scenario"] == sc]
        print(f"\n{sc}")
        print(_table(mine, cols, "controller"))
    print(
        f"\nmean ± sample standard deviation over seeds; delay = SUMO timeLoss over every "
        f"vehicle that entered (unfinished included); {head['wall_s']:.0f} s wall"
    )
    return 0


def _measure(
    bench: str, jobs: list[Job], seeds: int, end_s: float, workers: int, machine: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the episodes; the run's header (what, where, which commit, how long) and reports."""
    t0 = time.perf_counter()
    sha = commit()  # before the run: the code that ran
    reports = run_jobs(jobs, workers)
    head = {
        "bench": bench,
        "machine": machine,
        "commit": sha,
        "seeds": seeds,
        "end_s": end_s,
        "workers": workers,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    return head, reports


def _saved_as_json(head: dict[str, Any], rows: list[dict[str, Any]], json_out: bool) -> bool:
    """Keep the run where EDGE_BENCH_SAVE says; with --json print it (and say so)."""
    _save({**head, "results": rows})
    if json_out:
        print(json.dumps({**head, "results": rows}))
    return json_out
