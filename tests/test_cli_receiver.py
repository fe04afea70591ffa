"""The local OTLP receiver, fed by the real OpenTelemetry SDK exporters over HTTP."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from ragotel.cli.receiver import OtlpReceiver

PROTOBUF = {"Content-Type": "application/x-protobuf"}
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(port=0, spans_path=tmp_path / "telemetry" / "spans.jsonl") as rx:
        yield rx


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def post(endpoint: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
    url = urlsplit(endpoint)
    assert url.hostname is not None
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Content-Type") or ""
    finally:
        conn.close()


def proto_request(trace_byte: int, span_count: int = 1, service: str = "raw-svc") -> bytes:
    """An OTLP trace export with ``span_count`` spans of one trace, built by hand."""
    spans = [
        Span(
            trace_id=bytes([trace_byte]) * 16,
            span_id=(trace_byte * 1000 + i + 1).to_bytes(8, "big"),
            name=f"op-{i}",
            start_time_unix_nano=1_000 + i,
            end_time_unix_nano=2_000 + i,
            attributes=[KeyValue(key="i", value=AnyValue(int_value=i))],
        )
        for i in range(span_count)
    ]
    resource = ProtoResource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return bytes(request.SerializeToString())


def hex_id(value: int, digits: int) -> str:
    return format(value, f"0{digits}x")


def by_name(records: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["name"]): r for r in records}


# --------------------------------------------------------------------------- traces


def test_sdk_trace_is_written_with_ids_parents_attributes_and_status(receiver: OtlpReceiver) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-api", "deployment": "test"}))
    captured = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(captured))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")))
    tracer = provider.get_tracer("ragotel.test", "1.0")

    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "POST")
        root.set_attribute("rag.top_k", 5)
        root.set_attribute("rag.score_threshold", 0.25)
        root.set_attribute("rag.cache_hit", False)
        root.set_attribute("rag.doc_ids", ["d1", "d2"])
        with tracer.start_as_current_span("rag.retrieve") as retrieve:
            retrieve.add_event("cache.miss", {"key": "q1"})
            with tracer.start_as_current_span("embeddings", kind=SpanKind.CLIENT):
                pass
        with tracer.start_as_current_span("chat", kind=SpanKind.CLIENT) as chat:
            chat.record_exception(TimeoutError("upstream timeout"))
            chat.set_status(Status(StatusCode.ERROR, "upstream timeout"))

    # SimpleSpanProcessor exports synchronously: the file must already be complete
    # while the receiver is still running, which is what `ragotel trace` relies on.
    records = read_lines(receiver.spans_path)
    sdk_spans: dict[str, ReadableSpan] = {s.name: s for s in captured.get_finished_spans()}
    assert len(records) == 4
    assert set(by_name(records)) == set(sdk_spans)
    provider.shutdown()

    for name, record in by_name(records).items():
        sdk = sdk_spans[name]
        ctx = sdk.get_span_context()
        assert ctx is not None
        assert record["trace_id"] == hex_id(ctx.trace_id, 32)
        assert record["span_id"] == hex_id(ctx.span_id, 16)
        expected_parent = hex_id(sdk.parent.span_id, 16) if sdk.parent is not None else None
        assert record["parent_span_id"] == expected_parent
        assert record["start_ns"] == sdk.start_time
        assert record["end_ns"] == sdk.end_time
        assert record["service_name"] == "chat-api"
        assert record["scope"] == "ragotel.test"

    spans = by_name(records)
    assert spans["POST /chat"]["parent_span_id"] is None
    assert spans["embeddings"]["parent_span_id"] == spans["rag.retrieve"]["span_id"]
    assert spans["rag.retrieve"]["parent_span_id"] == spans["POST /chat"]["span_id"]
    assert spans["POST /chat"]["kind"] == "SERVER"
    assert spans["chat"]["kind"] == "CLIENT"
    assert spans["rag.retrieve"]["kind"] == "INTERNAL"
    assert spans["POST /chat"]["attributes"] == {
        "http.request.method": "POST",
        "rag.top_k": 5,
        "rag.score_threshold": 0.25,
        "rag.cache_hit": False,
        "rag.doc_ids": ["d1", "d2"],
    }
    assert spans["chat"]["status_code"] == "ERROR"
    assert spans["chat"]["status_message"] == "upstream timeout"
    assert spans["chat"]["events"] == ["exception"]
    assert spans["rag.retrieve"]["events"] == ["cache.miss"]
    assert spans["rag.retrieve"]["status_code"] == "UNSET"
    assert receiver.stats.spans == 4


def test_sdk_gzip_export_is_decoded(receiver: OtlpReceiver) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "gz"}))
    exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", compression=Compression.Gzip)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("compressed", attributes={"size": "large" * 50}):
        pass
    provider.shutdown()

    (record,) = read_lines(receiver.spans_path)
    assert record["name"] == "compressed"
    assert record["attributes"] == {"size": "large" * 50}
    assert receiver.stats.rejected == 0


def test_gzip_body_needs_content_encoding_header(receiver: OtlpReceiver) -> None:
    compressed = gzip.compress(proto_request(trace_byte=7, span_count=2))

    status, _, _ = post(receiver.endpoint, "/v1/traces", compressed, PROTOBUF)
    assert status == 400  # gzip bytes are not protobuf
    assert not receiver.spans_path.exists()

    status, body, content_type = post(
        receiver.endpoint, "/v1/traces", compressed, {**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert status == 200
    assert content_type == "application/x-protobuf"
    response = ExportTraceServiceResponse()
    response.ParseFromString(body)
    assert not response.HasField("partial_success")
    assert [r["name"] for r in read_lines(receiver.spans_path)] == ["op-0", "op-1"]


def test_otlp_json_with_hex_ids(receiver: OtlpReceiver) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "curl"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "from-json",
                                "kind": 3,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "42"}},
                                    {
                                        "key": "meta",
                                        "value": {
                                            "kvlistValue": {"values": [{"key": "ok", "value": {"boolValue": True}}]}
                                        },
                                    },
                                ],
                                "status": {"code": 2, "message": "boom"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    status, body, content_type = post(
        receiver.endpoint,
        "/v1/traces",
        json.dumps(document).encode(),
        {"Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 200, body
    assert content_type == "application/json"
    assert json.loads(body) == {}
    (record,) = read_lines(receiver.spans_path)
    assert record["trace_id"] == trace_id
    assert record["span_id"] == "eee19b7ec3c1b174"
    assert record["parent_span_id"] == "eee19b7ec3c1b173"
    assert record["service_name"] == "json-svc"
    assert record["kind"] == "CLIENT"
    assert record["start_ns"] == 1544712660000000000
    assert record["attributes"] == {"n": 42, "meta": {"ok": True}}
    assert (record["status_code"], record["status_message"]) == ("ERROR", "boom")


# --------------------------------------------------------------------------- logs and metrics


def test_sdk_logs_are_written_with_trace_context(receiver: OtlpReceiver) -> None:
    resource = Resource.create({"service.name": "rag-worker"})
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{receiver.endpoint}/v1/logs"))
    )
    logger = logger_provider.get_logger("ragotel.test")
    tracer = TracerProvider(resource=resource).get_tracer("t")

    with tracer.start_as_current_span("generate") as span:
        logger.emit(
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body="prompt truncated",
            attributes={"prompt.tokens": 4096},
        )
        ctx = span.get_span_context()
    logger.emit(severity_number=SeverityNumber.ERROR, body={"error": "oom", "retry": 2})
    logger_provider.shutdown()

    assert receiver.logs_path == receiver.spans_path.with_name("logs.jsonl")
    first, second = read_lines(receiver.logs_path)
    assert first["trace_id"] == hex_id(ctx.trace_id, 32)
    assert first["span_id"] == hex_id(ctx.span_id, 16)
    assert first["severity"] == "WARN"
    assert first["body"] == "prompt truncated"
    assert first["attributes"] == {"prompt.tokens": 4096}
    assert first["service"] == "rag-worker"
    assert isinstance(first["time_ns"], int) and first["time_ns"] > 0
    # No span active and no severity text: ids are null, severity comes from the number.
    assert second["trace_id"] is None and second["span_id"] is None
    assert second["severity"] == "ERROR"
    assert second["body"] == {"error": "oom", "retry": 2}
    assert receiver.stats.logs == 2
    assert not receiver.spans_path.exists()


def test_sdk_metrics_are_stored_with_their_exemplars(receiver: OtlpReceiver,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "m"}))
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")))
    exporter = OTLPMetricExporter(endpoint=f"{receiver.endpoint}/v1/metrics")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "m"}))
    meter = meter_provider.get_meter("ragotel.test")
    counter = meter.create_counter("rag.requests")
    counter.add(1, {"route": "/chat"})
    counter.add(1, {"route": "/search"})
    latency = meter.create_histogram("rag.latency", unit="ms")
    with tracer_provider.get_tracer("t").start_as_current_span("retrieval faiss") as span:
        latency.record(12.5, {"rag.step.kind": "retrieval"})
    trace_id, span_id = (format(span.get_span_context().trace_id, "032x"),
                         format(span.get_span_context().span_id, "016x"))

    meter_provider.shutdown()  # exports once
    tracer_provider.shutdown()

    stats = receiver.stats
    assert stats.metric_points == 3  # two counter series + one histogram point
    assert stats.rejected == 0
    assert not receiver.logs_path.exists()
    points = {(p["name"], json.dumps(p["attributes"])): p for p in read_lines(receiver.metrics_path)}
    assert points[("rag.requests", '{"route": "/chat"}')]["value"] == 1
    histogram = points[("rag.latency", '{"rag.step.kind": "retrieval"}')]
    assert histogram["type"] == "histogram" and histogram["unit"] == "ms" and histogram["count"] == 1
    assert histogram["sum"] == 12.5 and histogram["service"] == "m"
    assert [(e["trace_id"], e["span_id"], e["value"]) for e in histogram["exemplars"]] == [
        (trace_id, span_id, 12.5)]

    # `ragotel trace` shows the measurements that name the trace's spans.
    from ragotel.cli import main

    assert main(["trace", trace_id[:8], "--dir", str(receiver.spans_path.parent)]) == 0
    exemplar_lines = capsys.readouterr().out.split("metric exemplars of this trace (1):\n")[1].splitlines()
    assert exemplar_lines == [f"  rag.latency  12.5 ms  {{rag.step.kind=retrieval}}  span {span_id} retrieval faiss"]


# --------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [
        ("/v1/traces", b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF, 400, "cannot decode OTLP protobuf"),
        ("/v1/traces", b"{not json", {"Content-Type": "application/json"}, 400, "cannot decode OTLP/JSON"),
        ("/v1/logs", b"[1, 2]", {"Content-Type": "application/json"}, 400, "expected a JSON object"),
        ("/v1/traces", b"x", {"Content-Type": "text/plain"}, 415, "unsupported Content-Type"),
        ("/v1/traces", b"x", {**PROTOBUF, "Content-Encoding": "br"}, 415, "unsupported Content-Encoding"),
        ("/v1/traces", b"not gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "cannot decompress"),
        (
            "/v1/traces",
            gzip.compress(b"abc")[:-6],
            {**PROTOBUF, "Content-Encoding": "gzip"},
            400,
            "truncated",
        ),
        ("/v2/spans", b"", PROTOBUF, 404, "no such path"),
    ],
    ids=[
        "garbage-protobuf",
        "garbage-json",
        "json-not-object",
        "text-plain",
        "brotli",
        "bad-gzip",
        "truncated-gzip",
        "unknown-path",
    ],
)
def test_bad_requests_are_rejected_and_the_receiver_keeps_serving(
    receiver: OtlpReceiver, path: str, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    got_status, got_body, _ = post(receiver.endpoint, path, body, headers)
    assert got_status == status
    assert message in got_body.decode()
    assert receiver.stats.rejected == 1

    ok_status, _, _ = post(receiver.endpoint, "/v1/traces", proto_request(trace_byte=1), PROTOBUF)
    assert ok_status == 200
    assert [r["name"] for r in read_lines(receiver.spans_path)] == ["op-0"]


def test_keep_alive_connection_survives_a_rejected_request(receiver: OtlpReceiver) -> None:
    # Exporters reuse one connection. A rejected body that was never read must not be
    # parsed as the start of the next request on that connection.
    url = urlsplit(receiver.endpoint)
    assert url.hostname is not None
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("POST", "/v1/traces", body=b"POST /v1/traces HTTP/1.1\r\n" * 100, headers={"Content-Type": "x/y"})
        rejected = conn.getresponse()
        assert rejected.status == 415
        rejected.read()
        conn.request("POST", "/v1/traces", body=proto_request(trace_byte=3), headers=PROTOBUF)
        accepted = conn.getresponse()
        assert accepted.status == 200
        accepted.read()
        # A successful export keeps the connection open for the next one.
        assert not accepted.will_close
        conn.request("POST", "/v1/traces", body=proto_request(trace_byte=4), headers=PROTOBUF)
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert [r["trace_id"] for r in read_lines(receiver.spans_path)] == ["03" * 16, "04" * 16]


def test_concurrent_exports_never_interleave_lines(receiver: OtlpReceiver) -> None:
    threads_n, requests_n, spans_n = 8, 20, 5
    errors: list[BaseException] = []

    def worker(worker_id: int) -> None:
        try:
            for _ in range(requests_n):
                status, _, _ = post(
                    receiver.endpoint,
                    "/v1/traces",
                    proto_request(worker_id + 1, spans_n, "w" * 2000),
                    PROTOBUF,
                )
                assert status == 200
        except BaseException as exc:  # surfaced below: pytest does not see thread failures
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    records = read_lines(receiver.spans_path)  # json.loads fails on any torn line
    assert len(records) == threads_n * requests_n * spans_n
    assert {r["trace_id"] for r in records} == {bytes([i + 1]).hex() * 16 for i in range(threads_n)}
    assert receiver.stats.spans == len(records)


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle_port_zero_and_stop(tmp_path: Path) -> None:
    rx = OtlpReceiver(port=0, spans_path=tmp_path / "a" / "spans.jsonl", logs_path=tmp_path / "b" / "logs.jsonl")
    assert not rx.running
    rx.start()
    try:
        assert rx.port != 0
        assert rx.endpoint == f"http://127.0.0.1:{rx.port}"
        assert (tmp_path / "a").is_dir() and (tmp_path / "b").is_dir()
        with pytest.raises(RuntimeError):
            rx.start()
        # A second receiver cannot take the same port.
        with pytest.raises(OSError), OtlpReceiver(port=rx.port, spans_path=tmp_path / "c.jsonl"):
            pass
    finally:
        rx.stop()
    rx.stop()  # idempotent
    assert not rx.running
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", rx.port), timeout=2):
        pass


def test_ragotel_receive_command_runs_until_terminated(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragotel.cli", "receive", "--port", "0", "--dir", str(tmp_path / "tel")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(6)]
        assert banner[0].startswith("ragotel receiver listening on http://127.0.0.1:"), banner
        endpoint = banner[0].split()[-1]
        assert banner[1].split() == ["spans", "->", str(tmp_path / "tel" / "spans.jsonl")]
        assert banner[3].split() == ["metrics", "->", str(tmp_path / "tel" / "metrics.jsonl")]
        assert banner[4].strip() == f"export OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}"
        assert post(endpoint, "/v1/traces", proto_request(trace_byte=9, span_count=3), PROTOBUF)[0] == 200
        assert len(read_lines(tmp_path / "tel" / "spans.jsonl")) == 3
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped: 3 spans, 0 log records" in out
