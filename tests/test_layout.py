"""The package's shape: the core's wings import downward only, and no two modules import each other,
however indirectly.

Imports inside functions and under ``TYPE_CHECKING`` count too: a cycle that is only postponed to call
time, or that exists only for types, still means the piece both modules share belongs in a third.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "pytest_advrobust"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package → the package's modules it imports (relative imports anywhere in it)."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):  # import pytest_advrobust.core.x
                graph[name].update(alias.name for alias in node.names if alias.name in modules and alias.name != name)
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module is not None and node.module.split(".")[0] == "pytest_advrobust":
                target = node.module  # from pytest_advrobust.core.x import y
            else:
                continue
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            found = [module for module in submodules if module in modules]
            if node.module is not None and target in modules and not found:
                found = [target]  # "from .x import name": the module x
            graph[name].update(module for module in found if module != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions_and_for_types() -> None:
    graph = import_graph()
    assert "pytest_advrobust.core.attacks.loop" in graph["pytest_advrobust.core.attacks.apgd"]
    assert "pytest_advrobust.core.api" in graph["pytest_advrobust.plugin.fixtures"]  # imported in a fixture


def test_the_graph_sees_absolute_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pytest_advrobust"
    (package / "core" / "attacks").mkdir(parents=True)
    for init in (package, package / "core", package / "core" / "attacks"):
        (init / "__init__.py").write_text("")
    (package / "core" / "errors.py").write_text("import pytest_advrobust.core.attacks.loop\n")
    (package / "core" / "display.py").write_text("from pytest_advrobust.core.attacks import loop\n")
    (package / "core" / "attacks" / "loop.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    graph = import_graph()
    assert graph["pytest_advrobust.core.errors"] == {"pytest_advrobust.core.attacks.loop"}
    assert graph["pytest_advrobust.core.display"] == {"pytest_advrobust.core.attacks.loop"}
    assert len(upward_imports(graph)) == 2


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph()) == []


LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "display", "version", "jsonfile", "statistics", "wire"),
    ("settings",),
    ("models",),
    ("data",),
    ("attacks",),
    ("baselines",),
    ("results",),
    ("batch", "pipeline", "api"),
)
"""The core from the bottom up: the shared modules, then one wing per part, then the modules that put
the wings together (one batch, the pipeline, :func:`attack`). A module imports from its own layer or below."""


def _layer(module: str) -> int:
    part = module.removeprefix("pytest_advrobust.core.").split(".")[0]
    return next(index for index, layer in enumerate(LAYERS) if part in layer)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a core module by a core module of a lower layer, as ``importer -> imported``."""
    core = "pytest_advrobust.core."
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith(core)
        for target in targets
        if target.startswith(core) and _layer(target) > _layer(module)
    )


def test_every_core_module_has_a_layer() -> None:
    core = [module for module in import_graph() if module.startswith("pytest_advrobust.core.")]
    assert core and all(_layer(module) >= 0 for module in core)  # _layer raises StopIteration otherwise


def test_the_wings_import_downward_only() -> None:
    assert upward_imports(import_graph()) == []


def test_an_upward_import_is_found() -> None:
    graph = {"pytest_advrobust.core.attacks.loop": {"pytest_advrobust.core.results.report"}}
    assert upward_imports(graph) == ["pytest_advrobust.core.attacks.loop -> pytest_advrobust.core.results.report"]


def test_no_module_exceeds_600_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}


def test_every_public_name_resolves() -> None:
    """``pytest_advrobust`` imports its names lazily, by module path: each path must still lead to its name."""
    import pytest_advrobust

    missing = [name for name in pytest_advrobust.__all__ if getattr(pytest_advrobust, name, None) is None]
    assert missing == []
