"""``/metrics`` serves exemplars in OpenMetrics scrapes: each histogram bucket names the span it counted,
the step's own span (the real SDK, the real exporter, a real HTTP scrape)."""

from __future__ import annotations

import re
import urllib.request

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import make_server

from ragotel import semconv as sc
from ragotel._core.prometheus import ExemplarPrometheusReader

EXEMPLAR = re.compile(r'^(\w+)_bucket\{(.*)\} \S+ # \{(?:span_id="([0-9a-f]{16})",trace_id="([0-9a-f]{32})"|'
                      r'trace_id="([0-9a-f]{32})",span_id="([0-9a-f]{16})")\} ')


def scrape(registry: CollectorRegistry, accept: str) -> str:
    server = make_server("127.0.0.1", 0, make_wsgi_app(registry))
    import threading

    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    request = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    thread.join(5)
    server.server_close()
    return body


def test_buckets_name_the_span_that_was_timed() -> None:
    registry = CollectorRegistry(auto_describe=True)
    reader = ExemplarPrometheusReader(registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    tracer = TracerProvider().get_tracer("t")
    histogram = provider.get_meter("m").create_histogram(
        "rag.step.duration", unit="s", explicit_bucket_boundaries_advisory=list(sc.STEP_DURATION_BUCKETS))
    with tracer.start_as_current_span("slow step") as slow:
        histogram.record(2.0, {"rag.step.kind": "retrieval"})
    with tracer.start_as_current_span("fast step") as fast:
        histogram.record(0.003, {"rag.step.kind": "retrieval"})
    histogram.record(0.003, {"rag.step.kind": "prompt"})  # no span: no exemplar

    body = scrape(registry, "application/openmetrics-text; version=1.0.0")
    found = {}
    for line in body.splitlines():
        match = EXEMPLAR.match(line)
        if match:
            name, labels = match.group(1), match.group(2)
            span_id = match.group(3) or match.group(6)
            trace_id = match.group(4) or match.group(5)
            found[(name, labels)] = (trace_id, span_id)
    by_span = {span_id: labels for (_, labels), (_, span_id) in found.items()}
    slow_ctx, fast_ctx = slow.get_span_context(), fast.get_span_context()
    assert 'le="2.56"' in by_span[format(slow_ctx.span_id, "016x")]
    assert 'le="0.005"' in by_span[format(fast_ctx.span_id, "016x")]
    assert all(trace == format(slow_ctx.trace_id, "032x") or trace == format(fast_ctx.trace_id, "032x")
               for trace, _ in found.values())
    assert not any("prompt" in labels for labels in by_span.values())
    # The classic text format has no exemplars, and the same series.
    text = scrape(registry, "text/plain")
    assert " # {" not in text and 'rag_step_duration_seconds_bucket{' in text
    provider.shutdown()


def exemplar_spans(body: str) -> dict[str, str]:
    """span id → the ``le`` of the bucket line carrying it."""
    found = {}
    for line in body.splitlines():
        match = EXEMPLAR.match(line)
        if match:
            le = re.search(r'le="([^"]+)"', match.group(2))
            assert le is not None
            found[match.group(3) or match.group(6)] = le.group(1)
    return found


OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def test_exemplars_stay_until_a_newer_one_replaces_them() -> None:
    """Every scrape collects and the SDK then forgets its exemplars; the endpoint must not: a text scrape
    (a person's curl) and a first OpenMetrics scrape (one of an HA pair) leave them for the next one."""
    registry = CollectorRegistry(auto_describe=True)
    reader = ExemplarPrometheusReader(registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    tracer = TracerProvider().get_tracer("t")
    histogram = provider.get_meter("m").create_histogram(
        "rag.step.duration", unit="s", explicit_bucket_boundaries_advisory=list(sc.STEP_DURATION_BUCKETS))
    with tracer.start_as_current_span("slow") as slow:
        histogram.record(2.0, {"rag.step.kind": "retrieval"})
    with tracer.start_as_current_span("fast") as fast:
        histogram.record(0.003, {"rag.step.kind": "retrieval"})
    slow_id, fast_id = (format(s.get_span_context().span_id, "016x") for s in (slow, fast))

    assert " # {" not in scrape(registry, "text/plain")  # collects: the SDK's reservoirs are emptied
    first, second = (exemplar_spans(scrape(registry, OPENMETRICS)) for _ in range(2))
    assert first == second == {slow_id: "2.56", fast_id: "0.005"}

    # A newer measurement in the fast bucket replaces that bucket's exemplar; the slow one stays.
    with tracer.start_as_current_span("faster") as faster:
        histogram.record(0.004, {"rag.step.kind": "retrieval"})
    newer_id = format(faster.get_span_context().span_id, "016x")
    assert exemplar_spans(scrape(registry, OPENMETRICS)) == {slow_id: "2.56", newer_id: "0.005"}
    assert exemplar_spans(scrape(registry, OPENMETRICS)) == {slow_id: "2.56", newer_id: "0.005"}
    provider.shutdown()
