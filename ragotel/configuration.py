"""``ragotel.configure()``: traces, metrics and logs in one call.

::

    import ragotel

    telemetry = ragotel.configure(service_name="chat-api")
    ...
    telemetry.shutdown()   # flushes what is queued; also runs at interpreter exit

What it sets up, for each signal whose global provider the application has *not* already set
(an application's own providers are used as they are, never replaced):

* traces: a ``TracerProvider`` with a batch span processor and an OTLP exporter; the sampler comes
  from ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG``;
* metrics: a ``MeterProvider`` with a periodic OTLP reader and, when asked, a Prometheus reader
  serving ``/metrics`` (``prometheus_port=9464``, or ``OTEL_METRICS_EXPORTER=prometheus``);
* logs: a ``LoggerProvider`` with a batch processor and an OTLP exporter, fed by the root
  ``logging`` logger; every log record also carries ``trace_id``/``span_id``.

OTLP goes over HTTP/protobuf, or gRPC when ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``, to
``OTEL_EXPORTER_OTLP_ENDPOINT`` (default ``http://localhost:4318``, a local Grafana Alloy).
``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` accept ``otlp``, ``console``, ``none`` (and ``prometheus``
for metrics). ``OTEL_SDK_DISABLED=true`` turns everything off and makes the step decorators
plain calls.

Arguments are defaults for the code; ``OTEL_*`` and ``RAGOTEL_*`` environment variables set at
deploy time win over them, so one image serves every environment.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import _logs, metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from ragotel import _runtime, cost, logs
from ragotel import semconv as sc
from ragotel._runtime import runtime
from ragotel._safe import report_internal_error
from ragotel._version import __version__
from ragotel.content import CAPTURE_ENV, Redactor, redact_query
from ragotel.content import policy as content_policy

logger = logging.getLogger("ragotel")
SDK_INTERNAL_METRICS_ENV = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_P = TypeVar("_P")

# Downward-API variables users put in their pod spec, first name wins.
_K8S_ENV: Mapping[str, tuple[str, ...]] = {
    sc.K8S_POD_NAME: ("K8S_POD_NAME", "POD_NAME"),
    sc.K8S_NAMESPACE_NAME: ("K8S_NAMESPACE_NAME", "POD_NAMESPACE"),
    sc.K8S_NODE_NAME: ("K8S_NODE_NAME", "NODE_NAME"),
}
# Seed 001's cross-provider labels; copied onto every Prometheus series as labels too.
_PLACEMENT_ENV: Mapping[str, str] = {
    sc.CLOUD_PROVIDER: "RAGOTEL_PROVIDER",
    sc.K8S_CLUSTER_NAME: "RAGOTEL_CLUSTER",
    sc.CLOUD_REGION: "RAGOTEL_REGION",
}


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _env_true(name: str) -> bool:
    return (_env(name) or "").lower() in {"1", "true", "yes", "on"}


def _exporter_names(signal: str, default: str = "otlp") -> set[str]:
    raw = _env(f"OTEL_{signal}_EXPORTER") or default
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


@dataclass
class Telemetry:
    """What :func:`configure` set up. Flush before a short-lived process exits."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    logger_provider: _logs.LoggerProvider
    resource: Resource
    disabled: bool = False
    prometheus_port: int | None = None
    owned: frozenset[str] = frozenset()
    """Signals whose providers ragotel created (``traces``, ``metrics``, ``logs``)."""
    _log_handler: logging.Handler | None = field(default=None, repr=False)

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Export everything queued, in every provider that supports it. True if all succeeded."""
        ok = True
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                ok = bool(flush(timeout_millis)) and ok
        return ok

    def shutdown(self) -> None:
        """Flush and stop the providers ragotel created; leave the application's own alone."""
        global _telemetry
        with _lock:
            if self._log_handler is not None:
                logging.getLogger().removeHandler(self._log_handler)
                self._log_handler = None
            # The trace_id/span_id record factory stays: format strings that use them must keep working.
            providers = {
                "traces": self.tracer_provider,
                "metrics": self.meter_provider,
                "logs": self.logger_provider,
            }
            for signal, provider in providers.items():
                if signal in self.owned:
                    stop = getattr(provider, "shutdown", None)
                    if stop is not None:
                        stop()
            self.owned = frozenset()
            if _telemetry is self:
                _telemetry = None


_lock = threading.RLock()
_telemetry: Telemetry | None = None


