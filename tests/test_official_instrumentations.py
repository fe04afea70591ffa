"""An openai SDK instrumentation beside ragotel's httpx instrumentation: one span per model call, its tokens and
duration counted once.

The instrumentations are the real packages (the ``test`` extra): OpenTelemetry's
``opentelemetry-instrumentation-openai-v2`` (chat spans from ``opentelemetry-util-genai``'s handler, embeddings
spans from its own tracer) and OpenLLMetry's ``opentelemetry-instrumentation-openai``; the server is the recorded
vLLM double over real HTTP. ragotel enriches their span and leaves them the metrics they record
(``ragotel/instrumentation/_http.py``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2Instrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.genai.handler import TelemetryHandler

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from tests.conftest import Point, Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

MESSAGES = [{"role": "user", "content": "When does the clinic open?"}]
# What each instrumentation names its tracer (its spans' instrumentation scope), by operation.
OFFICIAL = {
    "openai-v2": (OpenAIV2Instrumentor, {"chat": "opentelemetry.util.genai.handler",
                                         "embeddings": "opentelemetry.instrumentation.openai_v2"}),
    "openllmetry": (OpenLLMetryInstrumentor, {"chat": "opentelemetry.instrumentation.openai.v1",
                                              "embeddings": "opentelemetry.instrumentation.openai.v1"}),
}


@pytest.fixture
def server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as srv:
        yield srv


def _openai_methods() -> dict[tuple[type, str], Any]:
    """Every method of the openai SDK's resource classes, as the classes hold them."""
    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("openai.resources") and module is not None:
            for cls in vars(module).values():
                if isinstance(cls, type) and cls.__module__ == name:
                    found.update({(cls, attr): value for attr, value in vars(cls).items() if callable(value)})
    return found


@pytest.fixture(params=sorted(OFFICIAL))
def official(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """One of the instrumentations active beside ``ragotel.instrument_httpx()``; its scopes by operation."""
    instrumentor_class, scopes = OFFICIAL[request.param]
    instrumentor = instrumentor_class()
    before = _openai_methods()
    instrumentor.instrument()
    ragotel.instrument_httpx()
    yield scopes
    ragotel.uninstrument_httpx()
    instrumentor.uninstrument()
    # OpenLLMetry 0.62's uninstrument() leaves its wrappers in place (it passes "module", "Class.method" to
    # unwrap(), which looks the class up one module too high): put back what the SDK had.
    for (cls, attr), value in before.items():
        if vars(cls).get(attr) is not value:
            setattr(cls, attr, value)


def genai_spans(recorded: Recorded) -> list[ReadableSpan]:
    return [s for s in recorded.spans() if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME)]


def one_call_span(recorded: Recorded, scope: str) -> Any:
    spans = genai_spans(recorded)
    assert [s.instrumentation_scope.name for s in spans if s.instrumentation_scope] == [scope], [
        (s.name, s.instrumentation_scope) for s in spans]
    return spans[0]


def tokens(recorded: Recorded) -> dict[str, list[float | None]]:
    """Every token record of the call, whatever instrumentation and name set recorded it, by token type."""
    found: dict[str, list[float | None]] = {}
    for point in _token_points(recorded):
        found.setdefault(str(point.attributes.get(sc.GEN_AI_TOKEN_TYPE)), []).append(point.sum)
    return found


def _token_points(recorded: Recorded) -> list[Point]:
    return [p for p in recorded.points() if p.name == sc.GEN_AI_CLIENT_TOKEN_USAGE
            or p.name.startswith("gen_ai.client.inference.usage")]


def durations(recorded: Recorded) -> int:
    names = (sc.GEN_AI_CLIENT_OPERATION_DURATION, "gen_ai.client.inference.duration")
    return sum(p.count or 0 for p in recorded.points() if p.name in names)


