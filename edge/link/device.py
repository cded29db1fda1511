"""The link harness: `edge run`'s own runtime (edge/runtime.py) and central link
(edge/device/central.py), built as `edge run --device DEVICE.toml` builds them, with
scripted traffic (edge/demand.py) on the detectors in place of the IO board's loops.

So the link tests and `edge bench link` exercise the path the field runs: the same
control tick, spool, store-error handling, acks and clean stop. What differs is
only where detector calls come from and, by default, that no IO board is attached:
the board link retries its port as it does with the board unplugged, and the
controller steps on regardless (the lamps are not the subject here). `--port`
names a board to drive (e.g. the virtual board's pty).

    python -m edge.link.device DEVICE.toml [--duration S] [--port DEV] [-v]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Sequence

from edge.assemble import site_extensions
from edge.config import load_config
from edge.control.controller import Controller
from edge.control.messages import Inputs, Outputs
from edge.demand import RandomDemand
from edge.device.central import Central, CentralLink
from edge.link.client import LinkClient
from edge.link.config import DeviceConfig, load_device_config
from edge.link.messages import EmergencyPriorityRequest, TransitPriorityRequest
from edge.link.session import DeviceSession
from edge.runtime import Runtime, install_signals
from edge.store import Store

log = logging.getLogger(__name__)

STEP_MS = 100
NO_BOARD = "/dev/null/no-board"  # a path under a file can never exist: no board attached


class DeviceRuntime:
    """One device: the runtime, its central link, and scripted detector traffic."""

    @property
    def link(self) -> CentralLink:
        """The central link of the latest start (or the one built ahead of the first)."""
        link = self.central.link
        assert link is not None
        return link

    def __init__(self, cfg: DeviceConfig, port: str = NO_BOARD) -> None:
        self.cfg = cfg
        config = load_config(str(cfg.site_path))
        self.central = Central(cfg)
        self.runtime = Runtime(config, port, extensions=[self.central, *site_extensions(config)])
        self.central.prepare()  # built here: the accessors below use it; a restart builds anew
        self.demand = RandomDemand(config.site, seed=cfg.demand_seed, veh_per_hour=cfg.veh_per_hour)
        self._k = 0
        driver = self.runtime.driver
        cameras = driver.sense  # a site with cameras keeps them; the traffic adds the loops

        def sense(inputs: Inputs, last: Outputs | None) -> Inputs:
            if cameras is not None:
                inputs = cameras(inputs, last)
            scripted = self.demand.inputs(self._k * STEP_MS, STEP_MS, last)
            self._k += 1
            return dataclasses.replace(inputs, occupied=inputs.occupied | scripted.occupied)

        driver.sense = sense

    async def run(self, duration_s: float | None = None) -> int:
        """Run until `duration_s`, a stop or an error; the runtime's exit code."""
        if duration_s is not None:
            asyncio.get_running_loop().call_later(duration_s, self.runtime.request_stop, "duration")
        return await self.runtime.run()

    @property
    def stopping(self) -> bool:
        return self.runtime.stopping.is_set()

    @stopping.setter
    def stopping(self, value: bool) -> None:
        if value:
            self.runtime.request_stop("harness stop")

    # -- views the tests and the bench read ------------------------------------------------

    @property
    def ctl(self) -> Controller:
        return self.runtime.driver.controller

    @property
    def ticks(self) -> int:
        return self.runtime.ticks

    @property
    def config_hash(self) -> str:
        return self.link.config_hash

    @property
    def plan_version(self) -> int:
        return self.link.plan_version

    @property
    def client(self) -> LinkClient:
        return self.link.client

    @property
    def store(self) -> Store:
        return self.link.store

    @property
    def session(self) -> DeviceSession:
        return self.link.session

    @property
    def priority(self) -> dict[str, EmergencyPriorityRequest | TransitPriorityRequest]:
        return self.link.book.requests

    @property
    def preempting(self) -> set[int]:
        return self.link.book.preempting

    async def on_message(self, leaf: str, payload: bytes, correlation: bytes | None) -> None:
        await self.link.on_message(leaf, payload, correlation)

    def close(self) -> None:
        """Release the store of a runtime that never ran (run() closes it itself)."""
        self.link.db.shutdown(wait=True)
        self.link.store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.link.device", description=__doc__)
    parser.add_argument("config", help="the device file (device.toml)")
    parser.add_argument("--duration", type=float, default=None, help="seconds; default: forever")
    parser.add_argument(
        "--port", default=NO_BOARD, help="the IO board's serial port; default: no board"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        cfg = load_device_config(args.config)
        rt = DeviceRuntime(cfg, args.port)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1

    async def go() -> int:
        install_signals(rt.runtime)
        return await rt.run(args.duration)

    return asyncio.run(go())


if __name__ == "__main__":
    raise SystemExit(main())
