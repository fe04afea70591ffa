"""RAG steps: one span and the step metrics per retrieval, embedding, rerank, prompt, generation, pipeline.

Each kind is one callable that works as a decorator (bare or with arguments) and as a sync or async
context manager::

    @ragotel.retrieval(data_source="faiss")
    def search(query: str, k: int = 4) -> list[Hit]: ...

    async with ragotel.prompt(template="rag-v1") as step:
        messages = build(question, hits)
        step.record(context_chars=len(context), chunks=len(hits))

Decorators handle plain functions, coroutines, generators and async generators. The span of a
generator covers its whole iteration and is the current span only while the generator body runs,
so the caller's context is never changed between two ``next()`` calls. A span ends exactly once:
on return, on an exception (recorded, status ERROR, re-raised unchanged), on cancellation, or when
a generator is exhausted, closed early or garbage-collected unfinished.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from contextvars import ContextVar, Token
from time import perf_counter
from types import TracebackType
from typing import Any, Final, NamedTuple, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ragotel import _instruments, extract
from ragotel import semconv as sc
from ragotel._safe import report_internal_error
from ragotel.content import policy as content_policy
from ragotel.semconv import Operation, Outcome, StepKind

F = TypeVar("F", bound=Callable[..., Any])
Extractor = Callable[[Any, "Step"], None]

_OPERATION: Final = {
    StepKind.RETRIEVAL: Operation.RETRIEVAL,
    StepKind.EMBEDDING: Operation.EMBEDDINGS,
    StepKind.GENERATION: Operation.CHAT,
    StepKind.PIPELINE: Operation.INVOKE_WORKFLOW,
}
# The retrieved documents kept on a span: enough to debug ranking, bounded in size.
MAX_DOCUMENTS_ON_SPAN: Final = 20

_current: ContextVar[Step | None] = ContextVar("ragotel_step", default=None)


class _Runtime:
    """Process-wide switch read on every call; :func:`ragotel.configure` sets it."""

    __slots__ = ("disabled",)

    def __init__(self) -> None:
        self.disabled = False


runtime = _Runtime()


def current_step() -> Step | None:
    """The innermost ragotel step running in this context, if any."""
    return _current.get()


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits (what Tempo and the logs show), or ``None`` outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def record_error(stage: str, error: BaseException | str, *, message: str | None = None) -> None:
    """Count an error that happened outside any step — a rejected request, a dependency not ready —
    under ``stage`` in ``rag.step.errors``, and note it on the current span. Never raises.

    ``stage`` is a step kind or ``"request"`` (input validation); ``error`` an exception or an
    ``error.type`` value. The span's status is left alone: a 4xx is the caller's error, not the server's.

    >>> record_error("request", "validation", message="question must not be empty")
    """
    if runtime.disabled:
        return
    try:
        etype = error if isinstance(error, str) else error_type(error)
        attrs = {sc.RAG_STEP_KIND: stage, sc.ERROR_TYPE: etype, sc.RAG_OUTCOME: Outcome.ERROR.value}
        _instruments.instruments().step_errors.add(1, attrs)
        span = trace.get_current_span()
        span.set_attribute(sc.ERROR_TYPE, etype)
        event: dict[str, AttributeValue] = {sc.RAG_STEP_KIND: stage, sc.ERROR_TYPE: etype}
        if message:
            event["message"] = message
        span.add_event("rag.error", event)
    except Exception as exc:
        report_internal_error("record_error", exc)


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: the class name, qualified unless it is a builtin."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class StepSpec:
    """What is known about a step before it runs: kind, name, static attributes.

    Returned by ``ragotel.retrieval(...)`` and the other kinds; apply it to a function or enter it.
    """

    __slots__ = (
        "arg_probes",
        "capture_content",
        "explicit_name",
        "extractor",
        "kind",
        "metric_attributes",
        "name",
        "operation",
        "options",
        "span_attributes",
        "span_kind",
        "span_name",
    )

    def __init__(
        self,
        kind: StepKind,
        name: str | None = None,
        *,
        target: str | None = None,
        span_attributes: Mapping[str, AttributeValue] | None = None,
        operation: Operation | None = None,
        extractor: Extractor | None = None,
        capture_content: bool | None = None,
        span_kind: SpanKind = SpanKind.INTERNAL,
    ) -> None:
        # Kept to derive a per-function copy when used as a decorator.
        self.options: dict[str, Any] = {
            "target": target, "span_attributes": span_attributes, "operation": operation,
            "extractor": extractor, "capture_content": capture_content, "span_kind": span_kind,
        }
        self.kind = kind
        self.explicit_name = name is not None
        self.name = name or target or kind.value
        self.operation = operation if operation is not None else _OPERATION.get(kind)
        verb = self.operation.value if self.operation is not None else kind.value
        suffix = target or name
        self.span_name = f"{verb} {suffix}" if suffix else verb
        self.span_kind = span_kind
        self.extractor = extractor
        self.capture_content = capture_content
        self.arg_probes: tuple[_Probe, ...] = ()
        attrs: dict[str, AttributeValue] = {sc.RAG_STEP_KIND: kind.value, sc.RAG_STEP_NAME: self.name}
        if self.operation is not None:
            attrs[sc.GEN_AI_OPERATION_NAME] = self.operation.value
        if kind is StepKind.PIPELINE:
            attrs[sc.GEN_AI_WORKFLOW_NAME] = self.name
        attrs.update({k: v for k, v in (span_attributes or {}).items() if v is not None})
        self.span_attributes = attrs
        self.metric_attributes = _metric_view(attrs, Outcome.OK)

    # -- decorator ---------------------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        # "Class.method" names a step well; "outer.<locals>.inner" paths only add noise.
        qualname = getattr(fn, "__qualname__", None)
        name = self.name if self.explicit_name or qualname is None else qualname.rsplit("<locals>.", 1)[-1]
        spec = StepSpec(self.kind, name, **self.options)
        spec.arg_probes = _probes_for(self.kind, fn)
        if inspect.isasyncgenfunction(fn):
            return cast(F, _wrap_async_generator(spec, fn))
        if inspect.iscoroutinefunction(fn):
            return cast(F, _wrap_coroutine(spec, fn))
        if inspect.isgeneratorfunction(fn):
            return cast(F, _wrap_generator(spec, fn))
        return cast(F, _wrap_function(spec, fn))

    # -- context manager ---------------------------------------------------------------------------
    def __enter__(self) -> Step:
        if runtime.disabled:
            return NOOP_STEP
        step = Step.start(self)
        step.activate()
        return step

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        step = _current.get()
        if step is None or step.spec is not self:
            return
        step.deactivate()
        step.finish(exc)

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _metric_view(attrs: Mapping[str, AttributeValue], outcome: Outcome) -> dict[str, AttributeValue]:
    view = {k: v for k, v in attrs.items() if k in sc.METRIC_ATTRIBUTES}
    view[sc.RAG_OUTCOME] = outcome.value
    return view


# Arguments a decorated function's signature may reveal, by kind: (parameter names, what they mean).
_ARGUMENTS: Final[Mapping[StepKind, tuple[tuple[tuple[str, ...], str], ...]]] = {
    StepKind.RETRIEVAL: ((("k", "top_k", "limit"), "top_k"), (("query", "question", "q"), "query")),
    StepKind.EMBEDDING: ((("texts", "inputs", "sentences", "documents"), "inputs"),),
    StepKind.RERANK: ((("documents", "docs", "hits", "candidates"), "candidates"), (("top_n", "k"), "top_n")),
}


def _probes_for(kind: StepKind, fn: Callable[..., Any]) -> tuple[_Probe, ...]:
    wanted = _ARGUMENTS.get(kind)
    if not wanted:
        return ()
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return ()
    probes = []
    for names, fact in wanted:
        for index, param in enumerate(params):
            if param.name in names:
                positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
                default = None if param.default is inspect.Parameter.empty else param.default
                probes.append(_Probe(param.name, index if positional else None, fact, default))
                break
    return tuple(probes)


class _Probe(NamedTuple):
    """Where to find one fact among a decorated function's arguments."""

    parameter: str
    position: int | None
    fact: str
    default: Any


