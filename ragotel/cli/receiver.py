"""A small local OTLP/HTTP receiver that writes spans, logs and metrics as JSON lines.

It stands in for a collector during development: point any OTLP/HTTP exporter at it
and read the result with ``ragotel trace``, ``jq`` or ``tail -f``::

    from ragotel.cli.receiver import OtlpReceiver

    with OtlpReceiver(port=0, spans_path="var/telemetry/spans.jsonl") as receiver:
        print(receiver.endpoint)  # e.g. http://127.0.0.1:40123
        # OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces") ...

or from a shell: ``ragotel receive`` then
``export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318``.

``POST /v1/traces``, ``/v1/logs`` and ``/v1/metrics`` accept ``application/x-protobuf``
and OTLP/JSON (``application/json``), optionally gzip- or deflate-compressed. Spans go
to ``spans_path``, log records to ``logs_path`` and metric data points to ``metrics_path``
(``logs.jsonl`` and ``metrics.jsonl`` next to the spans file by default), one JSON object
per line, appended and flushed per request so another process can read the files while
the receiver runs. A data point keeps its exemplars (the trace and span a value was
recorded in): ``ragotel trace`` shows those of the trace it draws.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socket import AF_INET6
from types import TracebackType
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Exemplar, Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ragotel.cli.files import DEFAULT_DIR, LOGS_FILENAME, METRICS_FILENAME, SPANS_FILENAME
from ragotel.cli.waterfall import JSONValue, SpanRecord

__all__ = [
    "MAX_BODY_BYTES",
    "OtlpReceiver",
    "ReceiverStats",
    "log_records",
    "metric_point_count",
    "metric_records",
    "span_records",
]

_log = logging.getLogger(__name__)

# The OTLP exporters refuse to send more than 64 MiB per request by default; anything
# bigger (before or after decompression) is not a real export, so reject it.
MAX_BODY_BYTES = 64 * 1024 * 1024

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
_Signal = Literal["traces", "logs", "metrics"]
_PATHS: dict[str, _Signal] = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}

_SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}
# OTLP severity numbers come in bands of four: 1-4 TRACE .. 21-24 FATAL.
_SEVERITY_BANDS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")

_M = TypeVar("_M")


class _PayloadError(Exception):
    """The request body cannot be used; carries the HTTP status to answer with."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """Counts since the receiver was created."""

    spans: int = 0
    logs: int = 0
    metric_points: int = 0
    requests: int = 0
    rejected: int = 0


# --------------------------------------------------------------------------- decoding


def _any_value(value: AnyValue) -> JSONValue:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which == "string_value_strindex":
        return value.string_value_strindex
    return None


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, JSONValue]:
    return {str(kv.key): _any_value(kv.value) for kv in pairs}


def _service_name(resource: Resource) -> str:
    name = _attributes(resource.attributes).get("service.name")
    return name if isinstance(name, str) and name else "unknown_service"


def _scope_name(scope: InstrumentationScope) -> str:
    return str(scope.name)


def _span_record(span: Span, service: str, scope: str) -> SpanRecord:
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        name=span.name,
        service_name=service,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        kind=_SPAN_KINDS.get(int(span.kind), str(int(span.kind))),
        status_code=_STATUS_CODES.get(int(span.status.code), str(int(span.status.code))),
        status_message=span.status.message,
        attributes=_attributes(span.attributes),
        events=tuple(str(event.name) for event in span.events),
        scope=scope,
    )


def span_records(request: ExportTraceServiceRequest) -> list[dict[str, JSONValue]]:
    """One JSON-ready object per span in an OTLP trace export request."""
    records: list[dict[str, JSONValue]] = []
    for resource_spans in request.resource_spans:
        service = _service_name(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            scope = _scope_name(scope_spans.scope)
            records.extend(_span_record(span, service, scope).to_json() for span in scope_spans.spans)
    return records


def _severity(record: LogRecord) -> str:
    if record.severity_text:
        return record.severity_text
    number = int(record.severity_number)
    if 1 <= number <= 4 * len(_SEVERITY_BANDS):
        return _SEVERITY_BANDS[(number - 1) // 4]
    return "UNSPECIFIED"


def _log_record(record: LogRecord, service: str, scope: str) -> dict[str, JSONValue]:
    return {
        # The SDK's logging bridge may leave time_unix_nano unset; observed time is always set.
        "time_ns": record.time_unix_nano or record.observed_time_unix_nano,
        "trace_id": record.trace_id.hex() or None,
        "span_id": record.span_id.hex() or None,
        "severity": _severity(record),
        "severity_number": int(record.severity_number),
        "body": _any_value(record.body) if record.HasField("body") else None,
        "attributes": _attributes(record.attributes),
        "event_name": record.event_name or None,
        "service": service,
        "scope": scope,
    }


def log_records(request: ExportLogsServiceRequest) -> list[dict[str, JSONValue]]:
    """One JSON-ready object per log record in an OTLP logs export request."""
    records: list[dict[str, JSONValue]] = []
    for resource_logs in request.resource_logs:
        service = _service_name(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            scope = _scope_name(scope_logs.scope)
            records.extend(_log_record(record, service, scope) for record in scope_logs.log_records)
    return records


def _metric_points(metric: Metric) -> int:
    which = metric.WhichOneof("data")
    return 0 if which is None else len(getattr(metric, which).data_points)


def metric_point_count(request: ExportMetricsServiceRequest) -> int:
    """Number of data points in an OTLP metrics export request."""
    return sum(
        _metric_points(metric)
        for resource_metrics in request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )


def _exemplar(exemplar: Exemplar) -> dict[str, JSONValue]:
    which = exemplar.WhichOneof("value")
    return {
        "trace_id": exemplar.trace_id.hex() or None,
        "span_id": exemplar.span_id.hex() or None,
        "value": getattr(exemplar, which) if which else None,
        "time_ns": exemplar.time_unix_nano,
        "attributes": _attributes(exemplar.filtered_attributes),
    }


def _point_values(kind: str, point: Any) -> dict[str, JSONValue]:
    if kind in ("gauge", "sum"):
        which = point.WhichOneof("value")
        return {"value": getattr(point, which) if which else None}
    values: dict[str, JSONValue] = {"count": point.count, "sum": point.sum if point.HasField("sum") else None}
    if kind == "histogram":
        values["bucket_counts"] = list(point.bucket_counts)
        values["explicit_bounds"] = list(point.explicit_bounds)
    elif kind == "exponential_histogram":
        values["scale"] = point.scale
        values["zero_count"] = point.zero_count
    elif kind == "summary":
        values["quantiles"] = {str(q.quantile): q.value for q in point.quantile_values}
    return values


def metric_records(request: ExportMetricsServiceRequest) -> list[dict[str, JSONValue]]:
    """One JSON-ready object per data point in an OTLP metrics export request, with its exemplars."""
    records: list[dict[str, JSONValue]] = []
    for resource_metrics in request.resource_metrics:
        service = _service_name(resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = _scope_name(scope_metrics.scope)
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                for point in getattr(metric, kind).data_points:
                    records.append({
                        "time_ns": point.time_unix_nano,
                        "name": metric.name,
                        "unit": metric.unit,
                        "type": kind,
                        "attributes": _attributes(point.attributes),
                        **_point_values(kind, point),
                        "exemplars": [_exemplar(e) for e in getattr(point, "exemplars", ())],
                        "service": service,
                        "scope": scope,
                    })
    return records


# OTLP/JSON encodes trace and span ids as hex, while protobuf's canonical JSON mapping
# (what json_format expects for bytes fields) is base64. Translate before parsing.
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _hex_id_to_base64(value) if key in _ID_KEYS else _hex_ids_to_base64(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def _hex_id_to_base64(value: Any) -> Any:
    if isinstance(value, str) and len(value) in (16, 32):
        try:
            return base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except ValueError:
            pass  # not hex: let json_format judge it as base64
    return value


def _parse(message: _M, body: bytes, is_json: bool) -> _M:
    try:
        if is_json:
            document = json.loads(body)
            if not isinstance(document, dict):
                raise ValueError("expected a JSON object")
            json_format.ParseDict(_hex_ids_to_base64(document), message, ignore_unknown_fields=True)
        else:
            cast(Any, message).ParseFromString(body)
    # Decoders raise a zoo of types (DecodeError, ParseError, ValueError, RecursionError,
    # TypeError from odd JSON); all of them mean the client sent something unusable.
    except Exception as exc:
        kind = "OTLP/JSON" if is_json else "OTLP protobuf"
        raise _PayloadError(HTTPStatus.BAD_REQUEST, f"cannot decode {kind} body: {exc}") from exc
    return message


def _decompress(data: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return data
    # gzip needs the +16 window flag; "deflate" in HTTP means zlib-wrapped deflate.
    wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
    decompressor = zlib.decompressobj(wbits)
    try:
        # Bounded output guards against a small compressed body inflating to gigabytes.
        out = decompressor.decompress(data, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise _PayloadError(HTTPStatus.BAD_REQUEST, f"cannot decompress {encoding} body: {exc}") from exc
    if len(out) > MAX_BODY_BYTES:
        raise _PayloadError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "decompressed body exceeds 64 MiB")
    if not decompressor.eof:
        raise _PayloadError(HTTPStatus.BAD_REQUEST, f"truncated {encoding} body")
    return out


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep the process alive on stop()

    def __init__(self, address: tuple[str, int], receiver: OtlpReceiver) -> None:
        if ":" in address[0]:
            self.address_family = AF_INET6
        self.receiver = receiver
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive: the exporters reuse one connection for every export.
    protocol_version = "HTTP/1.1"
    server_version = "ragotel-otlp"
    timeout = 60  # seconds; drops idle keep-alive connections so their threads end

    @property
    def _receiver(self) -> OtlpReceiver:
        return cast(_Server, self.server).receiver

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request to stderr, drowning the CLI's own output.
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("/", "/health"):
            self._reply(HTTPStatus.OK, b"ragotel OTLP receiver: POST /v1/traces, /v1/logs, /v1/metrics\n")
        else:
            self._reply_error(HTTPStatus.NOT_FOUND, f"no such path: {self.path}")

    def do_POST(self) -> None:
        try:
            signal, body, is_json = self._read_request()
            response = self._receiver._ingest(signal, body, is_json)
        except _PayloadError as exc:
            self._reply_error(exc.status, str(exc))
        except Exception as exc:  # never let a bad request take the thread down silently
            _log.exception("OTLP receiver failed to handle %s", self.path)
            self._reply_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {exc}")
        else:
            self._receiver._count(requests=1)
            self._reply(HTTPStatus.OK, response, _JSON if is_json else _PROTOBUF)

    def _read_request(self) -> tuple[_Signal, bytes, bool]:
        path = urlsplit(self.path).path.rstrip("/")
        signal = _PATHS.get(path)
        if signal is None:
            raise _PayloadError(HTTPStatus.NOT_FOUND, f"no such path: {path}; use /v1/traces, /v1/logs or /v1/metrics")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in (_PROTOBUF, _JSON):
            raise _PayloadError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"unsupported Content-Type {content_type or '(none)'!r}; use {_PROTOBUF} or {_JSON}",
            )
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "deflate"):
            raise _PayloadError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Encoding {encoding!r}; use gzip"
            )
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise _PayloadError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(length_header)
        except ValueError:
            raise _PayloadError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length_header!r}") from None
        if length < 0:
            raise _PayloadError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length_header!r}")
        if length > MAX_BODY_BYTES:
            raise _PayloadError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body exceeds 64 MiB")
        raw = self.rfile.read(length)
        if len(raw) != length:
            raise _PayloadError(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
        return signal, _decompress(raw, encoding), content_type == _JSON

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _reply_error(self, status: HTTPStatus, message: str) -> None:
        # The body may not have been read; closing keeps its bytes from being parsed as
        # the next request on this keep-alive connection.
        self.close_connection = True
        self._receiver._count(rejected=1)
        with contextlib.suppress(OSError):  # the client may already be gone
            self._reply(status, (message + "\n").encode("utf-8"))


class OtlpReceiver:
    """Local OTLP/HTTP endpoint writing spans, logs and metric data points to JSON-lines files.

    ``port=0`` picks a free port; read the actual one from ``port`` or
    ``endpoint`` after ``start``. Usable as a context manager, which starts
    and stops it::

        with OtlpReceiver(port=0, spans_path=tmp / "spans.jsonl") as receiver:
            exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
            ...
        print(receiver.stats.spans)

    Files are appended to, never truncated, and their directories are created on start.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4318,
        spans_path: str | Path = DEFAULT_DIR / SPANS_FILENAME,
        logs_path: str | Path | None = None,
        metrics_path: str | Path | None = None,
    ) -> None:
        self.host = host
        self.spans_path = Path(spans_path)
        self.logs_path = Path(logs_path) if logs_path is not None else self.spans_path.with_name(LOGS_FILENAME)
        self.metrics_path = (Path(metrics_path) if metrics_path is not None
                             else self.spans_path.with_name(METRICS_FILENAME))
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats = ReceiverStats()

    # -- lifecycle

    def start(self) -> OtlpReceiver:
        """Bind the port and serve in a background thread. Raises ``OSError`` if the port is taken."""
        if self._server is not None:
            raise RuntimeError("receiver already started")
        for path in (self.spans_path, self.logs_path, self.metrics_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        server = _Server((self.host, self._port), self)
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="ragotel-otlp-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call more than once."""
        server, thread = self._server, self._thread
        self._server = None
        self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def wait(self) -> None:
        """Block until ``stop`` is called from elsewhere (or Ctrl-C interrupts)."""
        while (thread := self._thread) is not None and thread.is_alive():
            # Short joins keep the main thread responsive to KeyboardInterrupt.
            thread.join(0.5)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port once started (also when created with ``port=0``)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``, e.g. ``http://127.0.0.1:4318``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def stats(self) -> ReceiverStats:
        with self._stats_lock:
            return self._stats

    # -- request handling (called from server threads)

    def _count(
        self,
        *,
        spans: int = 0,
        logs: int = 0,
        metric_points: int = 0,
        requests: int = 0,
        rejected: int = 0,
    ) -> None:
        with self._stats_lock:
            s = self._stats
            self._stats = ReceiverStats(
                spans=s.spans + spans,
                logs=s.logs + logs,
                metric_points=s.metric_points + metric_points,
                requests=s.requests + requests,
                rejected=s.rejected + rejected,
            )

    def _ingest(self, signal: _Signal, body: bytes, is_json: bool) -> bytes:
        """Decode, persist and count one export; returns the serialized success response."""
        if signal == "traces":
            spans = span_records(_parse(ExportTraceServiceRequest(), body, is_json))
            self._append(self.spans_path, spans)
            self._count(spans=len(spans))
            response: Any = ExportTraceServiceResponse()
        elif signal == "logs":
            logs = log_records(_parse(ExportLogsServiceRequest(), body, is_json))
            self._append(self.logs_path, logs)
            self._count(logs=len(logs))
            response = ExportLogsServiceResponse()
        else:
            points = metric_records(_parse(ExportMetricsServiceRequest(), body, is_json))
            self._append(self.metrics_path, points)
            self._count(metric_points=len(points))
            response = ExportMetricsServiceResponse()
        if is_json:
            return str(json_format.MessageToJson(response)).encode("utf-8")
        return bytes(response.SerializeToString())

    def _append(self, path: Path, records: list[dict[str, JSONValue]]) -> None:
        if not records:
            return
        data = "".join(_json_lines(records))
        # One write per request under a lock: concurrent exports never interleave lines,
        # and closing the file makes each batch visible to readers immediately.
        with self._write_lock, path.open("a", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()


def _json_lines(records: Iterable[dict[str, JSONValue]]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
