"""The tracer and the metric instruments every ragotel integration records into.

They are created on first use from the global providers, through OpenTelemetry's proxies: a
decorator applied at import time, before ``ragotel.configure`` runs (or before the application
installs its own providers), still reports to whichever providers are set later. An instrumentation
given its own providers (``tracer_provider=`` / ``meter_provider=``) takes its tracer and instruments
from ``tracer_for`` / ``instruments_for`` instead: one set per provider, made on first use.

Counts that dashboards only ever sum (documents returned and kept, chunks and characters sent) are
``SummedCounter`` s: added up here under a lock and handed to the SDK as finished points when a
reader collects, which costs a step a fraction of one SDK record.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation, UpDownCounter, _Gauge
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._version import __version__

SCOPE = "ragotel"


class SummedCounter:
    """A monotonic counter summed in-process and exported through an ``ObservableCounter``.

    ``add`` takes a hashable ``key`` standing for ``attributes`` (callers precompute it once per
    attribute set), so the hot path is one lock and one dict lookup.
    """

    __slots__ = ("_lock", "_totals")

    def __init__(self, meter: Meter, name: str, unit: str, description: str) -> None:
        self._totals: dict[Hashable, list[object]] = {}
        self._lock = threading.Lock()
        meter.create_observable_counter(name, callbacks=[self._observe], unit=unit, description=description)

    def add(self, amount: float, key: Hashable, attributes: dict[str, AttributeValue]) -> None:
        with self._lock:
            entry = self._totals.get(key)
            if entry is None:
                self._totals[key] = [attributes, amount]
            else:
                entry[1] += amount  # type: ignore[operator]

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            entries = [(attrs, total) for attrs, total in self._totals.values()]
        return [Observation(total, attrs) for attrs, total in entries]  # type: ignore[arg-type]


class IndexAges:
    """When each loaded index part was built; ``rag.index.age`` is observed from it at collection, so the
    age keeps growing between loads without anything recording it."""

    __slots__ = ("_built", "_lock")

    def __init__(self, meter: Meter) -> None:
        self._built: dict[frozenset[tuple[str, AttributeValue]], tuple[dict[str, AttributeValue], float]] = {}
        self._lock = threading.Lock()
        meter.create_observable_gauge(sc.RAG_INDEX_AGE, callbacks=[self._observe], unit=sc.UNIT_SECONDS,
                                      description="Seconds since the loaded index part was built.")

    def set(self, built_at: float, attributes: dict[str, AttributeValue]) -> None:
        with self._lock:
            self._built[frozenset(attributes.items())] = (dict(attributes), built_at)

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        if runtime.current.disabled:
            return []
        now = time.time()
        with self._lock:
            entries = list(self._built.values())
        return [Observation(max(0.0, now - built), attrs) for attrs, built in entries]


class Records(Protocol):
    """What recorders call on a histogram; the latest conventions' splits below take the same call."""

    def record(self, amount: float, attributes: dict[str, AttributeValue] | None = None,
               context: Context | None = None) -> None: ...


class DurationsByOperation:
    """``gen_ai.client.operation.duration`` under the latest conventions, which time chat and text completion
    on ``gen_ai.client.inference.duration``, embeddings and retrieval on metrics of their own
    (``ragotel.semconv.LATEST_DURATIONS``); other operations stay where they were."""

    __slots__ = ("_by_operation", "_other")

    def __init__(self, by_operation: dict[str, Histogram], other: Histogram) -> None:
        self._by_operation, self._other = by_operation, other

    def record(self, amount: float, attributes: dict[str, AttributeValue] | None = None,
               context: Context | None = None) -> None:
        operation = attributes.get(sc.GEN_AI_OPERATION_NAME) if attributes is not None else None
        target = self._by_operation.get(operation, self._other) if isinstance(operation, str) else self._other
        target.record(amount, attributes, context=context)


class AgentDurations:
    """``rag.pipeline.duration`` under the latest conventions: a pipeline is an agent invocation, timed on
    ``gen_ai.invoke_agent.duration`` and named by ``gen_ai.agent.name``."""

    __slots__ = ("_histogram",)

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram

    def record(self, amount: float, attributes: dict[str, AttributeValue] | None = None,
               context: Context | None = None) -> None:
        self._histogram.record(amount, as_agent(attributes or {}), context=context)


