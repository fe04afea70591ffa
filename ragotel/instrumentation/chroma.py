"""Retrieval spans and metrics for Chroma queries, and index writes, with no code change.

::

    import ragotel

    ragotel.instrument_chroma()              # or, with no code: opentelemetry-instrument (ragotel_chroma)
    found = collection.query(query_embeddings=[vector], n_results=4)   # span "retrieval chroma"

Every ``Collection.query`` and ``AsyncCollection.query`` (local ``PersistentClient``/``EphemeralClient``,
``HttpClient``, ``AsyncHttpClient``, ``CloudClient``) is a retrieval step: span ``retrieval chroma`` with
``gen_ai.operation.name=retrieval``, ``gen_ai.data_source.id=chroma``, ``db.system.name=chroma``,
``db.collection.name``, ``db.operation.name=query``, ``db.namespace`` (``tenant|database``, the conventions'
separator between namespace components), ``server.address``/``server.port`` for a client of a Chroma server,
``gen_ai.request.top_k`` (``n_results``), the queries in the batch, results returned over every query and
statistics of the distances Chroma returns (``rag.retrieval.score.kind=distance``: every Chroma space, ``ip``
included, returns a distance, lower is better), and ``rag.retrieval.distance``: the collection's space (``l2``,
``cosine``, ``ip``) as its configuration, already on the collection object, names it; no extra request is made.
Ids, distances and document texts go onto the span only under content capture (or ids and distances for
OpenInference).

Inside the application's own retrieval step the query is that step's sub-step (its span and duration, the
documents left to the enclosing step); inside a step that says it is this search (``data_source="chroma"``)
it makes no second span, its facts going onto that step's span. Over HTTP the client's requests run with the
retrieval span current, so an HTTP client instrumentation's spans are its children.

``add`` and ``upsert`` (sync and async) count their ids in ``rag.index.chunks.written``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._genai import hits
from ragotel._steps.step import MAX_DOCUMENTS_ON_SPAN
from ragotel.instrumentation._base import Arguments, Instrumentor
from ragotel.instrumentation._vector import Found, VectorStore, score_stats, server_attributes

__all__ = ["ChromaInstrumentor", "instrument_chroma", "uninstrument_chroma"]

DATA_SOURCE: Final = "chroma"
# Chroma's space when a collection's configuration names none.
_DEFAULT_SPACE: Final = "l2"
# The query inputs, each a batch (or one) query: whichever is given says how many queries the call makes.
_QUERY_INPUTS: Final = ("query_embeddings", "query_texts", "query_images", "query_uris")
# The server API classes that talk to a Chroma server over HTTP; set by ``_instrument``.
_http_clients: tuple[type[Any], ...] = ()


class ChromaInstrumentor(Instrumentor):
    """Chroma queries as retrieval steps, as an OpenTelemetry instrumentor (``ragotel_chroma``).

    Patches ``query``, ``add`` and ``upsert`` of ``chromadb``'s ``Collection`` and ``AsyncCollection``;
    ``uninstrument()`` puts them back. A method a chromadb release no longer has is left out, with one WARNING.
    """

    label = "instrument_chroma()"
    modules = ("chromadb",)

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("chromadb >= 1.0",)

    def _instrument(self, **kwargs: Any) -> None:
        global _http_clients
        from chromadb.api.models.AsyncCollection import AsyncCollection
        from chromadb.api.models.Collection import Collection as ChromaCollection

        try:
            from chromadb.api.base_http_client import BaseHTTPClient

            _http_clients = (BaseHTTPClient,)
        except ImportError:
            _http_clients = ()  # queries are still steps; only server.address/port go missing
        self._patch_each((
            (ChromaCollection, "query", _querying),
            (AsyncCollection, "query", _querying_async),
            (ChromaCollection, "add", _writing),
            (ChromaCollection, "upsert", _writing),
            (AsyncCollection, "add", _writing_async),
            (AsyncCollection, "upsert", _writing_async),
        ))


def instrument_chroma() -> None:
    """Instrument every Chroma collection (see ``ragotel.instrumentation.chroma``); a second call does nothing."""
    ChromaInstrumentor.turn_on()


def uninstrument_chroma() -> None:
    """Undo ``instrument_chroma``."""
    ChromaInstrumentor.turn_off()


_STORE: Final = VectorStore(DATA_SOURCE, DATA_SOURCE)


# -- arguments -------------------------------------------------------------------------------------
def _batch(value: Any, *, embeddings: bool = False) -> int | None:
    """How many records (or queries) ``value`` holds, read as Chroma reads one-or-many arguments: a list is a
    batch, anything else one; embeddings are a batch when they are rows (a 2-d array, a list of vectors)."""
    if value is None:
        return None
    if embeddings:
        ndim = getattr(value, "ndim", None)
        if isinstance(ndim, int):
            return 1 if ndim == 1 else len(value)
        if isinstance(value, list) and value and (isinstance(value[0], (int, float))
                                                  or getattr(value[0], "ndim", None) == 0):
            return 1  # one vector given as a list of numbers (or of numpy scalars)
    return len(value) if isinstance(value, list) else 1


# -- queries ---------------------------------------------------------------------------------------
def _describer(parameters: Arguments) -> Callable[[Any, tuple[Any, ...], dict[str, Any]],
                                                      dict[str, AttributeValue]]:
    def describe(collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        attrs = _collection_attributes(collection)
        attrs[sc.DB_OPERATION_NAME] = "query"
        attrs[sc.RAG_RETRIEVAL_SCORE_KIND] = "distance"
        n_results = parameters.get("n_results", args, kwargs)
        if isinstance(n_results, int) and not isinstance(n_results, bool):
            attrs[sc.GEN_AI_REQUEST_TOP_K] = n_results
        for name in _QUERY_INPUTS:
            queries = _batch(parameters.get(name, args, kwargs), embeddings=name == "query_embeddings")
            if queries is not None:
                attrs[sc.RAG_RETRIEVAL_QUERIES] = queries
                break
        return attrs

    return describe


def _collection_attributes(collection: Any) -> dict[str, AttributeValue]:
    """What the collection object already holds: its name, tenant and database, space and server. Each fact
    is read only when it has the expected type, so a reshaped model drops a fact, not the span."""
    attrs: dict[str, AttributeValue] = {}
    name = getattr(collection, "name", None)
    if isinstance(name, str):
        attrs[sc.DB_COLLECTION_NAME] = name
    tenant, database = getattr(collection, "tenant", None), getattr(collection, "database", None)
    if isinstance(tenant, str) and isinstance(database, str):
        attrs[sc.DB_NAMESPACE] = f"{tenant}|{database}"
    space = _space(collection)
    if space is not None:
        attrs[sc.RAG_RETRIEVAL_DISTANCE] = space
    client: Any = getattr(collection, "_client", None)
    if _http_clients and isinstance(client, _http_clients):
        settings = client.get_settings()
        attrs.update(server_attributes(getattr(settings, "chroma_server_host", None),
                                       getattr(settings, "chroma_server_http_port", None)))
    return attrs


def _space(collection: Any) -> str | None:
    """The collection's distance function: its configuration's HNSW (local, single-node) or SPANN (distributed)
    space, else the legacy ``hnsw:space`` metadata, else Chroma's default, L2."""
    configuration = getattr(collection, "configuration_json", None)
    if isinstance(configuration, Mapping):
        for index in ("hnsw", "spann"):
            params = configuration.get(index)
            if isinstance(params, Mapping) and isinstance(params.get("space"), str):
                return str(params["space"])
    metadata = getattr(collection, "metadata", None)
    if isinstance(metadata, Mapping) and isinstance(metadata.get("hnsw:space"), str):
        return str(metadata["hnsw:space"])
    return _DEFAULT_SPACE if isinstance(configuration, Mapping) else None


