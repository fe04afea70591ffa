"""GenAI spans and metrics for OpenAI-compatible calls (vLLM, OpenAI, ...) made with httpx.

::

    import httpx, ragotel

    ragotel.instrument_httpx()                 # every httpx / httpx2 client in the process
    client = httpx.AsyncClient(base_url="http://vllm:8000")
    ragotel.instrument_httpx(client)           # ... or just this one

``HttpxInstrumentor`` is an OpenTelemetry ``BaseInstrumentor`` registered as the
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
import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import asdict
from types import ModuleType
from typing import Any, Final

from ragotel._core import runtime
from ragotel._core.safe import report_internal_error
from ragotel.instrumentation._base import warn_if_different
from ragotel.instrumentation._http import (
    CallSettings,
    HttpCall,
    HttpClientInstrumentor,
    call_settings,
    observed,
    observed_async,
    propagate_context,
)

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


class HttpxInstrumentor(HttpClientInstrumentor):
    """GenAI spans for httpx / httpx2 clients, as an OpenTelemetry instrumentor.

    ``HttpxInstrumentor().instrument()`` patches every client class of every installed httpx module
    (``opentelemetry-instrument`` does this through the ``ragotel_httpx`` entry point);
    ``instrument_client`` instruments one client. Keyword arguments, for both:

    Keyword Args:
        provider (str | None): ``gen_ai.provider.name``; by default ``openai`` for api.openai.com, else ``vllm``.
        include_usage (bool): ask streamed requests for usage when the caller did not (hidden from it).
        capture_content (bool | None): record prompts and completions (default: the process content policy).
        tracer_provider (TracerProvider | None): spans go to this provider instead of the global one.
        meter_provider (MeterProvider | None): metrics go to this provider instead of the global one (the
            attribute-overflow counter, process-wide like the cap it reports, stays on the global one).

    Instrumenting again (globally, or the same client) keeps the first instrumentation; different
    arguments give a WARNING naming what was kept and what was ignored.
    """

    label = "instrument_httpx()"

    def instrumentation_dependencies(self) -> Collection[str]:
        for name, requirement in (("httpx", "httpx >= 0.27"), ("httpx2", "httpx2")):
            if importlib.util.find_spec(name) is not None:
                return (requirement,)
        return ("httpx >= 0.27",)

    def _instrument(self, **kwargs: Any) -> None:
        settings = call_settings(**kwargs)
        for module in _client_modules():
            for cls, wrapper in _known_clients(module):
                self._patches.apply(cls, "send", functools.partial(_unbound, wrapper, settings=settings))

    @staticmethod
    def instrument_client(client: Any, **kwargs: Any) -> None:
        """Instrument one client (sync or async); the same keyword arguments as ``instrument``."""
        settings = call_settings(**kwargs)
        kept = getattr(client, "_ragotel_settings", None)
        if getattr(client, "_ragotel_send", None) is not None and isinstance(kept, CallSettings):
            warn_if_different("instrument_httpx(client)", asdict(kept), asdict(settings))
            return
        original = getattr(client, "send", None)
        is_async = _is_async(client)
        module = _module_of(client)
        stream = getattr(module, _STREAMS[is_async], None)
        if not callable(original) or not isinstance(stream, type):
            lacks = [name for name, present in ((f"{type(client).__name__}.send", callable(original)),
                                                (_STREAMS[is_async], isinstance(stream, type))) if not present]
            _unknown_api(module, lacks, f"calls made with this {type(client).__name__}")
            return
        wrapper = _async_send if is_async else _sync_send
        client._ragotel_send = original
        client._ragotel_settings = settings
        client.send = functools.partial(wrapper, original, settings)

    @staticmethod
    def uninstrument_client(client: Any) -> None:
        """Undo ``instrument_client``."""
        if getattr(client, "_ragotel_send", None) is not None:
            del client.send
            client._ragotel_send = None
            client._ragotel_settings = None


def instrument_httpx(
    client: Any = None, *, provider: str | None = None, include_usage: bool = True,
    capture_content: bool | None = None, tracer_provider: Any = None, meter_provider: Any = None,
) -> None:
    """Instrument one httpx client (sync or async), or every client when none is given.

    See ``ragotel.instrumentation.httpx`` for what is recorded and ``HttpxInstrumentor`` for
    the arguments. A second call for the same target keeps the first (a WARNING if the arguments differ).
    """
    kwargs: dict[str, Any] = {"provider": provider, "include_usage": include_usage,
                              "capture_content": capture_content, "tracer_provider": tracer_provider,
                              "meter_provider": meter_provider}
    if client is not None:
        HttpxInstrumentor.instrument_client(client, **kwargs)
    else:
        HttpxInstrumentor.turn_on(**kwargs)


def uninstrument_httpx(client: Any = None) -> None:
    """Undo ``instrument_httpx`` for ``client``, or globally."""
    if client is not None:
        HttpxInstrumentor.uninstrument_client(client)
    else:
        HttpxInstrumentor.turn_off()


# Per client class, the base class of its response streams, which a streamed response's wrapper derives from.
_STREAMS: Final = {False: "SyncByteStream", True: "AsyncByteStream"}
_warned_unknown: set[tuple[str, str]] = set()


def _known_clients(module: ModuleType) -> list[tuple[type, Callable[..., Any]]]:
    """The client classes of ``module`` to patch, with their wrappers: those with the API ragotel knows
    (``send`` on the class, a byte stream class to derive from). What a release lacks is named in one WARNING,
    and its calls go uninstrumented; the rest is instrumented."""
    known: list[tuple[type, Callable[..., Any]]] = []
    lacks: list[str] = []
    left_out: list[str] = []
    for cls_name, wrapper, kind in (("Client", _sync_send, "sync"), ("AsyncClient", _async_send, "async")):
        cls, stream_name = getattr(module, cls_name, None), _STREAMS[kind == "async"]
        missing = ([] if isinstance(cls, type) and callable(cls.__dict__.get("send"))
                   else [f"{cls_name}.send" if isinstance(cls, type) else cls_name])
        if not isinstance(getattr(module, stream_name, None), type):
            missing.append(stream_name)
        if not missing and isinstance(cls, type):
            known.append((cls, wrapper))
        else:
            lacks += missing
            left_out.append(kind)
    if lacks:
        _unknown_api(module, lacks, f"calls made with its {' and '.join(left_out)} clients")
    return known


def _module_of(client: Any) -> ModuleType | None:
    """The httpx-like module a client (or the class it derives from, like the openai SDK's) comes from."""
    names = [cls.__module__.partition(".")[0] for cls in type(client).__mro__]
    name = next((n for n in names if n in CLIENT_MODULES), names[0])
    return sys.modules.get(name)


def _unknown_api(module: ModuleType | None, lacks: list[str], what: str) -> None:
    """One WARNING per module and release: it lacks the API instrument_httpx() patches, so ``what`` gets no
    GenAI span, metrics or ``traceparent``."""
    name = getattr(module, "__name__", "httpx")
    release = getattr(module, "__version__", None)  # the module imported, wherever it came from
    if not isinstance(release, str):
        try:
            release = importlib.metadata.version(name)
        except Exception:
            release = "(version unknown)"
    if (name, release) in _warned_unknown:
        return
    _warned_unknown.add((name, release))
    _log.warning("ragotel: %s %s has no %s, the API instrument_httpx() patches (that of httpx 0.27 and later 0.x "
                 "releases, and of httpx2): %s are not instrumented", name, release, ", ".join(lacks), what)


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


def _unbound(wrapper: Callable[..., Any], original: Callable[..., Any], *, settings: CallSettings) -> Any:
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


def _begin(request: Any, settings: CallSettings) -> tuple[HttpCall | None, Any]:
    """The GenAI call for an httpx request (``None``: not a GenAI request, or already instrumented), and
    the request to send. Never raises."""
    try:
        if request.extensions.get(_MARK):
            return None, request
        url = request.url
        try:
            body = request.content
        except Exception:  # a streaming request body: its parameters stay unknown
            body = b""
        call = HttpCall.begin(settings, url=url, path=url.path, host=url.host or "",
                              port=url.port or (443 if url.scheme == "https" else 80), body=body)
        if call is not None:
            if call.body_to_send is not None:
                request = _with_body(request, call.body_to_send)
            request.extensions = {**request.extensions, _MARK: True}
            call.inject(request.headers)
        return call, request
    except Exception as exc:
        report_internal_error("starting an httpx GenAI call", exc)
        return None, request


def _sync_send(send: Callable[..., Any], settings: CallSettings, request: Any, *args: Any, **kwargs: Any) -> Any:
    call, request = _begin(request, settings) if not runtime.current.disabled else (None, request)
    if call is None:
        propagate_context(request.headers)
        return send(request, *args, **kwargs)
    with call.sending():
        response = send(request, *args, **kwargs)
    return _on_response(call, response)


async def _async_send(send: Callable[..., Any], settings: CallSettings, request: Any, *args: Any,
                      **kwargs: Any) -> Any:
    call, request = _begin(request, settings) if not runtime.current.disabled else (None, request)
    if call is None:
        propagate_context(request.headers)
        return await send(request, *args, **kwargs)
    with call.sending():
        response = await send(request, *args, **kwargs)
    return _on_response(call, response)


def _on_response(call: HttpCall, response: Any) -> Any:
    """Look at the response head; end now if the body was read, else follow its stream."""
    try:
        call.on_head(int(response.status_code), response.headers.get("content-type", ""))
        if getattr(response, "_content", None) is not None:  # read by Client.send(stream=False)
            call.on_body(response.content)
        else:
            response.stream = _wrap_stream(response.stream, call)
    except Exception as exc:
        report_internal_error("reading an HTTP GenAI response", exc)
        call.stop()
    return response


def _with_body(request: Any, body: bytes) -> Any:
    """The same request with a new JSON body (and a matching Content-Length)."""
    headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
    return type(request)(request.method, request.url, headers=headers, content=body, extensions=request.extensions)


# -- response streams ------------------------------------------------------------------------------
_stream_classes: dict[str, tuple[type, type]] = {}


def _wrap_stream(stream: Any, call: HttpCall) -> Any:
    """Wrap a response body stream so that ``call`` sees every byte and ends with the body."""
    module = type(stream).__module__.split(".")[0]
    if module not in _stream_classes:
        _stream_classes[module] = _make_stream_classes(importlib.import_module(module))
    sync_cls, async_cls = _stream_classes[module]
    return async_cls(stream, call) if hasattr(stream, "__aiter__") else sync_cls(stream, call)


def _make_stream_classes(module: ModuleType) -> tuple[type, type]:
    # Subclasses of the module's own stream types: Response checks isinstance() before iterating.
    class ObservedSyncStream(module.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, call: HttpCall) -> None:
            self._inner = inner
            self._call = call

        def __iter__(self) -> Iterator[bytes]:
            return observed(self._call, self._inner)

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._call.cancel()  # no-op when the body was read to its end

        def __del__(self) -> None:
            self._call.cancel()

    class ObservedAsyncStream(module.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, call: HttpCall) -> None:
            self._inner = inner
            self._call = call

        def __aiter__(self) -> AsyncIterator[bytes]:
            return observed_async(self._call, self._inner)

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._call.cancel()

        def __del__(self) -> None:
            self._call.cancel()

    return ObservedSyncStream, ObservedAsyncStream
