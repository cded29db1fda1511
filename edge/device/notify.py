"""sd_notify: tell systemd the service is ready, alive (the watchdog) or stopping.

The protocol is one datagram to the AF_UNIX socket named in $NOTIFY_SOCKET (a
leading '@' means the abstract namespace). It is a few lines, so it is written
here rather than taken from a library: the PyPI `sdnotify` package has had no
release since 2017, and `systemd-python` needs libsystemd's headers and a C
build inside the Pi's virtual environment for this one call.

The watchdog is fed only while the control tick advances: `Watchdog` is a
runtime extension (edge/extensions.py) whose task sends READY=1 after the first
control ticks and then WATCHDOG=1 every half WatchdogSec *if* the tick count moved
since the last feed. A hung ticker (or a hung event loop, which stops this task too) starves
systemd's watchdog, which kills the process (SIGABRT) and restarts it; the IO
board meanwhile flashes on its own watchdog.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from edge.extensions import Extension

if TYPE_CHECKING:
    from edge.runtime import Runtime

log = logging.getLogger(__name__)


def notify(state: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not run by systemd."""
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("sd_notify_failed state=%s error=%r", state.split("=")[0], exc)
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str] = os.environ) -> float | None:
    """Half of WatchdogSec (how often to feed), or None when no watchdog is armed for us."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


class Ticking(Protocol):
    ticks: int


class Watchdog(Extension):
    """READY once the control tick runs, WATCHDOG=1 only while it keeps ticking. Its
    task's failure is the runtime's own (no restart), as before it was an extension."""

    name = "watchdog"
    restarts = False

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.rt: Ticking | None = None
        self.env = env
        self.every_s = watchdog_interval_s(env) or 1.0
        self.armed = watchdog_interval_s(env) is not None
        self.ready = False
        self.fed = 0
        self.withheld = 0

    def check(self, ticks: int, last_ticks: int) -> bool:
        """One check: feed if the tick moved. Returns whether it fed."""
        if ticks <= last_ticks:
            self.withheld += 1
            log.error("watchdog_withheld ticks=%d: the control tick is not advancing", ticks)
            return False
        if not self.ready:
            self.ready = True
            notify("READY=1\nSTATUS=control tick running", self.env)
            log.info("sd_notify_ready ticks=%d watchdog_s=%s", ticks, self.every_s * 2)
        if self.armed:
            notify("WATCHDOG=1", self.env)
            self.fed += 1
        return True

    def start(self, rt: Runtime) -> None:
        self.rt = rt

    async def run(self) -> None:
        """A runtime task: runs until cancelled by the runtime's shutdown."""
        rt = self.rt
        assert rt is not None, "Watchdog.start comes first"
        last = 0
        while True:
            await asyncio.sleep(min(self.every_s, 1.0) if not self.ready else self.every_s)
            if self.check(rt.ticks, last):
                last = rt.ticks
