"""The ``gen_ai.client.inference.operation.details`` event: one model call's content, apart from the trace.

Emitted only under the latest GenAI conventions with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
set to ``EVENT_ONLY`` or ``SPAN_AND_EVENT``, as a log record parented to the call's span. It carries the
span's GenAI attributes and, structured (not JSON text), the input and output messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.trace import Span

from ragotel import semconv as sc
from ragotel._core.instruments import SCOPE
from ragotel._core.safe import report_internal_error
from ragotel._genai.messages import Message
from ragotel._version import __version__

_KEPT = ("gen_ai.", "server.", "error.")
# The conventions ask for DEBUG: the event is bulky content, kept apart from warnings and errors.
_SEVERITY = SeverityNumber[sc.GEN_AI_DETAILS_SEVERITY]


def emit(span: Span, inputs: list[Message] | None, outputs: list[Message] | None) -> None:
    """Emit the event for the call ``span`` timed, once the span has its attributes. Never raises."""
    try:
        known: Mapping[str, Any] = getattr(span, "attributes", None) or {}
        attrs = {k: v for k, v in known.items()
                 if k.startswith(_KEPT) and k not in (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES)}
        if inputs is not None:
            attrs[sc.GEN_AI_INPUT_MESSAGES] = inputs
        if outputs is not None:
            attrs[sc.GEN_AI_OUTPUT_MESSAGES] = outputs
        _logs.get_logger(SCOPE, __version__).emit(LogRecord(
            context=trace.set_span_in_context(span), severity_number=_SEVERITY,
            severity_text=sc.GEN_AI_DETAILS_SEVERITY, event_name=sc.GEN_AI_INFERENCE_DETAILS_EVENT, attributes=attrs,
        ))
    except Exception as exc:
        report_internal_error("emitting the inference details event", exc)
