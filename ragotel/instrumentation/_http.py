"""What every HTTP client adapter shares: one call to an OpenAI-compatible API (``HttpCall``), the
settings an instrumented client records with, and how a second instrumentation is reported.

Another instrumentation of the same call is enriched, never doubled. Its span for the call, when it is the
current one as the request leaves, becomes the call's span: ragotel adds its attributes and leaves the span's
name (for a GenAI span), parent and end to its owner.

- An HTTP client span (opentelemetry-instrumentation-requests) is renamed to the GenAI name. A streamed call
  is the exception: that span ends with the response head, so the call gets its own GenAI span under it.
- A GenAI span of an openai SDK instrumentation (OpenTelemetry's ``opentelemetry-instrumentation-openai-v2``,
  whose spans come from ``opentelemetry-util-genai``'s handler, and OpenLLMetry's
  ``opentelemetry-instrumentation-openai``) is the same operation seen one layer up. Enriching it, rather than
  stepping aside, keeps what only the wire shows (the server's usage parts, time to first chunk, vLLM's
  provider name, the usage chunk ragotel asked for and hid, cost, ``rag.*`` and OpenInference keys) on the
  one span a trace shows. Both of those instrumentations record ``gen_ai.client.operation.duration`` for
  every call and ``gen_ai.client.token.usage`` whenever the response they see carries usage, so ragotel
  records neither for such a call, except the tokens of a usage chunk the caller (and so they) never saw.
  Its own series (time to first chunk and per chunk, cost, errors) are recorded as always: neither of them
  records these under the same names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_http_instrumentation
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core import runtime
from ragotel._core.cardinality import limiter
from ragotel._core.errors import http_status_class, is_cancellation
from ragotel._core.safe import report_internal_error
from ragotel._genai import content, hits, messages
from ragotel._genai import protocol as proto
from ragotel._genai.operation import (
    Counting,
    MetricAttributes,
    Operation,
    enclosing,
    openinference_attributes,
    openinference_text,
)
from ragotel.instrumentation._base import Instrumentor
from ragotel.semconv import Operation as OperationName
from ragotel.semconv import StepKind

_log = logging.getLogger("ragotel")
# HTTP client instrumentations whose span for a request ragotel enriches instead of adding its own.
_HTTP_SCOPES: Final = ("opentelemetry.instrumentation.requests",)
_UTIL_GENAI_SCOPE: Final = "opentelemetry.util.genai.handler"
# That handler emits its own details event for a call by these variables (its rule: the explicit switch when
# set, else content captured on events); for a span of that handler's, ragotel's is left out.
_UTIL_GENAI_EVENTS: Final = frozenset({"EVENT_ONLY", "SPAN_AND_EVENT"})
# GenAI instrumentations of the openai SDK whose span for a model call ragotel enriches (module docstring):
# opentelemetry-util-genai's handler (openai-v2's chat spans), openai-v2's own tracer (its embeddings spans),
# OpenLLMetry (v1: openai>=1, v0: older SDKs).
_GENAI_SCOPES: Final = frozenset({
    _UTIL_GENAI_SCOPE, "opentelemetry.instrumentation.openai_v2",
    "opentelemetry.instrumentation.openai.v1", "opentelemetry.instrumentation.openai.v0",
})


def _util_genai_emits_details() -> bool:
    switch = os.environ.get("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", "").strip().lower()
    if switch:
        return switch == "true"
    mode = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return mode.strip().upper() in _UTIL_GENAI_EVENTS


_SERVICE_OPERATIONS: Final = {StepKind.RETRIEVAL: OperationName.RETRIEVAL,
                                StepKind.EMBEDDING: OperationName.EMBEDDINGS}


def _service_step(url: str) -> tuple[proto.Endpoint, str] | None:
    """The step a request to ``url`` is, by the longest matching prefix in ``RAGOTEL_SERVICE_STEPS``."""
    best: tuple[str, str, str] | None = None
    for prefix, kind, name in runtime.current.service_steps:
        if url.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, kind, name)
    if best is None:
        return None
    kind = StepKind(best[1])
    operation = _SERVICE_OPERATIONS.get(kind)
    return proto.Endpoint(operation, kind, operation.value if operation is not None else kind.value), best[2]


def _http_span_to_adopt() -> Span | None:
    """The HTTP CLIENT span another instrumentation opened for this very request, if one wraps ragotel's
    (opentelemetry-instrumentation-requests patched ``Session.send`` after ragotel did)."""
    span = trace.get_current_span()
    scope = getattr(span, "instrumentation_scope", None)
    if (span.is_recording() and getattr(span, "kind", None) is SpanKind.CLIENT
            and getattr(scope, "name", None) in _HTTP_SCOPES):
        return span
    return None


def _genai_span_to_adopt(operation: OperationName | None) -> Span | None:
    """The span an openai SDK instrumentation opened for this very call (``_GENAI_SCOPES``): current, and
    of the same operation (a util-genai agent or workflow span around the call is no model call)."""
    span = trace.get_current_span()
    scope = getattr(span, "instrumentation_scope", None)
    if (operation is None or not span.is_recording() or getattr(scope, "name", None) not in _GENAI_SCOPES
            or getattr(span, "kind", None) is not SpanKind.CLIENT):
        return None
    attributes = getattr(span, "attributes", None) or {}
    return span if attributes.get(sc.GEN_AI_OPERATION_NAME) == operation.value else None


@dataclass(frozen=True, slots=True)
class CallSettings:
    """How an instrumented client records its calls: the keyword arguments of ``instrument_httpx`` /
    ``instrument_requests`` and of their instrumentors' ``instrument()``."""

    provider: str | None = None
    """``gen_ai.provider.name``; by default ``openai`` for api.openai.com, else ``vllm``."""
    include_usage: bool = True
    """Ask streamed requests for usage when the caller did not (hidden from it)."""
    capture_content: bool | None = None
    """Record prompts and completions (default: the process content policy)."""
    tracer_provider: Any = None
    meter_provider: Any = None


