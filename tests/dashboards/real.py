"""What a Prometheus scraping a RAG service and vLLM really holds, for checking the dashboards and rules
against it instead of against the dashboards' own constants.

* ragotel's series: the service of tests/rag_workload.py, run once in each GenAI mode, its metrics turned
  into Prometheus series by opentelemetry-exporter-prometheus itself (the exporter ragotel's ``/metrics``
  and Alloy's ``otelcol.exporter.prometheus`` translate names with), then parsed back from the text
  exposition with prometheus_client's parser.
* vLLM's series: ``tests/vllm_served.json``, what the real vLLM CPU server of the stack tests serves;
  tests/stack/test_vllm_served.py fails when that list and the real server differ.
* The labels a scrape adds: Prometheus's ``job`` and ``instance``, and those Alloy's Kubernetes discovery
  sets (``target_label`` in deploy/alloy/kubernetes.alloy).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dashboards import promql as q
from tests import rag_workload
from tests.conftest import _LOGS, _READER, _SPANS

ROOT = Path(__file__).resolve().parents[2]
VLLM_SERVED = ROOT / "tests" / "vllm_served.json"
ALLOY_KUBERNETES = ROOT / "deploy" / "alloy" / "kubernetes.alloy"


@dataclass(frozen=True)
class Series:
    """One scraped sample's name and the labels it carries (a label with an empty value is no label)."""

    name: str
    labels: frozenset[tuple[str, str]]

    def value(self, label: str) -> str:
        return dict(self.labels).get(label, "")


def _exposed(data: MetricsData) -> list[Series]:
    """``data`` as opentelemetry-exporter-prometheus exposes it, parsed back from the text format."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    # The exporter translates through its registered reader; this provider has no instruments of its own.
    provider = MeterProvider(metric_readers=[reader])
    try:
        reader._receive_metrics(data)  # the MetricReader hook the SDK calls with a collection
        text = generate_latest(registry).decode()
    finally:
        provider.shutdown()
    return [Series(sample.name, frozenset((k, v) for k, v in sample.labels.items() if v))
            for family in text_string_to_metric_families(text) for sample in family.samples]


@cache
def ragotel_series() -> tuple[Series, ...]:
    """Every series the RAG service exposes, in both GenAI modes."""
    _SPANS.clear()
    _LOGS.clear()
    _READER.get_metrics_data()  # drop what earlier tests recorded
    found: list[Series] = []
    for latest in (False, True):
        rag_workload.serve(latest=latest)
        data = _READER.get_metrics_data()
        assert data is not None
        found += _exposed(data)
    # target_info describes the test's own provider, not a service's resource: the scrape section covers it.
    return tuple(dict.fromkeys(s for s in found if s.name != "target_info"))


@cache
def vllm_served() -> dict[str, object]:
    return dict(json.loads(VLLM_SERVED.read_text()))


def vllm_series() -> tuple[Series, ...]:
    """vLLM's samples as the committed list has them: each name with the label names it carries."""
    metrics = vllm_served()["metrics"]
    assert isinstance(metrics, dict)
    return tuple(Series(name, frozenset((label, "*") for label in labels)) for name, labels in metrics.items())


@cache
def scrape_labels() -> frozenset[str]:
    """Labels every scraped series carries: Prometheus's own and the Kubernetes discovery's, and the
    placement labels ragotel copies from its resource onto every series."""
    relabeled = set(re.findall(r'target_label\s*=\s*"([a-z_]+)"', ALLOY_KUBERNETES.read_text()))
    return frozenset({"job", "instance", *relabeled, *(label for _, label in q.PLACEMENT)})


def names(series: Iterable[Series]) -> set[str]:
    return {s.name for s in series}
