"""Run several controllers over the same seeds; a table (mean and spread) and a PNG chart."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sim.sumo.controllers import CAMERA_NAMES, NAMES, NO_PREEMPT, NO_TSP, known
from sim.sumo.errors import SimError
from sim.sumo.metrics import summarise


def _one(
    spec: str, controller: str, seed: int, end_s: float | None, scale: float = 1.0
) -> dict[str, Any]:
    from sim.sumo.lockstep import run
    from sim.sumo.scenarios import resolve

    return run(resolve(spec), controller, seed, end_s, scale=scale)


def compare(
    spec: str,
    controllers: Sequence[str],
    seeds: int,
    end_s: float | None,
    jobs: int = 1,
    scale: float = 1.0,
) -> list[dict[str, Any]]:
    unknown = [c for c in controllers if not known(c) or c in CAMERA_NAMES]
    if unknown:
        raise SimError(
            f"unknown controller(s) {unknown}: choose from {', '.join(NAMES)}"
            f" (an edge controller + {NO_PREEMPT!r}: without emergency preemption;"
            f" + {NO_TSP!r}: without transit priority)"
        )
    if seeds < 1:
        raise SimError("--seeds must be at least 1")
    runs = [(c, s) for c in controllers for s in range(1, seeds + 1)]
    if jobs <= 1:
        return [_one(spec, c, s, end_s, scale) for c, s in runs]
    # Each episode in its own process: libsumo holds one simulation per process.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = [pool.submit(_one, spec, c, s, end_s, scale) for c, s in runs]
        return [f.result() for f in futures]


def _total_queue(r: dict[str, Any]) -> float:
    return float(sum(q["mean"] for q in r["queues"].values()))


def _mean_of(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def _cell(values: list[float], digits: int = 1) -> str:
    mean, sd = summarise(values)
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


Column = tuple[str, Callable[[dict[str, Any]], Any]]

TWO_DIGITS = {"EV travel / free flow"}  # a ratio: 1.1 would hide the 15 % goal

# Emergency vehicles, per signal passed (sim/sumo/ev_trace.py): printed when any run had them.
EV_COLUMNS: list[Column] = [
    ("EVs", lambda r: r["ev_count"]),
    ("EV delay s", lambda r: r["ev_mean_delay_s"]),
    ("EV travel / free flow", lambda r: r["ev_free_flow_ratio"]),
    # docs/priority.md's delay per signal (issue 17): approach (150 m) to junction exit
    ("per signal: median s", lambda r: r.get("ev_at_signal_median_s")),
    ("p90 s", lambda r: r.get("ev_at_signal_p90_s")),
    ("halted s", lambda r: _mean_of(r.get("ev_halted_at_signal_s"))),
    ("queue back: median s", lambda r: r.get("ev_recovery_median_s")),
    ("within 2 cycles %", lambda r: r.get("ev_recovered_2_cycles_pct")),
]

# Buses (SUMO vClass bus; sim/sumo/transit.py): printed when any run had them.
BUS_COLUMNS: list[Column] = [
    ("buses", lambda r: r.get("bus_count")),
    ("bus delay s", lambda r: r.get("bus_mean_delay_s")),
    ("bus travel s", lambda r: r.get("bus_mean_travel_time_s")),
    ("requests", lambda r: r.get("transit_requests")),
]


def format_table(reports: list[dict[str, Any]], controllers: Sequence[str]) -> str:
    cols: list[Column] = [
        ("delay s/veh", lambda r: r["mean_delay_s"]),
        ("travel s", lambda r: r["mean_travel_time_s"]),
        ("queue veh", _total_queue),
        ("stops/veh", lambda r: r["stops_per_vehicle"]),
        ("arrived", lambda r: r["arrived"]),
        ("teleports", lambda r: r["teleports"]),
        ("EV delay s", lambda r: r["ev_mean_delay_s"]),
        ("speedup x", lambda r: r["sim_speedup"]),
    ]
    lines = _table(reports, controllers, cols)
    lines.append(
        "mean ± sample standard deviation over seeds; queue = halting vehicles, all approaches"
    )
    if any(r.get("ev_passages") for r in reports):
        lines += ["", "emergency vehicles", *_table(reports, controllers, EV_COLUMNS)]
        lines.append(
            "EV delay: SUMO time loss per emergency vehicle; per signal: the time loss from "
            "entering a signal's approach (150 m before its stop line) to leaving its junction "
            "(median, 90th percentile over passages; sim/sumo/ev_trace.py); halted: of that, "
            "seconds at a standstill, mean a passage; queue back: "
            "from a passage until the signal's halting vehicles are at their level before the "
            "vehicle came; within 2 cycles: share of passages where that took at most two of "
            "the signal's mean cycles"
        )
    if any(r.get("bus_count") for r in reports):
        lines += ["", "buses", *_table(reports, controllers, BUS_COLUMNS)]
        lines.append(
            "bus delay: SUMO time loss per bus; requests: transit priority asked of a signal "
            "for an approach (from the first bus within 200 m of its stop line until the last "
            "has passed it)"
        )
    return "\n".join(lines)


def _table(
    reports: list[dict[str, Any]], controllers: Sequence[str], cols: list[Column]
) -> list[str]:
    header = ["controller", "runs", *[c[0] for c in cols]]
    rows = [header]
    for name in controllers:
        mine = [r for r in reports if r["controller"] == name]
        row = [name, str(len(mine))]
        for title, get in cols:
            values = [float(v) for r in mine if (v := get(r)) is not None]
            row.append(_cell(values, 2 if title in TWO_DIGITS else 1))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _mean_series(reports: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    acc: dict[int, list[float]] = {}
    for r in reports:
        ts = r["timeseries"]
        for t, v in zip(ts["t_s"], ts[key], strict=True):
            if v is not None:
                acc.setdefault(t, []).append(v)
    xs = sorted(acc)
    return [x / 60 for x in xs], [sum(acc[x]) / len(acc[x]) for x in xs]


def write_chart(
    reports: list[dict[str, Any]], controllers: Sequence[str], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_d, ax_q) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for name in controllers:
        mine = [r for r in reports if r["controller"] == name]
        x, y = _mean_series(mine, "delay_s")
        ax_d.plot(x, y, label=name)
        x, y = _mean_series(mine, "queue_veh")
        ax_q.plot(x, y, label=name)
    seeds = len({r["seed"] for r in reports})
    ax_d.set_ylabel("delay of arriving vehicles, s/veh")
    ax_d.set_title(f"{title}: mean over {seeds} seed(s), 1-minute bins")
    ax_q.set_ylabel("queue, halting vehicles")
    ax_q.set_xlabel("simulated time, min")
    for ax in (ax_d, ax_q):
        ax.grid(alpha=0.3)
    ax_d.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
