"""Retrieval spans and metrics for LanceDB searches, and index writes, with no code change.

::

    import ragotel

    ragotel.instrument_lancedb()        # or, with no code: opentelemetry-instrument (ragotel_lancedb)
    rows = table.search(vector).limit(5).to_list()  # span "retrieval lancedb",
                                                    # rag.step.duration{rag_step_name="lancedb"}

Every vector, full-text and hybrid search is a retrieval step: span ``retrieval lancedb`` with
``db.system.name=lancedb``, ``db.collection.name`` (the table), ``db.operation.name=search``,
``gen_ai.request.top_k`` (the limit; LanceDB's default of 10 where none was set), ``rag.retrieval.queries``
when several vectors are searched at once, the rows returned and score statistics read from the score
column LanceDB adds: ``_relevance_score`` (hybrid and reranked searches) or ``_score`` (BM25 of a full-text
search) are similarities; ``_distance`` (a vector search) is a distance, lower is better
(``rag.retrieval.score.kind=distance``, no similarity threshold judges it) and ``rag.retrieval.distance`` names
the query's distance type (``l2`` unless ``distance_type()`` chose another). Under content capture or
OpenInference the first rows become the span's documents: their ``id`` and their ``text`` / ``content`` /
``page_content`` column where the table has one.

Where the search is timed: the search runs when a query is executed, not when it is built (``table.search(v)``
and ``.limit(5)`` only describe it), so the step wraps the execution: the query builders' ``to_arrow`` and
``to_batches`` (sync), ``to_arrow`` and ``to_batches`` of the async queries. ``to_list``, ``to_pandas``,
``to_polars`` and ``to_pydantic`` execute through ``to_arrow``, and a sync query executes through the async
query on LanceDB's background event loop (whose task inherits the caller's context): each of these nested
calls is inside the first one's step and makes none of its own, so one call of the application is one span.
A sync hybrid search runs its vector and full-text legs on a thread pool, whose threads start with an empty
context; the legs are run in the hybrid search's context instead, so they too are part of its one step.

Plain scans (``table.search()`` with no query, ``AsyncTable.query()`` without ``nearest_to``, takes by offset
or row id) read rows rather than retrieve them: they are not retrieval steps and are left untouched.

A ``to_batches`` called by the application is a retrieval step that ends when the call returns; the reader it
returns is handed over as it is. Wrapping the reader to count rows as they are read would change the object the
application gets and keep the step open as long as the reader lives, or for ever if it is never drained. In
LanceDB 0.40 a vector, full-text or hybrid search has run by the time its ``to_batches`` returns (the rows are
collected first, then served from memory), so the step still times the search; only its rows, scores and
documents go unrecorded (no ``rag.retrieval.results.returned``, no ``rag.retrieval.documents``, no quality).
``to_arrow`` and everything built on it record them.

Writes: ``AsyncTable.add``, ``LanceTable.add`` and ``RemoteTable.add`` count the rows they were given in
``rag.index.chunks.written`` when that is cheap to know (a list, an Arrow table or batch, a pandas or polars
frame; a reader or an iterator is not consumed to count it). A sync ``add`` runs the async one: the outermost
counts. ``merge_insert(...).execute(...)`` (sync, or awaited) counts the rows it inserted and updated, as
LanceDB reports them.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextvars import ContextVar
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core.safe import report_internal_error
from ragotel._genai import hits
from ragotel._steps.step import MAX_DOCUMENTS_ON_SPAN
from ragotel.instrumentation._base import Instrumentor
from ragotel.instrumentation._vector import Found, VectorStore, score_stats

__all__ = ["LanceDBInstrumentor", "instrument_lancedb", "uninstrument_lancedb"]

DATA_SOURCE: Final = "lancedb"
# LanceDB's limit for a vector, full-text or hybrid search that sets none (DEFAULT_HYBRID_LIMIT for hybrid ones).
DEFAULT_LIMIT: Final = 10
# The distance type a vector search uses unless the query sets one.
DEFAULT_DISTANCE: Final = "l2"
OPERATION: Final = "search"
# The score columns LanceDB adds, the one that ranks first: a hybrid or reranked search keeps the legs' columns
# beside its _relevance_score (return_score="all"), but ranks by the latter. True: a distance.
_SCORE_COLUMNS: Final = (("_relevance_score", False), ("_distance", True), ("_score", False))
_ID_COLUMNS: Final = ("id", "doc_id", "document_id", "chunk_id")
_TEXT_COLUMNS: Final = ("text", "content", "page_content")

_STORE: Final = VectorStore(DATA_SOURCE, "lancedb")
Attributes = dict[str, AttributeValue]


class LanceDBInstrumentor(Instrumentor):
    """LanceDB searches as retrieval steps and its writes as index writes, as an OpenTelemetry instrumentor
    (``ragotel_lancedb``); ``uninstrument()`` puts the methods back.

    A LanceDB release without one of the methods this relies on is left uninstrumented, with one WARNING
    naming it (a partial instrumentation could count a search twice or time it in the wrong place)."""

    label = "instrument_lancedb()"
    modules = ("lancedb",)

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("lancedb >= 0.17",)

    def _instrument(self, **kwargs: Any) -> None:
        from lancedb import merge, query, table

        retrievals = tuple(cls for cls in (getattr(query, name, None) for name in (
            "AsyncVectorQuery", "AsyncFTSQuery", "AsyncHybridQuery")) if isinstance(cls, type))
        to_table = _sync_search(_STORE.searching(_describe_builder, _read_table))
        to_reader = _sync_search(_STORE.searching(_describe_builder, _read_nothing))
        async_table = _async_search(_STORE.searching_async(_describe_query, _read_table), retrievals)
        async_reader = _async_search(_STORE.searching_async(_describe_query, _read_nothing), retrievals)
        required: list[tuple[type, str, Callable[[Any], Any]]] = [
            (query.LanceVectorQueryBuilder, "to_arrow", to_table),
            (query.LanceVectorQueryBuilder, "to_batches", to_reader),
            (query.LanceFtsQueryBuilder, "to_arrow", to_table),
            (query.LanceHybridQueryBuilder, "to_arrow", _hybrid_search),
            (query.AsyncQueryBase, "to_arrow", async_table),
            (query.AsyncQueryBase, "to_batches", async_reader),
            (table.AsyncTable, "add", _adding_async),
            (table.LanceTable, "add", _adding),
            (merge.LanceMergeInsertBuilder, "execute", _merging),
        ]
        for cls, name, wrap in required:
            if not self._patches.apply(cls, name, wrap):
                raise AttributeError(f"{cls.__qualname__}.{name} is not defined where this instrumentation expects it")
        # Overrides that collect the rows before returning the reader (0.40): patched where a release has them.
        for cls in retrievals:
            self._patches.apply(cls, "to_batches", async_reader)
        remote = _remote_table()
        if remote is not None:
            self._patches.apply(remote, "add", _adding)


def instrument_lancedb() -> None:
    """Instrument LanceDB searches and writes (see ``ragotel.instrumentation.lancedb``); a second call does
    nothing."""
    LanceDBInstrumentor.turn_on()


def uninstrument_lancedb() -> None:
    """Undo ``instrument_lancedb``."""
    LanceDBInstrumentor.turn_off()


def _remote_table() -> type | None:
    """LanceDB Cloud's sync table, where this release has it."""
    try:
        from lancedb.remote.table import RemoteTable
    except ImportError:
        return None
    return RemoteTable if isinstance(RemoteTable, type) else None


