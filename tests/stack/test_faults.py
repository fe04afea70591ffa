"""Faults injected into a running reference app: the collector down, slow or failing (telemetry-only
faults: every request still succeeds, dropped spans are counted) and a client leaving in the middle
of a stream (the server span ends and vLLM stops generating)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from examples.reference_app.processes import ManagedProcess, free_port
from examples.reference_app.run_local import LocalStack
from examples.reference_app.vllm_server import VllmServer
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import load_spans
from tests.otlp_collector_double import OtlpCollectorDouble
from tests.stack.conftest import ROOT, SERVED_MODEL

pytestmark = pytest.mark.stack


@contextmanager
def chat_api(stack: LocalStack, vllm: VllmServer, otlp_endpoint: str, logs: Path) -> Iterator[str]:
    """A second chat API process on the stack's retriever and vLLM, exporting to ``otlp_endpoint``."""
    port = free_port()
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")},
        "PORT": str(port), "RAG_RETRIEVER_URL": stack.retriever_url, "RAG_VLLM_URL": f"{vllm.base_url}/v1",
        "RAG_MODEL": SERVED_MODEL, "RAG_CONTEXT_CHARS": "700",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRICS_EXPORTER": "prometheus", "OTEL_BSP_SCHEDULE_DELAY": "200",
        # A small queue so that a few dozen requests are enough to fill it.
        "OTEL_BSP_MAX_QUEUE_SIZE": "32", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8",
        "OTEL_BLRP_MAX_QUEUE_SIZE": "32", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "8",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5",
    }
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess("chat API", [sys.executable, "-m", "examples.reference_app.chat_api"],
                        ready_url=f"{url}/health", log_path=logs, cwd=ROOT, env=env, startup_timeout=60):
        yield url


def metric_total(metrics_text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("collector", ["down", "slow", "answering 500"])
def test_collector_faults_never_fail_a_request(stack: LocalStack, vllm: VllmServer, tmp_path: Path,
                                               collector: str) -> None:
    double = OtlpCollectorDouble(status=500) if collector == "answering 500" else OtlpCollectorDouble(delay=5.0)
    with double:
        endpoint = f"http://127.0.0.1:{free_port()}" if collector == "down" else double.endpoint
        with chat_api(stack, vllm, endpoint, tmp_path / "chat.log") as url, httpx.Client(base_url=url,
                                                                                          timeout=60) as client:
            statuses = [client.post("/chat", json={"question": "Is there parking?", "max_tokens": 4}).status_code
                        for _ in range(25)]
            assert statuses == [200] * 25
            # The next request is served too, with its dependency checks intact.
            assert client.get("/ready").status_code == 200
            metrics = client.get("/metrics").text
    if collector == "answering 500":
        # Every batch reaches the collector and fails: counted by the exporter, nothing piles up.
        assert metric_total(metrics, "otel_sdk_exporter_span_exported_total") > 0, metrics[:2000]
        assert double.requests > 0
    else:
        # The exporter waits (retries, or a slow answer); the bounded queue drops and counts the rest.
        assert metric_total(metrics, "otel_sdk_processor_span_processed_total", error_type="queue_full") > 0


def test_client_leaving_a_stream_ends_the_server_span_and_cancels_generation(
    stack: LocalStack, vllm: VllmServer, vllm_receiver: OtlpReceiver,
) -> None:
    def engine() -> tuple[float, float]:
        text = httpx.get(f"{vllm.base_url}/metrics", timeout=10).text
        return metric_total(text, "vllm:generation_tokens_total"), metric_total(text, "vllm:num_requests_running")

    body = {"question": "Tell me everything about the clinic.", "max_tokens": 1000}
    tokens_before, _ = engine()
    trace_id = ""
    with httpx.stream("POST", f"{stack.chat_url}/chat/stream", timeout=60, json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and "trace_id" in line:
                trace_id = json.loads(line[6:])["trace_id"]
            if line.startswith("event: delta"):
                break  # leave after the first chunk
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)

    # vLLM stops: nothing left running, and far fewer tokens than the same request read to its end.
    deadline = time.monotonic() + 20
    while engine()[1] > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    tokens_after_leaving, running = engine()
    assert running == 0
    full = httpx.post(f"{stack.chat_url}/chat", json=body, timeout=60)
    assert full.status_code == 200  # the app goes on serving
    full_tokens = full.json()["usage"]["completion_tokens"]
    assert tokens_after_leaving - tokens_before < full_tokens / 2, (tokens_after_leaving - tokens_before, full_tokens)

    names: set[str] = set()
    while time.monotonic() < deadline + 10 and not {"POST /chat/stream", "invoke_workflow chat_stream"} <= names:
        names = {s.name for s in load_spans(vllm_receiver.spans_path) if s.trace_id == trace_id}
        time.sleep(0.2)
    assert {"POST /chat/stream", "invoke_workflow chat_stream"} <= names, names


def test_bench_against_the_real_app(stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ragotel.cli import main

    plain, streamed = tmp_path / "plain.json", tmp_path / "stream.json"
    assert main(["bench", stack.chat_url, "-n", "6", "-c", "2", "--max-tokens", "8", "--label", "provider=local",
                 "--out", str(plain)]) == 0
    assert main(["bench", stack.chat_url, "--stream", "-n", "6", "-c", "2", "--max-tokens", "8",
                 "--out", str(streamed)]) == 0
    runs = [json.loads(path.read_text()) for path in (plain, streamed)]
    assert [run["statuses"] for run in runs] == [{"200": 6}, {"200": 6}]
    assert runs[0]["labels"]["model"] == SERVED_MODEL and runs[0]["labels"]["provider"] == "local"
    assert runs[1]["figures"]["ttfc_p50_s"] < runs[1]["figures"]["latency_p50_s"]
    assert all(run["figures"]["output_tokens_per_s"] > 0 for run in runs)
    capsys.readouterr()
    assert main(["bench", "compare", str(plain), str(streamed)]) == 0
    assert "×)" in capsys.readouterr().out
