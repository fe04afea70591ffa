"""A step: what is known before it runs (:class:`StepSpec`), and the running step (:class:`Step`).

What a step records by default is chosen for what dashboards and alerts read, at the fewest SDK
records (each costs about as much as a quarter of a span):

* one duration record: ``rag.step.duration``, or ``gen_ai.workflow.duration`` for a pipeline,
  carrying ``rag.retrieval.quality`` (``ok``/``empty``/``low_score``) for retrievals whose hits were read,
  so empty and weak retrievals cost no record of their own;
* sums only ever divided by a step count — documents returned and kept, chunks and characters of
  context — go to :class:`~ragotel._instruments.SummedCounter` s, not SDK records;
* generation without an instrumented HTTP client under it: ``gen_ai.client.token.usage`` and cost;
* on failure, ``rag.step.errors``.

``RAGOTEL_DETAILED_METRICS=true`` adds, at one SDK record each: the best score of every retrieval
(``rag.retrieval.top_score``), the score of every document (``rag.retrieval.score``) and, for retrieval,
embedding and generation steps, ``gen_ai.client.operation.duration``. Every record carries the step's span as its
context, so a histogram's exemplar points at the span that was timed, and every attribute value
passes the cardinality cap. Scores, counts and sizes also land on the span; text (queries,
documents, messages, answers) only when content capture is on, and nothing is serialised otherwise.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from time import perf_counter
from types import TracebackType
from typing import Any, Final, NamedTuple, TypedDict, TypeVar, Unpack

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ragotel import _details, _instruments, _usage, cost, extract, messages
from ragotel import semconv as sc
from ragotel._cardinality import limiter
from ragotel._runtime import error_type, runtime
from ragotel._safe import report_internal_error
from ragotel.content import policy as content_policy
from ragotel.openai_protocol import Choice, ResponseFacts, Usage
from ragotel.semconv import Operation, Outcome, StepKind

F = TypeVar("F", bound=Callable[..., Any])
Extractor = Callable[[Any, "Step"], None]
MetricAttributes = dict[str, AttributeValue]

_OPERATION: Final = {
    StepKind.RETRIEVAL: Operation.RETRIEVAL,
    StepKind.EMBEDDING: Operation.EMBEDDINGS,
    StepKind.GENERATION: Operation.CHAT,
    StepKind.PIPELINE: Operation.INVOKE_WORKFLOW,
}
# Span attributes that also label the step's metrics (bounded: set by code, or capped).
_DIMENSIONS: Final = (sc.GEN_AI_DATA_SOURCE_ID, sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_PROVIDER_NAME)
LISTING: Final = frozenset({StepKind.RETRIEVAL, StepKind.RERANK})
# The retrieved documents kept on a span (with content capture on): enough to debug ranking, bounded.
MAX_DOCUMENTS_ON_SPAN: Final = 20
# The caller stopped the step: not a failure of the step itself.
CANCELLATIONS: Final = (GeneratorExit, asyncio.CancelledError)

_STEP_KEY: Final = otel_context.create_key("ragotel-step")
# Record(...) facts that make a Usage, in its field order.
_USAGE_FACTS: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
# The key OpenTelemetry keeps the current span under, read through its public API, so that a step's
# context (its span and the step) is one copy of the caller's context, not two.
_SPAN_KEY: Final = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, Context())))


def current_step() -> Step | None:
    """The innermost ragotel step running in this context, if any."""
    step = otel_context.get_value(_STEP_KEY)
    return step if isinstance(step, Step) else None


class StepFacts(TypedDict, total=False):
    """What :meth:`Step.record` accepts; every fact is optional and ``None`` means unknown."""

    documents: Sequence[Any]
    """Hits returned (retrieval, rerank): dicts, objects or ``(doc, score)`` pairs."""
    top_k: int
    """Documents asked for."""
    min_score: float
    """Score threshold applied after search; also the low-score threshold unless one is configured."""
    results_kept: int
    """Documents left after filtering."""
    index_size: int
    data_source: str
    chunks: int
    """Chunks placed in the prompt."""
    context_chars: int
    context_tokens: int
    messages: Sequence[Any]
    """Prompt messages: counted; captured only with content capture on."""
    model: str
    response_model: str
    response_id: str
    input_tokens: int
    """Prompt tokens, cached ones included."""
    output_tokens: int
    cache_read_tokens: int
    """Prompt tokens served from the prompt cache."""
    cache_write_tokens: int
    """Prompt tokens written to the prompt cache."""
    reasoning_tokens: int
    """Output tokens spent reasoning."""
    finish_reasons: Sequence[str]
    response: str
    """The answer: its length is recorded; the text only with content capture on."""
    response_chars: int
    reasoning_chars: int
    dimension: int
    inputs: int
    top_n: int
    query: str
    """Content: recorded only with content capture on."""
    conversation_id: str
    """``gen_ai.conversation.id``: on this step's span and on every span started under it from now on."""


