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
    ("model", "overrides", "status"),
    [("fault-malformed", {}, 502), ("fault-drop", {}, 502), ("fault-slow", {"vllm_timeout": 0.3}, 504)],
)
async def test_vllm_faults_mid_stream_end_with_an_error_event(
    recorded: Recorded, client_for: Any, model: str, overrides: dict[str, Any], status: int,
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