# -- what a search asks ----------------------------------------------------------------------------
def _table_name(attrs: Attributes, table: Any) -> None:
    try:
        name = table.name if table is not None else None
    except Exception:  # a closed or remote table can fail to answer; the search still runs
        name = None
    if isinstance(name, str):
        attrs[sc.DB_COLLECTION_NAME] = name


def _describe_builder(builder: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Attributes:
    """A sync query builder (``table.search(...)``): vector, full-text or hybrid."""
    attrs: Attributes = {sc.DB_OPERATION_NAME: OPERATION}
    _table_name(attrs, getattr(builder, "_table", None))
    limit = getattr(builder, "_limit", None)
    attrs[sc.GEN_AI_REQUEST_TOP_K] = limit if _positive(limit) else DEFAULT_LIMIT
    if hasattr(builder, "_distance_type"):  # vector and hybrid builders; a full-text one has no distance
        distance = builder._distance_type
        attrs[sc.RAG_RETRIEVAL_DISTANCE] = distance if isinstance(distance, str) and distance else DEFAULT_DISTANCE
        queries = _vectors_in(getattr(builder, "_query", None))
        if queries > 1:
            attrs[sc.RAG_RETRIEVAL_QUERIES] = queries
    return attrs


def _vectors_in(query: Any) -> int:
    """Query vectors in a sync vector search's query: a 2-D array or a list of vectors is a batch."""
    shape = getattr(query, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) == 2 else 1
    if isinstance(query, list) and query and not isinstance(query[0], (int, float)):
        return len(query)
    return 1


def _describe_query(query: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Attributes:
    """An async query (``AsyncVectorQuery``, ``AsyncFTSQuery``, ``AsyncHybridQuery``), read from the request it
    would send (an attribute read on the native query, microseconds)."""
    attrs: Attributes = {sc.DB_OPERATION_NAME: OPERATION}
    _table_name(attrs, getattr(query, "_table", None))
    request = _request(query)
    limit = getattr(request, "limit", None)
    attrs[sc.GEN_AI_REQUEST_TOP_K] = limit if _positive(limit) else DEFAULT_LIMIT
    vectors = getattr(request, "query_vector", None)
    if vectors:  # vector and hybrid queries
        distance = getattr(request, "distance_type", None)
        attrs[sc.RAG_RETRIEVAL_DISTANCE] = distance if isinstance(distance, str) and distance else DEFAULT_DISTANCE
        if isinstance(vectors, Sequence) and len(vectors) > 1:
            attrs[sc.RAG_RETRIEVAL_QUERIES] = len(vectors)
    return attrs


def _request(query: Any) -> Any:
    try:
        return query._inner.to_query_request()
    except Exception:  # a release without it: the span goes without the limit and distance it would give
        return None


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# -- what a search returned ------------------------------------------------------------------------
def _read_nothing(result: Any, query: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found | None:
    """``to_batches``: the reader is the application's to consume, not read here."""
    return None


def _read_table(result: Any, query: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found:
    """The Arrow table ``to_arrow`` returns: its rows, the statistics of its ranking score column and, when
    wanted, its first rows as documents. Any other shape is not understood: raised, so it is reported once."""
    import pyarrow as pa  # type: ignore[import-untyped]

    if not isinstance(result, pa.Table):
        raise TypeError(f"a LanceDB search returned {type(result).__name__}, not a pyarrow.Table")
    count = result.num_rows
    names = result.column_names
    scores: list[float | None] | None = None
    distances = False
    for column, is_distance in _SCORE_COLUMNS:
        if column in names:
            values = result.column(column)
            if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
                raise TypeError(f"LanceDB's {column} column is {values.type}, not a number")
            scores = values.slice(0, hits.MAX_SCORED_HITS).to_pylist()
            distances = is_distance
            break
    documents = _documents(result, names, scores) if count and _STORE.wants_documents() else None
    return Found(count, score_stats(scores) if scores else None, distances=distances, documents=documents)


def _documents(result: Any, names: list[str], scores: list[float | None] | None) -> list[hits.Document]:
    """The first rows as documents (as many as a span keeps): id, score and text columns where present."""
    rows = min(result.num_rows, MAX_DOCUMENTS_ON_SPAN)
    ids = _first(result, names, _ID_COLUMNS, rows)
    texts = _first(result, names, _TEXT_COLUMNS, rows)
    found = []
    for i in range(rows):
        doc_id = ids[i] if ids is not None else None
        text = texts[i] if texts is not None else None
        found.append(hits.Document(id=None if doc_id is None else str(doc_id),
                                   score=scores[i] if scores is not None and i < len(scores) else None,
                                   text=text if isinstance(text, str) else None))
    return found


def _first(result: Any, names: list[str], candidates: tuple[str, ...], rows: int) -> list[Any] | None:
    for column in candidates:
        if column in names:
            return result.column(column).slice(0, rows).to_pylist()  # type: ignore[no-any-return]
    return None


# -- wrappers --------------------------------------------------------------------------------------
Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]
AsyncWrap = Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]


def _sync_search(searching: Wrap) -> Wrap:
    """A sync builder's search method: a retrieval step, unless it is a leg of a running hybrid search."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        searched = searching(original)

        @functools.wraps(original)
        def search(builder: Any, *args: Any, **kwargs: Any) -> Any:
            if _hybrids:
                context = _hybrid_context(builder)
                if context is not None:
                    token = otel_context.attach(context)
                    try:
                        return original(builder, *args, **kwargs)
                    finally:
                        otel_context.detach(token)
            return searched(builder, *args, **kwargs)

        return search

    return wrap


def _async_search(searching: AsyncWrap, retrievals: tuple[type, ...]) -> AsyncWrap:
    """An async query's search method, defined for every query: a retrieval step for vector, full-text and
    hybrid queries, the original call for plain scans and takes."""

    def wrap(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        searched = searching(original)

        @functools.wraps(original)
        async def search(query: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(query, retrievals):
                return await searched(query, *args, **kwargs)
            return await original(query, *args, **kwargs)

        return search

    return wrap


# Sync hybrid searches running now, each with the context it runs its legs in (its own step's, when it has one):
# LanceHybridQueryBuilder.to_arrow runs the vector and full-text legs on a ThreadPoolExecutor, which does not
# carry the caller's context into its threads. Keyed by a token per run: one builder may run twice at once.
_hybrids: dict[object, tuple[Any, otel_context.Context]] = {}
_hybrids_lock = threading.Lock()


def _hybrid_context(leg: Any) -> otel_context.Context | None:
    """The context of the running hybrid search whose leg ``leg`` is (its ``_vector_query`` / ``_fts_query``)."""
    with _hybrids_lock:
        running = list(_hybrids.values())
    for hybrid, context in running:
        if getattr(hybrid, "_vector_query", None) is leg or getattr(hybrid, "_fts_query", None) is leg:
            return context
    return None


def _hybrid_search(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def run(builder: Any, *args: Any, **kwargs: Any) -> Any:
        key = object()
        with _hybrids_lock:
            _hybrids[key] = (builder, otel_context.get_current())
        try:
            return original(builder, *args, **kwargs)
        finally:
            with _hybrids_lock:
                _hybrids.pop(key, None)

    return _STORE.searching(_describe_builder, _read_table)(run)


# -- writes ----------------------------------------------------------------------------------------
# Set while an instrumented add runs: a sync add runs the async one, which must not count the rows again.
_adding_now: ContextVar[bool] = ContextVar("ragotel_lancedb_adding", default=False)


def _rows(data: Any) -> int | None:
    """Rows in ``add``'s data where that is known without reading it."""
    if isinstance(data, (list, tuple)):
        return len(data)
    for name in ("num_rows", "height"):  # Arrow tables and batches; polars frames
        value = getattr(data, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    shape = getattr(data, "shape", None)  # pandas frames
    if isinstance(shape, tuple) and shape and isinstance(shape[0], int):
        return shape[0]
    return None


def _count_add(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        _STORE.written(_rows(args[0] if args else kwargs.get("data")))
    except Exception as exc:
        report_internal_error("counting a lancedb write", exc)


def _adding(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def add(table: Any, *args: Any, **kwargs: Any) -> Any:
        if _adding_now.get():
            return original(table, *args, **kwargs)
        token = _adding_now.set(True)
        try:
            result = original(table, *args, **kwargs)
        finally:
            _adding_now.reset(token)
        _count_add(args, kwargs)
        return result

    return add


def _adding_async(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def add(table: Any, *args: Any, **kwargs: Any) -> Any:
        if _adding_now.get():
            return await original(table, *args, **kwargs)
        token = _adding_now.set(True)
        try:
            result = await original(table, *args, **kwargs)
        finally:
            _adding_now.reset(token)
        _count_add(args, kwargs)
        return result

    return add


def _count_merge(result: Any) -> None:
    """Rows a merge insert wrote: inserted and updated, as its ``MergeResult`` says."""
    try:
        written = sum(n for n in (getattr(result, "num_inserted_rows", None), getattr(result, "num_updated_rows", None))
                      if isinstance(n, int))
        _STORE.written(written)
    except Exception as exc:
        report_internal_error("counting a lancedb merge", exc)


def _merging(original: Callable[..., Any]) -> Callable[..., Any]:
    """``LanceMergeInsertBuilder.execute``: the result for a sync table, a coroutine to await for an async one."""

    @functools.wraps(original)
    def execute(builder: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(builder, *args, **kwargs)
        if inspect.isawaitable(result):
            return _merged(result)
        _count_merge(result)
        return result

    return execute


async def _merged(pending: Awaitable[Any]) -> Any:
    result = await pending
    _count_merge(result)
    return result