def as_agent(attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    """A pipeline's attributes as the latest conventions name them: ``gen_ai.workflow.name`` becomes
    ``gen_ai.agent.name`` (for its span and ``gen_ai.invoke_agent.duration``)."""
    return {sc.GEN_AI_AGENT_NAME if k == sc.GEN_AI_WORKFLOW_NAME else k: v for k, v in attributes.items()}


class TokenCounters:
    """``gen_ai.client.token.usage`` records under the latest conventions: each token type of a chat or text
    completion adds to its own counter, by ``gen_ai.token.modality`` instead of ``gen_ai.token.type``; input
    and output also go to the per-call histograms. An embeddings call's input tokens go to its own per-call
    histogram only."""

    __slots__ = ("_counters", "_embeddings", "_per_call")

    def __init__(self, meter: Meter) -> None:
        def per_call(name: str, description: str) -> Histogram:
            return meter.create_histogram(name, unit=sc.UNIT_TOKEN, description=description,
                                          explicit_bucket_boundaries_advisory=list(sc.TOKEN_BUCKETS))

        self._counters = {kind: meter.create_counter(name, unit=sc.UNIT_TOKEN, description=f"Tokens: {kind}.")
                          for kind, name in sc.INFERENCE_USAGE_COUNTERS.items()}
        self._per_call = {
            sc.TokenType.INPUT.value: per_call(sc.GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS,
                                               "Input tokens of each call."),
            sc.TokenType.OUTPUT.value: per_call(sc.GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS,
                                                "Output tokens of each call."),
        }
        self._embeddings = per_call(sc.GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS,
                                    "Input tokens of each embeddings call.")

    def record(self, amount: float, attributes: dict[str, AttributeValue] | None = None,
               context: Context | None = None) -> None:
        attrs = dict(attributes or ())
        kind = str(attrs.pop(sc.GEN_AI_TOKEN_TYPE, ""))
        if attrs.get(sc.GEN_AI_OPERATION_NAME) == sc.Operation.EMBEDDINGS.value:
            if kind == sc.TokenType.INPUT.value:
                self._embeddings.record(amount, attrs, context=context)
            return
        counter = self._counters.get(kind)
        if counter is None:  # a token type the conventions have no counter for
            return
        counter.add(amount, {**attrs, sc.GEN_AI_TOKEN_MODALITY: sc.TOKEN_MODALITY_UNKNOWN}, context=context)
        per_call = self._per_call.get(kind)
        if per_call is not None:
            per_call.record(amount, attrs, context=context)


@dataclass(frozen=True, slots=True)
class Instruments:
    step_duration: Histogram
    step_errors: Counter
    operation_duration: Records
    workflow_duration: Records
    token_usage: Records
    time_to_first_chunk: Records
    time_per_output_chunk: Records
    retrieval_top_score: Histogram
    retrieval_score: Histogram
    retrieval_documents: SummedCounter
    retrieval_documents_kept: SummedCounter
    prompt_context_size: SummedCounter
    prompt_context_chunks: SummedCounter
    attribute_overflow: Counter
    cost: Counter
    http_server_duration: Histogram
    active_requests: UpDownCounter
    index_items: _Gauge
    index_load_duration: _Gauge
    index_dimension: _Gauge
    index_ages: IndexAges
    index_documents_written: Counter
    index_chunks_written: Counter
    index_chunks_embedded: Counter
    http_request_body_size: Histogram
    http_response_body_size: Histogram
    evaluation_score: Histogram
    evaluations: SummedCounter


_LATEST_DURATION_DESCRIPTIONS = {
    sc.GEN_AI_CLIENT_INFERENCE_DURATION: "GenAI inference duration.",
    sc.GEN_AI_CLIENT_EMBEDDINGS_DURATION: "GenAI embeddings duration.",
    sc.GEN_AI_RETRIEVAL_DURATION: "GenAI retrieval duration.",
}


def _by_operation(histogram: Callable[[str, str, str, tuple[float, ...]], Histogram]) -> dict[str, Histogram]:
    """The latest conventions' duration histogram of each operation (chat and text completion share one)."""
    made = {name: histogram(name, sc.UNIT_SECONDS, description, sc.DURATION_BUCKETS)
            for name, description in _LATEST_DURATION_DESCRIPTIONS.items()}
    return {operation: made[name] for operation, name in sc.LATEST_DURATIONS.items()}


# One tracer and one set of instruments per GenAI mode: each carries the schema URL of the conventions it
# follows, and configure() may pick the mode after a decorator first asked for them.
def schema_url(latest: bool) -> str | None:
    return sc.SCHEMA_URL_LATEST if latest else sc.SCHEMA_URL_DEFAULT


def tracer() -> trace.Tracer:
    return _tracer(runtime.current.genai_latest)


def instruments() -> Instruments:
    return _instruments(runtime.current.genai_latest)


def emit_event(context: Context, name: str, severity: SeverityNumber, attributes: Mapping[str, Any], *,
               severity_text: str | None = None) -> None:
    """Emit the event ``name``, a log record in ``context`` (so parented to its span), through the global
    logger provider."""
    _logs.get_logger(SCOPE, __version__).emit(LogRecord(
        context=context, severity_number=severity, severity_text=severity_text, event_name=name,
        attributes=attributes,
    ))


@cache
def _tracer(latest: bool) -> trace.Tracer:
    return trace.get_tracer(SCOPE, __version__, schema_url=schema_url(latest))


@cache
def _instruments(latest: bool) -> Instruments:
    return _build(metrics.get_meter(SCOPE, __version__, schema_url=schema_url(latest)), latest)


_given_lock = threading.Lock()
_given_tracers: weakref.WeakKeyDictionary[Any, dict[bool, trace.Tracer]] = weakref.WeakKeyDictionary()
_given_instruments: weakref.WeakKeyDictionary[Any, dict[bool, Instruments]] = weakref.WeakKeyDictionary()


def tracer_for(provider: trace.TracerProvider | None) -> trace.Tracer:
    """ragotel's tracer from ``provider``; the global one (``tracer``) for ``None``."""
    if provider is None:
        return tracer()
    latest = runtime.current.genai_latest
    with _given_lock:
        made = _given_tracers.setdefault(provider, {})
        found = made.get(latest)
        if found is None:
            found = made[latest] = provider.get_tracer(SCOPE, __version__, schema_url=schema_url(latest))
        return found


def instruments_for(provider: metrics.MeterProvider | None) -> Instruments:
    """ragotel's instruments from ``provider``, made once per provider; the global ones for ``None``."""
    if provider is None:
        return instruments()
    latest = runtime.current.genai_latest
    with _given_lock:
        made = _given_instruments.setdefault(provider, {})
        found = made.get(latest)
        if found is None:
            meter = provider.get_meter(SCOPE, __version__, schema_url=schema_url(latest))
            found = made[latest] = _build(meter, latest)
        return found


def _build(meter: Meter, latest: bool = False) -> Instruments:
    def histogram(name: str, unit: str, description: str, buckets: tuple[float, ...]) -> Histogram:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
        )

    return Instruments(
        step_duration=histogram(
            sc.RAG_STEP_DURATION, sc.UNIT_SECONDS, "Duration of a RAG step.", sc.STEP_DURATION_BUCKETS
        ),
        step_errors=meter.create_counter(
            sc.RAG_STEP_ERRORS, unit=sc.UNIT_ERROR, description="RAG steps that failed."
        ),
        operation_duration=DurationsByOperation(
            _by_operation(histogram),
            histogram(sc.GEN_AI_CLIENT_OPERATION_DURATION, sc.UNIT_SECONDS, "GenAI operation duration.",
                      sc.DURATION_BUCKETS),
        ) if latest else histogram(
            sc.GEN_AI_CLIENT_OPERATION_DURATION, sc.UNIT_SECONDS, "GenAI operation duration.",
            sc.DURATION_BUCKETS,
        ),
        workflow_duration=AgentDurations(histogram(
            sc.GEN_AI_INVOKE_AGENT_DURATION, sc.UNIT_SECONDS, "RAG pipeline duration, end to end.",
            sc.DURATION_BUCKETS,
        )) if latest else histogram(
            sc.RAG_PIPELINE_DURATION, sc.UNIT_SECONDS, "RAG pipeline duration, end to end.",
            sc.DURATION_BUCKETS,
        ),
        token_usage=TokenCounters(meter) if latest else histogram(
            sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.UNIT_TOKEN, "Number of input and output tokens used.",
            sc.TOKEN_BUCKETS,
        ),
        # Both modes' conventions advise the duration buckets for the chunk timings too.
        time_to_first_chunk=histogram(
            sc.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK if latest else sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK,
            sc.UNIT_SECONDS,
            "Time from sending a streamed request to receiving its first chunk.",
            sc.DURATION_BUCKETS,
        ),
        time_per_output_chunk=histogram(
            sc.GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK if latest else sc.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK,
            sc.UNIT_SECONDS,
            "Time between consecutive streamed chunks after the first.",
            sc.DURATION_BUCKETS,
        ),
        retrieval_top_score=histogram(
            sc.RAG_RETRIEVAL_TOP_SCORE, sc.UNIT_SCORE, "Best score of each retrieval.", sc.SCORE_BUCKETS
        ),
        retrieval_score=histogram(
            sc.RAG_RETRIEVAL_SCORE, sc.UNIT_SCORE, "Score of each retrieved document.", sc.SCORE_BUCKETS
        ),
        retrieval_documents=SummedCounter(
            meter, sc.RAG_RETRIEVAL_DOCUMENTS, sc.UNIT_DOCUMENT, "Documents returned by retrievals."
        ),
        retrieval_documents_kept=SummedCounter(
            meter, sc.RAG_RETRIEVAL_DOCUMENTS_KEPT, sc.UNIT_DOCUMENT, "Documents kept after filtering."
        ),
        prompt_context_size=SummedCounter(
            meter, sc.RAG_PROMPT_CONTEXT_SIZE, sc.UNIT_CHAR, "Characters of retrieved context put into prompts."
        ),
        prompt_context_chunks=SummedCounter(
            meter, sc.RAG_PROMPT_CONTEXT_CHUNKS, sc.UNIT_CHUNK, "Chunks of retrieved context put into prompts."
        ),
        attribute_overflow=meter.create_counter(
            sc.RAG_METRIC_ATTRIBUTE_OVERFLOW, unit=sc.UNIT_VALUE,
            description="Metric attribute values recorded as _other because their key reached its cap.",
        ),
        cost=meter.create_counter(sc.RAG_COST, unit=sc.UNIT_USD, description="Cost of model calls."),
        http_server_duration=histogram(
            sc.HTTP_SERVER_REQUEST_DURATION, sc.UNIT_SECONDS, "Duration of HTTP server requests.",
            sc.HTTP_DURATION_BUCKETS,
        ),
        active_requests=meter.create_up_down_counter(
            sc.HTTP_SERVER_ACTIVE_REQUESTS, unit=sc.UNIT_REQUEST, description="HTTP server requests in flight."
        ),
        index_items=meter.create_gauge(
            sc.RAG_INDEX_ITEMS, unit=sc.UNIT_ITEM, description="Items in a loaded retrieval index part."
        ),
        index_load_duration=meter.create_gauge(
            sc.RAG_INDEX_LOAD_DURATION, unit=sc.UNIT_SECONDS, description="Duration of the last index part load."
        ),
        index_dimension=meter.create_gauge(
            sc.RAG_INDEX_DIMENSION, unit=sc.UNIT_DIMENSION, description="Length of the embedding vectors in an index."
        ),
        index_ages=IndexAges(meter),
        index_documents_written=meter.create_counter(
            sc.RAG_INDEX_DOCUMENTS_WRITTEN, unit=sc.UNIT_DOCUMENT, description="Documents written into an index."
        ),
        index_chunks_written=meter.create_counter(
            sc.RAG_INDEX_CHUNKS_WRITTEN, unit=sc.UNIT_CHUNK, description="Chunks written into an index."
        ),
        index_chunks_embedded=meter.create_counter(
            sc.RAG_INDEX_CHUNKS_EMBEDDED, unit=sc.UNIT_CHUNK, description="Chunks embedded for an index."
        ),
        http_request_body_size=histogram(
            sc.HTTP_SERVER_REQUEST_BODY_SIZE, sc.UNIT_BYTES, "Size of HTTP server request bodies.",
            sc.BODY_SIZE_BUCKETS,
        ),
        http_response_body_size=histogram(
            sc.HTTP_SERVER_RESPONSE_BODY_SIZE, sc.UNIT_BYTES, "Size of HTTP server response bodies.",
            sc.BODY_SIZE_BUCKETS,
        ),
        evaluation_score=histogram(sc.RAG_EVALUATION_SCORE, sc.UNIT_SCORE, "Evaluation scores.", sc.SCORE_BUCKETS),
        evaluations=SummedCounter(meter, sc.RAG_EVALUATIONS, sc.UNIT_EVALUATION, "Evaluations recorded."),
    )
