"""`edge bench suite`: every controller on the generated suite and the shipped scenarios.

Rules this module keeps:
- The suite is sim/sumo/gen/suite.txt (FAMILY SEED LEVEL a line) plus the
  shipped scenarios (SHIPPED; a real-data one whose data is missing is left
  out with a note). Generated folders go to a cache (EDGE_BENCH_SUITE_CACHE,
  default ~/.cache/edge/suite), rewritten only where their bytes change; every
  network is built in this process before any worker starts.
- Generated scenarios run until every vehicle has left (their demand stops
  at the scenario's duration), so no controller gains by leaving vehicles
  unserved at the end; shipped ones for their hour, as `edge bench traffic`.
- A controller's delay on a scenario is the mean over seeds of SUMO's time
  loss per vehicle; its ratio is that over the baseline's (sumo-actuated,
  sumo-actuated-ite) on the same seeds. Geometric mean and worst case are
  taken over the generated scenarios, their off-peak ones, and the shipped
  ones, each group apart.
- Episodes run in a process pool (sim/sumo/bench.py's, 2 workers by default),
  seed by seed and longest first within a seed (a run stopped early has whole
  seeds); progress is a bar on a terminal, a line per episode when piped.
- EDGE_BENCH_SUITE_SEEDS (3), _JOBS (2), _CONTROLLERS, _SCENARIOS (names to
  keep), _SHIPPED_END_S (3600), _CHART (suite.png) change a run;
  EDGE_BENCH_SAVE=FILE keeps the JSON as the other benches do. `--quick`: two
  small generated scenarios, one seed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.sumo.bench import Job, _env_list, _env_number, _save, aggregate, commit, run_jobs
from sim.sumo.controller_names import NAMES
from sim.sumo.errors import SimError
from sim.sumo.gen import generate, scenario_name
from sim.sumo.gen.families import FAMILIES, LEVELS
from sim.sumo.scenarios import resolve

SPEC = Path(__file__).resolve().parent / "gen" / "suite.txt"
SHIPPED = ("single", "tee", "arterial", "hangzhou-1x1", "hangzhou-4x4")
CONTROLLERS = ("edge", "edge-adaptive", "sumo-actuated", "sumo-actuated-ite", "sumo-static")
BASELINES = ("sumo-actuated", "sumo-actuated-ite")
SEEDS = 3
JOBS = 2
SHIPPED_END_S = 3600.0
QUICK = ("tee-1-off-peak", "shared-1-off-peak")
_SHORT = {
    "edge": "edge",
    "edge-adaptive": "adaptive",
    "sumo-actuated": "act",
    "sumo-actuated-ite": "act-ite",
    "sumo-static": "static",
}


@dataclass(frozen=True, slots=True)
class Entry:
    family: str
    seed: int
    level: str

    @property
    def name(self) -> str:
        return scenario_name(self.family, self.seed, self.level)


@dataclass(frozen=True, slots=True)
class Member:
    """One scenario of the suite, ready to run."""

    name: str
    path: str  # what resolve() takes
    kind: str  # generated | shipped
    signals: int
    end_s: float | None
    level: str | None = None
    family: str | None = None


def read_spec(path: Path = SPEC) -> list[Entry]:
    """The suite's entries; SimError naming the file and line of a bad one."""
    entries: list[Entry] = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{path}:{n}"
        if len(parts) != 3:
            raise SimError(f"{where}: expected FAMILY SEED LEVEL, got {line!r}")
        family, seed, level = parts
        if family not in FAMILIES:
            raise SimError(f"{where}: unknown family {family!r} ({', '.join(FAMILIES)})")
        if level not in LEVELS:
            raise SimError(f"{where}: unknown level {level!r} ({', '.join(LEVELS)})")
        if not seed.isdigit():
            raise SimError(f"{where}: seed {seed!r} is not a whole number")
        entries.append(Entry(family, int(seed), level))
    names = [e.name for e in entries]
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        raise SimError(f"{path}: scenarios listed twice: {', '.join(dupes)}")
    return entries


