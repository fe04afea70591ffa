"""Ground truth for model calls: each scenario knows what it did and the telemetry must equal it exactly.

A scenario is one call to the recorded vLLM double over real HTTP by a real client (httpx sync and async,
the openai SDK sync and async, ``requests``), plain or streamed to the end or abandoned after the first
chunk, with or without ``stream_options.include_usage``, answered or failed, with ragotel alone or beside
another instrumentation of the same call (openai-v2, OpenLLMetry, contrib httpx / requests), in both GenAI
modes. What it did is the truth: one call, its outcome (completed, abandoned by the client, failed with a
known ``error.type``) and the usage the server sent. The telemetry must show exactly that:

* one GenAI span for the call, ended, whoever started it;
* its outcome: nothing for a completed call, ``rag.outcome=cancelled`` for an abandoned stream, ``error.type``
  and status ERROR for a failure;
* one duration record, across every instrumentation and both name sets;
* token records summing to the server's usage when the client read it, none when it never arrived;
* one ``rag.step.errors`` per failed call, none otherwise;
* with content on events (latest mode), one details event per call, and one exception event per failed call.

Nothing here is taken from ragotel's own model of a call: the expectations come from the scenario.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
import requests
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2Instrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor as ContribRequestsInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.test_official_instrumentations import _openai_methods

MESSAGES = [{"role": "user", "content": "When does the clinic open?"}]
CLIENTS = ("httpx", "httpx-async", "openai", "openai-async", "requests")
# How the call goes: answered whole, streamed and read to the end, streamed and dropped by the client after
# its first chunk, or failed by the server (500) or the connection (dropped mid-stream by the server).
MODES = ("plain", "stream", "abandon", "fault-500", "fault-drop")
# The failure each fault is, as the caller would name it.
FAULT_TYPES = {"fault-500": "http.5xx", "fault-drop": "connection"}
DETAILS = "gen_ai.client.inference.operation.details"
# Instrumentations of the openai SDK: their span is the call's, and ragotel enriches it.
SDK_INSTRUMENTATIONS = ("openai-v2", "openllmetry")
EXCEPTION = "gen_ai.client.inference.exception"


@dataclass(frozen=True)
class Scenario:
    client: str
    mode: str
    include_usage: bool
    beside: str
    latest: bool
    max_tokens: int = 16

    @property
    def streamed(self) -> bool:
        return self.mode in ("stream", "abandon", "fault-drop")

    @property
    def model(self) -> str:
        return self.mode if self.mode in FAULT_TYPES else "tiny-llama"

    def __str__(self) -> str:
        usage = "usage" if self.include_usage else "nousage"
        return f"{self.client}-{self.mode}-{usage}-{self.beside}-{'latest' if self.latest else 'default'}"


# What each other instrumentation sees: openai-v2 and OpenLLMetry wrap the SDK, contrib httpx / requests the
# transport. Each is paired with the clients it instruments.
BESIDE: dict[str, tuple[str, ...]] = {
    "nothing": CLIENTS,
    "openai-v2": ("openai", "openai-async"),
    "openllmetry": ("openai", "openai-async"),
    "contrib-httpx": ("httpx", "httpx-async", "openai"),
    "contrib-requests": ("requests",),
}


def _scenarios() -> list[Scenario]:
    found = []
    for beside, clients in BESIDE.items():
        for client, mode, usage, latest in itertools.product(clients, MODES, (False, True), (False, True)):
            if not usage or mode in ("stream", "abandon"):  # include_usage only changes streamed answers
                found.append(Scenario(client, mode, usage, beside, latest))
    return found


# What another instrumentation gets wrong on its own span, whatever ragotel does: strict, so a fixed release
# shows up here.
PEER_DEFECTS = {
    ("openai-async", "abandon", "openai-v2"): "openai-v2 2.4b0 wraps an async stream with a synchronous close() "
                                              "that ends its span without closing the response",
    ("openai", "fault-drop", "openllmetry"): "OpenLLMetry 0.62 sets status OK on a stream that broke",
    ("openai-async", "fault-drop", "openllmetry"): "OpenLLMetry 0.62 sets status OK on a stream that broke",
}
SCENARIOS = [pytest.param(s, id=str(s), marks=[pytest.mark.xfail(strict=True, reason=reason)]
                          if (reason := PEER_DEFECTS.get((s.client, s.mode, s.beside))) else [])
             for s in _scenarios()]


@dataclass
class Truth:
    """What the scenario did, as it saw it."""

    outcome: str  # "completed", "abandoned" or "failed"
    error_type: str | None = None


@pytest.fixture(scope="module")
def fast_server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer(chunk_delay=0.001) as srv:
        yield srv


@pytest.fixture(scope="module")
def slow_server() -> Iterator[RecordedOpenAIServer]:
    """Chunks far enough apart that a client dropping the stream after the first never receives the usage."""
    with RecordedOpenAIServer(chunk_delay=0.05) as srv:
        yield srv


@pytest.fixture
def beside(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ragotel's client instrumentations on, and the scenario's other instrumentation with them."""
    scenario: Scenario = request.param
    other: Any = {"openai-v2": OpenAIV2Instrumentor, "openllmetry": OpenLLMetryInstrumentor,
                  "contrib-httpx": HTTPXClientInstrumentor, "contrib-requests": ContribRequestsInstrumentor,
                  }.get(scenario.beside)
    before = _openai_methods()
    instrumentor = other() if other is not None else None
    if instrumentor is not None:
        instrumentor.instrument()
    ragotel.instrument_httpx()
    ragotel.instrument_requests()
    # Content on events, as the one variable every GenAI instrumentation reads asks for it (the details event
    # exists in the latest conventions only).
    saved = runtime.update(genai_latest=scenario.latest, content_events=scenario.latest)
    if scenario.latest:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVENT_ONLY")
    try:
        yield
    finally:
        runtime.swap(saved)
        ragotel.uninstrument_requests()
        ragotel.uninstrument_httpx()
        if instrumentor is not None:
            instrumentor.uninstrument()
        for (cls, attr), value in before.items():  # OpenLLMetry 0.62 leaves its wrappers behind
            if vars(cls).get(attr) is not value:
                setattr(cls, attr, value)


