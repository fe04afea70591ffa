"""HTTP server spans for ASGI apps: ragotel's middleware on Starlette, FastAPI's built-in telemetry
configured (not duplicated) on FastAPI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded


def starlette_app() -> Starlette:
    async def item(request: Request) -> JSONResponse:
        async with ragotel.retrieval("lookup"):
            await asyncio.sleep(0)
        return JSONResponse({"id": request.path_params["item_id"]})

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("handler bug")

    async def stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.02)
                yield f"data: {i}\n\n".encode()

        return StreamingResponse(body(), media_type="text/event-stream")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/items/{item_id}", item), Route("/boom", boom), Route("/stream", stream),
                            Route("/health", health)])
    return ragotel.instrument_fastapi(app)


def server_spans(recorded: Recorded) -> list:  # type: ignore[type-arg]
    return [s for s in recorded.spans() if s.kind is SpanKind.SERVER]


async def test_middleware_span_route_metrics_and_trace_context(recorded: Recorded) -> None:
    transport = httpx.ASGITransport(app=starlette_app(), raise_app_exceptions=False)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/items/42", headers={"traceparent": traceparent})).json() == {"id": "42"}
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/boom")).status_code == 500

    spans = sorted(server_spans(recorded), key=lambda s: s.start_time)
    assert [s.name for s in spans] == ["GET /items/{item_id}", "GET /boom"]  # /health left out
    item, boom = spans
    assert f"{item.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"  # joined the caller's trace
    assert item.attributes[sc.HTTP_ROUTE] == "/items/{item_id}"
    assert item.attributes[sc.URL_PATH] == "/items/42"
    step = recorded.span("retrieval lookup")
    assert step.parent.span_id == item.context.span_id
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.attributes[sc.ERROR_TYPE] == "RuntimeError"

    points = recorded.points(sc.HTTP_SERVER_REQUEST_DURATION)
    routes = {(p.attributes.get(sc.HTTP_ROUTE), p.attributes.get(sc.HTTP_RESPONSE_STATUS_CODE)) for p in points}
    assert routes == {("/items/{item_id}", 200), ("/boom", 500)}
    assert all("42" not in str(p.attributes) for p in points)  # the raw path never becomes a label


async def test_streamed_response_span_ends_at_the_last_byte(recorded: Recorded) -> None:
    transport = httpx.ASGITransport(app=starlette_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/stream")
    assert response.text.count("data:") == 3
    (span,) = server_spans(recorded)
    assert (span.end_time - span.start_time) / 1e9 >= 0.06  # three 20 ms chunks


async def test_fastapi_builtin_telemetry_is_configured_not_duplicated(recorded: Recorded) -> None:
    app = FastAPI()

    @app.get("/ask")
    async def ask() -> dict[str, str]:
        async with ragotel.retrieval("lookup"):
            return {"ok": "yes"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    ragotel.instrument_fastapi(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        await client.get("/ask")
        await client.get("/health")
    names = sorted(s.name for s in recorded.spans())
    assert names == ["GET /ask", "retrieval lookup"]  # one server span, no operation spans, no /health
    assert len(recorded.points(sc.HTTP_SERVER_REQUEST_DURATION)) == 1


CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


def fastapi_app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/ask")
    async def ask() -> dict[str, str | None]:
        async with ragotel.retrieval("lookup"):
            return {"trace_id": ragotel.current_trace_id()}

    return ragotel.instrument_fastapi(app, **options)


async def ask(app: FastAPI, flags: str) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        headers = {"traceparent": f"00-{CLIENT_TRACE}-b7ad6b7169203331-{flags}"}
        return dict((await client.get("/ask", headers=headers)).json())


async def test_public_endpoint_starts_its_own_trace_and_links_the_callers(recorded: Recorded) -> None:
    app = fastapi_app(trust_incoming_context=False)
    for flags in ("01", "00"):  # the client asks to be sampled / not to be traced
        assert (await ask(app, flags))["trace_id"] != CLIENT_TRACE
    spans = sorted(server_spans(recorded), key=lambda s: s.start_time)
    assert len(spans) == 2, "flag 00 did not turn tracing off"
    for span in spans:
        assert span.parent is None and f"{span.context.trace_id:032x}" != CLIENT_TRACE
        (link,) = span.links
        assert f"{link.context.trace_id:032x}" == CLIENT_TRACE and link.context.span_id == 0xB7AD6B7169203331
        step = [s for s in recorded.spans() if s.name == "retrieval lookup" and s.context.trace_id
                == span.context.trace_id]
        assert step and step[0].parent.span_id == span.context.span_id
    # Counted once each: FastAPI's own telemetry is off, not doubled.
    assert sum(p.count or 0 for p in recorded.points(sc.HTTP_SERVER_REQUEST_DURATION)) == 2


async def test_internal_endpoint_adopts_the_callers_context(recorded: Recorded) -> None:
    app = fastapi_app()  # the default: an internal service continues its caller's trace
    assert (await ask(app, "01"))["trace_id"] == CLIENT_TRACE
    (span,) = server_spans(recorded)
    assert f"{span.context.trace_id:032x}" == CLIENT_TRACE and span.parent.span_id == 0xB7AD6B7169203331
    assert not span.links
    await ask(app, "00")  # the caller decided not to sample: nothing is recorded
    assert len(server_spans(recorded)) == 1


def body_sizes(recorded: Recorded, name: str) -> dict[tuple[Any, Any], float]:
    return {(p.attributes.get(sc.HTTP_ROUTE), p.attributes.get(sc.HTTP_RESPONSE_STATUS_CODE)): p.sum
            for p in recorded.points(name)}


async def test_middleware_records_request_and_response_body_sizes(recorded: Recorded) -> None:
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"n": len(body)})

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), *starlette_app().routes])
    ragotel.instrument_fastapi(app)
    async def chunked() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        yield b"y" * 500

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answer = await client.post("/echo", content=b"q" * 300)  # Content-Length: 300
        assert answer.json() == {"n": 300}
        assert (await client.post("/echo", content=chunked())).json() == {"n": 1500}  # no Content-Length
        streamed = await client.get("/stream")
    requests = body_sizes(recorded, sc.HTTP_SERVER_REQUEST_BODY_SIZE)
    responses = body_sizes(recorded, sc.HTTP_SERVER_RESPONSE_BODY_SIZE)
    assert requests[("/echo", 200)] == 300 + 1500  # the header's figure, then the bytes counted
    assert responses[("/echo", 200)] == len(answer.content) + len(b'{"n":1500}')
    assert requests[("/stream", 200)] == 0
    assert responses[("/stream", 200)] == len(streamed.content) == 3 * len(b"data: 0\n\n")  # a stream in full


async def test_fastapi_builtin_telemetry_gets_body_sizes_too(recorded: Recorded) -> None:
    app = FastAPI()

    @app.post("/ask")
    async def ask(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    ragotel.instrument_fastapi(app)  # FastAPI's own server telemetry, which records no body sizes
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answer = await client.post("/ask", content=b"z" * 2048)
    assert len(recorded.points(sc.HTTP_SERVER_REQUEST_DURATION)) == 1  # still FastAPI's, once
    assert body_sizes(recorded, sc.HTTP_SERVER_REQUEST_BODY_SIZE) == {("/ask", 200): 2048}
    assert body_sizes(recorded, sc.HTTP_SERVER_RESPONSE_BODY_SIZE) == {("/ask", 200): len(answer.content)}