# Facts that are one span attribute each, as given.
_SPAN_FACTS: Final[Mapping[str, str]] = {
    "top_k": sc.GEN_AI_RETRIEVAL_TOP_K,
    "min_score": sc.RAG_RETRIEVAL_MIN_SCORE,
    "results_kept": sc.RAG_RETRIEVAL_RESULTS_KEPT,
    "index_size": sc.RAG_INDEX_SIZE,
    "chunks": sc.RAG_PROMPT_CHUNKS,
    "context_chars": sc.RAG_PROMPT_CONTEXT_CHARS,
    "context_tokens": sc.RAG_PROMPT_CONTEXT_TOKENS,
    "response_model": sc.GEN_AI_RESPONSE_MODEL,
    "response_id": sc.GEN_AI_RESPONSE_ID,
    "response_chars": sc.RAG_GENERATION_RESPONSE_CHARS,
    "reasoning_chars": sc.RAG_GENERATION_REASONING_CHARS,
    "dimension": sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
    "inputs": sc.RAG_EMBEDDING_INPUTS,
    "top_n": sc.RAG_RERANK_TOP_N,
}


class Probe(NamedTuple):
    """Where to find one fact among a decorated function's arguments."""

    parameter: str
    position: int | None
    fact: str
    default: Any


@dataclass(frozen=True, slots=True)
class StepSpec:
    """What is known about a step before it runs: kind, name, static attributes.

    Returned by ``ragotel.retrieval(...)`` and the other kinds; apply it to a function or enter it.
    A frozen value: the decorator derives a per-function copy with :func:`dataclasses.replace`.
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
    """Metric attribute dicts built once per spec: ("quality", value) and ("usage", token type)."""

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
            "span_attributes": attrs,
            "oi_span_attributes": {**attrs, **_openinference(kind, attrs.get(sc.GEN_AI_REQUEST_MODEL))},
            "min_score": float(min_score) if isinstance(min_score, (int, float)) else None,
            "dimensions": dims,
            "dimensions_key": frozenset(dims.items()),
            "ok_attributes": {**dims, sc.RAG_OUTCOME: Outcome.OK.value},
            "_attribute_sets": {},
        }
        for key, value in derived.items():
            object.__setattr__(self, key, value)

    def usage_attributes(self, dims: MetricAttributes, token_type: str) -> MetricAttributes:
        """``gen_ai.client.token.usage`` attributes: the dimensions, the operation and the token type."""
        if dims is self.dimensions:
            attrs = self._attribute_sets.get(("usage", token_type))
            if attrs is None:
                attrs = self._attribute_sets["usage", token_type] = _usage_attributes(self, dims, token_type)
            return attrs
        return _usage_attributes(self, dims, token_type)

    def with_quality(self, quality: str) -> MetricAttributes:
        """The success attributes plus ``rag.retrieval.quality``, built once per value."""
        attrs = self._attribute_sets.get(("quality", quality))
        if attrs is None:
            attrs = self._attribute_sets["quality", quality] = {**self.ok_attributes, sc.RAG_RETRIEVAL_QUALITY: quality}
        return attrs

    # -- decorator ---------------------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        from ragotel import _wrap  # the wrappers build on this module

        # "Class.method" names a step well; "outer.<locals>.inner" paths only add noise.
        qualname = getattr(fn, "__qualname__", None)
        spec = self
        if self.name is None and qualname is not None:
            spec = replace(spec, name=qualname.rsplit("<locals>.", 1)[-1])
        spec = replace(spec, probes=_probes_for(self.kind, fn))
        return _wrap.wrap(spec, fn)

    # -- context manager ---------------------------------------------------------------------------
    def __enter__(self) -> Step:
        if runtime.disabled:
            return NOOP_STEP
        step = Step.start(self)
        step.__enter__()
        return step

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        step = current_step()
        if step is None or step.spec is not self:
            return
        step.__exit__(None, None, None)
        step.finish(exc)

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _openinference(kind: StepKind, model: Any) -> dict[str, AttributeValue]:
    """OpenInference's span kind and, where the step names one, its model key."""
    attrs: dict[str, AttributeValue] = {sc.OI_SPAN_KIND: sc.OI_SPAN_KINDS[kind]}
    if model is not None:
        key = sc.OI_EMBEDDING_MODEL_NAME if kind is StepKind.EMBEDDING else sc.OI_LLM_MODEL_NAME
        attrs[key] = str(model)
    return attrs


