"""The names module is the single source of truth: unique names, documented, and translated to
Prometheus exactly as the real exporter does."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest

from ragotel import semconv as sc

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()

METRICS = [
    (sc.GEN_AI_CLIENT_OPERATION_DURATION, sc.UNIT_SECONDS, "histogram"),
    (sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.UNIT_TOKEN, "histogram"),
    (sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK, sc.UNIT_SECONDS, "histogram"),
    (sc.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK, sc.UNIT_SECONDS, "histogram"),
    (sc.RAG_PIPELINE_DURATION, sc.UNIT_SECONDS, "histogram"),
    (sc.RAG_STEP_DURATION, sc.UNIT_SECONDS, "histogram"),
    (sc.RAG_STEP_ERRORS, sc.UNIT_ERROR, "counter"),
    (sc.RAG_RETRIEVAL_TOP_SCORE, sc.UNIT_SCORE, "histogram"),
    (sc.RAG_RETRIEVAL_DOCUMENTS, sc.UNIT_DOCUMENT, "counter"),
    (sc.RAG_RETRIEVAL_DOCUMENTS_KEPT, sc.UNIT_DOCUMENT, "counter"),
    (sc.RAG_RETRIEVAL_SCORE, sc.UNIT_SCORE, "histogram"),
    (sc.RAG_PROMPT_CONTEXT_SIZE, sc.UNIT_CHAR, "counter"),
    (sc.RAG_PROMPT_CONTEXT_CHUNKS, sc.UNIT_CHUNK, "counter"),
    (sc.RAG_METRIC_ATTRIBUTE_OVERFLOW, sc.UNIT_VALUE, "counter"),
    (sc.RAG_COST, sc.UNIT_USD, "counter"),
    (sc.RAG_INDEX_ITEMS, sc.UNIT_ITEM, "gauge"),
    (sc.RAG_INDEX_LOAD_DURATION, sc.UNIT_SECONDS, "gauge"),
    (sc.HTTP_SERVER_REQUEST_DURATION, sc.UNIT_SECONDS, "histogram"),
    (sc.HTTP_SERVER_ACTIVE_REQUESTS, sc.UNIT_REQUEST, "updowncounter"),
    (sc.HTTP_SERVER_REQUEST_BODY_SIZE, sc.UNIT_BYTES, "histogram"),
    (sc.HTTP_SERVER_RESPONSE_BODY_SIZE, sc.UNIT_BYTES, "histogram"),
    (sc.RAG_INDEX_DIMENSION, sc.UNIT_DIMENSION, "gauge"),
    (sc.RAG_INDEX_AGE, sc.UNIT_SECONDS, "gauge"),
    (sc.RAG_INDEX_DOCUMENTS_WRITTEN, sc.UNIT_DOCUMENT, "counter"),
    (sc.RAG_INDEX_CHUNKS_WRITTEN, sc.UNIT_CHUNK, "counter"),
    (sc.RAG_INDEX_CHUNKS_EMBEDDED, sc.UNIT_CHUNK, "counter"),
]


def _constants(prefixes: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in vars(sc).items() if k.isupper() and isinstance(v, str) and v.startswith(prefixes)}


def test_every_name_is_defined_once() -> None:
    names = _constants(("gen_ai.", "rag.", "error.", "server."))
    duplicated = {v for v in names.values() if list(names.values()).count(v) > 1}
    assert not duplicated


def test_every_metric_and_attribute_is_documented_in_the_readme() -> None:
    missing = [v for k, v in _constants(("gen_ai.", "rag.")).items() if f"`{v}" not in README]
    assert not missing, f"not in README.md: {missing}"


def test_prometheus_names_match_the_real_exporter() -> None:
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    meter = provider.get_meter("names")
    for name, unit, kind in METRICS:
        if kind == "counter":
            meter.create_counter(name, unit=unit).add(1)
        elif kind == "gauge":
            meter.create_gauge(name, unit=unit).set(1)
        elif kind == "updowncounter":
            meter.create_up_down_counter(name, unit=unit).add(1)
        else:
            meter.create_histogram(name, unit=unit).record(1)
    exposition = generate_latest(registry).decode()
    for name, unit, kind in METRICS:
        expected = sc.prometheus_name(name, unit, counter=kind == "counter")
        series = f"{expected}_bucket{{" if kind == "histogram" else f"{expected}{{"
        assert series in exposition or f"{expected} " in exposition, (name, expected)
        assert f"`{expected}`" in README, f"README lacks the Prometheus name {expected}"
    provider.shutdown()
