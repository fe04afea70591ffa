"""One operation's telemetry — a step, a model call, a search — from start to end, recorded one way whoever
observes it.

An ``Operation`` starts with its span and clock, records facts as they are known (response fields,
usage and its parts, cost, score statistics, captured messages), and ends exactly once through one path:
``Operation.stop``, ``Operation.fail`` or ``Operation.cancel`` (``Operation.end`` picks
one from what ended the body). That path sets the outcome (``error.type``, status, ``rag.outcome``), counts
the failure, makes the duration record and ends the span. A step (a decorated function or a ``with`` block,
``ragotel._steps``) and a client call (an HTTP call to an OpenAI-compatible server,
``ragotel.instrumentation``) are operations; each says only which duration it records.

Operations nest through the context, not through each other's internals: a step puts itself in its context
under ``ENCLOSING``; a client call started inside finds it with ``enclosing``. Who records what is one
field, ``Operation.counting`` (``Counting``), so nothing is counted twice:

* a client call inside a step of its own kind leaves the step's timing to the step, and the step leaves the
  call's tokens, cost and GenAI duration to the call;
* a call whose span another instrumentation started leaves that instrumentation the records it makes itself;
* a failure is counted in ``rag.step.errors`` once per step kind: by the innermost operation of that kind
  that failed with it; an enclosing operation of the same kind that fails with the same exception (or one
  raised from it, or for the same HTTP answer) does not count it again.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from time import perf_counter
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._core.cardinality import limiter
from ragotel._core.compat import SPAN_KEY
from ragotel._core.errors import answer_status, error_type, http_status_class, is_cancellation
from ragotel._core.instruments import Instruments
from ragotel._core.safe import report_internal_error
from ragotel._genai import content, cost, details, hits, messages, usage
from ragotel._genai.protocol import ResponseFacts, Usage
from ragotel.semconv import Outcome, StepKind

MetricAttributes = dict[str, AttributeValue]

_INPUT: Final = sc.TokenType.INPUT.value  # read once: an enum member's .value is a Python-level descriptor call

ENCLOSING: Final = otel_context.create_key("ragotel-operation")
"""Context key of the innermost operation a step opened; client calls started under it find it there."""


def enclosing(context: Context | None = None) -> Operation | None:
    """The innermost operation recording in ``context`` (default: the current one), if any."""
    found = otel_context.get_value(ENCLOSING, context)
    return found if isinstance(found, Operation) else None


class Counting(enum.Enum):
    """Who makes an operation's records, where two operations (or two instrumentations) see the same work."""

    SELF = "self"
    """This operation records everything it saw."""
    CALL = "call"
    """A step: a client call under it is this very operation and records its tokens, cost, GenAI duration and
    details event; the step records its step duration."""
    STEP = "step"
    """A client call inside a step of its kind: that step is the step and times it (a rerank or service call
    makes no step duration record of its own); the call records the rest."""
    OWNER = "owner"
    """A client call whose span another instrumentation started (an openai SDK instrumentation): that
    instrumentation records the call's duration and the tokens it saw; this call records the rest."""


# Read once (the members compared as every operation starts): on Python 3.11 reading one off its Enum class goes
# through the metaclass's ``__getattr__`` hook, some 70 ns against 5 for a module global.
_SELF: Final = Counting.SELF
_PIPELINE: Final = StepKind.PIPELINE


def _failure_marks(exc: BaseException | None, answer: str | None = None) -> list[object]:
    """What identifies one failure as it travels outwards: the exception and those it was raised from or
    while handling (``__cause__``, ``__context__``), by identity; and the HTTP answer a client call failed on,
    by its status class, since the SDK above the call raises its own exception for that answer."""
    marks: list[object] = [] if answer is None else [answer]
    seen = 0
    while exc is not None and seen < 16:
        marks.append(exc)
        status = answer_status(exc)
        if status is not None:
            marks.append(http_status_class(status))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        seen += 1
    return marks


def _identities(marks: list[object], answer: str | None) -> list[object]:
    """Of an operation's ``_failure_marks``, those it leaves for the steps around it: its exceptions by identity,
    and the status class only for the answer a client call itself failed on. A step's failure leaves no status
    class: two steps failing on two different 500s are two failures, though their classes are the same."""
    return [mark for mark in marks if not isinstance(mark, str) or mark == answer]


def _same_failure(marks: list[object], counted: list[object]) -> bool:
    return any(mark is seen or (isinstance(mark, str) and mark == seen) for mark in marks for seen in counted)


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


