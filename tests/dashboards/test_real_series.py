"""Every panel, alert and variable reads series that exist and groups, matches and names lines by labels
those series carry, judged by what is real (tests/dashboards/real.py): the series a RAG service exposes in
both GenAI modes through opentelemetry-exporter-prometheus, vLLM's served list, the scrape's labels.

Grouping by a label no selected series carries merges every line into one, and a legend or alert summary
naming such a label prints nothing: ``sum by (job, rag_step_name, error_type)`` over pipeline errors,
which carry the pipeline's name in ``gen_ai_workflow_name`` (default) or ``gen_ai_agent_name`` (latest).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import promql_parser as pp
import pytest

from dashboards import alerts, exporters
from dashboards import promql as q
from dashboards.queries import GENERATED, PromQuery, alert_queries, dashboard_queries, panels, variable_queries
from tests.dashboards import real

Labels = frozenset[str] | None
"""The labels an expression's result carries; ``None`` where it reads series this check cannot see."""

# A pipeline's name is one label or the other, by mode: a query names both, and either carried is enough.
ONE_OF = (frozenset({q.WORKFLOW, q.AGENT}),)
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
SUMMARY = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")
LABEL_VALUES = re.compile(r"label_values\(.+, *(\w+)\)")


def _matches(series: real.Series, matcher: Any) -> bool:
    value = series.value(matcher.name)
    if value == "*":  # a label whose values the committed vLLM list does not keep
        return True
    op = str(matcher.op).rsplit(".", 1)[-1]
    if op == "Equal":
        return bool(value == matcher.value)
    if op == "NotEqual":
        return bool(value != matcher.value)
    found = re.fullmatch(matcher.value, value) is not None
    return found if op == "Re" else not found


class Checker:
    """Walks a query, computing the labels each part's result carries and noting every label a grouping,
    a vector match or a ``label_replace`` source asks for that the parts under it do not carry."""

    def __init__(self, series: Iterable[real.Series], scrape: frozenset[str]) -> None:
        self.series = tuple(series)
        self.known = real.names(self.series)
        self.scrape = scrape
        self.problems: list[str] = []

    def missing(self, wanted: Iterable[str], carried: Labels, where: str) -> None:
        if carried is None:
            return
        absent = set(wanted) - carried
        for group in ONE_OF:
            if group & carried:
                absent -= group
        if absent:
            self.problems.append(f"{where} {sorted(absent)}: the series carry {sorted(carried - self.scrape)}")

    def selector(self, node: Any) -> Labels:
        matchers = list(node.matchers.matchers)
        names = {node.name} if node.name else {
            alternative for m in matchers if m.name == "__name__" for alternative in m.value.split("|")}
        if not names <= self.known:
            return None  # a cluster exporter's, or Prometheus's own
        others = [m for m in matchers if m.name != "__name__" and m.name not in self.scrape]
        chosen = [s for s in self.series if s.name in names and all(_matches(s, m) for m in others)]
        if not chosen:
            self.problems.append(f"no series: {node}")
            return frozenset(self.scrape)
        return frozenset(self.scrape).union(*({label for label, _ in s.labels} for s in chosen))

    def labels(self, node: Any) -> Labels:
        if isinstance(node, pp.VectorSelector):
            return self.selector(node)
        if isinstance(node, pp.MatrixSelector):
            return self.labels(node.vector_selector)
        if isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
            return self.labels(node.expr)
        if isinstance(node, (pp.NumberLiteral, pp.StringLiteral)):
            return frozenset()
        if isinstance(node, pp.Call):
            return self.call(node.func.name, list(node.args))
        if isinstance(node, pp.AggregateExpr):
            inner = self.labels(node.expr)
            modifier = node.modifier
            if modifier is None:
                return frozenset()
            grouped = frozenset(modifier.labels)
            if str(modifier.type).endswith("Without"):
                return None if inner is None else inner - grouped
            self.missing(grouped, inner, f"{node.op} by")
            return grouped if inner is None else grouped & inner
        if isinstance(node, pp.BinaryExpr):
            return self.binary(node)
        raise AssertionError(f"no rule for {type(node).__name__}: {node}")

    def call(self, name: str, args: list[Any]) -> Labels:
        if name == "label_replace":
            inner = self.labels(args[0])
            destination, source = args[1].val, args[3].val
            if source != "__name__":
                self.missing({source}, inner, "label_replace from")
            return None if inner is None else inner | {destination}
        if name == "histogram_quantile":
            inner = self.labels(args[1])
            self.missing({"le"}, inner, "histogram_quantile over")
            return None if inner is None else inner - {"le"}
        vectors = [arg for arg in args if not isinstance(arg, (pp.NumberLiteral, pp.StringLiteral))]
        return self.labels(vectors[0]) if vectors else frozenset()

    def binary(self, node: Any) -> Labels:
        left, right = self.labels(node.lhs), self.labels(node.rhs)
        op = str(node.op).lower()
        if op in ("or",):
            return None if left is None or right is None else left | right
        if op in ("and", "unless"):
            return left
        modifier = node.modifier
        matching = modifier.matching if modifier is not None else None
        if matching is not None and str(matching.type).endswith("Include"):  # on (...)
            for side, carried in (("left", left), ("right", right)):
                self.missing(matching.labels, carried, f"on() {side} side")
        if modifier is not None and str(modifier.card).endswith("ManyToOne"):
            extra = frozenset(modifier.group_labels or ())
            self.missing(extra, right, "group_left from")
            return None if left is None else left | extra
        if isinstance(node.lhs, pp.NumberLiteral):
            return right
        return left