def cache_dir() -> Path:
    env = os.environ.get("EDGE_BENCH_SUITE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge" / "suite"


def _signals(net: Path) -> int:
    with net.open(encoding="utf-8", errors="replace") as f:
        return sum(line.lstrip().startswith("<tlLogic ") for line in f)


def members(keep: list[str] | None, shipped_end_s: float, notes: list[str]) -> list[Member]:
    """Generate (into the cache) and resolve every scenario kept; networks built here."""
    out: list[Member] = []
    cache = cache_dir()
    for e in read_spec():
        if keep is not None and e.name not in keep:
            continue
        folder = generate(e.family, e.seed, cache / e.name, e.level)
        sc = resolve(str(folder))
        out.append(
            Member(e.name, str(folder), "generated", _signals(sc.net), None, e.level, e.family)
        )
    for name in SHIPPED:
        if keep is not None and name not in keep:
            continue
        try:
            sc = resolve(name)
        except SimError as exc:
            if not name.startswith("hangzhou"):
                raise
            notes.append(f"{name} left out: {exc}")
            continue
        out.append(Member(name, name, "shipped", _signals(sc.net), shipped_end_s))
    if keep is not None:
        unknown = sorted(set(keep) - {m.name for m in out} - {n.split()[0] for n in notes})
        if unknown:
            raise SimError(f"EDGE_BENCH_SUITE_SCENARIOS: not in the suite: {', '.join(unknown)}")
    return out


class Progress:
    """A bar on a terminal; a line per episode otherwise (both on stderr)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, n: int, total: int, job: Job, r: dict[str, Any]) -> None:
        spent = time.perf_counter() - self.t0
        left = spent / n * (total - n)
        name = Path(job.scenario).name
        if self.tty:
            width = 30
            fill = round(width * n / total)
            sys.stderr.write(
                f"\r[{'#' * fill}{'.' * (width - fill)}] {n}/{total}  {_clock(spent)} spent, "
                f"~{_clock(left)} left  {name} {job.controller}"[:120].ljust(120)
            )
            if n == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
            return
        print(
            f"[{n}/{total}] {name} {job.controller} seed {job.seed}: delay "
            f"{r['mean_delay_s']} s/veh, {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU; "
            f"{_clock(spent)} spent, "
            f"~{_clock(left)} left",
            file=sys.stderr,
            flush=True,
        )


def _clock(s: float) -> str:
    return f"{int(s // 60)}:{int(s % 60):02d}"


def _geomean(xs: list[float]) -> float | None:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def results(
    suite: list[Member], reports: list[dict[str, Any]], controllers: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-scenario figures and ratios; the summary per group and controller."""
    rows = aggregate(reports, lambda r: (r["scenario_name"], r["controller"]))
    cell = {(r["scenario"], r["controller"]): r for r in rows}
    scenarios = []
    for m in suite:
        mine = {c: cell.get((m.path, c)) for c in controllers}
        delay = {c: (r["mean_delay_s"] if r else None) for c, r in mine.items()}
        entry: dict[str, Any] = {
            "name": m.name,
            "kind": m.kind,
            "family": m.family,
            "level": m.level,
            "signals": m.signals,
            "end_s": m.end_s,
            "delay_s_per_veh": {c: _round(v, 2) for c, v in delay.items()},
            "delay_sd_s_per_veh": {
                c: _round(r["mean_delay_sd_s"] if r else None, 2) for c, r in mine.items()
            },
            "travel_time_s": {
                c: _round(r["mean_travel_time_s"] if r else None, 1) for c, r in mine.items()
            },
            "teleports": {c: (r["teleports"] if r else None) for c, r in mine.items()},
            # walkers' mean time loss (SUMO's pedestrianStatistics), where there are any
            "ped_time_loss_s": {
                c: _round(r["ped_mean_time_loss_s"] if r else None, 1) for c, r in mine.items()
            },
            "wall_s": round(sum(r["wall_s"] for r in mine.values() if r), 1),
            "cpu_s": round(sum(r["cpu_s"] for r in mine.values() if r), 1),
        }
        for base in BASELINES:
            b = delay.get(base)
            entry[f"ratio_to_{base.replace('-', '_')}"] = {
                c: (round(v / b, 3) if v is not None and b else None) for c, v in delay.items()
            }
        scenarios.append(entry)
    groups = {
        "generated": [s for s in scenarios if s["kind"] == "generated"],
        "generated_off_peak": [s for s in scenarios if s["level"] == "off-peak"],
        "shipped": [s for s in scenarios if s["kind"] == "shipped"],
    }
    summary: dict[str, Any] = {}
    for group, members_ in groups.items():
        if members_:
            summary[group] = {"scenarios": len(members_)}
            summary[group].update({c: _summary(members_, c) for c in controllers})
    return scenarios, summary


def _summary(group: list[dict[str, Any]], controller: str) -> dict[str, Any]:
    """Geometric mean and worst ratio (with its scenario) to each baseline."""
    fig: dict[str, Any] = {}
    for base in BASELINES:
        key = f"ratio_to_{base.replace('-', '_')}"
        pairs: list[tuple[float, str]] = [
            (float(s[key][controller]), str(s["name"]))
            for s in group
            if s[key].get(controller) is not None
        ]
        fig[f"geomean_{key}"] = _round(_geomean([p[0] for p in pairs]), 3)
        worst = max(pairs) if pairs else None
        fig[f"worst_{key}"] = worst[0] if worst else None
        fig[f"worst_scenario_{key}"] = worst[1] if worst else None
    return fig


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(float(v), digits)


def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(scenarios: list[dict[str, Any]], summary: dict[str, Any], controllers: list[str]) -> str:
    others = [c for c in controllers if c not in BASELINES]
    header = ["scenario", "sig", "level"] + [_SHORT.get(c, c) for c in controllers]
    ratio_cols = [(c, base) for base in BASELINES if base in controllers for c in others]
    header += [f"{_SHORT.get(c, c)}/{_SHORT[b]}" for c, b in ratio_cols]
    body = []
    for s in scenarios:
        row = [s["name"], str(s["signals"]), s["level"] or "shipped"]
        row += [_f(s["delay_s_per_veh"][c]) for c in controllers]
        row += [_f(s[f"ratio_to_{b.replace('-', '_')}"][c], 2) for c, b in ratio_cols]
        body.append(row)
    lines = _columns(header, body)
    lines.append("")
    lines.append(
        "delay: s/veh, mean over seeds; ratio: a controller's mean delay over the baseline's"
    )
    for group, fig in summary.items():
        lines.append("")
        lines.append(f"{group.replace('_', ' ')} ({fig['scenarios']} scenarios)")
        head = ["controller"] + [
            f"{kind} /{_SHORT[b]}"
            for b in BASELINES
            if b in controllers
            for kind in ("geomean", "worst")
        ]
        rows = []
        for c in others:
            f = fig[c]
            row = [c]
            for b in BASELINES:
                if b not in controllers:
                    continue
                key = f"ratio_to_{b.replace('-', '_')}"
                worst = f[f"worst_{key}"]
                row += [
                    _f(f[f"geomean_{key}"], 2),
                    f"{_f(worst, 2)} ({f[f'worst_scenario_{key}']})" if worst is not None else "-",
                ]
            rows.append(row)
        lines += _columns(head, rows)
    return "\n".join(lines)


def _columns(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return out


def write_chart(
    scenarios: list[dict[str, Any]], controllers: list[str], path: Path, title: str
) -> None:
    """Per scenario, each controller's delay ratio to each baseline: one panel per baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bases = [b for b in BASELINES if b in controllers]
    others = [c for c in controllers if c not in bases]
    if not bases or not others:
        return
    names = [s["name"] for s in scenarios]
    fig, axes = plt.subplots(
        1, len(bases), figsize=(6 * len(bases), 1.2 + 0.28 * len(names)), sharey=True, squeeze=False
    )
    height = 0.8 / len(others)
    for ax, base in zip(axes[0], bases, strict=True):
        key = f"ratio_to_{base.replace('-', '_')}"
        for k, c in enumerate(others):
            ys = [i + (k - (len(others) - 1) / 2) * height for i in range(len(names))]
            xs = [s[key].get(c) or 0.0 for s in scenarios]
            ax.barh(ys, xs, height=height, label=c)
        top = max((v for s in scenarios for v in s[key].values() if v is not None), default=1.0)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlim(0, max(1.5, top * 1.05))
        ax.set_xlabel(f"mean delay / {base}'s")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(names)), names, fontsize="small")
    axes[0][0].invert_yaxis()
    axes[0][0].legend(loc="lower right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _cost(job: Job, signals: dict[str, int]) -> float:
    """The order episodes start in (dearest first): seed by seed, so that a run stopped
    early has whole seeds; within a seed the longest first (signals x simulated time,
    the lockstep controllers dearer), so that the two workers end together."""
    end = job.end_s or 1800.0
    cost = signals.get(job.scenario, 1) * end * (3 if job.controller.startswith("edge") else 1)
    return -job.seed * 1e9 + cost


def run_suite_bench(json_out: bool, quick: bool, machine: str) -> int:
    notes: list[str] = []
    try:
        controllers = _env_list("EDGE_BENCH_SUITE_CONTROLLERS", CONTROLLERS, NAMES)
        raw = os.environ.get("EDGE_BENCH_SUITE_SCENARIOS")
        keep = [x.strip() for x in raw.split(",") if x.strip()] if raw else None
        if quick and keep is None:
            keep = list(QUICK)
        seeds = 1 if quick else int(_env_number("EDGE_BENCH_SUITE_SEEDS", SEEDS))
        workers = int(_env_number("EDGE_BENCH_SUITE_JOBS", JOBS))
        shipped_end = _env_number("EDGE_BENCH_SUITE_SHIPPED_END_S", SHIPPED_END_S)
        chart = Path(os.environ.get("EDGE_BENCH_SUITE_CHART") or "suite.png")
        t0 = time.perf_counter()
        suite = members(keep, shipped_end, notes)
        for note in notes:
            print(f"edge bench suite: {note}", file=sys.stderr)
        jobs = [
            Job(m.path, c, s, m.end_s)
            for m in suite
            for c in controllers
            for s in range(1, seeds + 1)
        ]
        sha = commit()
        signals = {m.path: m.signals for m in suite}
        reports = run_jobs(
            jobs, workers, cost=lambda j: _cost(j, signals), progress=Progress(len(jobs))
        )
    except SimError as exc:
        print(f"edge bench suite: error: {exc}", file=sys.stderr)
        return 1
    scenarios, summary = results(suite, reports, controllers)
    head = {
        "bench": "suite",
        "machine": machine,
        "commit": sha,
        "seeds": seeds,
        "workers": workers,
        "controllers": controllers,
        "shipped_end_s": shipped_end,
        "episodes": len(jobs),
        "wall_s": round(time.perf_counter() - t0, 1),
        # On a shared machine: what the episodes cost, and so what idle cores would take.
        "cpu_s": round(sum(float(r["cpu_s"]) for r in reports), 1),
        "chart": str(chart),
        "notes": notes,
    }
    title = f"edge bench suite: {len(suite)} scenario(s) x {seeds} seed(s), commit {sha}"
    write_chart(scenarios, controllers, chart, title)
    doc = {**head, "scenarios": scenarios, "summary": summary}
    _save(doc)
    if json_out:
        print(json.dumps(doc))
        return 0
    print(
        f"edge bench suite: {len(controllers)} controllers x {len(suite)} scenarios x {seeds} "
        f"seed(s) ({len(jobs)} episodes, {workers} workers); commit {sha}; {machine}"
    )
    print(table(scenarios, summary, controllers))
    print(
        f"\ngenerated: until every vehicle has left; shipped: {shipped_end:g} s; delay = SUMO "
        f"timeLoss per vehicle; chart: {chart}; {head['wall_s']:.0f} s wall, "
        f"{head['cpu_s']:.0f} s CPU in the episodes"
    )
    return 0
