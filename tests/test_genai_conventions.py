"""GenAI conventions as they are now: token parts, cached-input prices, conversation ids, the message-parts
schema, the content-capture switch and its two modes, rerank/score calls, names from the semconv package."""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletion

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime, settings
from ragotel._genai import messages
from ragotel._genai.cost import ModelPrice, PriceTable, set_prices
from ragotel._genai.protocol import ResponseFacts, read_usage
from tests.conftest import Recorded
from tests.http_double import HttpDouble
from tests.recorded_openai_server import RECORDINGS, RecordedOpenAIServer
from tests.test_released_names import package_names

CHAT = {"model": "tiny-llama", "messages": [
    {"role": "system", "content": "Answer from the context."},
    {"role": "user", "content": "When does the clinic open?"}], "max_tokens": 16}
SDK_COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "tiny-llama",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "opening_hours", "arguments": '{"day":"mon"}'}}]}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140,
              "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 12}},
}


@pytest.fixture
def server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as srv:
        yield srv


@pytest.fixture
def client(server: RecordedOpenAIServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as c:
        ragotel.instrument_httpx(c)
        yield c


def tokens_by_type(recorded: Recorded) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in recorded.points(sc.GEN_AI_CLIENT_TOKEN_USAGE):
        out[p.attributes[sc.GEN_AI_TOKEN_TYPE]] = out.get(p.attributes[sc.GEN_AI_TOKEN_TYPE], 0) + (p.sum or 0)
    return out


# --- token parts ---------------------------------------------------------------------------------
def test_usage_shapes_are_read_as_the_conventions_count_them() -> None:
    openai_chat = read_usage(SDK_COMPLETION["usage"])
    assert (openai_chat.input, openai_chat.output, openai_chat.cache_read, openai_chat.reasoning) == (120, 20, 100, 12)
    vllm = read_usage({"prompt_tokens": 50, "completion_tokens": 5,
                       "prompt_tokens_details": {"cached_tokens": 16, "created_cache_tokens": 34}})
    assert (vllm.input, vllm.cache_read, vllm.cache_write) == (50, 16, 34)
    responses = read_usage({"input_tokens": 10, "output_tokens": 4, "input_tokens_details": {"cached_tokens": 6},
                            "output_tokens_details": {"reasoning_tokens": 2}})
    assert (responses.input, responses.output, responses.cache_read, responses.reasoning) == (10, 4, 6, 2)
    # Anthropic leaves cache reads and writes out of input_tokens; the conventions' input includes them.
    anthropic = read_usage({"input_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
                            "output_tokens": 7})
    assert (anthropic.input, anthropic.cache_read, anthropic.cache_write) == (125, 100, 20)
    assert read_usage({"prompt_tokens": True}).input is None  # a boolean is no count


def test_http_call_records_token_parts_on_span_and_metric(recorded: Recorded, client: httpx.Client) -> None:
    client.post("/chat/completions", json={**CHAT, "model": "usage-details"})
    span = recorded.span("chat usage-details").attributes
    assert span[sc.GEN_AI_USAGE_INPUT_TOKENS] == 41
    assert span[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 32
    assert span[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 9  # the released name, by default
    assert sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS not in span
    assert span[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 3
    assert tokens_by_type(recorded) == {"input": 41, "output": 7, "cache_read": 32, "cache_write": 9, "reasoning": 3}


def test_latest_conventions_rename_cache_creation_to_cache_write(recorded: Recorded, client: httpx.Client) -> None:
    runtime.update(genai_latest=True)
    client.post("/chat/completions", json={**CHAT, "model": "usage-details"})
    span = recorded.span("chat usage-details").attributes
    assert span[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 9
    assert sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS not in span


def test_a_provider_without_details_records_no_parts(recorded: Recorded, client: httpx.Client) -> None:
    client.post("/chat/completions", json=CHAT)
    span = recorded.span("chat tiny-llama").attributes
    assert sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS not in span and sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS not in span
    assert set(tokens_by_type(recorded)) == {"input", "output"}


# A server newer than the conventions: parts no convention names, in shapes of every kind, beside known ones.
UNKNOWN_PARTS = {
    "prompt_tokens": 41, "completion_tokens": 7, "total_tokens": 48,
    "prompt_tokens_details": {"cached_tokens": 32, "image_tokens": 5, "cache_write_1h": {"tokens": 2}},
    "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": [1, 2], "accepted_prediction_tokens": "n/a"},
    "video_tokens_details": {"frames": 9, "tokens": 12.5}, "server_tool_use": None,
}


def _unknown_parts_server() -> HttpDouble:
    """A real HTTP server answering chat, whole or streamed, with :data:`UNKNOWN_PARTS` as its usage."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = json.loads((RECORDINGS / "chat_completion.json").read_bytes())
            answer["usage"] = UNKNOWN_PARTS
            content_type, payload = "application/json", json.dumps(answer).encode()
            if body.get("stream"):
                delta = {"id": answer["id"], "model": answer["model"], "choices": [
                    {"index": 0, "delta": {"content": "Eight."}, "finish_reason": "stop"}]}
                usage = {"id": answer["id"], "model": answer["model"], "choices": [], "usage": UNKNOWN_PARTS}
                content_type = "text/event-stream"
                payload = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (delta, usage))
                payload += b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return HttpDouble(Handler)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_usage_parts_no_convention_knows_never_break_recording(
    recorded: Recorded, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    with _unknown_parts_server() as server, httpx.Client(base_url=server.url) as client:
        ragotel.instrument_httpx(client)
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": stream}) as response:
            response.read()
    span = recorded.span("chat tiny-llama").attributes
    assert (span[sc.GEN_AI_USAGE_INPUT_TOKENS], span[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (41, 7)
    assert (span[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS], span[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS]) == (32, 3)
    assert span[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",) and sc.ERROR_TYPE not in span
    assert tokens_by_type(recorded) == {"input": 41, "output": 7, "cache_read": 32, "reasoning": 3}
    assert "telemetry error" not in caplog.text


def test_a_usage_object_that_fails_to_read_loses_only_the_usage(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        prompt_tokens = 41

        @property
        def prompt_tokens_details(self) -> Any:
            raise RuntimeError("a newer SDK's lazy field")

    facts = ResponseFacts.of({"id": "c-1", "model": "tiny-llama", "usage": Failing(),
                              "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "Hi"}}]},
                             keep_text=False)
    assert facts is not None and facts.usage == read_usage(None)
    assert (facts.model, facts.finish_reasons, facts.text_chars) == ("tiny-llama", ["stop"], 2)
    assert "reading a response's usage" in caplog.text


def test_generation_step_reads_an_sdk_object_with_the_same_reader(recorded: Recorded) -> None:
    completion = ChatCompletion.model_validate(SDK_COMPLETION)

    @ragotel.generation(model="tiny-llama")
    def generate() -> ChatCompletion:
        return completion

    generate()
    span = recorded.span("chat tiny-llama").attributes
    assert span[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert span[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 12
    assert span[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert span[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-1"
    assert tokens_by_type(recorded) == {"input": 120, "output": 20, "cache_read": 100, "reasoning": 12}
    dict_facts = ResponseFacts.of(SDK_COMPLETION, keep_text=True)
    object_facts = ResponseFacts.of(completion, keep_text=True)
    assert dict_facts == object_facts and dict_facts is not None and dict_facts.usage.cache_read == 100


def test_step_record_takes_token_parts(recorded: Recorded) -> None:
    with ragotel.generation(model="m") as step:
        step.record(input_tokens=10, output_tokens=2, cache_read_tokens=8, reasoning_tokens=1)
    span = recorded.span("chat m").attributes
    assert (span[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS], span[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS]) == (8, 1)


# --- prices --------------------------------------------------------------------------------------
def test_cached_input_is_priced_apart(recorded: Recorded, tmp_path: Path) -> None:
    price = ModelPrice(input_per_million=1.0, output_per_million=4.0, cached_input_per_million=0.1)
    assert price.cost(1_000_000, 0, cache_read=800_000) == pytest.approx(0.2 + 0.08)
    assert ModelPrice(input_per_million=1.0).cost(1_000_000, 0, cache_read=800_000) == pytest.approx(1.0)
    writes = ModelPrice(input_per_million=3.0, cache_write_per_million=3.75)
    assert writes.cost(1_000_000, 0, cache_write=1_000_000) == pytest.approx(3.75)
    file = tmp_path / "prices.toml"
    file.write_text('[models."tiny-llama"]\ninput_per_million = 1.0\ncached_input_per_million = 0.1\n'
                    'output_per_million = 4.0\n')
    assert PriceTable.from_file(file).price("tiny-llama") == price
    with pytest.raises(ValueError):
        ModelPrice(cached_input_per_million=-1)
    set_prices({"tiny-llama": price})
    try:
        @ragotel.generation(model="tiny-llama")
        def generate() -> dict[str, Any]:
            return SDK_COMPLETION

        generate()
    finally:
        set_prices({})
    # 20 uncached at 1.0, 100 cached at 0.1, 20 output at 4.0 (per million)
    assert recorded.span("chat tiny-llama").attributes[sc.RAG_COST] == pytest.approx((20 + 10 + 80) / 1e6)


# --- conversation id -----------------------------------------------------------------------------
def test_conversation_id_is_on_every_span_of_its_pipeline(recorded: Recorded, client: httpx.Client) -> None:
    with ragotel.pipeline("chat", conversation_id="conv-7"):
        with ragotel.retrieval("search"), ragotel.embedding("embed"):
            pass
        with ragotel.generation("answer"):
            client.post("/chat/completions", json=CHAT)
    with ragotel.pipeline("chat"), ragotel.retrieval("search"):  # another run, without one
        pass
    spans = recorded.spans()
    tagged = {s.name for s in spans if (s.attributes or {}).get(sc.GEN_AI_CONVERSATION_ID) == "conv-7"}
    assert tagged == {"invoke_workflow chat", "retrieval search", "embeddings embed", "chat answer", "chat tiny-llama"}
    assert sum(1 for s in spans if sc.GEN_AI_CONVERSATION_ID not in (s.attributes or {})) == 2
    for point in recorded.points():  # an id per conversation is no metric label
        assert sc.GEN_AI_CONVERSATION_ID not in point.attributes


async def test_a_decorated_pipeline_reads_its_conversation_id_argument(recorded: Recorded) -> None:
    @ragotel.prompt("build")
    def build() -> list[dict[str, str]]:
        return [{"role": "user", "content": "hi"}]

    @ragotel.pipeline("chat")
    async def answer(question: str, conversation_id: str | None = None) -> str:
        build()
        return question

    await answer("q", conversation_id="conv-9")
    assert recorded.span("prompt build").attributes[sc.GEN_AI_CONVERSATION_ID] == "conv-9"
    with ragotel.pipeline("later") as step:
        step.record(conversation_id="conv-10")
        with ragotel.retrieval("search"):
            pass
    assert recorded.span("retrieval search").attributes[sc.GEN_AI_CONVERSATION_ID] == "conv-10"


# --- named prompt templates -----------------------------------------------------------------------
def test_a_prompt_template_names_the_model_calls_that_use_it(recorded: Recorded, client: httpx.Client) -> None:
    """gen_ai.prompt.name / .version on the prompt step and on the model calls after it in its pipeline
    (the conventions put them on the inference span); not on other steps, not on other pipelines' calls."""
    with ragotel.pipeline("chat"):
        with ragotel.retrieval("search"):
            pass
        with ragotel.prompt("build", template="clinic-answer", version="3"):
            pass
        with ragotel.generation("answer"):
            client.post("/chat/completions", json=CHAT)
        client.post("/chat/completions", json=CHAT)  # a second call, outside any generation step
        client.post("/embeddings", json={"model": "tiny-llama", "input": ["q"]})
    with ragotel.pipeline("other"), ragotel.prompt(template="no-version"):
        client.post("/chat/completions", json=CHAT)
    with ragotel.pipeline("plain"):  # no prompt step: nothing to name
        client.post("/chat/completions", json=CHAT)

    named = {(s.name, attrs.get(sc.GEN_AI_PROMPT_NAME), attrs.get(sc.GEN_AI_PROMPT_VERSION))
             for s in recorded.spans() if sc.GEN_AI_PROMPT_NAME in (attrs := dict(s.attributes or {}))}
    chat_spans = [s for s in recorded.spans() if s.name == "chat tiny-llama"]
    assert len(chat_spans) == 4
    assert named == {("prompt clinic-answer", "clinic-answer", "3"), ("chat answer", "clinic-answer", "3"),
                     ("chat tiny-llama", "clinic-answer", "3"), ("prompt no-version", "no-version", None),
                     ("chat tiny-llama", "no-version", None)}
    assert sum(1 for s in chat_spans if sc.GEN_AI_PROMPT_NAME in (s.attributes or {})) == 3
    for point in recorded.points():  # a template name is no metric label
        assert sc.GEN_AI_PROMPT_NAME not in point.attributes


# --- message parts -------------------------------------------------------------------------------
def test_messages_in_the_parts_schema_are_cut_part_by_part() -> None:
    def clean(text: str) -> str | None:
        return text[:8]

    found = messages.input_messages([
        {"role": "system", "content": "Answer from the context only."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "opening hours 8-5"},
    ], clean)
    assert found == [
        {"role": "system", "parts": [{"type": "text", "content": "Answer f"}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is "},
                                   {"type": "blob", "modality": "image", "content": "AAAA", "mime_type": "image/png"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "name": "lookup", "arguments": {"q": 1}, "id": "c1"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "response": "opening ", "id": "c1"}]},
    ]
    assert json.loads(messages.dumps(found)) == found
    assert messages.prompt_messages(["a", "b"], clean) == [
        {"role": "user", "parts": [{"type": "text", "content": "a"}]},
        {"role": "user", "parts": [{"type": "text", "content": "b"}]}]


def test_streamed_answer_is_one_output_message(recorded: Recorded, client: httpx.Client) -> None:
    runtime.update(content_spans=True)
    with client.stream("POST", "/chat/completions", json={**CHAT, "stream": True}) as response:
        for _ in response.iter_bytes():
            pass
    span = recorded.span("chat tiny-llama").attributes
    inputs = json.loads(span[sc.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in inputs] == ["system", "user"]  # a chat's system message stays in its history
    (output,) = json.loads(span[sc.GEN_AI_OUTPUT_MESSAGES])
    assert output["role"] == "assistant" and output["finish_reason"] == "stop"
    assert output["parts"][0]["type"] == "text" and output["parts"][0]["content"].startswith("The clinic")


def test_sdk_tool_calls_and_reasoning_become_parts(recorded: Recorded) -> None:
    runtime.update(content_spans=True)
    completion = json.loads(json.dumps(SDK_COMPLETION))
    completion["choices"][0]["message"]["reasoning_content"] = "Need the hours."

    @ragotel.generation(model="tiny-llama")
    def generate() -> dict[str, Any]:
        return completion

    generate()
    span = recorded.span("chat tiny-llama").attributes
    (output,) = json.loads(span[sc.GEN_AI_OUTPUT_MESSAGES])
    assert output["parts"] == [{"type": "reasoning", "content": "Need the hours."},
                               {"type": "text", "content": "Checking."},
                               {"type": "tool_call", "name": "opening_hours", "arguments": {"day": "mon"},
                                "id": "call_1"}]
    assert span[sc.RAG_GENERATION_REASONING_CHARS] == len("Need the hours.")


# --- the capture switch and the two modes -------------------------------------------------------
@pytest.mark.parametrize(("environ", "spans", "events"), [
    ({}, False, False),
    ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}, True, False),
    ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "False"}, False, False),
    ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,gen_ai_latest_experimental",
      "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}, True, False),
    ({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
      "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only"}, False, True),
    ({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
      "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_AND_EVENT"}, True, True),
    ({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
      "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"}, False, False),
    # ragotel's own switch, when given, decides
    ({"RAGOTEL_CAPTURE_CONTENT": "false", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}, False, False),
    ({"RAGOTEL_CAPTURE_CONTENT": "true"}, True, False),
])
def test_where_content_goes(environ: dict[str, str], spans: bool, events: bool) -> None:
    resolved = settings.resolve(environ=environ)
    assert not resolved.problems
    assert (resolved["content_spans"], resolved["content_events"]) == (spans, events)


@pytest.mark.parametrize(("environ", "value"), [
    ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}, "SPAN_ONLY"),  # needs the latest mode
    ({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
      "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}, "true"),  # not a mode there
    ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "yes please"}, "yes please"),
])
def test_a_value_from_the_other_mode_is_named_and_capture_stays_off(environ: dict[str, str], value: str) -> None:
    resolved = settings.resolve(environ=environ)
    (problem,) = resolved.problems
    assert problem.setting == "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" and problem.value == value
    assert "content capture stays off" in problem.message()
    assert (resolved["content_spans"], resolved["content_events"]) == (False, False)