class Operation:
    """One operation from start to end. Subclasses say what they record when they end (``_conclude``,
    ``_timed``); the ending itself is written once, here.

    Methods taking ``out`` add span attributes to it; the caller sets them in one call. Nothing raises into
    the application: the lifecycle methods report an internal error and go on.
    """

    __slots__ = ("_counted", "_pipeline", "_totals", "context", "conversation_id", "counting", "ended", "ins",
                 "kind", "owns_span", "parent", "prompt", "span", "started")

    def __init__(self, kind: StepKind, span: Span, context: Context, ins: Instruments,
                 parent: Operation | None, conversation_id: str | None) -> None:
        self.kind = kind
        self.span = span
        self.context = context
        """What metric records carry (so exemplars point at this span) and what the body runs in."""
        self.ins = ins
        self.parent = parent
        self.conversation_id = conversation_id
        self.counting = _SELF
        """Who makes which records (``Counting``); set when a call finds its step or adopts a span."""
        self.owns_span = True
        """False for another instrumentation's span that this operation enriches: its owner ends it."""
        self.ended = False
        self.started = perf_counter()
        self._counted: list[object] | None = None
        """Marks of the failures an operation of this kind inside this one already counted."""
        # The pipeline this operation runs in adds up the tokens and cost of every call under it.
        self._pipeline: Operation | None = None
        if parent is not None:
            self._pipeline = parent if parent.kind is StepKind.PIPELINE else parent._pipeline
        self._totals: list[float] | None = [0, 0, 0.0, 0] if kind is _PIPELINE else None
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
        kind), which then leaves the call's own records to the call (``Counting.CALL``)."""
        if kind is self.kind:
            self.counting = Counting.CALL
            return True
        return False

    # -- the one ending --------------------------------------------------------------------------------
    def stop(self) -> None:
        """The operation completed."""
        self._end(None, None, cancelled=False)

    def cancel(self) -> None:
        """The caller stopped the operation (a closed generator or stream, a cancelled task): not a failure."""
        self._end(None, None, cancelled=True)

    def fail(self, exc: BaseException | None = None, etype: str | None = None) -> None:
        """The operation failed with ``exc`` and/or a known ``error.type`` (an HTTP answer, a malformed body)."""
        self._end(etype if etype is not None else error_type(exc) if exc is not None else "_OTHER", exc,
                  cancelled=False)

    def end(self, exc: BaseException | None = None) -> None:
        """End by what ended the body: nothing (stop), a cancellation (cancel) or a failure (fail)."""
        if exc is None:
            self.stop()
        elif is_cancellation(exc):
            self.cancel()
        else:
            self.fail(exc)

    def _end(self, etype: str | None, exc: BaseException | None, *, cancelled: bool) -> None:
        if self.ended:
            return
        self.ended = True
        duration = perf_counter() - self.started
        try:
            ok = self._conclude()
            if etype is not None:
                outcome = self._failed(etype, exc, ok)
            elif cancelled:
                outcome = self.record_cancelled(ok)
            else:
                outcome = ok
            self._timed(duration, ok, outcome, etype)
        except Exception as internal:
            report_internal_error("ending an operation", internal)
        finally:
            if self.owns_span:
                try:
                    self.span.end()
                except Exception as internal:
                    report_internal_error("ending a span", internal)
            if self.context.get(ENCLOSING) is self:
                # A step's context holds the step, for what starts under it, and the step holds its context: with no
                # body left to run in it, keep only what a later record's exemplar reads, the span, so a step and
                # its context are freed as the call returns instead of waiting, a cycle, for the garbage collector.
                self.context = Context({SPAN_KEY: self.span})

    def _conclude(self) -> MetricAttributes:
        """The last facts before the outcome; returns the metric attributes of a success."""
        raise NotImplementedError

    def _timed(self, duration: float, ok: MetricAttributes, outcome: MetricAttributes, etype: str | None) -> None:
        """The duration record(s): ``outcome`` is ``ok`` with the outcome (and ``error.type``) added."""
        raise NotImplementedError

    def _emits_exception_event(self) -> bool:
        """The latest conventions' exception event is this operation's to emit on failure."""
        return False

    def _answer(self) -> str | None:
        """The status class (``http.5xx``) of the HTTP answer this operation failed on, if it failed on one."""
        return None

    def _failed(self, etype: str, exc: BaseException | None, ok: MetricAttributes) -> MetricAttributes:
        """Span ERROR with ``error.type`` (and the exception, when there is one); the failure counted in
        ``rag.step.errors`` unless an operation of this kind inside this one already counted it."""
        span = self.span
        span.set_attribute(sc.ERROR_TYPE, etype)
        if exc is not None and self.owns_span:  # the owner of another instrumentation's span records it there
            span.record_exception(exc, escaped=True)
        span.set_status(Status(StatusCode.ERROR, f"{etype}: {exc}" if exc is not None else etype))
        failed = {**ok, sc.RAG_OUTCOME: Outcome.ERROR.value, sc.ERROR_TYPE: limiter.value(sc.ERROR_TYPE, etype)}
        failed.pop(sc.RAG_RETRIEVAL_QUALITY, None)
        answer = self._answer()
        marks = _failure_marks(exc, answer)
        counted = self._counted
        if not (counted and _same_failure(marks, counted)):
            self.ins.step_errors.add(1, failed, context=self.context)
        outer = next((op for op in self._ancestors() if op.kind is self.kind), None)
        if outer is not None:
            outer._counted = [*(outer._counted or ()), *(_identities(marks, answer) or (self,))]
        if runtime.current.genai_latest and self._emits_exception_event():
            details.emit_exception(span, etype, exc)
        return failed

    def _ancestors(self) -> Iterator[Operation]:
        op = self.parent
        while op is not None:
            yield op
            op = op.parent

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
        usage.span_attributes(found, out)
        if attributes_of is None or not found.known:
            return
        if count_tokens:
            record, context = self.ins.token_usage.record, self.context
            for tokens, token_type in usage.token_records(found):
                record(tokens, attributes_of(token_type), context=context)
        usd = cost.record(self.ins, attributes_of(_INPUT), found)
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
            elif runtime.current.detailed_metrics:
                self.ins.retrieval_top_score.record(stats.top, dims, context=self.context)
        low = runtime.current.low_score
        threshold = None if distances else low if low is not None else min_score
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
        found = messages.output_messages(facts, content.clean, with_finish_reason=not runtime.current.genai_latest)
        if found is not None and on_span:
            out[sc.GEN_AI_OUTPUT_MESSAGES] = messages.dumps(found)
            if runtime.current.openinference:
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
    def record_cancelled(self, attrs: Mapping[str, AttributeValue]) -> MetricAttributes:
        """The caller stopped the operation: not a failure. Returns ``attrs`` with the outcome."""
        self.span.set_attribute(sc.RAG_OUTCOME, Outcome.CANCELLED.value)
        return {**attrs, sc.RAG_OUTCOME: Outcome.CANCELLED.value}
