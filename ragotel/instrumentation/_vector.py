"""A search in a vector store as a retrieval step, and a write into one as index writes: written once for every
store ragotel instruments (FAISS, Qdrant, Chroma, pgvector, LanceDB).

An instrumentor names its store once (``VectorStore``) and gives, per patched method, two readers: what the
call asks (``Describe``: collection, operation, ``top_k``, queries, server) and what it returned
(``Read``: a ``Found``). The store decides where the search belongs:

* alone, or under a step of another kind: its own retrieval step, which counts and judges the documents;
* under the application's own retrieval or rerank step over another source (a LangChain retriever, a
  ``ragotel.retrieval("search")``): a sub-step, its span and duration, the documents left to the enclosing step;
* under the application's step that *is* this search (``data_source`` equal to the store's): no second span, the
  store's facts go onto that step's span;
* under this store's own step (a client method calling another one, ``to_list`` calling ``to_arrow``): nothing.

Where another instrumentation already opened the span for this very call (``adopt``: the psycopg DB span around
a driver's execute), the retrieval step goes onto that span instead of starting a second one.

Readers run after the call and never reach the application: one that raises is reported once and the result
returned untouched. Scores are read as the store returns them, with ``rag.retrieval.score.kind`` saying which
way is better; documents (id, score, text) are built only when content capture or OpenInference wants them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core import runtime
from ragotel._core.safe import report_internal_error
from ragotel._genai import hits
from ragotel._genai.operation import enclosing
from ragotel._steps.spec import Spec
from ragotel._steps.step import Step
from ragotel.semconv import StepKind

__all__ = ["TEXT_FIELDS", "Adopt", "Describe", "Found", "Read", "ScoreOrders", "Server", "VectorStore", "order_kind",
           "payload_text", "score_stats", "server_attributes"]

Attributes = dict[str, AttributeValue]
Describe = Callable[[Any, tuple[Any, ...], dict[str, Any]], Attributes]
"""``(instance, args, kwargs)`` of the patched method → the span attributes known before it runs."""


@dataclass(frozen=True, slots=True)
class Found:
    """What one search returned, as far as its reader understood it."""

    count: int
    """Results returned (over every query of a batch)."""
    scores: hits.Scores | None = None
    distances: bool = False
    """Lower is better (an L2 or cosine distance): ``rag.retrieval.score.kind=distance``, no similarity threshold."""
    documents: Sequence[hits.Document] | None = None
    """The hits with their ids, scores and texts; given only when ``VectorStore.wants_documents``."""


Read = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Found | None]
"""``(result, instance, args, kwargs)`` → what the search found, or ``None`` for a shape not understood."""
Adopt = Callable[[], Span | None]
"""The span another instrumentation opened for this very call (a database CLIENT span current around a driver's
execute), or ``None``: the search's step goes onto that span (``Step.start(..., over=span)``) instead of starting its
own."""

TEXT_FIELDS: Final = ("text", "content", "page_content", "document")
"""Where a hit's payload keeps its text, as RAG frameworks and store examples name the field."""

# The kinds of the application's steps a store search nests in as a sub-step.
_LISTING: Final = (StepKind.RETRIEVAL, StepKind.RERANK)


