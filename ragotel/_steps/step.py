"""The running step (``Step``): one span and the step metrics, recorded through the GenAI recorder.

What a step records by default is chosen for what dashboards and alerts read, at the fewest SDK
records (each costs about as much as a quarter of a span):

* one duration record: ``rag.step.duration``, or ``rag.pipeline.duration`` for a pipeline,
  carrying ``rag.retrieval.quality`` (``ok``/``empty``/``low_score``) for retrievals whose hits were read,
  so empty and weak retrievals cost no record of their own;
* sums only ever divided by a step count — documents returned and kept, chunks and characters of
  context — go to ``ragotel._core.instruments.SummedCounter`` s, not SDK records;
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

import json
import math
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any, Final, TypedDict, Unpack

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core import runtime
from ragotel._core.cardinality import limiter
from ragotel._core.compat import SPAN_KEY
from ragotel._core.safe import report_internal_error
from ragotel._genai import content, hits, messages
from ragotel._genai.operation import ENCLOSING, Counting, MetricAttributes, Operation, openinference_attributes
from ragotel._genai.protocol import Choice, ResponseFacts, Usage
from ragotel._steps.spec import Spec
from ragotel.semconv import Outcome, StepKind

LISTING: Final = frozenset({StepKind.RETRIEVAL, StepKind.RERANK})
# The members compared on every call, read once: on Python 3.11 reading one off its Enum class (``StepKind.PROMPT``)
# goes through the metaclass's ``__getattr__`` hook, some 70 ns against 5 for a module global.
_GENERATION, _PIPELINE = StepKind.GENERATION, StepKind.PIPELINE
_PROMPT, _EMBEDDING = StepKind.PROMPT, StepKind.EMBEDDING
_BY_CALL: Final = Counting.CALL
# The retrieved documents kept on a span (with content capture on): enough to debug ranking, bounded.
MAX_DOCUMENTS_ON_SPAN: Final = 20
# Record(...) facts that make a Usage, in its field order.
_USAGE_FACTS: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def current_step() -> Step | None:
    """The innermost ragotel step running in this context, if any."""
    step = otel_context.get_value(ENCLOSING)
    return step if isinstance(step, Step) else None


class StepFacts(TypedDict, total=False):
    """What ``Step.record`` accepts; every fact is optional and ``None`` means unknown."""

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
    "top_k": sc.GEN_AI_REQUEST_TOP_K,
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




def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Step(Operation):
    """A running step. Record what the code knows; everything here is safe to call and never raises.

    ``step.span`` is the OpenTelemetry span, for anything ``record`` does not cover::

        with ragotel.retrieval("search", data_source="faiss") as step:
            hits = index.search(query, k)
            step.record(documents=hits, top_k=k, index_size=index.ntotal)
    """

    __slots__ = ("_dims", "_dims_key", "_min_score", "_ok", "_quality", "_token", "spec")

    def __init__(self, spec: Spec, span: Span, current: Context | None = None,
                 conversation_id: str | None = None) -> None:
        values = dict(otel_context.get_current() if current is None else current)
        parent = values.get(ENCLOSING)
        values[SPAN_KEY] = span
        values[ENCLOSING] = self
        Operation.__init__(self, spec.kind, span, Context(values), _instruments.instruments(),
                           parent if isinstance(parent, Operation) else None, conversation_id)
        self.spec = spec
        self._token: object = None
        self._dims = spec.dimensions
        self._dims_key = spec.dimensions_key
        self._ok = spec.ok_attributes
        self._min_score = spec.min_score
        self._quality: str | None = None

    # -- what wrappers and integrations use: start, run the body, record what it found, end -------------
    @classmethod
    def start(cls, spec: Spec, known: Mapping[str, AttributeValue] | None = None, *, over: Span | None = None) -> Step:
        """Start the span and the clock (wrappers, the context manager and integrations, which pass what
        they ``known`` of the call so that the span starts with it).

        ``over``: a span another instrumentation started and ends (the database CLIENT span around a driver's
        execute): the step's attributes and what it records go onto that span, and it makes the records any step
        makes, but ending it leaves the span to its owner, so one operation is one span."""
        current = otel_context.get_current()
        found = current.get(ENCLOSING)
        parent = found if isinstance(found, Operation) else None
        conversation = spec.conversation_id or (parent.conversation_id if parent is not None else None)
        now = runtime.current  # one snapshot for the whole start
        try:
            attributes = spec.oi_span_attributes if now.openinference else spec.span_attributes
            if known:
                attributes = {**attributes, **known}
            if conversation is not None:
                attributes = {**attributes, sc.GEN_AI_CONVERSATION_ID: conversation}
            if spec.kind is _GENERATION and parent is not None and (used := parent.pipeline_prompt()):
                attributes = {**attributes, **used}
            elif spec.kind is _PIPELINE and now.genai_latest:  # a workflow is an agent invocation
                attributes = _instruments.as_agent(attributes)
            if over is None:
                span = _instruments.tracer().start_span(spec.span_name, kind=spec.span_kind, attributes=attributes)
            else:
                span = over
                span.set_attributes(attributes)
        except Exception as exc:
            report_internal_error("starting a span", exc)
            span = trace.INVALID_SPAN if over is None else over
        step = cls(spec, span, current, conversation)
        step.owns_span = over is None
        if spec.kind is _PROMPT:
            step.use_prompt(spec.span_attributes)
        step.started = perf_counter()
        return step

    @property
    def data_source(self) -> str | None:
        """``gen_ai.data_source.id`` of this step (a retrieval's index or store), if one was given."""
        found = self._dims.get(sc.GEN_AI_DATA_SOURCE_ID)
        return found if isinstance(found, str) else None

    # -- the one activation mechanism (once per run of the body) -------------------------------------
    def __enter__(self) -> Step:
        self._token = otel_context.attach(self.context)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception as internal:
                report_internal_error("restoring the context", internal)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one call of the body with this step's span current; a failure ends the step, recorded, and
        reaches the caller unchanged (wrappers and integrations; they end a success themselves)."""
        try:
            with self:
                return fn(*args, **kwargs)
        except BaseException as exc:
            self.end(exc)
            raise

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
        texts are content, recorded on the span only when content capture is on. See ``StepFacts``.

        Examples:
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
        ins = self.ins
        for fact, counter in (("results_kept", ins.retrieval_documents_kept), ("chunks", ins.prompt_context_chunks),
                              ("context_chars", ins.prompt_context_size)):
            if _int(given.get(fact)):
                counter.add(given[fact], self._dims_key, self._dims)
        if "documents" in given:
            items = hits.hit_list(given["documents"])
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
            if runtime.current.openinference:
                self._capture(sc.OI_INPUT_VALUE, given["query"], out)
        if isinstance(given.get("conversation_id"), str):
            self.conversation_id = out[sc.GEN_AI_CONVERSATION_ID] = given["conversation_id"]
        if "input_tokens" in given or "output_tokens" in given:
            self._record_usage(Usage(*(given.get(f) if _int(given.get(f)) else None for f in _USAGE_FACTS)), out)
        if out:
            self.span.set_attributes(out)

    def _capturing(self) -> bool:
        enabled = self.spec.capture_content
        return runtime.current.content_spans if enabled is None else enabled

    def _capture(self, key: str, value: Any, out: dict[str, AttributeValue]) -> None:
        """Content for the span, only when capture is on (the policy truncates and redacts)."""
        if self._capturing():
            text = content.text(value if isinstance(value, str) else _to_json(value), enabled=True)
            if text is not None:
                out[key] = text
                if key in sc.OI_MIME_TYPES:
                    out[sc.OI_MIME_TYPES[key]] = sc.OI_TEXT if isinstance(value, str) else sc.OI_JSON

    def _set_dimensions(self, out: dict[str, AttributeValue], *, model: Any, data_source: Any) -> None:
        """Model and data source also label the step's metrics."""
        dims = dict(self._dims)
        for key, value in ((sc.GEN_AI_REQUEST_MODEL, model), (sc.GEN_AI_DATA_SOURCE_ID, data_source)):
            if value is not None:
                out[key] = str(value)
                dims[key] = limiter.value(key, str(value))
        if model is not None and runtime.current.openinference:
            out.update(openinference_attributes(self.spec.kind, model))
        self._dims, self._dims_key = dims, frozenset(dims.items())
        self._ok = {**dims, sc.RAG_OUTCOME: Outcome.OK.value}

    def _record_hits(self, items: Sequence[Any], out: dict[str, AttributeValue]) -> None:
        count = len(items)
        self.ins.retrieval_documents.add(count, self._dims_key, self._dims)
        self._quality = self.record_scores(count, hits.scores(items) if count else None, out, self._dims,
                                           self._min_score)
        if runtime.current.detailed_metrics and count:
            self.record_each_score(map(hits.score_of, items[: hits.MAX_SCORED_HITS]), self._dims)
        if self._capturing():
            self._record_documents(items, out)
        if runtime.current.openinference:
            self._record_openinference_documents(items, out)

    def _record_streamed_hits(self, count: int, scores: list[float]) -> None:
        """What a generator retrieval yielded: the count and the scores of the hits (wrappers only)."""
        try:
            self.found(count, hits.scores(scores) if scores else None, distances=False, counted=True)
            if runtime.current.detailed_metrics:
                self.record_each_score(scores, self._dims)
        except Exception as exc:
            report_internal_error("recording streamed hits", exc)

    def found(self, count: int, stats: hits.Scores | None, *, distances: bool, counted: bool,
              documents: Sequence[hits.Document] | None = None) -> None:
        """A search's results as read without the hits themselves (a generator's tally, an instrumentation).
        ``counted``: this search is the retrieval itself, not a sub-step of the caller's retrieval step, which
        counts and judges the documents it returns (so nothing is counted twice). ``documents``: the hits as an
        integration read them, kept on the span under content capture or OpenInference as ``record`` keeps
        them."""
        out: dict[str, AttributeValue] = {}
        quality = self.record_scores(count, stats, out, self._dims, self._min_score, distances=distances)
        if counted:
            self._quality = quality
            self.ins.retrieval_documents.add(count, self._dims_key, self._dims)
        if documents:
            if self._capturing():
                self._record_documents(documents, out)
            if runtime.current.openinference:
                self._record_openinference_documents(documents, out)
        self.span.set_attributes(out)

    def _record_documents(self, items: Sequence[Any], out: dict[str, AttributeValue]) -> None:
        listed = []
        for doc in map(hits.to_document, items[:MAX_DOCUMENTS_ON_SPAN]):
            entry: dict[str, Any] = {}
            if doc.id is not None:
                entry["id"] = doc.id
            if doc.score is not None and math.isfinite(doc.score):
                entry["score"] = round(doc.score, 6)
            text = content.text(doc.text, enabled=True)
            if text is not None:
                entry["content"] = text
            listed.append(entry)
        if any(listed):
            out[sc.GEN_AI_RETRIEVAL_DOCUMENTS] = json.dumps(listed, ensure_ascii=False)

    def _record_openinference_documents(self, items: Sequence[Any], out: dict[str, AttributeValue]) -> None:
        """OpenInference's flattened documents: id and score, and the text only with capture on."""
        prefix = sc.OI_RERANKER_OUTPUT_DOCUMENTS if self.spec.kind is StepKind.RERANK else sc.OI_RETRIEVAL_DOCUMENTS
        capturing = self._capturing()
        for i, doc in enumerate(map(hits.to_document, items[:MAX_DOCUMENTS_ON_SPAN])):
            if doc.id is not None:
                out[f"{prefix}.{i}.document.id"] = doc.id
            if doc.score is not None and math.isfinite(doc.score):
                out[f"{prefix}.{i}.document.score"] = doc.score
            text = content.text(doc.text, enabled=True) if capturing else None
            if text is not None:
                out[f"{prefix}.{i}.document.content"] = text

    def _record_messages(self, found: Any, out: dict[str, AttributeValue]) -> None:
        if isinstance(found, Sequence) and not isinstance(found, (str, bytes)):
            out[sc.RAG_PROMPT_MESSAGES] = len(found)
            if self._capturing():
                converted = messages.input_messages(found, content.clean)
                if converted:
                    out[sc.GEN_AI_INPUT_MESSAGES] = messages.dumps(converted)

    def _record_response(self, response: Any, out: dict[str, AttributeValue], *, count: bool,
                         finish_reason: str | None = None) -> None:
        if count and isinstance(response, str):
            out[sc.RAG_GENERATION_RESPONSE_CHARS] = len(response)
        if isinstance(response, str) and (self._capturing() or self._emits_details()):
            self._record_outputs(ResponseFacts(choices={0: Choice(text=[response], finish_reason=finish_reason)}), out)
        if runtime.current.openinference:
            self._capture(sc.OI_OUTPUT_VALUE, response, out)

    def _emits_details(self) -> bool:
        """The details event is this step's to emit: content goes to events and no client call emitted it."""
        return (runtime.current.content_events and self.spec.kind is _GENERATION
                and self.counting is not _BY_CALL)

    def _record_outputs(self, facts: ResponseFacts, out: dict[str, AttributeValue]) -> None:
        found = self.record_outputs(facts, out, on_span=self._capturing())
        if found is not None and self._emits_details():
            self.emit_details(out, None, found)

    def _record_usage(self, found: Usage, out: dict[str, AttributeValue]) -> None:
        self.record_usage(found, out, None if self.counting is _BY_CALL else self.spec.usage_attributes(self._dims))

    def _record_completion(self, done: ResponseFacts, out: dict[str, AttributeValue]) -> None:
        self.response_attributes(done, out)
        if done.usage.known:
            self._record_usage(done.usage, out)
        if done.choices:
            self._record_outputs(done, out)
            if runtime.current.openinference:
                self._capture(sc.OI_OUTPUT_VALUE, done.text, out)

    # -- reading facts from calls (wrappers) -------------------------------------------------------
    def _read_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
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
                out[sc.GEN_AI_REQUEST_TOP_K] = value
            elif fact == "top_n" and _int(value):
                out[sc.RAG_RERANK_TOP_N] = value
            elif fact == "query" and isinstance(value, str):
                self._capture(sc.GEN_AI_RETRIEVAL_QUERY_TEXT, value, out)
                if runtime.current.openinference:
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

    def _read_result(self, result: Any) -> None:
        spec = self.spec
        if spec.extractor is not None:
            spec.extractor(result, self)
            return
        kind = spec.kind
        out: dict[str, AttributeValue] = {}
        if kind in LISTING:
            items = hits.hit_list(result)
            if items is not None:
                self._record_hits(items, out)
        elif kind is _EMBEDDING:
            shape = hits.embedding_shape(result)
            if shape is not None:
                out[sc.RAG_EMBEDDING_INPUTS], out[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = shape
        elif kind is _PROMPT:
            self._record_messages(result, out)
        elif kind is _GENERATION:
            done = ResponseFacts.of(result, keep_text=self._capturing() or self._emits_details())
            if done is not None:
                self._record_completion(done, out)
        if out:
            self.span.set_attributes(out)

    # -- ending (the one path is Operation._end) ------------------------------------------------------
    def _conclude(self) -> MetricAttributes:
        if self._quality is None:
            return self._ok
        ok = self._ok
        return self.spec.with_quality(self._quality) if ok is self.spec.ok_attributes else {
            **ok, sc.RAG_RETRIEVAL_QUALITY: self._quality}

    def _emits_exception_event(self) -> bool:
        return self.kind is StepKind.GENERATION and self.counting is not Counting.CALL

    def _timed(self, duration: float, ok: MetricAttributes, outcome: MetricAttributes, etype: str | None) -> None:
        ins = self.ins
        if self.kind is _PIPELINE:
            ins.workflow_duration.record(duration, outcome, context=self.context)
            self.set_totals()
            return
        ins.step_duration.record(duration, outcome, context=self.context)
        operation = self.spec.operation
        if runtime.current.detailed_metrics and operation is not None and self.counting is not _BY_CALL:
            ins.operation_duration.record(duration, {**outcome, sc.GEN_AI_OPERATION_NAME: operation.value},
                                          context=self.context)


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


NOOP_STEP: Final[Step] = _NoopStep(Spec(StepKind.PIPELINE, "noop"), trace.INVALID_SPAN, Context())
NOOP_STEP.ended = True


def _to_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
