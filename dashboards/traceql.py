"""The TraceQL catalog (``traceql.yaml``): named queries, each with a one-line purpose."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

CATALOG: Final = Path(__file__).with_name("traceql.yaml")
_ATTRIBUTE = re.compile(r"\b(span|resource)\.([A-Za-z_][A-Za-z0-9_.]*[A-Za-z0-9_])")


@dataclass(frozen=True)
class TraceQuery:
    name: str
    purpose: str
    query: str

    def attributes(self) -> set[tuple[str, str]]:
        """``(scope, name)`` of every scoped attribute the query reads."""
        return {(m.group(1), m.group(2)) for m in _ATTRIBUTE.finditer(self.query)}


def load(path: Path = CATALOG) -> list[TraceQuery]:
    return [TraceQuery(**entry) for entry in yaml.safe_load(path.read_text())["queries"]]


def markdown_table(queries: list[TraceQuery]) -> str:
    """The catalog as docs/dashboards.md shows it (``python -m docsgen`` writes it there)."""
    rows = ["| name | finds | TraceQL |", "| --- | --- | --- |"]
    rows += [f"| `{q.name}` | {q.purpose} | `{q.query}` |" for q in queries]
    return "\n".join(rows) + "\n"
