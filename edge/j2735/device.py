"""The `j2735` extension: SPaT (10 Hz) and MAP (1 Hz) to a roadside unit and over MQTT.

Configured by the device file's `[j2735]` table (flash.sh's device.toml):

    [j2735]
    rsu = "192.0.2.10:1516"   # UDP: each datagram one UPER MessageFrame (optional)
    mqtt = true               # also on edge/v1/<device>/j2735 with the central link

The rules it keeps (edge/extensions.py's for a tick extension, and):
- The control tick only hands its snapshot to the `j2735` tick hook; the hook's thread
  builds and encodes the frames (edge/j2735/publisher.py) and sends them: UDP with a
  non-blocking socket (a full buffer or an unreachable unit drops that frame, counted),
  MQTT by handing the frame to the central link's loop (QoS 0, dropped while
  disconnected). Nothing here can delay or stop the tick.
- Times are the controller's clock plus the runtime's UTC offset taken once at start.
- The geometry is the site file's [map] table; without one only SPaT is sent (said once
  in the log and in the status).
- Status: `j2735` in the runtime's status (frames sent, send errors, dropped ticks).
"""

from __future__ import annotations

import logging
import socket
import time
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.extensions import Extension
from edge.j2735.mapdata import Geometry
from edge.j2735.publisher import Publisher

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick

log = logging.getLogger(__name__)

LEAF = "j2735"  # edge/link/topics.py


@dataclass(frozen=True, slots=True)
class J2735Config:
    rsu: tuple[str, int] | None = None
    mqtt: bool = True


def parse_rsu(text: str, where: str = "rsu") -> tuple[str, int]:
    """'host:port' (an IPv6 host in brackets) as (host, port); ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{where} {text!r}: give HOST:PORT, the port 1..65535")
    return host, int(port)


def load_j2735(device_toml: str) -> J2735Config | None:
    """The device file's [j2735] table; None when it has none (nothing is sent)."""
    try:
        with open(device_toml, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{device_toml}: {exc}") from None
    table = raw.get("j2735")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ValueError(f"{device_toml}: [j2735] must be a table")
    unknown = set(table) - {"rsu", "mqtt"}
    if unknown:
        raise ValueError(f"{device_toml}: [j2735]: unknown keys {sorted(unknown)} (rsu, mqtt)")
    rsu = table.get("rsu")
    if rsu is not None and not isinstance(rsu, str):
        raise ValueError(f"{device_toml}: [j2735] rsu: give a string HOST:PORT")
    mqtt = table.get("mqtt", True)
    if not isinstance(mqtt, bool):
        raise ValueError(f"{device_toml}: [j2735] mqtt: true or false")
    return J2735Config(
        parse_rsu(rsu, f"{device_toml}: [j2735] rsu") if rsu is not None else None, mqtt
    )


class J2735(Extension):
    name = "j2735"
    ticks = True

    def __init__(self, cfg: J2735Config, geometry: Geometry | None) -> None:
        self.cfg = cfg
        self.geometry = geometry
        self.rt: Runtime | None = None
        self.publisher: Publisher | None = None
        self.sock: socket.socket | None = None
        self.rsu: tuple[str, int] | None = None
        self.sent_udp = 0
        self.sent_mqtt = 0
        self.udp_errors = 0
        self.dropped_ticks = 0
        self._error_logged = False

    def start(self, rt: Runtime) -> None:
        self.rt = rt
        utc0 = time.time_ns() // 1_000_000 - rt.board.clock_ms()
        self.publisher = Publisher(rt.site, self.geometry, utc0)  # compiles the codec
        if self.geometry is None:
            log.warning("j2735_no_map: the site file has no [map] table; SPaT only")
        if self.cfg.rsu is not None:
            host, port = self.cfg.rsu
            try:
                info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            except OSError as exc:
                raise ValueError(f"j2735 rsu {host}:{port}: {exc}") from None
            self.sock = socket.socket(info[0], socket.SOCK_DGRAM)
            self.sock.setblocking(False)
            self.rsu = (str(info[4][0]), int(info[4][1]))

    def on_tick(self, tick: Tick) -> None:
        if tick.outputs is None or self.publisher is None:
            return
        for frame in self.publisher.step(tick.outputs, tick.ped_ends):
            self._send(frame)

    def _send(self, frame: bytes) -> None:
        if self.sock is not None and self.rsu is not None:
            try:
                self.sock.sendto(frame, self.rsu)
                self.sent_udp += 1
            except OSError as exc:  # a full buffer, an unreachable unit: this frame is lost
                self.udp_errors += 1
                if not self._error_logged:
                    log.warning("j2735_udp_failed rsu=%s error=%r (counted, not repeated)",
                                self.rsu, exc)  # fmt: skip
                    self._error_logged = True
        if self.cfg.mqtt and self.rt is not None:
            publish = getattr(self.rt.link, "publish_soon", None)
            if publish is not None and publish(LEAF, frame):
                self.sent_mqtt += 1

    def ticks_dropped(self, ticks: int) -> None:
        self.dropped_ticks += ticks

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def status_fields(self) -> dict[str, Any]:
        return {
            "j2735": {
                "rsu": f"{self.rsu[0]}:{self.rsu[1]}" if self.rsu else None,
                "map": self.geometry is not None,
                "sent_udp": self.sent_udp,
                "sent_mqtt": self.sent_mqtt,
                "udp_errors": self.udp_errors,
                "dropped_ticks": self.dropped_ticks,
            }
        }
