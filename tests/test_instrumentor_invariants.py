"""The instrumentors behave like opentelemetry-python-contrib's: instrumenting twice is one instrumentation
(a WARNING naming what was kept when the arguments differ), every ``instrument_*`` has its ``uninstrument_*``,
``tracer_provider=`` / ``meter_provider=`` are honoured, and OpenTelemetry's suppress-instrumentation context
turns them off. Real SDK providers, real HTTP (the recorded OpenAI server on loopback, uvicorn on loopback)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

CHAT = {"model": "tiny-llama", "messages": [{"role": "user", "content": "When does the clinic open?"}],
        "max_tokens": 16}


@pytest.fixture
def server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as srv:
        yield srv


@pytest.fixture
def uninstrumented() -> Iterator[None]:
    yield
    ragotel.uninstrument_httpx()
    instrumentor = ragotel.FastApiInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def genai_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME)]


def own_providers() -> tuple[TracerProvider, InMemorySpanExporter, MeterProvider, InMemoryMetricReader]:
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider, exporter, MeterProvider(metric_readers=[reader]), reader


def metric_names(reader: InMemoryMetricReader) -> set[str]:
    data = reader.get_metrics_data()
    return {m.name for rm in (data.resource_metrics if data else []) for sm in rm.scope_metrics for m in sm.metrics
            if any(getattr(p, "count", None) or getattr(p, "value", None) for p in m.data.data_points)}


# -- httpx -----------------------------------------------------------------------------------------------

def test_httpx_instrumentor_is_an_opentelemetry_instrumentor(uninstrumented: None) -> None:
    original = httpx.Client.send
    instrumentor = ragotel.HttpxInstrumentor()
    assert isinstance(instrumentor, BaseInstrumentor) and instrumentor is ragotel.HttpxInstrumentor()
    instrumentor.instrument()
    assert httpx.Client.send is not original and instrumentor.is_instrumented_by_opentelemetry
    instrumentor.uninstrument()
    assert httpx.Client.send is original and not instrumentor.is_instrumented_by_opentelemetry


def test_httpx_instrumenting_twice_keeps_the_first_and_warns_about_the_difference(
    recorded: Recorded, server: RecordedOpenAIServer, uninstrumented: None, caplog: pytest.LogCaptureFixture
) -> None:
    ragotel.instrument_httpx(provider="first")
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        ragotel.instrument_httpx(provider="first")
        assert not caplog.records  # the same arguments: nothing to say
        ragotel.instrument_httpx(provider="second")
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "provider='first' (ignored: 'second')" in warning.getMessage()
    with httpx.Client(base_url=server.base_url) as client:
        client.post("/chat/completions", json=CHAT)
    (span,) = genai_spans(recorded)
    assert span.attributes[sc.GEN_AI_PROVIDER_NAME] == "first"


def test_httpx_client_instrumented_twice_keeps_the_first(
    recorded: Recorded, server: RecordedOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        ragotel.instrument_httpx(client, include_usage=False)
        with caplog.at_level(logging.WARNING, logger="ragotel"):
            ragotel.instrument_httpx(client)
        assert "include_usage=False (ignored: True)" in caplog.text
        client.post("/chat/completions", json={**CHAT, "stream": True}).read()
        ragotel.uninstrument_httpx(client)
        client.post("/chat/completions", json=CHAT)
    assert len(genai_spans(recorded)) == 1
    assert "stream_options" not in server.requests[0]["body"]  # the first call's include_usage=False held


def test_httpx_records_into_the_providers_it_is_given(
    recorded: Recorded, server: RecordedOpenAIServer
) -> None:
    tracer_provider, exporter, meter_provider, reader = own_providers()
    with httpx.Client(base_url=server.base_url) as client:
        ragotel.instrument_httpx(client, tracer_provider=tracer_provider, meter_provider=meter_provider)
        client.post("/chat/completions", json=CHAT)
    assert [s.name for s in exporter.get_finished_spans()] == ["chat tiny-llama"]
    assert genai_spans(recorded) == []  # not in the global provider
    assert {sc.GEN_AI_CLIENT_OPERATION_DURATION, sc.GEN_AI_CLIENT_TOKEN_USAGE} <= metric_names(reader)
    assert recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION) == []


def test_httpx_cost_goes_to_the_meter_provider_it_is_given(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    tracer_provider, _, meter_provider, reader = own_providers()
    previous = ragotel.set_prices(None)
    ragotel.set_prices({"*": ragotel.ModelPrice(input_per_million=1.0, output_per_million=2.0)})
    try:
        with httpx.Client(base_url=server.base_url) as client:
            ragotel.instrument_httpx(client, tracer_provider=tracer_provider, meter_provider=meter_provider)
            client.post("/chat/completions", json=CHAT)
    finally:
        ragotel.set_prices(previous)
    assert sc.RAG_COST in metric_names(reader)
    assert recorded.points(sc.RAG_COST) == []


def test_httpx_honours_suppress_instrumentation(recorded: Recorded, server: RecordedOpenAIServer) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        ragotel.instrument_httpx(client)
        with ragotel.pipeline("chat"), suppress_instrumentation():
            client.post("/chat/completions", json=CHAT)
            client.get("/models")
        client.post("/chat/completions", json=CHAT)
    calls = [s for s in genai_spans(recorded) if s.kind is SpanKind.CLIENT]
    assert len(calls) == 1  # only the call made outside the suppressed block
    suppressed_chat, chat = server.requests  # the double records POSTs only
    assert "traceparent" not in suppressed_chat["headers"]  # not even the pipeline's context went out
    assert "traceparent" in chat["headers"]


# -- ASGI / FastAPI --------------------------------------------------------------------------------------

def starlette_app() -> Starlette:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"]})

    return Starlette(routes=[Route("/items/{item_id}", item)])


async def get(app: Any, *paths: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return [await client.get(path) for path in paths]


def server_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if s.kind is SpanKind.SERVER]


async def test_instrument_fastapi_twice_adds_one_middleware_and_warns_about_the_difference(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    app = ragotel.instrument_fastapi(starlette_app())
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        ragotel.instrument_fastapi(app)
        assert not caplog.records
        ragotel.instrument_fastapi(app, trust_incoming_context=False)
    assert "trust_incoming_context=True (ignored: False)" in caplog.text
    assert len(app.user_middleware) == 1
    await get(app, "/items/1")
    assert [s.name for s in server_spans(recorded)] == ["GET /items/{item_id}"]
    assert len(recorded.points(sc.HTTP_SERVER_REQUEST_DURATION)) == 1


async def test_uninstrument_fastapi_undoes_it_even_after_the_app_started(recorded: Recorded) -> None:
    app = ragotel.instrument_fastapi(starlette_app())
    await get(app, "/items/1")
    ragotel.uninstrument_fastapi(app)
    assert app.user_middleware == []
    await get(app, "/items/2")
    assert len(server_spans(recorded)) == 1  # the first request only
    ragotel.instrument_fastapi(app)  # and it can be instrumented again
    await get(app, "/items/3")
    assert len(server_spans(recorded)) == 2


async def test_uninstrument_fastapi_restores_fastapis_own_telemetry_settings(recorded: Recorded) -> None:
    app = FastAPI()
    before = dict(app._telemetry)
    ragotel.instrument_fastapi(app)
    assert app._telemetry != before
    ragotel.uninstrument_fastapi(app)
    assert app._telemetry == before and app.user_middleware == []


async def test_asgi_records_into_the_providers_it_is_given(recorded: Recorded) -> None:
    tracer_provider, exporter, meter_provider, reader = own_providers()
    app = ragotel.instrument_fastapi(starlette_app(), tracer_provider=tracer_provider,
                                     meter_provider=meter_provider)
    await get(app, "/items/1")
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /items/{item_id}"]
    assert server_spans(recorded) == []
    assert {sc.HTTP_SERVER_REQUEST_DURATION, sc.HTTP_SERVER_RESPONSE_BODY_SIZE} <= metric_names(reader)
    assert recorded.points(sc.HTTP_SERVER_REQUEST_DURATION) == []


async def test_asgi_honours_suppress_instrumentation(recorded: Recorded) -> None:
    app = ragotel.instrument_fastapi(starlette_app())
    with suppress_instrumentation():
        (response,) = await get(app, "/items/1")
    assert response.json() == {"id": "1"}
    assert server_spans(recorded) == []
    assert recorded.points(sc.HTTP_SERVER_REQUEST_DURATION) == []
    await get(app, "/items/2")
    assert len(server_spans(recorded)) == 1


# -- FastApiInstrumentor (what opentelemetry-instrument loads) -------------------------------------------

async def test_fastapi_instrumentor_instruments_each_app_once(recorded: Recorded, uninstrumented: None) -> None:
    ragotel.FastApiInstrumentor().instrument()
    plain = starlette_app()
    explicit = ragotel.instrument_fastapi(starlette_app(), excluded_paths=("/items/1",))
    outer = Starlette(routes=[Mount("/inner", app=starlette_app())])
    fastapi_app = FastAPI()

    @fastapi_app.get("/ask")
    async def ask() -> dict[str, str]:
        return {"ok": "yes"}

    await get(plain, "/items/1")
    await get(explicit, "/items/1", "/items/2")  # its own arguments win: /items/1 left out
    await get(outer, "/inner/items/3")  # the mounted app is served by the outer app's span alone
    await get(fastapi_app, "/ask")
    spans = server_spans(recorded)
    assert sorted(s.attributes[sc.URL_PATH] for s in spans) == ["/ask", "/inner/items/3", "/items/1", "/items/2"]
    assert len({s.context.trace_id for s in spans}) == 4  # one server span per request
    assert len(explicit.user_middleware) == 1


async def test_fastapi_instrumentor_leaves_apps_opentelemetry_already_serves(
    recorded: Recorded, uninstrumented: None
) -> None:
    ragotel.FastApiInstrumentor().instrument()
    app = starlette_app()
    app._is_instrumented_by_opentelemetry = True  # what FastAPIInstrumentor.instrument_app(app) sets
    await get(app, "/items/1")
    assert server_spans(recorded) == []
    ragotel.FastApiInstrumentor().uninstrument()
    fresh = starlette_app()
    await get(fresh, "/items/1")
    assert server_spans(recorded) == []  # uninstrumented: new apps are left alone


# -- metrics_path ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served() -> Iterator[Any]:
    """Serves the app handed to it with uvicorn on loopback; yields a function taking the app, returning the URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(app: Any) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)


