"""The package's shape: no import cycles, every module importable on its own, short stage shells."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import dubbing_pipeline
from dubbing_pipeline.stages import STAGES

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
        f"names = {sorted(n for n in _modules() if not n.endswith('demo_build'))!r}\n"
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


RUNTIME_EXCLUDES = ("dubbing_pipeline.tooling",)
FUNCTION_LIMIT = 60  # lines of any function, def to last line
NUMERIC_KERNELS: frozenset[str] = frozenset()
"""Functions allowed past FUNCTION_LIMIT: numeric kernels that read best as one loop (none today)."""
LAZY_IMPORT_LIMIT = 25
LAZY_MARK = "# lazy:"
OPEN_DICT_LIMIT = 60


def _runtime_modules() -> dict[str, Path]:
    return {n: p for n, p in _modules().items() if not n.startswith(RUNTIME_EXCLUDES)}


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _function_level_imports() -> list[tuple[str, int, str]]:
    """``(module path, line, source line)`` of every import inside a function of the package."""
    found: dict[tuple[str, int], str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for fn in _functions(ast.parse("\n".join(lines))):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    where = (str(path.relative_to(PACKAGE)), node.lineno)
                    found[where] = " ".join(lines[node.lineno - 1 : (node.end_lineno or node.lineno)])
    return [(path, line, text) for (path, line), text in sorted(found.items())]


def test_the_runtime_never_imports_the_tooling() -> None:
    """Statically (any import, at the top or in a function, of ``dubbing_pipeline.tooling``) and
    at import time (every runtime module imported in one process leaves the tooling unloaded)."""
    static = sorted(
        f"{name} → {target}"
        for name, path in _runtime_modules().items()
        for target in _imports(name, path, set(_modules()))
        if target.startswith(RUNTIME_EXCLUDES)
    )
    dynamic = re.compile(r"(import_module|__import__)\(\s*f?[\"']dubbing_pipeline\.tooling")
    named = sorted(name for name, path in _runtime_modules().items() if dynamic.search(path.read_text()))
    assert static == [] and named == []
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(_runtime_modules())!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('dubbing_pipeline.tooling')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_tooling_is_a_package_of_its_own() -> None:
    """What the issue names as tooling lives there, and nothing of it is left at the top."""
    tooling = {n.rsplit(".", 1)[-1] for n in _modules() if n.startswith("dubbing_pipeline.tooling.")}
    assert {"bench", "scale", "gpucheck", "backfill", "tts_measure", "labelled_set", "demo_build"} <= tooling
    assert "structural" in tooling
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert not top & {"bench", "scale", "gpucheck", "backfill", "devservers", "edits", "review", "watermark"}


def test_no_function_is_longer_than_the_limit() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{fn.lineno} {fn.name} ({(fn.end_lineno or fn.lineno) - fn.lineno + 1})"
        for path in sorted(PACKAGE.rglob("*.py"))
        for fn in _functions(ast.parse(path.read_text(encoding="utf-8")))
        if (fn.end_lineno or fn.lineno) - fn.lineno + 1 > FUNCTION_LIMIT and fn.name not in NUMERIC_KERNELS
    ]
    assert long == []


def test_function_level_imports_are_few_and_say_why() -> None:
    """Imports belong at the top; a heavy optional library may stay lazy, saying why on the line."""
    lazy = _function_level_imports()
    unexplained = [f"{path}:{line}: {text.strip()}" for path, line, text in lazy if LAZY_MARK not in text]
    assert unexplained == []
    assert len(lazy) <= LAZY_IMPORT_LIMIT, "\n".join(f"{p}:{n}" for p, n, _ in lazy)


def test_open_records_are_rare() -> None:
    """Stages hand each other typed records; ``dict[str, Any]`` only where a value is really open."""
    count = sum(p.read_text(encoding="utf-8").count("dict[str, Any]") for p in PACKAGE.rglob("*.py"))
    assert count <= OPEN_DICT_LIMIT


def test_the_architecture_page_draws_every_folder_once() -> None:
    """``docs/architecture.md`` draws the package as a tree, one line per folder: every folder of
    the package is there, once, at its depth, and the stages in the order they run."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = page.split("```\n", 2)[1].split("```", 1)[0]
    drawn = []
    for line in tree.splitlines()[1:]:
        name = line.split()[0]
        depth = (len(line) - len(line.lstrip())) // 2
        drawn.append((depth, name.rstrip("/")))
    paths, trail = [], []
    for depth, name in drawn:
        trail = [*trail[: depth - 1], name]
        paths.append("/".join(trail))
    folders = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"
    )
    assert sorted(paths) == folders and len(paths) == len(set(paths))
    stages_drawn = [p for p in paths if p in STAGES]
    assert stages_drawn == list(STAGES)
