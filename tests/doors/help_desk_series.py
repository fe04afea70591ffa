"""Which dashboard and alert queries the help desk (``helpdesk.py``) can give data to, and why each other one has
none, worked out from the queries' text and from what ragotel records for what the app does.

The app serves ``GET /answer``, and each request makes one chat call to an OpenAI-compatible server, outside any
ragotel step. ragotel records the request on the HTTP server metrics, and the call, being outside a step of its
kind, as a generation step of its own: on ``gen_ai.client.operation.duration`` and the token usage, labelled with
its step kind and name (``ragotel/instrumentation/_http.py``), never on ``rag.step.duration``, which only steps
record. No request fails. :data:`HELP_DESK_SERIES` is that, in the names a Prometheus scrape gives.

A query has data where its PromQL can: a selector where one of those series matches it, ``a or b`` where either
side can, ``a unless b`` where ``a`` can, any other operator or function where every vector in it can. Which
labels the two sides of an operator are matched on is not followed: where they would not match, the real
Prometheus of the door matrix finds no data for a query expected to have some, and the door fails."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import promql_parser

from dashboards import needs
from dashboards import promql as q
from dashboards.queries import PromQuery
from ragotel import semconv as sc
from ragotel._genai.protocol import match_endpoint

MODEL: Final = "tiny-llama"
"""What the help desk asks for (and the recorded server answers as)."""
VLLM_PREFIX: Final = "vllm:"
"""vLLM's own metric families (``dashboards/promql.py``): its engine's, not any client's."""


@dataclass(frozen=True)
class Series:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def value(self, label: str) -> str:
        """As a matcher sees it: an absent label is the empty string."""
        return self.name if label == "__name__" else self.labels.get(label, "")


def _histogram(name: str, labels: Mapping[str, str]) -> list[Series]:
    return [Series(name + suffix, labels) for suffix in ("_bucket", "_sum", "_count")]


def help_desk_series(*, chat_call: bool = True) -> tuple[Series, ...]:
    """What ragotel's Prometheus endpoint serves for the help desk after a few answered requests (default GenAI
    conventions). ``chat_call=False``: as if the app made no model call."""
    served = {q.ROUTE: "/answer", q.STATUS: "200"}
    found = [*_histogram(q.HTTP_DURATION, served), *_histogram(q.HTTP_REQUEST_BODY_SIZE, served),
             *_histogram(q.HTTP_RESPONSE_BODY_SIZE, served), Series(q.HTTP_ACTIVE)]
    if chat_call:
        endpoint = match_endpoint("/v1/chat/completions")
        assert endpoint is not None
        call = {q.OPERATION: sc.Operation.CHAT.value, q.MODEL: MODEL, q.STEP_KIND: sc.StepKind.GENERATION.value,
                q.STEP_NAME: endpoint.verb}
        found += _histogram(q.OPERATION_DURATION.default, call)
        for kind in (sc.TokenType.INPUT.value, sc.TokenType.OUTPUT.value):
            found += _histogram(q.TOKEN_USAGE, {**call, q.TOKEN_TYPE: kind})
    return tuple(found)


HELP_DESK_SERIES: Final = help_desk_series()

_MATCH: Final[dict[str, Callable[[str, str], bool]]] = {
    "Equal": lambda value, wanted: value == wanted,
    "NotEqual": lambda value, wanted: value != wanted,
    "Re": lambda value, pattern: re.fullmatch(pattern, value) is not None,
    "NotRe": lambda value, pattern: re.fullmatch(pattern, value) is None,
}


def _matchers(selector: Any) -> list[tuple[str, str, str]]:
    if selector.matchers.or_matchers:  # PromQL's `{a="x" or b="y"}`: no query here uses it
        raise NotImplementedError(f"or-matchers in {selector}")
    found = [(m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in selector.matchers.matchers]
    return [("__name__", "Equal", selector.name), *found] if selector.name else found


def matches(selector: Any, series: Series) -> bool:
    return all(_MATCH[op](series.value(label), value) for label, op, value in _matchers(selector))


def _selector(node: Any) -> Any | None:
    if isinstance(node, promql_parser.VectorSelector):
        return node
    if isinstance(node, promql_parser.MatrixSelector):
        return node.vector_selector
    return None


def has_data(node: Any, recorded: Iterable[Series]) -> bool:
    """Whether the expression ``node`` returns anything where only ``recorded`` is stored."""
    recorded = tuple(recorded)
    if (selector := _selector(node)) is not None:
        return any(matches(selector, series) for series in recorded)
    if isinstance(node, promql_parser.NumberLiteral | promql_parser.StringLiteral):
        return True
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
                  | promql_parser.AggregateExpr):
        return has_data(node.expr, recorded)
    if isinstance(node, promql_parser.Call):
        if node.func.name.startswith("absent"):  # data where there is none: not read by any panel
            raise NotImplementedError(node.func.name)
        return all(has_data(arg, recorded) for arg in node.args)
    if isinstance(node, promql_parser.BinaryExpr):
        op = str(node.op)
        if op == "or":
            return has_data(node.lhs, recorded) or has_data(node.rhs, recorded)
        if op == "unless":
            return has_data(node.lhs, recorded)
        return has_data(node.lhs, recorded) and has_data(node.rhs, recorded)
    raise NotImplementedError(type(node).__name__)


def selectors(query: PromQuery) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(promql_parser.parse(query.runnable),
                       lambda node: found.append(s) if (s := _selector(node)) is not None else None)
    return found


_SYMBOL: Final = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def _what_is_missing(selector: Any, recorded: tuple[Series, ...]) -> str:
    """``selector`` as a reader can check it against the scrape: its names where none of ``recorded`` has one, else
    with the matchers none of those that have the name meets."""
    matchers = _matchers(selector)
    names = "|".join(sorted(value for label, _, value in matchers if label == "__name__"))
    named = [s for s in recorded
             if all(_MATCH[op](s.name, value) for label, op, value in matchers if label == "__name__")]
    failing = [f'{label}{_SYMBOL[op]}"{value}"' for label, op, value in matchers
               if label != "__name__" and named and not any(_MATCH[op](s.value(label), value) for s in named)]
    return f"{names}{{{', '.join(failing)}}}" if failing else names


def why_no_data(query: PromQuery, recorded: Iterable[Series] = HELP_DESK_SERIES) -> str | None:
    """``None`` where the query can have data for the app that records ``recorded``; else why it has none."""
    recorded = tuple(recorded)
    tree = promql_parser.parse(query.runnable)
    if has_data(tree, recorded):
        return None
    if any(name.startswith(VLLM_PREFIX) for name in query.metrics()):
        return "reads vLLM's own metrics: the app's model server is a recording, no vLLM"
    if found := needs.needed_by(query.source):
        return "needs " + "; ".join(need.what for need in found)
    missing = [s for s in selectors(query) if not any(matches(s, series) for series in recorded)]
    return "the app records no " + ", no ".join(dict.fromkeys(_what_is_missing(s, recorded) for s in missing))


def partition(queries: Iterable[PromQuery], recorded: Iterable[Series] = HELP_DESK_SERIES,
              ) -> tuple[list[PromQuery], dict[PromQuery, str]]:
    """The queries that must have data for the app, and each other one with why it has none."""
    recorded = tuple(recorded)
    answered: list[PromQuery] = []
    excused: dict[PromQuery, str] = {}
    for query in queries:
        if (why := why_no_data(query, recorded)) is None:
            answered.append(query)
        else:
            excused[query] = why
    return answered, excused
