"""RAG steps: one span and the step metrics per retrieval, embedding, rerank, prompt, generation, pipeline.

Each kind is one callable that works as a decorator (bare or with arguments) and as a sync or async
context manager::

    @ragotel.retrieval(data_source="faiss")
    def search(query: str, k: int = 4) -> list[Hit]: ...

    async with ragotel.prompt(template="rag-v1") as step:
        messages = build(question, hits)
        step.record(context_chars=len(context), chunks=len(hits))

Decorators handle plain functions, coroutines, generators and async generators (``ragotel._steps.shapes``);
what a step records is described in ``ragotel._steps.step``.
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
from ragotel._core import runtime
from ragotel._core.cardinality import limiter
from ragotel._core.errors import error_type, note_error
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

    Examples:
        >>> record_error("request", "validation", message="question must not be empty")
    """
    if runtime.current.disabled:
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
    function (a decorator) or enter it (``with`` / ``async with``, giving the running ``Step``)."""

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
        if runtime.current.disabled:
            return NOOP_STEP
        step = Step.start(self)
        step.__enter__()
        return step

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        step = current_step()
        if step is None or step.spec is not self:
            return
        step.__exit__(None, None, None)
        step.end(exc)

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
    """A retrieval step: a search of an index or store, timed, with the hits it returned.

    A decorator (``@retrieval``, ``@retrieval(data_source="faiss")``) or a context manager
    (``with retrieval("search", data_source="dense") as step:``), sync or async.

    The span is ``retrieval {data_source}`` (``retrieval {name}`` without a data source) with
    ``gen_ai.operation.name=retrieval``: the GenAI conventions name a span after its operation and what
    it runs against, so every search of one index reads alike in a trace. The step's own name is
    ``rag.step.name``, on the span and on each of the step's metrics (``retrieval dense (search)`` in
    ``ragotel trace``).

    Args:
        fn_or_name: the function to decorate, or the step's name, ``rag.step.name`` (default: the
            decorated function's name, else ``data_source``, else ``retrieval``).
        data_source: the index or store searched: ``gen_ai.data_source.id``, on the span and the metrics.
        top_k: documents asked for: ``gen_ai.request.top_k``.
        min_score: the score threshold applied after the search: ``rag.retrieval.min_score``, and the
            step's low-score threshold unless ``RAGOTEL_RETRIEVAL_LOW_SCORE`` sets one.
        attributes: more span attributes, set as given.
        extractor: ``fn(result, step)`` for a return value ragotel does not read itself: it records
            through ``step.record(...)`` instead of the reading described below.
        capture_content: record this step's text (queries, documents, messages, answers) on the span:
            ``True`` or ``False`` here, ``None`` for the process setting (``RAGOTEL_CAPTURE_CONTENT``).

    Reads the decorated function's ``k``/``top_k``/``limit`` argument (``gen_ai.request.top_k``) and
    ``query``/``question``/``q`` (``gen_ai.retrieval.query.text``, content capture only), and its return
    value: a list of hits — dicts, objects or ``(doc, score)`` pairs with an id, a score and a text.

    Records ``rag.retrieval.results.returned`` and the scores' min/max/avg on the span,
    ``rag.step.duration`` with ``rag.retrieval.quality`` (``ok``, ``empty``, ``low_score``), and the
    ``rag.retrieval.documents`` count.

    A failure sets the span to ERROR with ``error.type`` (``timeout``, ``connection``, ``http.5xx``, ...,
    else the exception's class) and counts in ``rag.step.errors``; the exception passes through
    unchanged. A cancelled task or closed generator is ``rag.outcome=cancelled``, not an error.

    Examples:
        >>> @retrieval(data_source="faiss")
        ... def search(query: str, k: int = 4) -> list[dict[str, object]]: ...
    """
    return _build(
        StepKind.RETRIEVAL, fn_or_name, target=data_source, attributes=attributes, extractor=extractor,
        capture_content=capture_content,
        span_attributes={
            sc.GEN_AI_DATA_SOURCE_ID: data_source,
            sc.GEN_AI_REQUEST_TOP_K: top_k,
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
    """An embedding step: texts turned into vectors by a model run in-process or behind an API.

    A decorator (``@embedding``, ``@embedding(model="bge-small")``) or a sync or async context manager.

    The span is ``embeddings {model}`` (``embeddings {name}`` without a model) with
    ``gen_ai.operation.name=embeddings``: the GenAI conventions name a span after its operation and
    model. The step's own name is ``rag.step.name``, on the span and the metrics.

    Args:
        fn_or_name: the function to decorate, or the step's name, ``rag.step.name`` (default: the
            decorated function's name, else ``model``, else ``embedding``).
        model: the embedding model: ``gen_ai.request.model``, on the span and the metrics.
        dimension: the vectors' length: ``gen_ai.embeddings.dimension.count``.
        provider: who serves the model: ``gen_ai.provider.name``, on the span and the metrics.
        attributes: more span attributes, set as given.
        extractor: ``fn(result, step)`` for a return value ragotel does not read itself: it records
            through ``step.record(...)`` instead of the reading described below.
        capture_content: record this step's text (queries, documents, messages, answers) on the span:
            ``True`` or ``False`` here, ``None`` for the process setting (``RAGOTEL_CAPTURE_CONTENT``).

    Reads the decorated function's ``texts``/``inputs``/``sentences``/``documents`` argument (how
    many: ``rag.embedding.inputs``) and its return value: one vector or a batch (lists or an array),
    giving ``rag.embedding.inputs`` and ``gen_ai.embeddings.dimension.count``.

    Records ``rag.step.duration`` (and ``gen_ai.client.operation.duration`` with detailed metrics,
    unless an instrumented HTTP call under the step records it).

    A failure sets the span to ERROR with ``error.type`` (``timeout``, ``connection``, ``http.5xx``, ...,
    else the exception's class) and counts in ``rag.step.errors``; the exception passes through
    unchanged. A cancelled task or closed generator is ``rag.outcome=cancelled``, not an error.
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
    """A reranking step: candidates reordered by a cross-encoder or a rerank API, with what it kept.

    A decorator (``@rerank``, ``@rerank(model="bge-reranker")``) or a sync or async context manager.

    The span is ``rerank {model}`` (``rerank {name}`` without a model), named like the GenAI
    operations after what it does and with what model; the conventions define no rerank operation,
    so it carries ``rag.step.kind=rerank`` and no ``gen_ai.operation.name``. The step's own name is
    ``rag.step.name``, on the span and the metrics.

    Args:
        fn_or_name: the function to decorate, or the step's name, ``rag.step.name`` (default: the
            decorated function's name, else ``model``, else ``rerank``).
        model: the reranking model: ``gen_ai.request.model``, on the span and the metrics.
        top_n: documents kept: ``rag.rerank.top_n``.
        attributes: more span attributes, set as given.
        extractor: ``fn(result, step)`` for a return value ragotel does not read itself: it records
            through ``step.record(...)`` instead of the reading described below.
        capture_content: record this step's text (queries, documents, messages, answers) on the span:
            ``True`` or ``False`` here, ``None`` for the process setting (``RAGOTEL_CAPTURE_CONTENT``).

    Reads the decorated function's ``documents``/``docs``/``hits``/``candidates`` argument (how many:
    ``rag.rerank.input_documents``) and ``top_n``/``k`` (``rag.rerank.top_n``), and its return value:
    hits, read as a retrieval's are.

    Records what a retrieval records: ``rag.retrieval.results.returned`` and score statistics on the
    span, ``rag.step.duration`` with ``rag.retrieval.quality``, the ``rag.retrieval.documents`` count.

    A failure sets the span to ERROR with ``error.type`` (``timeout``, ``connection``, ``http.5xx``, ...,
    else the exception's class) and counts in ``rag.step.errors``; the exception passes through
    unchanged. A cancelled task or closed generator is ``rag.outcome=cancelled``, not an error.
    """
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
    version: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> StepSpec: ...
def prompt(
    fn_or_name: Any = None,
    /,
    *,
    template: str | None = None,
    version: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    extractor: Extractor | None = None,
    capture_content: bool | None = None,
) -> Any:
    """A prompt-building step: the retrieved context and the question put into messages.

    A decorator (``@prompt``, ``@prompt(template="rag-v1")``) or a sync or async context manager.

    The span is ``prompt {template}`` (``prompt {name}`` without a template), named like the GenAI
    operations after what it does and from what; there is no GenAI operation for it
    (``rag.step.kind=prompt``). The step's own name is ``rag.step.name``, on the span and the metrics.

    Args:
        fn_or_name: the function to decorate, or the step's name, ``rag.step.name`` (default: the
            decorated function's name, else ``template``, else ``prompt``).
        template: the prompt template's name: ``gen_ai.prompt.name``, on this span and on the model calls
            made after it in the same pipeline (the conventions put it on the call that used the prompt).
        version: the template's version (``"3"``, ``"2026-05-01"``, ``"prod"``): ``gen_ai.prompt.version``,
            where the name goes.
        attributes: more span attributes, set as given.
        extractor: ``fn(result, step)`` for a return value ragotel does not read itself: it records
            through ``step.record(...)`` instead of the reading described below.
        capture_content: record this step's text (queries, documents, messages, answers) on the span:
            ``True`` or ``False`` here, ``None`` for the process setting (``RAGOTEL_CAPTURE_CONTENT``).

    Reads the return value: a message list is counted (``rag.prompt.messages``) and, with content
    capture, kept as ``gen_ai.input.messages``. What only the code knows it records itself:
    ``step.record(chunks=..., context_chars=..., context_tokens=...)``.

    Records ``rag.prompt.chunks``, ``rag.prompt.context.chars`` and ``rag.prompt.context.tokens`` on the
    span, ``rag.step.duration``, and the ``rag.prompt.context.chunks`` / ``rag.prompt.context.size``
    counts.

    A failure sets the span to ERROR with ``error.type`` (``timeout``, ``connection``, ``http.5xx``, ...,
    else the exception's class) and counts in ``rag.step.errors``; the exception passes through
    unchanged. A cancelled task or closed generator is ``rag.outcome=cancelled``, not an error.

    Examples:
        >>> with prompt(template="rag-answer", version="3") as step:
        ...     step.record(chunks=3, context_chars=1800)
    """
    return _build(
        StepKind.PROMPT, fn_or_name, target=template, attributes=attributes, extractor=extractor,
        capture_content=capture_content,
        span_attributes={sc.GEN_AI_PROMPT_NAME: template, sc.GEN_AI_PROMPT_VERSION: version if template else None},
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
    """A generation step: the model answering, however it is called.

    A decorator (``@generation``, ``@generation(model="llama")``) or a sync or async context manager.
    A model call made with an instrumented client (``instrument_httpx``, ``instrument_requests``) needs
    no step: it is one already. Around such a call the step is the call's parent and leaves the call's
    tokens, cost and duration to it, so nothing is counted twice.

    The span is ``{operation} {model}`` (``chat llama``; ``chat {name}`` without a model) with
    ``gen_ai.operation.name``: the GenAI conventions name a span after its operation and model. The
    step's own name is ``rag.step.name``, on the span and the metrics.

    Args:
        fn_or_name: the function to decorate, or the step's name, ``rag.step.name`` (default: the
            decorated function's name, else ``model``, else ``generation``).
        model: the model asked: ``gen_ai.request.model``, on the span and the metrics.
        provider: who serves it: ``gen_ai.provider.name``, on the span and the metrics.
        operation: ``gen_ai.operation.name``: ``Operation.CHAT`` or ``Operation.TEXT_COMPLETION``.
        attributes: more span attributes, set as given.
        extractor: ``fn(result, step)`` for a return value ragotel does not read itself: it records
            through ``step.record(...)`` instead of the reading described below.
        capture_content: record this step's text (queries, documents, messages, answers) on the span:
            ``True`` or ``False`` here, ``None`` for the process setting (``RAGOTEL_CAPTURE_CONTENT``).

    Reads the return value: a string (its length, ``rag.generation.response.chars``) or an OpenAI-style
    (chat) completion: usage, response model and id, finish reasons, the answer's length.

    Records those on the span, ``rag.step.duration``, and — when no instrumented call under it did —
    ``gen_ai.client.token.usage`` and ``rag.cost.usd`` (with a price table).

    A failure sets the span to ERROR with ``error.type`` (``timeout``, ``connection``, ``http.5xx``, ...,
    else the exception's class) and counts in ``rag.step.errors``; the exception passes through
    unchanged. A cancelled task or closed generator is ``rag.outcome=cancelled``, not an error.
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
    """A whole RAG pipeline: one request's retrieval, prompt and generation under one span.

    A decorator (``@pipeline``, ``@pipeline("chat")``) or a sync or async context manager.

    The span is ``invoke_workflow {name}`` with ``gen_ai.operation.name=invoke_workflow`` and
    ``gen_ai.workflow.name`` = the name, as the GenAI conventions name a workflow; the name labels
    ``rag.pipeline.duration``.

    Args:
        fn_or_name: the function to decorate, or the pipeline's name, ``gen_ai.workflow.name`` and
            ``rag.step.name`` (default: the decorated function's name, else ``pipeline``).
        conversation_id: the application's session or thread id: ``gen_ai.conversation.id`` on the
            pipeline's span and on every span started under it (steps and model calls).
        attributes: more span attributes, set as given.
        extractor: ``fn(result, step)`` for a return value ragotel does not read itself: it records
            through ``step.record(...)`` instead of the reading described below.
        capture_content: record this step's text (queries, documents, messages, answers) on the span:
            ``True`` or ``False`` here, ``None`` for the process setting (``RAGOTEL_CAPTURE_CONTENT``).

    Reads the decorated function's ``conversation_id`` argument; later,
    ``current_step().record(conversation_id=...)`` sets it too. The return value is not read.

    Records ``rag.pipeline.duration`` (not ``rag.step.duration``) and, on the span, the tokens
    (``gen_ai.usage.input_tokens``/``output_tokens``) and cost (``rag.cost.usd``) of every model call
    under it.

    A failure sets the span to ERROR with ``error.type`` (``timeout``, ``connection``, ``http.5xx``, ...,
    else the exception's class) and counts in ``rag.step.errors``; the exception passes through
    unchanged. A cancelled task or closed generator is ``rag.outcome=cancelled``, not an error.

    Examples:
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
