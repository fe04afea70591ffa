"""How both services turn away bad input: a 4xx whose ``detail`` names the field and the problem,
``stage: request``, the trace id, a ``rag.step.errors`` count and a log line. A body that is not
JSON at all (bytes that are not UTF-8) gets the same 422 instead of Starlette's bare 400; a body over
the size limit is a 413, decided while it arrives (``Content-Length`` first, then byte by byte),
before anything is parsed or buffered beyond the limit."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import ragotel


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer")  # not "4", not true
    return value  # 4 and 4.0 (the same JSON number); 4.5 is refused by the int check


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
"""An integer as JSON Schema means it: no strings, no booleans, no fractions."""


class ErrorBody(BaseModel):
    """Every error either service answers."""

    detail: str = Field(description="What went wrong, in words; never a path or an exception's text.")
    stage: str | None = Field(default=None, description="request, retrieval, generation, ...")
    trace_id: str | None = Field(default=None, description="The request's trace, to find it in Tempo.")


_DESCRIPTIONS = {
    401: "Missing or wrong credentials",
    403: "Turned off in this deployment",
    413: "Request body over the size limit",
    422: "Invalid input: `detail` names the field (also: a question too long for the model's context window)",
    500: "The service failed",
    502: "A dependency answered with an error",
    503: "A dependency is down or not ready",
    504: "A dependency did not answer in time",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these error statuses, all with :class:`ErrorBody`."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses}


def reject(request: Request, message: str, log: logging.Logger, *, status: int = 422,
           error_type: str = "validation") -> JSONResponse:
    ragotel.record_error("request", error_type, message=message)
    log.warning("rejected %s request (%d): %s", request.url.path, status, message)
    return JSONResponse(status_code=status, content={"detail": message, "stage": "request",
                                                     "trace_id": ragotel.current_trace_id()})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit; FastAPI re-raises HTTP exceptions as they are."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than the limit of {limit} bytes")


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body reach the app.

    A ``Content-Length`` over the limit is answered at once, without reading the body; a body that
    arrives without one (chunked) is counted as it arrives and cut off with the same 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, log: logging.Logger) -> None:
        self.app, self.max_bytes, self.log = app, max_bytes, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        try:
            too_large = declared is not None and int(declared) > self.max_bytes
        except ValueError:
            too_large = False  # the server answers a malformed Content-Length itself
        if too_large:
            response = reject(Request(scope), str(BodyTooLarge(self.max_bytes).detail), self.log, status=413,
                              error_type="body_too_large")
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


def install(app: FastAPI, log: logging.Logger, max_body_bytes: int) -> None:
    """The rejection handlers and the body limit; call before ``ragotel.instrument_fastapi`` so that
    the limit sits inside the server span."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, log=log)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return reject(request, message, log)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, BodyTooLarge):
            response = reject(request, str(exc.detail), log, status=413, error_type="body_too_large")
            response.headers["connection"] = "close"
            return response
        if exc.status_code == 400:  # FastAPI could not even decode the body
            return reject(request, f"body: {exc.detail}", log)
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)
