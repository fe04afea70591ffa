"""Generation against a real vLLM: spans, token counts, metrics, and vLLM's own span joined to ours."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.trace import SpanKind

import ragotel
from examples.reference_app.vllm_server import VllmServer
from ragotel import semconv as sc
from ragotel.cli.waterfall import SpanRecord
from tests.conftest import Recorded
from tests.stack.conftest import SERVED_MODEL

pytestmark = pytest.mark.stack

MESSAGES = [{"role": "user", "content": "When is the clinic open on Saturday?"}]


@pytest.fixture
def instrumented() -> Iterator[None]:
    ragotel.instrument_httpx()
    yield
    ragotel.uninstrument_httpx()


def client_span(recorded: Recorded) -> Any:
    (span,) = [s for s in recorded.spans() if s.kind is SpanKind.CLIENT]
    return span


def assert_joined(span: Any, server_span: SpanRecord) -> None:
    """vLLM's llm_request span is a child of our client span, in the same trace."""
    assert server_span.trace_id == f"{span.context.trace_id:032x}"
    assert server_span.parent_span_id == f"{span.context.span_id:016x}"
    assert server_span.service_name == "vllm"


def test_non_streamed_chat_with_httpx(
    recorded: Recorded, vllm: VllmServer, instrumented: None, vllm_span: Callable[[str], SpanRecord]
) -> None:
    body = {"model": SERVED_MODEL, "messages": MESSAGES, "max_tokens": 24, "temperature": 0.0, "seed": 1}
    with httpx.Client(base_url=f"{vllm.base_url}/v1", timeout=60) as client:
        answer = client.post("/chat/completions", json=body).json()

    span = client_span(recorded)
    attrs = span.attributes
    assert span.name == f"chat {SERVED_MODEL}"
    assert attrs[sc.GEN_AI_RESPONSE_ID] == answer["id"]
    assert attrs[sc.GEN_AI_RESPONSE_MODEL] == SERVED_MODEL
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == answer["usage"]["prompt_tokens"]
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == answer["usage"]["completion_tokens"]
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == (answer["choices"][0]["finish_reason"],)
    assert (attrs[sc.GEN_AI_REQUEST_MAX_TOKENS], attrs[sc.GEN_AI_REQUEST_SEED]) == (24, 1)

    usage = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in recorded.points(sc.GEN_AI_CLIENT_TOKEN_USAGE)}
    assert usage == {"input": answer["usage"]["prompt_tokens"], "output": answer["usage"]["completion_tokens"]}
    (duration,) = recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.sum == pytest.approx((span.end_time - span.start_time) / 1e9, rel=0.2)

    server_span = vllm_span(answer["id"])
    assert_joined(span, server_span)
    assert server_span.attributes["gen_ai.usage.completion_tokens"] == answer["usage"]["completion_tokens"]


def test_streamed_chat_with_httpx_ttfc_and_tokens(
    recorded: Recorded, vllm: VllmServer, instrumented: None, vllm_span: Callable[[str], SpanRecord]
) -> None:
    body = {"model": SERVED_MODEL, "messages": MESSAGES, "max_tokens": 32, "temperature": 0.0, "stream": True}
    chunks = 0
    with (
        httpx.Client(base_url=f"{vllm.base_url}/v1", timeout=60) as client,
        client.stream("POST", "/chat/completions", json=body) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunks += 1
                assert '"choices":[]' not in line, "the usage chunk ragotel asked for stays hidden"
    span = client_span(recorded)
    attrs = span.attributes
    server_span = vllm_span(attrs[sc.GEN_AI_RESPONSE_ID])
    assert_joined(span, server_span)
    # token counts from the (hidden) usage chunk equal what vLLM itself counted
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == server_span.attributes["gen_ai.usage.completion_tokens"]
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == server_span.attributes["gen_ai.usage.prompt_tokens"]
    # the client cannot see its first chunk before vLLM produced the first token
    ttfc = attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert ttfc >= float(server_span.attributes["gen_ai.latency.time_to_first_token"])
    (ttfc_point,) = recorded.points(sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK)
    assert ttfc_point.sum == pytest.approx(ttfc)
    (per_chunk,) = recorded.points(sc.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK)
    assert per_chunk.count == chunks  # every chunk after the first, plus the hidden usage chunk


def test_openai_sdk_sync_and_async_stream(
    recorded: Recorded, vllm: VllmServer, instrumented: None, vllm_span: Callable[[str], SpanRecord]
) -> None:
    sdk = openai.OpenAI(base_url=f"{vllm.base_url}/v1", api_key="unused")
    completion = sdk.chat.completions.create(
        model=SERVED_MODEL, messages=MESSAGES, max_tokens=16, temperature=0.0  # type: ignore[arg-type]
    )

    async def stream() -> str:
        client = openai.AsyncOpenAI(base_url=f"{vllm.base_url}/v1", api_key="unused")
        parts = []
        async for chunk in await client.chat.completions.create(
            model=SERVED_MODEL, messages=MESSAGES, max_tokens=16, temperature=0.0, stream=True  # type: ignore[arg-type]
        ):
            parts.append(chunk.choices[0].delta.content or "")
        return "".join(parts)

    streamed = asyncio.run(stream())
    assert streamed == completion.choices[0].message.content  # temperature 0: the same answer

    spans = sorted((s for s in recorded.spans() if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time)
    assert len(spans) == 2
    assert completion.usage is not None
    assert spans[0].attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == completion.usage.completion_tokens
    assert spans[1].attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == completion.usage.completion_tokens
    for span in spans:
        assert_joined(span, vllm_span(span.attributes[sc.GEN_AI_RESPONSE_ID]))


def test_embeddings_endpoint_is_a_client_span_even_when_vllm_refuses(
    recorded: Recorded, vllm: VllmServer, instrumented: None
) -> None:
    # A chat model serves no embeddings: vLLM answers 4xx, which the caller sees unchanged.
    with httpx.Client(base_url=f"{vllm.base_url}/v1", timeout=60) as client:
        response = client.post("/embeddings", json={"model": SERVED_MODEL, "input": ["x"]})
    span = client_span(recorded)
    assert span.name == f"embeddings {SERVED_MODEL}"
    assert response.status_code >= 400
    assert span.attributes[sc.ERROR_TYPE] == f"http.{response.status_code // 100}xx"
