"""OpenAI-compatible calls through httpx and the openai SDK, against recorded vLLM responses served over
real HTTP (``RecordedOpenAIServer``); the real-vLLM versions of these checks are in tests/stack."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from tests.conftest import Recorded
from tests.recorded_openai_server import RECORDINGS, RecordedOpenAIServer

MESSAGES = [{"role": "user", "content": "When does the clinic open?"}]
CHAT = {"model": "tiny-llama", "messages": MESSAGES, "max_tokens": 16, "temperature": 0.2, "top_p": 0.9,
        "n": 1, "seed": 7, "stop": ["\n\n"]}


@pytest.fixture
def server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as srv:
        yield srv


@pytest.fixture
def client(server: RecordedOpenAIServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as c:
        ragotel.instrument_httpx(c)
        yield c


@pytest.fixture
def global_instrumentation() -> Iterator[None]:
    ragotel.instrument_httpx()
    yield
    ragotel.uninstrument_httpx()


def only_genai_span(recorded: Recorded) -> Any:
    spans = [s for s in recorded.spans() if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME)]
    assert len(spans) == 1, [s.name for s in recorded.spans()]
    return spans[0]


def test_non_streamed_chat(recorded: Recorded, server: RecordedOpenAIServer, client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=CHAT)
    assert response.json()["choices"][0]["message"]["content"] == "The clinic opens at eight."

    span = only_genai_span(recorded)
    assert (span.name, span.kind) == ("chat tiny-llama", SpanKind.CLIENT)
    attrs = span.attributes
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "vllm"
    assert (attrs[sc.GEN_AI_REQUEST_MAX_TOKENS], attrs[sc.GEN_AI_REQUEST_TEMPERATURE]) == (16, 0.2)
    assert (attrs[sc.GEN_AI_REQUEST_TOP_P], attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT], attrs[sc.GEN_AI_REQUEST_SEED]) == (
        0.9, 1, 7)
    assert attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] == ("\n\n",)
    assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1" and attrs[sc.SERVER_PORT] == int(server.base_url.split(":")[2][:-3])
    assert (attrs[sc.GEN_AI_RESPONSE_ID], attrs[sc.GEN_AI_RESPONSE_MODEL]) == ("chatcmpl-5f1c2d", "tiny-llama")
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (41, 7)
    assert span.status.status_code is StatusCode.UNSET

    # the W3C trace context of this span went out with the request
    (sent,) = server.requests
    traceparent = sent["headers"]["traceparent"]
    assert traceparent.split("-")[1:3] == [f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"]
    assert sent["body"] == CHAT  # a non-streamed body is not touched

    (duration,) = recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.attributes[sc.GEN_AI_REQUEST_MODEL] == "tiny-llama"
    usage = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in recorded.points(sc.GEN_AI_CLIENT_TOKEN_USAGE)}
    assert usage == {"input": 41, "output": 7}
    # Outside a generation step the call is that step: one duration record, which says so.
    assert recorded.points(sc.RAG_STEP_DURATION) == []
    assert (duration.attributes[sc.RAG_STEP_KIND], duration.attributes[sc.RAG_STEP_NAME]) == ("generation", "chat")
    assert recorded.points(sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK) == []  # only for streams


async def test_streamed_chat_hides_the_usage_chunk_it_asked_for(
    recorded: Recorded, server: RecordedOpenAIServer
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
        ragotel.instrument_httpx(client)
        received = b""
        async with client.stream("POST", "/chat/completions", json={**CHAT, "stream": True}) as response:
            async for data in response.aiter_bytes():
                received += data
    # the caller sees the stream it asked for: vLLM's stream without the usage chunk
    assert received == (RECORDINGS / "chat_stream_without_usage.sse").read_bytes()
    assert server.requests[0]["body"]["stream_options"] == {"include_usage": True}

    span = only_genai_span(recorded)
    attrs = span.attributes
    assert attrs[sc.GEN_AI_REQUEST_STREAM] is True
    assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (41, 7)
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[sc.RAG_GENERATION_RESPONSE_CHARS] == len("The clinic opens at eight.")
    assert 0 < attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] < (span.end_time - span.start_time) / 1e9
    (ttfc,) = recorded.points(sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1 and ttfc.sum == pytest.approx(attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])
    (per_chunk,) = recorded.points(sc.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK)
    assert per_chunk.count == 8  # 9 JSON chunks (8 deltas + usage) after the first
    assert per_chunk.sum > 0


def test_streamed_chat_that_asked_for_usage_is_left_alone(
    recorded: Recorded, server: RecordedOpenAIServer, client: httpx.Client
) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/chat/completions", json=body) as response:
        received = response.read()
    assert received == (RECORDINGS / "chat_stream_with_usage.sse").read_bytes()
    assert server.requests[0]["body"] == body
    assert only_genai_span(recorded).attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 7


def test_usage_injection_can_be_switched_off(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        ragotel.instrument_httpx(client, include_usage=False)
        with client.stream("POST", "/chat/completions", json={**CHAT, "stream": True}) as response:
            response.read()
    assert "stream_options" not in server.requests[0]["body"]
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in only_genai_span(recorded).attributes


def test_stream_closed_early_ends_the_span(recorded: Recorded, client: httpx.Client) -> None:
    with client.stream("POST", "/chat/completions", json={**CHAT, "stream": True}) as response:
        for _ in response.iter_bytes():
            break
    span = only_genai_span(recorded)
    assert span.end_time is not None
    assert span.attributes[sc.RAG_OUTCOME] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET


def test_openai_sdk_sync_and_async_streaming(
    recorded: Recorded, server: RecordedOpenAIServer, global_instrumentation: None
) -> None:
    sdk = openai.OpenAI(base_url=server.base_url, api_key="sk-test-not-a-secret")
    completion = sdk.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=16)  # type: ignore[arg-type]
    assert completion.usage is not None and completion.usage.completion_tokens == 7

    async def stream() -> str:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test-not-a-secret")
        parts = []
        events = await client.chat.completions.create(
            model="tiny-llama", messages=MESSAGES, max_tokens=16, stream=True  # type: ignore[arg-type]
        )
        async for chunk in events:
            assert chunk.choices, "the injected usage chunk must not reach the caller"
            parts.append(chunk.choices[0].delta.content or "")
        return "".join(parts)

    assert asyncio.run(stream()) == "The clinic opens at eight."
    spans = sorted(recorded.spans(), key=lambda s: s.start_time)
    assert [s.name for s in spans] == ["chat tiny-llama", "chat tiny-llama"]
    for span in spans:
        attrs = span.attributes
        assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (41, 7)
    assert spans[1].attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert all("traceparent" in r["headers"] for r in server.requests)
    # the API key never lands on a span
    assert "sk-test-not-a-secret" not in json.dumps([dict(s.attributes or {}) for s in spans])


def test_embeddings(recorded: Recorded, client: httpx.Client) -> None:
    client.post("/embeddings", json={"model": "minilm", "input": ["hello"], "encoding_format": "float"})
    span = only_genai_span(recorded)
    assert span.name == "embeddings minilm"
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 5
    assert span.attributes[sc.GEN_AI_REQUEST_ENCODING_FORMATS] == ("float",)
    (duration,) = recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert (duration.attributes[sc.RAG_STEP_KIND], duration.attributes[sc.RAG_STEP_NAME]) == ("embedding", "embeddings")
    assert recorded.points(sc.RAG_STEP_DURATION) == []


def test_other_requests_get_no_span_but_carry_the_trace_context(
    recorded: Recorded, server: RecordedOpenAIServer, client: httpx.Client
) -> None:
    client.post("/models/reload", json={})
    assert "traceparent" not in server.requests[0]["headers"]  # no trace to join
    with ragotel.pipeline("outer") as step:
        client.post("/models/reload", json={})
    assert [s.name for s in recorded.spans()] == ["invoke_workflow outer"]
    ctx = step.span.get_span_context()
    assert server.requests[1]["headers"]["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")


def test_inside_a_generation_step_nothing_is_counted_twice(recorded: Recorded, client: httpx.Client) -> None:
    with ragotel.generation("answer", model="tiny-llama") as step:
        body = client.post("/chat/completions", json=CHAT).json()
        step.record(input_tokens=body["usage"]["prompt_tokens"], output_tokens=body["usage"]["completion_tokens"])
    # both are named "chat tiny-llama" (the convention's "{operation} {model}"); the kind tells them apart
    (call,) = [s for s in recorded.spans() if s.kind is SpanKind.CLIENT]
    (outer,) = [s for s in recorded.spans() if s.kind is SpanKind.INTERNAL]
    assert outer.attributes[sc.RAG_STEP_NAME] == "answer"
    assert call.parent.span_id == outer.context.span_id
    (call_duration,) = recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert sc.RAG_STEP_NAME not in call_duration.attributes  # a call inside a step is not a step of its own
    assert sorted(p.sum for p in recorded.points(sc.GEN_AI_CLIENT_TOKEN_USAGE)) == [7, 41]
    (step_duration,) = recorded.points(sc.RAG_STEP_DURATION)  # the step's, not a second one from the call
    assert step_duration.attributes[sc.RAG_STEP_NAME] == "answer"


def test_one_span_when_instrumented_twice(recorded: Recorded, client: httpx.Client,
                                          global_instrumentation: None) -> None:
    client.post("/chat/completions", json=CHAT)
    only_genai_span(recorded)


@pytest.mark.parametrize("theirs_first", [True, False], ids=["theirs-first", "ours-first"])
def test_with_opentelemetry_httpx_instrumentation_each_request_has_one_client_span(
    recorded: Recorded, server: RecordedOpenAIServer, theirs_first: bool
) -> None:
    """GenAI requests get ragotel's span alone; other requests get the standard HTTP span; either order."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    theirs = HTTPXClientInstrumentor()
    steps = [theirs.instrument, ragotel.instrument_httpx]
    for instrument in steps if theirs_first else reversed(steps):
        instrument()
    try:
        with httpx.Client(base_url=server.base_url) as client, ragotel.pipeline("chat"):
            client.post("/chat/completions", json=CHAT)
            client.get("/models")
    finally:
        theirs.uninstrument()
        ragotel.uninstrument_httpx()
    clients = [s for s in recorded.spans() if s.kind is SpanKind.CLIENT]
    assert sorted(s.name for s in clients) == ["GET", "chat tiny-llama"]
    (genai,) = [s for s in clients if s.name == "chat tiny-llama"]
    assert genai.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    # vLLM's span hangs under the GenAI span: its traceparent is the one that went out
    assert f"{genai.context.span_id:016x}" in server.requests[0]["headers"]["traceparent"]


