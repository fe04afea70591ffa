"""Content capture policy: whether user text (queries, documents, prompts, completions) is recorded.

Off by default. Turned on by ``configure(capture_content=True)``, by ``RAGOTEL_CAPTURE_CONTENT=true``, by the
conventions' ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``true``; ``SPAN_ONLY``, ``EVENT_ONLY`` or
``SPAN_AND_EVENT`` under ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``) or per step
(``ragotel.retrieval(capture_content=True)``). Captured text is cut to ``max_chars`` and then
passed through the ``redact`` hook, so a hook that masks e-mail addresses sees every string before
it is exported. Metrics never carry content, whatever this says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ragotel._core import settings
from ragotel._core.safe import report_internal_error

Redactor = Callable[[str], str]

CONTENT_SETTINGS = ("capture_content", "genai_content", "genai_latest_experimental", "max_content_chars")
DEFAULT_MAX_CHARS: int = settings.BY_ARG["max_content_chars"].default
_TRUNCATED = "…[truncated]"


@dataclass(slots=True)
class ContentPolicy:
    """What may leave the process as text, and how it is cleaned first."""

    enabled: bool = False
    """Content on spans (and user text anywhere, such as ``url.query``)."""
    events: bool = False
    """Content on ``gen_ai.client.inference.operation.details`` events (latest conventions, ``EVENT_ONLY`` or
    ``SPAN_AND_EVENT``): the event is emitted only then."""
    max_chars: int = DEFAULT_MAX_CHARS
    redact: Redactor | None = None

    @classmethod
    def from_env(cls) -> ContentPolicy:
        """From the environment alone, through :mod:`ragotel._core.settings` (unusable values give the defaults)."""
        values = settings.resolve(only=CONTENT_SETTINGS).values
        return cls(enabled=bool(values["content_spans"]), events=bool(values["content_events"]),
                   max_chars=int(values["max_content_chars"]))

    def fill(self, values: Mapping[str, object]) -> None:
        """Take the resolved settings from :func:`ragotel.configure`."""
        self.enabled = bool(values.get("content_spans", self.enabled))
        self.events = bool(values.get("content_events", self.events))
        max_chars = values.get("max_content_chars")
        if isinstance(max_chars, int):
            self.max_chars = max_chars
        redact = values.get("redact")
        if redact is not None and callable(redact):
            self.redact = redact

    def clean(self, value: str) -> str | None:
        """One text to capture, cut and redacted (the caller decided that capture is on)."""
        return self.text(value, enabled=True)

    def text(self, value: object, *, enabled: bool | None = None) -> str | None:
        """The text to record for ``value``, or ``None`` when capture is off (or the hook failed).

        ``enabled`` overrides the policy for one step.
        """
        if not (self.enabled if enabled is None else enabled) or value is None:
            return None
        try:
            text = value if isinstance(value, str) else str(value)
            if len(text) > self.max_chars:
                text = text[: self.max_chars] + _TRUNCATED
            if self.redact is not None:
                text = self.redact(text)
            return text
        except Exception as exc:
            # A failing redaction hook must not leak the unredacted text: drop it.
            report_internal_error("content redaction", exc)
            return None


policy = ContentPolicy.from_env()
"""The process-wide policy; :func:`ragotel.configure` replaces its fields."""


def redact_query(query: str) -> str:
    """``url.query`` with every value replaced, unless capture is on: query values are often user text.

    >>> redact_query("question=where+is+it&k=4")
    'question=REDACTED&k=REDACTED'
    """
    if policy.enabled:
        return query
    return "&".join(part.split("=", 1)[0] + "=REDACTED" if "=" in part else part for part in query.split("&"))
