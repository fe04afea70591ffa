"""RAG steps: one span and the step metrics per retrieval, embedding, rerank, prompt, generation, pipeline.

Each kind is one callable that works as a decorator (bare or with arguments) and as a sync or async
context manager::

    @ragotel.retrieval(data_source="faiss")
    def search(query: str, k: int = 4) -> list[Hit]: ...

    async with ragotel.prompt(template="rag-v1") as step:
        messages = build(question, hits)
        step.record(context_chars=len(context), chunks=len(hits))

Decorators handle plain functions, coroutines, generators and async generators (:mod:`ragotel._steps.shapes`);
what a step records is described in :mod:`ragotel._steps.step`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import lru_cache
from types import TracebackType
from typing import Any, TypeVar, overload

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core.cardinality import limiter
from ragotel._core.errors import error_type, note_error
from ragotel._core.runtime import runtime
from ragotel._core.safe import report_internal_error
from ragotel._steps import shapes
from ragotel._steps.spec import Extractor, Spec, probes_for
from ragotel._steps.step import NOOP_STEP, Step, StepFacts, current_step
from ragotel.semconv import Operation, Outcome, StepKind

__all__ = [
    "Step",
    "StepFacts",
    "StepSpec",
    "current_step",
    "current_trace_id",
    "embedding",
    "generation",
    "pipeline",
    "prompt",
    "record_error",
    "rerank",
    "retrieval",
]


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
        attrs = limiter.bound({sc.RAG_STEP_KIND: stage, sc.ERROR_TYPE: etype, sc.RAG_OUTCOME: Outcome.ERROR.value})
        _instruments.instruments().step_errors.add(1, attrs)
        note_error(trace.get_current_span(), etype, stage=stage, message=message)
    except Exception as exc:
        report_internal_error("record_error", exc)


F = TypeVar("F", bound=Callable[..., Any])


class StepSpec(Spec):
    """A step before it runs, as ``ragotel.retrieval(...)`` and the other kinds return it: apply it to a
    function (a decorator) or enter it (``with`` / ``async with``, giving the running :class:`Step`)."""

    __slots__ = ()

    # -- decorator ---------------------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        # "Class.method" names a step well; "outer.<locals>.inner" paths only add noise.
        qualname = getattr(fn, "__qualname__", None)
        spec = self
        if self.name is None and qualname is not None:
            spec = replace(spec, name=qualname.rsplit("<locals>.", 1)[-1])
        return shapes.wrap(replace(spec, probes=probes_for(self.kind, fn)), fn)

    # -- context manager ---------------------------------------------------------------------------
    def __enter__(self) -> Step:
        if runtime.disabled:
            return NOOP_STEP
        step = Step._open(self)
        step.__enter__()
        return step

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        step = current_step()
        if step is None or step.spec is not self:
            return
        step.__exit__(None, None, None)
        step._finish(exc)

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


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
    merged: tuple[tuple[str, Any], ...] = tuple((k, v) for k, v in (span_attributes or {}).items() if v is not None)
    merged += tuple((attributes or {}).items())
    try:
        spec = _spec(kind, name, target, merged, operation, extractor, capture_content)
    except TypeError:  # an attribute value that cannot be hashed (a list): not cached
        spec = _spec.__wrapped__(kind, name, target, merged, operation, extractor, capture_content)
    return spec(fn) if fn is not None else spec


# A context manager builds its spec on every call (``with ragotel.retrieval("search"): ...``): the
# same arguments give the same frozen spec, so build each once.
@lru_cache(maxsize=1024)
def _spec(
    kind: StepKind,
    name: str | None,
    target: str | None,
    attributes: tuple[tuple[str, Any], ...],
    operation: Operation | None,
    extractor: Extractor | None,
    capture_content: bool | None,
) -> StepSpec:
    return StepSpec(
        kind, name, target=target, attributes=dict(attributes), operation=operation,
        extractor=extractor, capture_content=capture_content,
    )


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
    conversation_id: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> StepSpec: ...
def pipeline(
    fn_or_name: Any = None,
    /,
    *,
    conversation_id: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    """A whole RAG pipeline: span ``invoke_workflow {name}``, recorded in ``gen_ai.workflow.duration``.

    ``conversation_id`` (the application's session or thread id) becomes ``gen_ai.conversation.id`` on
    the pipeline's span and on every span started under it: steps and model calls. A decorated
    pipeline takes it from its ``conversation_id`` argument, or later from
    ``current_step().record(conversation_id=...)``.

    >>> async def answer(question: str, session: str) -> str:
    ...     with pipeline("chat", conversation_id=session):
    ...         ...
    """
    built = _build(
        StepKind.PIPELINE, fn_or_name, attributes=attributes, extractor=extractor,
        capture_content=capture_content,
    )
    if conversation_id is not None and isinstance(built, StepSpec):
        return replace(built, conversation_id=str(conversation_id))  # per run: not cached
    return built
