"""Where the page listens, and whether in clear: decided once, at start.

The rules:

- By default the page listens on loopback (127.0.0.1): a technician reaches it over an
  SSH tunnel (`ssh -L 8080:localhost:8080 USER@DEVICE`) or at the cabinet itself.
- It may listen on a named interface (the cabinet's maintenance port, `--web-interface`
  or `[web] interface` in device.toml): that interface's IPv4 address is resolved at
  start; an interface without one is a start-up error naming it.
- On any address but loopback it serves TLS only (a device certificate and key: the
  `[web]` certfile/keyfile of device.toml, else the device's fleet-CA certificate of
  `[broker]`, or `--web-cert`/`--web-key`), TLS 1.2 or later. Without one it refuses
  to start, unless `--web-insecure` says otherwise: then every start logs, at error
  level, that passwords and session cookies cross the network in clear.
- device.toml's `[web]` has one reader, `web_table` (the page's start and the device
  file's loader, edge/link/config.py, both use it): `interface`, `certfile`, `keyfile`
  and nothing else; a bad value is an error naming the file, the key and the value.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge.web import LOOPBACK

log = logging.getLogger(__name__)

SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


class ListenError(ValueError):
    """The page cannot listen as asked: what and why."""


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    tls: ssl.SSLContext | None  # None: clear HTTP (loopback, or chosen insecure)
    insecure: bool = False  # clear HTTP off loopback, chosen


@dataclass(frozen=True, slots=True)
class WebTable:
    """device.toml's `[web]`: paths as written (relative to the file)."""

    interface: str | None = None
    certfile: str | None = None  # with no keyfile: one PEM file holding both
    keyfile: str | None = None


WEB_KEYS = ("interface", "certfile", "keyfile")


def _interface_name_problem(name: str) -> str | None:
    if not name or len(name) > 15 or "/" in name or any(c.isspace() for c in name):
        return "a network interface name (1-15 characters, no '/' or spaces)"
    return None


def web_table(table: object, where: str) -> WebTable:
    """`[web]` of the device file `where`, checked; ListenError naming the key if bad."""
    if table is None:
        return WebTable()
    if not isinstance(table, Mapping):
        raise ListenError(f"{where}: [web] must be a table, not {table!r}")
    unknown = set(table) - set(WEB_KEYS)
    if unknown:
        raise ListenError(
            f"{where} [web]: unknown keys {sorted(unknown)} (known: {', '.join(WEB_KEYS)})"
        )
    for key in WEB_KEYS:
        v = table.get(key)
        if v is not None and (not isinstance(v, str) or not v):
            raise ListenError(f"{where} [web]: {key} must be a non-empty string, not {v!r}")
    interface = table.get("interface")
    if interface is not None and (problem := _interface_name_problem(interface)):
        raise ListenError(f"{where} [web]: interface must be {problem}, not {interface!r}")
    if table.get("keyfile") is not None and table.get("certfile") is None:
        raise ListenError(f"{where} [web]: keyfile needs the certfile it is the key of")
    return WebTable(interface, table.get("certfile"), table.get("keyfile"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def interface_address(name: str) -> str:
    """The IPv4 address of network interface `name`; ListenError if none."""
    import socket

    if _interface_name_problem(name):
        raise ListenError(f"{name!r} is not a network interface name")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()))
        except OSError as exc:
            raise ListenError(
                f"interface {name}: no IPv4 address to listen on ({exc.strerror or exc})"
            ) from None
    return socket.inet_ntoa(packed[20:24])


def tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server context with the device's certificate: TLS 1.2 or later. Without
    `keyfile` the key is in `certfile` (a renewed pair, edge/device/certs.py)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        with_key = f"the key {keyfile}" if keyfile else "its key in the same file (none given)"
        raise ListenError(f"cannot use the certificate {certfile} with {with_key}: {exc}") from None
    _warn_if_not_for_servers(certfile)
    return ctx


def _warn_if_not_for_servers(certfile: str) -> None:
    """A client-only certificate (the MQTT one issued for clientAuth) serves TLS, but a
    browser that checks its purpose refuses it: say so at start."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        cert = x509.load_pem_x509_certificate(Path(certfile).read_bytes())
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return
    if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        log.warning(
            "web_certificate_client_only file=%s: the certificate is for clients only "
            "(no serverAuth): browsers will refuse it; issue the device one with serverAuth "
            "and its maintenance address in subjectAltName (flash.sh --maintenance-address)",
            certfile,
        )


def decide(
    host: str | None = None,
    interface: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    insecure: bool = False,
) -> Listen:
    """Where and how the page listens, by the rules above; ListenError if it may not."""
    if host is not None and interface is not None:
        raise ListenError("give an address or an interface to listen on, not both")
    addr = interface_address(interface) if interface is not None else (host or LOOPBACK)
    if certfile is None and keyfile is not None:
        raise ListenError("a TLS key needs its certificate")
    tls = tls_context(certfile, keyfile) if certfile else None
    if tls is None and not is_loopback(addr):
        where = f"interface {interface} ({addr})" if interface else addr
        if not insecure:
            raise ListenError(
                f"the page would serve {where} in clear: passwords and session cookies would "
                "cross the network readable. Give it the device's certificate and key "
                "(--web-cert/--web-key, or [web]/[broker] certfile and keyfile in "
                "device.toml), listen on loopback and use an SSH tunnel, or accept the "
                "risk with --web-insecure"
            )
        return Listen(addr, None, insecure=True)
    return Listen(addr, tls)
