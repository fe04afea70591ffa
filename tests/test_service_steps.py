"""HTTP calls to the application's own services as steps (``RAGOTEL_SERVICE_STEPS``): with no code, a chat
API's call to its retriever is a ``retrieval`` step — a CLIENT span, ``rag.step.duration`` and, when the
retriever is down, ``rag.step.errors`` under ``retrieval``."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
import requests

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime, settings
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer


@pytest.fixture
def server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as srv:
        yield srv


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def steps(server: RecordedOpenAIServer) -> Iterator[str]:
    down = f"http://127.0.0.1:{closed_port()}"
    resolved = settings.resolve(environ={"RAGOTEL_SERVICE_STEPS": f"{server.base_url}/tokenize=retrieval:doc-index,"
                                                                  f"{down}/query=retrieval:doc-index"})
    assert resolved.problems == []
    saved = runtime.update(service_steps=tuple(resolved.values["service_steps"]))
    ragotel.instrument_httpx()
    ragotel.instrument_requests()
    yield down
    ragotel.uninstrument_httpx()
    ragotel.uninstrument_requests()
    runtime.swap(saved)


def test_a_call_to_a_service_step_is_that_step(recorded: Recorded, server: RecordedOpenAIServer, steps: str) -> None:
    body = {"messages": [], "stream": True, "top_k": 4}  # not an OpenAI request: left alone
    httpx.post(f"{server.base_url}/tokenize", json=body, timeout=5)
    requests.post(f"{server.base_url}/tokenize", json=body, timeout=5)
    first, second = recorded.spans()
    for span in (first, second):
        assert span.name == "retrieval doc-index"
        assert span.attributes[sc.GEN_AI_OPERATION_NAME] == "retrieval"
        assert span.attributes[sc.GEN_AI_DATA_SOURCE_ID] == "doc-index"
        assert sc.GEN_AI_REQUEST_TOP_K not in span.attributes and sc.GEN_AI_PROVIDER_NAME not in span.attributes
    assert [r["body"] for r in server.requests] == [body, body]
    points = recorded.points(sc.RAG_STEP_DURATION)
    assert [(p.attributes[sc.RAG_STEP_KIND], p.attributes[sc.RAG_STEP_NAME], p.count) for p in points] == [
        ("retrieval", "doc-index", 2)]
    assert recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION) == []


def test_a_service_that_is_down_counts_under_its_step(recorded: Recorded, steps: str) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{steps}/query", json={"text": "hi"}, timeout=5)
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert (error.attributes[sc.RAG_STEP_KIND], error.attributes[sc.ERROR_TYPE]) == ("retrieval", "connection")


def test_other_urls_are_not_steps(recorded: Recorded, server: RecordedOpenAIServer, steps: str) -> None:
    httpx.get(f"{server.base_url}/v1/models", timeout=5)
    assert recorded.spans() == []


@pytest.mark.parametrize("value", ["doc-index=retrieval", "http://x/query=pipeline", "http://x/query"])
def test_unusable_service_steps_are_named_in_a_problem(value: str) -> None:
    resolved = settings.resolve(environ={"RAGOTEL_SERVICE_STEPS": value})
    (problem,) = resolved.problems
    assert problem.setting == "RAGOTEL_SERVICE_STEPS"
    assert resolved.values["service_steps"] == ()
