"""The device's package holds only what runs on the Pi, and runs without the developer tools.

- The wheel flash.sh installs (scripts/device-wheel.sh) has every module of edge/, hw/
  (the runtime imports its codec and safety tables) and the shipped models with their
  card; no simulator (sim/), no developer package (devtools/: benchmarks, evaluation,
  provisioning), no training code, and no developer entry points (`edge.*` groups).
- Every edge module imports where only the device's packages are
  (deploy/requirements-device.txt and the standard library): no `sim`, no dev extras.
- `edge check` runs without the network libraries; the wheel itself, installed, does not
  offer `edge sim`, `edge bench` or `edge run --sim`, and typing one is a one-line error;
  a checkout (its entry points installed by `make setup`) offers them.

Each check runs in a fresh interpreter (-I: no PYTHONPATH, no user site) whose import
system refuses what the device lacks, so a module already imported here cannot hide it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib import import_module
from pathlib import Path

import pytest
from edge.vision.config import DEFAULT_MODEL, SIM_MODEL

REPO = Path(__file__).resolve().parents[1]
NETWORK = ("aiomqtt", "paho", "fastapi", "starlette", "uvicorn")

DEVELOPER_SIDE = ("sim", "devtools")
# Prepended to the code run: puts `root` (this checkout, or an installed wheel) first and
# installs an import hook that refuses a module (and its submodules) outside `allow` (when
# given) or inside `block`.
PRELUDE = """
import importlib.abc, sys
sys.path.insert(0, {root!r})
ALLOW, BLOCK = {allow!r}, {block!r}

def refused(name):
    top = name.split(".")[0]
    known = top in sys.stdlib_module_names or top.startswith("_")  # and the site's hooks
    if ALLOW is not None and top not in ALLOW and not known:
        return True
    return any(name == b or name.startswith(b + ".") for b in BLOCK)

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if refused(name):
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the device)", name=name)
        return None

preloaded = [m for m in sys.modules if refused(m)]
assert not preloaded, f"imported before the hook: {{preloaded}}"
sys.meta_path.insert(0, Refuse())
"""


def run_python(
    code: str, allow: set[str] | None = None, block: tuple[str, ...] = (), root: Path = REPO
) -> subprocess.CompletedProcess[str]:
    prelude = PRELUDE.format(root=str(root), allow=allow, block=block)
    return subprocess.run(
        [sys.executable, "-I", "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "COLUMNS": "200"},
        timeout=120,
    )


def run_edge(
    *argv: str, block: tuple[str, ...], root: Path = REPO
) -> subprocess.CompletedProcess[str]:
    code = f"import edge.cli; assert edge.cli.__file__.startswith({str(root)!r})\n"
    code += f"raise SystemExit(edge.cli.main({list(argv)!r}))\n"
    return run_python(code, block=block, root=root)


def device_modules() -> list[str]:
    """Every module of edge/: all of it is the device's."""
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "edge").rglob("*.py")
    )


