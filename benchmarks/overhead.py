"""What a ragotel step costs, next to the same telemetry written by hand with the OpenTelemetry API.

Every scenario is a call users make: retrieval returning 3 and 20 hits (dicts with id/score/text,
objects, ``(doc, score)`` tuples), embedding returning a batch of vectors, prompt building returning
messages, generation returning an OpenAI-style completion with usage, an async-generator retrieval,
and a pipeline around retrieval, prompt and generation. Each is timed, sync and async, as

* ``plain``      — the function, uninstrumented;
* ``(a) span``   — a bare span with the same name and attributes the ragotel step's span ends with (set
  as ragotel sets them: the ones known up front at start, the ones read off the result after the call);
* ``(b) +hist``  — that span plus one histogram record (the step's duration record);
* ``(c) same``   — the identical telemetry by hand: that span and every metric record the ragotel
  step made (same instruments, values and attributes), all read off one real ragotel call of the same
  scenario, so the baseline cannot drift from what ragotel does;
* ``(h) careful`` — what a careful person writes by hand with no help: the span with every attribute
  known at start passed at creation, the result's attributes in one ``set_attributes``, and one
  histogram record with ragotel's duration attributes after the span ends;
* ``ragotel``    — the decorated function.

Variants run interleaved, round by round, so machine noise hits them alike; figures are medians.
Spans go through a real ``BatchSpanProcessor`` into an exporter that discards them, metrics into a
real ``MeterProvider`` (one in-memory reader, exemplars on: the SDK default), so the figures are the
instrumentation's own cost. With ``--peers``, OpenLLMetry (traceloop-sdk ``@task``), OpenLIT
(``@openlit.trace``), OpenInference (``OITracer.chain``) and Logfire (``@logfire.instrument``) decorate
the 3-hit retrieval in a fresh process per library per round (``benchmarks/peers.py``; ``pip install
ragotel[bench]``), each against (b) measured in its own process.

Run: ``python benchmarks/overhead.py [--calls 2000] [--rounds 9] [--only retrieval-3] [--peers] [--json PATH]``;
``--json`` also writes the steps' figures to PATH (what ``docsgen.pictures`` charts).
Targets: every step ≤ 1.15× (c); the 3-hit retrieval ≤ 1.3× (b) and (h), and ≤ 0.75× traceloop ``@task``;
a disabled step ≤ 1 µs over a plain call; RSS flat over 200 000 calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import ragotel
from ragotel._core import runtime

BENCH_DIR = Path(__file__).resolve().parent
TEXT = "Lindenhof Family Clinic opens at 8:00 on weekdays; the walk-in hours end at 11:30. " * 3


class DiscardingExporter(SpanExporter):
    """Accepts every batch and keeps nothing: measures the SDK path, not a network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class ProbeProcessor(SpanProcessor):
    """Keeps the spans of one probe call, and the attributes each had when it started, to read off what a
    ragotel step emitted; idle otherwise."""

    def __init__(self) -> None:
        self.enabled = False
        self.spans: list[ReadableSpan] = []
        self.at_start: dict[int, dict[str, Any]] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.enabled:
            self.at_start[span.context.span_id] = dict(span.attributes or {})

    def on_end(self, span: ReadableSpan) -> None:
        if self.enabled:
            self.spans.append(span)


PROBE = ProbeProcessor()
READER = InMemoryMetricReader(preferred_temporality={
    Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
})


def setup() -> None:
    provider = TracerProvider()
    provider.add_span_processor(PROBE)
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter(), max_queue_size=1 << 16))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


# -- what users return ----------------------------------------------------------------------------
class Hit:
    __slots__ = ("id", "score", "text")

    def __init__(self, id: str, score: float, text: str) -> None:
        self.id, self.score, self.text = id, score, text


def dict_hits(n: int) -> list[dict[str, Any]]:
    return [{"id": f"doc-{i}", "score": 0.92 - i * 0.013, "text": TEXT} for i in range(n)]


def object_hits(n: int) -> list[Hit]:
    return [Hit(f"doc-{i}", 0.92 - i * 0.013, TEXT) for i in range(n)]


def tuple_hits(n: int) -> list[tuple[dict[str, str], float]]:
    return [({"id": f"doc-{i}", "text": TEXT}, 0.92 - i * 0.013) for i in range(n)]


