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
``fail_response`` for a response that fails after its status line went out (a broken stream).
``error.type`` follows the HTTP server conventions: the status code as a string (``"503"``) for a 5xx
answer, and for an exception escaping the app the value ``ragotel._core.errors.error_type`` gives
a step (``timeout``, ``connection``, ``http.5xx`` for an upstream's answer, or the class name); a 4xx is
the caller's error and sets none.
Health, readiness and metrics endpoints are left out by default so probes and scrapes do not flood
the traces. When the app has run its lifespan shutdown, what ``ragotel.configure()`` set up is flushed before
the server is told so (servers exit without ``atexit``: uvicorn re-raises its stop signal).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Collection, Iterable, MutableMapping
from contextvars import ContextVar
from time import perf_counter
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core import metrics_endpoint, runtime
from ragotel._core.errors import error_type, note_error
from ragotel._core.safe import report_internal_error
from ragotel.instrumentation._base import Instrumentor
from ragotel.semconv import Outcome

__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "BodySizeMiddleware",
    "FastApiInstrumentor",
    "MetricsEndpoint",
    "RagotelMiddleware",
    "fail_response",
    "instrument_fastapi",
    "uninstrument_fastapi",
]

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
    producing the response body; outside a request served by ``RagotelMiddleware`` it marks the
    current span only. Never raises.
    """
    try:
        etype = error if isinstance(error, str) else error_type(error)
        exchange = _exchange.get()
        span = exchange.span if exchange is not None else trace.get_current_span()
        if exchange is not None:
            exchange.failure = etype
        description = f"{stage}: {message}" if stage and message else stage or message or etype
        span.set_status(Status(StatusCode.ERROR, description))
        note_error(span, etype, stage=stage, message=message)
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
        tracer_provider: record spans into this provider instead of the global one.
        meter_provider: record metrics into this provider instead of the global one.

    Requests served inside OpenTelemetry's ``suppress_instrumentation()`` context are passed through.
    """

    def __init__(self, app: ASGIApp, excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS, *,
                 trust_incoming_context: bool = True, tracer_provider: Any = None,
                 meter_provider: Any = None) -> None:
        self.app = app
        self.excluded_paths = frozenset(excluded_paths)
        self.trust_incoming_context = trust_incoming_context
        self.tracer = _instruments.tracer_for(tracer_provider)
        self.instruments = _instruments.instruments_for(meter_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _observe_lifespan(self.app, scope, receive, send)
            return
        if not _observed(scope, self.excluded_paths):
            await self.app(scope, receive, send)
            return
        exchange = _Exchange.begin(scope, self.trust_incoming_context, self.tracer, self.instruments)
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


_at_lifespan: Callable[[str], object] | None = None
_LIFESPAN_EVENTS = {"lifespan.startup.complete": "startup", "lifespan.shutdown.complete": "shutdown",
                    "lifespan.shutdown.failed": "shutdown"}
_LIFESPAN_SEEN = "ragotel.lifespan_observed"  # in a lifespan scope: an outer middleware of ours tells the hook


def _set_lifespan_hook(hook: Callable[[str], object] | None) -> None:
    """Have ``hook`` told ``"startup"`` once an app ragotel instruments has started and ``"shutdown"`` once it has
    shut down, before the server hears so and goes on to exit. ``configure()`` sets it: the server's own signal
    handlers are in place at startup, and at shutdown what is queued is flushed while the process still lives
    (servers re-raise their stop signal, or are killed, without running ``atexit``)."""
    global _at_lifespan
    _at_lifespan = hook


async def _observe_lifespan(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app``'s lifespan, telling the hook of its startup and shutdown once, however many of ragotel's
    middleware the app has."""
    if scope.get(_LIFESPAN_SEEN):
        await app(scope, receive, send)
        return
    scope[_LIFESPAN_SEEN] = True

    async def told_send(message: Message) -> None:
        event, hook = _LIFESPAN_EVENTS.get(message.get("type", "")), _at_lifespan
        if event is not None and hook is not None:
            try:
                hook(event)  # bounded (RAGOTEL_SHUTDOWN_TIMEOUT), and nothing is served any more at shutdown
            except Exception as exc:
                report_internal_error(f"the lifespan {event} hook", exc)
        await send(message)

    await app(scope, receive, told_send)


class _LifespanHook:
    """ASGI middleware telling the lifespan hook (``_set_lifespan_hook``) of the app's startup and shutdown, where
    FastAPI's built-in telemetry makes the server spans and ``RagotelMiddleware`` is not there to tell it;
    requests pass as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _observe_lifespan(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)


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

    def record(self, attributes: dict[str, AttributeValue], context: otel_context.Context | None = None,
               ins: _instruments.Instruments | None = None) -> None:
        ins = ins if ins is not None else _instruments.instruments()
        request = self.request_length if self.request_length is not None else self.received
        response = self.response_length if self.response_length is not None else self.sent
        ins.http_request_body_size.record(request, attributes, context=context)
        ins.http_response_body_size.record(response, attributes, context=context)


def _observed(scope: Scope, excluded_paths: frozenset[str]) -> bool:
    """An HTTP request to instrument: telemetry on, not suppressed, not a probe or scrape path."""
    return (scope["type"] == "http" and not runtime.current.disabled and scope.get("path") not in excluded_paths
            and is_instrumentation_enabled())


class BodySizeMiddleware:
    """``http.server.request.body.size`` and ``http.server.response.body.size`` alone, beside an HTTP server
    instrumentation that records durations but no body sizes (FastAPI's built-in telemetry)."""

    def __init__(self, app: ASGIApp, excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS, *,
                 meter_provider: Any = None) -> None:
        self.app = app
        self.excluded_paths = frozenset(excluded_paths)
        self.instruments = _instruments.instruments_for(meter_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _observed(scope, self.excluded_paths):
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
                sizes.record(attrs, ins=self.instruments)
            except Exception as exc:
                report_internal_error("recording HTTP body sizes", exc)


class _Exchange:
    """One request/response exchange."""

    def __init__(self, span: Span, context: otel_context.Context, attributes: dict[str, AttributeValue],
                 sizes: _BodySizes | None = None, ins: _instruments.Instruments | None = None) -> None:
        self.ins = ins if ins is not None else _instruments.instruments()
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
    def begin(cls, scope: Scope, trust_incoming_context: bool = True, tracer: trace.Tracer | None = None,
              ins: _instruments.Instruments | None = None) -> _Exchange | None:
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
            ins = ins if ins is not None else _instruments.instruments()
            span = (tracer or _instruments.tracer()).start_span(
                method, context=parent, kind=SpanKind.SERVER, attributes=span_attrs, links=links
            )
            ins.active_requests.add(1, attrs)
            return cls(span, trace.set_span_in_context(span, parent), attrs, _BodySizes(scope), ins)
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
        ins = self.ins
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
                etype = str(self.status)  # the server conventions' value for an answered error
        if exc is not None and not cancelled:
            # Nothing answered yet (or the answer broke): the exception says more than the 500 assumed above.
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
        self.sizes.record(attrs, self.context, ins)


class MetricsEndpoint:
    """ASGI middleware answering ``path`` (exactly: no redirect to ``path/``) with ``metrics_app``, before
    anything else in the app sees the request, so scrapes are neither traced nor counted."""

    def __init__(self, app: ASGIApp, path: str, metrics_app: ASGIApp | None = None) -> None:
        self.app = app
        self.path = path
        if metrics_app is None:
            from ragotel._core import prometheus as _prometheus

            metrics_app = _prometheus.prometheus_app(served_by=f"the endpoint at {path}")
        self.metrics_app = metrics_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == self.path:
            await self.metrics_app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


_log = logging.getLogger("ragotel")
_APP_STATE = "_ragotel_instrumentation"  # on an app: what instrument_fastapi did, to compare and undo
_APP_OPTED_OUT = "_ragotel_uninstrumented"  # on an app: uninstrument_fastapi ran; zero-code leaves it alone
_NATIVE_KEYS = ("logs", "exclude", "operation_spans", "tracing", "metrics")


def instrument_fastapi(
    app: Any, excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS, *, operation_spans: bool = False,
    trust_incoming_context: bool = True, metrics_path: str | None = None, tracer_provider: Any = None,
    meter_provider: Any = None,
) -> Any:
    """Server spans and HTTP metrics for a FastAPI or Starlette app; returns the app.

    FastAPI releases with built-in OpenTelemetry (``FastAPI(telemetry=...)``) already emit the same
    server span and ``http.server.*`` metrics: ragotel then configures that instead of adding a second
    server span — it leaves out ``excluded_paths``, turns off the per-dependency operation spans unless
    ``operation_spans=True``, and turns off FastAPI's validation-failure logs, which can carry request
    input (user text). Older FastAPI and plain Starlette get ``RagotelMiddleware``.

    ``trust_incoming_context=False`` is for public endpoints: each request starts a new trace linked
    to the incoming one. FastAPI's built-in telemetry always adopts the incoming context, so then its
    spans and metrics are turned off and ``RagotelMiddleware`` serves instead.

    ``metrics_path="/metrics"`` serves the Prometheus exposition (``ragotel.prometheus_app``) at
    exactly that path, answered before tracing and routing (200, no redirect, scrapes not traced).
    ``tracer_provider`` / ``meter_provider`` record into those providers instead of the global ones
    (FastAPI's built-in telemetry uses its own choice of providers).

    Instrumenting an app again keeps the first instrumentation (a WARNING names what was kept when the
    arguments differ); ``uninstrument_fastapi`` undoes it.
    """
    paths = frozenset(excluded_paths) | ({metrics_path} if metrics_path else frozenset())
    options: dict[str, Any] = {
        "excluded_paths": tuple(sorted(paths)), "operation_spans": operation_spans,
        "trust_incoming_context": trust_incoming_context, "metrics_path": metrics_path,
        "tracer_provider": tracer_provider, "meter_provider": meter_provider,
    }
    state = getattr(app, _APP_STATE, None)
    if isinstance(state, dict):
        kept = state["options"]
        differences = ", ".join(f"{k}={kept[k]!r} (ignored: {v!r})" for k, v in options.items() if kept[k] != v)
        if differences:
            _log.warning("ragotel: instrument_fastapi(): this app is already instrumented; the first instrumentation "
                         "is kept: %s", differences)
        return app
    state = {"options": options, "middleware": [], "native": None}
    native = getattr(app, "_telemetry", None)
    use_middleware = True
    if isinstance(native, dict) and "tracing" in native:
        state["native"] = {k: native[k] for k in _NATIVE_KEYS if k in native}
        native["logs"] = False
        if trust_incoming_context:
            if native.get("exclude") is None:
                native["exclude"] = lambda scope: scope.get("path") in paths
            native["operation_spans"] = operation_spans
            if native.get("metrics", True):  # FastAPI records no body sizes
                _add(app, state, BodySizeMiddleware, excluded_paths=tuple(paths), meter_provider=meter_provider)
            use_middleware = False
        else:
            native["tracing"] = native["metrics"] = False
    if use_middleware:
        _add(app, state, RagotelMiddleware, excluded_paths=tuple(paths),
             trust_incoming_context=trust_incoming_context, tracer_provider=tracer_provider,
             meter_provider=meter_provider)
    else:
        _add(app, state, _LifespanHook)  # RagotelMiddleware tells the lifespan itself
    if metrics_path:
        _add(app, state, MetricsEndpoint, path=metrics_path)  # added last: the outermost
        # Now, not when the app builds its middleware at its first request: what is recorded before that
        # (an index loaded at import) must reach the endpoint too.
        metrics_endpoint.serve(f"instrument_fastapi(metrics_path={metrics_path!r})")
    setattr(app, _APP_STATE, state)
    return app


def _add(app: Any, state: dict[str, Any], cls: type, **kwargs: Any) -> None:
    if getattr(app, "middleware_stack", None) is None:
        app.add_middleware(cls, **kwargs)
    else:  # the app has started: add_middleware refuses, so insert and have the stack rebuilt
        from starlette.middleware import Middleware

        app.user_middleware.insert(0, Middleware(cast(Any, cls), **kwargs))
        app.middleware_stack = None  # requests in flight finish on the old stack
    state["middleware"].append(app.user_middleware[0])  # Starlette inserts the newest first


def uninstrument_fastapi(app: Any) -> Any:
    """Undo ``instrument_fastapi`` for ``app`` (middleware removed, FastAPI's own telemetry settings
    restored); the app rebuilds its middleware on its next request. Returns the app."""
    state = getattr(app, _APP_STATE, None)
    setattr(app, _APP_OPTED_OUT, True)
    if not isinstance(state, dict):
        return app
    added = {id(m) for m in state["middleware"]}
    app.user_middleware[:] = [m for m in app.user_middleware if id(m) not in added]
    native, saved = getattr(app, "_telemetry", None), state["native"]
    if isinstance(native, dict) and isinstance(saved, dict):
        for key in _NATIVE_KEYS:
            if key in saved:
                native[key] = saved[key]
            else:
                native.pop(key, None)
    delattr(app, _APP_STATE)
    if hasattr(app, "middleware_stack"):
        app.middleware_stack = None
    return app


def _instrumented_by_others(app: Any) -> bool:
    """Whether OpenTelemetry's own FastAPI/Starlette/ASGI instrumentation already serves ``app``."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        return True
    if any(getattr(getattr(m, "cls", None), "__name__", "") == "OpenTelemetryMiddleware"
           for m in getattr(app, "user_middleware", ())):
        return True
    for module_name, cls_name, applies in (
        ("opentelemetry.instrumentation.fastapi", "FastAPIInstrumentor", type(app).__module__.startswith("fastapi")
         or any(c.__name__ == "FastAPI" for c in type(app).__mro__)),
        ("opentelemetry.instrumentation.starlette", "StarletteInstrumentor", True),
    ):
        module = sys.modules.get(module_name)
        instance = getattr(getattr(module, cls_name, None), "_instance", None)
        if applies and getattr(instance, "_is_instrumented_by_opentelemetry", False):
            return True
    return False


class FastApiInstrumentor(Instrumentor):
    """``instrument_fastapi`` for every Starlette / FastAPI app of the process, as an OpenTelemetry
    instrumentor (the ``ragotel_fastapi`` entry point, so ``opentelemetry-instrument uvicorn app:app``
    needs no code change).

    Each app is instrumented when it serves its first request or lifespan event, with the keyword
    arguments given to ``instrument`` (those of ``instrument_fastapi``), unless it already is:
    by ``instrument_fastapi`` (its arguments win), by ``opentelemetry-instrumentation-fastapi`` /
    ``-starlette`` or an ``OpenTelemetryMiddleware`` (one server span, theirs), or it is mounted in
    another app (the outer app's span covers it), or ``uninstrument_fastapi`` was called for it.
    """

    label = "FastApiInstrumentor().instrument()"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("starlette >= 0.37",)

    def instrument(self, **kwargs: Any) -> None:
        if self.is_instrumented_by_opentelemetry:
            _log.warning("ragotel: the FastAPI instrumentation is already on; the first one is kept")
            return None
        return super().instrument(**kwargs)

    def _instrument(self, **kwargs: Any) -> None:
        from starlette.applications import Starlette

        options = {k: v for k, v in kwargs.items() if k in _AUTO_OPTIONS}
        classes: list[type] = [Starlette]
        fastapi = sys.modules.get("fastapi.applications")
        if fastapi is None:
            try:
                import fastapi.applications as fastapi
            except ImportError:
                fastapi = None
        if fastapi is not None:
            classes.append(fastapi.FastAPI)
        for cls in classes:
            self._patches.apply(cls, "__call__", lambda original: _auto_call(original, options))


_AUTO_OPTIONS = frozenset({"excluded_paths", "operation_spans", "trust_incoming_context", "metrics_path",
                           "tracer_provider", "meter_provider"})
_APP_SEEN = "_ragotel_seen"


def _auto_call(original: Any, options: dict[str, Any]) -> Any:
    async def __call__(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if self.middleware_stack is None and not self.__dict__.get(_APP_SEEN):
            _auto_instrument(self, scope, options)
        await original(self, scope, receive, send)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    return __call__


def _auto_instrument(app: Any, scope: Scope, options: dict[str, Any]) -> None:
    try:
        app.__dict__[_APP_SEEN] = True
        if ("app" in scope or "fastapi.telemetry" in scope or getattr(app, _APP_OPTED_OUT, False)
                or getattr(app, _APP_STATE, None) is not None or _instrumented_by_others(app)):
            return
        instrument_fastapi(app, **options)
    except Exception as exc:
        report_internal_error("instrumenting an ASGI app", exc)
