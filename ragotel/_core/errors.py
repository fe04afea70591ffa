"""The ``error.type`` rule, and the ``rag.error`` event that notes a failure on a span.

One rule for every ``error.type`` ragotel sets from an exception — steps, HTTP client calls, server spans
and the metrics they record — as the OpenTelemetry conventions ask: a low-cardinality value from a
documented list where the failure has a well-known kind, the exception's qualified class name only
where nothing better exists. ``DOCUMENTED`` lists every value, with when and where it is set
(docs/reference/error-types.md is generated from it).

HTTP clients are recognised by the class names in an exception's hierarchy and by duck typing, so
this module imports none of them: httpx, requests, urllib3, aiohttp and the openai SDK classify
alike whether or not they are installed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Final

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc

TIMEOUT: Final = "timeout"
CONNECTION: Final = "connection"
CANCELLED: Final = "cancelled"
# What an instrumented HTTP call records when a 200 cannot be read as the API promises.
MALFORMED_BODY: Final = "malformed_body"
MALFORMED_STREAM: Final = "malformed_stream"
STREAM_ERROR: Final = "stream_error"
# How far back through __cause__ / __context__ a wrapper's error.type looks for a well-known kind.
_MAX_CHAIN: Final = 8

# Class names (anywhere in an exception's hierarchy) that mean the connection failed or broke: httpx,
# requests, urllib3, aiohttp, the openai SDK and the OS (ConnectionRefusedError and its siblings).
_CONNECTION_ERRORS: Final = frozenset({
    "NetworkError", "ConnectError", "ReadError", "WriteError", "RemoteProtocolError", "ProtocolError", "ProxyError",
    "CloseError", "ConnectionError", "ChunkedEncodingError", "ClientConnectionError", "ServerDisconnectedError",
    "NewConnectionError", "APIConnectionError", "gaierror",
})


def is_cancellation(exc: BaseException) -> bool:
    """The caller stopped the work (a closed generator, a cancelled task): not a failure of it."""
    return isinstance(exc, GeneratorExit) or any(cls.__name__ == "CancelledError" for cls in type(exc).__mro__)


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception, by the first rule that applies:

    * ``cancelled``: a cancelled task or closed generator (steps and calls record these as
      ``rag.outcome=cancelled``, not as errors; the value is for ``ragotel.record_error``);
    * ``timeout``: any class named ``*Timeout*`` (``TimeoutError``, ``httpx.ReadTimeout``,
      ``requests.Timeout``, ``openai.APITimeoutError``, ...);
    * ``connection``: refused, reset or dropped connections and failed name lookups, from httpx, requests,
      urllib3, aiohttp, the openai SDK or the OS;
    * ``http.4xx`` / ``http.5xx`` (the status class): an error a client raised for an HTTP answer
      (``httpx.HTTPStatusError``, ``requests.HTTPError`` and ``openai.APIStatusError`` with their
      ``response``, ``aiohttp.ClientResponseError``), the value an instrumented call records for that answer;
    * the first of these kinds among the exceptions it was raised from or while handling (``raise
      StageError(...) from exc`` around a timed-out call is a ``timeout``): an application's own wrapper
      says where the failure surfaced, the kind says what failed;
    * otherwise the class name, qualified unless it is a builtin (``ValueError``, ``app.errors.StageError``).

    A class defined in a module run as ``python -m pkg.mod`` lives in ``__main__``; it is named after
    the module it was imported as, so the value does not depend on how the process was started.
    """
    try:
        known = _classify(exc)
        cause: BaseException | None = exc
        depth = 0
        while known is None and cause is not None and depth < _MAX_CHAIN:
            cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
            if cause is None:
                break
            found = _classify(cause)
            known = found if found != CANCELLED else None
            depth += 1
    except Exception:  # an exception whose attributes raise: it still gets its class name
        known = None
    return known or qualified_name(exc)


def http_status_class(status: int) -> str:
    """``http.4xx`` for 404: the ``error.type`` of an HTTP answer that failed."""
    return f"http.{status // 100}xx"