VECTORS = np.random.default_rng(7).random((4, 384), dtype=np.float32)
MESSAGES = [{"role": "system", "content": "Answer from the context.\n\n" + TEXT}, {"role": "user", "content": "When?"}]
COMPLETION = {
    "id": "chatcmpl-1", "model": "tiny-llama", "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "At 8:00 [1]."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 412, "completion_tokens": 9, "total_tokens": 421},
}


@dataclass
class Scenario:
    name: str
    result: Any
    decorate: Callable[[Callable[..., Any]], Callable[..., Any]]
    streamed: bool = False  # an async generator yielding the items of ``result``


SCENARIOS = [
    Scenario("retrieval-3", dict_hits(3), ragotel.retrieval(data_source="faiss")),
    Scenario("retrieval-20", dict_hits(20), ragotel.retrieval(data_source="faiss")),
    Scenario("retrieval-3-objects", object_hits(3), ragotel.retrieval(data_source="faiss")),
    Scenario("retrieval-3-tuples", tuple_hits(3), ragotel.retrieval(data_source="faiss")),
    Scenario("embedding", VECTORS, ragotel.embedding(model="all-MiniLM-L6-v2")),
    Scenario("prompt", MESSAGES, ragotel.prompt(template="rag-v1")),
    Scenario("generation", COMPLETION, ragotel.generation(model="tiny-llama", provider="vllm")),
    Scenario("retrieval-3-agen", dict_hits(3), ragotel.retrieval(data_source="faiss"), streamed=True),
]


# -- reading one real call off the providers ----------------------------------------------------------
@dataclass
class Record:
    instrument: str
    kind: str  # "histogram" or "counter"
    value: float | None  # None: the elapsed time
    attributes: dict[str, Any]
    bounds: Sequence[float] = ()


@dataclass
class Emitted:
    """One span and the metric records a ragotel step made, as it made them."""

    name: str
    kind: SpanKind
    attributes: dict[str, Any]
    """Those the span started with; ``later`` are the ones set once the result was known."""
    later: dict[str, Any]
    records: list[Record] = field(default_factory=list)

    @property
    def duration_record(self) -> Record:
        return next(r for r in self.records if r.instrument.endswith(".duration"))


def read_off(call: Callable[[], Any]) -> list[Emitted]:
    """Run ``call`` once and return what it emitted: its spans, innermost first, each with its records."""
    READER.get_metrics_data()  # drop what was recorded before
    PROBE.spans.clear()
    PROBE.at_start.clear()
    PROBE.enabled = True
    try:
        call()
    finally:
        PROBE.enabled = False
    spans = list(PROBE.spans)
    records: list[Record] = []
    data = READER.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attrs = dict(point.attributes or {})
                    if isinstance(point, HistogramDataPoint):
                        if not point.count:
                            continue
                        duration = metric.name.endswith(".duration")
                        for _ in range(point.count):
                            records.append(Record(metric.name, "histogram", None if duration else
                                                  point.sum / point.count, attrs, tuple(point.explicit_bounds)))
                    elif getattr(point, "value", 0):
                        records.append(Record(metric.name, "counter", float(point.value), attrs))
    emitted = []
    for span in spans:
        first = PROBE.at_start[span.context.span_id]
        later = {k: v for k, v in (span.attributes or {}).items() if k not in first}
        emitted.append(Emitted(span.name, span.kind, first, later))
    # Records belong to the span whose step kind (and name) they carry; the rest to the outermost span.
    for record in records:
        owner = next((e for e in emitted if _owns(e, record)), emitted[-1])
        owner.records.append(record)
    return emitted


def _owns(emitted: Emitted, record: Record) -> bool:
    keys = ("rag.step.kind", "rag.step.name", "gen_ai.workflow.name")
    shared = [k for k in keys if k in record.attributes and k in emitted.attributes]
    return bool(shared) and all(record.attributes[k] == emitted.attributes[k] for k in shared)