def check(query: PromQuery, legend: Iterable[str] = ()) -> list[str]:
    checker = Checker((*real.ragotel_series(), *real.vllm_series()), real.scrape_labels())
    result = checker.labels(pp.parse(query.runnable))
    checker.missing(legend, result, "legend")
    return [f"{query.source}: {problem}" for problem in checker.problems]


def legends() -> dict[str, list[str]]:
    """The labels each dashboard query's legend prints, by ``<uid> / <title>`` and expression."""
    found: dict[str, list[str]] = {}
    for path in sorted(GENERATED.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in panels(board):
            for target in panel.get("targets") or []:
                if "expr" in target:
                    found[f"{path.stem} / {panel['title']} / {target['expr']}"] = \
                        LEGEND.findall(target.get("legendFormat") or "")
    return found


def summaries() -> dict[str, list[str]]:
    return {f"alert {a.name}": SUMMARY.findall(a.summary + a.description) for a in alerts.ALERTS}


def variable_labels() -> dict[str, list[str]]:
    """The label each ``label_values(selector, label)`` variable lists, by ``<uid> / $<name>``."""
    found = {}
    for path in sorted(GENERATED.glob("*.json")):
        for variable in json.loads(path.read_text()).get("templating", {}).get("list", []):
            listed = LABEL_VALUES.fullmatch(str(variable.get("query")))
            if variable.get("type") == "query" and listed:
                found[f"{path.stem} / ${variable['name']}"] = [listed.group(1)]
    return found


def test_every_query_groups_and_names_by_labels_its_series_carry() -> None:
    printed, summarized, listed = legends(), summaries(), variable_labels()
    assert listed and printed and summarized
    problems = []
    for query in dashboard_queries() + variable_queries() + alert_queries():
        wanted = (printed.get(f"{query.source} / {query.expr}") or summarized.get(query.source)
                  or listed.get(query.source) or [])
        problems += check(query, wanted)
    assert problems == []


def test_failed_pipelines_are_one_line_each_named_in_both_modes() -> None:
    """Pipeline errors carry their pipeline's name in one mode's label or the other; the panel keeps it."""
    (query,) = [found for found in dashboard_queries() if found.source == "rag-overview / Failed pipelines/s"]
    errors = [s for s in real.ragotel_series()
              if s.name == q.STEP_ERRORS and s.value(q.STEP_KIND) == "pipeline"]
    named = {s.value(q.WORKFLOW) or s.value(q.AGENT) for s in errors}
    assert named == {"chat_stream"}, errors  # the failing pipeline of the service, by its name
    assert check(query, legends()[f"{query.source} / {query.expr}"]) == []


@pytest.mark.parametrize(("expr", "legend", "expected"), [
    (f'sum by (job, {q.STEP_NAME}, {q.ERROR_TYPE}) (rate({q.STEP_ERRORS}{{{q.STEP_KIND}="pipeline"}}[1m]))',
     [q.STEP_NAME], [f"sum by ['{q.STEP_NAME}']", f"legend ['{q.STEP_NAME}']"]),
    (f'sum by (job, {q.PIPELINE_NAME}) (rate({q.STEP_ERRORS}{{{q.STEP_KIND}="pipeline"}}[1m]))',
     [q.WORKFLOW, q.AGENT], []),
    (f'sum by (job) (rate({q.STEP_ERRORS}[1m])) / on (job, {q.ROUTE}) sum by (job) (rate({q.STEP_ERRORS}[1m]))',
     [], [f"on() left side ['{q.ROUTE}']", f"on() right side ['{q.ROUTE}']"]),
    (f'rate({q.STEP_ERRORS}{{{q.STEP_KIND}="nowhere"}}[1m])', [], ["no series"]),
    (f'label_replace(rate({q.STEP_ERRORS}[1m]), "x", "$1", "{q.VLLM_MODEL}", "(.*)")', [],
     [f"label_replace from ['{q.VLLM_MODEL}']"]),
    (f"sum by ({q.VLLM_MODEL}, finished_reason) (rate({q.VLLM_SUCCESS}[1m]))", [q.VLLM_MODEL], []),
    (f"sum by ({q.VLLM_MODEL}, {q.STEP_NAME}) (rate({q.VLLM_SUCCESS}[1m]))", [], [f"sum by ['{q.STEP_NAME}']"]),
])
def test_the_check_reports_a_label_the_series_lack(expr: str, legend: list[str], expected: list[str]) -> None:
    problems = check(PromQuery("probe", expr), legend)
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(f"probe: {start}"), problem


def test_every_metric_read_is_served_or_a_documented_exporter_s() -> None:
    """Names come from what is served, not from the dashboards' constants: a misspelt name fails here."""
    served = real.names(real.ragotel_series()) | real.names(real.vllm_series())
    known = served | set().union(*exporters.DOCUMENTED.values()) | {"up", "target_info"}
    unknown = {(query.source, name) for query in dashboard_queries() + alert_queries() + variable_queries()
               for name in query.metrics() if name not in known}
    assert unknown == set()
