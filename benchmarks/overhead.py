"""What one ragotel step costs, next to the same work written by hand with the OpenTelemetry API.

Variants, measured interleaved round by round so that machine noise hits all of them alike:

* ``plain``          — the function, uninstrumented;
* ``span``           — a bare OTel span with the same attributes a step sets;
* ``span+hist``      — that span plus one histogram record (what a step does, by hand);
* ``ragotel``        — ``@ragotel.prompt`` (one span, one histogram record);
* ``span+2hist`` / ``ragotel retrieval`` — a GenAI step records two histograms (its step duration and
  ``gen_ai.client.operation.duration``), compared with the same two records by hand;
* ``disabled``       — ``@ragotel.prompt`` with ``OTEL_SDK_DISABLED=true``.

Sync and async. Spans go through a real ``BatchSpanProcessor`` into an exporter that discards them,
metrics into a real ``MeterProvider``, so the figures are the instrumentation's own cost.

Run: ``python benchmarks/overhead.py [--calls 20000] [--rounds 15]``. Target: ragotel ≤ 1.3× span+hist.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import ragotel
from ragotel import semconv as sc
from ragotel.steps import runtime


class DiscardingExporter(SpanExporter):
    """Accepts every batch and keeps nothing: measures the SDK path, not a network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def setup() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter(), max_queue_size=1 << 16))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def build_variants() -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], Any]]]:
    tracer = trace.get_tracer("bench")
    meter = metrics.get_meter("bench")
    hist = meter.create_histogram("bench.step.duration", unit="s")
    hist2 = meter.create_histogram("bench.operation.duration", unit="s")
    span_attrs = {sc.RAG_STEP_KIND: "prompt", sc.RAG_STEP_NAME: "work", sc.RAG_PROMPT_TEMPLATE: "rag-v1"}
    metric_attrs = {sc.RAG_STEP_KIND: "prompt", sc.RAG_STEP_NAME: "work", sc.RAG_OUTCOME: "ok"}
    ret_span_attrs = {sc.RAG_STEP_KIND: "retrieval", sc.RAG_STEP_NAME: "work", sc.GEN_AI_OPERATION_NAME: "retrieval",
                      sc.GEN_AI_DATA_SOURCE_ID: "faiss"}
    ret_metric_attrs = {**ret_span_attrs, sc.RAG_OUTCOME: "ok"}

    def work() -> int:
        return 1

    async def awork() -> int:
        return 1

    def by_hand(name: str, attrs: dict[str, Any], m_attrs: dict[str, Any], records: int) -> Callable[[], Any]:
        def call() -> int:
            start = time.perf_counter()
            with tracer.start_as_current_span(name, attributes=attrs):
                result = work()
            elapsed = time.perf_counter() - start
            if records:
                hist.record(elapsed, m_attrs)
            if records > 1:
                hist2.record(elapsed, m_attrs)
            return result

        return call

    def by_hand_async(name: str, attrs: dict[str, Any], m_attrs: dict[str, Any], records: int) -> Callable[[], Any]:
        async def call() -> int:
            start = time.perf_counter()
            with tracer.start_as_current_span(name, attributes=attrs):
                result = await awork()
            elapsed = time.perf_counter() - start
            if records:
                hist.record(elapsed, m_attrs)
            if records > 1:
                hist2.record(elapsed, m_attrs)
            return result

        return call

    sync = {
        "plain": work,
        "span": by_hand("prompt rag-v1", span_attrs, metric_attrs, 0),
        "span+hist": by_hand("prompt rag-v1", span_attrs, metric_attrs, 1),
        "ragotel prompt": ragotel.prompt(template="rag-v1")(work),
        "span+2hist": by_hand("retrieval faiss", ret_span_attrs, ret_metric_attrs, 2),
        "ragotel retrieval": ragotel.retrieval(data_source="faiss")(work),
    }
    asynchronous = {
        "plain": awork,
        "span": by_hand_async("prompt rag-v1", span_attrs, metric_attrs, 0),
        "span+hist": by_hand_async("prompt rag-v1", span_attrs, metric_attrs, 1),
        "ragotel prompt": ragotel.prompt(template="rag-v1")(awork),
        "span+2hist": by_hand_async("retrieval faiss", ret_span_attrs, ret_metric_attrs, 2),
        "ragotel retrieval": ragotel.retrieval(data_source="faiss")(awork),
    }
    return sync, asynchronous


def time_sync(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def time_async(fn: Callable[[], Any], calls: int) -> float:
    async def loop() -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            await fn()
        return (time.perf_counter_ns() - start) / calls

    return asyncio.run(loop())


def measure(variants: dict[str, Callable[[], Any]], timer: Callable[[Callable[[], Any], int], float],
            calls: int, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up: caches, instruments, attribute sets
        timer(fn, calls // 10)
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(timer(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, ns: dict[str, float]) -> list[str]:
    lines = [f"\n{title}", f"  {'variant':<20}{'ns/call':>10}{'× span':>9}{'× by hand':>11}"]
    pairs = {"ragotel prompt": "span+hist", "ragotel retrieval": "span+2hist", "disabled": "plain"}
    for name, value in ns.items():
        ref = pairs.get(name)
        vs_hand = f"{value / ns[ref]:>10.2f}×" if ref else ""
        lines.append(f"  {name:<20}{value:>10.0f}{value / ns['span']:>8.2f}×{vs_hand}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)

    setup()
    sync, asynchronous = build_variants()
    sync_ns = measure(sync, time_sync, args.calls, args.rounds)
    async_ns = measure(asynchronous, time_async, args.calls, args.rounds)

    runtime.disabled = True
    disabled = {"plain": sync["plain"], "disabled": ragotel.prompt(template="rag-v1")(sync["plain"])}
    disabled_ns = measure(disabled, time_sync, args.calls, args.rounds)
    runtime.disabled = False

    lines = [f"ragotel {ragotel.__version__} step overhead — {args.calls} calls × {args.rounds} rounds, median"]
    lines += report("sync", sync_ns)
    lines += report("async", async_ns)
    lines += [f"\nOTEL_SDK_DISABLED=true: plain {disabled_ns['plain']:.0f} ns, ragotel step "
              f"{disabled_ns['disabled']:.0f} ns (+{disabled_ns['disabled'] - disabled_ns['plain']:.0f} ns)"]
    worst = max(sync_ns["ragotel prompt"] / sync_ns["span+hist"], async_ns["ragotel prompt"] / async_ns["span+hist"])
    lines.append(f"\nragotel step vs span + histogram by hand: worst {worst:.2f}× (target ≤ 1.30×)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
