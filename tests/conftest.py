"""Test harness: the real OpenTelemetry SDK with in-memory exporters, installed once per session.

OpenTelemetry allows one global provider per signal per process, so the providers are set here
once, the way an application would set its own; tests that exercise ``ragotel.configure()`` from a
clean process run it in a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics import _Gauge as Gauge  # the synchronous gauge: exported only under this name
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ragotel
from ragotel._core import runtime

_SPANS = InMemorySpanExporter()
_LOGS = InMemoryLogRecordExporter()
# Delta temporality: each collection returns only what was recorded since the previous one.
_READER = InMemoryMetricReader(
    preferred_temporality={
        Counter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
        ObservableCounter: AggregationTemporality.DELTA,
        Gauge: AggregationTemporality.DELTA,  # a value set by an earlier test is not this one's
    }
)


class _OpenSpans(SpanProcessor):
    """Spans started and not yet ended: a span left open is a leak the exporters never see."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.open.pop(span.context.span_id, None)


_OPEN = _OpenSpans()


def _install_providers() -> None:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(_OPEN)
    tracer_provider.add_span_processor(SimpleSpanProcessor(_SPANS))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(_LOGS))
    _logs.set_logger_provider(logger_provider)


_install_providers()


@dataclass
class Point:
    """One metric data point, flattened for assertions."""

    name: str
    attributes: dict[str, Any]
    value: float | None = None  # counters
    count: int | None = None  # histograms
    sum: float | None = None  # histograms
    span_ids: tuple[int, ...] = ()  # histograms: the spans their exemplars name
    bounds: tuple[float, ...] = ()  # histograms: the bucket boundaries


class Recorded:
    """What the code under test emitted since the fixture started."""

    def __init__(self) -> None:
        self._points: list[Point] = []

    def clear(self) -> None:
        """Forget everything recorded so far (one test running several examples)."""
        _SPANS.clear()
        _LOGS.clear()
        _OPEN.open.clear()
        _READER.get_metrics_data()
        self._points.clear()

    def spans(self) -> list[ReadableSpan]:
        return list(_SPANS.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def points(self, name: str | None = None) -> list[Point]:
        """Metric points recorded so far (delta collections, accumulated across calls)."""
        data = _READER.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else []:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    for p in metric.data.data_points:
                        attrs = dict(p.attributes or {})
                        if hasattr(p, "bucket_counts"):
                            if p.count:
                                spans = tuple(e.span_id for e in p.exemplars if e.span_id)
                                self._points.append(Point(metric.name, attrs, count=p.count, sum=p.sum,
                                                          span_ids=spans, bounds=tuple(p.explicit_bounds)))
                        elif p.value:
                            self._points.append(Point(metric.name, attrs, value=p.value))
        return [p for p in self._points if name is None or p.name == name]

    def logs(self) -> list[Any]:
        return list(_LOGS.get_finished_logs())

    def open_spans(self) -> list[str]:
        """Names of spans started since the fixture began that have not ended."""
        return sorted(_OPEN.open.values())


@pytest.fixture
def http_clients_instrumented() -> Iterator[None]:
    """ragotel's httpx and requests instrumentations on for one test."""
    ragotel.instrument_httpx()
    ragotel.instrument_requests()
    yield
    ragotel.uninstrument_requests()
    ragotel.uninstrument_httpx()


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    _SPANS.clear()
    _LOGS.clear()
    _OPEN.open.clear()
    _READER.get_metrics_data()  # drop what earlier tests recorded
    yield Recorded()


@pytest.fixture(autouse=True)
def _runtime_restored() -> Iterator[None]:
    """Each test starts with the switches the one before it found: what it changes (``runtime.update``) ends
    with it."""
    saved = runtime.current
    yield
    runtime.swap(saved)
