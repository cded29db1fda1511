"""`edge` command line: check a site config, run the demo, run benchmarks.

Rules it keeps:
- A command's module is imported only when that command runs, or for the full
  listing (`edge`, `edge -h`, an unknown command): `edge check` needs pydantic, not
  the network libraries, OpenCV or the simulator.
- The developer tools (`edge sim`, `edge bench`, `edge run --sim`) are offered only
  where their modules are installed. The device's package leaves them out
  (deploy/device-exclude.txt); typed there anyway, they are a one-line error.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeAlias

from edge.config import ConfigError, compatibility_matrix, load_config, load_site
from edge.control.controller import Controller
from edge.control.messages import Lamp, Outputs
from edge.demand import RandomDemand

DESCRIPTION = (__doc__ or "").split("\n", 1)[0]
# The developer-only commands: the module each needs, and what it is (for the error).
DEV_TOOLS = {"sim": ("sim", "the simulator is"), "bench": ("edge.bench", "the benchmarks are")}
STEP_MS = 100

_LAMP_CHAR = {
    Lamp.DARK: " ",
    Lamp.RED: "r",
    Lamp.YELLOW: "Y",
    Lamp.GREEN: "G",
    Lamp.FLASH_RED: "f",
    Lamp.FLASH_YELLOW: "F",
}
_PED_CHAR = {Lamp.DARK: " ", Lamp.RED: ".", Lamp.GREEN: "W", Lamp.FLASH_RED: "d"}
_COLOUR = {"G": "\033[32m", "Y": "\033[33m", "r": "\033[31m", "F": "\033[33m", "f": "\033[31m"}


def cmd_check(args: argparse.Namespace) -> int:
    failed = False
    for path in args.config:
        try:
            config = load_config(path)
        except ConfigError as exc:
            failed = True
            print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {path}: {problem}", file=sys.stderr)
            continue
        site = config.site
        print(
            f"{path}: OK: site {site.id!r}, {len(site.phases)} phases, "
            f"{len(site.overlaps)} overlaps, {len(site.channels)} channels, "
            f"{len(site.detectors)} detectors, plans {', '.join(sorted(site.plans))}"
        )
        if config.warnings:  # advice: the site still runs, and the exit status stays 0
            print(f"{path}: {len(config.warnings)} warning(s)", file=sys.stderr)
            for warning in config.warnings:
                print(f"  {path}: {warning}", file=sys.stderr)
        if args.matrix:
            print(compatibility_matrix(site))
    return 1 if failed else 0


def _status_line(site_phases: Sequence[int], out: Outputs, colour: bool) -> str:
    cells = []
    for pid, lamp, ped in zip(site_phases, out.phases, out.peds, strict=True):
        ch = _LAMP_CHAR[lamp]
        text = f"{pid}{ch}{_PED_CHAR[ped]}"
        if colour and ch in _COLOUR:
            text = f"{_COLOUR[ch]}{text}\033[0m"
        cells.append(text)
    return " ".join(cells)


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        site = load_site(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    ctl = Controller(site, now_ms=0)
    demand = RandomDemand(site, seed=args.seed, veh_per_hour=args.volume)
    ids = [p.id for p in site.phases]
    colour = sys.stdout.isatty()
    print(f"{site.name or site.id}: {len(ids)} phases, plan {ctl.plan.id}, seed {args.seed}")
    print("each line: time, event; every 5 s the display of each phase:")
    print("  <phase><vehicle r/G/Y/f/F><ped . walk W / clearance d>   queue = vehicles waiting")
    out: Outputs | None = None
    start = time.monotonic()
    end_ms = int(args.duration * 1000)
    shown = {
        "phase_green",
        "gap_out",
        "max_out",
        "force_off",
        "barrier_cross",
        "ped_walk",
        "mode",
        "fault_flash",
        "input_error",
        "command_rejected",
        "plan_applied",
    }
    for now in range(0, end_ms + 1, STEP_MS):
        out = ctl.step(now, demand.inputs(now, STEP_MS, out))
        for ev in out.events:
            if ev.name in shown:
                print(f"  {ev}")
        if now % 5000 == 0:
            queued = sum(demand.queues().values())
            print(f"{now / 1000:9.1f}s | {_status_line(ids, out, colour)} | queue {queued}")
        if args.speed > 0:
            lag = now / 1000 / args.speed - (time.monotonic() - start)
            if lag > 0:
                time.sleep(lag)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge.device.logfmt import setup

    setup(args.log_level, args.log_format)
    web = None
    if args.web is not None:
        from edge.runtime import WebOptions

        web = WebOptions(args.web, host=args.web_host, credentials=args.credentials)
    if args.sim:
        if not installed("sim"):
            return not_installed("edge run --sim", "sim")
        from sim.realtime import run_sim

        return run_sim(
            args.sim,
            tls=args.tls,
            speed=args.speed,
            duration_s=args.duration,
            web=web,
            cameras=args.cameras,
        )
    if not (args.config and args.port):
        print("edge run: --config and --port, or --sim SCENARIO", file=sys.stderr)
        return 2
    from edge.runtime import run_site

    return run_site(
        args.config,
        args.port,
        status_path=args.status_file,
        device_path=args.device,
        status_every_s=args.status_every,
        web=web,
    )


def cmd_passwd(args: argparse.Namespace) -> int:
    import getpass

    from edge.credentials import CredentialError, set_user

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("edge passwd: the passwords differ; nothing changed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        set_user(args.file, args.user, password)
    except (CredentialError, OSError) as exc:
        print(f"edge passwd: {exc}; nothing changed", file=sys.stderr)
        return 1
    print(f"edge passwd: {args.user} set in {args.file}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.bench import run_bench

    return run_bench(args.name, json_out=args.json, quick=args.quick)


class _DefaultsShown(argparse.HelpFormatter):
    """Appends an option's default to its help, unless it is none, off, or already said."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        flag = isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction)
        if flag or default in (None, "", argparse.SUPPRESS) or "default" in text or not text:
            return action.help
        return f"{text} (default: %(default)s)"


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every command's --help shows each option's default (subcommands too)."""
    parser.formatter_class = _DefaultsShown
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                show_defaults(sub)


def installed(module: str) -> bool:
    """Whether `module` can be found, without importing it (its parent packages are)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def not_installed(typed: str, tool: str) -> int:
    what = DEV_TOOLS[tool][1]
    print(
        f"{typed}: {what} not installed on this device; it is a developer tool "
        "(a checkout's `make setup` installs it)",
        file=sys.stderr,
    )
    return 2


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_check(sub: Subparsers) -> None:
    p = sub.add_parser("check", help="validate site configs; print every problem")
    p.add_argument("config", nargs="+", help="site TOML files; every problem of each is printed")
    p.add_argument(
        "--matrix", action="store_true", help="print the conflict matrix (X conflict, o may time)"
    )
    p.set_defaults(func=cmd_check)


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="run the controller on an example with scripted traffic")
    p.add_argument("config", help="site TOML")
    p.add_argument("--seed", type=int, default=1, help="seed of the scripted random arrivals")
    p.add_argument("--duration", type=float, default=600, help="simulated seconds")
    p.add_argument("--speed", type=float, default=10, help="times real time; 0 = flat out")
    p.add_argument("--volume", type=float, default=400, help="vehicles/hour per lane")
    p.set_defaults(func=cmd_demo)