# -- the same telemetry, by hand -------------------------------------------------------------------
class ByHand:
    """Instruments created by hand, once, like an application would."""

    def __init__(self) -> None:
        self.tracer = trace.get_tracer("by-hand")
        self.meter = metrics.get_meter("by-hand")
        self._instruments: dict[tuple[str, str], Any] = {}

    def instrument(self, record: Record) -> Callable[..., None]:
        key = (record.instrument, record.kind)
        if key not in self._instruments:
            if record.kind == "histogram":
                made = self.meter.create_histogram(
                    record.instrument, explicit_bucket_boundaries_advisory=list(record.bounds) or None)
                self._instruments[key] = made.record
            else:
                self._instruments[key] = self.meter.create_counter(record.instrument).add
        return self._instruments[key]  # type: ignore[no-any-return]

    def plan(self, emitted: Emitted, level: str) -> list[tuple[Callable[..., None], float | None, dict[str, Any]]]:
        if level == "span":
            records: list[Record] = []
        elif level == "span+hist":
            records = [emitted.duration_record]
        else:
            records = emitted.records
        return [(self.instrument(r), r.value, r.attributes) for r in records]

    def sync(self, emitted: Emitted, level: str, body: Callable[[], Any]) -> Callable[[], Any]:
        plan, tracer, perf = self.plan(emitted, level), self.tracer, time.perf_counter
        name, kind, attrs, later = emitted.name, emitted.kind, emitted.attributes, emitted.later

        def call() -> Any:
            with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as span:
                start = perf()
                result = body()
                elapsed = perf() - start
                if later:
                    span.set_attributes(later)
                for record, value, rattrs in plan:
                    record(elapsed if value is None else value, rattrs)
            return result

        return call

    def careful(self, emitted: Emitted, body: Callable[[], Any], asynchronous: bool) -> Callable[[], Any]:
        """(h): attributes known at start at creation, the rest in one call, the duration recorded after the end."""
        duration = emitted.duration_record
        record, dattrs = self.instrument(duration), duration.attributes
        tracer, perf = self.tracer, time.perf_counter
        name, kind, attrs, later = emitted.name, emitted.kind, emitted.attributes, emitted.later

        def call() -> Any:
            start = perf()
            with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as span:
                result = body()
                span.set_attributes(later)
            record(perf() - start, dattrs)
            return result

        async def acall() -> Any:
            start = perf()
            with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as span:
                result = await body()
                span.set_attributes(later)
            record(perf() - start, dattrs)
            return result

        return acall if asynchronous else call

    def asynchronous(self, emitted: Emitted, level: str, body: Callable[[], Any]) -> Callable[[], Any]:
        plan, tracer, perf = self.plan(emitted, level), self.tracer, time.perf_counter
        name, kind, attrs, later = emitted.name, emitted.kind, emitted.attributes, emitted.later

        async def call() -> Any:
            with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as span:
                start = perf()
                result = await body()
                elapsed = perf() - start
                if later:
                    span.set_attributes(later)
                for record, value, rattrs in plan:
                    record(elapsed if value is None else value, rattrs)
            return result

        return call


# -- variants per scenario ---------------------------------------------------------------------------
Variants = dict[str, Callable[[], Any]]
LEVELS = {"(a) span": "span", "(b) +hist": "span+hist", "(c) same": "same"}


def step_variants(scenario: Scenario, hand: ByHand, asynchronous: bool) -> Variants:
    result = scenario.result
    if scenario.streamed:
        async def items() -> AsyncIterator[Any]:
            for item in result:
                yield item

        decorated_gen = scenario.decorate(items)

        async def plain() -> Any:
            return [x async for x in items()]

        async def ragotel_call() -> Any:
            return [x async for x in decorated_gen()]
    elif asynchronous:
        async def plain() -> Any:
            return result

        ragotel_call = scenario.decorate(plain)
    else:
        def plain() -> Any:
            return result

        ragotel_call = scenario.decorate(plain)
    runner = _runner(asynchronous or scenario.streamed)
    (emitted,) = read_off(lambda: runner(ragotel_call, 1))
    build = hand.asynchronous if asynchronous or scenario.streamed else hand.sync
    variants: Variants = {"plain": plain}
    variants.update({label: build(emitted, level, plain) for label, level in LEVELS.items()})
    variants["(h) careful"] = hand.careful(emitted, plain, asynchronous or scenario.streamed)
    variants["ragotel"] = ragotel_call
    return variants