def test_chat_is_one_span_enriched_and_counted_once(
    recorded: Recorded, server: RecordedOpenAIServer, official: dict[str, str]
) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    answer = client.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=16)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "The clinic opens at eight."

    span = one_call_span(recorded, official["chat"])
    attrs = span.attributes
    assert span.kind is SpanKind.CLIENT and span.end_time is not None
    # ragotel's view of the wire on their span: the step, the server, vLLM as the provider
    assert (attrs[sc.RAG_STEP_KIND], attrs[sc.GEN_AI_PROVIDER_NAME]) == ("generation", "vllm")
    assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1" and attrs[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (41, 7)
    # vLLM's span joins under this one span
    (sent,) = server.requests
    assert sent["headers"]["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"
    assert tokens(recorded) == {"input": [41], "output": [7]}
    assert durations(recorded) == 1


@pytest.mark.parametrize("caller_asks_usage", [False, True], ids=["usage-added-by-ragotel", "usage-asked"])
def test_streamed_chat_counts_the_usage_once_whoever_saw_it(
    recorded: Recorded, server: RecordedOpenAIServer, official: dict[str, str], caller_asks_usage: bool
) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if caller_asks_usage else {}
    chunks = list(client.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=16, stream=True, **options))  # type: ignore[call-overload]
    # the caller gets the usage chunk only when it asked for it
    assert any(c.usage is not None for c in chunks) is caller_asks_usage

    span = one_call_span(recorded, official["chat"])
    attrs = span.attributes
    assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (41, 7)
    assert 0 < attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] < (span.end_time - span.start_time) / 1e9
    # a hidden usage chunk is counted by ragotel, a seen one by the other instrumentation: once either way
    assert tokens(recorded) == {"input": [41], "output": [7]}
    assert durations(recorded) == 1
    (ttfc,) = recorded.points(sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1 and ttfc.span_ids == (span.context.span_id,)


def test_embeddings_are_one_span_counted_once(
    recorded: Recorded, server: RecordedOpenAIServer, official: dict[str, str]
) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    client.embeddings.create(model="tiny-emb", input=["opening hours", "parking"])

    span = one_call_span(recorded, official["embeddings"])
    assert (span.attributes[sc.RAG_STEP_KIND], span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS]) == ("embedding", 5)
    assert tokens(recorded)["input"] == [5]
    assert durations(recorded) == 1


def test_async_chat_is_one_span(recorded: Recorded, server: RecordedOpenAIServer, official: dict[str, str]) -> None:
    async def call() -> None:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as client:
            await client.chat.completions.create(model="tiny-llama", messages=MESSAGES)  # type: ignore[arg-type]

    asyncio.run(call())
    assert one_call_span(recorded, official["chat"]).attributes[sc.RAG_STEP_KIND] == "generation"
    assert tokens(recorded) == {"input": [41], "output": [7]}
    assert durations(recorded) == 1


def test_latest_conventions_count_once_too(
    recorded: Recorded, server: RecordedOpenAIServer, official: dict[str, str]
) -> None:
    runtime.update(genai_latest=True)  # the recorded fixture restores it
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    client.chat.completions.create(model="tiny-llama", messages=MESSAGES)  # type: ignore[arg-type]
    one_call_span(recorded, official["chat"])
    assert tokens(recorded) == {"input": [41], "output": [7]}
    assert durations(recorded) == 1


def test_a_failed_call_is_one_error_span(
    recorded: Recorded, server: RecordedOpenAIServer, official: dict[str, str]
) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fault-500", messages=MESSAGES)  # type: ignore[arg-type]
    span = one_call_span(recorded, official["chat"])
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 500
    (errors,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert errors.value == 1
    assert durations(recorded) == 1


def test_a_genai_span_of_another_operation_is_not_adopted(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    """A util-genai workflow around a plain httpx call is no model call: ragotel's span goes under it."""
    ragotel.instrument_httpx()
    try:
        with TelemetryHandler().workflow("answer"), httpx.Client(base_url=server.base_url) as client:
            client.post("/chat/completions", json={"model": "tiny-llama", "messages": MESSAGES})
    finally:
        ragotel.uninstrument_httpx()
    (workflow,) = [s for s in genai_spans(recorded) if s.attributes[sc.GEN_AI_OPERATION_NAME] != "chat"]
    (call,) = [s for s in genai_spans(recorded) if s is not workflow]
    assert call.instrumentation_scope is not None and call.instrumentation_scope.name == "ragotel"
    assert call.parent is not None and call.parent.span_id == workflow.context.span_id
    assert tokens(recorded) == {"input": [41], "output": [7]}
