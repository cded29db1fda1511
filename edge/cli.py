"""`edge` command line: check a site config, run the demo, run benchmarks.

Rules it keeps:
- A command's module is imported only when that command runs, or for the full
  listing (`edge`, `edge -h`, an unknown command): `edge check` needs pydantic, not
  the network libraries, OpenCV or the simulator.
- No module here imports the developer side (sim/, devtools/): its commands come from
  installed packages' entry points (pyproject.toml). Group `edge.commands`: NAME =
  "module:add", where add(subparsers) registers `edge NAME`; group `edge.sim`: `run` and
  `scenarios`, for `edge run --sim`. The device's package declares none
  (scripts/device-wheel.sh), so there they are absent: typed anyway, a one-line error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import TypeAlias

from edge.config import ConfigError, compatibility_matrix, load_config, load_site
from edge.control.controller import Controller
from edge.control.messages import Lamp, Outputs
from edge.demand import RandomDemand

DESCRIPTION = (__doc__ or "").split("\n", 1)[0]
COMMAND_GROUP = "edge.commands"
SIM_GROUP = "edge.sim"
# What the device answers when a developer command is typed there (it has no entry points).
DEV_TOOLS = {
    "sim": "the simulator is",
    "bench": "the benchmarks are",
    "j2735": "the simulator is",  # `edge j2735 --sim`: frames from a simulated run
}
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


def _print_problems(path: str, what: str, problems: list[str]) -> None:
    print(f"{path}: {len(problems)} problem(s){what}", file=sys.stderr)
    for problem in problems:
        print(f"  {path}: {problem}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    failed = False
    for path in args.config:
        try:
            config = load_config(path)
        except ConfigError as exc:
            failed = True
            _print_problems(path, "", exc.problems)
            continue
        site = config.site
        from edge.board.config import BoardConfigError, board_config

        try:  # the runtime refuses to start a site its IO board cannot take
            board_config(site)
        except BoardConfigError as exc:
            failed = True
            _print_problems(path, " for the IO board", exc.problems)
            continue
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
        from edge.web import LOOPBACK

        if args.web_host is not None and args.web_interface is not None:
            print("edge run: --web-host or --web-interface, not both", file=sys.stderr)
            return 2
        web = WebOptions(
            args.web, host=args.web_host or LOOPBACK, credentials=args.credentials,
            interface=args.web_interface, certfile=args.web_cert, keyfile=args.web_key,
            insecure=args.web_insecure,
        )  # fmt: skip
    if args.sim:
        sim = plugins(SIM_GROUP)
        if "run" not in sim:
            return not_installed("edge run --sim", "sim")
        run_sim = sim["run"].load()
        code: int = run_sim(
            args.sim,
            tls=args.tls,
            speed=args.speed,
            duration_s=args.duration,
            web=web,
            cameras=args.cameras,
            **({"snmp": args.snmp} if args.snmp is not None else {}),
        )
        return code
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
        snmp_port=args.snmp,
    )


def cmd_passwd(args: argparse.Namespace) -> int:
    import getpass

    from edge.credentials import CredentialError, file_owner, load, set_user, weak_users

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("edge passwd: the passwords differ; nothing changed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        owner = file_owner()  # 640 root:edge on a device, where the service reads it
        set_user(args.file, args.user, password, owner=owner)
        weak = weak_users(load(args.file))
    except (CredentialError, OSError) as exc:
        print(f"edge passwd: {exc}; nothing changed", file=sys.stderr)
        return 1
    print(f"edge passwd: {args.user} set in {args.file} (mode {owner.mode:o})")
    if weak:
        print(f"edge passwd: hashed at an older, cheaper cost: {', '.join(weak)}; set "
              "their passwords again", file=sys.stderr)  # fmt: skip
    return 0


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


def plugins(group: str) -> dict[str, EntryPoint]:
    """The installed entry points of `group` by name; loading one imports its module."""
    return {ep.name: ep for ep in entry_points(group=group)}


def not_installed(typed: str, tool: str) -> int:
    what = DEV_TOOLS[tool]
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
    runner = plugins(SIM_GROUP)
    sim = "run" in runner

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
    if "scenarios" in runner:
        scenarios = ", ".join(runner["scenarios"].load()())
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
    p.add_argument(
        "--snmp",
        type=int,
        metavar="PORT",
        help="serve the NTCIP 1202 SNMPv3 agent on this UDP port (its users: the device "
        "file's [snmp]; in simulation, 127.0.0.1 and the README's development user)",
    )
    p.add_argument("--web", type=int, metavar="PORT", help="serve the technician's page here")
    p.add_argument(
        "--web-host",
        metavar="ADDR",
        help="with --web: the address to listen on (default: 127.0.0.1, this device only: "
        "reach it over an SSH tunnel); off loopback it serves TLS only",
    )
    p.add_argument(
        "--web-interface",
        metavar="NAME",
        help="with --web: listen on this interface's address (the cabinet's maintenance "
        "port; or [web] interface in the device file), over TLS",
    )
    p.add_argument(
        "--web-cert",
        metavar="FILE",
        help="with --web: the page's TLS certificate (default off loopback: the device "
        "file's [web] or [broker] certfile, the device's fleet-CA certificate)",
    )
    p.add_argument("--web-key", metavar="FILE", help="with --web-cert: its private key")
    p.add_argument(
        "--web-insecure",
        action="store_true",
        help="with --web: allow clear HTTP off loopback (passwords readable on the wire; "
        "logged as an error at every start)",
    )
    p.add_argument(
        "--credentials",
        help="with --web: technicians' credentials file (edge passwd); none: no manual control",
    )
    p.set_defaults(func=cmd_run)


def _add_status(sub: Subparsers) -> None:
    from edge.device.status import add_status_command

    add_status_command(sub)


def _add_atspm(sub: Subparsers) -> None:
    from edge.atspm.cli import add_atspm_command

    add_atspm_command(sub)


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


def _add_vision(sub: Subparsers) -> None:
    from edge.vision.cli import add_vision_command  # OpenCV, onnxruntime

    add_vision_command(sub)


# The device's commands, in the order `edge -h` lists them (the developer's follow).
COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "check": _add_check,
    "demo": _add_demo,
    "run": _add_run,
    "status": _add_status,
    "passwd": _add_passwd,
    "atspm": _add_atspm,
    "board": _add_board,
    "central": _add_central,
    "vision": _add_vision,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    word = argv[0] if argv else ""
    dev = {name: ep for name, ep in plugins(COMMAND_GROUP).items() if name not in COMMANDS}
    if word in DEV_TOOLS and word not in dev:
        return not_installed(f"edge {word}", word)
    parser = argparse.ArgumentParser(prog="edge", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    if word in COMMANDS:  # only its parser: only its module is imported
        COMMANDS[word](sub)
    elif word in dev:
        dev[word].load()(sub)
    else:
        for add in COMMANDS.values():
            add(sub)
        for name in [*DEV_TOOLS, *sorted(dev.keys() - DEV_TOOLS.keys())]:
            if name in dev:
                dev[name].load()(sub)
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