def test_event_only_puts_structured_messages_on_the_details_event(recorded: Recorded, client: httpx.Client) -> None:
    runtime.update(genai_latest=True, content_events=True)
    client.post("/chat/completions", json=CHAT)
    span = recorded.span("chat tiny-llama")
    assert sc.GEN_AI_INPUT_MESSAGES not in span.attributes and sc.GEN_AI_OUTPUT_MESSAGES not in span.attributes
    (record,) = [r.log_record for r in recorded.logs() if r.log_record.event_name == sc.GEN_AI_INFERENCE_DETAILS_EVENT]
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    attrs = record.attributes
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == "tiny-llama" and attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 7
    inputs = attrs[sc.GEN_AI_INPUT_MESSAGES]
    assert inputs[1]["parts"][0]["content"] == "When does the clinic open?"  # structured, not JSON text
    (output,) = attrs[sc.GEN_AI_OUTPUT_MESSAGES]
    assert "finish_reason" not in output  # the newest schema moved it to gen_ai.response.finish_reasons


def test_no_details_event_unless_content_goes_to_events(recorded: Recorded, client: httpx.Client) -> None:
    runtime.update(genai_latest=True, content_spans=True)
    client.post("/chat/completions", json=CHAT)
    assert not [r for r in recorded.logs() if r.log_record.event_name == sc.GEN_AI_INFERENCE_DETAILS_EVENT]


