"""LangChain runs as ragotel steps, with no code change.

::

    import ragotel

    ragotel.instrument_langchain()       # or, with no code: opentelemetry-instrument (ragotel_langchain)
    answer = chain.invoke("When are you open?")

A callback handler added to every LangChain callback manager (as OpenInference and OpenLLMetry add theirs)
turns runs into steps:

* a run with no parent run (the chain the application invokes) is a **pipeline** step
  (``invoke_workflow {run name}``, ``rag.pipeline.duration``), unless it runs inside a step of the application's
  own (its ``ragotel.pipeline``, a ``ragotel.generation``...), which then holds the chain's steps;
* a retriever run is a **retrieval** step (``retrieval {run name}``): the documents it returned, their scores
  where their metadata has one (``score``, ``similarity``, ``relevance_score``), their ids and texts only with
  content capture on, as is the query;
* a prompt template run is a **prompt** step: the messages it built (counted; captured with content capture on),
  and the retrieved documents put into it as context: of the documents the chain's retrieval steps returned
  before it, those whose text is in one of the template's input values (``format_docs`` and
  ``create_stuff_documents_chain`` join them into one string), counted as ``chunks`` and ``context_chars``;
* a document compressor (``compress_documents`` / ``acompress_documents``: rerankers, filters) is a **rerank**
  step: the documents it was given and kept;
* chat models and LLMs are no step: the generation is the HTTP call's GenAI span, which the httpx or requests
  instrumentation makes under the step it runs in. Other runs (lambdas, parsers, parallel maps) are no step
  either; what runs under them nests under the step they run in.

A step nested in a retrieval or rerank step (a retriever inside a compression retriever, a vector store search)
leaves the documents and the retrieval quality to the outermost listing step, so nothing is counted twice.

The step is current while its run's body runs, so the spans started inside it (the vector store search, the
encoder, the HTTP call to the model) nest under it. LangChain calls a handler whose ``run_inline`` is set in the
code that runs the component, sync or async, so the handler makes a run's context current there, at its
start. The end is where the async callbacks differ: LangChain runs them in a task of their own (shielded
from cancellation), whose context is a copy, so the handler could not restore the caller's context there.
The ``on_*_end`` / ``on_*_error`` methods of the run managers, which the component's code calls in its own
context before that task starts (and before ``asyncio.gather`` runs several in tasks, as a batch does), are
therefore patched to restore the context when called. A run whose end comes
in another context (a stream consumed from several threads) restores nothing there, and the context it made
current is left to the one it was made in. Steps are parented by the run tree (``parent_run_id``), not by
whatever is current, so runs started side by side (``batch``) do not nest in one another.

Every step ends once: on its run's end or error, or, if LangChain never reported the end of a run (a retriever
interrupted by a cancellation reports nothing), when its parent run ends, as cancelled.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Final
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._core.safe import report_internal_error
from ragotel._genai import hits
from ragotel._genai.operation import Operation, enclosing
from ragotel._steps.spec import Spec
from ragotel._steps.step import Step
from ragotel.instrumentation._base import Instrumentor
from ragotel.instrumentation._vector import VectorStore, score_stats
from ragotel.semconv import StepKind

__all__ = ["LangChainInstrumentor", "instrument_langchain", "uninstrument_langchain"]

# The run managers' methods that end a run, by class (langchain_core.callbacks.manager): each restores the
# context its run's start made current before LangChain reports the end to the handlers.
_RUN_ENDS: Final = {
    "CallbackManagerForChainRun": ("on_chain_end", "on_chain_error"),
    "CallbackManagerForRetrieverRun": ("on_retriever_end", "on_retriever_error"),
    "CallbackManagerForLLMRun": ("on_llm_end", "on_llm_error"),
    "CallbackManagerForToolRun": ("on_tool_end", "on_tool_error"),
    "AsyncCallbackManagerForChainRun": ("on_chain_end", "on_chain_error"),
    "AsyncCallbackManagerForRetrieverRun": ("on_retriever_end", "on_retriever_error"),
    "AsyncCallbackManagerForLLMRun": ("on_llm_end", "on_llm_error"),
    "AsyncCallbackManagerForToolRun": ("on_tool_end", "on_tool_error"),
}
_LISTING: Final = (StepKind.RETRIEVAL, StepKind.RERANK)
# Metadata keys a document's score is read from (the keys ragotel reads hits' scores from).
_SCORE_KEYS: Final = ("score", "similarity", "relevance_score")
# Retrieved texts a chain keeps to find in its prompts' inputs: as many as a retrieval's scores are read from.
_MAX_PASSAGES: Final = hits.MAX_SCORED_HITS
# Chat roles of LangChain message types.
_ROLES: Final = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}
# The compressor whose compress_documents is running: its acompress_documents calling it (the default one does,
# in a thread) or a subclass calling super() is the same step.
_compressing: ContextVar[object | None] = ContextVar("ragotel_langchain_compressing", default=None)


class LangChainInstrumentor(Instrumentor):
    """LangChain runs as pipeline, retrieval, prompt and rerank steps, as an OpenTelemetry instrumentor
    (``ragotel_langchain``).

    Adds a callback handler to every LangChain callback manager, patches the run managers' end methods (so that
    the step of a run is current while it runs) and the document compressors' ``compress_documents`` /
    ``acompress_documents``; ``uninstrument()`` removes them.
    """

    label = "instrument_langchain()"
    modules = ("langchain_core",)

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("langchain-core >= 1.0",)

    def _instrument(self, **kwargs: Any) -> None:
        from langchain_core.callbacks import base, manager
        from langchain_core.documents.compressor import BaseDocumentCompressor

        handler = _handler()
        missing = []
        if not self._patches.apply(base.BaseCallbackManager, "__init__", functools.partial(_adding, handler)):
            missing.append("BaseCallbackManager.__init__")
        for class_name, methods in _RUN_ENDS.items():
            cls = getattr(manager, class_name, None)
            for name in methods:
                if not isinstance(cls, type) or not self._patches.apply(cls, name, _leaving):
                    missing.append(f"{class_name}.{name}")
        if missing:  # the context a run made current could not be restored: instrument nothing
            raise RuntimeError(f"langchain_core.callbacks has no {', '.join(missing)}")
        for cls in _subclasses(BaseDocumentCompressor):
            _patch_compressor(self, cls)
        _COMPRESSORS.watch(self, BaseDocumentCompressor)
        _RUNS.active = True

    def _uninstrument(self, **kwargs: Any) -> None:
        _RUNS.active = False
        _COMPRESSORS.unwatch()
        super()._uninstrument(**kwargs)


def instrument_langchain() -> None:
    """Instrument LangChain (see ``ragotel.instrumentation.langchain``); a second call does nothing."""
    LangChainInstrumentor.turn_on()


def uninstrument_langchain() -> None:
    """Undo ``instrument_langchain``."""
    LangChainInstrumentor.turn_off()


# -- the handler on every callback manager -------------------------------------------------------------
def _adding(handler: Any, original: Callable[..., None]) -> Callable[..., None]:
    """``BaseCallbackManager.__init__`` that adds ``handler``, inheritable, to every manager (a child manager
    inherits it: it is added once)."""

    @functools.wraps(original)
    def init(manager: Any, *args: Any, **kwargs: Any) -> None:
        original(manager, *args, **kwargs)
        try:
            if handler not in manager.inheritable_handlers:
                manager.add_handler(handler, True)
        except Exception as exc:
            report_internal_error("adding the LangChain callback handler", exc)

    return init


_HANDLER: list[Any] = []
"""The one handler, made at the first instrumentation and kept: a manager made under an earlier instrumentation
hands the same handler to its children, so no run is seen twice."""


def _handler() -> Any:
    if not _HANDLER:
        _HANDLER.append(_handler_type()())
    return _HANDLER[0]


def _handler_type() -> type:
    """The handler class, built when instrumenting (langchain-core is imported only then). Each method hands
    its event to ``_RUNS``, which never raises."""
    from langchain_core.callbacks import BaseCallbackHandler

    class RagotelCallbackHandler(BaseCallbackHandler):
        """Turns LangChain runs into ragotel steps (see ``ragotel.instrumentation.langchain``)."""

        # Called in the code that runs the component, not in a thread pool: its context is the one to set.
        run_inline = True
        raise_error = False

        def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                           parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            kind = StepKind.PROMPT if kwargs.get("run_type") == "prompt" else None
            _RUNS.start(run_id, parent_run_id, kind, _name(serialized, kwargs), chain=True,
                        inputs=inputs if kind is StepKind.PROMPT else None)

        def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
            _RUNS.end(run_id, outputs)

        def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            _RUNS.end(run_id, None, error)

        def on_retriever_start(self, serialized: dict[str, Any] | None, query: str, *, run_id: UUID,
                               parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            _RUNS.start(run_id, parent_run_id, StepKind.RETRIEVAL, _name(serialized, kwargs), query=query)

        def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
            _RUNS.end(run_id, documents)

        def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            _RUNS.end(run_id, None, error)

        # Model and tool runs are no steps; they are followed so that what runs under them finds its step.
        def on_llm_start(self, serialized: dict[str, Any] | None, prompts: list[str], *, run_id: UUID,
                         parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            _RUNS.start(run_id, parent_run_id, None, "")

        def on_chat_model_start(self, serialized: dict[str, Any] | None, messages: list[list[Any]], *,
                                run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            _RUNS.start(run_id, parent_run_id, None, "")

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            _RUNS.end(run_id, None)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            _RUNS.end(run_id, None, error)

        def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID,
                          parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            _RUNS.start(run_id, parent_run_id, None, "")

        def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
            _RUNS.end(run_id, None)

        def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            _RUNS.end(run_id, None, error)

    return RagotelCallbackHandler


def _name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str:
    """The run's name: ``run_name`` from its config, else the component's (``RunnableSequence``, the retriever's
    class)."""
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, Mapping):
        found = serialized.get("name")
        if isinstance(found, str) and found:
            return found
        ids = serialized.get("id")
        if isinstance(ids, list) and ids and isinstance(ids[-1], str):
            return ids[-1]
    return "langchain"


# -- runs ---------------------------------------------------------------------------------------------
class _Run:
    """One LangChain run in flight."""

    __slots__ = ("children", "context", "outer", "passages", "root", "step", "token", "top")

    def __init__(self, step: Step | None, context: Context, outer: Context, root: bool) -> None:
        self.step = step
        self.context = context
        """What runs under this one run in: its step's context, or the one it started in."""
        self.outer = outer
        """The context this run started in (its parent run's, for a run that has one)."""
        self.root = root
        self.token: object = None
        """Set while this run's context is current where its body runs (attached at its start)."""
        self.children: list[UUID] = []
        self.top = self
        """The outermost run of its tree this handler saw (the chain the application invoked)."""
        self.passages: list[str] = []
        """On a top run: the texts of the documents its retrieval steps returned, to find in its prompts."""