FAULTS = [
    ("fault-404", False, "http.4xx", None),
    ("fault-500", False, "http.5xx", None),
    ("fault-malformed", False, "malformed_body", json.JSONDecodeError),
    ("fault-malformed", True, "malformed_stream", None),
    ("fault-slow", False, "timeout", httpx.ReadTimeout),
    ("fault-drop", True, "connection", httpx.RemoteProtocolError),
]


@pytest.mark.parametrize(("model", "stream", "error_type", "raises"), FAULTS,
                         ids=[f"{m}-{'stream' if s else 'json'}" for m, s, _, _ in FAULTS])
def test_faults_reach_the_caller_unchanged_and_are_recorded(
    recorded: Recorded, server: RecordedOpenAIServer, model: str, stream: bool, error_type: str,
    raises: type[BaseException] | None,
) -> None:
    def call(client: httpx.Client) -> tuple[int, bytes]:
        with client.stream("POST", "/chat/completions", json={**CHAT, "model": model, "stream": stream}) as r:
            body = r.read()
            if r.status_code == 200 and not stream:
                json.loads(body)
            return r.status_code, body

    with httpx.Client(base_url=server.base_url, timeout=0.5) as plain:
        expected: Any
        try:
            expected = call(plain)
        except Exception as exc:  # what the caller sees without ragotel
            expected = type(exc)
    with httpx.Client(base_url=server.base_url, timeout=0.5) as client:
        ragotel.instrument_httpx(client)
        try:
            seen: Any = call(client)
        except Exception as exc:
            seen = type(exc)
    if raises is not None:
        assert expected is raises
    assert seen == expected

    span = next(s for s in recorded.spans() if s.name == f"chat {model}")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == error_type
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert (error.value, error.attributes[sc.ERROR_TYPE], error.attributes[sc.RAG_STEP_KIND]) == (
        1, error_type, "generation")