def test_configure_warns_once_naming_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    resolved = settings.resolve({"genai_content": "EVENT_ONLY"}, environ={})
    assert [p.setting for p in resolved.problems] == ["genai_content"]
    with caplog.at_level(logging.WARNING):
        logging.getLogger("ragotel").warning("%s", resolved.problems[0].message())
    assert "EVENT_ONLY" in caplog.text and "gen_ai_latest_experimental" in caplog.text


# --- rerank and score calls to vLLM --------------------------------------------------------------
def test_rerank_call_is_a_rerank_step(recorded: Recorded, client: httpx.Client) -> None:
    documents = ["Open at eight.", "The cat sat on the mat.", "Retry the request after a timeout."]
    response = client.post("/rerank", json={"model": "tiny-reranker", "query": "when?", "documents": documents,
                                            "top_n": 2})
    assert response.json() == json.loads((RECORDINGS / "vllm_rerank.json").read_bytes())  # unchanged for the caller
    span = recorded.span("rerank tiny-reranker")
    attrs = span.attributes
    assert attrs[sc.RAG_STEP_KIND] == "rerank" and sc.GEN_AI_OPERATION_NAME not in attrs
    assert (attrs[sc.RAG_RERANK_INPUT_DOCUMENTS], attrs[sc.RAG_RERANK_TOP_N]) == (3, 2)
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(0.5195233225822449)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 54 and attrs[sc.GEN_AI_RESPONSE_ID] == "score-956383b93816352d"
    (duration,) = recorded.points(sc.RAG_STEP_DURATION)
    assert duration.attributes[sc.RAG_STEP_KIND] == "rerank" and duration.attributes[sc.RAG_STEP_NAME] == "rerank"
    assert duration.attributes[sc.RAG_RETRIEVAL_QUALITY] == "ok" and duration.attributes[sc.RAG_OUTCOME] == "ok"
    assert not recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert not recorded.points(sc.GEN_AI_CLIENT_TOKEN_USAGE)


