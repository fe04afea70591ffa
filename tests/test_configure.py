"""``ragotel.configure()`` in a clean process: real exporters, real OTLP over HTTP, real /metrics.

Each case runs in a subprocess because OpenTelemetry's global providers can be set once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from ragotel.cli.receiver import OtlpReceiver
from tests.http_double import HttpDouble
from tests.otlp_collector_double import OtlpCollectorDouble

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_", "K8S_"))}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_exports_traces_and_correlated_logs_over_otlp_http(tmp_path: Path) -> None:
    with OtlpReceiver(port=0, spans_path=tmp_path / "spans.jsonl", logs_path=tmp_path / "logs.jsonl") as rx:
        out = run_python(
            """
            import json, logging, ragotel
            t = ragotel.configure(service_name="chat-api", service_version="1.2.3")
            log = logging.getLogger("app")
            logging.getLogger().setLevel(logging.INFO)
            with ragotel.pipeline("chat"):
                with ragotel.retrieval(data_source="faiss") as step:
                    step.record(documents=[{"id": "a", "score": 0.5}])
                    log.info("searched")
            t.force_flush()
            t.shutdown()
            print(json.dumps({"ok": True}))
            """,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_METRICS_EXPORTER": "none"},
        )
    assert out == {"ok": True}
    spans = {s["name"]: s for s in read_jsonl(tmp_path / "spans.jsonl")}
    assert set(spans) == {"invoke_workflow chat", "retrieval faiss"}
    assert spans["retrieval faiss"]["parent_span_id"] == spans["invoke_workflow chat"]["span_id"]
    assert {s["service_name"] for s in spans.values()} == {"chat-api"}
    (line,) = [r for r in read_jsonl(tmp_path / "logs.jsonl") if r.get("body") == "searched"]
    assert line["trace_id"] == spans["retrieval faiss"]["trace_id"]
    assert line["span_id"] == spans["retrieval faiss"]["span_id"]


def test_env_wins_and_resource_carries_k8s_and_placement() -> None:
    out = run_python(
        """
        import json, ragotel
        t = ragotel.configure(service_name="from-code", environment="dev", provider="akamai-lke")
        print(json.dumps(dict(t.resource.attributes)))
        """,
        env={
            "OTEL_SERVICE_NAME": "from-env",
            "OTEL_RESOURCE_ATTRIBUTES": "team=search,service.version=9.9",
            "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
            "K8S_POD_NAME": "chat-api-7d9f", "POD_NAMESPACE": "rag", "K8S_NODE_NAME": "node-1",
            "RAGOTEL_CLUSTER": "rag-ray-dev", "RAGOTEL_REGION": "us-ord",
        },
    )
    assert out["service.name"] == "from-env"
    assert out["service.version"] == "9.9"
    assert out["team"] == "search"
    assert out["deployment.environment.name"] == "dev"
    assert (out["k8s.pod.name"], out["k8s.namespace.name"], out["k8s.node.name"]) == ("chat-api-7d9f", "rag", "node-1")
    assert (out["cloud.provider"], out["k8s.cluster.name"], out["cloud.region"]) == (
        "akamai-lke", "rag-ray-dev", "us-ord")


def test_configure_twice_is_harmless_and_keeps_existing_providers() -> None:
    out = run_python(
        """
        import json, ragotel
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        mine = TracerProvider()
        exporter = InMemorySpanExporter()
        mine.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(mine)

        first = ragotel.configure(service_name="a")
        second = ragotel.configure(service_name="b")
        with ragotel.prompt("p"):
            pass
        print(json.dumps({
            "same_handle": first is second,
            "provider_kept": trace.get_tracer_provider() is mine,
            "owned": sorted(first.owned),
            "spans_in_app_exporter": [s.name for s in exporter.get_finished_spans()],
        }))
        first.shutdown()
        """,
        env={"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert out == {
        "same_handle": True,
        "provider_kept": True,
        "owned": ["logs", "metrics"],
        "spans_in_app_exporter": ["prompt p"],
    }


def test_sdk_disabled_makes_everything_a_plain_call() -> None:
    out = run_python(
        """
        import json, ragotel
        from opentelemetry import trace
        t = ragotel.configure(service_name="x")
        @ragotel.retrieval
        def f(k=2):
            return trace.get_current_span().get_span_context().is_valid
        with ragotel.prompt("p") as step:
            step.record(chunks=1)
        print(json.dumps({"disabled": t.disabled, "span_inside": f()}))
        """,
        env={"OTEL_SDK_DISABLED": "true"},
    )
    assert out == {"disabled": True, "span_inside": False}


def test_prometheus_endpoint_serves_step_metrics_with_placement_labels(unused_tcp_port: int) -> None:
    out = run_python(
        f"""
        import json, urllib.request, ragotel
        ragotel.configure(service_name="chat-api", prometheus_port={unused_tcp_port}, cluster="rag-ray-dev",
                          environment="staging")
        with ragotel.retrieval(data_source="faiss") as step:
            step.record(documents=[{{"id": "a", "score": 0.7}}])
        body = urllib.request.urlopen("http://127.0.0.1:{unused_tcp_port}/metrics", timeout=10).read().decode()
        print(json.dumps({{"body": body}}))
        """,
        env={"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    body = out["body"]
    assert 'rag_step_duration_seconds_bucket{' in body
    assert 'rag_step_kind="retrieval"' in body
    assert 'rag_retrieval_documents_total{' in body
    assert 'k8s_cluster_name="rag-ray-dev"' in body
    # The environment is on every series too, like the placement labels; other resource attributes are not.
    duration = next(line for line in body.splitlines() if line.startswith("rag_step_duration_seconds_count{"))
    assert 'deployment_environment_name="staging"' in duration and 'k8s_cluster_name="rag-ray-dev"' in duration
    assert "service_name=" not in duration


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_grpc_protocol_is_selected_from_env() -> None:
    out = run_python(
        """
        import json, ragotel
        from opentelemetry import trace
        ragotel.configure(service_name="x")
        processors = trace.get_tracer_provider()._active_span_processor._span_processors
        print(json.dumps({"exporters": [type(getattr(p.span_exporter, "inner", p.span_exporter)).__module__
                                         for p in processors if hasattr(p, "span_exporter")]}))
        """,
        env={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert out["exporters"] == ["opentelemetry.exporter.otlp.proto.grpc.trace_exporter"]


def test_collector_down_drops_spans_and_counts_them() -> None:
    """Spans that cannot be sent are dropped from a bounded queue and counted, never waited for."""
    out = run_python(
        """
        import json, ragotel
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        reader = InMemoryMetricReader()
        t = ragotel.configure(service_name="chat-api", metric_readers=[reader])
        for i in range(200):
            with ragotel.retrieval("search", data_source="faiss"):
                pass
        points = {}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for p in m.data.data_points:
                        key = m.name + "|" + str(dict(p.attributes).get("error.type"))
                        points[key] = points.get(key, 0) + getattr(p, "value", 0)
        print(json.dumps(points))
        """,
        # Nothing listens on port 9; a queue of 16 fills at once.
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_MAX_QUEUE_SIZE": "16",
             "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    dropped = out.get("otel.sdk.processor.span.processed|queue_full", 0)
    assert dropped >= 200 - 16 - 8 * 4, out  # all but what the queue and a few in-flight batches held


def test_query_string_values_are_redacted_unless_capture_is_on() -> None:
    code = """
        import json, ragotel
        from fastapi import FastAPI
        from fastapi.testclient import TestClient
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        spans = InMemorySpanExporter()
        ragotel.configure(service_name="api", span_processors=[SimpleSpanProcessor(spans)])
        app = ragotel.instrument_fastapi(FastAPI())
        app.get("/search")(lambda q: {"ok": True})
        TestClient(app).get("/search", params={"q": "my private question"})
        print(json.dumps({"queries": [s.attributes.get("url.query") for s in spans.get_finished_spans()]}))
        """
    redacted = run_python(code, env={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                                     "OTEL_LOGS_EXPORTER": "none"})
    assert redacted == {"queries": ["q=REDACTED"]}
    captured = run_python(code, env={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                                     "OTEL_LOGS_EXPORTER": "none", "RAGOTEL_CAPTURE_CONTENT": "true"})
    assert captured == {"queries": ["q=my+private+question"]}


def test_contradictory_batch_settings_fall_back_to_defaults_instead_of_failing(tmp_path: Path) -> None:
    with OtlpReceiver(port=0, spans_path=tmp_path / "spans.jsonl") as rx:
        out = run_python(
            """
            import json, ragotel
            t = ragotel.configure(service_name="chat-api")
            with ragotel.retrieval("search"):
                pass
            t.force_flush()
            print(json.dumps({"ok": True}))
            """,
            # A batch larger than the queue: the SDK refuses these; the app must still start and export.
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_BSP_MAX_QUEUE_SIZE": "8",
                 "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64", "OTEL_BLRP_MAX_QUEUE_SIZE": "8",
                 "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "64", "OTEL_METRICS_EXPORTER": "none"},
        )
    assert out == {"ok": True}
    assert [s["name"] for s in read_jsonl(tmp_path / "spans.jsonl")] == ["retrieval search"]


def test_metric_settings_from_arguments_and_the_environment_winning() -> None:
    script = """
        import json, ragotel
        from ragotel._core import runtime
        ragotel.configure(service_name="x", detailed_metrics=True, retrieval_low_score=0.5, metric_value_limit=7)
        now = runtime.current
        print(json.dumps({"detailed": now.detailed_metrics, "low": now.low_score, "limit": now.value_limit}))
        """
    quiet = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    assert run_python(script, env=quiet) == {"detailed": True, "low": 0.5, "limit": 7}
    env = {**quiet, "RAGOTEL_DETAILED_METRICS": "false", "RAGOTEL_RETRIEVAL_LOW_SCORE": "0.25",
           "RAGOTEL_METRIC_VALUE_LIMIT": "50"}
    assert run_python(script, env=env) == {"detailed": False, "low": 0.25, "limit": 50}


class TempoDouble(HttpDouble):
    """Stands in for Grafana Tempo's OTLP/HTTP port: it takes traces and answers 404 to metrics and logs."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, int]] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 200 if self.path == "/v1/traces" else 404
                double.posts.append((self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf" if status == 200 else "text/plain")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


# Emits a span, a log record and a metric point, flushes, and prints what ragotel warned.
EXPORT_ALL_AND_FLUSH = """
import json, logging, ragotel
warnings = []
class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger("ragotel").addHandler(Keep(logging.WARNING))
t = ragotel.configure(service_name="chat-api")
with ragotel.retrieval("search", data_source="faiss"):
    logging.getLogger("app").warning("searched")
t.force_flush()
print(json.dumps({"warnings": warnings}))
"""


def test_an_endpoint_for_traces_only_is_named_not_called_missing() -> None:
    with TempoDouble() as tempo:
        out = run_python(EXPORT_ALL_AND_FLUSH, env={"OTEL_EXPORTER_OTLP_ENDPOINT": tempo.url})
    assert ("/v1/traces", 200) in tempo.posts and ("/v1/metrics", 404) in tempo.posts
    warnings = out["warnings"]
    assert not any("nothing answers" in w for w in warnings), warnings
    metrics = next(w for w in warnings if "HTTP 404 to metrics" in w)
    assert f"{tempo.url}/v1/metrics" in metrics and "takes traces only" in metrics and "Tempo" in metrics
    assert "Alloy" in metrics and "OTEL_METRICS_EXPORTER=prometheus" in metrics
    logs = next(w for w in warnings if "HTTP 404 to logs" in w)
    assert "takes traces only" in logs and "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" in logs
    assert not any("to traces" in w for w in warnings), warnings
    assert len(warnings) == 2, warnings  # once per signal, not at every export


def test_a_collector_answering_an_error_is_named_with_its_status() -> None:
    with OtlpCollectorDouble(status=500) as collector:
        out = run_python(EXPORT_ALL_AND_FLUSH, env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
    warnings = out["warnings"]
    assert any(f"{collector.url}/v1/traces answered HTTP 500 to traces" in w for w in warnings), warnings
    assert not any("nothing answers" in w or "traces only" in w for w in warnings), warnings


def test_force_flush_does_not_wait_once_nothing_answers(unused_tcp_port: int) -> None:
    out = run_python(
        """
        import json, logging, threading, time, ragotel
        known = threading.Event()
        class Known(logging.Handler):
            def emit(self, record):
                if "nothing answers" in record.getMessage():
                    known.set()
        logging.getLogger("ragotel").addHandler(Known(logging.WARNING))
        t = ragotel.configure(service_name="chat-api")
        with ragotel.retrieval("search", data_source="faiss"):
            logging.getLogger("app").warning("searched")
        warned = known.wait(30)  # the log exporter's first try finds nothing there
        with ragotel.retrieval("search", data_source="faiss"):
            pass
        started = time.monotonic()
        flushed = t.force_flush()
        print(json.dumps({"warned": warned, "flushed": flushed, "seconds": time.monotonic() - started}))
        """,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{unused_tcp_port}"},
    )
    assert out["warned"] and out["flushed"] is False
    assert out["seconds"] < 1.0, out  # the bound; the exporters alone retry for 10 s


class TempoGrpcDouble:
    """Tempo's OTLP/gRPC port stand-in: a real gRPC server with the trace service only, so metrics and logs
    get UNIMPLEMENTED."""

    def __enter__(self) -> TempoGrpcDouble:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: object, context: object) -> object:
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        self.url = f"http://127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)


def test_a_grpc_endpoint_for_traces_only_is_named_too() -> None:
    with TempoGrpcDouble() as tempo:
        out = run_python(EXPORT_ALL_AND_FLUSH, env={"OTEL_EXPORTER_OTLP_ENDPOINT": tempo.url,
                                                    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    warnings = out["warnings"]
    assert not any("nothing answers" in w or "to traces" in w for w in warnings), warnings
    metrics = next(w for w in warnings if "answered gRPC UNIMPLEMENTED to metrics" in w)
    assert "takes traces only" in metrics and "OTEL_METRICS_EXPORTER=prometheus" in metrics
    assert any("answered gRPC UNIMPLEMENTED to logs" in w for w in warnings), warnings


# Blocks the grpc exporter package at import, as in an install without the grpc extra (failure injection).
WITHOUT_GRPC_EXTRA = """
    import importlib.abc, sys
    class FailureInjectionNoGrpcExtra(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.startswith("opentelemetry.exporter.otlp.proto.grpc"):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None
    sys.meta_path.insert(0, FailureInjectionNoGrpcExtra())
    """


def test_grpc_asked_without_the_grpc_exporter_exports_over_http(tmp_path: Path) -> None:
    """opentelemetry-distro sets OTEL_EXPORTER_OTLP_PROTOCOL=grpc where it is unset; without the gRPC exporter
    ragotel exports over http/protobuf to the same endpoint, with one warning saying so and how to choose."""
    with OtlpReceiver(port=0, spans_path=tmp_path / "spans.jsonl", logs_path=tmp_path / "logs.jsonl") as rx:
        out = run_python(textwrap.dedent(WITHOUT_GRPC_EXTRA) + textwrap.dedent(EXPORT_ALL_AND_FLUSH),
                         env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rx.port}",
                              "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_METRICS_EXPORTER": "none"})
    spans = read_jsonl(tmp_path / "spans.jsonl")
    assert [s["name"] for s in spans] == ["retrieval faiss"]
    assert [r["body"] for r in read_jsonl(tmp_path / "logs.jsonl")] == ["searched"]
    (warning,) = out["warnings"]
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'" in warning and "exporting over http/protobuf" in warning
    assert "pip install 'ragotel[grpc]'" in warning and "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in warning


def test_grpc_to_an_http_receiver_is_named_as_not_grpc() -> None:
    """A receiver that answers in HTTP/1.1 (an OTLP/HTTP port) answers: the warning says it is not gRPC, not that
    nothing answers there."""
    with OtlpReceiver(port=0) as rx:
        out = run_python(EXPORT_ALL_AND_FLUSH, env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rx.port}",
                                                    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                                                    "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
                                                    "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})
    warnings = out["warnings"]
    assert not any("nothing answers" in w for w in warnings), warnings
    (warning,) = warnings
    assert "answers, but not over gRPC" in warning and "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in warning
