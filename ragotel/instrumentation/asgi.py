"""HTTP server spans and metrics for ASGI apps (FastAPI, Starlette).

::

    app = FastAPI()
    ragotel.instrument_fastapi(app)      # or: app.add_middleware(ragotel.RagotelMiddleware)

Each request gets one SERVER span, named ``{method} {route}`` once routing has matched (the route
template, never the raw path), joined to the caller's trace through the incoming ``traceparent``,
and is recorded in ``http.server.request.duration``, ``http.server.active_requests`` and the body-size
histograms ``http.server.request.body.size`` / ``http.server.response.body.size`` (``Content-Length``
where given, else the bytes that passed). On a public
endpoint (``trust_incoming_context=False``) the span starts a new trace instead and only links the
incoming context: a client can neither turn tracing off (flag ``00``) nor pick the trace id.

The span ends when the last byte of the response body has been sent, so a streamed (SSE) answer is
timed in full; if the client goes away first, the span ends then, marked ``rag.outcome=cancelled``
and not an error. 5xx answers and exceptions set the span to ERROR with ``error.type``, and so does
:func:`fail_response` for a response that fails after its status line went out (a broken stream).
Health, readiness and metrics endpoints are left out by default so probes and scrapes do not flood
the traces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ragotel import _instruments
from ragotel import semconv as sc
from ragotel._runtime import error_type, runtime
from ragotel._safe import report_internal_error
from ragotel.semconv import Outcome

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_EXCLUDED_PATHS = ("/health", "/ready", "/metrics")
# Exceptions that mean the client went away, not that the server failed.
_DISCONNECTS = frozenset({"CancelledError", "ClientDisconnect"})

_exchange: ContextVar[_Exchange | None] = ContextVar("ragotel_http_exchange", default=None)


def fail_response(error: BaseException | str, *, stage: str | None = None, message: str | None = None) -> None:
    """Mark the HTTP response being sent as failed although its status line already went out.

    For a streamed answer that breaks after its headers (an SSE stream whose source failed): the
    server span becomes ERROR with ``error.type`` (an exception or an ``error.type`` value), a
    ``rag.error`` event names ``stage``, and ``http.server.request.duration`` records the request
    with that ``error.type`` so error-rate queries count it like a 5xx. Call it from the code
    producing the response body; outside a request served by :class:`RagotelMiddleware` it marks the
    current span only. Never raises.
    """
    try:
        etype = error if isinstance(error, str) else error_type(error)
        exchange = _exchange.get()
        span = exchange.span if exchange is not None else trace.get_current_span()
        if exchange is not None:
            exchange.failure = etype
        description = f"{stage}: {message}" if stage and message else stage or message or etype
        span.set_attribute(sc.ERROR_TYPE, etype)
        span.set_status(Status(StatusCode.ERROR, description))
        event: dict[str, AttributeValue] = {sc.ERROR_TYPE: etype}
        if stage:
            event[sc.RAG_STEP_KIND] = stage
        if message:
            event["message"] = message
        span.add_event("rag.error", event)
    except Exception as exc:
        report_internal_error("fail_response", exc)


class RagotelMiddleware:
    """ASGI middleware: a SERVER span and the HTTP server metrics for every request.

    Args:
        app: the ASGI application to wrap.
        excluded_paths: exact paths that get neither span nor metrics.
        trust_incoming_context: ``True`` (internal services) continues the caller's trace from its
            ``traceparent``; ``False`` (public endpoints) starts a new trace, sampled by the local
            sampler, with a span link to the incoming context when there is one.
    """

    def __init__(self, app: ASGIApp, excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS, *,
                 trust_incoming_context: bool = True) -> None:
        self.app = app
        self.excluded_paths = frozenset(excluded_paths)
        self.trust_incoming_context = trust_incoming_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or runtime.disabled or scope.get("path") in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        exchange = _Exchange.begin(scope, self.trust_incoming_context)
        if exchange is None:
            await self.app(scope, receive, send)
            return

        async def observed_send(message: Message) -> None:
            exchange.on_send(message)
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                exchange.complete = True
                exchange.finish(scope)  # the last byte is out

        async def observed_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                exchange.disconnected = True
            else:
                exchange.sizes.on_receive(message)
            return message

        token = otel_context.attach(exchange.context)
        current = _exchange.set(exchange)
        try:
            await self.app(scope, observed_receive, observed_send)
        except BaseException as exc:
            exchange.finish(scope, exc)
            raise
        finally:
            _exchange.reset(current)
            otel_context.detach(token)
            exchange.finish(scope)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return None
    return None


class _BodySizes:
    """Request and response body sizes of one exchange: ``Content-Length`` where given (a body refused
    unread still has its size), else the bytes that passed. A few integer additions per message."""

    __slots__ = ("received", "request_length", "response_length", "sent")

    def __init__(self, scope: Scope) -> None:
        self.request_length = _content_length(scope.get("headers", ()))
        self.response_length: int | None = None
        self.received = 0
        self.sent = 0

    def on_receive(self, message: Message) -> None:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))

    def on_send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self.sent += len(message.get("body", b""))
        elif message["type"] == "http.response.start":
            self.response_length = _content_length(message.get("headers", ()))

    def record(self, attributes: dict[str, AttributeValue], context: otel_context.Context | None = None) -> None:
        ins = _instruments.instruments()
        request = self.request_length if self.request_length is not None else self.received
        response = self.response_length if self.response_length is not None else self.sent
        ins.http_request_body_size.record(request, attributes, context=context)
        ins.http_response_body_size.record(response, attributes, context=context)


class BodySizeMiddleware:
    """``http.server.request.body.size`` and ``http.server.response.body.size`` alone, beside an HTTP server
    instrumentation that records durations but no body sizes (FastAPI's built-in telemetry)."""

    def __init__(self, app: ASGIApp, excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS) -> None:
        self.app = app
        self.excluded_paths = frozenset(excluded_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or runtime.disabled or scope.get("path") in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        sizes, status = _BodySizes(scope), [0]

        async def observed_send(message: Message) -> None:
            sizes.on_send(message)
            if message["type"] == "http.response.start":
                status[0] = int(message.get("status", 0))
            await send(message)

        async def observed_receive() -> Message:
            message = await receive()
            sizes.on_receive(message)
            return message

        try:
            await self.app(scope, observed_receive, observed_send)
        finally:
            try:
                attrs: dict[str, AttributeValue] = {sc.HTTP_REQUEST_METHOD: str(scope.get("method", "GET")),
                                                    sc.URL_SCHEME: str(scope.get("scheme", "http"))}
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    attrs[sc.HTTP_ROUTE] = route
                if status[0]:
                    attrs[sc.HTTP_RESPONSE_STATUS_CODE] = status[0]
                sizes.record(attrs)
            except Exception as exc:
                report_internal_error("recording HTTP body sizes", exc)


class _Exchange:
    """One request/response exchange."""

    def __init__(self, span: Span, context: otel_context.Context, attributes: dict[str, AttributeValue],
                 sizes: _BodySizes | None = None) -> None:
        self.span = span
        self.context = context
        self.attributes = attributes
        self.status: int | None = None
        self.start = perf_counter()
        self.ended = False
        self.complete = False  # the last byte of the body went out
        self.disconnected = False  # the client went away
        self.failure: str | None = None  # error.type of a failure after the headers (fail_response)
        self.sizes = sizes if sizes is not None else _BodySizes({})

    @classmethod
    def begin(cls, scope: Scope, trust_incoming_context: bool = True) -> _Exchange | None:
        try:
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
            parent = propagate.extract(carrier)
            links: list[Link] = []
            if not trust_incoming_context:
                incoming = trace.get_current_span(parent).get_span_context()
                if incoming.is_valid:
                    links.append(Link(incoming))
                parent = otel_context.Context()  # a root span: the local sampler decides, baggage dropped
            method = str(scope.get("method", "GET"))
            attrs: dict[str, AttributeValue] = {
                sc.HTTP_REQUEST_METHOD: method,
                sc.URL_SCHEME: str(scope.get("scheme", "http")),
            }
            span_attrs: dict[str, AttributeValue] = {**attrs, sc.URL_PATH: str(scope.get("path", ""))}
            server = scope.get("server")
            if server:
                span_attrs[sc.SERVER_ADDRESS], span_attrs[sc.SERVER_PORT] = str(server[0]), int(server[1] or 0)
            client = scope.get("client")
            if client:
                span_attrs[sc.CLIENT_ADDRESS] = str(client[0])
            if "user-agent" in carrier:
                span_attrs[sc.USER_AGENT_ORIGINAL] = carrier["user-agent"]
            span = _instruments.tracer().start_span(
                method, context=parent, kind=SpanKind.SERVER, attributes=span_attrs, links=links
            )
            _instruments.instruments().active_requests.add(1, attrs)
            return cls(span, trace.set_span_in_context(span, parent), attrs, _BodySizes(scope))
        except Exception as exc:
            report_internal_error("starting an HTTP server span", exc)
            return None

    def on_send(self, message: Message) -> None:
        self.sizes.on_send(message)
        if message["type"] == "http.response.start":
            self.status = int(message.get("status", 0))

    def finish(self, scope: Scope, exc: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            self._record(scope, exc)
        except Exception as internal:
            report_internal_error("finishing an HTTP server span", internal)
        finally:
            self.span.end()

    def _record(self, scope: Scope, exc: BaseException | None) -> None:
        span, attrs = self.span, dict(self.attributes)
        ins = _instruments.instruments()
        ins.active_requests.add(-1, self.attributes)
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            attrs[sc.HTTP_ROUTE] = route
            span.update_name(f"{attrs[sc.HTTP_REQUEST_METHOD]} {route}")
            span.set_attribute(sc.HTTP_ROUTE, route)
        etype: str | None = None
        cancelled = (exc is not None and type(exc).__name__ in _DISCONNECTS) or (
            not self.complete and self.disconnected and (exc is None or isinstance(exc, OSError)))
        if exc is not None and not cancelled and self.status is None:
            self.status = 500  # what the server's outermost error handler will answer
        if self.status is not None:
            span.set_attribute(sc.HTTP_RESPONSE_STATUS_CODE, self.status)
            attrs[sc.HTTP_RESPONSE_STATUS_CODE] = self.status
            if self.status >= 500:
                etype = str(self.status)
        if exc is not None and not cancelled:
            etype = error_type(exc)
            span.record_exception(exc, escaped=True)
        if cancelled:
            span.set_attribute(sc.RAG_OUTCOME, Outcome.CANCELLED.value)
        if etype is not None:
            span.set_attribute(sc.ERROR_TYPE, etype)
            span.set_status(Status(StatusCode.ERROR, etype))
            attrs[sc.ERROR_TYPE] = etype
        elif self.failure is not None:  # fail_response() has set the span's status and error.type
            attrs[sc.ERROR_TYPE] = self.failure
        ins.http_server_duration.record(perf_counter() - self.start, attrs, context=self.context)
        self.sizes.record(attrs, self.context)


def instrument_fastapi(
    app: Any, excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS, *, operation_spans: bool = False,
    trust_incoming_context: bool = True,
) -> Any:
    """Server spans and HTTP metrics for a FastAPI or Starlette app; returns the app.

    FastAPI releases with built-in OpenTelemetry (``FastAPI(telemetry=...)``) already emit the same
    server span and ``http.server.*`` metrics: ragotel then configures that instead of adding a second
    server span — it leaves out ``excluded_paths``, turns off the per-dependency operation spans unless
    ``operation_spans=True``, and turns off FastAPI's validation-failure logs, which can carry request
    input (user text). Older FastAPI and plain Starlette get :class:`RagotelMiddleware`.

    ``trust_incoming_context=False`` is for public endpoints: each request starts a new trace linked
    to the incoming one. FastAPI's built-in telemetry always adopts the incoming context, so then its
    spans and metrics are turned off and :class:`RagotelMiddleware` serves instead.
    """
    paths = frozenset(excluded_paths)
    native = getattr(app, "_telemetry", None)
    if isinstance(native, dict) and "tracing" in native:
        native["logs"] = False
        if trust_incoming_context:
            if native.get("exclude") is None:
                native["exclude"] = lambda scope: scope.get("path") in paths
            native["operation_spans"] = operation_spans
            if native.get("metrics", True):
                app.add_middleware(BodySizeMiddleware, excluded_paths=tuple(paths))  # FastAPI records none
            return app
        native["tracing"] = native["metrics"] = False
    app.add_middleware(RagotelMiddleware, excluded_paths=tuple(paths), trust_incoming_context=trust_incoming_context)
    return app
