"""What is known about a step before it runs (``Spec``), and where its decorated function's
arguments reveal more (``Probe``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core.cardinality import limiter
from ragotel._genai.operation import MetricAttributes, openinference_attributes
from ragotel.semconv import Operation, Outcome, StepKind, TokenType

Extractor = Callable[[Any, Any], None]
"""``extractor=fn(result, step)``: reads a return value ragotel does not recognise and records through the step."""

_OPERATION: Final = {
    StepKind.RETRIEVAL: Operation.RETRIEVAL,
    StepKind.EMBEDDING: Operation.EMBEDDINGS,
    StepKind.GENERATION: Operation.CHAT,
    StepKind.PIPELINE: Operation.INVOKE_WORKFLOW,
}
# Span attributes that also label the step's metrics (bounded: set by code, or capped).
_DIMENSIONS: Final = (sc.GEN_AI_DATA_SOURCE_ID, sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_PROVIDER_NAME)


class Probe(NamedTuple):
    """Where to find one fact among a decorated function's arguments."""

    parameter: str
    position: int | None
    fact: str
    default: Any


@dataclass(frozen=True, slots=True)
class Spec:
    """What is known about a step before it runs: kind, name, static attributes, and what derives from them.

    A frozen value (the public ``ragotel.StepSpec`` adds the decorator and the context manager); a
    decorator derives a per-function copy with ``dataclasses.replace``, which re-derives the rest.
    """

    kind: StepKind
    name: str | None = None
    target: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    operation: Operation | None = None
    extractor: Extractor | None = None
    capture_content: bool | None = None
    span_kind: SpanKind = SpanKind.INTERNAL
    probes: tuple[Probe, ...] = ()
    conversation_id: str | None = None
    """``gen_ai.conversation.id`` of this run (``pipeline(conversation_id=...)``); inherited by every step under it."""
    # Derived in __post_init__, so a replace() stays consistent.
    step_name: str = field(init=False)
    span_name: str = field(init=False)
    span_attributes: Mapping[str, AttributeValue] = field(init=False)
    oi_span_attributes: Mapping[str, AttributeValue] = field(init=False, repr=False)
    """``span_attributes`` plus OpenInference's span kind and model name (``RAGOTEL_OPENINFERENCE``)."""
    min_score: float | None = field(init=False)
    dimensions: MetricAttributes = field(init=False, repr=False)
    dimensions_key: frozenset[tuple[str, AttributeValue]] = field(init=False, repr=False)
    ok_attributes: MetricAttributes = field(init=False, repr=False)
    _attribute_sets: dict[tuple[str, str], MetricAttributes] = field(init=False, repr=False, compare=False)
    """Metric attribute dicts built once per spec: ("quality", value)."""
    _usage_sets: Mapping[str, MetricAttributes] | None = field(init=False, repr=False, compare=False)
    """``gen_ai.client.token.usage`` attributes of the spec's own dimensions by token type, built all at once on
    first use: a generation step reads them for every token type it records and for its cost."""

    def __post_init__(self) -> None:
        kind = self.kind
        operation = self.operation if self.operation is not None else _OPERATION.get(kind)
        name = self.name or self.target or kind.value
        verb = operation.value if operation is not None else kind.value
        suffix = self.target or self.name
        attrs: dict[str, AttributeValue] = {sc.RAG_STEP_KIND: kind.value, sc.RAG_STEP_NAME: name}
        if operation is not None:
            attrs[sc.GEN_AI_OPERATION_NAME] = operation.value
        if kind is StepKind.PIPELINE:
            attrs[sc.GEN_AI_WORKFLOW_NAME] = name
        attrs.update({k: v for k, v in self.attributes.items() if v is not None})
        dims = _dimensions(kind, name, attrs)
        min_score = attrs.get(sc.RAG_RETRIEVAL_MIN_SCORE)
        derived = {
            "operation": operation,
            "step_name": name,
            "span_name": f"{verb} {suffix}" if suffix else verb,
            # The conventions' retrieval span is CLIENT (v1.41.1), in-process retrievers included.
            "span_kind": SpanKind.CLIENT if kind is StepKind.RETRIEVAL else self.span_kind,
            "span_attributes": attrs,
            "oi_span_attributes": {**attrs, **openinference_attributes(kind, attrs.get(sc.GEN_AI_REQUEST_MODEL))},
            "min_score": float(min_score) if isinstance(min_score, (int, float)) else None,
            "dimensions": dims,
            "dimensions_key": frozenset(dims.items()),
            "ok_attributes": {**dims, sc.RAG_OUTCOME: Outcome.OK.value},
            "_attribute_sets": {},
            "_usage_sets": None,
        }
        for key, value in derived.items():
            object.__setattr__(self, key, value)

    def usage_attributes(self, dims: MetricAttributes) -> Callable[[str], MetricAttributes]:
        """The ``gen_ai.client.token.usage`` attributes of each token type (the dimensions, the operation and the
        type), for a step whose dimensions are ``dims``: for the spec's own, a lookup of the sets built once."""
        operation = self.operation
        if dims is self.dimensions:
            sets = self._usage_sets
            if sets is None:  # two threads may both build it: the same values either way
                sets = {kind.value: _usage_attributes(operation, dims, kind.value) for kind in TokenType}
                object.__setattr__(self, "_usage_sets", sets)
            return sets.__getitem__
        return lambda token_type: _usage_attributes(operation, dims, token_type)

    def with_quality(self, quality: str) -> MetricAttributes:
        """The success attributes plus ``rag.retrieval.quality``, built once per value."""
        attrs = self._attribute_sets.get(("quality", quality))
        if attrs is None:
            attrs = self._attribute_sets["quality", quality] = {**self.ok_attributes, sc.RAG_RETRIEVAL_QUALITY: quality}
        return attrs