def _read(result: Any, collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found | None:
    """A ``QueryResult``: ``ids`` one list per query, ``distances`` (when included) alongside; documents only when
    wanted (``documents`` texts when the query included them). ``None`` for a result that is no mapping."""
    if not isinstance(result, Mapping):
        return None
    ids: Sequence[Sequence[Any]] = result["ids"]
    count = sum(len(row) for row in ids)
    distance_rows: Sequence[Sequence[Any]] | None = result.get("distances")
    distances = ([None if d is None else float(d) for row in distance_rows for d in row]
                 if distance_rows is not None else [])
    documents: list[hits.Document] | None = None
    if VectorStore.wants_documents():
        text_rows: Sequence[Sequence[Any]] | None = result.get("documents")
        documents = []
        for i, row in enumerate(ids):
            for j, doc_id in enumerate(row):
                if len(documents) == MAX_DOCUMENTS_ON_SPAN:  # the span keeps no more
                    break
                distance = distance_rows[i][j] if distance_rows is not None else None
                text = text_rows[i][j] if text_rows is not None else None
                documents.append(hits.Document(str(doc_id), None if distance is None else float(distance),
                                               text if isinstance(text, str) else None))
    return Found(count, score_stats(distances), distances=True, documents=documents)


def _querying(original: Callable[..., Any]) -> Callable[..., Any]:
    return _STORE.searching(_describer(Arguments(original)), _read)(original)


def _querying_async(original: Callable[..., Any]) -> Callable[..., Any]:
    return _STORE.searching_async(_describer(Arguments(original)), _read)(original)


# -- writes ----------------------------------------------------------------------------------------
def _counter(original: Callable[..., Any]) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], int | None]:
    parameters = Arguments(original)

    def count(collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
        """Records in ``add(ids, ...)`` / ``upsert(ids, ...)``: its ids."""
        return _batch(parameters.get("ids", args, kwargs))

    return count


def _writing(original: Callable[..., Any]) -> Callable[..., Any]:
    return _STORE.writing(_counter(original))(original)


def _writing_async(original: Callable[..., Any]) -> Callable[..., Any]:
    return _STORE.writing_async(_counter(original))(original)