class _Runs:
    """The runs in flight, by run id, and the steps they are."""

    __slots__ = ("_roots", "_runs", "active")

    def __init__(self) -> None:
        self._runs: dict[UUID, _Run] = {}
        self._roots: dict[Operation, _Run] = {}
        """Runs with no parent run that are steps, by step: a run started beside one (``batch``) is no child."""
        self.active = False

    def start(self, run_id: UUID, parent_id: UUID | None, kind: StepKind | None, name: str, *,
              chain: bool = False, query: str | None = None, inputs: Any = None) -> None:
        """A run started, in the code that runs it: its step, if it is one, becomes current there. ``inputs``: a
        prompt template's."""
        if not self.active or runtime.current.disabled or not is_instrumentation_enabled():
            return
        try:
            current = otel_context.get_current()
            parent = self._runs.get(parent_id) if parent_id is not None else None
            if parent is not None:
                outer = parent.context
                parent.children.append(run_id)
            elif parent_id is None:
                outer = self._outside(current)
                if chain and kind is None and enclosing(outer) is None:
                    kind = StepKind.PIPELINE
            else:  # a parent run this handler did not see (started before instrumenting): where it runs
                outer = current
            step = _start(kind, name, outer, current, query) if kind is not None else None
            run = _Run(step, step.context if step is not None else outer, outer, parent_id is None)
            if parent is not None:
                run.top = parent.top
            self._runs[run_id] = run
            if step is not None and kind is StepKind.PROMPT:
                _context_put(step, run.top.passages, inputs)
            if run.root and step is not None:
                self._roots[step] = run
            # A run beside another root one (batch) is not made current where that one is.
            if run.context is not current and (not run.root or outer is current):
                run.token = otel_context.attach(run.context)
        except Exception as exc:
            report_internal_error("starting a LangChain step", exc)

    def _outside(self, current: Context) -> Context:
        """Where a run with no parent run starts: ``current``, unless that is another root run's step that has
        no run under it yet (runs started side by side, as ``batch`` starts them): then where that one started."""
        context = current
        for _ in range(64):
            operation = enclosing(context)
            run = self._roots.get(operation) if operation is not None else None
            if run is None or any(child in self._runs for child in run.children):
                break
            context = run.outer
        return context

    def leave(self, run_id: UUID) -> None:
        """The run is ending, in the code that ran it: the context its start made current is restored."""
        run = self._runs.get(run_id)
        if run is not None and run.token is not None:
            token, run.token = run.token, None
            _detach(token, run.context)

    def end(self, run_id: UUID, result: Any, exc: BaseException | None = None) -> None:
        """The run ended (``exc``: failed); its step records what it returned and ends."""
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        try:
            if run.token is not None:  # ended through no patched run manager: restore where possible
                token, run.token = run.token, None
                _detach(token, run.context)
            step = run.step
            if step is not None:
                if run.root:
                    self._roots.pop(step, None)
                if exc is None:
                    _record(step, result)
                    if step.kind in _LISTING and _outermost_listing(step):
                        _keep_passages(run.top.passages, result)
                step.end(exc)
            self._end_orphans(run)
        except Exception as internal:
            report_internal_error("ending a LangChain step", internal)

    def _end_orphans(self, run: _Run) -> None:
        """Runs under ``run`` whose end LangChain did not report (a retriever stops reporting on a cancellation):
        cancelled with it."""
        pending = list(run.children)
        while pending:
            child = self._runs.pop(pending.pop(), None)
            if child is None:
                continue
            child.token = None
            if child.step is not None:
                self._roots.pop(child.step, None)
                child.step.cancel()
            pending.extend(child.children)


