"""The control core is sans-IO: it imports no clock, no asyncio, no device, no randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "edge" / "control"
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


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_imports_only_itself_and_the_standard_library() -> None:
    allowed = {"edge", "__future__", "collections", "dataclasses", "enum", "typing"}
    for path in CORE.glob("*.py"):
        extra = _imports(path) - allowed
        assert not extra, f"{path.name} imports {sorted(extra)}"


def test_importing_the_core_loads_no_forbidden_module() -> None:
    import subprocess
    import sys

    # `os` and `time` are loaded by the interpreter's own start-up; the AST test covers them.
    watched = sorted(FORBIDDEN - {"os", "time"})
    code = (
        "import sys; import edge.control.controller, edge.control.monitor; "
        f"print(sorted(m for m in {watched!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