# -- the clients, each doing one call the way its users write it -----------------------------------------
def _body(s: Scenario) -> dict[str, Any]:
    """The request: the JSON body for the HTTP clients, the keyword arguments for the SDK."""
    body: dict[str, Any] = {"model": s.model, "messages": MESSAGES, "max_tokens": s.max_tokens}
    if s.streamed:
        body["stream"] = True
        if s.include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def _call_httpx(base_url: str, s: Scenario) -> Truth:
    with httpx.Client(base_url=base_url, timeout=5) as client:
        try:
            if not s.streamed:
                client.post("/chat/completions", json=_body(s)).raise_for_status()
                return Truth("completed")
            with client.stream("POST", "/chat/completions", json=_body(s)) as response:
                response.raise_for_status()
                for _ in response.iter_lines():
                    if s.mode == "abandon":
                        return Truth("abandoned")
            return Truth("completed")
        except httpx.HTTPStatusError:
            return Truth("failed", "http.5xx")
        except httpx.TransportError:
            return Truth("failed", "connection")


def _call_httpx_async(base_url: str, s: Scenario) -> Truth:
    async def call() -> Truth:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            try:
                if not s.streamed:
                    (await client.post("/chat/completions", json=_body(s))).raise_for_status()
                    return Truth("completed")
                async with client.stream("POST", "/chat/completions", json=_body(s)) as response:
                    response.raise_for_status()
                    async for _ in response.aiter_lines():
                        if s.mode == "abandon":
                            return Truth("abandoned")
                return Truth("completed")
            except httpx.HTTPStatusError:
                return Truth("failed", "http.5xx")
            except httpx.TransportError:
                return Truth("failed", "connection")

    return asyncio.run(call())


# A connection broken mid-stream: the openai SDK 3.x raises its APIConnectionError; 2.x (which LangChain's and
# LlamaIndex's OpenAI packages pin) lets httpx's error through while the stream is read.
OPENAI_CONNECTION_ERRORS = (openai.APIConnectionError, httpx.TransportError)


def _call_openai(base_url: str, s: Scenario) -> Truth:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=5)
    try:
        answer = client.chat.completions.create(**_body(s))
        if s.streamed:
            for _ in answer:
                if s.mode == "abandon":
                    answer.close()
                    return Truth("abandoned")
        return Truth("completed")
    except openai.APIStatusError:
        return Truth("failed", "http.5xx")
    except OPENAI_CONNECTION_ERRORS:
        return Truth("failed", "connection")
    finally:
        client.close()


def _call_openai_async(base_url: str, s: Scenario) -> Truth:
    async def call() -> Truth:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=5)
        try:
            answer = await client.chat.completions.create(**_body(s))
            if s.streamed:
                async for _ in answer:
                    if s.mode == "abandon":
                        closing = answer.close()
                        if inspect.isawaitable(closing):  # openai-v2 2.4b0's stream wrapper closes synchronously
                            await closing
                        return Truth("abandoned")
            return Truth("completed")
        except openai.APIStatusError:
            return Truth("failed", "http.5xx")
        except OPENAI_CONNECTION_ERRORS:
            return Truth("failed", "connection")
        finally:
            await client.close()

    return asyncio.run(call())


