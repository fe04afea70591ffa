"""The names module is the single source of truth: unique names, documented, and translated to
Prometheus exactly as the real exporter does."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest

from docsgen import tables
from ragotel import semconv as sc

# The page generated from this module (python -m docsgen); tests/docs/test_generated_pages.py checks it is current.
NAMES_PAGE = (Path(__file__).resolve().parents[1] / "docs" / "reference" / "names.md").read_text(encoding="utf-8")
# Every instrument ragotel creates, in either GenAI mode.
METRICS = sorted({made for latest in (False, True) for made in tables.instruments(latest)}, key=lambda i: i.name)


def _constants(prefixes: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in vars(sc).items() if k.isupper() and isinstance(v, str) and v.startswith(prefixes)}


def test_every_name_is_defined_once() -> None:
    names = _constants(("gen_ai.", "rag.", "error.", "server."))
    duplicated = {v for v in names.values() if list(names.values()).count(v) > 1}
    assert not duplicated


def test_every_metric_and_attribute_is_on_the_names_page() -> None:
    missing = [v for k, v in _constants(("gen_ai.", "rag.")).items() if f"`{v}`" not in NAMES_PAGE]
    assert not missing, f"not in docs/reference/names.md: {missing}"


def test_every_name_has_its_meaning() -> None:
    """Each name the names page lists has a docstring to say what it means (a metric's: its instrument and unit)."""
    metrics = {made.name for made in METRICS}
    undocumented = [name.constant for name in tables.names()
                    if (name.value in metrics or tables.listed(name)) and not name.doc]
    assert not undocumented


def test_every_metric_docstring_states_the_instrument_ragotel_creates() -> None:
    docs = {name.value: name.doc for name in tables.names()}
    for made in METRICS:
        assert tables.declared(docs.get(made.name, "")) == (made.kind, made.unit), made


def test_each_mode_creates_the_metrics_it_should() -> None:
    default, latest = ({made.name for made in tables.instruments(mode)} for mode in (False, True))
    assert sc.RAG_PIPELINE_DURATION in default - latest and sc.GEN_AI_INVOKE_AGENT_DURATION in latest - default
    assert sc.GEN_AI_CLIENT_TOKEN_USAGE in default - latest
    assert set(sc.INFERENCE_USAGE_COUNTERS.values()) <= latest - default
    assert sc.RAG_STEP_DURATION in default & latest


def test_prometheus_names_match_the_real_exporter() -> None:
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    meter = provider.get_meter("names")
    for made in METRICS:
        if made.kind == "counter":
            meter.create_counter(made.name, unit=made.unit).add(1)
        elif made.kind == "gauge":
            meter.create_gauge(made.name, unit=made.unit).set(1)
        elif made.kind == "updowncounter":
            meter.create_up_down_counter(made.name, unit=made.unit).add(1)
        else:
            meter.create_histogram(made.name, unit=made.unit).record(1)
    exposition = generate_latest(registry).decode()
    for made in METRICS:
        expected = sc.prometheus_name(made.name, made.unit, counter=made.kind == "counter")
        assert expected == made.prometheus
        series = f"{expected}_bucket{{" if made.kind == "histogram" else f"{expected}{{"
        assert series in exposition or f"{expected} " in exposition, (made.name, expected)
        assert f"`{expected}`" in NAMES_PAGE, f"docs/reference/names.md lacks the Prometheus name {expected}"
    provider.shutdown()