class Step:
    """A running step. Record what the code knows; everything here is safe to call and never raises.

    ``step.span`` is the OpenTelemetry span, for anything :meth:`record` does not cover.
    """

    __slots__ = (
        "_metric_attributes",
        "_otel_token",
        "_start",
        "_step_token",
        "client_call_recorded",
        "done",
        "span",
        "spec",
    )

    def __init__(self, spec: StepSpec, span: Span) -> None:
        self.spec = spec
        self.span = span
        self.done = False
        # Set by the HTTP client instrumentation when it recorded the model call inside this step,
        # so the step does not count the same operation and tokens a second time.
        self.client_call_recorded = False
        self._metric_attributes = spec.metric_attributes
        self._otel_token: Token[Any] | None = None
        self._step_token: Token[Step | None] | None = None
        self._start = 0.0

    @classmethod
    def start(cls, spec: StepSpec) -> Step:
        try:
            span = _instruments.tracer().start_span(
                spec.span_name, kind=spec.span_kind, attributes=spec.span_attributes
            )
        except Exception as exc:
            report_internal_error("starting a span", exc)
            span = trace.INVALID_SPAN
        step = cls(spec, span)
        step._start = perf_counter()
        return step

    # -- context switching (per resume for generators) ----------------------------------------------
    def activate(self) -> None:
        self._otel_token = otel_context.attach(trace.set_span_in_context(self.span))
        self._step_token = _current.set(self)

    def deactivate(self) -> None:
        try:
            if self._step_token is not None:
                _current.reset(self._step_token)
            if self._otel_token is not None:
                otel_context.detach(self._otel_token)
        except Exception as exc:
            report_internal_error("restoring the context", exc)
        self._step_token = self._otel_token = None

    # -- recording ---------------------------------------------------------------------------------
    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set a span attribute (never a metric attribute)."""
        try:
            self.span.set_attribute(key, value)
        except Exception as exc:
            report_internal_error("set_attribute", exc)

    def record(
        self,
        *,
        documents: Sequence[Any] | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        results_kept: int | None = None,
        index_size: int | None = None,
        data_source: str | None = None,
        chunks: int | None = None,
        context_chars: int | None = None,
        context_tokens: int | None = None,
        messages: Sequence[Any] | None = None,
        model: str | None = None,
        response_model: str | None = None,
        response_id: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reasons: Sequence[str] | None = None,
        response: str | None = None,
        response_chars: int | None = None,
        reasoning_chars: int | None = None,
        dimension: int | None = None,
        inputs: int | None = None,
        top_n: int | None = None,
        query: str | None = None,
    ) -> None:
        """Record facts about this step on its span and in the step metrics.

        Counts and scores are always recorded. ``query``, ``response``, ``messages`` and document
        texts are content: recorded on the span only when content capture is on.

        Args:
            documents: hits returned (retrieval, rerank): dicts, objects or ``(doc, score)`` pairs.
            top_k: documents asked for. min_score: score threshold applied.
            results_kept: documents left after filtering. chunks: chunks placed in the prompt.
            context_chars / context_tokens: size of the context in the prompt.
            model / response_model / response_id: generation or embedding model facts.
            input_tokens / output_tokens: token usage. finish_reasons: why generation stopped.
            response / response_chars / reasoning_chars: the answer (content) or its sizes.
            dimension / inputs: embedding dimension and texts embedded. top_n: rerank keep count.
        """
        try:
            self._record(locals())
        except Exception as exc:
            report_internal_error("Step.record", exc)

    def _record(self, facts: dict[str, Any]) -> None:
        span = self.span
        capture = self.spec.capture_content
        set_attr = span.set_attribute
        simple = (
            ("top_k", sc.GEN_AI_RETRIEVAL_TOP_K),
            ("min_score", sc.RAG_RETRIEVAL_MIN_SCORE),
            ("results_kept", sc.RAG_RETRIEVAL_RESULTS_KEPT),
            ("index_size", sc.RAG_INDEX_SIZE),
            ("chunks", sc.RAG_PROMPT_CHUNKS),
            ("context_chars", sc.RAG_PROMPT_CONTEXT_CHARS),
            ("context_tokens", sc.RAG_PROMPT_CONTEXT_TOKENS),
            ("response_model", sc.GEN_AI_RESPONSE_MODEL),
            ("response_id", sc.GEN_AI_RESPONSE_ID),
            ("response_chars", sc.RAG_GENERATION_RESPONSE_CHARS),
            ("reasoning_chars", sc.RAG_GENERATION_REASONING_CHARS),
            ("dimension", sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT),
            ("inputs", sc.RAG_EMBEDDING_INPUTS),
            ("top_n", sc.RAG_RERANK_TOP_N),
        )
        for fact, key in simple:
            value = facts[fact]
            if value is not None:
                set_attr(key, value)
        if facts["model"] is not None or facts["data_source"] is not None:
            self._set_dimensions(model=facts["model"], data_source=facts["data_source"])
        if facts["finish_reasons"] is not None:
            set_attr(sc.GEN_AI_RESPONSE_FINISH_REASONS, list(facts["finish_reasons"]))
        if facts["context_chars"] is not None:
            _instruments.instruments().prompt_context_size.record(
                facts["context_chars"], self._metric_attributes
            )
        if facts["documents"] is not None:
            self._record_documents(facts["documents"], capture)
        if facts["messages"] is not None:
            set_attr(sc.RAG_PROMPT_MESSAGES, len(facts["messages"]))
            text = content_policy.text(_to_json(facts["messages"]), enabled=capture)
            if text is not None:
                set_attr(sc.GEN_AI_INPUT_MESSAGES, text)
        if facts["response"] is not None:
            if facts["response_chars"] is None:
                set_attr(sc.RAG_GENERATION_RESPONSE_CHARS, len(facts["response"]))
            text = content_policy.text(facts["response"], enabled=capture)
            if text is not None:
                set_attr(sc.GEN_AI_OUTPUT_MESSAGES, text)
        if facts["query"] is not None:
            text = content_policy.text(facts["query"], enabled=capture)
            if text is not None:
                set_attr(sc.GEN_AI_RETRIEVAL_QUERY_TEXT, text)
        self._record_usage(facts["input_tokens"], facts["output_tokens"])

    def _set_dimensions(self, *, model: str | None, data_source: str | None) -> None:
        """Model and data source also label the step's metrics."""
        attrs = dict(self._metric_attributes)
        if model is not None:
            self.span.set_attribute(sc.GEN_AI_REQUEST_MODEL, model)
            attrs[sc.GEN_AI_REQUEST_MODEL] = model
        if data_source is not None:
            self.span.set_attribute(sc.GEN_AI_DATA_SOURCE_ID, data_source)
            attrs[sc.GEN_AI_DATA_SOURCE_ID] = data_source
        self._metric_attributes = attrs

    def _record_documents(self, items: Sequence[Any], capture: bool | None) -> None:
        docs = [extract.to_document(item) for item in items]
        span = self.span
        ins = _instruments.instruments()
        attrs = self._metric_attributes
        span.set_attribute(sc.RAG_RETRIEVAL_RESULTS_RETURNED, len(docs))
        ins.retrieval_documents.record(len(docs), attrs)
        scores = [d.score for d in docs if d.score is not None]
        if scores:
            span.set_attribute(sc.RAG_RETRIEVAL_SCORE_MIN, min(scores))
            span.set_attribute(sc.RAG_RETRIEVAL_SCORE_MAX, max(scores))
            span.set_attribute(sc.RAG_RETRIEVAL_SCORE_AVG, sum(scores) / len(scores))
            for score in scores:
                ins.retrieval_score.record(score, attrs)
        listed = []
        for doc in docs[:MAX_DOCUMENTS_ON_SPAN]:
            entry: dict[str, Any] = {}
            if doc.id is not None:
                entry["id"] = doc.id
            if doc.score is not None:
                entry["score"] = round(doc.score, 6)
            text = content_policy.text(doc.text, enabled=capture)
            if text is not None:
                entry["content"] = text
            listed.append(entry)
        if any(listed):
            span.set_attribute(sc.GEN_AI_RETRIEVAL_DOCUMENTS, json.dumps(listed, ensure_ascii=False))

    def _record_usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        if input_tokens is None and output_tokens is None:
            return
        if input_tokens is not None:
            self.span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
        if output_tokens is not None:
            self.span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
        if self.client_call_recorded:
            return
        usage = _instruments.instruments().token_usage
        for tokens, token_type in ((input_tokens, "input"), (output_tokens, "output")):
            if tokens is not None:
                usage.record(tokens, {**self._metric_attributes, sc.GEN_AI_TOKEN_TYPE: token_type})
        _record_cost(self._metric_attributes, input_tokens, output_tokens)

    # -- reading facts from calls ------------------------------------------------------------------
    def read_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        facts: dict[str, Any] = {}
        for name, index, fact, default in self.spec.arg_probes:
            if name in kwargs:
                value = kwargs[name]
            elif index is not None and index < len(args):
                value = args[index]
            elif default is not None:
                value = default
            else:
                continue
            facts[fact] = value
        if not facts:
            return
        top_k = facts.get("top_k")
        if isinstance(top_k, int) and not isinstance(top_k, bool):
            self.span.set_attribute(sc.GEN_AI_RETRIEVAL_TOP_K, top_k)
        top_n = facts.get("top_n")
        if isinstance(top_n, int) and not isinstance(top_n, bool):
            self.span.set_attribute(sc.RAG_RERANK_TOP_N, top_n)
        query = facts.get("query")
        if isinstance(query, str):
            text = content_policy.text(query, enabled=self.spec.capture_content)
            if text is not None:
                self.span.set_attribute(sc.GEN_AI_RETRIEVAL_QUERY_TEXT, text)
        for fact, key in (("inputs", sc.RAG_EMBEDDING_INPUTS), ("candidates", sc.RAG_RERANK_INPUT_DOCUMENTS)):
            value = facts.get(fact)
            if isinstance(value, Sequence) and not isinstance(value, str):
                self.span.set_attribute(key, len(value))
            elif isinstance(value, str):
                self.span.set_attribute(key, 1)

    def read_result(self, result: Any) -> None:
        spec = self.spec
        if spec.extractor is not None:
            spec.extractor(result, self)
            return
        kind = spec.kind
        if kind in (StepKind.RETRIEVAL, StepKind.RERANK):
            docs = extract.documents(result)
            if docs is not None:
                self.record(documents=docs)
        elif kind is StepKind.EMBEDDING:
            shape = extract.embedding_shape(result)
            if shape is not None:
                self.record(inputs=shape[0], dimension=shape[1])
        elif kind is StepKind.PROMPT:
            if isinstance(result, Sequence) and not isinstance(result, str):
                self.record(messages=result)
        elif kind is StepKind.GENERATION:
            done = extract.completion(result)
            if done is not None:
                self.record(
                    response=done.text,
                    response_model=done.model,
                    response_id=done.response_id,
                    input_tokens=done.input_tokens,
                    output_tokens=done.output_tokens,
                    finish_reasons=done.finish_reasons or None,
                    reasoning_chars=done.reasoning_chars,
                )

    # -- ending ------------------------------------------------------------------------------------
    def finish(self, exc: BaseException | None = None) -> None:
        """End the span and record the step metrics; later calls do nothing."""
        if self.done:
            return
        self.done = True
        duration = perf_counter() - self._start
        span = self.span
        try:
            attrs = self._metric_attributes
            ins = _instruments.instruments()
            if exc is not None and not isinstance(exc, _CANCELLATIONS):
                etype = error_type(exc)
                span.set_attribute(sc.ERROR_TYPE, etype)
                span.record_exception(exc, escaped=True)
                span.set_status(Status(StatusCode.ERROR, f"{etype}: {exc}"))
                attrs = {**attrs, sc.RAG_OUTCOME: Outcome.ERROR.value, sc.ERROR_TYPE: etype}
                ins.step_errors.add(1, attrs)
            elif exc is not None:
                attrs = {**attrs, sc.RAG_OUTCOME: Outcome.CANCELLED.value}
                span.set_attribute(sc.RAG_OUTCOME, Outcome.CANCELLED.value)
            ins.step_duration.record(duration, attrs)
            kind = self.spec.kind
            if kind is StepKind.PIPELINE:
                ins.workflow_duration.record(duration, attrs)
            elif self.spec.operation is not None and not self.client_call_recorded:
                ins.operation_duration.record(duration, attrs)
        except Exception as internal:
            report_internal_error("finishing a step", internal)
        finally:
            try:
                span.end()
            except Exception as internal:
                report_internal_error("ending a span", internal)