def configure(
    service_name: str | None = None,
    *,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    provider: str | None = None,
    cluster: str | None = None,
    region: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str | None = None,
    metric_readers: Sequence[MetricReader] = (),
    span_processors: Sequence[SpanProcessor] = (),
    capture_content: bool | None = None,
    max_content_chars: int | None = None,
    redact: Redactor | None = None,
    prices: cost.PriceSource = None,
    export_logs: bool = True,
    detailed_metrics: bool | None = None,
    retrieval_low_score: float | None = None,
    metric_value_limit: int | None = None,
) -> Telemetry:
    """Set up traces, metrics and logs for this process; returns a :class:`Telemetry` handle.

    Calling it again returns the first handle unchanged. Arguments:

    - ``service_name`` / ``service_version`` / ``environment``: the resource's identity
      (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``RAGOTEL_ENVIRONMENT`` win);
    - ``endpoint`` / ``protocol``: OTLP collector base URL and ``http/protobuf`` or ``grpc``
      (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` win);
    - ``provider`` / ``cluster`` / ``region``: where this runs, for comparing deployments
      (``RAGOTEL_PROVIDER`` / ``RAGOTEL_CLUSTER`` / ``RAGOTEL_REGION`` win);
    - ``prometheus_port``: serve ``/metrics`` on this port (``0`` adds the reader without a
      server, for apps that mount :func:`ragotel.prometheus_app` themselves);
    - ``metric_readers`` / ``span_processors``: extra ones, e.g. in-memory ones in tests;
    - ``capture_content`` / ``max_content_chars`` / ``redact``: the content policy
      (``RAGOTEL_CAPTURE_CONTENT`` wins); off by default;
    - ``prices``: a :class:`ragotel.cost.PriceTable`, a mapping or a file path
      (``RAGOTEL_PRICES_FILE`` is used when this is not given);
    - ``export_logs``: send ``logging`` records as OpenTelemetry logs;
    - ``detailed_metrics``: also record every document score, each retrieval's best score and a GenAI
      duration per step, one SDK record each (``RAGOTEL_DETAILED_METRICS`` wins);
    - ``retrieval_low_score``: a retrieval whose best score is under this is ``rag.retrieval.quality=low_score``
      (``RAGOTEL_RETRIEVAL_LOW_SCORE`` wins; by default the step's own ``min_score``);
    - ``metric_value_limit``: distinct values per metric attribute before new ones are recorded as
      ``_other`` (``RAGOTEL_METRIC_VALUE_LIMIT`` wins; default 100).
    """
    global _telemetry
    with _lock:
        if _telemetry is not None:
            logger.debug("ragotel.configure() called again; keeping the first configuration")
            return _telemetry

        _configure_content(capture_content, max_content_chars, redact)
        _configure_runtime(detailed_metrics, retrieval_low_score, metric_value_limit)
        cost.set_prices(prices)
        resource = _resource(
            service_name, service_version, environment, provider, cluster, region, resource_attributes
        )

        if _env_true("OTEL_SDK_DISABLED"):
            runtime.disabled = True
            _telemetry = Telemetry(
                trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider(),
                resource, disabled=True,
            )
            return _telemetry
        runtime.disabled = False

        protocol = (_env("OTEL_EXPORTER_OTLP_PROTOCOL") or protocol or "http/protobuf").lower()
        endpoint = _env("OTEL_EXPORTER_OTLP_ENDPOINT") or endpoint
        owned: set[str] = set()

        tracer_provider = trace.get_tracer_provider()
        if _is_unset(tracer_provider):
            sdk_tracer = TracerProvider(resource=resource)
            sdk_tracer.add_span_processor(QueryRedactor())
            with _export_metrics():
                processors = _span_processors(protocol, endpoint)
            for processor in processors:
                sdk_tracer.add_span_processor(processor)
            trace.set_tracer_provider(sdk_tracer)
            tracer_provider = sdk_tracer
            owned.add("traces")
        add_processor = getattr(tracer_provider, "add_span_processor", None)
        if add_processor is not None:
            for processor in span_processors:
                add_processor(processor)

        port = _prometheus_port(prometheus_port)
        meter_provider = metrics.get_meter_provider()
        if _is_unset(meter_provider):
            readers = [*_metric_readers(protocol, endpoint), *metric_readers]
            if port is not None:
                readers.append(_prometheus_reader(port, prometheus_host))
            meter_provider = MeterProvider(resource=resource, metric_readers=readers)
            metrics.set_meter_provider(meter_provider)
            owned.add("metrics")
        elif port is not None or metric_readers:
            logger.warning(
                "ragotel: the application set its own MeterProvider; add the Prometheus or extra "
                "metric readers to it yourself"
            )
            port = None

        logger_provider = _logs.get_logger_provider()
        handler: logging.Handler | None = None
        if _is_unset(logger_provider):
            sdk_logger = LoggerProvider(resource=resource)
            with _export_metrics():
                for exporter in _log_exporters(protocol, endpoint):
                    sdk_logger.add_log_record_processor(_batching(BatchLogRecordProcessor, exporter))
            _logs.set_logger_provider(sdk_logger)
            logger_provider = sdk_logger
            owned.add("logs")
            if export_logs:
                # Only with our own provider: an application that set its own already routes logs.
                handler = logs.OtelLogHandler(sdk_logger)
                logging.getLogger().addHandler(handler)
        logs.install_trace_ids()

        _telemetry = Telemetry(
            tracer_provider, meter_provider, logger_provider, resource,
            prometheus_port=port, owned=frozenset(owned), _log_handler=handler,
        )
        atexit.register(_telemetry.shutdown)
        return _telemetry


