"""How both services turn away bad input: a 422 whose ``detail`` names the field and the problem,
``stage: request``, the trace id, a ``rag.step.errors`` count and a log line. A body that is not
JSON at all (bytes that are not UTF-8) gets the same answer instead of Starlette's bare 400."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response

import ragotel


def reject(request: Request, message: str, log: logging.Logger) -> JSONResponse:
    ragotel.record_error("request", "validation", message=message)
    log.warning("rejected %s request: %s", request.url.path, message)
    return JSONResponse(status_code=422, content={"detail": message, "stage": "request",
                                                  "trace_id": ragotel.current_trace_id()})


def install(app: FastAPI, log: logging.Logger) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return reject(request, message, log)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not even decode the body
            return reject(request, f"body: {exc.detail}", log)
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)
