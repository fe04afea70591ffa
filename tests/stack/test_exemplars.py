"""Exemplars end to end on real parts: the chat API's /metrics (OpenMetrics) → a real Prometheus with
exemplar storage → ``/api/v1/query_exemplars`` gives the trace id of a chat request, and ``ragotel trace``
draws that trace from what the services exported."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from examples.reference_app.run_local import LocalStack
from ragotel import semconv as sc
from ragotel.cli import main as ragotel_main
from ragotel.cli.receiver import OtlpReceiver
from tests.stack.test_reference_app import trace_spans

pytestmark = pytest.mark.stack

WORKFLOW = sc.prometheus_name(sc.GEN_AI_WORKFLOW_DURATION, sc.UNIT_SECONDS)
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