def get_telemetry() -> Telemetry | None:
    """The handle from :func:`configure`, if it ran."""
    return _telemetry


def _is_unset(provider: Any) -> bool:
    """True while no real provider is installed (only OpenTelemetry's proxy or no-op one)."""
    return type(provider).__name__ in {
        "ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider",
        "ProxyLoggerProvider", "NoOpLoggerProvider",
    }


def _configure_runtime(detailed: bool | None, low_score: float | None, value_limit: int | None) -> None:
    """Arguments apply where the environment says nothing (``Runtime`` read the environment at import)."""
    if detailed is not None and _env(_runtime.DETAILED_METRICS_ENV) is None:
        runtime.detailed_metrics = detailed
    if low_score is not None and _env(_runtime.LOW_SCORE_ENV) is None:
        runtime.low_score = float(low_score)
    if value_limit is not None and value_limit > 0 and _env(_runtime.VALUE_LIMIT_ENV) is None:
        runtime.value_limit = int(value_limit)


def _configure_content(enabled: bool | None, max_chars: int | None, redact: Redactor | None) -> None:
    if _env(CAPTURE_ENV) is not None:
        content_policy.enabled = _env_true(CAPTURE_ENV)
    elif enabled is not None:
        content_policy.enabled = enabled
    if max_chars is not None:
        content_policy.max_chars = max_chars
    if redact is not None:
        content_policy.redact = redact


def _resource(
    service_name: str | None,
    service_version: str | None,
    environment: str | None,
    provider: str | None,
    cluster: str | None,
    region: str | None,
    extra: Mapping[str, str] | None,
) -> Resource:
    attrs: dict[str, str] = {"telemetry.distro.name": "ragotel", "telemetry.distro.version": __version__}
    attrs.update(extra or {})
    defaults = {
        sc.SERVICE_NAME: service_name,
        sc.SERVICE_VERSION: service_version,
        sc.DEPLOYMENT_ENVIRONMENT: _env("RAGOTEL_ENVIRONMENT") or environment,
        sc.CLOUD_PROVIDER: _env(_PLACEMENT_ENV[sc.CLOUD_PROVIDER]) or provider,
        sc.K8S_CLUSTER_NAME: _env(_PLACEMENT_ENV[sc.K8S_CLUSTER_NAME]) or cluster,
        sc.CLOUD_REGION: _env(_PLACEMENT_ENV[sc.CLOUD_REGION]) or region,
    }
    attrs.update({key: value for key, value in defaults.items() if value})
    for key, names in _K8S_ENV.items():
        value = next((v for v in map(_env, names) if v), None)
        if value:
            attrs[key] = value
    # Resource.create adds the SDK's own attributes; merging the env detector last lets
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the code's defaults.
    return Resource.create(attrs).merge(OTELResourceDetector().detect())


def _otlp_url(endpoint: str | None, path: str) -> str | None:
    return None if endpoint is None else endpoint.rstrip("/") + path


