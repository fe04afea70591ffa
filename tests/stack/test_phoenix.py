"""The reference app with ``RAGOTEL_OPENINFERENCE`` on, in a real Phoenix (PyPI ``arize-phoenix``, its own
virtualenv from scripts/install_phoenix.sh, run offline on 127.0.0.1): one chat request is one trace there, with
OpenInference's CHAIN, RETRIEVER, EMBEDDING and LLM span kinds, the retrieved documents, the model call's messages,
question and answer (content capture on) and its token counts, as Phoenix reads and sums them.

The retriever and chat API are a second reference stack of their own, exporting their traces to Phoenix's
OTLP/HTTP endpoint; vLLM is the session's (its own spans go to the session's receiver)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from examples.reference_app.processes import ManagedProcess, free_port
from examples.reference_app.run_local import LocalStack
from examples.reference_app.vllm_server import VllmServer
from tests.stack.conftest import ROOT, SERVED_MODEL, in_ci

pytestmark = pytest.mark.stack

PHOENIX = ROOT / "var" / "tools" / "phoenix-venv" / "bin" / "phoenix"
QUESTION = "Until what time is the clinic open on Tuesday?"
KINDS = {"CHAIN", "RETRIEVER", "EMBEDDING", "LLM"}


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Phoenix's base URL: UI, OTLP/HTTP ``/v1/traces``, REST and GraphQL, with a fresh database."""
    if not PHOENIX.exists():
        message = "Phoenix is not installed (scripts/install_phoenix.sh)"
        if in_ci():
            pytest.fail(f"{message}: CI requires it")
        pytest.skip(message)
    work = tmp_path_factory.mktemp("phoenix")
    port = free_port()
    env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(free_port()), "PHOENIX_WORKING_DIR": str(work)}
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess("Phoenix", [str(PHOENIX), "serve"], ready_url=f"{url}/healthz", log_path=work / "phoenix.log",
                        env=env, startup_timeout=120):
        yield url


@pytest.fixture(scope="module")
def openinference_stack(phoenix: str, vllm: VllmServer) -> Iterator[LocalStack]:
    env = {"RAGOTEL_OPENINFERENCE": "true", "RAGOTEL_CAPTURE_CONTENT": "true",
           "OTEL_LOGS_EXPORTER": "none"}  # Phoenix takes traces only
    with LocalStack(ROOT / "var" / "phoenix-stack", otlp_endpoint=phoenix, vllm_url=vllm.base_url,
                    served_model=SERVED_MODEL, prometheus=False, fixed_ports=False, log=lambda *a: None,
                    env=env) as running:
        yield running


def phoenix_trace(phoenix: str, trace_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The trace's spans as Phoenix's REST API returns them, once every kind arrived and the count is steady."""
    deadline, seen = time.monotonic() + timeout, -1
    while True:
        data = httpx.get(f"{phoenix}/v1/projects/default/spans", params={"limit": 1000}, timeout=10).json()["data"]
        spans = [s for s in data if s["context"]["trace_id"] == trace_id]
        if {s["span_kind"] for s in spans} >= KINDS and len(spans) == seen:
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"Phoenix has {[(s['name'], s['span_kind']) for s in spans]} for {trace_id}")
        seen = len(spans)
        time.sleep(1.0)


def one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, [s["name"] for s in spans]
    return found[0]


def test_one_chat_request_is_one_openinference_trace_in_phoenix(
    openinference_stack: LocalStack, phoenix: str
) -> None:
    reply = httpx.post(f"{openinference_stack.chat_url}/chat", json={"question": QUESTION, "max_tokens": 16},
                       timeout=60).json()
    spans = phoenix_trace(phoenix, reply["trace_id"])

    # one trace: a single root (the chat API's server span), every other span's parent in the trace
    ids = {s["context"]["span_id"] for s in spans}
    roots = [s["name"] for s in spans if s["parent_id"] is None]
    assert roots == ["POST /chat"], roots
    assert all(s["parent_id"] in ids for s in spans if s["parent_id"] is not None)
    kinds = {s["name"]: s["span_kind"] for s in spans}
    assert kinds["invoke_workflow chat"] == "CHAIN" and kinds["prompt rag-v1"] == "CHAIN"
    assert kinds["retrieval retriever"] == kinds["retrieval search"] == "RETRIEVER"
    assert kinds["embeddings all-MiniLM-L6-v2"] == "EMBEDDING"

    # the documents the answer cites, with their text and scores
    retrieval = one(spans, "retrieval retriever")["attributes"]
    documents = [retrieval[f"retrieval.documents.{i}.document.id"] for i in range(4)]
    assert {c["doc_id"] for c in reply["citations"]} <= {d.split("#")[0] for d in documents}
    assert all(retrieval[f"retrieval.documents.{i}.document.content"].strip() for i in range(4))
    scores = [retrieval[f"retrieval.documents.{i}.document.score"] for i in range(4)]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert one(spans, "embeddings all-MiniLM-L6-v2")["attributes"]["embedding.model_name"] == "all-MiniLM-L6-v2"

    # the model call: its messages, the question and the answer as text, its tokens
    (llm,) = [s for s in spans if s["span_kind"] == "LLM"]
    attrs = llm["attributes"]
    assert attrs["llm.model_name"] == SERVED_MODEL
    assert attrs["llm.input_messages.0.message.role"] == "system"
    assert attrs["llm.input_messages.1.message.role"] == "user"
    assert QUESTION in attrs["llm.input_messages.1.message.content"]
    assert attrs["llm.output_messages.0.message.role"] == "assistant"
    assert attrs["llm.output_messages.0.message.content"] == reply["answer"]
    assert (attrs["input.value"], attrs["input.mime_type"]) == (QUESTION, "text/plain")
    assert (attrs["output.value"], attrs["output.mime_type"]) == (reply["answer"], "text/plain")
    usage = reply["usage"]
    assert (attrs["llm.token_count.prompt"], attrs["llm.token_count.completion"]) == (
        usage["prompt_tokens"], usage["completion_tokens"])
    assert attrs["llm.token_count.total"] == usage["prompt_tokens"] + usage["completion_tokens"]

    # Phoenix's own sums: the trace counts the call's tokens once (the pipeline's totals are not added again)
    query = ('query ($id: ID!) { projects { edges { node { name trace(traceId: $id) { numSpans '
             'rootSpan { name cumulativeTokenCountPrompt cumulativeTokenCountCompletion } } } } } }')
    answer = httpx.post(f"{phoenix}/graphql", json={"query": query, "variables": {"id": reply["trace_id"]}},
                        timeout=10).json()
    (project,) = [e["node"] for e in answer["data"]["projects"]["edges"] if e["node"]["name"] == "default"]
    assert project["trace"]["numSpans"] == len(spans)
    root = project["trace"]["rootSpan"]
    assert (root["name"], root["cumulativeTokenCountPrompt"], root["cumulativeTokenCountCompletion"]) == (
        "POST /chat", usage["prompt_tokens"], usage["completion_tokens"])
