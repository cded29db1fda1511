"""`edge bench preemption`: emergency vehicles with and without priority, arterials and grids.

Rules this module keeps:
- Scenarios: the shipped `arterial` (its hour) and generated arterials and
  grids with emergency vehicles, each written to the suite's cache
  (sim/sumo/suite.py) and run until every vehicle has left. TUNE are the
  suite's members with emergency vehicles (what the method was tuned on),
  HELD_OUT others it never saw; both are reported, each apart.
  EDGE_BENCH_PREEMPT_SCENARIOS narrows the set (comma-separated: `arterial`,
  or FAMILY-SEED-LEVEL of a generated one).
- Each scenario and seed runs `edge` (the derived default) with priority and
  without, on the same SUMO seed: the same vehicles, emergency ones included.
- Per scenario: the EVs' mean delay (SUMO time loss per EV) with and without,
  and its ratio; the median delay at each signal passed (sim/sumo/ev_trace.py:
  from entering the signal's approach, 150 m, to leaving its junction) over
  every passage; general traffic's (every other vehicle's) mean delay with
  and without, and its ratio.
- The goal figures (issue 17) over a group: the EV delay ratio pools every EV
  of every run (sum of delays with over sum without: the same vehicles), the
  per-signal median pools every passage; general traffic's ratio is the
  geometric mean of the scenarios' ratios, its worst given beside it.
- Seeds, workers: EDGE_BENCH_TRAFFIC_SEEDS (5) and _JOBS (2) as the other
  benches; EDGE_BENCH_SAVE=FILE keeps the JSON. A line per episode on stderr.
  `--quick`: one small generated arterial, one seed.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from dataclasses import dataclass
from typing import Any

from sim.sumo.bench import Job, _measure, _saved_as_json, _settings
from sim.sumo.errors import SimError
from sim.sumo.gen import generate
from sim.sumo.gen.families import FAMILIES, LEVELS
from sim.sumo.suite import cache_dir

TUNE = (
    "arterial",
    "arterial-1-moderate",
    "arterial-2-off-peak",
    "arterial-4-over-saturated",
    "grid-1-off-peak",
    "grid-2-moderate",
    "grid-5-peak",
    "grid-6-moderate",
    "grid-8-over-saturated",
)
HELD_OUT = (
    "arterial-8-over-saturated",
    "arterial-14-over-saturated",
    "arterial-18-peak",
    "grid-11-peak",
    "grid-17-moderate",
)
QUICK = ("arterial-1-moderate",)
SHIPPED_END_S = 3600.0
# The issue 17 goals: EV delay ratio, median delay per signal, general traffic's ratio.
GOAL_EV_RATIO = 0.25
GOAL_PER_SIGNAL_S = 2.0
GOAL_GENERAL_RATIO = 1.05


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    path: str  # what resolve() takes
    end_s: float | None  # None: until every vehicle has left
    group: str  # tune | held-out


def target(name: str, group: str) -> Target:
    """A shipped scenario by name, or FAMILY-SEED-LEVEL generated into the cache."""
    if "-" not in name:
        return Target(name, name, SHIPPED_END_S, group)
    family, _, rest = name.partition("-")
    seed, _, level = rest.partition("-")
    if family not in FAMILIES or not seed.isdigit() or level not in LEVELS:
        raise SimError(
            f"scenario {name!r}: give a shipped name or FAMILY-SEED-LEVEL "
            f"(families {', '.join(FAMILIES)}; levels {', '.join(LEVELS)})"
        )
    folder = generate(family, int(seed), cache_dir() / name, level)
    return Target(name, str(folder), None, group)


def _targets(quick: bool) -> list[Target]:
    if quick:
        return [target(n, "tune") for n in QUICK]
    raw = os.environ.get("EDGE_BENCH_PREEMPT_SCENARIOS")
    names = [x.strip() for x in raw.split(",") if x.strip()] if raw else [*TUNE, *HELD_OUT]
    return [target(n, "held-out" if n in HELD_OUT else "tune") for n in names]


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 2) if xs else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _geomean(xs: list[float]) -> float | None:
    return round(math.exp(sum(math.log(x) for x in xs) / len(xs)), 3) if xs else None


def _side(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side (with or without priority) of a scenario, pooled over its seeds."""
    ev_total = sum(float(r["ev_mean_delay_s"]) * r["ev_count"] for r in runs if r["ev_count"])
    at = [float(x) for r in runs for x in r.get("ev_at_signal_s", [])]
    halted = [float(x) for r in runs for x in r.get("ev_halted_at_signal_s", [])]
    return {
        "ev_count": sum(int(r["ev_count"]) for r in runs),
        "ev_delay_total_s": round(ev_total, 1),
        "ev_mean_delay_s": round(ev_total / n, 2)
        if (n := sum(r["ev_count"] for r in runs))
        else None,
        "ev_passages": len(at),
        "ev_at_signal_s": at,
        "halted": halted,
        "ev_at_signal_median_s": round(statistics.median(at), 2) if at else None,
        "ev_halted_at_signal_mean_s": _mean(halted),
        "ev_halted_at_signal_share": round(sum(h > 0 for h in halted) / len(halted), 3)
        if halted
        else None,
        "general_mean_delay_s": _mean([float(r["general_mean_delay_s"]) for r in runs]),
    }