class _NoopStep(Step):
    """Yielded when telemetry is disabled: accepts every call, records nothing."""

    __slots__ = ()

    def record(self, **facts: Any) -> None:
        pass

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        pass


NOOP_STEP: Final[Step] = _NoopStep(StepSpec(StepKind.PIPELINE, "noop"), trace.INVALID_SPAN)
NOOP_STEP.done = True


def _record_cost(
    attrs: Mapping[str, AttributeValue], input_tokens: int | None, output_tokens: int | None
) -> None:
    from ragotel import cost  # only generation steps with usage get here

    cost.record(attrs, input_tokens or 0, output_tokens or 0)


def _to_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


# -- wrappers for the four function shapes --------------------------------------------------------
def _begin(spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Step:
    step = Step.start(spec)
    if spec.arg_probes:
        try:
            step.read_arguments(args, kwargs)
        except Exception as exc:
            report_internal_error("reading arguments", exc)
    return step


def _succeed(step: Step, result: Any) -> None:
    try:
        step.read_result(result)
    except Exception as exc:
        report_internal_error("reading a result", exc)
    step.finish()


def _wrap_function(spec: StepSpec, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if runtime.disabled:
            return fn(*args, **kwargs)
        step = _begin(spec, args, kwargs)
        step.activate()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            step.deactivate()
            step.finish(exc)
            raise
        step.deactivate()
        _succeed(step, result)
        return result

    return wrapper


def _wrap_coroutine(spec: StepSpec, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if runtime.disabled:
            return await fn(*args, **kwargs)
        step = _begin(spec, args, kwargs)
        step.activate()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            step.deactivate()
            step.finish(exc)
            raise
        step.deactivate()
        _succeed(step, result)
        return result

    return wrapper


def _wrap_generator(spec: StepSpec, fn: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        if runtime.disabled:
            return (yield from fn(*args, **kwargs))
        step = _begin(spec, args, kwargs)
        count = 0
        try:
            step.activate()
            try:
                inner = fn(*args, **kwargs)
                value = next(inner)
            finally:
                step.deactivate()
            while True:
                count += 1
                try:
                    sent = yield value
                except GeneratorExit as closing:
                    step.activate()
                    try:
                        inner.close()
                    finally:
                        step.deactivate()
                    step.finish(closing)
                    raise
                except BaseException as thrown:
                    step.activate()
                    try:
                        value = inner.throw(thrown)
                    finally:
                        step.deactivate()
                    continue
                step.activate()
                try:
                    value = inner.send(sent)
                finally:
                    step.deactivate()
        except StopIteration as stop:
            if spec.kind in _LISTING:
                step.set_attribute(sc.RAG_RETRIEVAL_RESULTS_RETURNED, count)
            step.finish()
            return stop.value
        except BaseException as exc:
            step.finish(exc)
            raise

    return wrapper


def _wrap_async_generator(spec: StepSpec, fn: Callable[..., AsyncGenerator[Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        if runtime.disabled:
            async for item in fn(*args, **kwargs):
                yield item
            return
        step = _begin(spec, args, kwargs)
        inner = fn(*args, **kwargs)
        count = 0
        try:
            step.activate()
            try:
                value = await inner.__anext__()
            finally:
                step.deactivate()
            while True:
                count += 1
                try:
                    sent = yield value
                except GeneratorExit as closing:
                    step.activate()
                    try:
                        await inner.aclose()
                    finally:
                        step.deactivate()
                    step.finish(closing)
                    raise
                except BaseException as thrown:
                    step.activate()
                    try:
                        value = await inner.athrow(thrown)
                    finally:
                        step.deactivate()
                    continue
                step.activate()
                try:
                    value = await inner.asend(sent)
                finally:
                    step.deactivate()
        except StopAsyncIteration:
            if spec.kind in _LISTING:
                step.set_attribute(sc.RAG_RETRIEVAL_RESULTS_RETURNED, count)
            step.finish()
        except BaseException as exc:
            step.finish(exc)
            raise

    return wrapper


_LISTING: Final = frozenset({StepKind.RETRIEVAL, StepKind.RERANK})
# The caller stopped the step: not a failure of the step itself.
_CANCELLATIONS: Final = (GeneratorExit, asyncio.CancelledError)


# -- the six public step kinds ---------------------------------------------------------------------
def _build(
    kind: StepKind,
    fn_or_name: Callable[..., Any] | str | None,
    *,
    target: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    span_attributes: Mapping[str, AttributeValue | None] | None = None,
    operation: Operation | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    fn = fn_or_name if callable(fn_or_name) else None
    name = fn_or_name if isinstance(fn_or_name, str) else None
    merged: dict[str, AttributeValue] = {k: v for k, v in (span_attributes or {}).items() if v is not None}
    merged.update(attributes or {})
    spec = StepSpec(
        kind,
        name,
        target=target,
        span_attributes=merged,
        operation=operation,
        extractor=extractor,
        capture_content=capture_content,
    )
    return spec(fn) if fn is not None else spec


@overload
def retrieval(fn: F, /) -> F: ...
@overload
def retrieval(
    name: str | None = None,
    /,
    *,
    data_source: str | None = None,
    top_k: int | None = None,
    min_score: float | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> StepSpec: ...
def retrieval(
    fn_or_name: Any = None,
    /,
    *,
    data_source: str | None = None,
    top_k: int | None = None,
    min_score: float | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    """A retrieval step: span ``retrieval {data_source}``, ``gen_ai.operation.name=retrieval``.

    Reads ``k``/``top_k`` from the decorated function's arguments and the hits from its return value.

    >>> @retrieval(data_source="faiss")
    ... def search(query: str, k: int = 4) -> list[dict[str, object]]: ...
    """
    return _build(
        StepKind.RETRIEVAL, fn_or_name, target=data_source, attributes=attributes, extractor=extractor,
        capture_content=capture_content,
        span_attributes={
            sc.GEN_AI_DATA_SOURCE_ID: data_source,
            sc.GEN_AI_RETRIEVAL_TOP_K: top_k,
            sc.RAG_RETRIEVAL_MIN_SCORE: min_score,
        },
    )


@overload
def embedding(fn: F, /) -> F: ...
@overload
def embedding(
    name: str | None = None,
    /,
    *,
    model: str | None = None,
    dimension: int | None = None,
    provider: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> StepSpec: ...
def embedding(
    fn_or_name: Any = None,
    /,
    *,
    model: str | None = None,
    dimension: int | None = None,
    provider: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    """An embedding step: span ``embeddings {model}``, ``gen_ai.operation.name=embeddings``.

    Reads the number of vectors and their dimension from the return value.
    """
    return _build(
        StepKind.EMBEDDING, fn_or_name, target=model, attributes=attributes, extractor=extractor,
        capture_content=capture_content,
        span_attributes={
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: dimension,
            sc.GEN_AI_PROVIDER_NAME: provider,
        },
    )


@overload
def rerank(fn: F, /) -> F: ...
@overload
def rerank(
    name: str | None = None,
    /,
    *,
    model: str | None = None,
    top_n: int | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> StepSpec: ...
def rerank(
    fn_or_name: Any = None,
    /,
    *,
    model: str | None = None,
    top_n: int | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    """A reranking step: span ``rerank {model}``, ``rag.step.kind=rerank`` (no GenAI operation)."""
    return _build(
        StepKind.RERANK, fn_or_name, target=model, attributes=attributes, extractor=extractor,
        capture_content=capture_content,
        span_attributes={sc.GEN_AI_REQUEST_MODEL: model, sc.RAG_RERANK_TOP_N: top_n},
    )


@overload
def prompt(fn: F, /) -> F: ...
@overload
def prompt(
    name: str | None = None,
    /,
    *,
    template: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> StepSpec: ...
def prompt(
    fn_or_name: Any = None,
    /,
    *,
    template: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    """A prompt-building step: span ``prompt {template}``, ``rag.step.kind=prompt``.

    Record ``chunks``, ``context_chars`` and ``context_tokens``; a returned message list is counted
    (and captured as ``gen_ai.input.messages`` when content capture is on).
    """
    return _build(
        StepKind.PROMPT, fn_or_name, target=template, attributes=attributes, extractor=extractor,
        capture_content=capture_content, span_attributes={sc.RAG_PROMPT_TEMPLATE: template},
    )


@overload
def generation(fn: F, /) -> F: ...
@overload
def generation(
    name: str | None = None,
    /,
    *,
    model: str | None = None,
    provider: str | None = None,
    operation: Operation = Operation.CHAT,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> StepSpec: ...
def generation(
    fn_or_name: Any = None,
    /,
    *,
    model: str | None = None,
    provider: str | None = None,
    operation: Operation = Operation.CHAT,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    """A generation step: span ``chat {model}``, ``gen_ai.operation.name=chat``.

    For model calls made some way other than an instrumented HTTP client. Reads a returned string or
    OpenAI-style completion (usage, model, id, finish reasons).
    """
    return _build(
        StepKind.GENERATION, fn_or_name, target=model, attributes=attributes, extractor=extractor,
        capture_content=capture_content, operation=operation,
        span_attributes={sc.GEN_AI_REQUEST_MODEL: model, sc.GEN_AI_PROVIDER_NAME: provider},
    )


@overload
def pipeline(fn: F, /) -> F: ...
@overload
def pipeline(
    name: str | None = None,
    /,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> StepSpec: ...
def pipeline(
    fn_or_name: Any = None,
    /,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    """A whole RAG pipeline: span ``invoke_workflow {name}``, recorded in ``gen_ai.workflow.duration``.

    >>> async def answer(question: str) -> str:
    ...     with pipeline("chat"):
    ...         ...
    """
    return _build(
        StepKind.PIPELINE, fn_or_name, attributes=attributes, extractor=extractor,
        capture_content=capture_content,
    )
