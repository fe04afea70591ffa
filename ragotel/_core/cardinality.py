"""A cap on the distinct values of each metric attribute, so a metric's series stay bounded.

Keys are bounded by ``ragotel.semconv.METRIC_ATTRIBUTES``; values usually are too (step names come
from code, models from configuration), but some arrive from outside — the ``model`` of a request an
HTTP client forwards, a step name built from user input. Past ``limit`` distinct values of one key,
further new values are recorded as ``_other`` and ``rag.metric.attribute.overflow`` counts each
replacement, labelled by the key, so the cap shows up on a dashboard instead of silently merging series.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Final

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core import runtime
from ragotel._core.safe import report_internal_error

OTHER: Final = "_other"


class ValueLimiter:
    """Remembers up to ``limit`` values per attribute key; later new values become ``_other``."""

    __slots__ = ("_lock", "_seen")

    def __init__(self) -> None:
        self._seen: dict[str, set[AttributeValue]] = {}
        self._lock = threading.Lock()

    def value(self, key: str, value: AttributeValue) -> AttributeValue:
        seen = self._seen.get(key)
        if seen is not None and value in seen:  # the common case: no lock
            return value
        with self._lock:
            seen = self._seen.setdefault(key, set())
            if value in seen or len(seen) < runtime.current.value_limit:
                seen.add(value)
                return value
        _count_overflow(key)
        return OTHER

    def bound(self, attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
        """A copy of ``attributes`` with every value within its key's cap."""
        return {key: self.value(key, value) for key, value in attributes.items()}

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


def _count_overflow(key: str) -> None:
    try:
        _instruments.instruments().attribute_overflow.add(1, {sc.RAG_METRIC_ATTRIBUTE: key})
    except Exception as exc:
        report_internal_error("counting an attribute overflow", exc)


limiter = ValueLimiter()
"""The process-wide one; every ragotel metric's attributes pass through it."""