def _add_run(sub: Subparsers) -> None:
    sim = installed("sim")

    def sim_help(text: str) -> str:
        # Without the simulator (the device) the --sim options stay, unlisted: typed
        # anyway, they get cmd_run's clear error rather than "unrecognized arguments".
        return text if sim else argparse.SUPPRESS

    p = sub.add_parser(
        "run",
        help="the device runtime: controller, IO board, schedule, status"
        + (" (or --sim SCENARIO)" if sim else ""),
        description="Runs the site on the IO board at PORT until SIGTERM/SIGINT; on shutdown "
        "or any error the board is handed to flash. Exit 0 on a signal, 1 on an error, 2 on a "
        "bad config, 3 when the board is refused.",
    )
    p.add_argument("--config", help="site TOML")
    p.add_argument("--port", help="serial device, e.g. /dev/ttyACM0 or a pty")
    p.add_argument("--status-file", help="write the status snapshot (JSON) here every 10 s")
    scenarios = ""
    if sim:
        from sim.sumo.scenarios import names

        scenarios = ", ".join(names())
    p.add_argument(
        "--sim",
        metavar="SCENARIO",
        help=sim_help(
            "run against SUMO and a virtual board in real time; SCENARIO is one of "
            f"{scenarios}, or a scenario folder or .sumocfg"
        ),
    )
    p.add_argument("--tls", help=sim_help("with --sim: the SUMO junction (default: the first)"))
    p.add_argument("--speed", type=float, default=1.0, help=sim_help("with --sim: times real time"))
    p.add_argument(
        "--duration", type=float, help=sim_help("with --sim: stop after this many wall s")
    )
    p.add_argument(
        "--cameras",
        action="store_true",
        help=sim_help("with --sim: rendered cameras drive the detectors"),
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least severe log lines shown",
    )
    p.add_argument("--device", help="device.toml from flash.sh: id, store, central link")
    p.add_argument(
        "--status-every", type=float, default=10.0, help="seconds between status lines/snapshots"
    )
    p.add_argument(
        "--log-format",
        default="auto",
        choices=["auto", "kv", "text"],
        help="kv: one key=value line per event (journald); auto: kv under systemd",
    )
    p.add_argument("--web", type=int, metavar="PORT", help="serve the technician's page here")
    p.add_argument(
        "--web-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="with --web: the address to listen on (default: %(default)s, this device only; "
        "the address of the cabinet's technician interface to reach it from a laptop)",
    )
    p.add_argument(
        "--credentials",
        help="with --web: technicians' credentials file (edge passwd); none: no manual control",
    )
    p.set_defaults(func=cmd_run)


def _add_status(sub: Subparsers) -> None:
    from edge.device.status import add_status_command

    add_status_command(sub)


def _add_passwd(sub: Subparsers) -> None:
    p = sub.add_parser(
        "passwd",
        help="set a technician's password for manual control on the local page",
        description="Reads the password from the terminal (twice) or one line of stdin.",
    )
    p.add_argument("user", help="the technician's user name")
    p.add_argument("--file", default="/etc/edge/technicians.json", help="credentials file")
    p.set_defaults(func=cmd_passwd)


def _add_board(sub: Subparsers) -> None:
    from edge.board.cli import add_board_command

    add_board_command(sub)


def _add_central(sub: Subparsers) -> None:
    from edge.link.cli import add_central_command  # aiomqtt

    add_central_command(sub)


def _add_sim(sub: Subparsers) -> None:
    from sim.sumo.cli import add_sim_command

    add_sim_command(sub)


def _add_vision(sub: Subparsers) -> None:
    from edge.vision.cli import add_vision_command  # OpenCV, onnxruntime

    add_vision_command(sub)


def _add_bench(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    p.add_argument(
        "name",
        choices=["control", "board", "link", "vision", "traffic", "preemption", "suite"],
        help="which benchmark",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--quick", action="store_true", help="fewer steps (for smoke tests)")
    p.set_defaults(func=cmd_bench)


# Every command, in the order `edge -h` lists them.
COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "check": _add_check,
    "demo": _add_demo,
    "run": _add_run,
    "status": _add_status,
    "passwd": _add_passwd,
    "board": _add_board,
    "central": _add_central,
    "sim": _add_sim,
    "vision": _add_vision,
    "bench": _add_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    word = argv[0] if argv else ""
    if word in DEV_TOOLS and not installed(DEV_TOOLS[word][0]):
        return not_installed(f"edge {word}", word)
    parser = argparse.ArgumentParser(prog="edge", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    if word in COMMANDS:  # only its parser: only its module is imported
        COMMANDS[word](sub)
    else:
        for name, add in COMMANDS.items():
            if name not in DEV_TOOLS or installed(DEV_TOOLS[name][0]):
                add(sub)
    show_defaults(parser)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
