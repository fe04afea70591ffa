"""Captured content conforms to the GenAI conventions' schemas (checked by tests/message_schema.py): messages of
chat, streamed chat and tool calls, retrieval documents; embeddings and chat history carry none of the content
the conventions keep elsewhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._genai import messages
from tests.conftest import Recorded
from tests.http_double import HttpDouble
from tests.message_schema import problems, retrieval_document_problems, system_instruction_problems
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.test_genai_conventions import CHAT, SDK_COMPLETION

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
    assert system_instruction_problems([{"type": "text"}, {"content": "x"}]) == [
        "0: text lacks a string content", "1: part without a string type"]
    assert not system_instruction_problems([{"type": "text", "content": "Be brief."}, {"type": "tool_use"}])
    assert retrieval_document_problems([{"id": 7, "score": "high"}, "x"]) == [
        "0: id not a string", "0: score not a number", "1: not an object"]
    assert not retrieval_document_problems([{"id": "a", "score": 0.5, "content": "x"}, {"score": None}])


def test_history_with_images_and_tool_calls_conforms() -> None:
    found = messages.input_messages(HISTORY, lambda text: text)
    assert not problems(found), found
    assert {p["type"] for m in found or () for p in m["parts"]} == {"text", "blob", "uri", "tool_call",
                                                                    "tool_call_response"}


FILES_AND_AUDIO = [{"role": "user", "content": [
    {"type": "text", "text": "Summarise the leaflet and the voicemail."},
    {"type": "file", "file": {"file_id": "file-123"}},
    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    {"type": "file", "file": {"file_data": "data:image/jpeg;base64,/9j/"}},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    {"type": "refusal_hint", "x": 1}]}]


def test_files_and_audio_get_the_conventions_modalities() -> None:
    (message,) = messages.input_messages(FILES_AND_AUDIO, lambda text: text) or ()
    assert not problems([message]), message
    assert [(p["type"], p.get("modality"), p.get("mime_type")) for p in message["parts"]] == [
        ("text", None, None), ("file", "document", None), ("blob", "document", "application/pdf"),
        ("blob", "image", "image/jpeg"), ("blob", "audio", "audio/wav"), ("refusal_hint", None, None)]
    # Inline data passes the content policy like text: dropped, the part goes with it.
    (dropped,) = messages.input_messages(FILES_AND_AUDIO, lambda text: text if " " in text else None) or ()
    assert [p["type"] for p in dropped["parts"]] == ["text", "file", "refusal_hint"]


@pytest.mark.parametrize("latest", [False, True])
@pytest.mark.parametrize("stream", [False, True])
def test_chat_on_the_span_conforms(recorded: Recorded, client: httpx.Client, latest: bool, stream: bool) -> None:
    runtime.update(genai_latest=latest, content_spans=True)
    with client.stream("POST", "/chat/completions", json={**CHAT, "stream": stream}) as response:
        for _ in response.iter_bytes():
            pass
    span = recorded.span("chat tiny-llama").attributes
    inputs, outputs = json.loads(span[sc.GEN_AI_INPUT_MESSAGES]), json.loads(span[sc.GEN_AI_OUTPUT_MESSAGES])
    assert inputs and outputs
    assert not problems(inputs) and not problems(outputs, output=True)



def test_system_messages_of_a_chat_stay_in_its_input_messages(recorded: Recorded, client: httpx.Client) -> None:
    """The conventions keep instructions that are part of the chat history in gen_ai.input.messages;
    gen_ai.system_instructions is for APIs that take them apart from it (not an OpenAI-compatible chat)."""
    runtime.update(content_spans=True)
    client.post("/chat/completions", json={**CHAT, "messages": HISTORY[:1] + CHAT["messages"]})
    span = recorded.span("chat tiny-llama").attributes
    inputs = json.loads(span[sc.GEN_AI_INPUT_MESSAGES])
    assert not problems(inputs) and inputs[0]["role"] == "system"
    system = [part for message in inputs if message["role"] == "system" for part in message["parts"]]
    assert system and not system_instruction_problems(system)  # as instructions, they would conform too
    assert sc.GEN_AI_SYSTEM_INSTRUCTIONS not in span


def test_retrieval_documents_conform(recorded: Recorded) -> None:
    hits = [{"id": 17, "score": 0.82, "text": "Parking is free."}, ("doc-b", 0.5), {"text": "no id, no score"}]
    with ragotel.retrieval("search") as step:  # content capture off: no documents at all
        step.record(documents=hits)
    runtime.update(content_spans=True)
    with ragotel.retrieval("captured") as step:
        step.record(documents=hits)
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in recorded.span("retrieval search").attributes
    documents = json.loads(recorded.span("retrieval captured").attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS])
    assert not retrieval_document_problems(documents), documents
    assert [(d.get("id"), d.get("score")) for d in documents] == [("17", 0.82), (None, 0.5), (None, None)]


def test_embeddings_carry_no_message_content(recorded: Recorded, client: httpx.Client) -> None:
    """The conventions define no content attribute for embeddings: nothing to conform, nothing captured."""
    runtime.update(content_spans=True)
    client.post("/embeddings", json={"model": "tiny-embed", "input": ["When do you open?"]})
    (span,) = [s for s in recorded.spans() if s.name == "embeddings tiny-embed"]
    content = {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS}
    assert not content & set(span.attributes or {})


class _ToolCallServer(BaseHTTPRequestHandler):
    """Answers every chat with a tool call: whole, or streamed as the OpenAI API streams one (id and name
    first, the arguments in pieces)."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not body.get("stream"):
            payload = json.dumps(SDK_COMPLETION).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        deltas = [{"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                         "function": {"name": "opening_hours", "arguments": ""}}]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": '{"day":'}}]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": '"mon"}'}}]}]
        chunks = [{"id": "c", "object": "chat.completion.chunk", "model": "tiny-llama",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
        chunks.append({"id": "c", "object": "chat.completion.chunk", "model": "tiny-llama",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_from_the_server_conform(recorded: Recorded, stream: bool) -> None:
    runtime.update(content_spans=True)
    with HttpDouble(_ToolCallServer) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        ragotel.instrument_httpx(client)
        request = {**CHAT, "messages": HISTORY, "stream": stream, "stream_options": {"include_usage": False}}
        with client.stream("POST", "/v1/chat/completions", json=request) as response:
            for _ in response.iter_bytes():
                pass
    span = recorded.span("chat tiny-llama").attributes
    inputs, outputs = json.loads(span[sc.GEN_AI_INPUT_MESSAGES]), json.loads(span[sc.GEN_AI_OUTPUT_MESSAGES])
    assert not problems(inputs) and not problems(outputs, output=True), outputs
    calls = [part for message in outputs for part in message["parts"] if part["type"] == "tool_call"]
    assert calls == [{"type": "tool_call", "name": "opening_hours", "arguments": {"day": "mon"}, "id": "call_1"}]
