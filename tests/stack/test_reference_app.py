"""The reference app on its real parts: vLLM, the FAISS retriever, the chat API, Prometheus-format
/metrics, and every span landing in one trace."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.reference_app.chat_api import create_app as create_chat_app
from examples.reference_app.config import APP_DIR, ChatSettings
from examples.reference_app.processes import ManagedProcess, free_port
from examples.reference_app.run_local import LocalStack, wait_for_trace
from examples.reference_app.vllm_server import VllmServer
from ragotel import semconv as sc
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import SpanRecord, load_spans
from tests.conftest import Recorded
from tests.stack.conftest import ROOT, SERVED_MODEL

pytestmark = pytest.mark.stack


def trace_spans(receiver: OtlpReceiver, trace_id: str) -> dict[str, SpanRecord]:
    assert wait_for_trace(receiver.spans_path, trace_id, {"rag-chat-api", "rag-retriever", "vllm"}), trace_id
    spans = [s for s in load_spans(receiver.spans_path) if s.trace_id == trace_id]
    return {f"{s.service_name}:{s.name}:{s.attributes.get(sc.RAG_STEP_NAME, '')}": s for s in spans}


def child(spans: dict[str, SpanRecord], parent: SpanRecord, key: str) -> SpanRecord:
    span = spans[key]
    assert span.parent_span_id == parent.span_id, f"{key} is not a child of {parent.name}"
    return span


def assert_chat_tree(spans: dict[str, SpanRecord], pipeline: str) -> SpanRecord:
    """The span tree of seed 002, with ragotel's names; returns the generation client span."""
    server = spans[f"rag-chat-api:POST /chat{'/stream' if pipeline == 'chat_stream' else ''}:"]
    pipe = child(spans, server, f"rag-chat-api:invoke_workflow {pipeline}:{pipeline}")
    retrieve = child(spans, pipe, "rag-chat-api:retrieval retriever:retrieve")
    search_server = child(spans, retrieve, "rag-retriever:POST /search:")
    search = child(spans, search_server, "rag-retriever:retrieval search:search")
    encode = child(spans, search, "rag-retriever:embeddings all-MiniLM-L6-v2:dense_encode")
    faiss = child(spans, search, "rag-retriever:retrieval faiss:faiss_search")
    prompt = child(spans, pipe, "rag-chat-api:prompt rag-v1:build_prompt")
    generate = child(spans, pipe, f"rag-chat-api:chat {SERVED_MODEL}:chat")  # rag.step.name: the operation
    child(spans, generate, "vllm:llm_request:")

    r = retrieve.attributes  # seed 002's rag.* attributes, in ragotel's names
    assert r[sc.GEN_AI_REQUEST_TOP_K] == 4
    assert r[sc.RAG_RETRIEVAL_MIN_SCORE] == pytest.approx(0.2)
    assert r[sc.RAG_RETRIEVAL_RESULTS_RETURNED] >= r[sc.RAG_RETRIEVAL_RESULTS_KEPT] >= 1
    assert r[sc.RAG_RETRIEVAL_SCORE_MIN] <= r[sc.RAG_RETRIEVAL_SCORE_AVG] <= r[sc.RAG_RETRIEVAL_SCORE_MAX]
    s = search.attributes  # seed 002's faiss.* attributes
    assert s[sc.RAG_INDEX_SIZE] > 300 and s[sc.GEN_AI_DATA_SOURCE_ID] == "dense"
    assert s[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 4 and s[sc.RAG_RETRIEVAL_SCORE_MAX] > 0.3
    assert encode.attributes[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 384
    assert faiss.attributes[sc.GEN_AI_DATA_SOURCE_ID] == "faiss"
    p = prompt.attributes
    assert p[sc.RAG_PROMPT_CHUNKS] == r[sc.RAG_RETRIEVAL_RESULTS_KEPT] and p[sc.RAG_PROMPT_CONTEXT_CHARS] > 0
    g = generate.attributes  # seed 002's llm.* attributes
    assert g[sc.GEN_AI_REQUEST_MODEL] == SERVED_MODEL and g[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert g[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0 and g[sc.RAG_GENERATION_RESPONSE_CHARS] > 0
    # nothing the user typed is on any span (content capture is off)
    assert not any("Tuesday" in json.dumps(span.attributes) for span in spans.values())
    return generate


def test_chat_yields_one_trace_across_the_three_services(stack: LocalStack, vllm_receiver: OtlpReceiver) -> None:
    reply = httpx.post(f"{stack.chat_url}/chat", json={"question": "Until what time is the clinic open on Tuesday?",
                                                       "max_tokens": 16}, timeout=60).json()
    assert reply["citations"] and reply["usage"]["completion_tokens"] > 0
    assert_chat_tree(trace_spans(vllm_receiver, reply["trace_id"]), "chat")


def test_chat_stream_same_tree_ttfc_and_server_span_ends_at_last_byte(
    stack: LocalStack, vllm_receiver: OtlpReceiver
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    body = {"question": "How much does it cost to charge an electric car?", "max_tokens": 24}
    with httpx.stream("POST", f"{stack.chat_url}/chat/stream", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
        last_byte = time.time_ns()
    kinds = [e for e, _ in events]
    assert kinds[0] == "meta" and kinds[-1] == "done" and "delta" in kinds
    spans = trace_spans(vllm_receiver, events[0][1]["trace_id"])
    generate = assert_chat_tree(spans, "chat_stream")
    assert generate.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    server = spans["rag-chat-api:POST /chat/stream:"]
    assert server.end_ns >= generate.end_ns  # the server span covers the whole stream
    assert server.end_ns <= last_byte + 50_000_000


def scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=10).text


def has_series(exposition: str, name: str, **labels: str) -> bool:
    """A sample of ``name`` with those labels and a non-zero value."""
    return any(
        line.startswith((name + "{", name + " "))
        and all(f'{k}="{v}"' in line for k, v in labels.items())
        and not line.rstrip().endswith(" 0.0")
        for line in exposition.splitlines()
    )


def test_seed_000_metric_families_are_served(stack: LocalStack) -> None:
    httpx.post(f"{stack.chat_url}/chat", json={"question": "Which receptionist speaks Polish?", "max_tokens": 8},
               timeout=60)
    httpx.post(f"{stack.chat_url}/chat", json={"question": ""}, timeout=60)  # one error
    chat = scrape(stack.chat_url)
    # requests, errors by stage, end-to-end, retrieval and vLLM latency, prompt/completion tokens
    assert has_series(chat, "http_server_request_duration_seconds_count", http_route="/chat")
    assert has_series(chat, "rag_step_errors_total", rag_step_kind="request", error_type="validation")
    assert has_series(chat, "rag_pipeline_duration_seconds_count", gen_ai_workflow_name="chat")
    assert has_series(chat, "rag_step_duration_seconds_count", rag_step_kind="retrieval", rag_step_name="retrieve")
    assert has_series(chat, "gen_ai_client_operation_duration_seconds_count", gen_ai_operation_name="chat")
    assert has_series(chat, "gen_ai_client_token_usage_sum", gen_ai_token_type="input")
    assert has_series(chat, "gen_ai_client_token_usage_sum", gen_ai_token_type="output")
    retriever = scrape(stack.retriever_url)
    # search latency, dense encode and FAISS sub-steps, load times, index and meta item counts
    for step in ("search", "dense_encode", "faiss_search"):
        assert has_series(retriever, "rag_step_duration_seconds_count", rag_step_name=step)
    for part in ("model", "index", "meta"):
        assert has_series(retriever, "rag_index_load_duration_seconds", rag_index_part=part)
    assert has_series(retriever, "rag_index_items", rag_index_part="index")
    assert has_series(retriever, "rag_index_items", rag_index_part="meta")
    assert has_series(retriever, "http_server_request_duration_seconds_count", http_route="/search")


def test_sparse_backend_sub_steps_and_load_times(stack: LocalStack, tmp_path: Path) -> None:
    port = free_port()
    env = {"PORT": str(port), "RAG_INDEX_DIR": str(stack.var_dir / "index"), "RAG_BACKEND": "sparse",
           "OTEL_METRICS_EXPORTER": "prometheus", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    with ManagedProcess("sparse retriever", [sys.executable, "-m", "examples.reference_app.retriever"],
                        ready_url=f"http://127.0.0.1:{port}/ready", log_path=tmp_path / "sparse.log", cwd=ROOT,
                        env={**os.environ, **env}, startup_timeout=60):
        hits = httpx.post(f"http://127.0.0.1:{port}/search", json={"query": "electric car charging", "k": 3}).json()
        assert hits["backend"] == "sparse"
        # the car park FAQ and the newsletter announcing the chargers both answer it
        assert {"faq-parking", "info-newsletter-spring-2026"} & {hit["doc_id"] for hit in hits["hits"][:2]}
        exposition = scrape(f"http://127.0.0.1:{port}")
    for step in ("sparse_vectorize", "sparse_dot"):
        assert has_series(exposition, "rag_step_duration_seconds_count", rag_step_name=step)
    for part in ("vectorizer", "matrix"):
        assert has_series(exposition, "rag_index_load_duration_seconds", rag_index_part=part)


BAD_INPUT = [
    ({"question": ""}, "question"),
    ({"question": "   "}, "blank"),
    ({"question": "x" * 2001}, "question"),
    ({"question": "hi", "k": 0}, "k"),
    ({"question": "hi", "k": 21}, "k"),
    ({"question": "hi", "max_tokens": 0}, "max_tokens"),
    ({"question": "hi", "max_tokens": 5000}, "max_tokens"),
    ({"question": "hi", "temperature": 2.5}, "temperature"),
    ({"question": "hi", "colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("body", "named"), BAD_INPUT, ids=[b[1] + str(i) for i, b in enumerate(BAD_INPUT)])
def test_bad_input_is_rejected_with_a_message(stack: LocalStack, body: dict[str, Any], named: str) -> None:
    response = httpx.post(f"{stack.chat_url}/chat", json=body, timeout=30)
    assert response.status_code == 422
    assert named in response.json()["detail"] and response.json()["stage"] == "request"


def test_invalid_json_is_a_422_with_a_message_and_a_log_line(stack: LocalStack, vllm_receiver: OtlpReceiver) -> None:
    response = httpx.post(f"{stack.chat_url}/chat", content=b"{not json", timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["detail"]
    trace_id = response.json()["trace_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in vllm_receiver.logs_path.read_text().splitlines() if x.strip()]
        if any(line.get("trace_id") == trace_id and "rejected" in str(line.get("body")) for line in lines):
            return
        time.sleep(0.3)
    raise AssertionError("no log line carrying the trace id of the rejected request")


@pytest.fixture
def chat_app_with(recorded: Recorded) -> Callable[..., httpx.AsyncClient]:
    """The chat API in this process (its spans and metrics go to the test's in-memory SDK)."""

    def build(**overrides: Any) -> httpx.AsyncClient:
        settings = ChatSettings(**overrides)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_chat_app(settings)), base_url="http://chat")

    return build


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("case", "status", "stage", "error_kind", "etype"),
    # The app re-raises what failed as its StageError: error.type names the failure's kind where it has one.
    [
        ("retriever down", 503, "retrieval", "retrieval", "connection"),
        ("retriever not ready", 503, "retrieval", "retrieval", "examples.reference_app.errors.StageError"),
        ("vllm down", 502, "generation", "generation", "connection"),
        ("vllm timeout", 504, "generation", "generation", "timeout"),
    ],
)
async def test_dependency_failures_answer_with_the_stage(
    stack: LocalStack, vllm: VllmServer, recorded: Recorded, chat_app_with: Callable[..., httpx.AsyncClient],
    tmp_path: Path, case: str, status: int, stage: str, error_kind: str, etype: str,
) -> None:
    overrides: dict[str, Any] = {"retriever_url": stack.retriever_url, "vllm_url": f"{vllm.base_url}/v1",
                                 "model": SERVED_MODEL}
    unready = None
    if case == "retriever down":
        overrides["retriever_url"] = dead_url()
    elif case == "vllm down":
        overrides["vllm_url"] = dead_url() + "/v1"
    elif case == "vllm timeout":
        overrides["vllm_timeout"] = 0.001
    elif case == "retriever not ready":
        port = free_port()
        unready = ManagedProcess(
            "retriever without index", [sys.executable, "-m", "examples.reference_app.retriever"],
            ready_url=f"http://127.0.0.1:{port}/health", log_path=tmp_path / "unready.log", cwd=ROOT,
            env={**os.environ, "PORT": str(port), "RAG_INDEX_DIR": str(tmp_path / "missing"),
                 "OTEL_SDK_DISABLED": "true"}, startup_timeout=60,
        )
        unready.start()
        overrides["retriever_url"] = f"http://127.0.0.1:{port}"
    try:
        async with chat_app_with(**overrides) as client:
            failed = await client.post("/chat", json={"question": "Is there parking?", "max_tokens": 8})
            assert failed.status_code == status, failed.text
            assert failed.json()["stage"] == stage and failed.json()["detail"]
            if case == "retriever not ready":
                assert "not ready" in failed.json()["detail"]  # still loading, or found no index
    finally:
        if unready is not None:
            unready.stop()
    pipeline = recorded.span("invoke_workflow chat")
    assert pipeline.attributes[sc.ERROR_TYPE] == etype
    kinds = {p.attributes[sc.RAG_STEP_KIND] for p in recorded.points(sc.RAG_STEP_ERRORS)}
    assert error_kind in kinds, kinds


def test_app_still_serves_after_failures(stack: LocalStack) -> None:
    response = httpx.post(f"{stack.chat_url}/chat", json={"question": "Do you offer telehealth?", "max_tokens": 8},
                          timeout=60)
    assert response.status_code == 200


def test_reload_under_concurrent_searches_loses_no_request(stack: LocalStack) -> None:
    results: list[int] = []
    stop = threading.Event()

    def search_loop() -> None:
        with httpx.Client(base_url=stack.retriever_url, timeout=30) as client:
            while not stop.is_set():
                r = client.post("/search", json={"query": "vaccination clinic", "k": 3})
                results.append(r.status_code if r.status_code != 200 or r.json()["hits"] else -1)

    threads = [threading.Thread(target=search_loop) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            assert httpx.post(f"{stack.retriever_url}/reload", timeout=120,
                              headers={"Authorization": f"Bearer {stack.reload_token}"}).json()["reloaded"] is True
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(results) > 10
    assert set(results) == {200}


async def test_dryrun_is_off_by_default_and_shows_what_would_be_sent_when_on(
    stack: LocalStack, vllm: VllmServer, chat_app_with: Callable[..., httpx.AsyncClient],
) -> None:
    off = httpx.post(f"{stack.chat_url}/dryrun", json={"question": "Where is the emergency department?"}, timeout=30)
    assert off.status_code == 403 and "RAG_DEBUG_ENDPOINTS" in off.json()["detail"]
    async with chat_app_with(retriever_url=stack.retriever_url, vllm_url=f"{vllm.base_url}/v1", model=SERVED_MODEL,
                             debug_endpoints=True) as client:
        reply = (await client.post("/dryrun", json={"question": "Where is the emergency department?"})).json()
        messages = reply["would_send"]["messages"]
        assert messages[0]["role"] == "system" and "Context:" in messages[0]["content"]
        assert reply["citations"]
        assert (await client.post("/dryrun", json={"question": " "})).status_code == 422


LONG_QUESTION = ("Which documents do I need to bring and how early should I arrive for my appointment? " * 20)[:1500]


def test_questions_are_fitted_to_the_models_context_window(stack: LocalStack) -> None:
    # 1500 characters of question plus context used to overflow the tiny model's 1024 tokens (a 502):
    # the context is trimmed and the answer gets the room that is left.
    with httpx.Client(base_url=stack.chat_url, timeout=120) as chat:
        answer = chat.post("/chat", json={"question": LONG_QUESTION, "max_tokens": 64})
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["prompt_tokens"] + answer.json()["usage"]["completion_tokens"] <= 1024
        streamed = chat.post("/chat/stream", json={"question": LONG_QUESTION, "max_tokens": 64})
        assert streamed.status_code == 200 and "event: done" in streamed.text, streamed.text[-500:]
        refused = chat.post("/chat", json={"question": ("qz7x " * 400)[:2000], "max_tokens": 16})
        assert refused.status_code == 422 and "context window of 1024 tokens" in refused.json()["detail"]


async def test_vllms_own_error_text_reaches_the_502(
    stack: LocalStack, vllm: VllmServer, chat_app_with: Callable[..., httpx.AsyncClient],
) -> None:
    # Told a wrong (larger) window, the chat API sends what vLLM must refuse: the caller reads vLLM's reason.
    async with chat_app_with(retriever_url=stack.retriever_url, vllm_url=f"{vllm.base_url}/v1", model=SERVED_MODEL,
                             max_model_len=8192) as client:
        failed = await client.post("/chat", json={"question": ("qz7x " * 400)[:2000], "max_tokens": 16})
    assert failed.status_code == 502 and failed.json()["stage"] == "generation"
    assert failed.json()["detail"].startswith("vLLM answered 400: ") and len(failed.json()["detail"]) > 30, failed.text
    assert "1024" in failed.json()["detail"]  # vLLM names its limit


def test_dense_retrieval_finds_the_documented_source(stack: LocalStack) -> None:
    rows = re.findall(r"^\| \d+ \| (.+?) \| .+? \| `(.+?)` \|$", (APP_DIR / "QUESTIONS.md").read_text(), re.M)
    assert len(rows) >= 20
    found = 0
    with httpx.Client(base_url=stack.retriever_url, timeout=30) as client:
        for question, source in rows:
            hits = client.post("/search", json={"query": question, "k": 4}).json()["hits"]
            found += any(hit["source"] == source for hit in hits)
    assert found / len(rows) >= 0.8, f"only {found}/{len(rows)} questions retrieved their source"
