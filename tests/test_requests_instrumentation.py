"""OpenAI-compatible calls made with ``requests``, against recorded vLLM responses over real HTTP: the same
GenAI span, usage, time to first chunk and ``traceparent`` as httpx, through the one recorder; faults and
streams closed early; and one span per request with ``opentelemetry-instrumentation-requests`` too."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from opentelemetry.trace import SpanKind, StatusCode

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded
from tests.recorded_openai_server import RECORDINGS, RecordedOpenAIServer

CHAT = {"model": "tiny-llama", "messages": [{"role": "user", "content": "When does the clinic open?"}],
        "max_tokens": 16, "temperature": 0.2}


@pytest.fixture
def server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    ragotel.instrument_requests()
    yield
    ragotel.uninstrument_requests()


def client_spans(recorded: Recorded) -> list[object]:
    return [s for s in recorded.spans() if s.kind is SpanKind.CLIENT]


def test_non_streamed_chat(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    response = requests.post(f"{server.base_url}/chat/completions", json=CHAT, timeout=5)
    assert response.json()["choices"][0]["message"]["content"] == "The clinic opens at eight."
    (span,) = client_spans(recorded)
    attrs = span.attributes  # type: ignore[attr-defined]
    assert span.name == "chat tiny-llama"  # type: ignore[attr-defined]
    assert (attrs[sc.GEN_AI_OPERATION_NAME], attrs[sc.GEN_AI_REQUEST_MAX_TOKENS]) == ("chat", 16)
    assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (41, 7)
    assert attrs[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    (sent,) = server.requests
    assert f"{span.context.span_id:016x}" in sent["headers"]["traceparent"]  # type: ignore[attr-defined]
    assert sent["body"] == CHAT
    usage = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in recorded.points(sc.GEN_AI_CLIENT_TOKEN_USAGE)}
    assert usage == {"input": 41, "output": 7}


def test_streamed_chat_read_line_by_line(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    with requests.post(f"{server.base_url}/chat/completions", json={**CHAT, "stream": True}, stream=True,
                       timeout=5) as response:
        received = [line for line in response.iter_lines() if line]
    # the caller sees vLLM's stream without the usage chunk ragotel asked for
    expected = (RECORDINGS / "chat_stream_without_usage.sse").read_bytes()
    assert received == [line for line in expected.splitlines() if line]
    assert server.requests[0]["body"]["stream_options"] == {"include_usage": True}
    (span,) = client_spans(recorded)
    attrs = span.attributes  # type: ignore[attr-defined]
    assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (41, 7)
    assert attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    (ttfc,) = recorded.points(sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1


def test_a_stream_closed_early_ends_the_span_as_cancelled(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    response = requests.post(f"{server.base_url}/chat/completions", json={**CHAT, "stream": True}, stream=True,
                             timeout=5)
    next(response.iter_content(16))
    response.close()
    (span,) = client_spans(recorded)
    assert span.attributes[sc.RAG_OUTCOME] == "cancelled"  # type: ignore[attr-defined]
    assert span.status.status_code is StatusCode.UNSET  # type: ignore[attr-defined]


@pytest.mark.parametrize(("model", "error_type"), [("fault-404", "http.4xx"), ("fault-500", "http.5xx"),
                                                    ("fault-malformed", "malformed_body")])
def test_faults_reach_the_caller_unchanged(recorded: Recorded, server: RecordedOpenAIServer, model: str,
                                           error_type: str) -> None:
    response = requests.post(f"{server.base_url}/chat/completions", json={**CHAT, "model": model}, timeout=5)
    if model == "fault-malformed":
        with pytest.raises(requests.JSONDecodeError):
            response.json()
    else:
        assert response.status_code == int(model[-3:])
    (span,) = client_spans(recorded)
    assert span.attributes[sc.ERROR_TYPE] == error_type  # type: ignore[attr-defined]
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert error.attributes[sc.ERROR_TYPE] == error_type


def test_a_timeout_is_a_timeout(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{server.base_url}/chat/completions", json={**CHAT, "model": "fault-slow"}, timeout=0.3)
    (span,) = client_spans(recorded)
    assert span.attributes[sc.ERROR_TYPE] == "timeout"  # type: ignore[attr-defined]


def test_other_requests_carry_the_trace_context_only(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    with ragotel.pipeline("chat"):
        requests.post(f"{server.base_url}/tokenize", json={"messages": []}, timeout=5)
    assert client_spans(recorded) == []
    (pipeline,) = recorded.spans()
    assert f"{pipeline.context.trace_id:032x}" in server.requests[0]["headers"]["traceparent"]


@pytest.mark.parametrize("theirs_first", [True, False], ids=["theirs-first", "ours-first"])
def test_with_opentelemetry_requests_instrumentation_each_request_has_one_client_span(
    recorded: Recorded, server: RecordedOpenAIServer, theirs_first: bool
) -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor as TheirRequestsInstrumentor

    ragotel.uninstrument_requests()
    steps = [TheirRequestsInstrumentor().instrument, ragotel.instrument_requests]
    for instrument in steps if theirs_first else reversed(steps):
        instrument()
    try:
        requests.post(f"{server.base_url}/chat/completions", json=CHAT, timeout=5)
        requests.post(f"{server.base_url}/tokenize", json={"messages": []}, timeout=5)
    finally:
        TheirRequestsInstrumentor().uninstrument()
    spans = client_spans(recorded)
    assert sorted(s.name for s in spans) == ["POST", "chat tiny-llama"]  # type: ignore[attr-defined]
    (chat,) = [s for s in spans if s.name == "chat tiny-llama"]  # type: ignore[attr-defined]
    assert chat.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 7  # type: ignore[attr-defined]
    assert f"{chat.context.span_id:016x}" in server.requests[0]["headers"]["traceparent"]  # type: ignore[attr-defined]


def test_uninstrument_restores_requests(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    ragotel.uninstrument_requests()
    requests.post(f"{server.base_url}/chat/completions", json=CHAT, timeout=5)
    assert client_spans(recorded) == []
    assert json.loads(json.dumps(server.requests[0]["body"])) == CHAT
