"""The control core is sans-IO: it imports no clock, no asyncio, no device, no randomness.

Two checks:
- Each module's own imports (its AST): nothing from FORBIDDEN, and nothing but the core's own
  modules (`edge.control...`) and the standard-library modules in STDLIB. Pure: `make check`.
- What importing the whole core loads, in an isolated interpreter (`python -I -S`: no
  PYTHONPATH, no user site, no site-packages and so no `.pth` file or sitecustomize that could
  preload a module and hide it) with only the repository root added to sys.path. Beyond what
  the interpreter loads at start-up and what STDLIB's modules load themselves, only the core's
  own modules may appear. It starts an interpreter, so it is in the `process` layer.
The regression tests plant an import in a temporary copy of the core and show both checks
name it, also when the environment preloads it.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "edge" / "control"
FORBIDDEN = {
    "asyncio",
    "time",
    "socket",
    "serial",
    "random",
    "datetime",
    "threading",
    "os",
    "logging",
    "subprocess",
    "select",
    "selectors",
    "secrets",
    "uuid",
}
# The standard library the core may name; what these load themselves is allowed too.
STDLIB = ("__future__", "collections", "dataclasses", "enum", "typing")
OWN = "edge.control"

# Run by `python -I -S -c`: argv = [root, modules to import (comma-separated)]. Prints the
# modules the core loaded beyond start-up and STDLIB's own, and sys.path, as JSON.
PROBE = f"""
import sys
root, wanted = sys.argv[1], sys.argv[2].split(",")
sys.path.insert(0, root)
for name in {STDLIB!r}:
    __import__(name)
reference = set(sys.modules)
for name in wanted:
    __import__(name)
new = sorted(set(sys.modules) - reference)
print(__import__("json").dumps({{"loaded": new, "path": sys.path}}))
"""


def _imports(path: Path) -> set[str]:
    """The absolute module names a file imports (relative imports stay inside the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _outside_the_core(names: set[str]) -> set[str]:
    return {
        n
        for n in names
        if n.split(".")[0] not in STDLIB and n != OWN and not n.startswith(OWN + ".")
    }


def _core_modules(root: Path) -> list[str]:
    return [
        f"{OWN}.{p.stem}" if p.stem != "__init__" else OWN
        for p in sorted((root / "edge" / "control").glob("*.py"))
    ]


def loaded_by_core(
    root: Path, *, isolated: bool = True, env: dict[str, str] | None = None
) -> list[str]:
    """Modules importing every module of root's core loads that are not the core's own."""
    flags = ["-I", "-S"] if isolated else []
    out = subprocess.run(
        [sys.executable, *flags, "-c", PROBE, str(root), ",".join(_core_modules(root))],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    if isolated:
        # Only the repository root beside the interpreter's own standard library.
        base = Path(sys.base_prefix).resolve()
        others = [p for p in result["path"][1:] if not Path(p).resolve().is_relative_to(base)]
        assert result["path"][0] == str(root) and not others, result["path"]
    return [m for m in result["loaded"] if m != "edge" and m != OWN and not m.startswith(OWN + ".")]


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    bad = {n.split(".")[0] for n in _imports(path)} & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_imports_only_itself_and_the_standard_library() -> None:
    for path in CORE.glob("*.py"):
        extra = _outside_the_core(_imports(path))
        assert not extra, (
            f"{path.name} imports {sorted(extra)}: the core may import only {OWN}.* and {STDLIB}"
        )


def test_the_ast_check_names_a_planted_import(tmp_path: Path) -> None:
    planted = tmp_path / "site.py"
    planted.write_text(
        (CORE / "site.py").read_text() + "\nimport socket\nfrom edge.config import load_site\n"
    )
    assert _outside_the_core(_imports(planted)) == {"socket", "edge.config"}


def test_importing_the_core_loads_only_the_core_and_its_standard_library() -> None:
    assert loaded_by_core(ROOT) == []


def _planted_core(tmp_path: Path, line: str) -> Path:
    """A copy of the repository's core with `line` appended to its site module."""
    (tmp_path / "edge").mkdir(parents=True)
    shutil.copyfile(ROOT / "edge" / "__init__.py", tmp_path / "edge" / "__init__.py")
    shutil.copytree(
        CORE, tmp_path / "edge" / "control", ignore=shutil.ignore_patterns("__pycache__")
    )
    site = tmp_path / "edge" / "control" / "site.py"
    site.write_text(site.read_text() + f"\n{line}\n")
    return tmp_path


def test_a_planted_standard_library_import_is_named(tmp_path: Path) -> None:
    root = _planted_core(tmp_path / "copy", "import socket")
    assert "socket" in loaded_by_core(root)


def test_a_planted_import_of_edge_outside_the_core_is_named(tmp_path: Path) -> None:
    root = _planted_core(tmp_path / "copy", "import edge.elsewhere")
    (root / "edge" / "elsewhere.py").write_text('"""Not part of the core."""\n')
    assert loaded_by_core(root) == ["edge.elsewhere"]


def test_a_module_preloaded_by_the_environment_cannot_hide_a_planted_import(tmp_path: Path) -> None:
    root = _planted_core(tmp_path / "copy", "import socket")
    # sitecustomize stands in for a site-packages .pth: both run before the probe.
    preload = tmp_path / "preload"
    preload.mkdir()
    (preload / "sitecustomize.py").write_text("import socket\n")
    env = dict(os.environ, PYTHONPATH=str(preload))
    assert "socket" not in loaded_by_core(root, isolated=False, env=env)  # the hole
    assert "socket" in loaded_by_core(root, env=env)