@pytest.mark.parametrize("kind", ["starlette", "fastapi"])
async def test_metrics_path_serves_prometheus_text_at_that_exact_path_untraced(
    recorded: Recorded, served: Any, kind: str
) -> None:
    app: Any = starlette_app() if kind == "starlette" else FastAPI()
    if kind == "fastapi":
        @app.get("/items/{item_id}")
        async def item(item_id: str) -> dict[str, str]:
            return {"id": item_id}

    url = served(ragotel.instrument_fastapi(app, metrics_path="/metrics"))
    async with httpx.AsyncClient(base_url=url, follow_redirects=False) as client:
        text = await client.get("/metrics")
        openmetrics = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        item = await client.get("/items/7")
        slash = await client.get("/metrics/")
    await asyncio.sleep(0.05)
    assert text.status_code == 200, (text.status_code, text.headers)
    assert text.headers["content-type"].startswith("text/plain")
    assert "python_info" in text.text  # the Prometheus exposition
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")
    assert item.json() == {"id": "7"}
    assert slash.status_code == 404  # exactly that path
    paths = [s.attributes.get(sc.URL_PATH) for s in server_spans(recorded)]
    assert "/metrics" not in paths and "/items/7" in paths  # scrapes are not traced; requests are
    statuses = sorted(p.attributes.get(sc.HTTP_RESPONSE_STATUS_CODE)
                      for p in recorded.points(sc.HTTP_SERVER_REQUEST_DURATION))
    assert statuses == [200, 404]  # /items/7 and /metrics/; no scrape counted


async def test_metrics_path_survives_a_catch_all_route(recorded: Recorded) -> None:
    async def anything(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path}, status_code=404)

    app = ragotel.instrument_fastapi(Starlette(routes=[Route("/{path:path}", anything)]), metrics_path="/metrics")
    (response,) = await get(app, "/metrics")
    assert response.status_code == 200 and "python_info" in response.text
