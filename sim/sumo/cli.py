"""`edge sim init | run | compare | gen`: the SUMO simulator from the command line.

SUMO and its Python packages are imported only when a command runs, so the
`edge` command works without the simulator extras installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sim.sumo.controller_names import all_names
from sim.sumo.errors import SimError
from sim.sumo.scenarios import names

_MAX_NOTES = 8


def add_sim_command(sub: Any) -> None:
    """Register `sim` and its subcommands on the `edge` parser's subparsers."""
    scenario_help = f"{', '.join(names())}, or a scenario folder or .sumocfg"
    sim = sub.add_parser("sim", help="SUMO simulator: derive site configs, run, compare")
    simsub = sim.add_subparsers(dest="sim_command", required=True)

    p = simsub.add_parser("init", help="derive a site config (TOML) for one SUMO signal")
    p.add_argument("scenario", help="scenario name, folder, .sumocfg or .net.xml")
    p.add_argument("--tls", help="traffic light id (needed when the network has several)")
    p.add_argument("-o", "--output", help="TOML file to write (default: print it)")
    p.add_argument(
        "--cameras", action="store_true", help="add a sim:// camera per approach with lane zones"
    )
    p.set_defaults(func=cmd_init)

    p = simsub.add_parser("run", help="run one episode in lockstep and report")
    p.add_argument("scenario", help=scenario_help)
    p.add_argument(
        "--controller", default="edge", metavar="NAME", help=f"one of {', '.join(all_names())}"
    )
    p.add_argument("--seed", type=int, default=1, help="SUMO's random seed")
    p.add_argument("--end", type=float, help="simulated end time, s (default: all vehicles left)")
    p.add_argument("--report", help="write the report JSON here")
    p.add_argument(
        "--step-length", type=float, default=1.0, choices=(1.0, 0.1), help="SUMO step, s"
    )
    p.add_argument("--traci", action="store_true", help="use traci (a sumo process), not libsumo")
    p.add_argument(
        "--no-preemption",
        dest="preemption",
        action="store_false",
        help="emergency vehicles do not preempt the edge controller",
    )
    p.add_argument("--scale", type=float, default=1.0, help="demand factor (SUMO --scale)")
    p.add_argument(
        "--hires-log",
        metavar="DIR",
        help="write each signal's ATSPM hi-res log: DIR/<signal>/*.datZ, DIR/<signal>.csv",
    )
    p.set_defaults(func=cmd_run)

    p = simsub.add_parser("compare", help="run controllers over seeds; table and chart")
    p.add_argument("scenario", help=scenario_help)
    p.add_argument(
        "--controllers",
        default="edge,sumo-actuated,webster,max-pressure",
        help="comma-separated names; edge-no-preempt, edge-adaptive-no-preempt: the same "
        "edge controller without emergency preemption (its EVs still traced)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    p.add_argument("--end", type=float, help="simulated end time, s (default: all vehicles left)")
    p.add_argument("--chart", default="compare.png", help="PNG chart to write")
    p.add_argument("--json", dest="json_out", help="write all reports as one JSON file")
    p.add_argument("--jobs", type=int, default=1, help="episodes run in parallel")
    p.add_argument("--scale", type=float, default=1.0, help="demand factor (SUMO --scale)")
    p.set_defaults(func=cmd_compare)

    from sim.sumo.gen.families import FAMILIES, LEVELS

    p = simsub.add_parser("gen", help="generate a seeded scenario folder (sim/sumo/gen)")
    p.add_argument("family", nargs="?", choices=FAMILIES, help="scenario family")
    p.add_argument("--seed", type=int, default=1, help="draws geometry and demand")
    p.add_argument("--level", choices=list(LEVELS), help="pin the demand level (default: drawn)")
    p.add_argument(
        "-o",
        "--output",
        help="folder to write (default: ./FAMILY-SEED[-LEVEL]); with --suite "
        "the folder the suite's scenarios go into",
    )
    p.add_argument(
        "--suite", action="store_true", help="every scenario of `edge bench suite`'s list"
    )
    p.set_defaults(func=cmd_gen)


def _fail(exc: Exception) -> int:
    print(f"edge sim: error: {exc}", file=sys.stderr)
    return 1


def cmd_init(args: argparse.Namespace) -> int:
    from sim.sumo.derive import derive
    from sim.sumo.network import read_net, signal_ids, signal_junction
    from sim.sumo.scenarios import resolve
    from sim.sumo.site_toml import derivation_toml

    try:
        scenario = resolve(args.scenario)
        net = read_net(scenario.net)
        ids = signal_ids(net)
        if not ids:
            raise SimError(f"{scenario.net}: the network has no traffic lights")
        tls = args.tls
        if tls is None:
            if len(ids) > 1:
                raise SimError(f"the network has {len(ids)} signals; pick one with --tls: {ids}")
            tls = ids[0]
        d = derive(signal_junction(net, tls))
        if args.cameras:
            from dataclasses import replace

            from sim.camera.source import with_cameras

            d = replace(d, site_dict=with_cameras(d, scenario.net))
        text = derivation_toml(d, str(scenario.net))
    except SimError as exc:
        return _fail(exc)
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    site = d.site
    cams = len(d.site_dict.get("cameras", []))
    print(
        f"{out}: signal {tls}: {d.phasing}, {len(site.phases)} phases, "
        f"{len(site.channels)} channels, {len(site.detectors)} detectors"
        + (f", {cams} cameras" if cams else "")
    )
    for note in d.notes:
        print(f"  note: {note}")
    return 0


def _summary_line(r: dict[str, Any]) -> str:
    ev = r["ev_mean_delay_s"]
    return (
        f"{r['controller']} seed {r['seed']}: {r['inserted']} in, {r['arrived']} out, "
        f"delay {r['mean_delay_s']} s/veh, travel {r['mean_travel_time_s']} s, "
        f"stops {r['stops_per_vehicle']}, teleports {r['teleports']}, "
        f"EV delay {ev if ev is not None else '-'}; "
        f"{r['simulated_s']:g} s simulated in {r['wall_s']:.1f} s ({r['sim_speedup']}x)"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from sim.sumo.hireslog import HiResRecorder
    from sim.sumo.lockstep import run, write_report
    from sim.sumo.scenarios import resolve

    hires = HiResRecorder(Path(args.hires_log)) if args.hires_log else None
    try:
        scenario = resolve(args.scenario)
        report = run(
            scenario,
            args.controller,
            args.seed,
            args.end,
            step_length_s=args.step_length,
            use_traci=args.traci,
            preemption=args.preemption,
            scale=args.scale,
            hires=hires,
        )
    except SimError as exc:
        return _fail(exc)
    print(_summary_line(report))
    notes = report["notes"]
    for note in notes[:_MAX_NOTES]:
        print(f"  note: {note}")
    if len(notes) > _MAX_NOTES:
        print(f"  ... and {len(notes) - _MAX_NOTES} more notes (all in the report)")
    if args.report:
        write_report(report, Path(args.report))
        print(f"report: {args.report}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sim.sumo.compare import compare, format_table, write_chart

    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    try:
        reports = compare(
            args.scenario, controllers, args.seeds, args.end, jobs=args.jobs, scale=args.scale
        )
    except SimError as exc:
        return _fail(exc)
    print(format_table(reports, controllers))
    write_chart(reports, controllers, Path(args.chart), title=args.scenario)
    print(f"chart: {args.chart}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(reports, indent=2) + "\n")
        print(f"reports: {args.json_out}")
    return 0


def cmd_gen(args: argparse.Namespace) -> int:
    from sim.sumo.derive import derive_all
    from sim.sumo.gen import generate, scenario_name
    from sim.sumo.network import signal_junctions
    from sim.sumo.scenarios import resolve

    if args.suite == (args.family is not None):
        return _fail(SimError("give a FAMILY, or --suite"))
    try:
        if args.suite:
            from sim.sumo.suite import read_spec

            base = Path(args.output or "suite")
            todo = [(e.family, e.seed, e.level, base / e.name) for e in read_spec()]
        else:
            name = scenario_name(args.family, args.seed, args.level)
            todo = [(args.family, args.seed, args.level, Path(args.output or name))]
        for family, seed, level, out in todo:
            folder = generate(family, seed, out, level)
            scenario = resolve(str(folder))  # builds the network with netconvert
            ds = derive_all(signal_junctions(scenario.net))
            meta = json.loads((folder / "scenario.json").read_text())
            print(
                f"{folder}: {meta['signals']} signal(s) ({meta['grid']}), {meta['level']}, "
                f"{meta['shape']}, {meta['profile']}, turning {meta['turning_share']:.0%}, "
                f"{', '.join(sorted({d.phasing for d in ds}))}"
            )
    except SimError as exc:
        return _fail(exc)
    return 0
