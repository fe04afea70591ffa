"""One GenAI operation's telemetry, recorded one way whoever observes it.

A model call, an embedding, a rerank or score, a retrieval: a step (a decorated function or a ``with``
block, :mod:`ragotel._steps`) and a client instrumentation (an HTTP call to an OpenAI-compatible server,
:mod:`ragotel.instrumentation`) both subclass :class:`Recorder` and record through it: response fields,
usage and its parts, cost, score statistics, the outcome (``error.type``, status, the error counter) and
captured messages. An instrumentation of another client is an adapter: it reads its request and
response into :class:`~ragotel._genai.protocol.ResponseFacts` and calls these methods.

Operations nest through the context, not through each other's internals: a step puts itself in its
context under :data:`ENCLOSING`; a client call started inside finds it with :func:`enclosing`, marks it
with :meth:`Recorder.take_over` when it records the same operation (so nothing is counted twice), and
adds its tokens and cost to the enclosing pipeline's totals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core.cardinality import limiter
from ragotel._core.instruments import Instruments
from ragotel._core.runtime import runtime
from ragotel._genai import cost, details, hits, messages, usage
from ragotel._genai.content import policy as content_policy
from ragotel._genai.protocol import ResponseFacts, Usage
from ragotel.semconv import Outcome, StepKind

MetricAttributes = dict[str, AttributeValue]

ENCLOSING: Final = otel_context.create_key("ragotel-operation")
"""Context key of the innermost operation a step opened; client calls started under it find it there."""


def enclosing(context: Context | None = None) -> Recorder | None:
    """The innermost operation recording in ``context`` (default: the current one), if any."""
    found = otel_context.get_value(ENCLOSING, context)
    return found if isinstance(found, Recorder) else None


def openinference_attributes(kind: StepKind, model: Any) -> dict[str, AttributeValue]:
    """OpenInference's span kind and, where one is named, its model key (``RAGOTEL_OPENINFERENCE``)."""
    attrs: dict[str, AttributeValue] = {sc.OI_SPAN_KIND: sc.OI_SPAN_KINDS[kind]}
    if model is not None:
        key = sc.OI_EMBEDDING_MODEL_NAME if kind is StepKind.EMBEDDING else sc.OI_LLM_MODEL_NAME
        attrs[key] = str(model)
    return attrs


def openinference_text(key: str, found: list[messages.Message], role: str | None = None) -> dict[str, AttributeValue]:
    """``input.value`` / ``output.value`` of a model call (``RAGOTEL_OPENINFERENCE``, content on spans): the
    text of the last message of ``role`` (of any role: the first message), already cut and redacted. Viewers
    list these as the call's input and output; without ``output.value`` Phoenix shows one it builds from the
    response id and model."""
    chosen = [m for m in found if m.get("role") == role][-1:] if role is not None else found[:1]
    texts = [p["content"] for m in chosen for p in m.get("parts", ())
             if p.get("type") == "text" and isinstance(p.get("content"), str)]
    return {key: "".join(texts), sc.OI_MIME_TYPES[key]: sc.OI_TEXT} if texts else {}


