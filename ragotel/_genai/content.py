"""Content capture policy: whether user text (queries, documents, prompts, completions) is recorded.

Off by default. Turned on by ``configure(capture_content=True)``, by ``RAGOTEL_CAPTURE_CONTENT=true``, by the
conventions' ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``true``; ``SPAN_ONLY``, ``EVENT_ONLY`` or
``SPAN_AND_EVENT`` under ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``) or per step
(``ragotel.retrieval(capture_content=True)``). Captured text is cut to ``max_content_chars`` and then
passed through the ``redact`` hook, so a hook that masks e-mail addresses sees every string before
it is exported. Metrics never carry content, whatever this says. The switches are
fields of the runtime snapshot (``ragotel._core.runtime``); these functions apply them.
"""

from __future__ import annotations

from ragotel._core import runtime
from ragotel._core.runtime import Redactor
from ragotel._core.safe import report_internal_error

__all__ = ["Redactor", "clean", "redact_query", "text"]

_TRUNCATED = "…[truncated]"


def clean(value: str) -> str | None:
    """One text to capture, cut and redacted (the caller decided that capture is on)."""
    return text(value, enabled=True)


def text(value: object, *, enabled: bool | None = None) -> str | None:
    """The text to record for ``value``, or ``None`` when capture is off (or the hook failed).

    ``enabled`` overrides the process's switch for one step.
    """
    now = runtime.current
    if not (now.content_spans if enabled is None else enabled) or value is None:
        return None
    try:
        found = value if isinstance(value, str) else str(value)
        if len(found) > now.max_content_chars:
            found = found[: now.max_content_chars] + _TRUNCATED
        if now.redact is not None:
            found = now.redact(found)
        return found
    except Exception as exc:
        # A failing redaction hook must not leak the unredacted text: drop it.
        report_internal_error("content redaction", exc)
        return None


def redact_query(query: str) -> str:
    """``url.query`` with every value replaced, unless capture is on: query values are often user text.

    >>> redact_query("question=where+is+it&k=4")
    'question=REDACTED&k=REDACTED'
    """
    if runtime.current.content_spans:
        return query
    return "&".join(part.split("=", 1)[0] + "=REDACTED" if "=" in part else part for part in query.split("&"))