_RUNS: Final = _Runs()


def _start(kind: StepKind, name: str, outer: Context, current: Context, query: str | None) -> Step:
    """Start the step of a run in ``outer`` (its parent run's context), whatever is current."""
    token = otel_context.attach(outer) if outer is not current else None
    try:
        step = Step.start(_spec(kind, name))
    finally:
        if token is not None:
            otel_context.detach(token)
    if query is not None:
        step.record(query=query)
    return step


def _detach(token: object, context: Context) -> None:
    """Undo the attach that returned ``token`` if ``context`` (what it attached) is still current here. Another
    context, or the same value in a copy of the context it was attached in (a task, a thread), is left as it
    is: it is not this run's to restore."""
    if otel_context.get_current() is not context:
        return
    if isinstance(token, contextvars.Token):
        # OpenTelemetry's context runtime is a ContextVar and its tokens are that variable's: resetting it here
        # is what detach() does, without the error log a copy of the context (a ValueError) would give.
        with contextlib.suppress(ValueError, RuntimeError):
            token.var.reset(token)
    else:
        otel_context.detach(token)  # type: ignore[arg-type]


def _leaving(original: Callable[..., Any]) -> Callable[..., Any]:
    """A run manager's end method that restores the context before LangChain reports the end to the handlers,
    in the component's own code. An async one restores it when called, not when awaited: LangChain gathers
    some of them (the runs of a batch), which runs each in a task of its own, on a copy of the context."""

    @functools.wraps(original)
    def end(manager: Any, *args: Any, **kwargs: Any) -> Any:
        _leave(manager)
        return original(manager, *args, **kwargs)  # the coroutine of an async one, awaited by its caller

    return end


