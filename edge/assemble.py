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
- `web` (edge/web/server.py): the technician's page, with `--web PORT`; where it
  listens and its TLS certificate come from the options and device.toml's `[web]`
  (edge/web/listen.py has the rules); its socket is bound here, so a port in use, an
  interface without an address or clear HTTP off loopback is a start-up error;
- `watchdog` (edge/device/notify.py): under systemd (NOTIFY_SOCKET);
- `ntcip` (edge/ntcip/agent.py): the NTCIP 1202 SNMPv3 agent, when the device file has
  an `[snmp]` table (its users' file, sets off unless `sets = true`); `--snmp PORT`
  moves its port. Its socket is bound here: a port in use is a start-up error.

What cannot be built is a `SetupError` naming the file or option and why. The runtime
never imports this module's parts (nor they the runtime, but for types).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edge.config import SiteConfig
from edge.extensions import Extension
from edge.web import LOOPBACK

if TYPE_CHECKING:
    from edge.runtime import WebOptions
    from edge.web.listen import Listen


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
    snmp_port: int | None = None,
) -> list[Extension]:
    """`edge run`'s extensions, in the order their tasks start."""
    out: list[Extension] = []
    if device_path is not None or snmp_port is not None:
        out += snmp_extensions(device_path, snmp_port)
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
        from edge.web.listen import ListenError
        from edge.web.server import WebError, WebPage

        try:
            listen = web_listen(web, device_path)
            page = WebPage(
                web.port, host=listen.host, credentials_path=web.credentials,
                tls=listen.tls, insecure=listen.insecure,
            )  # fmt: skip
            out.append(page)
        except (WebError, ListenError) as exc:
            raise SetupError(f"technician page: {exc}") from exc
    return out


def snmp_extensions(device_path: str | None, port: int | None) -> list[Extension]:
    """The NTCIP agent from device.toml's `[snmp]` (`port` moves it); none without one."""
    from edge.ntcip.settings import SnmpConfigError, load_settings

    try:
        settings = load_settings(device_path) if device_path is not None else None
    except SnmpConfigError as exc:
        raise SetupError(str(exc)) from exc
    if settings is None:
        if port is not None:
            raise SetupError("--snmp needs the device file's [snmp] table (its SNMPv3 users)")
        return []
    if port is not None:
        settings = dataclasses.replace(settings, port=port)
    from edge.ntcip.agent import NtcipAgent, SnmpBindError

    try:
        return [NtcipAgent(settings)]
    except SnmpBindError as exc:
        raise SetupError(str(exc)) from exc


def web_listen(web: WebOptions, device_path: str | None) -> Listen:
    """Where the page listens, from the options and device.toml's `[web]` table
    (`interface`, `certfile`, `keyfile`, checked by listen.web_table; the options win),
    with `[broker]`'s device certificate for TLS when it listens off loopback and names
    none of its own: the renewed pair once it outlasts the provisioned one, and of the
    two the latest that serves (serverAuth) when one does (edge/device/certs.py)."""
    from edge.device.certs import LIVE, page_pair
    from edge.web.listen import ListenError, WebTable, decide, is_loopback, web_table

    table = WebTable()
    broker: dict[str, object] = {}
    base = Path(".")
    if device_path is not None:
        base = Path(device_path).resolve().parent
        try:
            raw = tomllib.loads(Path(device_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ListenError(f"{device_path}: {exc}") from None
        table, broker = web_table(raw.get("web"), device_path), raw.get("broker", {})
        if not isinstance(broker, dict):
            raise ListenError(f"{device_path}: [broker] must be a table")

    def path(v: object, key: str) -> str | None:
        if v is None:
            return None
        if not isinstance(v, str):
            raise ListenError(f"{device_path} [broker]: {key} must be a file name, not {v!r}")
        return str(base / v)

    interface = web.interface
    if interface is None and web.host == LOOPBACK:  # an address on the command line wins
        interface = table.interface
    cert = web.certfile or path(table.certfile, "certfile")
    key = web.keyfile or (path(table.keyfile, "keyfile") if not web.certfile else None)
    host = None if interface is not None else web.host
    if cert is None and key is None and not (host is not None and is_loopback(host)):
        # the fleet-CA one of [broker]: the provisioned pair, or the one enrolled
        cert, key = path(broker.get("certfile"), "certfile"), path(broker.get("keyfile"), "keyfile")
        renew = path(broker.get("renew_dir"), "renew_dir")
        if cert is not None and renew is not None:
            cert, key = page_pair((cert, key), Path(renew))
        elif renew is not None and (Path(renew) / LIVE).is_file():
            cert, key = str(Path(renew) / LIVE), None  # enrolled: the key in the same file
        elif renew is not None and broker.get("enrol_token") is not None:
            # no certificate before the first boot's enrolment, which the runtime does:
            # refusing to start here would keep the device from ever enrolling
            logging.getLogger(__name__).error(
                "web_waits_for_enrolment: the page has no certificate until this device "
                "is enrolled; it listens on %s until a restart after enrolment",
                LOOPBACK,
            )
            return decide(LOOPBACK)
    return decide(host, interface, cert, key, insecure=web.insecure)
