"""Exporters around the SDK's: no collector is a normal development state, and a readable console.

* ``Guarded`` wraps each OTLP exporter ragotel builds. The first failed export logs one WARNING naming
  the endpoint and the way out; the SDK's retry messages for ragotel's own exports are left out. Nothing
  listening there (``ragotel receive``, or ``OTEL_EXPORTER_OTLP_ENDPOINT``) is told apart from an endpoint
  that answers with an error status, which is named (a 404 to metrics or logs: an endpoint that takes
  traces only, such as Grafana Tempo's). At exit, an export to a collector that has not answered is given
  ``EXIT_GRACE_S`` and then abandoned (the exporter's own ``shutdown()`` stops its retries), so a short
  script exits at once instead of retrying for 10 s per signal.
* ``WaterfallConsoleExporter`` prints each finished trace as the ``ragotel trace`` waterfall.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger("ragotel")

EXIT_GRACE_S = 0.8
"""How long an export still running at exit may go on when the collector has not answered yet."""
FLUSH_GRACE_S = 0.5
"""How long ``Telemetry.force_flush()`` still waits once it is known that nothing answers."""

_exporting = threading.local()


class _OwnRetryNoise(logging.Filter):
    """Drops the SDK exporters' retry/timeout lines while a ``Guarded`` export runs on this thread:
    ragotel says it once, with the way out. Other exporters in the process keep their messages."""

    _PREFIXES = ("Transient error", "Failed to export", "Shutdown in progress", "Exporter already shutdown",
                 "OTLP client already shutdown")

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(_exporting, "active", False):
            return True
        guard = getattr(_exporting, "guard", None)
        if guard is not None:
            guard.note_grpc(record)
        return not (isinstance(record.msg, str) and record.msg.startswith(self._PREFIXES))


_NOISY_LOGGERS = (
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
)
_noise_filter = _OwnRetryNoise()
for _name in _NOISY_LOGGERS:
    logging.getLogger(_name).addFilter(_noise_filter)


_NOT_GRPC = ("Failed parsing HTTP/2", "http1.x server")
"""What gRPC's UNAVAILABLE details say when the endpoint answered in HTTP/1.1 (grpcio 1.7x; older releases said
"Trying to connect an http1.x server"), as against a refused connection or a name that does not resolve."""


class Reachability:
    """Shared by the exporters of one configure(): has the collector answered, does anything listen there
    (``unreachable_since``), and is the process exiting."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.warned = False
        self.answered = False
        self.failing = False
        self.exiting = False
        self.unreachable_since: float | None = None
        """``time.monotonic()`` of the first refused connection since anything last answered."""
        self.guards: list[Guarded] = []

    def failed(self, endpoint: str) -> None:
        """An export failed without an answer: nothing listens there (or it never answered in time)."""
        with self.lock:
            self.failing = True
            first, self.warned = not self.warned, True
        if first:
            logger.warning(
                "ragotel: cannot export telemetry to %s (nothing answers there); it is dropped until a collector "
                "does. For local development run `ragotel receive`, or set OTEL_EXPORTER_OTLP_ENDPOINT to your "
                "collector.", endpoint,
            )

    def no_answer(self, endpoint: str) -> None:
        """A connection was refused: known at the first try, not after the exporter's 10 s of retries."""
        with self.lock:
            if self.unreachable_since is None:
                self.unreachable_since = time.monotonic()
        self.failed(endpoint)

    def heard(self) -> None:
        """The endpoint answered, with any status: something listens there."""
        with self.lock:
            self.unreachable_since = None

    def succeeded(self) -> None:
        with self.lock:
            if self.failing and self.warned:
                logger.info("ragotel: the collector answers again")
            self.answered, self.failing, self.warned = True, False, False
            self.unreachable_since = None

    def start_exit(self) -> threading.Timer:
        """Mark the exit; after the grace, abandon exports to a collector that never answered."""
        self.exiting = True
        timer = threading.Timer(EXIT_GRACE_S, self._abandon)
        timer.daemon = True
        timer.start()
        return timer

    def _abandon(self) -> None:
        if self.answered and not self.failing:
            return
        for guard in list(self.guards):
            guard.abandon()