def test_connection_refused(recorded: Recorded) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1") as client:
        ragotel.instrument_httpx(client)
        with pytest.raises(httpx.ConnectError):
            client.post("/chat/completions", json=CHAT)
    span = only_genai_span(recorded)
    assert span.attributes[sc.ERROR_TYPE] == "connection"
    assert [e.name for e in span.events] == ["exception"]


def test_unreadable_request_bodies_never_raise(recorded: Recorded, server: RecordedOpenAIServer,
                                               client: httpx.Client) -> None:
    response = client.post("/chat/completions", content=b"not json at all", headers={"content-type": "text/plain"})
    assert response.status_code == 400
    span = only_genai_span(recorded)
    assert span.name == "chat"
    assert sc.GEN_AI_REQUEST_MODEL not in span.attributes


def test_content_capture(recorded: Recorded, client: httpx.Client) -> None:
    client.post("/chat/completions", json=CHAT)
    runtime.update(content_spans=True)
    client.post("/chat/completions", json=CHAT)
    first, second = sorted(recorded.spans(), key=lambda s: s.start_time)
    assert sc.GEN_AI_INPUT_MESSAGES not in first.attributes and sc.GEN_AI_OUTPUT_MESSAGES not in first.attributes
    # The conventions' message-parts schema, not the OpenAI request's own shape.
    assert json.loads(second.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "When does the clinic open?"}]}]
    assert json.loads(second.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "The clinic opens at eight."}],
         "finish_reason": "stop"}]


