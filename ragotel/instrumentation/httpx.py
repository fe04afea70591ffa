"""GenAI spans and metrics for OpenAI-compatible calls (vLLM, OpenAI, ...) made with httpx.

::

    import httpx, ragotel

    ragotel.instrument_httpx()                 # every httpx / httpx2 client in the process
    client = httpx.AsyncClient(base_url="http://vllm:8000")
    ragotel.instrument_httpx(client)           # ... or just this one

:class:`HttpxInstrumentor` is an OpenTelemetry ``BaseInstrumentor`` registered as the
``ragotel_httpx`` ``opentelemetry_instrumentor`` entry point, so ``opentelemetry-instrument python
app.py`` instruments every client with no code change. Inside OpenTelemetry's
``suppress_instrumentation()`` context calls get no span and no ``traceparent``.

Requests to ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings`` each become one
CLIENT span (``chat {model}``, ``text_completion {model}``, ``embeddings {model}``) with the
request parameters, the response id/model/finish reasons and token usage; other requests get no
span but carry the current ``traceparent``, so the services they call join the trace. The
``openai`` SDK sends through httpx (``httpx2`` from openai 3 on, which has the same API and is
instrumented the same way), so SDK users are covered too.

* **Streaming**: SSE chunks are read as they pass to the caller, never buffered; time to first
  chunk and time per output chunk are recorded, and token counts come from the final usage chunk.
  When a streamed request does not ask for usage, ``stream_options.include_usage`` is added and the
  usage-only chunk is taken out of what the caller receives, so the caller sees the stream it asked
  for (``include_usage=False`` turns this off). The span ends when the stream ends, is closed
  early, or fails.
* **Trace context**: the W3C ``traceparent`` of the GenAI span goes out with every call, so a vLLM
  started with ``--otlp-traces-endpoint`` exports its ``llm_request`` span as the call's child.
* **One span per request**: the GenAI span wraps ``Client.send``, above the transport, and is the
  request's CLIENT span (with ``http.response.status_code``, ``server.address``/``server.port``). With
  ``opentelemetry-instrumentation-httpx`` active too, in either order, that instrumentation is told to
  stand aside for GenAI requests (``suppress_http_instrumentation``) and still gives every other request
  its standard HTTP CLIENT span. Instrumenting both globally and per client still yields one span.
* **Inside a step**: within ``ragotel.generation()`` (or ``embedding()``) the call's span is a
  child of the step, and the step leaves operation duration, tokens and cost to the call, so
  nothing is counted twice.
* **Faults**: the caller gets exactly the response or exception it would get without ragotel.
  Timeouts, connection errors, 4xx/5xx and malformed bodies or streams set the span to ERROR with
  ``error.type`` (``timeout``, ``connection``, ``http.4xx``, ``http.5xx``, ``malformed_body``,
  ``malformed_stream``, ``stream_error``) and count in ``rag.step.errors``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from time import perf_counter
from types import ModuleType
from typing import Any, ClassVar, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_http_instrumentation
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core.cardinality import limiter
from ragotel._core.errors import error_type
from ragotel._core.runtime import runtime
from ragotel._core.safe import report_internal_error
from ragotel._genai import hits, messages
from ragotel._genai import protocol as proto
from ragotel._genai.content import policy as content_policy
from ragotel._genai.recorder import MetricAttributes, Recorder, enclosing, openinference_attributes
from ragotel.semconv import StepKind

__all__ = [
    "CLIENT_MODULES",
    "HttpxInstrumentor",
    "instrument_httpx",
    "uninstrument_httpx",
]

# Modules with httpx's client API: httpx itself, and httpx2 (used by openai >= 3).
CLIENT_MODULES: Final = ("httpx", "httpx2")
_log = logging.getLogger("ragotel")
_MARK: Final = "ragotel.genai"  # request extension: this request already has its GenAI span
_CONNECTION_ERRORS: Final = frozenset(
    {"NetworkError", "ConnectError", "ReadError", "WriteError", "RemoteProtocolError", "ProtocolError",
     "ProxyError", "CloseError"}
)


class _Settings:
    __slots__ = ("capture_content", "include_usage", "meter_provider", "provider", "tracer_provider")

    def __init__(self, provider: str | None, include_usage: bool, capture_content: bool | None,
                 tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.provider = provider
        self.include_usage = include_usage
        self.capture_content = capture_content
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def described(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.__slots__)}

    def differences(self, other: _Settings) -> str:
        """``name=kept (ignored: other)`` for each setting that differs; empty when they agree."""
        mine, theirs = self.described(), other.described()
        return ", ".join(f"{k}={mine[k]!r} (ignored: {theirs[k]!r})" for k in mine if mine[k] != theirs[k])


def _settings(
    provider: str | None = None, include_usage: bool = True, capture_content: bool | None = None,
    tracer_provider: Any = None, meter_provider: Any = None, **ignored: Any,
) -> _Settings:
    return _Settings(provider, include_usage, capture_content, tracer_provider, meter_provider)


class HttpxInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """GenAI spans for httpx / httpx2 clients, as an OpenTelemetry instrumentor.

    ``HttpxInstrumentor().instrument()`` patches every client class of every installed httpx module
    (``opentelemetry-instrument`` does this through the ``ragotel_httpx`` entry point);
    :meth:`instrument_client` instruments one client. Keyword arguments, for both:

    Args:
        provider: ``gen_ai.provider.name``; by default ``openai`` for api.openai.com, else ``vllm``.
        include_usage: ask streamed requests for usage when the caller did not (hidden from it).
        capture_content: record prompts and completions (default: the process content policy).
        tracer_provider: spans go to this provider instead of the global one.
        meter_provider: metrics go to this provider instead of the global one (the attribute-overflow
            counter, process-wide like the cap it reports, stays on the global one).

    Instrumenting again (globally, or the same client) keeps the first instrumentation; different
    arguments give a WARNING naming what was kept and what was ignored.
    """

    # Global patches are process-wide; BaseInstrumentor makes this class a singleton.
    _lock: ClassVar = threading.Lock()
    _patched: ClassVar[dict[tuple[str, str], Callable[..., Any]]] = {}
    _global_settings: ClassVar[_Settings | None] = None

    def instrumentation_dependencies(self) -> Collection[str]:
        for name, requirement in (("httpx", "httpx >= 0.27"), ("httpx2", "httpx2")):
            if importlib.util.find_spec(name) is not None:
                return (requirement,)
        return ("httpx >= 0.27",)

    def instrument(self, **kwargs: Any) -> None:
        if self.is_instrumented_by_opentelemetry:
            kept = type(self)._global_settings
            if kept is not None:
                _warn_if_different("instrument_httpx()", kept, _settings(**kwargs))
            return None
        return super().instrument(**kwargs)  # type: ignore[no-any-return]

    def _instrument(self, **kwargs: Any) -> None:
        settings = _settings(**kwargs)
        modules = _client_modules()
        with self._lock:
            type(self)._global_settings = settings
            for module in modules:
                for cls_name, wrapper in (("Client", _sync_send), ("AsyncClient", _async_send)):
                    key = (module.__name__, cls_name)
                    if key in self._patched:
                        continue
                    cls = getattr(module, cls_name)
                    original = cls.send
                    self._patched[key] = original
                    cls.send = _unbound(wrapper, original, settings)

    def _uninstrument(self, **kwargs: Any) -> None:
        with self._lock:
            for (module_name, cls_name), original in list(self._patched.items()):
                getattr(importlib.import_module(module_name), cls_name).send = original
                del self._patched[(module_name, cls_name)]
            type(self)._global_settings = None

    @staticmethod
    def instrument_client(client: Any, **kwargs: Any) -> None:
        """Instrument one client (sync or async); the same keyword arguments as :meth:`instrument`."""
        settings = _settings(**kwargs)
        kept = getattr(client, "_ragotel_settings", None)
        if getattr(client, "_ragotel_send", None) is not None and isinstance(kept, _Settings):
            _warn_if_different("instrument_httpx(client)", kept, settings)
            return
        original = client.send
        wrapper = _async_send if _is_async(client) else _sync_send
        client._ragotel_send = original
        client._ragotel_settings = settings
        client.send = functools.partial(wrapper, original, settings)

    @staticmethod
    def uninstrument_client(client: Any) -> None:
        """Undo :meth:`instrument_client`."""
        if getattr(client, "_ragotel_send", None) is not None:
            del client.send
            client._ragotel_send = None
            client._ragotel_settings = None


def _warn_if_different(what: str, kept: _Settings, asked: _Settings) -> None:
    differences = kept.differences(asked)
    if differences:
        _log.warning("%s: already instrumented; the first instrumentation is kept: %s", what, differences)


def instrument_httpx(
    client: Any = None, *, provider: str | None = None, include_usage: bool = True,
    capture_content: bool | None = None, tracer_provider: Any = None, meter_provider: Any = None,
) -> None:
    """Instrument one httpx client (sync or async), or every client when none is given.

    See :mod:`ragotel.instrumentation.httpx` for what is recorded and :class:`HttpxInstrumentor` for
    the arguments. A second call for the same target keeps the first (a WARNING if the arguments differ).
    """
    kwargs: dict[str, Any] = {"provider": provider, "include_usage": include_usage,
                              "capture_content": capture_content, "tracer_provider": tracer_provider,
                              "meter_provider": meter_provider}
    if client is not None:
        HttpxInstrumentor.instrument_client(client, **kwargs)
    else:
        HttpxInstrumentor().instrument(**kwargs)


def uninstrument_httpx(client: Any = None) -> None:
    """Undo :func:`instrument_httpx` for ``client``, or globally."""
    if client is not None:
        HttpxInstrumentor.uninstrument_client(client)
    else:
        instrumentor = HttpxInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def _client_modules() -> list[ModuleType]:
    modules = []
    for name in CLIENT_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    if not modules:  # ModuleNotFoundError: opentelemetry-instrument skips the instrumentation quietly
        raise ModuleNotFoundError("ragotel.instrument_httpx needs httpx: pip install 'ragotel[httpx]'")
    return modules


def _is_async(client: Any) -> bool:
    return any(cls.__name__ == "AsyncClient" for cls in type(client).__mro__)


def _unbound(wrapper: Callable[..., Any], original: Callable[..., Any], settings: _Settings) -> Any:
    """A function to install as ``Client.send``: binds ``self`` into the original method."""
    if wrapper is _async_send:

        @functools.wraps(original)
        async def async_method(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            return await _async_send(original.__get__(self), settings, request, *args, **kwargs)

        return async_method

    @functools.wraps(original)
    def method(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        return _sync_send(original.__get__(self), settings, request, *args, **kwargs)

    return method


def _propagate(request: Any) -> None:
    """Other requests get no span, but carry the current trace context so the callee joins the trace."""
    try:
        if not runtime.disabled and "traceparent" not in request.headers and is_instrumentation_enabled():
            propagate.inject(request.headers)
    except Exception as exc:
        report_internal_error("propagating trace context", exc)


def _sync_send(send: Callable[..., Any], settings: _Settings, request: Any, *args: Any, **kwargs: Any) -> Any:
    call = _Call.begin(request, settings)
    if call is None:
        _propagate(request)
        return send(request, *args, **kwargs)
    token = otel_context.attach(call.context)
    try:
        with suppress_http_instrumentation():  # this span is the request's one CLIENT span
            response = send(call.request, *args, **kwargs)
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        otel_context.detach(token)
    return call.on_response(response)


async def _async_send(send: Callable[..., Any], settings: _Settings, request: Any, *args: Any, **kwargs: Any) -> Any:
    call = _Call.begin(request, settings)
    if call is None:
        _propagate(request)
        return await send(request, *args, **kwargs)
    token = otel_context.attach(call.context)
    try:
        with suppress_http_instrumentation():  # this span is the request's one CLIENT span
            response = await send(call.request, *args, **kwargs)
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        otel_context.detach(token)
    return call.on_response(response)


class _Call(Recorder):
    """One instrumented API call, from request to the end of its response body: the httpx adapter of the
    GenAI recorder (it reads requests, response heads and body bytes; the recorder records)."""

    def __init__(self, request: Any, settings: _Settings, endpoint: proto.Endpoint) -> None:
        parent = enclosing()
        super().__init__(endpoint.kind, trace.INVALID_SPAN, otel_context.get_current(),
                         _instruments.instruments_for(settings.meter_provider), parent,
                         parent.conversation_id if parent is not None else None)
        self.parent = parent
        self.request = request
        self.settings = settings
        self.endpoint = endpoint
        self.capture = settings.capture_content
        self.ended = False
        self.start = perf_counter()
        self.first_chunk_at: float | None = None
        self.last_chunk_at: float | None = None
        self.facts = proto.ResponseFacts()
        self.sse: proto.SseReader | None = None
        self.body = bytearray()
        self.body_too_large = False
        self.error: str | None = None
        self.info = proto.RequestInfo()
        self.metric_attributes: MetricAttributes = {}
        self.owns_step = True
        self.inputs: list[messages.Message] | None = None
        """Input messages, kept for the details event (content on events only)."""

    @classmethod
    def begin(cls, request: Any, settings: _Settings) -> _Call | None:
        """Start the span for a GenAI request; ``None`` for anything else. Never raises."""
        if runtime.disabled:
            return None
        try:
            if request.extensions.get(_MARK) or not is_instrumentation_enabled():
                return None
            found = proto.match_endpoint(request.url.path)
            if found is None:
                return None
            call = cls(request, settings, found)
            call._start_span()
            return call
        except Exception as exc:
            report_internal_error("starting an HTTP GenAI span", exc)
            return None

    def _start_span(self) -> None:
        request = self.request
        try:
            raw = request.content
        except Exception:  # a streaming request body: its parameters stay unknown
            raw = b""
        self.info = info = proto.read_request(raw, add_usage=self.settings.include_usage)
        if info.usage_added and info.body is not None:
            self.request = request = _with_body(request, proto.encode(info.body))
        request.extensions = {**request.extensions, _MARK: True}

        host = request.url.host or ""
        provider = self.settings.provider or ("openai" if host.endswith("openai.com") else "vllm")
        endpoint = self.endpoint
        attrs: dict[str, AttributeValue] = {
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.RAG_STEP_KIND: self.kind.value,
            sc.SERVER_ADDRESS: host,
        }
        if endpoint.operation is not None:
            attrs[sc.GEN_AI_OPERATION_NAME] = endpoint.operation.value
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        attrs[sc.SERVER_PORT] = port
        attrs.update(info.attributes)
        if self.parent is not None and self.parent.take_over(self.kind):
            self.owns_step = False  # the enclosing step of this kind times it; this call records the rest
        else:
            # Outside a step of its kind the call is that step: its one duration record says so.
            attrs[sc.RAG_STEP_NAME] = endpoint.verb
        # The model comes from the request body: capped, like every value a client can choose.
        self.metric_attributes = limiter.bound({k: v for k, v in attrs.items() if k in sc.METRIC_ATTRIBUTES})
        if self.conversation_id is not None:
            attrs[sc.GEN_AI_CONVERSATION_ID] = self.conversation_id

        name = f"{endpoint.verb} {info.model}" if info.model else endpoint.verb
        tracer = _instruments.tracer_for(self.settings.tracer_provider)
        span_attrs = {**attrs, **openinference_attributes(self.kind, info.model)} if runtime.openinference else attrs
        self.span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
        if info.body is not None and self.kind is StepKind.GENERATION:
            self._capture_inputs(info.body)
        self.context = trace.set_span_in_context(self.span)
        propagate.inject(request.headers, context=self.context)

    # -- response ----------------------------------------------------------------------------------
    def on_response(self, response: Any) -> Any:
        """Look at the response head; end now if the body was read, else follow its stream."""
        try:
            status = int(response.status_code)
            self.span.set_attribute(sc.HTTP_RESPONSE_STATUS_CODE, status)
            if status >= 400:
                self.error = f"http.{status // 100}xx"
            if getattr(response, "_content", None) is not None:  # read by Client.send(stream=False)
                self._read_body(response.content)
                self.finish()
                return response
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" in content_type:
                self.sse = proto.SseReader(
                    self.facts, keep_text=self._keeps_text(), hide_usage_chunk=self.info.usage_added
                )
            response.stream = _wrap_stream(response.stream, self)
        except Exception as exc:
            report_internal_error("reading an HTTP GenAI response", exc)
            self.finish()
        return response

    def _on_spans(self) -> bool:
        return content_policy.enabled if self.capture is None else self.capture

    def _keeps_text(self) -> bool:
        return self._on_spans() or content_policy.events

    def _capture_inputs(self, body: dict[str, Any]) -> None:
        """The prompt in the conventions' parts schema, on the span and/or kept for the details event."""
        if not self._keeps_text():
            return
        found = messages.request_messages(body, content_policy.clean)
        if found is None:
            return
        if self._on_spans():
            self.span.set_attribute(sc.GEN_AI_INPUT_MESSAGES, messages.dumps(found))
        if content_policy.events:
            self.inputs = found

    def _read_body(self, raw: bytes) -> None:
        if self.error is None and raw:
            self.facts.read_json(raw, keep_text=self._keeps_text())

    def on_bytes(self, data: bytes) -> bytes:
        """Called with each piece of the body as it passes; returns what the caller should get."""
        try:
            now = perf_counter()
            if self.sse is None:
                if not self.body_too_large:
                    self.body += data
                    self.body_too_large = len(self.body) > proto.MAX_PARSED_BODY
                return data
            before = self.sse.chunks
            out = self.sse.feed(data)
            if self.sse.chunks > before:
                self._time_chunks(now, self.sse.chunks - before)
            return out
        except Exception as exc:
            report_internal_error("reading an HTTP GenAI stream", exc)
            return data

    def _time_chunks(self, now: float, new: int) -> None:
        ins = self.ins
        attrs = self.metric_attributes
        if self.first_chunk_at is None:
            self.first_chunk_at = now
            ins.time_to_first_chunk.record(now - self.start, attrs, context=self.context)
            new -= 1
        elif self.last_chunk_at is not None:
            ins.time_per_output_chunk.record(now - self.last_chunk_at, attrs, context=self.context)
            new -= 1
        for _ in range(new):  # several chunks in one read arrived together
            ins.time_per_output_chunk.record(0.0, attrs, context=self.context)
        self.last_chunk_at = now

    def end_of_body(self) -> bytes:
        try:
            if self.sse is not None:
                tail = self.sse.flush()
                if self.sse.done is False and self.sse.chunks == 0 and self.error is None:
                    self.facts.error = self.facts.error or "malformed_stream"
                return tail
            if not self.body_too_large:
                self._read_body(bytes(self.body))
        except Exception as exc:
            report_internal_error("reading an HTTP GenAI body", exc)
        return b""

    # -- ending ------------------------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, GeneratorExit):
            self.finish(cancelled=True)
            return
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "TimeoutException" in names:
            etype = "timeout"
        elif names & _CONNECTION_ERRORS:
            etype = "connection"
        elif "CancelledError" in names:
            self.finish(cancelled=True)
            return
        else:
            etype = error_type(exc)
        self.error = etype
        try:
            self.span.record_exception(exc, escaped=True)
        except Exception as internal:
            report_internal_error("recording an HTTP GenAI exception", internal)
        self.finish()

    def finish(self, *, cancelled: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            self._record(cancelled)
        except Exception as exc:
            report_internal_error("finishing an HTTP GenAI span", exc)
        finally:
            self.span.end()

    def _record(self, cancelled: bool) -> None:
        duration = perf_counter() - self.start
        facts = self.facts
        error = self.error or facts.error
        attrs = self.metric_attributes
        out: dict[str, AttributeValue] = {}
        self.response_attributes(facts, out)
        if self.first_chunk_at is not None:
            out[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self.first_chunk_at - self.start
        quality = None
        if self.kind is StepKind.RERANK:
            if facts.usage.known:  # rerank answers count the tokens read, unpriced
                self.record_usage(facts.usage, out, None)
            if facts.scores is not None:
                quality = self.record_scores(len(facts.scores), hits.scores(facts.scores), out, attrs, None)
        elif facts.usage.known:
            self.record_usage(facts.usage, out, lambda token_type: {**attrs, sc.GEN_AI_TOKEN_TYPE: token_type})
        outputs = self.record_outputs(facts, out, on_span=self._on_spans()) if facts.choices else None
        self.span.set_attributes(out)

        failed: MetricAttributes | None = None
        if error is not None:
            # Also when the enclosing step succeeds (its code caught the error): the failed call counts.
            failed = self.record_failure(error, attrs)
            timed = {**attrs, sc.ERROR_TYPE: failed[sc.ERROR_TYPE]}
        else:
            failed = self.record_cancelled(attrs) if cancelled else None
            timed = attrs
        if self.kind is StepKind.RERANK:
            # The conventions have no rerank operation: the call is a rerank step, timed as steps are
            # (inside a rerank step, that step's duration covers it).
            if self.owns_step:
                step_attrs = failed if failed is not None else {**attrs, sc.RAG_OUTCOME: sc.Outcome.OK.value}
                if quality is not None and error is None:
                    step_attrs = {**step_attrs, sc.RAG_RETRIEVAL_QUALITY: quality}
                self.ins.step_duration.record(duration, step_attrs, context=self.context)
        else:
            self.ins.operation_duration.record(duration, timed, context=self.context)
        if content_policy.events and self.kind is StepKind.GENERATION:
            self.emit_details({}, self.inputs, outputs)



def _with_body(request: Any, body: bytes) -> Any:
    """The same request with a new JSON body (and a matching Content-Length)."""
    headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
    return type(request)(request.method, request.url, headers=headers, content=body, extensions=request.extensions)


# -- response streams ------------------------------------------------------------------------------
_stream_classes: dict[str, tuple[type, type]] = {}


def _wrap_stream(stream: Any, call: _Call) -> Any:
    """Wrap a response body stream so that ``call`` sees every byte and ends with the body."""
    module = type(stream).__module__.split(".")[0]
    if module not in _stream_classes:
        _stream_classes[module] = _make_stream_classes(importlib.import_module(module))
    sync_cls, async_cls = _stream_classes[module]
    return async_cls(stream, call) if hasattr(stream, "__aiter__") else sync_cls(stream, call)


def _make_stream_classes(module: ModuleType) -> tuple[type, type]:
    # Subclasses of the module's own stream types: Response checks isinstance() before iterating.
    class ObservedSyncStream(module.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, call: _Call) -> None:
            self._inner = inner
            self._call = call

        def __iter__(self) -> Iterator[bytes]:
            call = self._call
            try:
                for data in self._inner:
                    out = call.on_bytes(data)
                    if out:
                        yield out
            except GeneratorExit:
                raise
            except BaseException as exc:
                call.fail(exc)
                raise
            tail = call.end_of_body()
            if tail:
                yield tail
            call.finish()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._call.finish(cancelled=True)  # no-op when the body was read to its end

        def __del__(self) -> None:
            self._call.finish(cancelled=True)

    class ObservedAsyncStream(module.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, call: _Call) -> None:
            self._inner = inner
            self._call = call

        async def __aiter__(self) -> AsyncIterator[bytes]:
            call = self._call
            try:
                async for data in self._inner:
                    out = call.on_bytes(data)
                    if out:
                        yield out
            except GeneratorExit:
                raise
            except BaseException as exc:
                call.fail(exc)
                raise
            tail = call.end_of_body()
            if tail:
                yield tail
            call.finish()

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._call.finish(cancelled=True)

        def __del__(self) -> None:
            self._call.finish(cancelled=True)

    return ObservedSyncStream, ObservedAsyncStream