def device_imports() -> set[str]:
    """Top-level import names of the device's requirements, and the device's packages."""
    from importlib.metadata import packages_distributions

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    req = REPO / "deploy/requirements-device.txt"
    dists = {norm(line.split("==")[0]) for line in req.read_text().splitlines() if "==" in line}
    tops = {top for top, ds in packages_distributions().items() if {norm(d) for d in ds} & dists}
    return tops | {"edge", "hw", "models"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The device's wheel, as flash.sh builds it."""
    tmp = tmp_path_factory.mktemp("device")
    env = dict(os.environ, EDGE_PYTHON=sys.executable)
    r = subprocess.run(
        [str(REPO / "scripts/device-wheel.sh"), str(tmp / "src"), str(tmp / "wheels")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (built,) = (tmp / "wheels").glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked as pip lays out a pure wheel: a site folder with its metadata."""
    site = tmp_path_factory.mktemp("site")
    zipfile.ZipFile(wheel).extractall(site)
    return site


def test_the_device_wheel_holds_only_what_runs_on_the_pi(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    files = {n for n in names if ".dist-info/" not in n}
    assert {n.split("/")[0] for n in files} == {"edge", "hw", "models"}
    assert not [n for n in files if "bench" in n or n.startswith(DEVELOPER_SIDE)]
    # no developer entry points: on the device, `edge` finds no developer command
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    groups = re.findall(r"^\[(.+)\]$", zipfile.ZipFile(wheel).read(entry_points).decode(), re.M)
    assert groups == ["console_scripts"]
    # models: the files the runtime loads by path and their card; no training code
    assert {n for n in files if n.startswith("models/")} == {
        "models/__init__.py",
        "models/MODEL_CARD.md",
        f"models/{DEFAULT_MODEL.name}",
        f"models/{SIM_MODEL.name}",
    }
    # edge: every module of the checkout's edge/ (an exclusion too wide would drop one)
    want = {str(p.relative_to(REPO)) for p in (REPO / "edge").rglob("*.py")}
    assert {n for n in files if n.startswith("edge/") and n.endswith(".py")} == want
    # what the runtime reads beside its code, and the board's codec and safety tables
    for name in ("hw/codec.py", "hw/board_safety.py", "edge/py.typed", "edge/link/asyncapi.yaml"):
        assert name in files
    assert any(n.startswith("edge/web/static/") for n in files)
    assert any(n.startswith("edge/link/schemas/") for n in files)


def test_every_device_module_imports_with_only_the_device_packages() -> None:
    modules = device_modules()
    assert "edge.cli" in modules and "edge.runtime" in modules
    code = f"""
import importlib, json
failed = {{}}
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
print(json.dumps(failed))
"""
    r = run_python(code, allow=device_imports())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {}


def test_check_runs_without_the_network_libraries() -> None:
    r = run_edge("check", str(REPO / "examples/four_leg_protected.toml"), block=NETWORK)
    assert r.returncode == 0, r.stderr
    assert "four_leg_protected.toml: OK: site 'example-4leg'" in r.stdout


def test_the_device_does_not_offer_the_developer_tools(installed: Path) -> None:
    """The installed wheel first on the path, its metadata the one `edge` reads (this
    environment's own install of the checkout comes after it); the developer side refused,
    as the device has none."""

    def edge(*argv: str) -> subprocess.CompletedProcess[str]:
        return run_edge(*argv, block=DEVELOPER_SIDE, root=installed)

    r = edge("--help")
    assert r.returncode == 0, r.stderr
    assert "{check,demo,run,status,passwd,atspm,board,central,vision}" in r.stdout
    assert "--sim" not in edge("run", "--help").stdout
    for argv, typed, what in (
        (["sim", "run", "single"], "edge sim", "the simulator is"),
        (["bench", "control"], "edge bench", "the benchmarks are"),
        (["run", "--sim", "single"], "edge run --sim", "the simulator is"),
        (["j2735", "--sim", "single"], "edge j2735", "the simulator is"),
    ):
        r = edge(*argv)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith(f"{typed}: {what} not installed on this device;"), r.stderr
        assert r.stderr.count("\n") == 1  # one line, no traceback


def developer_entry_points() -> dict[str, dict[str, str]]:
    """pyproject.toml's `edge.*` entry-point groups: what a checkout's install declares."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups: dict[str, dict[str, str]] = project["entry-points"]
    return {g: eps for g, eps in groups.items() if g.startswith("edge.")}


def test_every_developer_entry_point_loads() -> None:
    groups = developer_entry_points()
    assert set(groups["edge.commands"]) >= {"sim", "bench"}
    assert set(groups["edge.sim"]) == {"run", "scenarios"}
    from devtools.bench import BENCHES  # `edge bench NAME`: each a "module:function" too

    for value in [v for eps in groups.values() for v in eps.values()] + list(BENCHES.values()):
        module, attr = value.split(":")
        assert callable(getattr(import_module(module), attr)), value


def test_a_checkout_offers_them() -> None:
    r = run_edge("--help", block=())
    assert r.returncode == 0, r.stderr
    listed = r.stdout.split("}")[0]
    assert all(name in listed for name in developer_entry_points()["edge.commands"]), (
        "this environment's install predates pyproject.toml's entry points: run `make setup`"
    )
    assert "--sim SCENARIO" in run_edge("run", "--help", block=()).stdout