_LISTS = ("ev_at_signal_s", "halted")  # per passage: pooled in goals(), not printed


def results(targets: list[Target], reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per scenario: both sides and the ratios."""
    rows = []
    for t in targets:
        mine = [r for r in reports if r["scenario_name"] == t.name]
        on = _side([r for r in mine if r["preemption"]])
        off = _side([r for r in mine if not r["preemption"]])
        rows.append(
            {
                "scenario": t.name,
                "group": t.group,
                "seeds": sorted({int(r["seed"]) for r in mine}),
                "with": {k: v for k, v in on.items() if k not in _LISTS},
                "without": {k: v for k, v in off.items() if k not in _LISTS},
                "ev_delay_ratio": _ratio(on["ev_delay_total_s"], off["ev_delay_total_s"]),
                "general_delay_ratio": _ratio(
                    on["general_mean_delay_s"], off["general_mean_delay_s"]
                ),
                "_at": (on["ev_at_signal_s"], off["ev_at_signal_s"]),
                "_halted": (on["halted"], off["halted"]),
            }
        )
    return rows


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The three goal figures over these scenarios (see the module's rules)."""
    on_total = sum(r["with"]["ev_delay_total_s"] for r in rows)
    off_total = sum(r["without"]["ev_delay_total_s"] for r in rows)
    at_on = [x for r in rows for x in r["_at"][0]]
    at_off = [x for r in rows for x in r["_at"][1]]
    general = [r["general_delay_ratio"] for r in rows if r["general_delay_ratio"] is not None]
    out = {
        "scenarios": len(rows),
        "ev_count": sum(r["with"]["ev_count"] for r in rows),
        "ev_delay_ratio": _ratio(on_total, off_total),
        "ev_passages": len(at_on),
        "ev_at_signal_median_s": round(statistics.median(at_on), 2) if at_on else None,
        "ev_at_signal_median_without_s": round(statistics.median(at_off), 2) if at_off else None,
        "ev_halted_at_signal_mean_s": _mean([x for r in rows for x in r["_halted"][0]]),
        "ev_halted_at_signal_mean_without_s": _mean([x for r in rows for x in r["_halted"][1]]),
        "general_delay_ratio_geomean": _geomean(general),
        "general_delay_ratio_worst": max(general) if general else None,
    }
    out["met"] = {
        "ev_delay_ratio": out["ev_delay_ratio"] is not None
        and out["ev_delay_ratio"] <= GOAL_EV_RATIO,
        "ev_at_signal_median_s": out["ev_at_signal_median_s"] is not None
        and out["ev_at_signal_median_s"] <= GOAL_PER_SIGNAL_S,
        "general_delay_ratio": out["general_delay_ratio_geomean"] is not None
        and out["general_delay_ratio_geomean"] <= GOAL_GENERAL_RATIO,
    }
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _table(rows: list[dict[str, Any]]) -> str:
    header = [
        "scenario", "EVs", "EV delay s: with", "without", "ratio",
        "per signal: median s with", "without", "halted s with", "without",
        "general s/veh: with", "without", "ratio",
    ]  # fmt: skip
    body = [
        [
            r["scenario"] + (" *" if r["group"] == "held-out" else ""),
            _fmt(r["with"]["ev_count"]),
            _fmt(r["with"]["ev_mean_delay_s"]),
            _fmt(r["without"]["ev_mean_delay_s"]),
            _fmt(r["ev_delay_ratio"]),
            _fmt(r["with"]["ev_at_signal_median_s"]),
            _fmt(r["without"]["ev_at_signal_median_s"]),
            _fmt(r["with"]["ev_halted_at_signal_mean_s"]),
            _fmt(r["without"]["ev_halted_at_signal_mean_s"]),
            _fmt(r["with"]["general_mean_delay_s"]),
            _fmt(r["without"]["general_mean_delay_s"]),
            _fmt(r["general_delay_ratio"]),
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    return "\n".join(lines)


def _goal_line(name: str, g: dict[str, Any]) -> str:
    met = g["met"]
    return (
        f"{name} ({g['scenarios']} scenarios, {g['ev_count']} EVs, {g['ev_passages']} passages): "
        f"EV delay ratio {_fmt(g['ev_delay_ratio'])} (goal <= {GOAL_EV_RATIO}: "
        f"{'met' if met['ev_delay_ratio'] else 'missed'}); per-signal median "
        f"{_fmt(g['ev_at_signal_median_s'])} s (without {_fmt(g['ev_at_signal_median_without_s'])};"
        f" goal <= {GOAL_PER_SIGNAL_S:g}: {'met' if met['ev_at_signal_median_s'] else 'missed'});"
        f" halted {_fmt(g['ev_halted_at_signal_mean_s'])} s a passage (without "
        f"{_fmt(g['ev_halted_at_signal_mean_without_s'])});"
        f" general traffic ratio {_fmt(g['general_delay_ratio_geomean'])} geomean, worst "
        f"{_fmt(g['general_delay_ratio_worst'])} (goal <= {GOAL_GENERAL_RATIO}: "
        f"{'met' if met['general_delay_ratio'] else 'missed'})"
    )


def run_preemption_bench(json_out: bool, quick: bool, machine: str) -> int:
    try:
        seeds, _, workers = _settings(quick)
        targets = _targets(quick)
        jobs = [
            Job(t.path, "edge", s, t.end_s, preemption=on)
            for t in targets
            for s in range(1, seeds + 1)
            for on in (True, False)
        ]
        head, reports = _measure("preemption", jobs, seeds, SHIPPED_END_S, workers, machine)
    except SimError as exc:
        print(f"edge bench preemption: error: {exc}", file=sys.stderr)
        return 1
    name_of = {t.path: t.name for t in targets}
    for r, job in zip(reports, jobs, strict=True):
        r["scenario_name"] = name_of[job.scenario]
    rows = results(targets, reports)
    groups = {
        g: goals([r for r in rows if r["group"] == g])
        for g in ("tune", "held-out")
        if any(r["group"] == g for r in rows)
    }
    if len(groups) > 1:
        groups["all"] = goals(rows)
    head["end_s"] = SHIPPED_END_S  # the shipped scenario's
    head["generated_end_s"] = None  # generated ones: until every vehicle has left
    doc_rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    if _saved_as_json({**head, "goals": groups}, doc_rows, json_out):
        return 0
    print(
        f"edge bench preemption: edge with and without emergency-vehicle priority, {seeds} "
        f"seed(s); shipped arterial 3600 s, generated until every vehicle has left; commit "
        f"{head['commit']}; {machine}; load average {os.getloadavg()[0]:.2f}\n"
    )
    print(_table(rows))
    print()
    for g, figures in groups.items():
        print(_goal_line(g, figures))
    print(
        "\n* held out (never tuned on). EV delay: SUMO time loss per emergency vehicle; ratio: "
        "summed over the scenario's EVs, with over without; per signal: EV time loss from "
        "entering a signal's approach (150 m) to leaving its junction, median over passages "
        "(sim/sumo/ev_trace.py); halted: of that, seconds at a standstill, mean a passage; "
        "general: every other vehicle's mean time loss; "
        f"{head['wall_s']:.0f} s wall"
    )
    return 0
