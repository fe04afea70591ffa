"""Exemplars end to end on real parts: the chat API's /metrics (OpenMetrics) → a real Prometheus with
exemplar storage → ``/api/v1/query_exemplars`` gives the trace id of a chat request, and ``ragotel trace``
draws that trace from what the services exported. And exemplars that stay: a text scrape and a first
scraper leave them for the next one (two Prometheus servers, an HA pair, both get them)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.reference_app.processes import ManagedProcess, free_port
from examples.reference_app.run_local import LocalStack
from ragotel import semconv as sc
from ragotel.cli import main as ragotel_main
from ragotel.cli.receiver import OtlpReceiver
from tests.stack.conftest import ROOT, in_ci
from tests.stack.test_reference_app import trace_spans

pytestmark = pytest.mark.stack

WORKFLOW = sc.prometheus_name(sc.RAG_PIPELINE_DURATION, sc.UNIT_SECONDS)
STEP = sc.prometheus_name(sc.RAG_STEP_DURATION, sc.UNIT_SECONDS)


def exemplars(prometheus_url: str, query: str, since: float) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus_url}/api/v1/query_exemplars",
                         params={"query": query, "start": since - 60, "end": time.time() + 60}, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", body
    return [e for series in body["data"] for e in series["exemplars"]]


def test_a_latency_exemplar_leads_to_its_trace(
    stack: LocalStack, vllm_receiver: OtlpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.prometheus_url, "Prometheus is not installed (scripts/install_tools.sh)"
    started = time.time()
    reply = httpx.post(f"{stack.chat_url}/chat", json={"question": "Is there parking at the clinic?",
                                                       "max_tokens": 16}, timeout=120).json()
    trace_id = reply["trace_id"]
    spans = trace_spans(vllm_receiver, trace_id)  # the trace reached the receiver
    pipeline = next(s for s in spans.values() if s.name == "invoke_workflow chat")
    retrieval = next(s for s in spans.values() if s.name == "retrieval retriever")

    # Prometheus scrapes every 5 s; the bucket this request landed in carries its exemplar once scraped.
    found: dict[str, set[str]] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for query, name in ((f'{WORKFLOW}_bucket{{job="rag-chat-api"}}', "pipeline"),
                            (f'{STEP}_bucket{{job="rag-chat-api",rag_step_kind="retrieval"}}', "retrieval")):
            for exemplar in exemplars(stack.prometheus_url, query, started):
                if exemplar["labels"].get("trace_id") == trace_id:
                    found.setdefault(name, set()).add(exemplar["labels"]["span_id"])
        if len(found) == 2:
            break
        time.sleep(2)
    # Each exemplar names the span that was timed: the pipeline's own, the retrieval step's own.
    assert found.get("pipeline") == {pipeline.span_id}, found
    assert found.get("retrieval") == {retrieval.span_id}, found

    assert ragotel_main(["trace", trace_id, "--dir", str(vllm_receiver.spans_path.parent)]) == 0
    drawn = capsys.readouterr().out
    assert trace_id in drawn and "invoke_workflow chat" in drawn and "llm_request" in drawn


# One request's worth of telemetry in a process of its own, served on /metrics the way configure() does it.
APP = """
import json, os, sys, time, ragotel
ragotel.configure(service_name="exemplar-app")
with ragotel.pipeline("chat"), ragotel.retrieval("search", data_source="faiss") as step:
    time.sleep(0.01)
ids = {"trace_id": format(step.span.get_span_context().trace_id, "032x"),
       "span_id": format(step.span.get_span_context().span_id, "016x")}
with open(sys.argv[1] + ".tmp", "w") as out:
    json.dump(ids, out)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


def test_exemplars_stay_for_every_scraper(tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        if in_ci():
            pytest.fail("prometheus is not installed (scripts/install_tools.sh): CI requires it")
        pytest.skip("prometheus is not installed (scripts/install_tools.sh)")
    app_port, ids_path = free_port(), tmp_path / "ids.json"
    metrics_url = f"http://127.0.0.1:{app_port}/metrics"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_"))},
           "PYTHONPATH": str(ROOT), "OTEL_METRICS_EXPORTER": "prometheus",
           "OTEL_EXPORTER_PROMETHEUS_PORT": str(app_port), "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
           "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    with contextlib.ExitStack() as running:
        running.enter_context(ManagedProcess(
            "app", [sys.executable, "-c", textwrap.dedent(APP), str(ids_path)], ready_url=metrics_url,
            log_path=tmp_path / "app.log", env=env, cwd=ROOT, startup_timeout=60))
        deadline = time.monotonic() + 30
        while not ids_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        ids = json.loads(ids_path.read_text())

        # A person's curl first: the text format has no exemplars, and must not take them away.
        assert " # {" not in httpx.get(metrics_url, headers={"Accept": "text/plain"}, timeout=10).text
        openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
        for _ in range(2):  # two OpenMetrics scrapes in a row: both carry the step's exemplar
            assert f'span_id="{ids["span_id"]}"' in httpx.get(metrics_url, headers=openmetrics, timeout=10).text

        # Then two Prometheus servers with exemplar storage scrape the same target.
        urls = []
        for name in ("prometheus-a", "prometheus-b"):
            directory = tmp_path / name
            directory.mkdir()
            (directory / "prometheus.yml").write_text(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: exemplar-app\n"
                f"    static_configs:\n      - targets: ['127.0.0.1:{app_port}']\n")
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            running.enter_context(ManagedProcess(
                name, [binary, f"--config.file={directory / 'prometheus.yml'}",
                       f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                       "--enable-feature=exemplar-storage"],
                ready_url=f"{urls[-1]}/-/ready", log_path=tmp_path / f"{name}.log", startup_timeout=60))

        query = f'{STEP}_bucket{{job="exemplar-app",rag_step_kind="retrieval"}}'
        seen: dict[str, set[str]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen) < 2:
            for url in urls:
                for exemplar in exemplars(url, query, time.time()):
                    if exemplar["labels"].get("trace_id") == ids["trace_id"]:
                        seen.setdefault(url, set()).add(exemplar["labels"]["span_id"])
            time.sleep(1)
        assert seen == {url: {ids["span_id"]} for url in urls}, seen
