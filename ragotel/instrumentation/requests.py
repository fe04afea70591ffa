"""GenAI spans and metrics for OpenAI-compatible calls made with ``requests``: the requests adapter.

::

    import ragotel, requests

    ragotel.instrument_requests()     # or, with no code: opentelemetry-instrument (ragotel_requests)
    requests.post("http://vllm:8000/v1/chat/completions", json={"model": "llama", "messages": [...]})

The same as the httpx instrumentation (``ragotel.instrumentation.httpx``), through the same
``ragotel.instrumentation._http.HttpCall``: one CLIENT span per call to ``/v1/chat/completions``,
``/v1/completions``, ``/v1/embeddings``, rerank or score, with the request parameters, usage, cost, time
to first chunk of a ``stream=True`` response read with ``iter_content``/``iter_lines``, and the
``traceparent`` vLLM joins; other requests carry the ``traceparent`` only.

It wraps ``HTTPAdapter.send``, under ``Session.send``: with ``opentelemetry-instrumentation-requests``
active as well, in either order, that instrumentation's HTTP span for a GenAI request is the call's one
span, enriched with the GenAI name and attributes (its span ends when ``send`` returns, so a streamed
answer's usage and timing reach the metrics but not that span).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator
from typing import Any
from urllib.parse import urlsplit

from ragotel._core import runtime
from ragotel._core.safe import report_internal_error
from ragotel.instrumentation._http import (
    CallSettings,
    HttpCall,
    HttpClientInstrumentor,
    call_settings,
    observed,
    propagate_context,
)

__all__ = ["RequestsInstrumentor", "instrument_requests", "uninstrument_requests"]


class RequestsInstrumentor(HttpClientInstrumentor):
    """GenAI spans for ``requests``, as an OpenTelemetry instrumentor (``ragotel_requests``).

    Keyword arguments as ``ragotel.instrumentation.httpx.HttpxInstrumentor``'s: ``provider``,
    ``include_usage``, ``capture_content``, ``tracer_provider``, ``meter_provider``.
    """

    label = "instrument_requests()"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("requests >= 2.28",)

    def _instrument(self, **kwargs: Any) -> None:
        from requests.adapters import HTTPAdapter

        self._patches.apply(HTTPAdapter, "send", functools.partial(_sending, settings=call_settings(**kwargs)))


def instrument_requests(
    *, provider: str | None = None, include_usage: bool = True, capture_content: bool | None = None,
    tracer_provider: Any = None, meter_provider: Any = None,
) -> None:
    """Instrument every ``requests`` call (see this module); a second call keeps the first."""
    RequestsInstrumentor.turn_on(provider=provider, include_usage=include_usage, capture_content=capture_content,
                                 tracer_provider=tracer_provider, meter_provider=meter_provider)


def uninstrument_requests() -> None:
    """Undo ``instrument_requests``."""
    RequestsInstrumentor.turn_off()


def _sending(original: Any, *, settings: CallSettings) -> Any:
    # updated=(): no attributes copied from the method, so another instrumentation's markers stay its own.
    @functools.wraps(original, updated=())
    def send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call, request = _begin(request, settings) if not runtime.current.disabled else (None, request)
        if call is None:
            return original(adapter, request, *args, **kwargs)
        with call.sending():  # urllib3's instrumentation, if any, stands aside too
            response = original(adapter, request, *args, **kwargs)
        return _on_response(call, response)

    return send


def _begin(request: Any, settings: CallSettings) -> tuple[HttpCall | None, Any]:
    """The GenAI call for a prepared request (``None``: any other request, which gets the ``traceparent``),
    and the request to send. Never raises."""
    try:
        url = urlsplit(request.url)
        body = request.body
        raw = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
        call = HttpCall.begin(settings, url=request.url, path=url.path, host=url.hostname or "",
                              port=url.port or (443 if url.scheme == "https" else 80), body=raw)
        if call is None:
            propagate_context(request.headers)
            return None, request
        if call.body_to_send is not None:
            request = request.copy()  # the caller's request stays as it was
            request.body = call.body_to_send
            request.headers["Content-Length"] = str(len(call.body_to_send))
        call.inject(request.headers)
        return call, request
    except Exception as exc:
        report_internal_error("starting a requests GenAI call", exc)
        return None, request


def _on_response(call: HttpCall, response: Any) -> Any:
    """Follow the body as ``requests`` reads it from ``response.raw`` (all of it in ``Session.send`` unless
    ``stream=True``)."""
    try:
        call.on_head(int(response.status_code), response.headers.get("content-type", ""))
        response.raw = _ObservedRaw(response.raw, call)
    except Exception as exc:
        report_internal_error("reading a requests GenAI response", exc)
        call.stop()
    return response


class _ObservedRaw:
    """The urllib3 response ``requests`` reads the body from, with every byte shown to the call."""

    def __init__(self, inner: Any, call: HttpCall) -> None:
        self._inner = inner
        self._call = call

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        return observed(self._call, self._inner.stream(amt, decode_content=decode_content))

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        try:
            data: bytes = self._inner.read(amt, *args, **kwargs)
        except BaseException as exc:
            self._call.fail(exc)
            raise
        out = self._call.on_bytes(data) if data else b""
        if amt is None or not data:
            out += self._call.end_of_body()
            self._call.stop()
        return out

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._call.cancel()  # no-op when the body was read to its end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __del__(self) -> None:
        self._call.cancel()
