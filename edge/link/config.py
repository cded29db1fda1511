"""The device's link configuration (a small TOML file), validated once at start.

The device file (flash.sh's device.toml) has other readers' tables too: `[web]` is
checked here by the page's own reader (edge/web/listen.py web_table), so a file the
page starts with is one the link starts with; `[snmp]` and `[j2735]` are read and
checked by their parts (edge/ntcip/settings.py, edge/j2735/device.py)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.link.client import BrokerConfig
from edge.link.topics import DEVICE_ID_RE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Device(_Strict):
    id: Annotated[str, Field(pattern=DEVICE_ID_RE.pattern)]
    site: str
    store: str
    trusted_keys: Annotated[list[str], Field(min_length=1)]
    # central's standby key and the offline root key that moves the device to it
    # (edge/link/keyring.py); the state rollovers make is kept next to the store
    standby_keys: list[str] = []
    root_key: str | None = None


class _Broker(_Strict):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    crlfile: str | None = None
    # where the device keeps the key it makes and the certificate central signs for it
    # (edge/device/certs.py); without it the device asks for no renewal
    renew_dir: str | None = None
    # central's single-use enrolment token for the device's first certificate
    # (edge/device/enrol.py); given instead of certfile/keyfile
    enrol_token: str | None = None
    # the broker's bootstrap listener (TLS, no client certificate) that carries it
    enrol_port: Annotated[int, Field(ge=1, le=65535)] = 8884
    keepalive_s: Annotated[int, Field(ge=5, le=600)] = 20
    backoff_min_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    # a clustered broker's other nodes, tried in turn after a failed connect
    alternates: list[Annotated[str, Field(pattern=r"^[^\s:]+:[0-9]{1,5}$")]] = []
    protocol: Literal["auto", "5", "3.1.1"] = "auto"

    @model_validator(mode="after")
    def _alternates(self) -> _Broker:
        for a in self.alternates:
            if not 1 <= int(a.rsplit(":", 1)[1]) <= 65535:
                raise ValueError(f"alternates: {a!r}: the port must be 1-65535")
        return self

    @model_validator(mode="after")
    def _enrolment(self) -> _Broker:
        if self.enrol_token is None:
            return self
        if self.cafile is None or self.renew_dir is None:
            raise ValueError(
                "enrol_token needs cafile (the bootstrap connection checks the broker's "
                "certificate) and renew_dir (where the device keeps the key it makes)"
            )
        return self

    @model_validator(mode="after")
    def _backoff_order(self) -> _Broker:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError(
                f"backoff_min_s {self.backoff_min_s} is above backoff_max_s {self.backoff_max_s}"
            )
        return self


class _Link(_Strict):
    counts_interval_s: Annotated[float, Field(ge=1, le=3600)] = 60.0
    events_flush_s: Annotated[float, Field(ge=0.1, le=60)] = 1.0
    spat_hz: Annotated[float, Field(ge=0, le=10)] = 10.0
    backup_s: Annotated[float, Field(ge=1, le=86400)] = 300.0
    max_spool_rows: Annotated[int, Field(ge=10)] = 200_000


class _Demand(_Strict):
    seed: int = 1
    veh_per_hour: Annotated[float, Field(ge=0, le=5000)] = 400.0


class _File(_Strict):
    device: _Device
    broker: _Broker
    link: _Link = _Link()
    demand: _Demand = _Demand()
    j2735: dict[str, Any] | None = None  # read and checked by edge/j2735/device.py
    snmp: dict[str, Any] | None = None  # read and checked by edge/ntcip/settings.py
    web: dict[str, Any] | None = None  # checked below by the page's reader


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    device: str
    site_path: Path
    store_path: Path
    trusted_keys: tuple[Path, ...]
    broker: BrokerConfig
    standby_keys: tuple[Path, ...] = ()
    root_key: Path | None = None
    renew_dir: Path | None = None
    enrol_token: Path | None = None
    enrol_port: int = 8884
    counts_interval_ms: int = 60_000
    events_flush_ms: int = 1000
    spat_hz: float = 10.0
    backup_ms: int = 300_000
    max_spool_rows: int = 200_000
    demand_seed: int = 1
    veh_per_hour: float = 400.0


def load_device_config(path: str | Path) -> DeviceConfig:
    """Read the device TOML; relative paths are relative to the file. ValueError on problems."""
    path = Path(path)
    base = path.parent
    try:
        cfg = _File.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc']))}: "
            + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()
        ]
        raise ValueError(f"{path}: " + "; ".join(problems)) from None
    from edge.web.listen import web_table  # ListenError is a ValueError

    web_table(cfg.web, str(path))

    def rel(p: str | None) -> str | None:
        return None if p is None else str(base / p)

    b = cfg.broker
    return DeviceConfig(
        device=cfg.device.id,
        site_path=base / cfg.device.site,
        store_path=base / cfg.device.store,
        trusted_keys=tuple(base / k for k in cfg.device.trusted_keys),
        standby_keys=tuple(base / k for k in cfg.device.standby_keys),
        root_key=base / cfg.device.root_key if cfg.device.root_key else None,
        renew_dir=base / b.renew_dir if b.renew_dir else None,
        enrol_token=base / b.enrol_token if b.enrol_token else None,
        enrol_port=b.enrol_port,
        broker=BrokerConfig(
            b.host,
            b.port,
            rel(b.cafile),
            rel(b.certfile),
            rel(b.keyfile),
            crlfile=rel(b.crlfile),
            renewed=rel(f"{b.renew_dir}/client.pem") if b.renew_dir else None,
            keepalive_s=b.keepalive_s,
            backoff_min_s=b.backoff_min_s,
            backoff_max_s=b.backoff_max_s,
            alternates=tuple((a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in b.alternates),
            protocol=b.protocol,
        ),
        counts_interval_ms=round(cfg.link.counts_interval_s * 1000),
        events_flush_ms=round(cfg.link.events_flush_s * 1000),
        spat_hz=cfg.link.spat_hz,
        backup_ms=round(cfg.link.backup_s * 1000),
        max_spool_rows=cfg.link.max_spool_rows,
        demand_seed=cfg.demand.seed,
        veh_per_hour=cfg.demand.veh_per_hour,
    )
