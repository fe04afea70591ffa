"""Process-wide switches every instrumentation reads on its hot path.

:func:`ragotel.configure` fills the fields once from the resolved settings (:mod:`ragotel._core.settings`);
everything else only reads them, so a step pays one
attribute lookup per setting and no locking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ragotel._core import settings as _settings


class Runtime:
    """What every step reads: whether telemetry is off and which optional records it makes."""

    __slots__ = ("detailed_metrics", "disabled", "genai_latest", "low_score", "openinference", "service_steps",
                 "value_limit")

    def __init__(self) -> None:
        self.disabled = False
        self.detailed_metrics = False
        """Per-document scores and a second, GenAI-named duration for retrieval/embedding/generation steps."""
        self.low_score: float | None = None
        """A retrieval whose best score is under this is ``low_score``; ``None``: the step's ``min_score``."""
        self.value_limit: int = _settings.BY_ARG["metric_value_limit"].default
        """Distinct values one metric attribute may take before new ones become ``_other``."""
        self.openinference = False
        """Spans also carry OpenInference's keys (``openinference.span.kind``, documents, model, tokens)."""
        self.genai_latest = False
        """``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``: the latest GenAI names where they move."""
        self.service_steps: tuple[_settings.ServiceStep, ...] = ()
        """HTTP services the application calls that are steps (``RAGOTEL_SERVICE_STEPS``)."""

    def fill(self, values: Mapping[str, Any]) -> None:
        """Take the resolved settings (:func:`ragotel.settings.resolve`); the only writer besides ``disabled``."""
        self.detailed_metrics = bool(values.get("detailed_metrics", self.detailed_metrics))
        low = values.get("retrieval_low_score", self.low_score)
        self.low_score = None if low is None else float(low)
        self.value_limit = int(values.get("metric_value_limit") or self.value_limit)
        self.openinference = bool(values.get("openinference", self.openinference))
        self.genai_latest = bool(values.get("genai_latest_experimental", self.genai_latest))
        self.service_steps = tuple(values.get("service_steps", self.service_steps))


RUNTIME_SETTINGS: Final = ("detailed_metrics", "retrieval_low_score", "metric_value_limit", "openinference",
                           "genai_latest_experimental", "service_steps")


runtime = Runtime()
# Before (or without) configure(): the environment alone, through the same table; configure() refills it.
runtime.fill(_settings.resolve(only=RUNTIME_SETTINGS).values)
