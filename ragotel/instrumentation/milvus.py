"""Retrieval spans and metrics for Milvus searches, and index writes, with no code change.

::

    import ragotel

    ragotel.instrument_milvus()   # or, with no code: opentelemetry-instrument (ragotel_milvus)
    found = client.search("docs", data=[vector], limit=4)   # span "retrieval milvus"

Every ``MilvusClient.search`` and ``AsyncMilvusClient.search`` (a Milvus server, Zilliz Cloud, or Milvus Lite
through a ``.db`` URI) is a retrieval step: span ``retrieval milvus`` with ``db.system.name=milvus``,
``db.collection.name``, ``db.operation.name=search``, ``server.address`` / ``server.port`` for a client of a server
(none for Milvus Lite), ``gen_ai.request.top_k`` (``limit``, the client's default 10 where not given), the queries in
the call (vectors, texts or ids searched), the results returned over every query and their score statistics.
A client session's ``search`` runs through its client's, so it is one step too.

Which way the scores are better is the metric's: ``COSINE``, ``IP`` and ``BM25`` give similarities, ``L2``,
``HAMMING`` and ``JACCARD`` distances (``rag.retrieval.score.kind=distance``, so no similarity threshold judges
them). The metric is read from ``search_params["metric_type"]`` where the call names it (and then also put on the
span as ``rag.retrieval.distance``); otherwise from the order Milvus returns each query's hits in, best first, and
where that cannot tell (one hit, equal scores), from what the last search of the same collection and vector field
said; with nothing to go on, as similarities, the metric ``create_collection`` uses by default. No extra request is
made for it.

Documents (id, score, and the text under an output field ``text``, ``content``, ``page_content`` or ``document``)
are read only when content capture or OpenInference wants them; vectors and query texts never are. Counting and
scoring the hits reads no field, so the vector and dynamic fields pymilvus decodes only when a hit is read stay
undecoded; with documents wanted the texts are read as the application reads them, which decodes those fields.

Milvus Lite (milvus-lite 3) runs in the application's process, searching with FAISS on its own threads: those FAISS
calls are left to this step (``ragotel_faiss`` does not trace them), so a search is one span with FAISS on as well.

``insert`` and ``upsert`` (sync and async) count their rows in ``rag.index.chunks.written``. The server attributes
come from the URI a client is made with: a client made before ``instrument_milvus()`` has none.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard
from urllib.parse import urlsplit

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core.safe import report_internal_error
from ragotel._genai import hits
from ragotel._steps.step import MAX_DOCUMENTS_ON_SPAN
from ragotel.instrumentation._base import Arguments, Instrumentor
from ragotel.instrumentation._vector import Found, ScoreOrders, Server, VectorStore, payload_text, score_stats

__all__ = ["MilvusInstrumentor", "instrument_milvus", "uninstrument_milvus"]

DATA_SOURCE: Final = "milvus"
_STORE: Final = VectorStore(DATA_SOURCE, "milvus")

# pymilvus' port for a URI that names none (443 for https).
_DEFAULT_PORT: Final = 19530
# Milvus' metrics by the way their scores go; a metric in neither is read from the order of the hits.
_SIMILARITIES: Final = frozenset({"COSINE", "IP", "BM25", "MAX_SIM", "MAX_SIM_COSINE", "MAX_SIM_IP"})
_DISTANCES: Final = frozenset({"L2", "HAMMING", "JACCARD", "MAX_SIM_L2", "MAX_SIM_HAMMING", "MAX_SIM_JACCARD"})


class MilvusInstrumentor(Instrumentor):
    """Milvus searches as retrieval steps, as an OpenTelemetry instrumentor (``ragotel_milvus``).

    Patches ``search``, ``insert``, ``upsert`` and ``__init__`` (which reads the URI: the server) of
    ``MilvusClient`` and, where the installed pymilvus has it, ``AsyncMilvusClient``; ``uninstrument()`` puts them
    back. A method a pymilvus release no longer has is left out, with one WARNING.
    """

    label = "instrument_milvus()"
    modules = ("pymilvus",)

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("pymilvus >= 2.4",)

    def _instrument(self, **kwargs: Any) -> None:
        # The module, not its names: pymilvus may be absent where the types are checked.
        pymilvus: Any = importlib.import_module("pymilvus")
        clients = [pymilvus.MilvusClient]
        if getattr(pymilvus, "AsyncMilvusClient", None) is not None:  # pymilvus 2.5 and later
            clients.append(pymilvus.AsyncMilvusClient)
        self._patch_each((cls, name, wrap) for cls in clients
                         for name, wrap in (("__init__", _remembering), ("search", _searching),
                                            ("insert", _writing), ("upsert", _writing)))


def instrument_milvus() -> None:
    """Instrument every Milvus client (see ``ragotel.instrumentation.milvus``); a second call does nothing."""
    MilvusInstrumentor.turn_on()


def uninstrument_milvus() -> None:
    """Undo ``instrument_milvus``."""
    MilvusInstrumentor.turn_off()


# -- the server a client talks to ------------------------------------------------------------------
Key = tuple[Any, ...]


_servers: weakref.WeakKeyDictionary[Any, Server] = weakref.WeakKeyDictionary()


def _remembering(original: Callable[..., Any]) -> Callable[..., Any]:
    """``__init__`` that keeps the URI the client was made with: pymilvus 3 rewrites a Milvus Lite URI into the
    loopback address of the server it starts, after which a ``.db`` path and a server on this host look alike."""
    arguments = Arguments(original)

    @functools.wraps(original)
    def init(client: Any, *args: Any, **kwargs: Any) -> None:
        original(client, *args, **kwargs)
        try:
            _servers[client] = _read_server(arguments.get("uri", args, kwargs))
        except Exception as exc:
            report_internal_error("reading a Milvus client's URI", exc)

    return init


def _server(client: Any) -> Server:
    try:
        found = _servers.get(client)
    except TypeError:  # a client that cannot be weakly referenced
        found = None
    return found if found is not None else Server({}, ("client", id(client)))


def _read_server(uri: Any) -> Server:
    if not isinstance(uri, str):
        return Server({}, ("unknown",))
    if uri.endswith(".db"):  # Milvus Lite: a server of the process's own, on a port of its choosing
        return Server({}, ("lite", os.path.abspath(uri)))
    if uri.startswith("unix:"):
        return Server({}, ("unix", uri))
    parsed = urlsplit(uri if "//" in uri else f"//{uri}")
    host = parsed.hostname or "localhost"
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else _DEFAULT_PORT)
    except ValueError:  # a port that is no number: pymilvus refuses the URI
        return Server({sc.SERVER_ADDRESS: host}, ("server", host, None))
    return Server({sc.SERVER_ADDRESS: host, sc.SERVER_PORT: port}, ("server", host, port))


# -- searches --------------------------------------------------------------------------------------
def _searching(original: Callable[..., Any]) -> Callable[..., Any]:
    """The wrapper of ``search``: ``VectorStore``'s, with readers that know its arguments."""
    arguments = Arguments(original)

    def describe(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        return _describe(arguments, client, args, kwargs)

    def read(result: Any, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found | None:
        return _read(result, _key(arguments, client, args, kwargs), _metric(arguments, args, kwargs))

    if inspect.iscoroutinefunction(original):
        return _STORE.searching_async(describe, read)(original)
    return _STORE.searching(describe, read)(original)


def _describe(arguments: Arguments, client: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    """Collection, server, ``top_k``, the queries, and the metric where the call names it."""
    attrs: dict[str, AttributeValue] = {sc.DB_OPERATION_NAME: "search", **_server(client).attributes}
    collection = arguments.get("collection_name", args, kwargs)
    if isinstance(collection, str):
        attrs[sc.DB_COLLECTION_NAME] = collection
    limit = arguments.get("limit", args, kwargs)
    if _is_int(limit):
        attrs[sc.GEN_AI_REQUEST_TOP_K] = limit
    queries = _queries(arguments.get("data", args, kwargs), arguments.get("ids", args, kwargs))
    if queries is not None:
        attrs[sc.RAG_RETRIEVAL_QUERIES] = queries
    metric = _metric(arguments, args, kwargs)
    if metric is not None:
        attrs[sc.RAG_RETRIEVAL_DISTANCE] = metric.lower()
        if metric in _DISTANCES:
            attrs[sc.RAG_RETRIEVAL_SCORE_KIND] = "distance"
    return attrs


def _queries(data: Any, ids: Any) -> int | None:
    """Queries in one search, as pymilvus counts them (``nq``): the rows of ``data`` (vectors, texts, a 2-d array
    or a sparse matrix), else the primary keys of a search by ids."""
    if data is None:
        if ids is None:
            return None
        return len(ids) if isinstance(ids, (list, tuple)) else 1
    shape = getattr(data, "shape", None)
    if isinstance(shape, tuple) and len(shape) == 2 and _is_int(shape[0]):
        return int(shape[0])
    return len(data) if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) else None


def _metric(arguments: Arguments, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The metric the call names (``search_params={"metric_type": "L2"}``), upper case as Milvus spells it; none
    where a ranker scores the hits, since the scores are then the ranker's."""
    if arguments.get("ranker", args, kwargs) is not None or arguments.get("function_chains", args, kwargs):
        return None
    params = arguments.get("search_params", args, kwargs)
    metric = params.get("metric_type") if isinstance(params, Mapping) else None
    return metric.upper() if isinstance(metric, str) and metric else None


def _key(arguments: Arguments, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Key:
    """Where a search's score order is remembered: the store, collection and vector field, and whether a ranker
    scored it."""
    ranked = arguments.get("ranker", args, kwargs) is not None or bool(arguments.get("function_chains", args, kwargs))
    return (_server(client).where, arguments.get("collection_name", args, kwargs),
            arguments.get("anns_field", args, kwargs) or None, ranked)


# -- what a search returned ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Row:
    """One query's hits: their ids and scores (best first), and the hits themselves, read only for documents."""

    ids: Sequence[Any]
    scores: list[float | None]
    hits: Sequence[Any]


def _rows(result: Any) -> list[_Row] | None:
    """The rows of a search result, one per query: pymilvus 2.5+ ``HybridHits`` (with ``ids`` and ``distances``),
    or lists of hit dicts (pymilvus 2.4); ``None`` for another shape."""
    if not isinstance(result, list):
        return None
    rows = []
    for row in result:
        ids, distances = getattr(row, "ids", None), getattr(row, "distances", None)
        if _listed(ids) and _listed(distances):
            rows.append(_Row(ids, [_score(d) for d in distances], row))
            continue
        found = _stored(row)
        if found is None or not all(isinstance(hit, Mapping) for hit in found):
            return None
        rows.append(_Row([_hit_id(hit) for hit in found], [_score(hit.get("distance")) for hit in found], found))
    return rows


def _read(result: Any, key: Key, metric: str | None) -> Found | None:
    rows = _rows(result)
    if rows is None:
        return None
    scores = [score for row in rows for score in row.scores]
    distances = _distances(key, metric, [row.scores for row in rows])
    documents = _documents(rows) if VectorStore.wants_documents() else None
    return Found(sum(len(row.ids) for row in rows), score_stats(scores), distances=distances, documents=documents)


_ORDERS: Final = ScoreOrders()


def _distances(key: Key, metric: str | None, runs: Sequence[Sequence[float | None]]) -> bool:
    """Whether these scores are distances: from the metric the call names, else from the order of a query's hits,
    else from the last search of ``key`` that could tell."""
    known = True if metric in _DISTANCES else False if metric in _SIMILARITIES else None
    return _ORDERS.distances(key, runs, known)


def _documents(rows: Sequence[_Row]) -> list[hits.Document]:
    """The hits as documents (as many as a span keeps): id, score and the text of an output field. Their texts are
    read as the application reads them: a dynamic field's (and so every field left to decode) decoded first."""
    found: list[hits.Document] = []
    for row in rows:
        listed = list(row.hits)
        for index, hit_id in enumerate(row.ids):
            if len(found) == MAX_DOCUMENTS_ON_SPAN:
                return found
            text = _text(listed[index]) if index < len(listed) else None
            found.append(hits.Document(None if hit_id is None else str(hit_id), row.scores[index], text))
    return found


def _stored(row: Any) -> list[Any] | None:
    """A row's hits as stored, read past the ``__iter__`` of pymilvus' ``HybridHits``, which decodes the row's
    vector and dynamic fields first: work left to the application, which may never read them."""
    return list(list.__iter__(row)) if isinstance(row, list) else None


def _hit_id(hit: Mapping[str, Any]) -> Any:
    hit_id = hit.get("id")
    if hit_id is None:
        hit_id = getattr(hit, "id", None)  # pymilvus' Hit keys its primary key by the field's name
    return hit_id


def _text(hit: Any) -> str | None:
    """The text of a hit's output field: under its ``entity`` (or on the hit itself, as some releases flatten it)."""
    if not isinstance(hit, Mapping):
        return None
    return payload_text(hit.get("entity")) or payload_text(hit)


def _score(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _listed(value: Any) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- writes ----------------------------------------------------------------------------------------
def _writing(original: Callable[..., Any]) -> Callable[..., Any]:
    arguments = Arguments(original)

    def count(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
        """Rows in ``insert(collection, data)`` / ``upsert``: a list of rows, or one row as a dict."""
        data = arguments.get("data", args, kwargs)
        if isinstance(data, Mapping):
            return 1
        return len(data) if isinstance(data, (list, tuple)) else None

    if inspect.iscoroutinefunction(original):
        return _STORE.writing_async(count)(original)
    return _STORE.writing(count)(original)
