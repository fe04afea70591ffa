"""``/metrics`` for Prometheus, with exemplars: each histogram bucket names a span it counted.

``opentelemetry-exporter-prometheus`` turns the SDK's metrics into Prometheus families but drops the
exemplars the SDK keeps (one per bucket, from the span that was current — or, for ragotel's steps,
passed as the record's context — when the value was recorded). ``ExemplarPrometheusReader``
is that reader plus the exemplars: when a scraper asks for OpenMetrics (Prometheus does when started
with ``--enable-feature=exemplar-storage``), every ``_bucket`` sample carries
``# {trace_id="…",span_id="…"} value timestamp``; the classic text format is unchanged.

Each bucket keeps its latest exemplar until a newer one arrives, as Prometheus does: the SDK empties its
exemplar reservoirs at every collection (every scrape, in any format), so without keeping them the first
scrape after a request would take them all — a ``curl`` of the text format, or one of an HA pair of
Prometheus servers, would leave none for the next scraper.

::

    ragotel.configure(service_name="chat-api", prometheus_port=9464)
    # or, inside an ASGI app: instrument_fastapi(app, metrics_path="/metrics"),
    # or app.add_route("/metrics", ragotel.prometheus_app())

The reader exists only where something serves it: each reader costs every measurement one more aggregation,
so ``configure()`` without ``prometheus_port`` builds none, and an endpoint served from the app (``metrics_path=``,
``prometheus_app``) asks for one (``ragotel._core.metrics_endpoint``): built into the MeterProvider
``configure()`` creates later, or added to the one it already created.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from json import dumps
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import Histogram, MetricsData
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import Metric as PrometheusMetric
from prometheus_client.samples import Exemplar, Sample

from ragotel._core import metrics_endpoint
from ragotel._core.safe import report_internal_error

# (family name, the point's labels) → explicit bounds and one exemplar per bucket index
_Key = tuple[str, frozenset[tuple[str, str]]]
_Buckets = tuple[tuple[float, ...], dict[int, Exemplar]]


class ExemplarPrometheusReader(PrometheusMetricReader):
    """A ``PrometheusMetricReader`` whose histograms carry the SDK's exemplars in OpenMetrics scrapes."""

    def __init__(
        self,
        *,
        resource_attribute_filter: Callable[[str], bool] | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        # The exporter's own collector goes into a private registry; the public one serves it wrapped.
        self._exemplars: dict[_Key, _Buckets] = {}
        self._lock = threading.Lock()
        self._resource_filter = resource_attribute_filter
        super().__init__(resource_attribute_filter=resource_attribute_filter,
                         registry=CollectorRegistry(auto_describe=False))
        registry.register(_WithExemplars(self._collector, self))

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        try:
            found = _exemplars_of(metrics_data)
            with self._lock:
                self._exemplars = _merged(self._exemplars, found)
        except Exception as exc:
            report_internal_error("reading exemplars", exc)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def exemplars(self) -> dict[_Key, _Buckets]:
        with self._lock:
            return self._exemplars


def _merged(kept: dict[_Key, _Buckets], found: dict[_Key, _Buckets]) -> dict[_Key, _Buckets]:
    """``kept`` with each bucket's exemplar replaced by a newer one from ``found``. A new mapping: a scrape
    may be reading the old one."""
    if not found:
        return kept
    merged = dict(kept)
    for key, (bounds, newer) in found.items():
        previous = kept.get(key)
        if previous is None or previous[0] != bounds:  # new series, or its buckets changed
            merged[key] = (bounds, newer)
            continue
        buckets = dict(previous[1])
        for index, exemplar in newer.items():
            old = buckets.get(index)
            if old is None or float(exemplar.timestamp or 0) >= float(old.timestamp or 0):
                buckets[index] = exemplar
        merged[key] = (bounds, buckets)
    return merged


class _WithExemplars:
    """Yields the exporter collector's families, adding exemplars to histogram bucket samples."""

    def __init__(self, inner: Any, reader: ExemplarPrometheusReader) -> None:
        self._inner = inner
        self._reader = reader

    def describe(self) -> list[PrometheusMetric]:
        return []  # registering must not collect: the reader has no provider yet

    def collect(self) -> Iterator[PrometheusMetric]:
        families = list(self._inner.collect())  # runs the reader's collection first
        try:
            found = self._reader.exemplars()
            if found:
                for family in families:
                    if family.type == "histogram":
                        family.samples = [_with_exemplar(family.name, s, found) for s in family.samples]
        except Exception as exc:
            report_internal_error("adding exemplars", exc)
        yield from families


def _with_exemplar(family: str, sample: Sample, found: dict[_Key, _Buckets]) -> Sample:
    if not sample.name.endswith("_bucket") or "le" not in sample.labels:
        return sample
    labels = frozenset((k, v) for k, v in sample.labels.items() if k != "le" and not k.startswith("otel_scope_"))
    entry = found.get((family, labels)) or _match_without_resource(family, labels, found)
    if entry is None:
        return sample
    bounds, by_bucket = entry
    le = sample.labels["le"]
    index = len(bounds) if le == "+Inf" else bisect_left(bounds, float(le))
    exemplar = by_bucket.get(index)
    return sample if exemplar is None else sample._replace(exemplar=exemplar)


def _match_without_resource(
    family: str, labels: frozenset[tuple[str, str]], found: dict[_Key, _Buckets]
) -> _Buckets | None:
    """Resource attributes copied onto every series (``cloud_provider``, ...) are not point labels."""
    for (name, point_labels), entry in found.items():
        if name == family and point_labels <= labels:
            return entry
    return None


def _exemplars_of(metrics_data: MetricsData) -> dict[_Key, _Buckets]:
    from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_attribute, sanitize_full_name

    found: dict[_Key, _Buckets] = {}
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if not isinstance(metric.data, Histogram):
                    continue
                # The family name as prometheus_client builds it: sanitized, with the unit appended.
                name, unit = sanitize_full_name(metric.name), map_unit(metric.unit or "")
                if unit and not name.endswith(f"_{unit}"):
                    name = f"{name}_{unit}"
                for point in metric.data.data_points:
                    if not point.exemplars:
                        continue
                    bounds = tuple(point.explicit_bounds)
                    by_bucket = {}
                    for exemplar in point.exemplars:
                        if exemplar.trace_id is None or exemplar.span_id is None:
                            continue
                        by_bucket[bisect_left(bounds, exemplar.value)] = Exemplar(
                            {"trace_id": format(exemplar.trace_id, "032x"),
                             "span_id": format(exemplar.span_id, "016x")},
                            exemplar.value, exemplar.time_unix_nano / 1e9,
                        )
                    attributes = (point.attributes or {}).items()
                    labels = frozenset((sanitize_attribute(k), _label_value(v)) for k, v in attributes)
                    found[(name, labels)] = (bounds, by_bucket)
    return found


def _label_value(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value, default=str)


def prometheus_app(served_by: str = "ragotel.prometheus_app()") -> Any:
    """The ASGI app behind ``ragotel.prometheus_app``; ``served_by`` names it in warnings."""
    from prometheus_client import make_asgi_app

    metrics_endpoint.serve(served_by)
    return _AsgiApp(make_asgi_app(), served_by)


class _AsgiApp:
    """Wraps an ASGI function so routers treat it as an app, not as a request handler."""

    def __init__(self, app: Any, served_by: str) -> None:
        self._app = app
        self._served_by = served_by

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not metrics_endpoint.state.scraped:
            metrics_endpoint.first_scrape(self._served_by)
        await self._app(scope, receive, send)
