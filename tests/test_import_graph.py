"""No import circle in edge/, and edge/ never imports the developer side (issue 16).

- The runtime's parts (central link, event log, page, cameras) import downwards only.
  Every `import` of an edge module counts, at module level or inside a function (a lazy
  import still ties the two modules together); imports under `if TYPE_CHECKING:` do not.
- No module of edge/ imports sim/, devtools/ or models/ (the training code), in any form:
  lazy or under TYPE_CHECKING alike. The device's package has none of them; `edge` reaches
  the developer's commands through entry points only (edge/cli.py).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

EDGE = Path(__file__).resolve().parents[1] / "edge"


def _modules(root: Path) -> dict[str, Path]:
    mods = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _imports(tree: ast.Module, mods: dict[str, Path]) -> set[str]:
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom) and node.module in mods:
                found.add(node.module)
                subs = {f"{node.module}.{a.name}" for a in node.names}
                found.update(subs & mods.keys())
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(tree.body)
    return found


def import_cycles(root: Path = EDGE) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    mods = _modules(root)
    graph = {m: _imports(ast.parse(p.read_text()), mods) for m, p in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for m in sorted(graph):
        if m not in index:
            strong(m)
    return groups


def test_no_import_circle_in_edge() -> None:
    assert import_cycles() == []


def test_the_check_finds_a_circle(tmp_path: Path) -> None:
    """The check itself sees a circle, a lazy import included (planted in a copy)."""
    copy = tmp_path / "edge"
    shutil.copytree(EDGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    hooks = copy / "tickhooks.py"
    hooks.write_text(hooks.read_text() + "\n\ndef _x() -> None:\n    import edge.runtime\n")
    (group,) = import_cycles(copy)
    assert {"edge.runtime", "edge.tickhooks"} <= set(group)


DEVELOPER_SIDE = ("sim", "devtools", "models")


def developer_imports(root: Path = EDGE) -> list[str]:
    """`module:line: imported` for every import of the developer side under root."""
    found = []
    for path in sorted(root.rglob("*.py")):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [
                f"{name}:{node.lineno}: {n}" for n in names if n.split(".")[0] in DEVELOPER_SIDE
            ]
    return found


def test_no_edge_module_imports_the_developer_side() -> None:
    assert developer_imports() == []


def test_the_check_finds_a_developer_import(tmp_path: Path) -> None:
    """Lazy, under TYPE_CHECKING, or `import sim.x`: each is found (planted in a copy)."""
    copy = tmp_path / "edge"
    shutil.copytree(EDGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    cli = copy / "cli.py"
    cli.write_text(
        cli.read_text()
        + "\n\ndef _x() -> None:\n    from sim.realtime import run_sim\n"
        + "\n\nif TYPE_CHECKING:\n    import devtools.bench\n"
    )
    (copy / "vision" / "extra.py").write_text("import models.train\n")
    found = developer_imports(copy)
    assert [f.split(": ")[1] for f in found] == ["sim.realtime", "devtools.bench", "models.train"]