def pipeline_variants(hand: ByHand, asynchronous: bool) -> Variants:
    """A pipeline around a 3-hit retrieval, prompt building and generation."""
    parts = [SCENARIOS[0], SCENARIOS[5], SCENARIOS[6]]
    if asynchronous:
        plains = []
        for part in parts:
            async def body(value: Any = part.result) -> Any:
                return value
            plains.append(body)
        steps = [part.decorate(body) for part, body in zip(parts, plains, strict=True)]

        async def plain() -> Any:
            return [await b() for b in plains]

        @ragotel.pipeline("chat")
        async def ragotel_call() -> Any:
            return [await s() for s in steps]
    else:
        plains = [lambda value=part.result: value for part in parts]
        steps = [part.decorate(body) for part, body in zip(parts, plains, strict=True)]

        def plain() -> Any:
            return [b() for b in plains]

        @ragotel.pipeline("chat")
        def ragotel_call() -> Any:
            return [s() for s in steps]

    runner = _runner(asynchronous)
    emitted = read_off(lambda: runner(ragotel_call, 1))  # three steps, then the pipeline
    *inner, outer = emitted
    build = hand.asynchronous if asynchronous else hand.sync
    variants: Variants = {"plain": plain}
    for label, level in LEVELS.items():
        children = [build(e, level, b) for e, b in zip(inner, plains, strict=True)]
        if asynchronous:
            async def body(children: list[Callable[[], Any]] = children) -> Any:
                return [await c() for c in children]
        else:
            def body(children: list[Callable[[], Any]] = children) -> Any:  # type: ignore[misc]
                return [c() for c in children]
        variants[label] = build(outer, level, body)
    careful = [hand.careful(e, b, asynchronous) for e, b in zip(inner, plains, strict=True)]
    if asynchronous:
        async def careful_body() -> Any:
            return [await c() for c in careful]
    else:
        def careful_body() -> Any:  # type: ignore[misc]
            return [c() for c in careful]
    variants["(h) careful"] = hand.careful(outer, careful_body, asynchronous)
    variants["ragotel"] = ragotel_call
    return variants