def _call_requests(base_url: str, s: Scenario) -> Truth:
    with requests.Session() as session:
        try:
            response = session.post(f"{base_url}/chat/completions", json=_body(s), stream=s.streamed,
                                    timeout=5)
            with response:
                response.raise_for_status()
                if s.streamed:
                    for _ in response.iter_lines():
                        if s.mode == "abandon":
                            return Truth("abandoned")
            return Truth("completed")
        except requests.HTTPError:
            return Truth("failed", "http.5xx")
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            return Truth("failed", "connection")


CALLS: dict[str, Callable[[str, Scenario], Truth]] = {
    "httpx": _call_httpx, "httpx-async": _call_httpx_async, "openai": _call_openai,
    "openai-async": _call_openai_async, "requests": _call_requests,
}


# -- what the telemetry says ---------------------------------------------------------------------------
def genai_spans(recorded: Recorded) -> list[ReadableSpan]:
    return [s for s in recorded.spans() if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) == "chat"]


DURATIONS = (sc.GEN_AI_CLIENT_OPERATION_DURATION, "gen_ai.client.inference.duration")


def tokens(recorded: Recorded, token_type: str) -> float:
    total = 0.0
    for point in recorded.points():
        if point.name == sc.GEN_AI_CLIENT_TOKEN_USAGE and point.attributes.get(sc.GEN_AI_TOKEN_TYPE) == token_type:
            total += point.sum or 0
        elif point.name == f"gen_ai.client.inference.usage.{token_type}_tokens":
            total += point.value or 0
    return total


@pytest.mark.parametrize("beside", SCENARIOS, indirect=True)
def test_one_call_is_recorded_as_it_happened(
    recorded: Recorded, fast_server: RecordedOpenAIServer, slow_server: RecordedOpenAIServer, beside: None,
    request: pytest.FixtureRequest,
) -> None:
    scenario: Scenario = request.node.callspec.params["beside"]
    server = slow_server if scenario.mode == "abandon" else fast_server
    server.sent_usage.clear()
    truth = CALLS[scenario.client](server.base_url, scenario)
    expected_outcome = "failed" if scenario.mode in FAULT_TYPES else (
        "abandoned" if scenario.mode == "abandon" else "completed")
    assert truth.outcome == expected_outcome, truth  # the scenario did what it meant to
    if scenario.mode in FAULT_TYPES:
        assert truth.error_type == FAULT_TYPES[scenario.mode]

    spans = genai_spans(recorded)
    assert len(spans) == 1, [(s.name, s.instrumentation_scope) for s in recorded.spans()]
    assert recorded.open_spans() == []
    (span,) = spans
    attrs = dict(span.attributes or {})

    # the outcome
    if truth.outcome == "completed":
        assert sc.RAG_OUTCOME not in attrs and sc.ERROR_TYPE not in attrs, attrs
        assert span.status.status_code is not StatusCode.ERROR
    elif truth.outcome == "abandoned":
        assert attrs.get(sc.RAG_OUTCOME) == "cancelled" and sc.ERROR_TYPE not in attrs, attrs
    elif scenario.beside in SDK_INSTRUMENTATIONS:
        # Their span: they set its error.type last, by their own rule (the exception's class); the failure
        # metric below is ragotel's, by the rule every ragotel record follows.
        assert attrs.get(sc.ERROR_TYPE) and span.status.status_code is StatusCode.ERROR, attrs
    else:
        assert attrs.get(sc.ERROR_TYPE) == truth.error_type, attrs
        assert span.status.status_code is StatusCode.ERROR

    # one duration record for the one call, whoever made it and under whichever name
    assert sum(p.count or 0 for p in recorded.points() if p.name in DURATIONS) == 1, [
        (p.name, p.count) for p in recorded.points() if p.name in DURATIONS]

    # tokens: what the server sent, when the client read it to the end; none otherwise
    usage = server.sent_usage[-1] if truth.outcome == "completed" and server.sent_usage else None
    assert tokens(recorded, "input") == (usage["prompt_tokens"] if usage else 0)
    assert tokens(recorded, "output") == (usage["completion_tokens"] if usage else 0)

    # each failure counted once, by its kind
    errors = recorded.points(sc.RAG_STEP_ERRORS)
    assert [(p.attributes.get(sc.ERROR_TYPE), p.value) for p in errors] == (
        [(truth.error_type, 1)] if truth.outcome == "failed" else []), [(p.attributes, p.value) for p in errors]

    # the events of the latest conventions: one details event per call, one exception event per failure
    if scenario.latest:
        names = [str(getattr(r, "event_name", None) or (r.attributes or {}).get("event.name"))
                 for r in (getattr(log, "log_record", log) for log in recorded.logs())]
        assert names.count(DETAILS) == 1, names
        assert names.count(EXCEPTION) == (1 if truth.outcome == "failed" else 0), names