def _leave(manager: Any) -> None:
    try:
        run_id = getattr(manager, "run_id", None)
        if isinstance(run_id, UUID):
            _RUNS.leave(run_id)
    except Exception as exc:
        report_internal_error("restoring the context of a LangChain run", exc)


# -- what a step records -------------------------------------------------------------------------------
_SPECS: dict[tuple[StepKind, str], Spec] = {}
# Distinct step names kept: run names are the application's, so bounded here as the metric labels are.
_MAX_SPECS: Final = 256


def _spec(kind: StepKind, name: str) -> Spec:
    spec = _SPECS.get((kind, name))
    if spec is None:
        spec = Spec(kind, name)
        if len(_SPECS) < _MAX_SPECS:
            _SPECS[kind, name] = spec
    return spec


def _record(step: Step, result: Any) -> None:
    """What a run returned, on its step. Never raises."""
    try:
        if step.kind is StepKind.RETRIEVAL:
            _found(step, result)
        elif step.kind is StepKind.PROMPT:
            to_messages = getattr(result, "to_messages", None)
            if callable(to_messages):
                step.record(messages=[{"role": _ROLES.get(m.type, m.type), "content": m.content}
                                      for m in to_messages()])
    except Exception as exc:
        report_internal_error(f"reading a LangChain {step.kind.value} result", exc)


