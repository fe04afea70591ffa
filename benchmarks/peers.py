"""One library's decorator on the 3-hit retrieval, against (b) — the same span by hand plus one histogram
record — in one fresh process. Prints one JSON line: ``{"lib_ns": ..., "span_hist_ns": ...}``, or
``{"missing": "..."}`` when the library is not installed. Run by ``benchmarks/overhead.py --peers``.

Each library gets the same kind of providers: an SDK ``TracerProvider`` with a ``BatchSpanProcessor``
into an exporter that discards, and an SDK ``MeterProvider`` with an in-memory reader — installed
before the library starts, or handed to it where it insists on making its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

TEXT = "Lindenhof Family Clinic opens at 8:00 on weekdays; the walk-in hours end at 11:30. " * 3
HITS = [{"id": f"doc-{i}", "score": 0.92 - i * 0.013, "text": TEXT} for i in range(3)]
# (b): the span the ragotel step ends with, and its one duration record.
SPAN_NAME = "retrieval faiss"
SPAN_ATTRIBUTES = {"rag.step.kind": "retrieval", "rag.step.name": "search", "gen_ai.operation.name": "retrieval",
                   "gen_ai.data_source.id": "faiss"}
RESULT_ATTRIBUTES = {"rag.retrieval.results.returned": 3, "rag.retrieval.score.min": 0.894,
                     "rag.retrieval.score.max": 0.92, "rag.retrieval.score.avg": 0.907}
METRIC_ATTRIBUTES = {"rag.step.kind": "retrieval", "rag.step.name": "search", "gen_ai.data_source.id": "faiss",
                     "rag.outcome": "ok", "rag.retrieval.quality": "ok"}


class DiscardingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def install_providers() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter(), max_queue_size=1 << 16))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return provider


def search() -> list[dict[str, Any]]:
    return HITS


def decorated(lib: str) -> Callable[[], Any]:
    """``search`` under ``lib``'s decorator (ImportError when the library is missing)."""
    if lib == "ragotel":
        install_providers()
        import ragotel

        return ragotel.retrieval(data_source="faiss")(search)  # type: ignore[no-any-return]
    if lib == "traceloop":
        from traceloop.sdk import Traceloop
        from traceloop.sdk.decorators import task

        install_providers()
        Traceloop.init(app_name="bench", exporter=DiscardingExporter(), disable_batch=False,
                       telemetry_enabled=False, should_enrich_metrics=False)
        return task(name="search")(search)  # type: ignore[no-any-return]
    if lib == "openlit":
        import openlit

        install_providers()
        try:  # up to 1.3x: the tracer and meter are handed over
            openlit.init(application_name="bench", disable_batch=False, collect_gpu_stats=False,
                         tracer=trace.get_tracer("openlit"), meter=metrics.get_meter("openlit"))
        except TypeError:  # later releases take the global providers installed above
            openlit.init(application_name="bench", disable_batch=False, collect_gpu_stats=False)
        return openlit.trace(search)  # type: ignore[no-any-return]
    if lib == "openinference":
        from openinference.instrumentation import OITracer, TraceConfig

        install_providers()
        return OITracer(trace.get_tracer("bench"), config=TraceConfig()).chain(search)  # type: ignore[no-any-return]
    if lib == "logfire":
        import logfire

        logfire.configure(send_to_logfire=False, console=False, service_name="bench",
                          additional_span_processors=[BatchSpanProcessor(DiscardingExporter(),
                                                                         max_queue_size=1 << 16)],
                          metrics=logfire.MetricsOptions(additional_readers=[InMemoryMetricReader()]))
        return logfire.instrument("search")(search)  # type: ignore[no-any-return]
    raise SystemExit(f"unknown library {lib}")


def span_and_histogram() -> Callable[[], Any]:
    """(b) on providers of its own, the same kind in every process, whatever the library installed."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter(), max_queue_size=1 << 16))
    tracer = provider.get_tracer("by-hand")
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    histogram = meters.get_meter("by-hand").create_histogram("rag.step.duration", unit="s")

    def call() -> Any:
        with tracer.start_as_current_span(SPAN_NAME, attributes=SPAN_ATTRIBUTES) as span:
            start = time.perf_counter()
            result = search()
            span.set_attributes(RESULT_ATTRIBUTES)
            histogram.record(time.perf_counter() - start, METRIC_ATTRIBUTES)
        return result

    return call


def timed(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("lib")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    try:
        lib = decorated(args.lib)
    except ImportError as exc:
        print(json.dumps({"missing": f"not installed ({exc.name})"}))
        return 0
    by_hand = span_and_histogram()
    assert lib() is HITS or lib() == HITS
    samples: dict[str, list[float]] = {"lib_ns": [], "span_hist_ns": []}
    for fn in (lib, by_hand):
        timed(fn, args.calls // 10)
    for _ in range(args.rounds):
        samples["lib_ns"].append(timed(lib, args.calls // args.rounds))
        samples["span_hist_ns"].append(timed(by_hand, args.calls // args.rounds))
    out: dict[str, Any] = {name: statistics.median(values) for name, values in samples.items()}
    out["sdk"] = version("opentelemetry-sdk")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