class Guarded:
    """Common part of the span/log/metric wrappers: count outcomes, report the first failure."""

    signal = "telemetry"

    def __init__(self, inner: Any, endpoint: str, reach: Reachability) -> None:
        self.inner = inner
        self.endpoint = endpoint
        self.reach = reach
        self._abandoned = False
        self._closed = False
        self._status: int | str | None = None  # the error status of this export's last answer
        self._warned_status: int | str | None = None
        reach.guards.append(self)
        self._watch_http(inner)

    def _watch_http(self, inner: Any) -> None:
        """Note each HTTP attempt's outcome: the SDK's exporter reports only success or failure, after its
        retries; the status and a refused connection are what tell a wrong endpoint from a missing one."""
        transport = getattr(getattr(inner, "_client", None), "_transport", None)
        request = getattr(transport, "request", None)
        is_connection_error = getattr(transport, "is_connection_error", None)
        if transport is None or request is None or is_connection_error is None:
            return  # gRPC, or an exporter built otherwise: note_grpc() and the result are all there is

        def noted_request(*args: Any, **kwargs: Any) -> Any:
            result = request(*args, **kwargs)
            try:
                status = getattr(result, "status_code", None)
                if status is not None:
                    self.reach.heard()
                    if status >= 400:
                        self._status = status
                elif is_connection_error(getattr(result, "error", None)):
                    self.reach.no_answer(self.endpoint)
            except Exception:
                pass
            return result

        transport.request = noted_request

    def note_grpc(self, record: logging.LogRecord) -> None:
        """The gRPC exporter's status, from its own log record (it reports it nowhere else)."""
        code = next((a for a in record.args or () if type(a).__name__ == "StatusCode"), None)
        name = getattr(code, "name", None)
        details = " ".join(str(a) for a in record.args or () if isinstance(a, str))
        if name == "UNAVAILABLE" and any(marker in details for marker in _NOT_GRPC):
            self.reach.heard()
            self._status = "not gRPC"
        elif name == "UNAVAILABLE":
            self.reach.no_answer(self.endpoint)
        elif isinstance(name, str):
            self.reach.heard()
            self._status = name

    def _call(self, export: Callable[[], Any], failure: Any, success: Any) -> Any:
        reach = self.reach
        if self._abandoned or (reach.exiting and reach.failing):
            return failure  # exiting with no collector: drop what is left at once
        _exporting.active, _exporting.guard, self._status = True, self, None
        try:
            result = export()
        except Exception:
            result = failure
        finally:
            _exporting.active, _exporting.guard = False, None
        if result == success:
            self._warned_status = None
            reach.succeeded()
        elif self._status is not None:
            with reach.lock:
                reach.failing = True
            if self._status != self._warned_status:
                self._warned_status = self._status
                logger.warning("%s", rejected_message(self.endpoint, self.signal, self._status))
        else:
            reach.failed(self.endpoint)
        return result

    def abandon(self) -> None:
        if self._abandoned:
            return
        self._abandoned = True
        self._close_inner()

    def _close_inner(self) -> None:
        if self._closed:
            return
        self._closed = True
        _exporting.active = True
        try:
            self.inner.shutdown()  # stops the exporter's retry wait
        except Exception:
            pass
        finally:
            _exporting.active = False

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self._close_inner()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        flush = getattr(self.inner, "force_flush", None)
        return True if flush is None else bool(flush(timeout_millis))


class GuardedSpanExporter(Guarded, SpanExporter):
    signal = "traces"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result: SpanExportResult = self._call(
            lambda: self.inner.export(spans), SpanExportResult.FAILURE, SpanExportResult.SUCCESS)
        return result


class GuardedLogExporter(Guarded):
    signal = "logs"

    def export(self, batch: Sequence[Any]) -> Any:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        return self._call(lambda: self.inner.export(batch), LogRecordExportResult.FAILURE,
                          LogRecordExportResult.SUCCESS)