def _found(step: Step, documents: Any) -> None:
    """Documents a retriever or compressor returned: count, scores from their metadata, and (content capture or
    OpenInference on) the documents. Counted unless the step is inside a retrieval or rerank step."""
    if isinstance(documents, (str, bytes, Mapping)) or not isinstance(documents, Sequence):
        raise TypeError(f"expected a sequence of documents, got {type(documents).__name__}")
    scores = [_score(doc) for doc in documents[: hits.MAX_SCORED_HITS]]
    listed = None
    if VectorStore.wants_documents():
        listed = [hits.Document(None if getattr(doc, "id", None) is None else str(doc.id), score,
                                doc.page_content if isinstance(getattr(doc, "page_content", None), str) else None)
                  for doc, score in zip(documents, scores, strict=False)]
    step.found(len(documents), score_stats(scores), distances=False, counted=_outermost_listing(step),
               documents=listed)


def _outermost_listing(step: Step) -> bool:
    """Whether ``step`` is in no retrieval or rerank step: the one whose documents count (the documents of one
    nested in it are that step's input)."""
    parent = step.parent
    return not (isinstance(parent, Step) and parent.kind in _LISTING)


def _keep_passages(passages: list[str], documents: Any) -> None:
    """The texts of the documents a retrieval returned, for the prompts after it. Never raises."""
    try:
        if isinstance(documents, Sequence) and not isinstance(documents, (str, bytes)):
            room = _MAX_PASSAGES - len(passages)
            passages.extend(text for doc in documents[:max(room, 0)]
                            if isinstance(text := getattr(doc, "page_content", None), str) and text)
    except Exception as exc:
        report_internal_error("keeping a LangChain retrieval's documents", exc)


def _context_put(step: Step, passages: Sequence[str], inputs: Any) -> None:
    """On a prompt step: the retrieved documents whose text is in the template's input values (what formatting
    joined them into), as chunks and characters of context. Never raises."""
    try:
        if not passages:
            return
        values = inputs.values() if isinstance(inputs, Mapping) else (inputs,)
        texts = [value for value in values if isinstance(value, str)]
        put = [passage for passage in passages if any(passage in text for text in texts)]
        if put:
            step.record(chunks=len(put), context_chars=sum(len(passage) for passage in put))
    except Exception as exc:
        report_internal_error("reading a LangChain prompt's context", exc)


def _score(document: Any) -> float | None:
    metadata = getattr(document, "metadata", None)
    if not isinstance(metadata, Mapping):
        return None
    for key in _SCORE_KEYS:
        value = metadata.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


