"""The process-wide switches every instrumentation reads on its hot path: one frozen snapshot.

``ragotel.configure`` resolves the settings (``ragotel._core.settings``) once and swaps a new
``Runtime`` in (``swap``); nothing changes a snapshot in place, so code that read ``current`` once
sees one consistent set of switches for the whole operation, and a reader pays one module lookup and one
attribute lookup per switch, with no locking. Before (or without) ``configure()`` the snapshot comes from
the environment alone, through the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from ragotel._core import settings as _settings

Redactor = Callable[[str], str]

_VALUE_LIMIT: Final[int] = _settings.BY_ARG["metric_value_limit"].default
_MAX_CONTENT_CHARS: Final[int] = _settings.BY_ARG["max_content_chars"].default

# The settings a snapshot is made of (the rest configure() uses once, to build providers and exporters).
RUNTIME_SETTINGS: Final = ("detailed_metrics", "retrieval_low_score", "metric_value_limit", "openinference",
                           "genai_latest_experimental", "service_steps", "capture_content", "genai_content",
                           "max_content_chars")


@dataclass(frozen=True, slots=True)
class Runtime:
    """What every step, call and adapter reads: whether telemetry is off, which optional records it makes,
    and what user text may leave the process."""

    disabled: bool = False
    detailed_metrics: bool = False
    """Per-document scores and a second, GenAI-named duration for retrieval/embedding/generation steps."""
    low_score: float | None = None
    """A retrieval whose best score is under this is ``low_score``; ``None``: the step's ``min_score``."""
    value_limit: int = _VALUE_LIMIT
    """Distinct values one metric attribute may take before new ones become ``_other``."""
    openinference: bool = False
    """Spans also carry OpenInference's keys (``openinference.span.kind``, documents, model, tokens)."""
    genai_latest: bool = False
    """``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``: the latest GenAI names where they move."""
    service_steps: tuple[_settings.ServiceStep, ...] = ()
    """HTTP services the application calls that are steps (``RAGOTEL_SERVICE_STEPS``)."""
    content_spans: bool = False
    """User text (queries, documents, prompts, completions) on spans, and anywhere else such as ``url.query``."""
    content_events: bool = False
    """Content on ``gen_ai.client.inference.operation.details`` events (latest conventions, ``EVENT_ONLY`` or
    ``SPAN_AND_EVENT``): the event is emitted only then."""
    max_content_chars: int = _MAX_CONTENT_CHARS
    redact: Redactor | None = None
    """The hook every captured string passes through, after it is cut to ``max_content_chars``."""

    @classmethod
    def of(cls, values: Mapping[str, Any], *, disabled: bool = False) -> Runtime:
        """The snapshot of resolved settings (``ragotel._core.settings.resolve``)."""
        low = values.get("retrieval_low_score")
        redact = values.get("redact")
        return cls(
            disabled=disabled,
            detailed_metrics=bool(values.get("detailed_metrics", False)),
            low_score=None if low is None else float(low),
            value_limit=int(values.get("metric_value_limit") or _VALUE_LIMIT),
            openinference=bool(values.get("openinference", False)),
            genai_latest=bool(values.get("genai_latest_experimental", False)),
            service_steps=tuple(values.get("service_steps", ())),
            content_spans=bool(values.get("content_spans", False)),
            content_events=bool(values.get("content_events", False)),
            max_content_chars=int(values.get("max_content_chars") or _MAX_CONTENT_CHARS),
            redact=redact if callable(redact) else None,
        )


current: Runtime = Runtime.of(_settings.resolve(only=RUNTIME_SETTINGS).values)
"""The snapshot in force: read it as ``runtime.current`` (a module attribute, so a swap reaches every reader)."""


def swap(new: Runtime) -> Runtime:
    """Put ``new`` in force; returns the snapshot it replaced."""
    global current
    old, current = current, new
    return old


def update(**changes: Any) -> Runtime:
    """Put in force the current snapshot with ``changes``; returns the snapshot it replaced."""
    return swap(replace(current, **changes))