class GuardedMetricExporter(Guarded, MetricExporter):
    signal = "metrics"

    def __init__(self, inner: MetricExporter, endpoint: str, reach: Reachability) -> None:
        Guarded.__init__(self, inner, endpoint, reach)
        MetricExporter.__init__(
            self,
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        result: MetricExportResult = self._call(
            lambda: self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs),
            MetricExportResult.FAILURE, MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._close_inner()


def rejected_message(endpoint: str, signal: str, status: int | str) -> str:
    """The warning for an endpoint that answers ``signal`` exports with an error ``status`` (an HTTP status
    code, or a gRPC status name)."""
    if status == "not gRPC":
        return (f"ragotel: {endpoint} answers, but not over gRPC (an HTTP/1.1 server, such as an OTLP/HTTP "
                f"receiver: Alloy and the Collector take OTLP/HTTP on 4318, gRPC on 4317); {signal} are dropped. "
                "Set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, or point OTEL_EXPORTER_OTLP_ENDPOINT at the gRPC "
                "port.")
    shown = f"HTTP {status}" if isinstance(status, int) else f"gRPC {status}"
    head = f"ragotel: {endpoint} answered {shown} to {signal}; they are dropped."
    if status in (404, "UNIMPLEMENTED") and signal in ("metrics", "logs"):
        where = ("Send metrics and logs to Grafana Alloy or an OpenTelemetry Collector "
                 f"(OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT for {signal} alone)")
        if signal == "metrics":
            where += ", or let Prometheus scrape them: OTEL_METRICS_EXPORTER=prometheus"
        else:
            where += ", or turn them off: OTEL_LOGS_EXPORTER=none"
        return f"{head} This endpoint takes traces only (Grafana Tempo's OTLP port does). {where}."
    if status == 404 or status == "UNIMPLEMENTED":
        return f"{head} Is this an OTLP endpoint? The OTLP/HTTP paths are /v1/traces, /v1/metrics and /v1/logs."
    if status in (401, 403, "UNAUTHENTICATED", "PERMISSION_DENIED"):
        return f"{head} Check the credentials in OTEL_EXPORTER_OTLP_HEADERS."
    if isinstance(status, int) and status >= 500:
        return f"{head} The collector is failing; its own logs say why."
    return f"{head} The collector refuses what ragotel sends; its own logs say why."


class WaterfallConsoleExporter(SpanExporter):
    """Prints each trace as a waterfall when its local root span ends (development; use with a
    ``SimpleSpanProcessor`` or a batch one). Holds at most ``max_traces`` unfinished traces."""

    def __init__(self, out: IO[str] | None = None, width: int | None = None, max_traces: int = 256) -> None:
        self._out = out
        self._width = width
        self._max_traces = max_traces
        self._pending: OrderedDict[int, list[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            done = self._collect(spans)
            for records in done:
                self._print(records)
        except Exception as exc:
            from ragotel._core.safe import report_internal_error

            report_internal_error("printing the trace waterfall", exc)
        return SpanExportResult.SUCCESS

    def _collect(self, spans: Iterable[ReadableSpan]) -> list[list[Any]]:
        done: list[list[Any]] = []
        with self._lock:
            for span in spans:
                ctx = span.context
                if ctx is None:
                    continue
                bucket = self._pending.setdefault(ctx.trace_id, [])
                bucket.append(_record(span))
                self._pending.move_to_end(ctx.trace_id)
                parent = span.parent
                if parent is None or parent.is_remote:
                    done.append(self._pending.pop(ctx.trace_id))
            while len(self._pending) > self._max_traces:
                self._pending.popitem(last=False)
        return done

    def _print(self, records: list[Any]) -> None:
        import shutil

        from ragotel._core.waterfall import render_waterfall

        out = self._out or sys.stdout
        width = self._width or max(80, min(shutil.get_terminal_size((120, 24)).columns, 160))
        out.write(render_waterfall(records, records[-1].trace_id, width=width) + "\n\n")
        out.flush()

    def shutdown(self) -> None:
        with self._lock:
            self._pending.clear()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _record(span: ReadableSpan) -> Any:
    from ragotel._core.waterfall import SpanRecord

    ctx = span.context
    assert ctx is not None
    parent = span.parent
    service = span.resource.attributes.get("service.name") if span.resource is not None else None
    attributes: dict[str, Any] = {k: v if isinstance(v, (str, int, float, bool)) else [str(x) for x in v or ()]
                                  for k, v in (span.attributes or {}).items()}
    return SpanRecord(
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
        parent_span_id=format(parent.span_id, "016x") if parent is not None and not parent.is_remote else None,
        name=span.name,
        service_name=str(service or "unknown_service"),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        kind=span.kind.name,
        status_code=span.status.status_code.name,
        status_message=span.status.description or "",
        attributes=attributes,
        events=tuple(e.name for e in span.events),
        scope=span.instrumentation_scope.name if span.instrumentation_scope is not None else "",
    )
