"""Loading ragotel is safe: ``opentelemetry-instrument`` imports ``ragotel.instrumentation.auto`` for its distro,
configurator and hooks, so that import must pull in nothing the environment might have at the wrong version (the
OpenTelemetry Operator puts its own packages first on the path), and ``import ragotel`` nothing at all."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import ragotel

PACKAGE = Path(ragotel.__file__).parent


def modules_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(proc.stdout))


def test_the_loaders_entry_module_imports_nothing_the_loader_has_not() -> None:
    loader = set(modules_after("import opentelemetry.instrumentation.auto_instrumentation._load"))
    added = set(modules_after("import opentelemetry.instrumentation.auto_instrumentation._load\n"
                              "import ragotel.instrumentation.auto")) - loader
    assert added == {"ragotel", "ragotel._version", "ragotel._core", "ragotel._core.safe", "ragotel.instrumentation",
                     "ragotel.instrumentation.auto"}


def test_importing_ragotel_imports_nothing_until_a_name_is_used() -> None:
    assert [m for m in modules_after("import ragotel") if m.startswith(("ragotel.", "opentelemetry"))] == [
        "ragotel._version"]
    assert "ragotel._steps.kinds" in modules_after("import ragotel; ragotel.retrieval")


def test_every_public_name_is_typed_where_it_is_found() -> None:
    """The names the package finds on first use are the ones type checkers see (``if TYPE_CHECKING:``)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    (checking,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    typed = {alias.name: node.module for node in checking.body if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    assert typed == ragotel._EXPORTS
    assert set(ragotel.__all__) == {*typed, "__version__"}
