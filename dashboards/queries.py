"""Every query the generated dashboards and rules ship, and the metric names each reads.

Used by the tests: PromQL is parsed with ``promql-parser``; Grafana's variables are replaced by what
"All" and a short range mean, so the same text runs against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import promql_parser

from dashboards import alerts

GENERATED: Final = Path(__file__).resolve().parent / "generated"

# What a variable means when the tests run a query: "All" (.*) and short, fixed windows.
SUBSTITUTIONS: Final = {
    "$__rate_interval": "1m", "$__interval": "15s", "$__range": "10m",
    "$namespace": ".*", "$service": ".*", "$model": ".*", "$deployment": ".*", "$node": ".*",
    "$provider": ".*", "$cluster": ".*", "$region": ".*", "$environment": ".*", "$step": ".*",
}
# A Grafana variable; label_replace's "$1" is not one.
_VARIABLE = re.compile(r"\$\{?([A-Za-z_]\w*)\}?")


@dataclass(frozen=True)
class PromQuery:
    """``source`` says where it ships: ``<dashboard uid> / <panel title>`` or ``alert <name>``."""

    source: str
    expr: str
    exemplar: bool = False
    panel_type: str = ""

    @property
    def runnable(self) -> str:
        return self.expand()

    def expand(self, chosen: Mapping[str, str] | None = None) -> str:
        """The query as Grafana sends it: each variable (``$name``) replaced by its value in ``chosen``,
        else by :data:`SUBSTITUTIONS`."""
        text = self.expr
        for variable, value in sorted({**SUBSTITUTIONS, **(chosen or {})}.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(variable, value)
        if left := _VARIABLE.search(text):
            raise ValueError(f"{self.source}: no test value for variable {left.group(0)}")
        return text

    def matchers(self) -> list[tuple[str, str, str]]:
        """(label, operator, value) of every label matcher, with the Grafana variables in values kept."""
        text = self.expr
        for variable, value in SUBSTITUTIONS.items():
            if variable.startswith("$__"):  # durations: the query does not parse with them in it
                text = text.replace(variable, value)
        found: list[tuple[str, str, str]] = []

        def visit(node: Any) -> None:
            if isinstance(node, promql_parser.VectorSelector):
                found.extend((m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers)

        promql_parser.walk(promql_parser.parse(text), visit)
        return found

    def metrics(self) -> set[str]:
        """The metric names read: a selector's name, or each alternative of its ``__name__=~"a|b"``."""
        names: set[str] = set()

        def visit(node: Any) -> None:
            if isinstance(node, promql_parser.VectorSelector):
                if node.name:
                    names.add(node.name)
                names.update(alternative for m in node.matchers.matchers if m.name == "__name__"
                             for alternative in m.value.split("|"))

        promql_parser.walk(promql_parser.parse(self.runnable), visit)
        return names


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(GENERATED.glob("*.json"))}


def dashboard_queries() -> list[PromQuery]:
    found = []
    for uid, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets") or []:
                if "expr" in target:
                    found.append(PromQuery(f"{uid} / {panel['title']}", target["expr"],
                                           bool(target.get("exemplar")), panel["type"]))
    return found


_LABEL_VALUES = re.compile(r"label_values\((.+), *\w+\)")


def variable_queries() -> list[PromQuery]:
    """The selectors of the dashboards' ``label_values(...)`` variables, as queries."""
    return [PromQuery(f"{uid} / ${variable['name']}", match.group(1))
            for uid, board in dashboards().items() for variable in board.get("templating", {}).get("list", [])
            if variable.get("type") == "query" and (match := _LABEL_VALUES.fullmatch(str(variable.get("query"))))]


def traceql_queries() -> list[tuple[str, str]]:
    return [(f"{uid} / {panel['title']}", target["query"]) for uid, board in dashboards().items()
            for panel in panels(board) for target in panel.get("targets") or []
            if target.get("queryType") == "traceql"]


def alert_queries() -> list[PromQuery]:
    """The alerts' queries without their comparison: what must have series for the rule to mean anything."""
    return [PromQuery(f"alert {a.name}", a.query) for a in alerts.ALERTS]