def test_cost_counter(recorded: Recorded, client: httpx.Client) -> None:
    ragotel.set_prices({"tiny-llama": ragotel.ModelPrice(input_per_million=1.0, output_per_million=2.0,
                                                         gpu_hour_usd=3.6, tokens_per_second=1.0)})
    try:
        client.post("/chat/completions", json=CHAT)
    finally:
        ragotel.set_prices({})
    (usd,) = recorded.points(sc.RAG_COST)
    # 41 in × $1/M + 7 out × $2/M + 7 tokens / (1 tok/s × 3600 s/h) × $3.6/h
    assert usd.value == pytest.approx(41e-6 + 14e-6 + 7 / 3600 * 3.6)
    assert usd.attributes == {sc.GEN_AI_REQUEST_MODEL: "tiny-llama", sc.GEN_AI_PROVIDER_NAME: "vllm",
                              sc.GEN_AI_OPERATION_NAME: "chat"}


def test_uninstrument_is_symmetric(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    original = httpx.Client.send
    ragotel.instrument_httpx()
    assert httpx.Client.send is not original
    ragotel.uninstrument_httpx()
    assert httpx.Client.send is original
    with httpx.Client(base_url=server.base_url) as client:
        ragotel.instrument_httpx(client)
        ragotel.uninstrument_httpx(client)
        client.post("/chat/completions", json=CHAT)
    assert recorded.spans() == []


def test_a_pipeline_adds_up_its_http_calls_once(recorded: Recorded, client: httpx.Client) -> None:
    with ragotel.pipeline("chat"):
        client.post("/chat/completions", json=CHAT)
        with ragotel.generation("answer", model="tiny-llama") as step:  # a step around a call: counted once
            body = client.post("/chat/completions", json=CHAT).json()
            step.record(input_tokens=body["usage"]["prompt_tokens"], output_tokens=body["usage"]["completion_tokens"])
    pipe = recorded.span("invoke_workflow chat").attributes
    assert (pipe[sc.GEN_AI_USAGE_INPUT_TOKENS], pipe[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (82, 14)


def test_openinference_keys_on_model_calls(recorded: Recorded, client: httpx.Client,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from ragotel._core import runtime

    runtime.update(openinference=True)
    client.post("/chat/completions", json=CHAT)
    span = only_genai_span(recorded).attributes
    assert (span[sc.OI_SPAN_KIND], span[sc.OI_LLM_MODEL_NAME]) == ("LLM", "tiny-llama")
    assert (span[sc.OI_TOKEN_COUNT_PROMPT], span[sc.OI_TOKEN_COUNT_COMPLETION], span[sc.OI_TOKEN_COUNT_TOTAL]) == (
        41, 7, 48)
