"""Captured content conforms to the GenAI conventions' message schemas (checked by tests/message_schema.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

import ragotel
from ragotel import semconv as sc
from ragotel._core.runtime import runtime
from ragotel._genai import messages
from ragotel._genai.content import policy
from tests.conftest import Recorded
from tests.message_schema import problems
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.test_genai_conventions import CHAT

HISTORY = [
    {"role": "system", "content": "Answer from the context only."},
    {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                 {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":1}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "opening hours 8-5"},
]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with RecordedOpenAIServer() as server, httpx.Client(base_url=server.base_url, timeout=5) as c:
        ragotel.instrument_httpx(c)
        yield c


def test_the_checker_finds_what_the_schema_requires() -> None:
    assert problems([{"role": "user", "parts": [{"type": "blob", "modality": "image"}]}]) == [
        "0.0: blob lacks content"]
    assert problems([{"parts": [{"content": "x"}]}]) == ["0: role missing or not a string",
                                                        "0.0: part without a string type"]
    assert problems([{"role": "assistant", "parts": [], "finish_reason": 1}], output=True)


def test_history_with_images_and_tool_calls_conforms() -> None:
    found = messages.input_messages(HISTORY, lambda text: text)
    assert not problems(found), found
    assert {p["type"] for m in found or () for p in m["parts"]} == {"text", "blob", "uri", "tool_call",
                                                                    "tool_call_response"}


@pytest.mark.parametrize("latest", [False, True])
@pytest.mark.parametrize("stream", [False, True])
def test_chat_on_the_span_conforms(recorded: Recorded, client: httpx.Client, latest: bool, stream: bool) -> None:
    runtime.genai_latest, policy.enabled = latest, True
    with client.stream("POST", "/chat/completions", json={**CHAT, "stream": stream}) as response:
        for _ in response.iter_bytes():
            pass
    span = recorded.span("chat tiny-llama").attributes
    inputs, outputs = json.loads(span[sc.GEN_AI_INPUT_MESSAGES]), json.loads(span[sc.GEN_AI_OUTPUT_MESSAGES])
    assert inputs and outputs
    assert not problems(inputs) and not problems(outputs, output=True)