def _usage_attributes(operation: Operation | None, dims: MetricAttributes, token_type: str) -> MetricAttributes:
    attrs = {**dims, sc.GEN_AI_TOKEN_TYPE: token_type}
    if operation is not None:
        attrs[sc.GEN_AI_OPERATION_NAME] = operation.value
    return attrs


def _dimensions(kind: StepKind, name: str, attrs: Mapping[str, AttributeValue]) -> MetricAttributes:
    """The metric attributes every record of this step shares, each value within its cap."""
    if kind is StepKind.PIPELINE:
        dims: MetricAttributes = {sc.RAG_STEP_KIND: kind.value, sc.GEN_AI_WORKFLOW_NAME: name}
    else:
        dims = {sc.RAG_STEP_KIND: kind.value, sc.RAG_STEP_NAME: name}
        for key in _DIMENSIONS:
            value = attrs.get(key)
            if value is not None:
                dims[key] = value
    return limiter.bound(dims)


# Arguments a decorated function's signature may reveal, by kind: (parameter names, what they mean).
_ARGUMENTS: Final[Mapping[StepKind, tuple[tuple[tuple[str, ...], str], ...]]] = {
    StepKind.RETRIEVAL: ((("k", "top_k", "limit"), "top_k"), (("query", "question", "q"), "query")),
    StepKind.EMBEDDING: ((("texts", "inputs", "sentences", "documents"), "inputs"),),
    StepKind.RERANK: ((("documents", "docs", "hits", "candidates"), "candidates"), (("top_n", "k"), "top_n")),
    StepKind.PIPELINE: ((("conversation_id",), "conversation_id"),),
}


def probes_for(kind: StepKind, fn: Callable[..., Any]) -> tuple[Probe, ...]:
    wanted = _ARGUMENTS.get(kind)
    if not wanted:
        return ()
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return ()
    probes = []
    for names, fact in wanted:
        for index, param in enumerate(params):
            if param.name in names:
                positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
                default = None if param.default is inspect.Parameter.empty else param.default
                probes.append(Probe(param.name, index if positional else None, fact, default))
                break
    return tuple(probes)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


