"""Evaluations and feedback on spans: a score or a verdict attached to the span being judged.

::

    ragotel.record_evaluation("user_feedback", label="down", score=0.0, context=trace_id)
    ragotel.record_evaluation("citations_exist", score=1.0, label="cited")   # judges the current span

Each is the GenAI conventions' ``gen_ai.evaluation.result`` event — a log record through the
OpenTelemetry Logs API, carrying the evaluated span's trace and span ids, with
``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``, ``gen_ai.evaluation.score.label`` and,
with content capture on, ``gen_ai.evaluation.explanation`` — plus ``rag.evaluation.score`` (a
histogram of scores) and ``rag.evaluations`` (a count), both by name and label only.
"""

from __future__ import annotations

import math

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._core.cardinality import limiter
from ragotel._core.instruments import emit_event, instruments
from ragotel._core.safe import report_internal_error
from ragotel._genai import content

Evaluated = SpanContext | str | int | None
"""What an evaluation judges: a span's context, a trace id (32 hex digits or an int), or — ``None`` —
the current span."""


def _target(context: Evaluated) -> tuple[int, int, TraceFlags]:
    """(trace id, span id, flags) of what is judged; span id 0 when only the trace is known."""
    if context is None:
        ctx = trace.get_current_span().get_span_context()
        return ctx.trace_id, ctx.span_id, ctx.trace_flags
    if isinstance(context, SpanContext):
        return context.trace_id, context.span_id, context.trace_flags
    trace_id = int(context, 16) if isinstance(context, str) else int(context)
    if not 0 < trace_id < 1 << 128:
        raise ValueError(f"not a trace id: {context!r}")
    return trace_id, 0, TraceFlags(TraceFlags.SAMPLED)


def record_evaluation(
    name: str,
    *,
    score: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    context: Evaluated = None,
    response_id: str | None = None,
) -> None:
    """Record an evaluation of a span (see the module docstring). Never raises.

    Args:
        name: what was judged; bounded by code (it labels the metrics).
        score: a number, e.g. 0–1; NaN and infinities are dropped.
        label: a verdict word; it labels the metrics too, so keep it to a small set.
        explanation: why (content: recorded only with content capture on).
        context: the judged span's ``SpanContext``, a trace id, or the current span when omitted.
        response_id: the ``gen_ai.response.id`` of the judged answer, when known.
    """
    if runtime.current.disabled:
        return
    try:
        trace_id, span_id, flags = _target(context)
        attrs: dict[str, AttributeValue] = {sc.GEN_AI_EVALUATION_NAME: name}
        value = float(score) if score is not None else math.nan
        if math.isfinite(value):
            attrs[sc.GEN_AI_EVALUATION_SCORE_VALUE] = value
        if label is not None:
            attrs[sc.GEN_AI_EVALUATION_SCORE_LABEL] = label
        if response_id is not None:
            attrs[sc.GEN_AI_RESPONSE_ID] = response_id
        text = content.text(explanation) if explanation is not None else None
        if text is not None:
            attrs[sc.GEN_AI_EVALUATION_EXPLANATION] = text
        judged = trace.set_span_in_context(trace.NonRecordingSpan(
            SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)), Context())
        emit_event(judged, sc.GEN_AI_EVALUATION_RESULT_EVENT, SeverityNumber.INFO, attrs)
        labels = limiter.bound({k: v for k, v in attrs.items() if k in sc.METRIC_ATTRIBUTES})
        ins = instruments()
        ins.evaluations.add(1, frozenset(labels.items()), labels)
        if math.isfinite(value):
            ins.evaluation_score.record(value, labels)
    except Exception as exc:
        report_internal_error("record_evaluation", exc)
