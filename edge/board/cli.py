"""`edge board ...` subcommands; edge/cli.py registers them with add_board_command()."""

from __future__ import annotations

import argparse
import logging
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def cmd_board_run(args: argparse.Namespace) -> int:
    from edge.board.runner import run_board

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    return run_board(args.config, args.port, baudrate=args.baud, trace_path=args.trace)


def add_board_command(sub: Any) -> None:
    """Add `board run` to the top-level subparsers `sub`."""
    p = sub.add_parser("board", help="drive the IO board over a serial port")
    board_sub = p.add_subparsers(dest="board_command", required=True)
    q = board_sub.add_parser(
        "run",
        help="run the controller through the IO board (exit 3 if the board is refused)",
        description="Steps the controller at 10 Hz and drives the board on PORT; reconnects "
        "when the port goes away; recovers from power-on and watchdog flash through all red.",
    )
    q.add_argument("--config", required=True, help="site TOML")
    q.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyACM0 or a pty")
    q.add_argument(
        "--baud", type=int, default=115200, help="serial line speed (USB CDC ignores it)"
    )
    q.add_argument("--trace", help="write every OUTPUTS sent (wanted and sent map) as JSON lines")
    q.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least severe log lines shown",
    )
    q.set_defaults(func=cmd_board_run)