def _usage_attributes(spec: StepSpec, dims: MetricAttributes, token_type: str) -> MetricAttributes:
    attrs = {**dims, sc.GEN_AI_TOKEN_TYPE: token_type}
    if spec.operation is not None:
        attrs[sc.GEN_AI_OPERATION_NAME] = spec.operation.value
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


def _probes_for(kind: StepKind, fn: Callable[..., Any]) -> tuple[Probe, ...]:
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


class Step:
    """A running step. Record what the code knows; everything here is safe to call and never raises.

    ``step.span`` is the OpenTelemetry span, for anything :meth:`record` does not cover. Entering the
    step (``with step:``) makes its span current; the wrappers do that around each run of the body.
    """

    __slots__ = (
        "_context",
        "_dims",
        "_dims_key",
        "_min_score",
        "_ok",
        "_pipeline",
        "_quality",
        "_start",
        "_token",
        "_usage",
        "client_call_recorded",
        "conversation_id",
        "done",
        "span",
        "spec",
    )

    def __init__(self, spec: StepSpec, span: Span, current: Context | None = None,
                 conversation_id: str | None = None) -> None:
        self.spec = spec
        self.span = span
        self.done = False
        # Set by the HTTP client instrumentation when it recorded the model call inside this step,
        # so the step does not count the same operation and tokens a second time.
        self.client_call_recorded = False
        values = dict(otel_context.get_current() if current is None else current)
        parent = values.get(_STEP_KEY)
        self.conversation_id = conversation_id
        # The pipeline this step runs in adds up the tokens and cost of every call under it.
        self._pipeline: Step | None = None
        if isinstance(parent, Step):
            self._pipeline = parent if parent.spec.kind is StepKind.PIPELINE else parent._pipeline
        self._usage: list[float] | None = [0, 0, 0.0, 0] if spec.kind is StepKind.PIPELINE else None
        values[_SPAN_KEY] = span
        values[_STEP_KEY] = self
        self._context = Context(values)
        self._token: object = None
        self._dims = spec.dimensions
        self._dims_key = spec.dimensions_key
        self._ok = spec.ok_attributes
        self._min_score = spec.min_score
        self._quality: str | None = None
        self._start = 0.0

    @classmethod
    def start(cls, spec: StepSpec) -> Step:
        current = otel_context.get_current()
        parent = current.get(_STEP_KEY)
        conversation = spec.conversation_id or (parent.conversation_id if isinstance(parent, Step) else None)
        try:
            attributes = spec.oi_span_attributes if runtime.openinference else spec.span_attributes
            if conversation is not None:
                attributes = {**attributes, sc.GEN_AI_CONVERSATION_ID: conversation}
            span = _instruments.tracer().start_span(spec.span_name, kind=spec.span_kind, attributes=attributes)
        except Exception as exc:
            report_internal_error("starting a span", exc)
            span = trace.INVALID_SPAN
        step = cls(spec, span, current, conversation)
        step._start = perf_counter()
        return step

    # -- the one activation mechanism (once per run of the body) -------------------------------------
    def __enter__(self) -> Step:
        self._token = otel_context.attach(self._context)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception as internal:
                report_internal_error("restoring the context", internal)

    # -- recording ---------------------------------------------------------------------------------
    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set a span attribute (never a metric attribute)."""
        try:
            self.span.set_attribute(key, value)
        except Exception as exc:
            report_internal_error("set_attribute", exc)

    def record(self, **facts: Unpack[StepFacts]) -> None:
        """Record facts about this step on its span and in the step metrics.

        Counts and scores are always recorded; ``query``, ``response``, ``messages`` and document
        texts are content, recorded on the span only when content capture is on. See :class:`StepFacts`.

        >>> with ragotel.prompt(template="rag-v1") as step:
        ...     step.record(chunks=3, context_chars=1800)
        """
        try:
            self._apply(facts)
        except Exception as exc:
            report_internal_error("Step.record", exc)

    def _apply(self, facts: Mapping[str, Any]) -> None:
        out: dict[str, AttributeValue] = {}  # span attributes, set in one call at the end
        given = {}
        for fact, value in facts.items():
            if value is None:
                continue
            given[fact] = value
            key = _SPAN_FACTS.get(fact)
            if key is not None:
                out[key] = value
        if "min_score" in given and isinstance(given["min_score"], (int, float)):
            self._min_score = float(given["min_score"])
        if "model" in given or "data_source" in given:
            self._set_dimensions(out, model=given.get("model"), data_source=given.get("data_source"))
        if "finish_reasons" in given:
            out[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [str(r) for r in given["finish_reasons"]]
        ins = _instruments.instruments()
        for fact, counter in (("results_kept", ins.retrieval_documents_kept), ("chunks", ins.prompt_context_chunks),
                              ("context_chars", ins.prompt_context_size)):
            if _int(given.get(fact)):
                counter.add(given[fact], self._dims_key, self._dims)
        if "documents" in given:
            items = extract.hit_list(given["documents"])
            if items is not None:
                self._record_hits(items, out)
        if "messages" in given:
            self._record_messages(given["messages"], out)
        if "response" in given:
            reasons = given.get("finish_reasons")
            reason = str(reasons[0]) if isinstance(reasons, Sequence) and len(reasons) == 1 else None
            self._record_response(given["response"], out, count="response_chars" not in given, finish_reason=reason)
        if "query" in given:
            self._capture(sc.GEN_AI_RETRIEVAL_QUERY_TEXT, given["query"], out)
            if runtime.openinference:
                self._capture(sc.OI_INPUT_VALUE, given["query"], out)
        if isinstance(given.get("conversation_id"), str):
            self.conversation_id = out[sc.GEN_AI_CONVERSATION_ID] = given["conversation_id"]
        if "input_tokens" in given or "output_tokens" in given:
            self._record_usage(Usage(*(given.get(f) if _int(given.get(f)) else None for f in _USAGE_FACTS)), out)
        if out:
            self.span.set_attributes(out)

    def _capturing(self) -> bool:
        enabled = self.spec.capture_content
        return content_policy.enabled if enabled is None else enabled

    def _capture(self, key: str, value: Any, out: dict[str, AttributeValue]) -> None:
        """Content for the span, only when capture is on (the policy truncates and redacts)."""
        if self._capturing():
            text = content_policy.text(value if isinstance(value, str) else _to_json(value), enabled=True)
            if text is not None:
                out[key] = text

    def _set_dimensions(self, out: dict[str, AttributeValue], *, model: Any, data_source: Any) -> None:
        """Model and data source also label the step's metrics."""
        dims = dict(self._dims)
        for key, value in ((sc.GEN_AI_REQUEST_MODEL, model), (sc.GEN_AI_DATA_SOURCE_ID, data_source)):
            if value is not None:
                out[key] = str(value)
                dims[key] = limiter.value(key, str(value))
        if model is not None and runtime.openinference:
            out.update(_openinference(self.spec.kind, model))
        self._dims, self._dims_key = dims, frozenset(dims.items())
        self._ok = {**dims, sc.RAG_OUTCOME: Outcome.OK.value}

    def _record_hits(self, items: Sequence[Any], out: dict[str, AttributeValue]) -> None:
        count = len(items)
        out[sc.RAG_RETRIEVAL_RESULTS_RETURNED] = count
        _instruments.instruments().retrieval_documents.add(count, self._dims_key, self._dims)
        self._record_scores(count, extract.scores(items) if count else None, out)
        if runtime.detailed_metrics and count:
            self._record_each_score(map(extract.score_of, items[: extract.MAX_SCORED_HITS]))
        if self._capturing():
            self._record_documents(items, out)
        if runtime.openinference:
            self._record_openinference_documents(items, out)

    def record_streamed_hits(self, count: int, scores: list[float]) -> None:
        """What a generator retrieval yielded: the count and the scores of the hits (wrappers only)."""
        try:
            out: dict[str, AttributeValue] = {sc.RAG_RETRIEVAL_RESULTS_RETURNED: count}
            _instruments.instruments().retrieval_documents.add(count, self._dims_key, self._dims)
            self._record_scores(count, extract.scores(scores) if scores else None, out)
            if runtime.detailed_metrics:
                self._record_each_score(scores)
            self.span.set_attributes(out)
        except Exception as exc:
            report_internal_error("recording streamed hits", exc)

    def _record_scores(self, count: int, stats: extract.Scores | None, out: dict[str, AttributeValue]) -> None:
        if stats is not None:
            out[sc.RAG_RETRIEVAL_SCORE_MIN] = stats.low
            out[sc.RAG_RETRIEVAL_SCORE_MAX] = stats.top
            out[sc.RAG_RETRIEVAL_SCORE_AVG] = stats.mean
            if runtime.detailed_metrics:
                _instruments.instruments().retrieval_top_score.record(stats.top, self._dims, context=self._context)
        threshold = runtime.low_score if runtime.low_score is not None else self._min_score
        self._quality = extract.quality(count, stats, threshold)

    def _record_each_score(self, scores: Iterable[float | None]) -> None:
        record = _instruments.instruments().retrieval_score.record
        for score in scores:
            if score is not None and math.isfinite(score):
                record(score, self._dims, context=self._context)

    def _record_documents(self, items: Sequence[Any], out: dict[str, AttributeValue]) -> None:
        listed = []
        for doc in map(extract.to_document, items[:MAX_DOCUMENTS_ON_SPAN]):
            entry: dict[str, Any] = {}
            if doc.id is not None:
                entry["id"] = doc.id
            if doc.score is not None and math.isfinite(doc.score):
                entry["score"] = round(doc.score, 6)
            text = content_policy.text(doc.text, enabled=True)
            if text is not None:
                entry["content"] = text
            listed.append(entry)
        if any(listed):
            out[sc.GEN_AI_RETRIEVAL_DOCUMENTS] = json.dumps(listed, ensure_ascii=False)

    def _record_openinference_documents(self, items: Sequence[Any], out: dict[str, AttributeValue]) -> None:
        """OpenInference's flattened documents: id and score, and the text only with capture on."""
        prefix = sc.OI_RERANKER_OUTPUT_DOCUMENTS if self.spec.kind is StepKind.RERANK else sc.OI_RETRIEVAL_DOCUMENTS
        capturing = self._capturing()
        for i, doc in enumerate(map(extract.to_document, items[:MAX_DOCUMENTS_ON_SPAN])):
            if doc.id is not None:
                out[f"{prefix}.{i}.document.id"] = doc.id
            if doc.score is not None and math.isfinite(doc.score):
                out[f"{prefix}.{i}.document.score"] = doc.score
            text = content_policy.text(doc.text, enabled=True) if capturing else None
            if text is not None:
                out[f"{prefix}.{i}.document.content"] = text

    def _record_messages(self, found: Any, out: dict[str, AttributeValue]) -> None:
        if isinstance(found, Sequence) and not isinstance(found, (str, bytes)):
            out[sc.RAG_PROMPT_MESSAGES] = len(found)
            if self._capturing():
                converted = messages.input_messages(found, content_policy.clean)
                if converted:
                    out[sc.GEN_AI_INPUT_MESSAGES] = messages.dumps(converted)

    def _record_response(self, response: Any, out: dict[str, AttributeValue], *, count: bool,
                         finish_reason: str | None = None) -> None:
        if count and isinstance(response, str):
            out[sc.RAG_GENERATION_RESPONSE_CHARS] = len(response)
        if isinstance(response, str) and (self._capturing() or self._emits_details()):
            facts = ResponseFacts(choices={0: Choice(text=[response], finish_reason=finish_reason)})
            self._record_outputs(facts, out)
        if runtime.openinference:
            self._capture(sc.OI_OUTPUT_VALUE, response, out)

    def _emits_details(self) -> bool:
        """The details event is this step's to emit: content goes to events and no HTTP call emitted it."""
        return content_policy.events and self.spec.kind is StepKind.GENERATION and not self.client_call_recorded

    def _record_outputs(self, facts: ResponseFacts, out: dict[str, AttributeValue]) -> None:
        found = messages.output_messages(facts, content_policy.clean, with_finish_reason=not runtime.genai_latest)
        if found is None:
            return
        if self._capturing():
            out[sc.GEN_AI_OUTPUT_MESSAGES] = messages.dumps(found)
        if self._emits_details():
            self.span.set_attributes(out)
            _details.emit(self.span, None, found)

    def _record_usage(self, usage: Usage, out: dict[str, AttributeValue]) -> None:
        out.update(_usage.span_attributes(usage))
        if self.client_call_recorded or not usage.known:
            return
        record, spec, dims = _instruments.instruments().token_usage.record, self.spec, self._dims
        for tokens, token_type in _usage.token_records(usage):
            record(tokens, spec.usage_attributes(dims, token_type), context=self._context)
        usd = cost.record(spec.usage_attributes(dims, "input"), usage)
        if usd is not None:
            out[sc.RAG_COST] = usd
        self.tally(usage.input, usage.output, usd)

    def tally(self, input_tokens: int | None, output_tokens: int | None, usd: float | None) -> None:
        """Add one model call's tokens and cost to the pipeline this step belongs to (its span shows the sums)."""
        pipeline = self if self._usage is not None else self._pipeline
        if pipeline is not None and pipeline._usage is not None:
            totals = pipeline._usage
            totals[0] += input_tokens or 0
            totals[1] += output_tokens or 0
            if usd is not None:
                totals[2] += usd
                totals[3] = 1

    def _record_completion(self, done: ResponseFacts, out: dict[str, AttributeValue]) -> None:
        if done.model is not None:
            out[sc.GEN_AI_RESPONSE_MODEL] = done.model
        if done.response_id is not None:
            out[sc.GEN_AI_RESPONSE_ID] = done.response_id
        if done.reasoning_chars:
            out[sc.RAG_GENERATION_REASONING_CHARS] = done.reasoning_chars
        if done.finish_reasons:
            out[sc.GEN_AI_RESPONSE_FINISH_REASONS] = done.finish_reasons
        if done.text_chars or done.choices:
            out[sc.RAG_GENERATION_RESPONSE_CHARS] = done.text_chars
        if done.usage.known:
            self._record_usage(done.usage, out)
        if done.choices:
            self._record_outputs(done, out)
            if runtime.openinference:
                self._capture(sc.OI_OUTPUT_VALUE, done.text, out)

    # -- reading facts from calls (decorators) -----------------------------------------------------
    def read_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        out: dict[str, AttributeValue] = {}
        for name, index, fact, default in self.spec.probes:
            if name in kwargs:
                value = kwargs[name]
            elif index is not None and index < len(args):
                value = args[index]
            elif default is not None:
                value = default
            else:
                continue
            if fact == "top_k" and _int(value):
                out[sc.GEN_AI_RETRIEVAL_TOP_K] = value
            elif fact == "top_n" and _int(value):
                out[sc.RAG_RERANK_TOP_N] = value
            elif fact == "query" and isinstance(value, str):
                self._capture(sc.GEN_AI_RETRIEVAL_QUERY_TEXT, value, out)
                if runtime.openinference:
                    self._capture(sc.OI_INPUT_VALUE, value, out)
            elif fact == "conversation_id" and isinstance(value, str):
                self.conversation_id = out[sc.GEN_AI_CONVERSATION_ID] = value
            elif fact in ("inputs", "candidates"):
                key = sc.RAG_EMBEDDING_INPUTS if fact == "inputs" else sc.RAG_RERANK_INPUT_DOCUMENTS
                if isinstance(value, str):
                    out[key] = 1
                elif isinstance(value, Sequence):
                    out[key] = len(value)
        if out:
            self.span.set_attributes(out)

    def read_result(self, result: Any) -> None:
        spec = self.spec
        if spec.extractor is not None:
            spec.extractor(result, self)
            return
        kind = spec.kind
        out: dict[str, AttributeValue] = {}
        if kind in LISTING:
            items = extract.hit_list(result)
            if items is not None:
                self._record_hits(items, out)
        elif kind is StepKind.EMBEDDING:
            shape = extract.embedding_shape(result)
            if shape is not None:
                out[sc.RAG_EMBEDDING_INPUTS], out[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = shape
        elif kind is StepKind.PROMPT:
            self._record_messages(result, out)
        elif kind is StepKind.GENERATION:
            done = ResponseFacts.of(result, keep_text=self._capturing() or self._emits_details())
            if done is not None:
                self._record_completion(done, out)
        if out:
            self.span.set_attributes(out)

    # -- ending ------------------------------------------------------------------------------------
    def finish(self, exc: BaseException | None = None) -> None:
        """End the span and make the step's duration record; later calls do nothing."""
        if self.done:
            return
        self.done = True
        duration = perf_counter() - self._start
        span, spec = self.span, self.spec
        try:
            ins = _instruments.instruments()
            if exc is None:
                attrs = self._ok
                if self._quality is not None:
                    attrs = spec.with_quality(self._quality) if attrs is spec.ok_attributes else {
                        **attrs, sc.RAG_RETRIEVAL_QUALITY: self._quality}
            elif isinstance(exc, CANCELLATIONS):
                span.set_attribute(sc.RAG_OUTCOME, Outcome.CANCELLED.value)
                attrs = {**self._ok, sc.RAG_OUTCOME: Outcome.CANCELLED.value}
            else:
                etype = error_type(exc)
                span.set_attribute(sc.ERROR_TYPE, etype)
                span.record_exception(exc, escaped=True)
                span.set_status(Status(StatusCode.ERROR, f"{etype}: {exc}"))
                attrs = {**self._ok, sc.RAG_OUTCOME: Outcome.ERROR.value,
                         sc.ERROR_TYPE: limiter.value(sc.ERROR_TYPE, etype)}
                ins.step_errors.add(1, attrs, context=self._context)
            if spec.kind is StepKind.PIPELINE:
                ins.workflow_duration.record(duration, attrs, context=self._context)
                self._set_totals()
            else:
                ins.step_duration.record(duration, attrs, context=self._context)
                if runtime.detailed_metrics and spec.operation is not None and not self.client_call_recorded:
                    ins.operation_duration.record(
                        duration, {**attrs, sc.GEN_AI_OPERATION_NAME: spec.operation.value}, context=self._context
                    )
        except Exception as internal:
            report_internal_error("finishing a step", internal)
        finally:
            try:
                span.end()
            except Exception as internal:
                report_internal_error("ending a span", internal)


    def _set_totals(self) -> None:
        totals = self._usage
        if totals and (totals[0] or totals[1]):
            attrs: dict[str, AttributeValue] = {sc.GEN_AI_USAGE_INPUT_TOKENS: int(totals[0]),
                                                sc.GEN_AI_USAGE_OUTPUT_TOKENS: int(totals[1])}
            if totals[3]:
                attrs[sc.RAG_COST] = totals[2]
            self.span.set_attributes(attrs)


def openinference_call(kind: StepKind, model: str | None) -> dict[str, AttributeValue]:
    """OpenInference's span kind and model for an HTTP model call of ``kind`` (generation or embedding)."""
    return _openinference(kind, model)


def tally(input_tokens: int | None, output_tokens: int | None, usd: float | None) -> None:
    """For HTTP client instrumentations: add a model call's tokens and cost to the current pipeline."""
    step = current_step()
    if step is not None:
        step.tally(input_tokens, output_tokens, usd)


class _NoopStep(Step):
    """Yielded when telemetry is disabled: accepts every call, records nothing."""

    __slots__ = ()

    def record(self, **facts: Unpack[StepFacts]) -> None:
        pass

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        pass

    def __enter__(self) -> Step:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        pass


NOOP_STEP: Final[Step] = _NoopStep(StepSpec(StepKind.PIPELINE, "noop"), trace.INVALID_SPAN)
NOOP_STEP.done = True


def _to_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
