"""Zero-code: ``opentelemetry-instrument`` (the real CLI from opentelemetry-instrumentation) runs an app that
never imports ragotel — a FastAPI service served by uvicorn on loopback whose handler calls the recorded
OpenAI-compatible server through the ``openai`` SDK — and ragotel's entry points give it the GenAI span,
the server span and the ``http.server.*`` metrics. Spans go over OTLP into ragotel's own receiver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragotel.cli.receiver import OtlpReceiver
from tests.recorded_openai_server import RecordedOpenAIServer

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("opentelemetry-instrument")

APP = textwrap.dedent('''
    """A service with no telemetry code at all."""
    import os
    import sys
    import threading
    import time

    import httpx
    import openai
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    llm = openai.AsyncOpenAI(base_url=os.environ["LLM_URL"], api_key="unused")

    @app.post("/ask")
    async def ask() -> dict:
        answer = await llm.chat.completions.create(
            model="tiny-llama", messages=[{"role": "user", "content": "When does the clinic open?"}])
        return {"answer": answer.choices[0].message.content}

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=int(os.environ["APP_PORT"]),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{os.environ['APP_PORT']}"
    print("ANSWER", httpx.post(f"{base}/ask", timeout=10).json()["answer"])
    httpx.get(f"{base}/health", timeout=10)
    scrape = httpx.get(f"http://127.0.0.1:{os.environ['OTEL_EXPORTER_PROMETHEUS_PORT']}/metrics", timeout=10)
    with open(os.environ["SCRAPE_FILE"], "w") as out:
        out.write(scrape.text)
    server.should_exit = True
    thread.join(10)
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(port=0, spans_path=tmp_path / "telemetry" / "spans.jsonl") as rx:
        yield rx


def run_instrumented(tmp_path: Path, receiver: OtlpReceiver, llm: RecordedOpenAIServer,
                     **extra_env: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], str]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    scrape_file = tmp_path / "scrape.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_"))}
    env.update({
        "PYTHONPATH": str(REPO_ROOT),
        "LLM_URL": llm.base_url,
        "APP_PORT": str(free_port()),
        "SCRAPE_FILE": str(scrape_file),
        "OTEL_SERVICE_NAME": "zero-code-app",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port()),
        "OTEL_LOGS_EXPORTER": "none",
        # The openai SDK instrumentations the test extra installs (both named "openai") add spans of their own:
        # tests/test_official_instrumentations.py checks ragotel beside them.
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
        **extra_env,
    })
    proc = subprocess.run([str(CLI), sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=90)
    lines = receiver.spans_path.read_text().splitlines() if receiver.spans_path.exists() else []
    return proc, [json.loads(line) for line in lines], scrape_file.read_text() if scrape_file.exists() else ""


def test_opentelemetry_instrument_gives_genai_and_server_spans_and_metrics(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    with RecordedOpenAIServer() as llm:
        proc, spans, scrape = run_instrumented(tmp_path, receiver, llm)
    assert proc.returncode == 0, proc.stderr
    assert "ANSWER The clinic opens at eight." in proc.stdout
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    assert len(by_name.get("POST /ask", [])) == 1, sorted(by_name)  # one server span: no double instrumentation
    (server,) = by_name["POST /ask"]
    (chat,) = by_name["chat tiny-llama"]  # the openai SDK's call (httpx2), as a GenAI span
    assert chat["parent_span_id"] == server["span_id"]
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 41
    assert chat["attributes"]["gen_ai.provider.name"] == "vllm"
    assert "GET /health" not in by_name  # excluded by default
    assert "fastapi.endpoint" not in by_name  # FastAPI's own telemetry, configured by ragotel: no per-dependency spans
    assert "traceparent" in llm.requests[0]["headers"]
    # ragotel's server and GenAI metrics on the Prometheus endpoint configure() opened from the environment
    assert 'http_server_request_duration_seconds_count{' in scrape
    assert 'http_route="/ask"' in scrape
    assert "gen_ai_client_token_usage" in scrape
    assert "http_server_response_body_size_bytes_count{" in scrape


def test_entry_points_can_be_turned_off_by_name(tmp_path: Path, receiver: OtlpReceiver) -> None:
    with RecordedOpenAIServer() as llm:
        proc, spans, _ = run_instrumented(
            tmp_path, receiver, llm, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="ragotel_httpx,ragotel_fastapi,openai")
    assert proc.returncode == 0, proc.stderr
    names = {s["name"] for s in spans}
    assert "chat tiny-llama" not in names
    # FastAPI's own telemetry is left as it comes: per-dependency spans and /health traced
    assert {"POST /ask", "fastapi.endpoint", "GET /health"} <= names


@pytest.mark.parametrize(("disabled", "http_spans"), [("openai", True), ("httpx,openai", False)],
                         ids=["with-opentelemetry-httpx", "opentelemetry-httpx-disabled"])
def test_every_request_has_one_client_span(tmp_path: Path, receiver: OtlpReceiver, disabled: str,
                                           http_spans: bool) -> None:
    """opentelemetry-instrumentation-httpx (installed with ragotel[httpx]) spans the app's plain requests; the
    model call stays one GenAI span either way, and turning it off by name is honoured."""
    with RecordedOpenAIServer() as llm:
        proc, spans, _ = run_instrumented(tmp_path, receiver, llm, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
    assert proc.returncode == 0, proc.stderr
    clients = [s for s in spans if s["kind"] in ("CLIENT", 3, "SPAN_KIND_CLIENT")]
    names = sorted(s["name"] for s in clients)
    # the app's own requests: POST /ask, GET /health, GET /metrics
    assert names == (["GET", "GET", "POST", "chat tiny-llama"] if http_spans else ["chat tiny-llama"])
    (chat,) = [s for s in clients if s["name"] == "chat tiny-llama"]
    assert not [s for s in spans if s.get("parent_span_id") == chat["span_id"]]  # no HTTP span under it
