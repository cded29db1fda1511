"""Scenarios: a name or a path in, a `Scenario` (sumocfg, network, routes, times) out.

SCENARIO may be
- a shipped scenario name (a folder under sim/scenarios: single, tee, arterial),
- hangzhou-1x1 / hangzhou-4x4: the real data in ../shared/data beside the
  repository (never copied into it; EDGE_SIM_DATA overrides the folder),
- a folder holding one .sumocfg, a .sumocfg file, or a bare .net.xml.

Shipped scenarios keep only plain XML sources (.nod/.edg/.con.xml and a
netconvert .netccfg); their .net.xml is built with the eclipse-sumo netconvert
on first use and whenever a source is newer.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from sim.sumo import engine
from sim.sumo.errors import SimError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "sim" / "scenarios"
_DATA_SETS = {
    "hangzhou-1x1": "hangzhou/hangzhou_1x1_bc-tyc_18041610_1h",
    "hangzhou-4x4": "hangzhou/hangzhou_4x4_gudang_18041610_1h",
}


def data_dir() -> Path:
    env = os.environ.get("EDGE_SIM_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    sumocfg: Path | None  # None for a bare network
    net: Path
    routes: tuple[Path, ...]
    additionals: tuple[Path, ...]
    begin_s: float
    end_s: float | None  # the sumocfg's end, if any
    options: dict[str, str] = field(default_factory=dict)  # every sumocfg option, raw


def names() -> list[str]:
    # An installed device has no scenarios (the wheel ships the code, not sim/scenarios).
    folders = SHIPPED.iterdir() if SHIPPED.is_dir() else iter(())
    shipped = sorted(p.name for p in folders if p.is_dir() and any(p.glob("*.sumocfg")))
    return shipped + sorted(_DATA_SETS)


def resolve(spec: str) -> Scenario:
    path = Path(spec)
    if not path.exists():
        if spec in _DATA_SETS:
            path = data_dir() / _DATA_SETS[spec]
            if not path.is_dir():
                raise SimError(
                    f"scenario {spec!r}: data folder {path} not found (the Hangzhou data sits "
                    "in shared/data beside the repository; EDGE_SIM_DATA overrides)"
                )
        elif (SHIPPED / spec).is_dir():
            path = SHIPPED / spec
        else:
            raise SimError(f"scenario {spec!r} not found: give a path or one of {names()}")
    if path.is_dir():
        cfgs = sorted(path.glob("*.sumocfg"))
        if len(cfgs) != 1:
            raise SimError(f"{path}: expected one .sumocfg in the folder, found {len(cfgs)}")
        path = cfgs[0]
    if path.name.endswith(".net.xml") or path.name.endswith(".net.xml.gz"):
        return Scenario(path.name.split(".")[0], None, path, (), (), 0.0, None)
    if path.suffix != ".sumocfg":
        raise SimError(f"{path}: not a .sumocfg, .net.xml or scenario folder")
    return _from_sumocfg(path)


def _files(value: str, base: Path) -> tuple[Path, ...]:
    parts = [p for p in value.replace(",", " ").split() if p]
    return tuple((base / p).resolve() for p in parts)


def _from_sumocfg(cfg: Path) -> Scenario:
    try:
        root = ET.parse(cfg).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SimError(f"{cfg}: cannot read the SUMO config: {exc}") from None
    options: dict[str, str] = {}
    for el in root.iter():
        value = el.get("value")
        if value is not None:
            options[el.tag] = value
    base = cfg.parent
    if "net-file" not in options:
        raise SimError(f"{cfg}: no net-file in the SUMO config")
    net = _files(options["net-file"], base)[0]
    _build_if_needed(cfg, net)
    end = options.get("end")
    return Scenario(
        name=cfg.name.removesuffix(".sumocfg"),
        sumocfg=cfg,
        net=net,
        routes=_files(options.get("route-files", ""), base),
        additionals=_files(options.get("additional-files", ""), base),
        begin_s=float(options.get("begin", 0)),
        end_s=float(end) if end is not None and float(end) >= 0 else None,
        options=options,
    )


_RECIPE_INPUTS = ("node-files", "edge-files", "connection-files", "tllogic-files", "type-files")


def _recipe_inputs(recipe: Path) -> list[Path]:
    """The plain files a netconvert recipe reads (another scenario's, too: `transit`)."""
    try:
        root = ET.parse(recipe).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SimError(f"{recipe}: cannot read the netconvert recipe: {exc}") from None
    files = [
        f
        for tag in _RECIPE_INPUTS
        for el in root.iter(tag)
        for f in _files(el.get("value", ""), recipe.parent)
    ]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SimError(f"{recipe}: input file(s) not found: {', '.join(missing)}")
    return files


def _build_if_needed(cfg: Path, net: Path) -> None:
    """Build a shipped network from its plain sources with netconvert."""
    recipe = cfg.with_name(net.name.removesuffix(".net.xml") + ".netccfg")
    if not recipe.is_file():
        if not net.is_file():
            raise SimError(f"{cfg}: network {net} not found")
        return
    sources = [recipe, *_recipe_inputs(recipe)]
    if net.is_file() and net.stat().st_mtime >= max(s.stat().st_mtime for s in sources):
        return
    tmp = net.with_name(f".{net.name}.{os.getpid()}.tmp")
    cmd = [engine.binary("netconvert"), "-c", str(recipe), "-o", str(tmp)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        raise SimError(f"netconvert took over 300 s on {recipe}") from None
    if done.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise SimError(f"netconvert failed on {recipe}: {done.stderr.strip() or done.stdout}")
    os.replace(tmp, net)
