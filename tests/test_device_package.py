"""The device's package holds only what runs on the Pi, and runs without the developer tools.

- The wheel flash.sh installs (scripts/device-wheel.sh) has edge/ less the paths
  deploy/device-exclude.txt names, hw/ (the runtime imports its codec and safety
  tables) and the shipped models with their card; no simulator, no benchmark, no
  training or evaluation code.
- Every edge module the device gets imports where only the device's packages are
  (deploy/requirements-device.txt and the standard library): no `sim`, no dev extras.
- `edge check` runs without the network libraries; without the simulator and the
  benchmarks, `edge -h` does not offer them and typing one is a one-line error.

Each check runs in a fresh interpreter (-I: no PYTHONPATH, no user site) whose import
system refuses what the device lacks, so a module already imported here cannot hide it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from edge.vision.config import DEFAULT_MODEL, SIM_MODEL

REPO = Path(__file__).resolve().parents[1]
NETWORK = ("aiomqtt", "paho", "fastapi", "starlette", "uvicorn")

# Prepended to the code run: puts this checkout first and installs an import hook that
# refuses a module (and its submodules) outside `allow` (when given) or inside `block`.
PRELUDE = """
import importlib.abc, sys
sys.path.insert(0, {repo!r})
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
    code: str, allow: set[str] | None = None, block: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    prelude = PRELUDE.format(repo=str(REPO), allow=allow, block=block)
    return subprocess.run(
        [sys.executable, "-I", "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "COLUMNS": "200"},
        timeout=120,
    )


def run_edge(*argv: str, block: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    code = f"import edge.cli; assert edge.cli.__file__.startswith({str(REPO)!r})\n"
    code += f"raise SystemExit(edge.cli.main({list(argv)!r}))\n"
    return run_python(code, block=block)


def excluded() -> set[Path]:
    """The checkout's files deploy/device-exclude.txt leaves out of the device's wheel."""
    out: set[Path] = set()
    for line in (REPO / "deploy/device-exclude.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            for p in REPO.glob(line.strip()):
                out |= {p} if p.is_file() else set(p.rglob("*"))
    return out


def device_modules() -> list[str]:
    gone = excluded()
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "edge").rglob("*.py")
        if p not in gone
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


def test_the_device_wheel_holds_only_what_runs_on_the_pi(tmp_path: Path) -> None:
    env = dict(os.environ, EDGE_PYTHON=sys.executable)
    r = subprocess.run(
        [str(REPO / "scripts/device-wheel.sh"), str(tmp_path / "src"), str(tmp_path / "wheels")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    files = {n for n in names if ".dist-info/" not in n}
    assert {n.split("/")[0] for n in files} == {"edge", "hw", "models"}
    assert not [n for n in files if n.startswith("sim/") or n.endswith("bench.py")]
    # models: the files the runtime loads by path and their card; no training code
    assert {n for n in files if n.startswith("models/")} == {
        "models/__init__.py",
        "models/MODEL_CARD.md",
        f"models/{DEFAULT_MODEL.name}",
        f"models/{SIM_MODEL.name}",
    }
    # edge: every module but the excluded ones (a glob too wide would drop one)
    want = {m.replace(".", "/") + ".py" for m in device_modules()}
    want = {w if (REPO / w).exists() else w.removesuffix(".py") + "/__init__.py" for w in want}
    assert {n for n in files if n.startswith("edge/") and n.endswith(".py")} == want
    for name in ("edge/vision/realeval.py", "edge/vision/synthetic.py", "edge/vision/truth.py"):
        assert name not in files
    # what the runtime reads beside its code, and the board's codec and safety tables
    for name in ("hw/codec.py", "hw/board_safety.py", "edge/py.typed", "edge/link/asyncapi.yaml"):
        assert name in files
    assert any(n.startswith("edge/web/static/") for n in files)
    assert any(n.startswith("edge/link/schemas/") for n in files)


def test_every_device_module_imports_with_only_the_device_packages() -> None:
    modules = device_modules()
    assert "edge.cli" in modules and "edge.bench" not in modules
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


def test_the_device_does_not_offer_the_developer_tools() -> None:
    block = ("sim", "edge.bench")
    r = run_edge("--help", block=block)
    assert r.returncode == 0, r.stderr
    assert "{check,demo,run,status,passwd,atspm,board,central,vision}" in r.stdout
    assert "--sim" not in run_edge("run", "--help", block=block).stdout
    for argv, typed, what in (
        (["sim", "run", "single"], "edge sim", "the simulator is"),
        (["bench", "control"], "edge bench", "the benchmarks are"),
        (["run", "--sim", "single"], "edge run --sim", "the simulator is"),
        (["j2735", "--sim", "single"], "edge j2735", "the simulator is"),
    ):
        r = run_edge(*argv, block=block)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith(f"{typed}: {what} not installed on this device;"), r.stderr
        assert r.stderr.count("\n") == 1  # one line, no traceback


def test_a_checkout_offers_them() -> None:
    r = run_edge("--help", block=())
    assert r.returncode == 0, r.stderr
    assert "sim" in r.stdout.split("}")[0] and "bench" in r.stdout.split("}")[0]
