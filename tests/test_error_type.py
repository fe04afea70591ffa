"""One ``error.type`` rule for steps, HTTP client calls, server spans and their metrics: a step around a
failing call records what the call records, whichever client made it, against the recorded
OpenAI-compatible server over real HTTP (a 5xx, a timeout) and a closed port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
import requests
import urllib3
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import ragotel
from ragotel import semconv as sc
from ragotel._core.errors import error_type
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

CHAT = {"messages": [{"role": "user", "content": "When does the clinic open?"}], "max_tokens": 8}
TIMEOUT = 0.3  # fault-slow answers after 2 s


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as srv:
        yield srv


def with_httpx(base_url: str, model: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        client.post("/chat/completions", json={**CHAT, "model": model}).raise_for_status()


def with_requests(base_url: str, model: str) -> None:
    requests.post(f"{base_url}/chat/completions", json={**CHAT, "model": model}, timeout=TIMEOUT).raise_for_status()


def with_openai(base_url: str, model: str) -> None:
    sdk = openai.OpenAI(base_url=base_url, api_key="sk-test-not-a-secret", timeout=TIMEOUT, max_retries=0)
    sdk.chat.completions.create(model=model, **CHAT)


Client = Callable[[str, str], None]
# (client, fault, the exception the caller gets, error.type)
CASES: list[tuple[Client, str, type[BaseException], str]] = [
    (with_httpx, "fault-500", httpx.HTTPStatusError, "http.5xx"),
    (with_httpx, "fault-slow", httpx.ReadTimeout, "timeout"),
    (with_httpx, "closed-port", httpx.ConnectError, "connection"),
    (with_requests, "fault-500", requests.HTTPError, "http.5xx"),
    (with_requests, "fault-slow", requests.ReadTimeout, "timeout"),
    (with_requests, "closed-port", requests.ConnectionError, "connection"),
    (with_openai, "fault-500", openai.InternalServerError, "http.5xx"),
    (with_openai, "fault-slow", openai.APITimeoutError, "timeout"),
    (with_openai, "closed-port", openai.APIConnectionError, "connection"),
]


@pytest.mark.parametrize(("call", "fault", "raised", "expected"), CASES,
                         ids=[f"{c.__name__[5:]}-{f}" for c, f, _, _ in CASES])
def test_a_step_around_a_failing_call_records_what_the_call_records(
    recorded: Recorded, server: RecordedOpenAIServer, http_clients_instrumented: None, call: Client, fault: str,
    raised: type[BaseException], expected: str,
) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1" if fault == "closed-port" else server.base_url
    with pytest.raises(raised), ragotel.generation("answer"):
        call(base_url, "tiny-llama" if fault == "closed-port" else fault)

    (step,) = [s for s in recorded.spans() if s.kind is SpanKind.INTERNAL]
    (client,) = [s for s in recorded.spans() if s.kind is SpanKind.CLIENT]
    assert step.name == "chat answer" and client.parent.span_id == step.context.span_id
    for span in (step, client):
        assert span.status.status_code is StatusCode.ERROR, span.name
        assert span.attributes[sc.ERROR_TYPE] == expected, span.name
    assert {p.attributes[sc.ERROR_TYPE] for p in recorded.points(sc.RAG_STEP_ERRORS)} == {expected}
    assert recorded.open_spans() == []


class _Response:
    def __init__(self, status: object) -> None:
        self.status_code = status


class _Unreadable(Exception):
    @property
    def response(self) -> object:
        raise RuntimeError("no response")


@pytest.mark.parametrize(("exc", "expected"), [
    (TimeoutError(), "timeout"),
    (urllib3.exceptions.ReadTimeoutError(None, "/v1", "timed out"), "timeout"),
    (requests.ConnectTimeout(), "timeout"),  # a ConnectionError too: the timeout is what happened
    (ConnectionRefusedError(), "connection"),
    (BrokenPipeError(), "connection"),
    (socket.gaierror(), "connection"),
    (urllib3.exceptions.NewConnectionError(None, "refused"), "connection"),
    (requests.exceptions.ChunkedEncodingError(), "connection"),
    (httpx.RemoteProtocolError("dropped"), "connection"),
    (httpx.HTTPStatusError("404", request=httpx.Request("GET", "http://x"), response=httpx.Response(404)),
     "http.4xx"),
    (requests.HTTPError(response=_Response(503)), "http.5xx"),
    (requests.HTTPError(), "requests.exceptions.HTTPError"),  # no answer to classify
    (asyncio.CancelledError(), "cancelled"),
    (ValueError("bad"), "ValueError"),
    (_Unreadable(), f"{__name__}._Unreadable"),  # an attribute that raises: the class name, never an error
])
def test_error_type_values(exc: BaseException, expected: str) -> None:
    assert error_type(exc) == expected


def test_an_answered_status_is_never_taken_from_a_boolean() -> None:
    class Odd(Exception):
        response = _Response(True)

    assert error_type(Odd()).endswith(".Odd")


async def test_server_spans_name_an_answered_5xx_by_its_code_and_an_escaping_exception_by_the_rule(
    recorded: Recorded,
) -> None:
    port = closed_port()

    async def overloaded(request: Request) -> JSONResponse:
        return JSONResponse({"detail": "busy"}, status_code=503)

    async def upstream(request: Request) -> JSONResponse:
        async with httpx.AsyncClient() as client, ragotel.retrieval("search", data_source="dense"):
            await client.get(f"http://127.0.0.1:{port}/search")
        return JSONResponse({})

    app = ragotel.instrument_fastapi(Starlette(routes=[Route("/overloaded", overloaded), Route("/upstream", upstream)]))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/overloaded")).status_code == 503
        assert (await client.get("/upstream")).status_code == 500

    servers = {s.name: s for s in recorded.spans() if s.kind is SpanKind.SERVER}
    assert servers["GET /overloaded"].attributes[sc.ERROR_TYPE] == "503"
    assert servers["GET /upstream"].attributes[sc.ERROR_TYPE] == "connection"
    assert recorded.span("retrieval dense").attributes[sc.ERROR_TYPE] == "connection"
    by_route = {p.attributes[sc.HTTP_ROUTE]: p.attributes.get(sc.ERROR_TYPE)
                for p in recorded.points(sc.HTTP_SERVER_REQUEST_DURATION)}
    assert by_route == {"/overloaded": "503", "/upstream": "connection"}
