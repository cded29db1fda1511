"""The one place that builds `edge run`'s extensions (edge/extensions.py).

From the site configuration, flash.sh's device file and the command line:

- `central` (edge/device/central.py): the MQTT link, when the device file names a
  broker; it keeps the event log in its store;
- `event-log` (edge/device/eventlog.py): the controller's events into the device
  store, when the device file names one and no broker (the link keeps it otherwise);
- `hires-log` (edge/atspm/device.py): the ATSPM hi-res event log beside the device
  store (hires.sqlite), when the device file names a store;
- `j2735` (edge/j2735/device.py): J2735 SPaT and MAP to a roadside unit (UDP) and over
  the central link, when the device file has a [j2735] table (MAP from the site's [map]);
- `vision` (edge/vision/sensing.py): the cameras, when the site has some;
- `web` (edge/web/server.py): the technician's page, with `--web PORT`; its socket is
  bound here, so a port in use is a start-up error;
- `watchdog` (edge/device/notify.py): under systemd (NOTIFY_SOCKET).

What cannot be built is a `SetupError` naming the file or option and why. The runtime
never imports this module's parts (nor they the runtime, but for types).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from edge.config import SiteConfig
from edge.extensions import Extension

if TYPE_CHECKING:
    from edge.runtime import WebOptions


class SetupError(ValueError):
    """An extension cannot be built: what and where."""


def site_extensions(config: SiteConfig) -> list[Extension]:
    """What the site itself asks for: its cameras (none without a [vision] table)."""
    if config.vision is None:
        return []
    from edge.vision.sensing import Cameras  # OpenCV, onnxruntime: only with cameras

    return [Cameras(config.vision)]


def edge_run_extensions(
    config: SiteConfig,
    device_path: str | None = None,
    web: WebOptions | None = None,
    env: Mapping[str, str] = os.environ,
) -> list[Extension]:
    """`edge run`'s extensions, in the order their tasks start."""
    out: list[Extension] = []
    if device_path is not None:
        from edge.device.central import Central, load_central
        from edge.device.eventlog import EventLogExtension, device_store

        try:
            link_cfg = load_central(device_path)
            device_db = device_store(device_path)
            # without a central link the event log is still kept (central's link keeps it too)
            store = device_db if link_cfg is None else None
        except (ValueError, OSError) as exc:
            raise SetupError(f"{device_path}: {exc}") from exc
        if link_cfg is not None:
            out.append(Central(link_cfg))
        if store is not None:
            out.append(EventLogExtension(store))
        if device_db is not None:
            from edge.atspm.device import HiResLog, hires_path

            out.append(HiResLog(hires_path(device_db)))
        from edge.j2735.device import J2735, load_j2735

        try:
            j2735 = load_j2735(device_path)
        except ValueError as exc:
            raise SetupError(str(exc)) from exc
        if j2735 is not None:
            out.append(J2735(j2735, config.map))
    if env.get("NOTIFY_SOCKET"):
        from edge.device.notify import Watchdog

        out.append(Watchdog(env))
    out += site_extensions(config)
    if web is not None:
        from edge.web.server import WebError, WebPage

        try:
            out.append(WebPage(web.port, host=web.host, credentials_path=web.credentials))
        except WebError as exc:
            raise SetupError(str(exc)) from exc
    return out