def test_score_call_and_a_rerank_step_around_it(recorded: Recorded, client: httpx.Client) -> None:
    with ragotel.rerank("rescore"):
        client.post("/score", json={"model": "tiny-reranker", "text_1": "when?", "text_2": ["a", "b"]})
    call = recorded.span("rerank tiny-reranker").attributes
    assert (call[sc.RAG_RERANK_INPUT_DOCUMENTS], call[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (2, 2)
    assert call[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(0.5193663835525513)
    durations = recorded.points(sc.RAG_STEP_DURATION)
    assert [p.attributes[sc.RAG_STEP_NAME] for p in durations] == ["rescore"]  # the call is not timed twice


def test_a_refused_rerank_is_an_error(recorded: Recorded, client: httpx.Client) -> None:
    response = client.post("/v1/rerank", json={"model": "tiny-reranker", "documents": ["a"]})
    assert response.status_code == 400
    span = recorded.span("rerank tiny-reranker")
    assert span.attributes[sc.ERROR_TYPE] == "http.4xx"
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert error.attributes[sc.RAG_STEP_KIND] == "rerank"


def test_streamed_retrieval_scores_are_read(recorded: Recorded) -> None:
    @ragotel.retrieval("stream")
    def search() -> Iterator[dict[str, Any]]:
        yield {"id": "a", "score": 0.9}
        yield {"id": "b", "score": 0.4}

    assert len(list(search())) == 2
    attrs = recorded.span("retrieval stream").attributes
    assert (attrs[sc.RAG_RETRIEVAL_SCORE_MAX], attrs[sc.RAG_RETRIEVAL_SCORE_MIN]) == (0.9, 0.4)


# --- names come from the semconv package ---------------------------------------------------------
def test_no_name_the_semconv_package_defines_is_spelled_by_hand() -> None:
    source = Path(sc.__file__).read_text()
    literals = {node.value for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    spelled = sorted(literals & package_names())
    assert not spelled, f"import these from opentelemetry.semconv instead: {spelled}"
    imported = [v for k, v in vars(sc).items() if k.isupper() and isinstance(v, str) and v in package_names()]
    assert len(imported) >= 40  # the GenAI, HTTP, server, error, resource names


def test_every_query_of_the_token_metric_names_the_token_type() -> None:
    """cache_read, cache_write and reasoning are parts of input and output: a query over every type counts
    them twice (sums) or counts one call several times (``_count``). The latest conventions' counters are
    one per type: a query reads the input and output ones only."""
    from dashboards import promql as q
    from dashboards.queries import alert_queries, dashboard_queries

    parts = {sc.prometheus_name(sc.INFERENCE_USAGE_COUNTERS[kind], sc.UNIT_TOKEN, counter=True)
             for kind in ("cache_read", "cache_write", "reasoning")}
    queries = dashboard_queries() + alert_queries()
    checked = [query for query in queries if q.TOKEN_USAGE in query.expr]
    assert checked
    for query in checked:
        assert q.TOKEN_TYPE in query.expr, (query.source, query.expr)
    assert [query.source for query in queries if query.metrics() & parts] == []


# --- the reference app ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/chat", "/chat/stream"])
async def test_the_chat_api_tags_a_conversation(recorded: Recorded, path: str) -> None:
    from examples.reference_app.chat_api import create_app
    from examples.reference_app.config import ChatSettings
    from tests.retriever_double import RetrieverDouble

    with RecordedOpenAIServer() as vllm, RetrieverDouble() as retriever:
        app = create_app(ChatSettings(retriever_url=retriever.url, vllm_url=vllm.base_url))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as chat:
            ok = await chat.post(path, json={"question": "Is there parking?", "max_tokens": 8,
                                             "conversation_id": "session-42"})
            bad = await chat.post(path, json={"question": "Is there parking?", "conversation_id": "a b\n"})
    assert ok.status_code == 200 and bad.status_code == 422
    names = {s.name for s in recorded.spans() if (s.attributes or {}).get(sc.GEN_AI_CONVERSATION_ID) == "session-42"}
    workflow = "invoke_workflow chat" if path == "/chat" else "invoke_workflow chat_stream"
    # the pipeline, its steps and the model call; the retriever service's own spans know no conversation
    assert names == {workflow, "prompt rag-v1", "retrieval retriever", "chat tiny-llama"}


def test_a_generation_step_emits_the_details_event_when_no_http_call_did(recorded: Recorded) -> None:
    runtime.update(genai_latest=True, content_events=True)

    @ragotel.generation(model="m")
    def generate() -> dict[str, Any]:
        return SDK_COMPLETION

    generate()
    span = recorded.span("chat m")
    assert sc.GEN_AI_OUTPUT_MESSAGES not in span.attributes  # EVENT_ONLY: not on the span
    (record,) = [r.log_record for r in recorded.logs() if r.log_record.event_name == sc.GEN_AI_INFERENCE_DETAILS_EVENT]
    assert record.span_id == span.context.span_id
    (output,) = record.attributes[sc.GEN_AI_OUTPUT_MESSAGES]
    assert output["parts"][0] == {"type": "text", "content": "Checking."}
    assert record.attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 100