class VectorStore:
    """One store's retrieval steps and index writes: ``data_source`` is ``gen_ai.data_source.id`` (a bounded
    metric label, the store's name), ``system`` its ``db.system.name``."""

    __slots__ = ("data_source", "spec", "sub_spec", "write_attributes")

    def __init__(self, data_source: str, system: str | None = None) -> None:
        attributes: Attributes = {sc.GEN_AI_DATA_SOURCE_ID: data_source}
        if system is not None:
            attributes[sc.DB_SYSTEM_NAME] = system
        self.data_source = data_source
        self.spec = Spec(StepKind.RETRIEVAL, data_source, target=data_source, attributes=attributes)
        # The same names inside the application's retrieval step: a distinct object, so the two are told apart.
        self.sub_spec = Spec(StepKind.RETRIEVAL, data_source, target=data_source, attributes=attributes)
        self.write_attributes: dict[str, AttributeValue] = {sc.GEN_AI_DATA_SOURCE_ID: data_source}

    @staticmethod
    def wants_documents() -> bool:
        """Whether readers should build ``Found.documents`` (content capture or OpenInference is on)."""
        current = runtime.current
        return current.content_spans or current.openinference

    # -- where a search belongs --------------------------------------------------------------------
    def begin(self, describe: Describe, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              adopt: Adopt | None = None) -> tuple[Step | None, Step | None]:
        """The search's own step (on the span ``adopt`` finds, if it finds one); or (``None``, the application's
        step that is this search); or neither: telemetry off or suppressed, or a search inside this store's own.
        Never raises."""
        try:
            if runtime.current.disabled or not is_instrumentation_enabled():
                return None, None
            parent = enclosing()
            spec = self.spec
            if isinstance(parent, Step):
                if parent.spec is self.spec or parent.spec is self.sub_spec:
                    return None, None
                if parent.kind in _LISTING:
                    if parent.data_source == self.data_source:
                        return None, parent
                    spec = self.sub_spec
            theirs = adopt() if adopt is not None else None
            if theirs is not None:
                return Step.start(spec, describe(instance, args, kwargs), over=theirs), None
            return Step.start(spec, describe(instance, args, kwargs)), None
        except Exception as exc:
            report_internal_error(f"starting a {self.data_source} span", exc)
            return None, None

    def describe_host(self, host: Step, describe: Describe, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> None:
        """The store's facts on the application's own step for this search (its results are its own)."""
        try:
            host.span.set_attributes(describe(instance, args, kwargs))
        except Exception as exc:
            report_internal_error(f"describing a {self.data_source} search", exc)

    def finish(self, step: Step, read: Read, result: Any, instance: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> None:
        """Record what the search found and end its step."""
        try:
            found = read(result, instance, args, kwargs)
            if found is not None:
                step.found(found.count, found.scores, distances=found.distances, counted=step.spec is self.spec,
                           documents=found.documents)
        except Exception as exc:
            report_internal_error(f"reading a {self.data_source} result", exc)
        step.end()

    # -- wrappers ----------------------------------------------------------------------------------
    def searching(self, describe: Describe, read: Read,
                  adopt: Adopt | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """The wrapper factory (for ``Patches.apply``) of a synchronous search method."""

        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def search(instance: Any, *args: Any, **kwargs: Any) -> Any:
                step, host = self.begin(describe, instance, args, kwargs, adopt)
                if step is None:
                    result = original(instance, *args, **kwargs)
                    if host is not None:
                        self.describe_host(host, describe, instance, args, kwargs)
                    return result
                result = step.run(original, instance, *args, **kwargs)
                self.finish(step, read, result, instance, args, kwargs)
                return result

            return search

        return wrap

    def searching_async(self, describe: Describe, read: Read, adopt: Adopt | None = None
                        ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """The wrapper factory of a coroutine search method: the step spans the awaited search."""

        def wrap(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            @functools.wraps(original)
            async def search(instance: Any, *args: Any, **kwargs: Any) -> Any:
                step, host = self.begin(describe, instance, args, kwargs, adopt)
                if step is None:
                    result = await original(instance, *args, **kwargs)
                    if host is not None:
                        self.describe_host(host, describe, instance, args, kwargs)
                    return result
                try:
                    with step:
                        result = await original(instance, *args, **kwargs)
                except BaseException as exc:
                    step.end(exc)
                    raise
                self.finish(step, read, result, instance, args, kwargs)
                return result

            return search

        return wrap

    def written(self, count: int | None) -> None:
        """``count`` vectors written into the store: ``rag.index.chunks.written``. Never raises."""
        if not count or runtime.current.disabled or not is_instrumentation_enabled():
            return
        try:
            _instruments.instruments().index_chunks_written.add(count, self.write_attributes)
        except Exception as exc:
            report_internal_error(f"counting a {self.data_source} write", exc)

    def writing(self, count: Callable[[Any, tuple[Any, ...], dict[str, Any]], int | None]
                ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """The wrapper factory of a synchronous write method; ``count`` reads how many vectors it writes. Counted
        once the write returned (a failed write wrote nothing)."""

        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def write(instance: Any, *args: Any, **kwargs: Any) -> Any:
                result = original(instance, *args, **kwargs)
                self._count_write(count, instance, args, kwargs)
                return result

            return write

        return wrap

    def writing_async(self, count: Callable[[Any, tuple[Any, ...], dict[str, Any]], int | None]
                      ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """The wrapper factory of a coroutine write method."""

        def wrap(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            @functools.wraps(original)
            async def write(instance: Any, *args: Any, **kwargs: Any) -> Any:
                result = await original(instance, *args, **kwargs)
                self._count_write(count, instance, args, kwargs)
                return result

            return write

        return wrap

    def _count_write(self, count: Callable[[Any, tuple[Any, ...], dict[str, Any]], int | None], instance: Any,
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.written(count(instance, args, kwargs))
        except Exception as exc:
            report_internal_error(f"counting a {self.data_source} write", exc)


def score_stats(values: Sequence[float | None]) -> hits.Scores | None:
    """Statistics of the finite scores among ``values`` (``None`` where no score was returned)."""
    return hits.scores([v for v in values if v is not None])


def order_kind(values: Sequence[float | None]) -> bool | None:
    """Whether scores a store returned best first are distances (ascending: True), similarities (descending:
    False), or cannot tell (fewer than two distinct scores: None)."""
    finite = [v for v in values if v is not None]
    if len(finite) < 2 or finite[0] == finite[-1]:
        return None
    return finite[0] < finite[-1]


@dataclass(frozen=True, slots=True)
class Server:
    """Where a client sends its requests: ``attributes`` for its spans (``server.address`` / ``server.port``; none
    for a store in the application's process) and ``where``, the store its collections live in (the first part of
    the keys ``ScoreOrders`` remembers under)."""

    attributes: dict[str, AttributeValue]
    where: tuple[Any, ...]


class ScoreOrders:
    """Which way a store's scores are better, per key (the store, the collection, the vector field...), for stores
    whose answers do not say: learned from answers that come best first (``order_kind``), remembered for the
    answers that cannot tell (one hit, ties). Bounded: keys come from the application's collections, and the oldest
    goes first."""

    __slots__ = ("_limit", "_lock", "_seen")

    def __init__(self, limit: int = 1024) -> None:
        self._seen: dict[tuple[Any, ...], bool] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def distances(self, key: tuple[Any, ...] | None, runs: Sequence[Sequence[float | None]],
                  known: bool | None = None) -> bool:
        """Whether an answer's scores are distances: ``known`` (the call named its metric), else the order of the
        first of its ``runs`` (each query's hits) that tells, else what the last answer for ``key`` that could
        tell said; with nothing to go on, similarities."""
        kind = known
        if kind is None:
            for run in runs:
                kind = order_kind(run)
                if kind is not None:
                    break
        if key is None:
            return bool(kind)
        if kind is None:
            return self._seen.get(key, False)
        if self._seen.get(key) is not kind:
            with self._lock:
                self._seen.pop(key, None)
                self._seen[key] = kind
                if len(self._seen) > self._limit:
                    del self._seen[next(iter(self._seen))]  # the oldest
        return kind


def payload_text(payload: Any) -> str | None:
    """The text of a hit's payload (a mapping): its first string under ``TEXT_FIELDS``."""
    if isinstance(payload, Mapping):
        for key in TEXT_FIELDS:
            value = payload.get(key)
            if isinstance(value, str):
                return value
    return None


def server_attributes(host: Any, port: Any) -> Attributes:
    """``server.address`` / ``server.port`` of what a client connects to, as far as they are given: a host that is a
    non-empty string, a port that is an int or a string of digits (as settings and socket names carry it)."""
    attrs: Attributes = {}
    if isinstance(host, str) and host:
        attrs[sc.SERVER_ADDRESS] = host
    if isinstance(port, int) and not isinstance(port, bool):
        attrs[sc.SERVER_PORT] = port
    elif isinstance(port, str) and port.isdigit():
        attrs[sc.SERVER_PORT] = int(port)
    return attrs