# -- timing -------------------------------------------------------------------------------------------
def _time_sync(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def _time_async(fn: Callable[[], Any], calls: int) -> float:
    async def loop() -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            await fn()
        return (time.perf_counter_ns() - start) / calls

    return asyncio.run(loop())


def _runner(asynchronous: bool) -> Callable[[Callable[[], Any], int], float]:
    return _time_async if asynchronous else _time_sync


def measure(variants: Variants, asynchronous: bool, calls: int, rounds: int) -> dict[str, float]:
    timer = _runner(asynchronous)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up: caches, instruments, attribute sets
        timer(fn, max(calls // 10, 50))
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(timer(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def exemplar_cost(calls: int, rounds: int) -> dict[str, float]:
    """One histogram record with the step's (sampled) span as its context — an exemplar is offered, as
    ragotel records — against the same record with no span in its context."""
    tracer, histogram = trace.get_tracer("by-hand"), metrics.get_meter("by-hand").create_histogram("bench.exemplar")
    attrs = {"rag.step.kind": "retrieval", "rag.step.name": "search", "rag.outcome": "ok"}
    with tracer.start_as_current_span("step") as span:
        with_span = trace.set_span_in_context(span)
    without = Context()
    return measure({
        "no span": lambda: histogram.record(0.01, attrs, context=without),
        "step span": lambda: histogram.record(0.01, attrs, context=with_span),
    }, False, calls, rounds)


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def rss_over(calls: int) -> tuple[int, int]:
    """RSS after a tenth of ``calls`` 3-hit retrievals and after all of them, KiB."""
    step = ragotel.retrieval(data_source="faiss")(lambda hits=SCENARIOS[0].result: hits)
    for _ in range(calls // 10):
        step()
    early = rss_kib()
    for _ in range(calls - calls // 10):
        step()
    return early, rss_kib()


def peer_python(lib: str, default: str) -> str:
    """The Python that has ``lib``: ``var/peers/one-sdk`` (every library on one OpenTelemetry SDK) when it
    exists, else ``var/peers/<lib>`` (each on its own), else ``default``. ragotel itself runs where the
    peers run, so that all of them share the SDK they are compared on."""
    for folder in ("one-sdk", lib):
        own = BENCH_DIR.parent / "var" / "peers" / folder / "bin" / "python"
        if own.exists() and (folder == "one-sdk" or lib != "ragotel"):
            return str(own)
    return default


def peers(rounds: int, calls: int, python: str) -> dict[str, tuple[float, float, str] | str]:
    """Per library, each in a fresh process per round: the median ratio lib / (b), the median ns per call
    and the OpenTelemetry SDK version it ran on; or why it did not run."""
    ratios: dict[str, list[float]] = {}
    absolute: dict[str, list[float]] = {}
    sdks: dict[str, str] = {}
    missing: dict[str, str] = {}
    for _ in range(rounds):
        for lib in ("ragotel", "traceloop", "openlit", "openinference", "logfire"):
            if lib in missing:
                continue
            done = subprocess.run([peer_python(lib, python), str(BENCH_DIR / "peers.py"), lib, "--calls", str(calls)],
                                  capture_output=True, text=True, timeout=600)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                missing[lib] = (done.stderr.strip().splitlines() or ["failed"])[-1][:120]
                continue
            out = json.loads(lines[-1])
            if "missing" in out:
                missing[lib] = str(out["missing"])
                continue
            ratios.setdefault(lib, []).append(out["lib_ns"] / out["span_hist_ns"])
            absolute.setdefault(lib, []).append(out["lib_ns"])
            sdks[lib] = str(out.get("sdk", "?"))
    result: dict[str, tuple[float, float, str] | str] = {
        lib: (statistics.median(v), statistics.median(absolute[lib]), sdks[lib]) for lib, v in ratios.items()}
    result.update(missing)
    return result


def cpu_model() -> str:
    """The processor's name where Linux says it (platform.processor() is empty there), else ''."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.partition(":")[2].split())
    except OSError:
        pass
    return ""


def write_json(path: str, benchmark: str, argv: Sequence[str], fields: dict[str, Any]) -> None:
    """A run's figures as one JSON document, the machine and the run's command beside them: what the documentation's
    charts are drawn from (``docsgen.pictures``). ``fields``: rounds, calls, method, unit, target, rows, skipped."""
    model = cpu_model()
    document = {
        "benchmark": benchmark,
        "command": " ".join([f"python benchmarks/{benchmark}.py", *argv]),
        "ragotel": ragotel.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs" + (f", {model}" if model else ""),
        **fields,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per variant per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", action="append",
                        help="scenario name (repeatable); also pipeline, disabled, exemplars, rss")
    parser.add_argument("--rss-calls", type=int, default=200_000)
    parser.add_argument("--peers", action="store_true", help="also time the peers (pip install ragotel[bench])")
    parser.add_argument("--peer-rounds", type=int, default=5)
    parser.add_argument("--peers-python", default=sys.executable, help="the Python that has the peers installed")
    parser.add_argument("--json", metavar="PATH", help="also write the steps' figures to PATH as JSON")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # recorded in --json's document
    wanted = set(args.only or [])

    def chosen(name: str) -> bool:
        return not wanted or name in wanted

    setup()
    hand = ByHand()
    print(f"ragotel {ragotel.__version__} step overhead: {args.calls} calls x {args.rounds} rounds, median ns/call; "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    header = f"  {'scenario':<26}{'plain':>8}{'(a)':>8}{'(b)':>8}{'(c)':>8}{'(h)':>8}{'ragotel':>9}" \
             f"{'×(a)':>7}{'×(b)':>7}{'×(c)':>7}{'×(h)':>7}"
    worst_c, retrieval_b, retrieval_h = 0.0, None, None
    json_rows: list[dict[str, Any]] = []
    for asynchronous in (False, True):
        print(f"\n{'async' if asynchronous else 'sync'}\n{header}")
        rows: list[tuple[str, Variants]] = []
        for scenario in SCENARIOS:
            if scenario.streamed and not asynchronous:
                continue
            if chosen(scenario.name):
                rows.append((scenario.name, step_variants(scenario, hand, asynchronous)))
        if chosen("pipeline"):
            rows.append(("pipeline (3 steps)", pipeline_variants(hand, asynchronous)))
        for name, variants in rows:
            ns = measure(variants, asynchronous or name.endswith("agen"), args.calls, args.rounds)
            ours = ns["ragotel"]
            ratio_c = ours / ns["(c) same"]
            worst_c = max(worst_c, ratio_c)
            json_rows.append({"scenario": f"{'async' if asynchronous else 'sync'} {name}", "plain": round(ns["plain"]),
                              "by_hand": round(ns["(c) same"]), "ragotel": round(ours), "ratio": round(ratio_c, 4),
                              "span": round(ns["(a) span"]), "span_hist": round(ns["(b) +hist"]),
                              "careful": round(ns["(h) careful"])})
            if name == "retrieval-3" and not asynchronous:
                retrieval_b, retrieval_h = ours / ns["(b) +hist"], ours / ns["(h) careful"]
            print(f"  {name:<26}{ns['plain']:>8.0f}{ns['(a) span']:>8.0f}{ns['(b) +hist']:>8.0f}"
                  f"{ns['(c) same']:>8.0f}{ns['(h) careful']:>8.0f}{ours:>9.0f}{ours / ns['(a) span']:>6.2f}×"
                  f"{ours / ns['(b) +hist']:>6.2f}×{ratio_c:>6.2f}×{ours / ns['(h) careful']:>6.2f}×")

    if chosen("disabled"):
        runtime.update(disabled=True)
        plain = lambda hits=SCENARIOS[0].result: hits  # noqa: E731
        disabled_ns = measure({"plain": plain, "disabled": ragotel.retrieval(data_source="faiss")(plain)},
                              False, args.calls * 10, args.rounds)
        runtime.update(disabled=False)
        print(f"\nOTEL_SDK_DISABLED=true: plain {disabled_ns['plain']:.0f} ns, ragotel step "
              f"{disabled_ns['disabled']:.0f} ns (+{disabled_ns['disabled'] - disabled_ns['plain']:.0f} ns; "
              "target ≤ 1000 ns)")
    if chosen("exemplars"):
        ex = exemplar_cost(args.calls * 5, args.rounds)
        print(f"a record with the step's span as context (exemplar offered): {ex['step span']:.0f} ns, with no span "
              f"{ex['no span']:.0f} ns (+{ex['step span'] - ex['no span']:.0f} ns per record)")
    if chosen("rss"):
        early, late = rss_over(args.rss_calls)
        print(f"RSS over {args.rss_calls} 3-hit retrievals: {early} KiB after {args.rss_calls // 10}, {late} KiB "
              f"after all ({late - early:+d} KiB)")

    print(f"\nworst ragotel / (c): {worst_c:.2f}× (target ≤ 1.15×)")
    if args.json:  # "by_hand" is (c), the identical telemetry
        write_json(args.json, "overhead", args.argv, {
            "rounds": args.rounds, "calls": args.calls,
            "method": f"median ns per call over {args.rounds} rounds of {args.calls} calls per variant, the variants "
                      "interleaved round by round",
            "unit": "ns", "target": 1.15, "rows": json_rows, "skipped": []})
    if retrieval_b is not None and retrieval_h is not None:
        print(f"3-hit retrieval ragotel / (b): {retrieval_b:.2f}×, / (h): {retrieval_h:.2f}× (target ≤ 1.30×)")
    if args.peers:
        found = peers(args.peer_rounds, args.calls * 5, args.peers_python)
        print(f"\npeers, 3-hit retrieval, fresh process per library per round ({args.peer_rounds} rounds), "
              "median × (b) in its own process:")
        for lib in ("ragotel", "traceloop", "openlit", "openinference", "logfire"):
            row = found.get(lib, "not run")
            if isinstance(row, tuple):
                print(f"  {lib:<15}{row[0]:>6.2f}× (b)  {row[1]:>8.0f} ns/call  (opentelemetry-sdk {row[2]})")
            else:
                print(f"  {lib:<15}{row}")
        mine, theirs = found.get("ragotel"), found.get("traceloop")
        if isinstance(mine, tuple) and isinstance(theirs, tuple):
            print(f"ragotel / traceloop @task: {mine[0] / theirs[0]:.2f}× in ratios to (b) (target ≤ 0.75×), "
                  f"{mine[1] / theirs[1]:.2f}× in ns per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