class Recorder:
    """The recording every GenAI operation shares. Subclasses time themselves and pick their duration metric.

    Methods taking ``out`` add span attributes to it; the caller sets them in one call. None raises into
    the caller's code path unless the subclass's own ``except`` would have caught it anyway.
    """

    __slots__ = ("_pipeline", "_totals", "call_recorded", "context", "conversation_id", "ins", "kind", "prompt",
                 "span")

    def __init__(self, kind: StepKind, span: Span, context: Context, ins: Instruments,
                 parent: Recorder | None, conversation_id: str | None) -> None:
        self.kind = kind
        self.span = span
        self.context = context
        """What metric records carry (so exemplars point at this span) and what the body runs in."""
        self.ins = ins
        self.conversation_id = conversation_id
        self.call_recorded = False
        """A client call under this operation recorded it (tokens, cost, operation duration): don't again."""
        # The pipeline this operation runs in adds up the tokens and cost of every call under it.
        self._pipeline: Recorder | None = None
        if parent is not None:
            self._pipeline = parent if parent.kind is StepKind.PIPELINE else parent._pipeline
        self._totals: list[float] | None = [0, 0, 0.0, 0] if kind is StepKind.PIPELINE else None
        self.prompt: Mapping[str, AttributeValue] = {}
        """A pipeline's: ``gen_ai.prompt.name`` / ``.version`` of the last prompt step in it, for its model calls."""

    def pipeline_prompt(self) -> Mapping[str, AttributeValue]:
        """The prompt template in use where this operation runs (its pipeline's last prompt step), for a
        model call's span: the conventions name the template on the call that used it."""
        pipeline = self if self.kind is StepKind.PIPELINE else self._pipeline
        return pipeline.prompt if pipeline is not None else {}

    def use_prompt(self, attributes: Mapping[str, AttributeValue]) -> None:
        """A prompt step's template becomes its pipeline's prompt in use."""
        if self._pipeline is not None:
            names = {k: attributes[k] for k in (sc.GEN_AI_PROMPT_NAME, sc.GEN_AI_PROMPT_VERSION) if k in attributes}
            if names:
                self._pipeline.prompt = names

    def take_over(self, kind: StepKind) -> bool:
        """Called by a client call started under this operation: True when it is this operation (same
        kind), which then leaves the call's own records to the call."""
        if kind is self.kind:
            self.call_recorded = True
            return True
        return False

    # -- response ----------------------------------------------------------------------------------
    @staticmethod
    def response_attributes(facts: ResponseFacts, out: dict[str, AttributeValue]) -> None:
        """Response model, id, finish reasons and the answer's size."""
        if facts.model:
            out[sc.GEN_AI_RESPONSE_MODEL] = facts.model
        if facts.response_id:
            out[sc.GEN_AI_RESPONSE_ID] = facts.response_id
        if facts.finish_reasons:
            out[sc.GEN_AI_RESPONSE_FINISH_REASONS] = facts.finish_reasons
        if facts.reasoning_chars:
            out[sc.RAG_GENERATION_REASONING_CHARS] = facts.reasoning_chars
        if facts.text_chars or facts.choices:
            out[sc.RAG_GENERATION_RESPONSE_CHARS] = facts.text_chars

    def record_usage(self, found: Usage, out: dict[str, AttributeValue],
                     attributes_of: Callable[[str], MetricAttributes] | None, *, count_tokens: bool = True) -> None:
        """Token usage on the span; with ``attributes_of`` (the metric attributes of a token type) also
        ``gen_ai.client.token.usage`` (unless ``count_tokens`` is false: another instrumentation records this
        call's), the cost, and the enclosing pipeline's totals."""
        out.update(usage.span_attributes(found))
        if attributes_of is None or not found.known:
            return
        if count_tokens:
            record = self.ins.token_usage.record
            for tokens, token_type in usage.token_records(found):
                record(tokens, attributes_of(token_type), context=self.context)
        usd = cost.record(self.ins, attributes_of(sc.TokenType.INPUT.value), found)
        if usd is not None:
            out[sc.RAG_COST] = usd
        self.add_to_pipeline(found.input, found.output, usd)

    def add_to_pipeline(self, input_tokens: int | None, output_tokens: int | None, usd: float | None) -> None:
        """Add one model call's tokens and cost to the pipeline this operation runs in (its span shows the sums)."""
        pipeline = self if self._totals is not None else self._pipeline
        totals = pipeline._totals if pipeline is not None else None
        if totals is not None:
            totals[0] += input_tokens or 0
            totals[1] += output_tokens or 0
            if usd is not None:
                totals[2] += usd
                totals[3] = 1

    def set_totals(self) -> None:
        """A pipeline's span: the tokens and cost of every call under it."""
        totals = self._totals
        if totals and (totals[0] or totals[1]):
            attrs: dict[str, AttributeValue] = {sc.GEN_AI_USAGE_INPUT_TOKENS: int(totals[0]),
                                                sc.GEN_AI_USAGE_OUTPUT_TOKENS: int(totals[1])}
            if totals[3]:
                attrs[sc.RAG_COST] = totals[2]
            self.span.set_attributes(attrs)

    # -- hits and scores ---------------------------------------------------------------------------
    def record_scores(self, count: int, stats: hits.Scores | None, out: dict[str, AttributeValue],
                      dims: MetricAttributes, min_score: float | None, *, distances: bool = False) -> str:
        """Results returned and score statistics on the span; returns ``rag.retrieval.quality``.

        ``distances``: lower is better (a FAISS L2 index). The statistics are still min/max/avg of what the
        index returned, marked ``rag.retrieval.score.kind=distance``; no similarity threshold judges them and
        no best-score record is made, since a distance is no similarity.
        """
        out[sc.RAG_RETRIEVAL_RESULTS_RETURNED] = count
        if stats is not None:
            out[sc.RAG_RETRIEVAL_SCORE_MIN] = stats.low
            out[sc.RAG_RETRIEVAL_SCORE_MAX] = stats.top
            out[sc.RAG_RETRIEVAL_SCORE_AVG] = stats.mean
            if distances:
                out[sc.RAG_RETRIEVAL_SCORE_KIND] = "distance"
            elif runtime.detailed_metrics:
                self.ins.retrieval_top_score.record(stats.top, dims, context=self.context)
        threshold = None if distances else runtime.low_score if runtime.low_score is not None else min_score
        return hits.quality(count, stats, threshold)

    def record_each_score(self, scores: Iterable[float | None], dims: MetricAttributes) -> None:
        """``rag.retrieval.score``, one record per document (``RAGOTEL_DETAILED_METRICS``)."""
        record = self.ins.retrieval_score.record
        for score in scores:
            if score is not None and math.isfinite(score):
                record(score, dims, context=self.context)

    # -- messages ----------------------------------------------------------------------------------
    def record_outputs(self, facts: ResponseFacts, out: dict[str, AttributeValue], *,
                       on_span: bool) -> list[messages.Message] | None:
        """The answer in the conventions' output-messages schema: on the span when ``on_span``; returned
        for the details event."""
        found = messages.output_messages(facts, content_policy.clean, with_finish_reason=not runtime.genai_latest)
        if found is not None and on_span:
            out[sc.GEN_AI_OUTPUT_MESSAGES] = messages.dumps(found)
            if runtime.openinference:
                out.update(openinference_text(sc.OI_OUTPUT_VALUE, found))
        return found

    def emit_details(self, out: dict[str, AttributeValue], inputs: list[messages.Message] | None,
                     outputs: list[messages.Message] | None) -> None:
        """The ``gen_ai.client.inference.operation.details`` event, once the span has ``out``."""
        if out:
            self.span.set_attributes(out)
            out.clear()
        details.emit(self.span, inputs, outputs)

    # -- outcome -----------------------------------------------------------------------------------
    def record_failure(self, etype: str, counted: Mapping[str, AttributeValue], *,
                       exc: BaseException | None = None, description: str | None = None) -> MetricAttributes:
        """Span ERROR with ``error.type`` (and the exception, when there is one); ``rag.step.errors`` counts
        it with ``counted`` plus the outcome and the capped ``error.type``, which are returned."""
        span = self.span
        span.set_attribute(sc.ERROR_TYPE, etype)
        if exc is not None:
            span.record_exception(exc, escaped=True)
        span.set_status(Status(StatusCode.ERROR, description or etype))
        failed = {**counted, sc.RAG_OUTCOME: Outcome.ERROR.value, sc.ERROR_TYPE: limiter.value(sc.ERROR_TYPE, etype)}
        self.ins.step_errors.add(1, failed, context=self.context)
        return failed

    def record_cancelled(self, attrs: Mapping[str, AttributeValue]) -> MetricAttributes:
        """The caller stopped the operation: not a failure. Returns ``attrs`` with the outcome."""
        self.span.set_attribute(sc.RAG_OUTCOME, Outcome.CANCELLED.value)
        return {**attrs, sc.RAG_OUTCOME: Outcome.CANCELLED.value}