def qualified_name(exc: BaseException) -> str:
    """The exception's class name, qualified unless it is a builtin."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = getattr(spec, "name", None) or module
    return f"{module}.{cls.__qualname__}"


def _classify(exc: BaseException) -> str | None:
    if is_cancellation(exc):
        return CANCELLED
    # The most derived class decides: urllib3's NewConnectionError derives from ConnectTimeoutError for
    # compatibility, requests' ConnectTimeout from ConnectionError.
    for cls in type(exc).__mro__:
        name = cls.__name__
        if name in _CONNECTION_ERRORS:
            return CONNECTION
        if "Timeout" in name:
            return TIMEOUT
    status = answer_status(exc)
    return http_status_class(status) if status is not None else None


def answer_status(exc: BaseException) -> int | None:
    """The status of the HTTP answer a client's exception carries, if it carries one."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) if response is not None else None
    if status is None and any(cls.__name__ == "ClientResponseError" for cls in type(exc).__mro__):
        status = getattr(exc, "status", None)  # aiohttp keeps it on the exception
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
        return status
    return None


def note_error(span: Span, etype: str, *, stage: str | None = None, message: str | None = None) -> None:
    """Set ``error.type`` on ``span`` and add a ``rag.error`` event naming the stage (the status is the caller's)."""
    span.set_attribute(sc.ERROR_TYPE, etype)
    event: dict[str, AttributeValue] = {sc.ERROR_TYPE: etype}
    if stage:
        event[sc.RAG_STEP_KIND] = stage
    if message:
        event[sc.RAG_ERROR_MESSAGE] = message
    span.add_event(sc.RAG_ERROR_EVENT, event)


@dataclass(frozen=True, slots=True)
class Documented:
    """One kind of ``error.type`` value: which values, when ragotel sets them and where they show (Markdown)."""

    values: tuple[str, ...]
    when: str
    where: str
    examples: bool = False
    """``values`` are examples of an open set (status codes, class names)."""
    label: str | None = None
    """What the table shows instead of ``values`` (a value the application chooses)."""


_STEPS_AND_CALLS: Final = (
    "steps, HTTP client calls, server spans (an exception escaping the app); their `rag.step.errors`, "
    "`gen_ai.client.operation.duration`, `http.server.request.duration`"
)
DOCUMENTED: Final = (
    Documented((TIMEOUT,), "an exception class named `*Timeout*`: `TimeoutError`, `httpx.ReadTimeout`, "
               "`requests.Timeout`, `openai.APITimeoutError`, aiohttp's", _STEPS_AND_CALLS),
    Documented((CONNECTION,), "refused, reset or dropped connections, failed name lookups: httpx, requests, urllib3, "
               "aiohttp, the openai SDK, the OS (`ConnectionError`, `socket.gaierror`)", _STEPS_AND_CALLS),
    Documented((http_status_class(400), http_status_class(500)),
               "an HTTP call answered with that status class; a client's error for such an answer "
               "(`raise_for_status()`: `httpx.HTTPStatusError`, `requests.HTTPError`; `openai.APIStatusError`, "
               "`aiohttp.ClientResponseError`)", "HTTP client calls; steps and server spans the error escapes from"),
    Documented((MALFORMED_BODY, MALFORMED_STREAM, STREAM_ERROR),
               "a 200 whose JSON body or SSE stream cannot be read as the API promises, or a stream that reports "
               "an error", "HTTP client calls"),
    Documented(("500", "503"), "the server answered a 5xx (the HTTP server conventions: the status code as a string)",
               "server spans, `http.server.request.duration`", examples=True),
    Documented((CANCELLED,), "`ragotel.record_error(stage, exc)` given a cancelled task's error (steps and calls "
               "record a cancellation as `rag.outcome=cancelled`, not an error)", "`rag.step.errors`"),
    Documented((), '`ragotel.record_error(stage, "validation")`, `fail_response("...")`',
               "`rag.step.errors{rag.step.kind=<stage>}` (`record_error`); the server span and "
               "`http.server.request.duration` (`fail_response`)", label="your value"),
    Documented(("ValueError", "app.errors.StageError"),
               "any other exception: the class name, qualified unless builtin (the module it was imported as, "
               "even when run with `python -m`)", "wherever it escapes", examples=True),
)
"""Every ``error.type`` value ragotel sets, by kind: the values a test finds in the code are among them."""