# -- document compressors: rerank steps ----------------------------------------------------------------
def _subclasses(cls: type) -> list[type]:
    found: list[type] = [cls]
    pending: list[type] = [cls]
    while pending:
        children: list[type] = pending.pop().__subclasses__()
        for sub in children:
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def _patch_compressor(instrumentor: Instrumentor, cls: type) -> None:
    for name, wrap in (("compress_documents", _compressing_step), ("acompress_documents", _acompressing_step)):
        method = cls.__dict__.get(name)
        if method is not None and not getattr(method, "__isabstractmethod__", False):
            instrumentor._patches.apply(cls, name, wrap)


class _CompressorClasses:
    """Compressor classes defined after instrumenting (the application imports its reranker after
    ``opentelemetry-instrument`` instrumented): patched as pydantic completes them."""

    __slots__ = ("_base", "_original")

    def __init__(self) -> None:
        self._base: type | None = None
        self._original: Any = None

    def watch(self, instrumentor: Instrumentor, base: type) -> None:
        original = base.__dict__.get("__pydantic_init_subclass__")

        def completed(cls: Any, /, **kwargs: Any) -> None:
            if original is not None:
                original.__func__(cls, **kwargs)
            else:
                inherited: Any = super(base, cls)
                inherited.__pydantic_init_subclass__(**kwargs)
            try:
                if instrumentor.is_instrumented_by_opentelemetry:
                    _patch_compressor(instrumentor, cls)
            except Exception as exc:
                report_internal_error("instrumenting a LangChain document compressor", exc)

        self._base, self._original = base, original
        setattr(base, "__pydantic_init_subclass__", classmethod(completed))  # noqa: B010

    def unwatch(self) -> None:
        base, original = self._base, self._original
        if base is None:
            return
        if original is None:
            delattr(base, "__pydantic_init_subclass__")
        else:
            setattr(base, "__pydantic_init_subclass__", original)  # noqa: B010
        self._base = self._original = None


_COMPRESSORS: Final = _CompressorClasses()


def _rerank_begin(compressor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Step | None:
    """The rerank step of one ``compress_documents`` call, or ``None`` (telemetry off or suppressed, or this
    compressor's own step is running). Never raises."""
    try:
        if (not _RUNS.active or runtime.current.disabled or not is_instrumentation_enabled()
                or _compressing.get() is compressor):
            return None
        known: dict[str, AttributeValue] = {}
        documents = args[0] if args else kwargs.get("documents")
        if isinstance(documents, Sequence):
            known[sc.RAG_RERANK_INPUT_DOCUMENTS] = len(documents)
        top_n = getattr(compressor, "top_n", None)
        if isinstance(top_n, int) and not isinstance(top_n, bool):
            known[sc.RAG_RERANK_TOP_N] = top_n
        step = Step.start(_spec(StepKind.RERANK, type(compressor).__name__), known)
        query = args[1] if len(args) > 1 else kwargs.get("query")
        if isinstance(query, str):
            step.record(query=query)
        return step
    except Exception as exc:
        report_internal_error("starting a LangChain rerank step", exc)
        return None


def _rerank_finish(step: Step, result: Any) -> None:
    try:
        _found(step, result)
    except Exception as exc:
        report_internal_error("reading a LangChain compressor result", exc)
    step.end()


def _compressing_step(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def compress(compressor: Any, *args: Any, **kwargs: Any) -> Any:
        step = _rerank_begin(compressor, args, kwargs)
        if step is None:
            return original(compressor, *args, **kwargs)
        token = _compressing.set(compressor)
        try:
            result = step.run(original, compressor, *args, **kwargs)
        finally:
            _compressing.reset(token)
        _rerank_finish(step, result)
        return result

    return compress


def _acompressing_step(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def acompress(compressor: Any, *args: Any, **kwargs: Any) -> Any:
        step = _rerank_begin(compressor, args, kwargs)
        if step is None:
            return await original(compressor, *args, **kwargs)
        token = _compressing.set(compressor)
        try:
            with step:
                result = await original(compressor, *args, **kwargs)
        except BaseException as exc:
            step.end(exc)
            raise
        finally:
            _compressing.reset(token)
        _rerank_finish(step, result)
        return result

    return acompress