class QueryRedactor(SpanProcessor):
    """Replaces the values in a server span's ``url.query`` before anything exports it (FastAPI's
    built-in telemetry records the query string), unless content capture is on."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            query = (span.attributes or {}).get(sc.URL_QUERY)
            if isinstance(query, str) and query:
                span.set_attribute(sc.URL_QUERY, redact_query(query))
        except Exception as exc:
            report_internal_error("redacting url.query", exc)


@contextlib.contextmanager
def _export_metrics() -> Iterator[None]:
    """Turn on the SDK's own metrics for the exporters and batch processors built inside: they count
    what is dropped when the collector is down or slow (``otel.sdk.processor.span.processed`` with
    ``error.type=queue_full``) and what fails to export. The SDK reads the switch when each object is
    built; leaving it off for the providers spares every span a counter update. An explicit
    ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`` is left as it is."""
    if SDK_INTERNAL_METRICS_ENV in os.environ:
        yield
        return
    os.environ[SDK_INTERNAL_METRICS_ENV] = "true"
    try:
        yield
    finally:
        os.environ.pop(SDK_INTERNAL_METRICS_ENV, None)


def _batching(processor: Callable[..., _P], exporter: Any) -> _P:
    """A batch processor from the ``OTEL_BSP_*`` / ``OTEL_BLRP_*`` settings, or, when they contradict each
    other (a batch larger than the queue), from the SDK's defaults: a typo in the environment must
    not stop the application from starting."""
    try:
        return processor(exporter)
    except ValueError as exc:
        logger.error("ragotel: invalid batch processor settings (%s); using the SDK defaults", exc)
        return processor(exporter, max_queue_size=2048, schedule_delay_millis=5000, max_export_batch_size=512)


def _span_processors(protocol: str, endpoint: str | None) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    names = _exporter_names("TRACES")
    if "otlp" in names:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            processors.append(_batching(BatchSpanProcessor, Grpc(endpoint=endpoint)))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=_otlp_url(endpoint, "/v1/traces"))
            processors.append(_batching(BatchSpanProcessor, exporter))
    if "console" in names:
        processors.append(_batching(BatchSpanProcessor, ConsoleSpanExporter()))
    return processors


def _metric_readers(protocol: str, endpoint: str | None) -> list[MetricReader]:
    readers: list[MetricReader] = []
    names = _exporter_names("METRICS")
    if "otlp" in names:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

            readers.append(PeriodicExportingMetricReader(Grpc(endpoint=endpoint)))
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter(endpoint=_otlp_url(endpoint, "/v1/metrics"))
            readers.append(PeriodicExportingMetricReader(exporter))
    if "console" in names:
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    return readers


def _log_exporters(protocol: str, endpoint: str | None) -> list[Any]:
    names = _exporter_names("LOGS")
    exporters: list[Any] = []
    if "otlp" in names:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc

            exporters.append(Grpc(endpoint=endpoint))
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            exporters.append(OTLPLogExporter(endpoint=_otlp_url(endpoint, "/v1/logs")))
    if "console" in names:
        exporters.append(ConsoleLogRecordExporter())
    return exporters


def _prometheus_port(port: int | None) -> int | None:
    """Port for /metrics: ``OTEL_METRICS_EXPORTER=prometheus`` asks for it, the env port wins."""
    env_port = _env("OTEL_EXPORTER_PROMETHEUS_PORT")
    if "prometheus" in _exporter_names("METRICS", default=""):
        return int(env_port or (9464 if port is None else port))
    return int(env_port) if env_port and port is not None else port


def _prometheus_reader(port: int, host: str | None) -> MetricReader:
    from prometheus_client import start_http_server

    from ragotel._prometheus import ExemplarPrometheusReader

    # Placement and the environment go on every series, so dashboards can filter and compare by them.
    placement = {*_PLACEMENT_ENV, sc.DEPLOYMENT_ENVIRONMENT}
    reader = ExemplarPrometheusReader(resource_attribute_filter=placement.__contains__)
    if port:
        start_http_server(port, addr=_env("OTEL_EXPORTER_PROMETHEUS_HOST") or host or "0.0.0.0")
    return reader


def prometheus_app() -> Any:
    """An ASGI app serving the Prometheus exposition of ragotel's metrics, to route at ``/metrics``;
    OpenMetrics with exemplars to a scraper that asks for it (see :mod:`ragotel._prometheus`).

    Use with ``configure(prometheus_port=0)`` (reader, no separate server)::

        app.add_route("/metrics", ragotel.prometheus_app())
    """
    from ragotel import _prometheus

    return _prometheus.prometheus_app()
