"""The package's shape: no import cycles, every module importable on its own, short stage shells."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dubbing_pipeline

PACKAGE = Path(dubbing_pipeline.__file__).parent
SHELL_LIMIT = 30  # lines of an asset or op function: a declaration, not a procedure


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, at module level or inside its functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {t for t in targets if t in known and t != name}
    return found


def test_there_is_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # a package's __init__ importing its own submodules is how packages export; not a cycle of logic
    cycles = [c for c in cycles if not any(c[i + 1].startswith(c[i] + ".") for i in range(len(c) - 1))]
    assert cycles == []


def test_every_module_imports_on_its_own() -> None:
    code = (
        "import importlib, sys\n"
        f"names = {sorted(n for n in _modules() if not n.endswith('demo.build'))!r}\n"
        "bad = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('dubbing_pipeline')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{name}: {exc!r}')\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def _decorated_functions(path: Path) -> list[tuple[str, int]]:
    """``(name, lines)`` of every function decorated as a Dagster asset or op in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            marks = [ast.unparse(d) for d in node.decorator_list]
            if any(m.startswith(("dg.asset", "dg.op", "dg.graph_asset", "dg.multi_asset")) for m in marks):
                body_start = node.body[0].lineno
                out.append((node.name, (node.end_lineno or body_start) - body_start + 1))
    return out


def test_asset_and_op_functions_are_short_declarations() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{name} ({lines} lines)"
        for path in PACKAGE.rglob("*.py")
        for name, lines in _decorated_functions(path)
        if lines > SHELL_LIMIT
    ]
    assert long == []
