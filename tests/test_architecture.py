"""The package's shape: layers that only import downward, no cycles, names from one module, instruments in one.

The layers, bottom to top, are what the folders say: ``semconv``; ``_core`` (the settings table, instruments,
limits, runtime switches, errors, compat, the Prometheus exposition, the waterfall view); ``_genai`` (the recorder and
what it reads: protocol, messages, hits, usage, cost, content); ``_steps`` (the step API);
``instrumentation`` (one adapter per integration); ``_config`` (configure, exporters, logs);
the package itself; the CLI on top. A module may import its own layer or lower ones; the graph counts
imports inside functions too, since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ragotel

PACKAGE = Path(ragotel.__file__).parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("ragotel.semconv", "ragotel._version"),
    ("ragotel._core",),
    ("ragotel._genai",),
    ("ragotel._steps",),
    ("ragotel.instrumentation",),
    ("ragotel._config",),
    # The zero-code configurator runs configure(): it sits above what it configures.
    ("ragotel", "ragotel.instrumentation.auto"),
    ("ragotel.cli", "ragotel.__main__"),
)
# Layer 0 names its modules; the rest follow the folders.


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    """The highest layer whose most specific prefix names ``module``."""
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str) -> set[str]:
    """ragotel modules ``module`` imports (at any depth; ``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            for alias in node.names:  # "from pkg import module" depends on the module, not on pkg's own code
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def test_every_module_is_in_a_layer_and_imports_only_downward() -> None:
    upward = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
              for m, deps in GRAPH.items() for d in sorted(deps)
              if _layer(d) > _layer(m) and not (m == "ragotel" or d == "ragotel")]
    assert upward == []


def test_the_core_never_imports_the_cli() -> None:
    offenders = [m for m, deps in GRAPH.items() if not m.startswith("ragotel.cli") and m != "ragotel.__main__"
                 and any(d.startswith("ragotel.cli") for d in deps)]
    assert offenders == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                walk(dep)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module)
    return cycles


def test_no_import_cycles() -> None:
    # Importing a package runs its __init__ first, so "ragotel.x" depending on "ragotel" is not an edge.
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    assert _cycles(edges) == []


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The checkers themselves, on a graph with one back edge added."""
    assert "ragotel._steps.step" in GRAPH["ragotel._steps.shapes"]
    mutated = {**GRAPH, "ragotel._steps.step": GRAPH["ragotel._steps.step"] | {"ragotel._steps.shapes"}}
    assert _cycles(mutated) == [["ragotel._steps.shapes", "ragotel._steps.step", "ragotel._steps.shapes"]]
    assert _layer("ragotel._genai.operation") < _layer("ragotel._steps.step") < _layer("ragotel.instrumentation.httpx")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_every_module_imports_alone(module: str) -> None:
    if module.startswith("ragotel.cli") or module in ("ragotel", "ragotel._steps.step"):
        # A fresh interpreter for a few representative entry points is enough; in-process for the rest.
        result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    else:
        importlib.import_module(module)


# -- names and instruments -------------------------------------------------------------------------
def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_every_emitted_gen_ai_or_rag_name_comes_from_semconv() -> None:
    # A prefix alone ("gen_ai.") is a filter, not a name; a name has a dot after the prefix.
    spelled = [f"{path.relative_to(PACKAGE.parent)}:{line}: {value!r}"
               for path in PACKAGE.rglob("*.py") if path.name != "semconv.py"
               for line, value in _string_literals(path)
               if value.startswith(("gen_ai.", "rag.")) and value.rstrip(".").count(".") >= 1]
    assert spelled == []


def test_instruments_are_created_in_one_module() -> None:
    """So every instrument is built per meter, and ``meter_provider=`` reaches all of them."""
    creators = ("create_histogram", "create_counter", "create_up_down_counter", "create_gauge",
                "create_observable_counter", "create_observable_gauge", "get_meter")
    found = [f"{path.relative_to(PACKAGE.parent)}: {name}" for path in PACKAGE.rglob("*.py")
             if path.name != "instruments.py" for name in creators if f".{name}(" in path.read_text()]
    assert found == []


def test_private_modules_are_private_by_name() -> None:
    public = {m for m in MODULES if not any(part.startswith("_") for part in m.split(".")[1:])}
    assert public == {
        "ragotel", "ragotel.semconv",
        "ragotel.instrumentation", "ragotel.instrumentation.httpx", "ragotel.instrumentation.asgi",
        "ragotel.instrumentation.auto", "ragotel.instrumentation.faiss",
        "ragotel.instrumentation.sentence_transformers", "ragotel.instrumentation.requests",
        "ragotel.instrumentation.qdrant", "ragotel.instrumentation.chroma", "ragotel.instrumentation.pgvector",
        "ragotel.instrumentation.lancedb", "ragotel.instrumentation.langchain", "ragotel.instrumentation.llamaindex",
        "ragotel.instrumentation.milvus",
        "ragotel.cli", "ragotel.cli.bench", "ragotel.cli.files", "ragotel.cli.receiver", "ragotel.cli.waterfall",
    }, "a new public module is an API decision: add it here and to docs/reference/api.md"


def test_walk_packages_agrees_with_the_files() -> None:
    walked = {info.name for info in pkgutil.walk_packages(ragotel.__path__, "ragotel.")}
    assert walked | {"ragotel"} == set(MODULES)