def call_settings(**kwargs: Any) -> CallSettings:
    """The settings among ``kwargs`` (others, such as ``skip_dep_check``, belong to ``BaseInstrumentor``)."""
    return CallSettings(**{name: kwargs[name] for name in CallSettings.__dataclass_fields__ if name in kwargs})


class HttpClientInstrumentor(Instrumentor):
    """An instrumentor of an HTTP client: compares second instrumentations by their resolved settings."""

    @staticmethod
    def settings_of(kwargs: dict[str, Any]) -> dict[str, Any]:
        return asdict(call_settings(**kwargs))


class HttpCall(Operation):
    """One call to an OpenAI-compatible API, from request to the end of its response body, whatever client
    made it. An adapter reads its client's request (path, host, port, body) for ``begin``, sends the
    body and headers it is given back, then hands over the response head (``on_head``) and the body,
    whole (``on_body``) or piece by piece (``on_bytes``, ``end_of_body``); ``stop``,
    ``cancel`` or ``fail`` end it, through ``ragotel._genai.operation.Operation``'s one ending."""

    def __init__(self, settings: CallSettings, endpoint: proto.Endpoint) -> None:
        parent = enclosing()
        super().__init__(endpoint.kind, trace.INVALID_SPAN, otel_context.get_current(),
                         _instruments.instruments_for(settings.meter_provider), parent,
                         parent.conversation_id if parent is not None else None)
        self.parent = parent
        self.settings = settings
        self.endpoint = endpoint
        self.capture = settings.capture_content
        self.first_chunk_at: float | None = None
        self.last_chunk_at: float | None = None
        self.facts = proto.ResponseFacts()
        self.sse: proto.SseReader | None = None
        self.body = bytearray()
        self.body_too_large = False
        self.error: str | None = None
        self.info = proto.RequestInfo()
        self.metric_attributes: MetricAttributes = {}
        self.inputs: list[messages.Message] | None = None
        """Input messages, kept for the details event (content on events only)."""
        self.outputs: list[messages.Message] | None = None
        self.body_to_send: bytes | None = None
        """A new request body (usage asked for on the caller's behalf), or ``None``: send the caller's."""
        self.service: str | None = None
        """The step name of a service step (``RAGOTEL_SERVICE_STEPS``); ``None`` for a GenAI API call."""
        self.raised: BaseException | None = None
        """What the request or its body raised, if anything (the exception event names it)."""


    @classmethod
    def begin(cls, settings: CallSettings, *, url: object, path: str, host: str, port: int,
              body: bytes) -> HttpCall | None:
        """Start the span for a request to a GenAI endpoint or to a service step (``RAGOTEL_SERVICE_STEPS``);
        ``None`` for anything else. Never raises."""
        if runtime.current.disabled:
            return None
        try:
            if not is_instrumentation_enabled():
                return None
            found = proto.match_endpoint(path)
            # The whole URL is spelled out only when a service step might match it.
            service = None if found is not None or not runtime.current.service_steps else _service_step(str(url))
            if service is not None:
                found = service[0]
            elif found is None:
                return None
            call = cls(settings, found)
            call.service = service[1] if service is not None else None
            call._start_span(host, port, body)
            return call
        except Exception as exc:
            report_internal_error("starting an HTTP GenAI span", exc)
            return None

    def _start_span(self, host: str, port: int, body: bytes) -> None:
        endpoint = self.endpoint
        attrs: dict[str, AttributeValue] = {sc.RAG_STEP_KIND: self.kind.value, sc.SERVER_ADDRESS: host,
                                            sc.SERVER_PORT: port}
        if self.service is None:
            self.info = info = proto.read_request(body, add_usage=self.settings.include_usage)
            if info.usage_added and info.body is not None:
                self.body_to_send = proto.encode(info.body)
            attrs[sc.GEN_AI_PROVIDER_NAME] = self.settings.provider or (
                "openai" if host.endswith("openai.com") else "vllm")
        else:  # the application's own API: its body is not an OpenAI request, and names no model
            info = self.info
            if self.kind is StepKind.RETRIEVAL:
                attrs[sc.GEN_AI_DATA_SOURCE_ID] = self.service
        if endpoint.operation is not None:
            attrs[sc.GEN_AI_OPERATION_NAME] = endpoint.operation.value
        attrs.update(info.attributes)
        if self.parent is not None and self.parent.take_over(self.kind):
            self.counting = Counting.STEP  # the enclosing step of this kind times it; this call records the rest
        else:
            # Outside a step of its kind the call is that step: its one duration record says so.
            attrs[sc.RAG_STEP_NAME] = self.service or endpoint.verb
        # The model comes from the request body: capped, like every value a client can choose.
        self.metric_attributes = limiter.bound({k: v for k, v in attrs.items() if k in sc.METRIC_ATTRIBUTES})
        if self.conversation_id is not None:
            attrs[sc.GEN_AI_CONVERSATION_ID] = self.conversation_id
        if endpoint.inference:
            attrs.update(self.pipeline_prompt())

        target = self.service or info.model
        name = f"{endpoint.verb} {target}" if target else endpoint.verb
        span_attrs = ({**attrs, **openinference_attributes(self.kind, info.model)} if runtime.current.openinference
                      else attrs)
        theirs = _genai_span_to_adopt(endpoint.operation) if self.service is None else None
        if theirs is not None:
            self.span, self.owns_span, self.counting = theirs, False, Counting.OWNER
            theirs.set_attributes(span_attrs)
        elif not info.stream and (theirs := _http_span_to_adopt()) is not None:
            # Not for a stream: an HTTP client span ends when the response head arrives, before the stream's
            # outcome and usage are known. A streamed call gets its own GenAI span under that one.
            self.span, self.owns_span = theirs, False
            theirs.update_name(name)
            theirs.set_attributes(span_attrs)
        else:
            tracer = _instruments.tracer_for(self.settings.tracer_provider)
            self.span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
        if info.body is not None and self.kind is StepKind.GENERATION:
            self._capture_inputs(info.body)
        self.context = trace.set_span_in_context(self.span)

    def inject(self, headers: Any) -> None:
        """The call's ``traceparent`` (and baggage) into the request's headers: vLLM's span joins under it."""
        propagate.inject(headers, context=self.context)

    @contextmanager
    def sending(self) -> Iterator[None]:
        """Around the client's own send: the call's span current, other HTTP instrumentations standing aside
        (this span is the request's one CLIENT span), and a failure recorded before it reaches the caller."""
        token = otel_context.attach(self.context)
        try:
            with suppress_http_instrumentation():
                yield
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            otel_context.detach(token)

    # -- response ----------------------------------------------------------------------------------
    def on_head(self, status: int, content_type: str) -> None:
        """The response's status line and content type, before its body."""
        self.span.set_attribute(sc.HTTP_RESPONSE_STATUS_CODE, status)
        if status >= 400:
            self.error = http_status_class(status)
        if "text/event-stream" in content_type and self.service is None:
            self.sse = proto.SseReader(self.facts, keep_text=self._keeps_text(), hide_usage_chunk=self.info.usage_added)

    def on_body(self, raw: bytes) -> None:
        """The whole body, read by the client before the caller got the response; ends the call."""
        if self.sse is not None:
            self.sse.feed(raw)
            self.end_of_body()
        else:
            self._read_body(raw)
        self.stop()

    def _on_spans(self) -> bool:
        return runtime.current.content_spans if self.capture is None else self.capture

    def _keeps_text(self) -> bool:
        return self._on_spans() or runtime.current.content_events

    def _capture_inputs(self, body: dict[str, Any]) -> None:
        """The prompt in the conventions' parts schema, on the span and/or kept for the details event."""
        if not self._keeps_text():
            return
        found = messages.request_messages(body, content.clean)
        if found is None:
            return
        if self._on_spans():
            self.span.set_attribute(sc.GEN_AI_INPUT_MESSAGES, messages.dumps(found))
            if runtime.current.openinference:
                self.span.set_attributes(openinference_text(sc.OI_INPUT_VALUE, found, "user"))
        if runtime.current.content_events:
            self.inputs = found

    def _read_body(self, raw: bytes) -> None:
        if self.error is None and raw and self.service is None:
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
            ins.time_to_first_chunk.record(now - self.started, attrs, context=self.context)
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

    # -- ending (the one path is Operation._end) ------------------------------------------------------
    def stop(self) -> None:
        """The body ended: a failed answer (an HTTP error, a malformed body, an error event) fails the call."""
        error = self.error or self.facts.error
        if error is not None:
            self._end(error, self.raised, cancelled=False)
        else:
            super().stop()

    def cancel(self) -> None:
        """The client closed the response before its end. A stream whose end marker (``[DONE]``) arrived is
        complete: the openai SDK closes the response as soon as it reads it, without reading on to the end
        of the body."""
        if (self.sse is not None and self.sse.done) or self.error is not None or self.facts.error is not None:
            self.stop()
        else:
            super().cancel()

    def fail(self, exc: BaseException | None = None, etype: str | None = None) -> None:
        """The request or its body raised ``exc``: the caller gets it unchanged; the span says what kind, by
        the rule a step around the call follows too (``ragotel._core.errors.error_type``)."""
        if exc is not None and is_cancellation(exc):
            self.cancel()
            return
        self.raised = exc
        super().fail(exc, etype)

    def _answer(self) -> str | None:
        error = self.error
        return error if error is not None and error.startswith("http.") else None

    def _emits_exception_event(self) -> bool:
        # Also beside an openai SDK instrumentation: none of those emits the latest conventions' event.
        return self.endpoint.inference

    def _conclude(self) -> MetricAttributes:
        if not self.owns_span and not self.span.is_recording():
            self.span = trace.INVALID_SPAN  # the adopted span already ended: what follows goes to metrics only
        facts = self.facts
        attrs = self.metric_attributes
        out: dict[str, AttributeValue] = {}
        self.response_attributes(facts, out)
        if self.first_chunk_at is not None:
            out[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self.first_chunk_at - self.started
        ok = attrs
        if self.kind is StepKind.RERANK:
            if facts.usage.known:  # rerank answers count the tokens read, unpriced
                self.record_usage(facts.usage, out, None)
            if facts.scores is not None:
                quality = self.record_scores(len(facts.scores), hits.scores(facts.scores), out, attrs, None)
                ok = {**attrs, sc.RAG_RETRIEVAL_QUALITY: quality}
        elif facts.usage.known:
            # The owner of an adopted GenAI span counts the tokens it saw: all but a usage chunk hidden from it.
            self.record_usage(facts.usage, out, lambda token_type: {**attrs, sc.GEN_AI_TOKEN_TYPE: token_type},
                              count_tokens=self.counting is not Counting.OWNER or self.info.usage_added)
        self.outputs = self.record_outputs(facts, out, on_span=self._on_spans()) if facts.choices else None
        self.span.set_attributes(out)
        return ok

    def _timed(self, duration: float, ok: MetricAttributes, outcome: MetricAttributes, etype: str | None) -> None:
        if self.kind is StepKind.RERANK or self.service is not None:
            # The conventions have no rerank operation, and a service is the application's own: the call is
            # a step, timed as steps are (inside a step of its kind, that step's duration covers it).
            if self.counting is Counting.SELF:
                self.ins.step_duration.record(duration, outcome if sc.RAG_OUTCOME in outcome else {
                    **ok, sc.RAG_OUTCOME: sc.Outcome.OK.value}, context=self.context)
        elif self.counting is not Counting.OWNER:
            timed = self.metric_attributes
            self.ins.operation_duration.record(duration, {**timed, sc.ERROR_TYPE: outcome[sc.ERROR_TYPE]}
                                               if etype is not None else timed, context=self.context)
        if runtime.current.content_events and self.kind is StepKind.GENERATION and not self._owner_emits_details():
            self.emit_details({}, self.inputs, self.outputs)

    def _owner_emits_details(self) -> bool:
        """One details event per call: the owner of an adopted span may emit its own."""
        if self.counting is not Counting.OWNER:
            return False
        scope = getattr(self.span, "instrumentation_scope", None)
        return getattr(scope, "name", None) == _UTIL_GENAI_SCOPE and _util_genai_emits_details()


def propagate_context(headers: Any) -> None:
    """A request that is no GenAI call gets no span from ragotel, but carries the current trace context, so
    the service it calls joins the trace. Never raises."""
    try:
        if not runtime.current.disabled and "traceparent" not in headers and is_instrumentation_enabled():
            propagate.inject(headers)
    except Exception as exc:
        report_internal_error("propagating trace context", exc)


# -- response bodies, as a client adapter passes them on ---------------------------------------------
def observed(call: HttpCall, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The body's pieces as the caller should get them, each shown to ``call`` first; the call ends with the
    body, or fails with it. A consumer that stops early closes this generator: its stream's ``close()``
    ends the call (``HttpCall.cancel``)."""
    try:
        for data in chunks:
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
    call.stop()


async def observed_async(call: HttpCall, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """``observed`` for an asynchronous body."""
    try:
        async for data in chunks:
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
    call.stop()
