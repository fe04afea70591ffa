"""The latest GenAI conventions' events of a model call, log records parented to the call's span.

``gen_ai.client.inference.operation.details``: one call's content, apart from the trace. Emitted only with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` set to ``EVENT_ONLY`` or ``SPAN_AND_EVENT``. It carries
the span's GenAI attributes and, structured (not JSON text), the input and output messages.

``gen_ai.client.inference.exception``: a chat or text-completion call that failed, at WARN, with
``error.type``, the exception's type and message when one was raised, and the call's operation, provider,
model and server (never content).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.trace import Span

from ragotel import semconv as sc
from ragotel._core.errors import qualified_name
from ragotel._core.instruments import emit_event
from ragotel._core.safe import report_internal_error
from ragotel._genai.messages import Message

_KEPT = ("gen_ai.", "server.", "error.")
# The conventions ask for DEBUG: the event is bulky content, kept apart from warnings and errors.
_SEVERITY = SeverityNumber[sc.GEN_AI_DETAILS_SEVERITY]
_EXCEPTION_SEVERITY = SeverityNumber[sc.GEN_AI_EXCEPTION_SEVERITY]
# What the exception event copies from the call's span: bounded facts, no content.
_EXCEPTION_FACTS = (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL,
                    sc.GEN_AI_RESPONSE_ID, sc.SERVER_ADDRESS, sc.SERVER_PORT)


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
        emit_event(trace.set_span_in_context(span), sc.GEN_AI_INFERENCE_DETAILS_EVENT, _SEVERITY, attrs,
                   severity_text=sc.GEN_AI_DETAILS_SEVERITY)
    except Exception as exc:
        report_internal_error("emitting the inference details event", exc)


def emit_exception(span: Span, etype: str, exc: BaseException | None) -> None:
    """Emit the exception event for the failed call ``span`` timed. Never raises."""
    try:
        known: Mapping[str, Any] = getattr(span, "attributes", None) or {}
        attrs: dict[str, Any] = {k: known[k] for k in _EXCEPTION_FACTS if k in known}
        attrs[sc.ERROR_TYPE] = etype
        if exc is not None:
            attrs[sc.EXCEPTION_TYPE] = qualified_name(exc)
            attrs[sc.EXCEPTION_MESSAGE] = str(exc)
        emit_event(trace.set_span_in_context(span), sc.GEN_AI_INFERENCE_EXCEPTION_EVENT, _EXCEPTION_SEVERITY, attrs,
                   severity_text=sc.GEN_AI_EXCEPTION_SEVERITY)
    except Exception as exc_:
        report_internal_error("emitting the inference exception event", exc_)
