"""The OpenTelemetry internals ragotel relies on, in one place.

Each is used because no public API gives the same thing; ``tests/test_compat.py`` checks every one
against the installed SDK, so an SDK release that changes them fails the suite instead of the app.
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs._internal import ProxyLoggerProvider
from opentelemetry.context import Context
from opentelemetry.metrics._internal import _ProxyMeterProvider

SPAN_KEY: Final = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, Context())))
"""The context key OpenTelemetry keeps the current span under, found through its public API: a step
builds its context (span and step) as one copy of the caller's, not two."""

_UNSET_PROVIDERS: Final = (
    trace.ProxyTracerProvider, trace.NoOpTracerProvider,
    _ProxyMeterProvider, metrics.NoOpMeterProvider,
    ProxyLoggerProvider, _logs.NoOpLoggerProvider,
)


def is_unset(provider: Any) -> bool:
    """True while no real provider is installed: only OpenTelemetry's proxy or no-op one."""
    return isinstance(provider, _UNSET_PROVIDERS)


def metric_readers(provider: Any) -> tuple[Any, ...] | None:
    """The readers an SDK ``MeterProvider`` feeds, those added after it was built included; ``None`` when
    ``provider`` is not one whose readers can be seen. No public API lists them: ``/metrics`` uses this to
    tell whether an application's own provider has a Prometheus reader."""
    consumer = getattr(provider, "_measurement_consumer", None)
    readers = getattr(consumer, "_reader_storages", None)  # every reader, added ones too
    if readers is None:
        readers = getattr(provider, "_metric_readers", None)  # the ones it was built with
    return tuple(readers) if readers is not None else None
