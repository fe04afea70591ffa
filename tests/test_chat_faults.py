"""Faults in the chat API's dependencies, injected with test doubles (a vLLM that replays recorded
answers and breaks on request, a retriever that answers late). Each case: the caller gets a clear
error naming the stage, the stage's span is an error, rag.step.errors moved, no span is left open,
and the next request is served."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opentelemetry.trace import StatusCode

from examples.reference_app.chat_api import create_app
from examples.reference_app.config import ChatSettings
from ragotel import semconv as sc
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.retriever_double import RetrieverDouble

QUESTION = {"question": "Is there parking?", "max_tokens": 8}
STAGE_ERROR = "examples.reference_app.errors.StageError"  # however the module was started


@pytest.fixture
def vllm_double() -> Any:
    with RecordedOpenAIServer() as server:
        yield server


@pytest.fixture
async def client_for(vllm_double: RecordedOpenAIServer) -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def build(retriever: RetrieverDouble, **overrides: Any) -> httpx.AsyncClient:
        settings = ChatSettings(retriever_url=retriever.url, vllm_url=vllm_double.base_url, **overrides)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://chat")
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def assert_stage_failed(recorded: Recorded, stage: str) -> None:
    failed = [s for s in recorded.spans() if s.attributes and s.attributes.get(sc.RAG_STEP_KIND) == stage
              and s.status.status_code is StatusCode.ERROR]
    assert failed, [(s.name, s.status.status_code) for s in recorded.spans()]
    assert stage in {p.attributes[sc.RAG_STEP_KIND] for p in recorded.points(sc.RAG_STEP_ERRORS)}
    assert recorded.open_spans() == []


@pytest.mark.parametrize(
    ("model", "overrides", "status"),
    [("fault-malformed", {}, 502), ("fault-slow", {"vllm_timeout": 0.3}, 504), ("fault-500", {}, 502)],
)
async def test_vllm_faults_on_chat(recorded: Recorded, client_for: Any, model: str, overrides: dict[str, Any],
                                   status: int) -> None:
    with RetrieverDouble() as retriever:
        client = client_for(retriever, model=model, **overrides)
        failed = await client.post("/chat", json=QUESTION)
        assert failed.status_code == status
        assert failed.json()["stage"] == "generation" and failed.json()["detail"]
        assert_stage_failed(recorded, "generation")
        healthy = client_for(retriever)
        assert (await healthy.post("/chat", json=QUESTION)).status_code == 200


@pytest.mark.parametrize(
    ("model", "overrides", "status", "etype"),
    # The app re-raises each as its own StageError from what failed: error.type is the kind of that failure
    # where it has a well-known one (a dropped connection, a timeout), else the app's exception.
    [("fault-malformed", {}, 502, STAGE_ERROR), ("fault-drop", {}, 502, "connection"),
     ("fault-slow", {"vllm_timeout": 0.3}, 504, "timeout")],
)
async def test_vllm_faults_mid_stream_end_with_an_error_event(
    recorded: Recorded, client_for: Any, model: str, overrides: dict[str, Any], status: int, etype: str,
) -> None:
    with RetrieverDouble() as retriever:
        client = client_for(retriever, model=model, **overrides)
        response = await client.post("/chat/stream", json=QUESTION)
        assert response.status_code == 200  # the stream had started: the error is its last event
        events = sse_events(response.text)
        assert events[0][0] == "meta"
        kind, data = events[-1]
        assert kind == "error" and data["stage"] == "generation" and data["status"] == status and data["detail"]
        assert_stage_failed(recorded, "generation")
        # The request failed although its status was 200: server and pipeline spans say so, with the stage,
        # and the HTTP duration metric carries error.type, which the error-rate alerts count.
        for name in ("POST /chat/stream", "invoke_workflow chat_stream"):
            span = recorded.span(name)
            assert span.status.status_code is StatusCode.ERROR, name
            assert span.attributes[sc.ERROR_TYPE] == etype, name
            assert "generation" in (span.status.description or ""), name
            assert any(e.name == "rag.error" and e.attributes.get(sc.RAG_STEP_KIND) == "generation"
                       for e in span.events), name
        (point,) = [p for p in recorded.points(sc.HTTP_SERVER_REQUEST_DURATION)
                    if p.attributes.get(sc.HTTP_ROUTE) == "/chat/stream"]
        assert point.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 200
        assert point.attributes[sc.ERROR_TYPE] == etype
        assert (await client_for(retriever).post("/chat/stream", json=QUESTION)).text.rstrip().split(
            "\n\n")[-1].startswith("event: done")


async def test_slow_retriever_is_a_504_naming_retrieval(recorded: Recorded, client_for: Any) -> None:
    with RetrieverDouble(delay=1.0) as slow, RetrieverDouble() as healthy:
        failed = await client_for(slow, retriever_timeout=0.2).post("/chat", json=QUESTION)
        assert failed.status_code == 504
        assert failed.json() | {"trace_id": None} == {"detail": "the retriever did not answer in time",
                                                        "stage": "retrieval", "trace_id": None}
        assert_stage_failed(recorded, "retrieval")
        assert (await client_for(healthy).post("/chat", json=QUESTION)).status_code == 200


async def test_vllm_error_text_reaches_the_502(recorded: Recorded, client_for: Any) -> None:
    with RetrieverDouble() as retriever:
        client = client_for(retriever, model="fault-400-context")  # vLLM's message is under error.message
        failed = await client.post("/chat", json=QUESTION)
        assert failed.status_code == 502
        assert failed.json()["detail"].startswith("vLLM answered 400: This model's maximum context length is")
        streamed = sse_events((await client.post("/chat/stream", json=QUESTION)).text)
        assert streamed[-1][0] == "error" and "maximum context length" in streamed[-1][1]["detail"]


def completion_requests(vllm: RecordedOpenAIServer) -> list[dict[str, Any]]:
    return [r["body"] for r in vllm.requests if r["path"].endswith("/chat/completions")]


async def test_context_is_trimmed_to_the_window_vllm_reports(recorded: Recorded) -> None:
    long_hits = [{**hit, "text": hit["text"] + " more" * 150, "doc_id": f"d{n}"}
                 for n, hit in enumerate(RetrieverDouble().hits * 3)]  # six chunks of ~800 characters
    # The double's tokenizer: a token per 4 characters; a 500-token window holds about two of them.
    with RecordedOpenAIServer(max_model_len=500) as vllm, RetrieverDouble(hits=long_hits) as retriever:
        settings = ChatSettings(retriever_url=retriever.url, vllm_url=vllm.base_url, min_score=0.0,
                                context_chars=100_000)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)),
                                     base_url="http://chat") as client:
            answer = await client.post("/chat", json={"question": "Is there parking?", "k": 6, "max_tokens": 100})
            assert answer.status_code == 200, answer.text
            assert 1 <= len(answer.json()["citations"]) < 6  # trimmed, not emptied
            (sent,) = completion_requests(vllm)
            tokens = sum(-(-len(m["content"]) // 4) + 4 for m in sent["messages"])
            assert tokens + sent["max_tokens"] <= 500
            # A long question: no room for context, the answer gets what is left of the window.
            long = await client.post("/chat", json={"question": "why " * 400, "max_tokens": 200})
            assert long.status_code == 200 and long.json()["citations"] == []
            assert completion_requests(vllm)[-1]["max_tokens"] < 200
            too_long = await client.post("/chat", json={"question": "why " * 500, "max_tokens": 100})
            assert too_long.status_code == 422
            assert "context window of 500 tokens" in too_long.json()["detail"]
            assert too_long.json()["stage"] == "request"
            streamed = await client.post("/chat/stream", json={"question": "why " * 500, "max_tokens": 100})
            assert streamed.status_code == 422
    assert len(completion_requests(vllm)) == 2  # the refused questions never reached the model
    errors = {(p.attributes[sc.RAG_STEP_KIND], p.attributes[sc.ERROR_TYPE])
              for p in recorded.points(sc.RAG_STEP_ERRORS)}
    assert errors == {("request", "context_window")}  # the caller's error: no pipeline failure


async def test_window_from_a_setting_and_an_estimate_without_tokenize(recorded: Recorded) -> None:
    # A model server without /tokenize (this model name is unknown to the double's /v1/models too):
    # RAG_MAX_MODEL_LEN gives the window and characters / RAG_CHARS_PER_TOKEN the count.
    with RecordedOpenAIServer() as vllm, RetrieverDouble() as retriever:
        vllm.tokenize = False
        settings = ChatSettings(retriever_url=retriever.url, vllm_url=vllm.base_url, model="other",
                                max_model_len=300, chars_per_token=2.0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)),
                                     base_url="http://chat") as client:
            assert (await client.post("/chat", json=QUESTION)).status_code == 200
            refused = await client.post("/chat", json={"question": "x" * 600, "max_tokens": 8})
            assert refused.status_code == 422 and "context window of 300 tokens" in refused.json()["detail"]
