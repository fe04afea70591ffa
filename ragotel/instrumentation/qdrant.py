"""Retrieval spans and metrics for Qdrant searches, and index writes, with no code change.

::

    import ragotel

    ragotel.instrument_qdrant()   # or, with no code: opentelemetry-instrument (ragotel_qdrant)
    found = client.query_points("docs", query=vector, limit=4)   # span "retrieval qdrant"

Every search of ``QdrantClient`` and ``AsyncQdrantClient`` (``query_points``, ``query_batch_points``,
``query_points_groups``, and ``search*`` / ``recommend*`` / ``discover*`` on the client releases that still have
them) is a retrieval step: span ``retrieval qdrant`` with ``db.system.name=qdrant``, ``db.collection.name``,
``db.operation.name`` (the method), ``server.address`` / ``server.port`` for a client of a server (none in local
mode), ``gen_ai.request.top_k`` (``limit``, the client's default where not given), the queries of a batch, the
results returned (points; hits over every group of a groups search) and their score statistics. Only the public
clients are patched: local mode (``QdrantClient(":memory:")``, ``QdrantClient(path=...)``) runs through them, so a
search is one step whatever the mode. ``EdgeShard.query`` / ``query_batch`` / ``search`` of qdrant-edge (an
in-process shard) are retrieval steps the same way.

Which way the scores are better depends on the collection's distance (Cosine and Dot: similarities, higher is
better; Euclid and Manhattan: distances, lower is better), which a search answer does not say and which is never
asked of the server for it. It is read from the order Qdrant returns the hits in, best first: ascending scores
are distances (``rag.retrieval.score.kind=distance``, so no similarity threshold judges them). An answer that
cannot tell (one hit, or equal scores) takes what the last answer that could tell said for the same collection,
vector name and kind of query; with none, the scores are read as similarities, the default reading.

Documents (id, score, and the text under the payload's ``text``, ``content``, ``page_content`` or ``document``
key) are read only when content capture or OpenInference wants them; vectors and query text never are.

``upsert``, ``upload_points``, ``upload_collection`` and the upserts of ``batch_update_points`` count their points
in ``rag.index.chunks.written``; points given as a generator or another stream are not counted, since counting
them would consume them.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._genai import hits
from ragotel._steps.step import MAX_DOCUMENTS_ON_SPAN
from ragotel.instrumentation._base import Arguments, Instrumentor
from ragotel.instrumentation._vector import Found, ScoreOrders, Server, VectorStore, payload_text, score_stats

__all__ = ["QdrantInstrumentor", "instrument_qdrant", "uninstrument_qdrant"]

DATA_SOURCE: Final = "qdrant"
_STORE: Final = VectorStore(DATA_SOURCE, "qdrant")

# The client's search methods; each is patched only where the installed client class defines it (recent releases
# dropped search*, recommend* and discover* in favour of query_points*).
_SEARCHES: Final = ("query_points", "query_batch_points", "query_points_groups", "search", "search_batch",
                    "search_groups", "recommend", "recommend_batch", "recommend_groups", "discover", "discover_batch")
_EDGE_SEARCHES: Final = ("query", "query_batch", "search")
# Qdrant's own limit for a request that gives none (a QueryRequest of a batch).
_DEFAULT_LIMIT: Final = 10


class QdrantInstrumentor(Instrumentor):
    """Qdrant searches as retrieval steps, as an OpenTelemetry instrumentor (``ragotel_qdrant``).

    Patches the search and write methods of ``QdrantClient`` and ``AsyncQdrantClient`` (and the searches of
    qdrant-edge's ``EdgeShard`` where it is installed); ``uninstrument()`` puts them back.
    """

    label = "instrument_qdrant()"
    modules = ("qdrant_client", "qdrant_edge")

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("qdrant-client >= 1.12",)

    def _instrument(self, **kwargs: Any) -> None:
        from qdrant_client import AsyncQdrantClient, QdrantClient

        for cls in (QdrantClient, AsyncQdrantClient):
            for name in _SEARCHES:
                self._patches.apply(cls, name, _searching(name, _client_describe, _client_keys))
            for name, count in _WRITES.items():
                self._patches.apply(cls, name, _writing(count))
        try:
            import qdrant_edge
        except ImportError:
            return  # qdrant-edge is optional: the clients are instrumented without it
        for name in _EDGE_SEARCHES:
            self._patches.apply(qdrant_edge.EdgeShard, name, _searching(name, _edge_describe, _edge_keys))


def instrument_qdrant() -> None:
    """Instrument every Qdrant client (see ``ragotel.instrumentation.qdrant``); a second call does nothing."""
    QdrantInstrumentor.turn_on()


def uninstrument_qdrant() -> None:
    """Undo ``instrument_qdrant``."""
    QdrantInstrumentor.turn_off()


# -- arguments -------------------------------------------------------------------------------------
Describe = Callable[[str, Arguments, Any, tuple[Any, ...], dict[str, Any]], dict[str, AttributeValue]]
Key = tuple[Any, ...]
"""Where an answer's scores are remembered: (store, collection, vector name, kind of query)."""
Keys = Callable[[str, Arguments, Any, tuple[Any, ...], dict[str, Any]], list[Key | None]]


def _searching(name: str, describe: Describe, keys: Keys) -> Callable[[Any], Any]:
    """The wrapper factory of the search method ``name``: ``VectorStore``'s, with readers that know the
    method's arguments."""

    def wrap(original: Any) -> Any:
        arguments = Arguments(original)

        def described(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
            return describe(name, arguments, instance, args, kwargs)

        def read(result: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found | None:
            answers = _answers(result)
            if answers is None:
                return None
            return _found(answers, keys(name, arguments, instance, args, kwargs))

        if inspect.iscoroutinefunction(original):
            return _STORE.searching_async(described, read)(original)
        return _STORE.searching(described, read)(original)

    return wrap


# -- the client's searches -------------------------------------------------------------------------
_servers: weakref.WeakKeyDictionary[Any, Server] = weakref.WeakKeyDictionary()


def _server(client: Any) -> Server:
    """The client's server, read once from the options it was made with (``init_options``)."""
    try:
        found = _servers.get(client)
        if found is None:
            found = _servers[client] = _read_server(client)
        return found
    except TypeError:  # a client that cannot be hashed or weakly referenced: read every time
        return _read_server(client)


def _read_server(client: Any) -> Server:
    options = getattr(client, "init_options", None)
    if not isinstance(options, Mapping):
        return Server({}, ("client", id(client)))
    location, path = options.get("location"), options.get("path")
    if location == ":memory:":
        return Server({}, ("memory", id(client)))
    if path is not None:
        return Server({}, ("path", str(path)))
    url = options.get("url") or location
    host, port = options.get("host"), options.get("port")
    if isinstance(url, str):
        from urllib3.util import parse_url  # the parser the client uses, so the same reading of the URL

        # "localhost:6333" would read as a scheme; the client makes the same correction.
        parsed = parse_url(f"//{url}" if url.startswith("localhost") else url)
        host, port = parsed.host, parsed.port or port
    if options.get("prefer_grpc"):
        port = options.get("grpc_port")  # the gRPC channel ignores a URL's REST port
    host = host or "localhost"
    attributes: dict[str, AttributeValue] = {sc.SERVER_ADDRESS: str(host)}
    if isinstance(port, int) and not isinstance(port, bool):
        attributes[sc.SERVER_PORT] = port
    return Server(attributes, ("server", str(host), port))


def _client_describe(name: str, arguments: Arguments, client: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    """The span attributes of a client search: collection, method, server, ``top_k`` and a batch's queries."""
    attrs: dict[str, AttributeValue] = {sc.DB_OPERATION_NAME: name, **_server(client).attributes}
    collection = arguments.get("collection_name", args, kwargs)
    if isinstance(collection, str):
        attrs[sc.DB_COLLECTION_NAME] = collection
    requests = arguments.get("requests", args, kwargs) if "requests" in arguments.positions else None
    if requests is None:
        limit = arguments.get("limit", args, kwargs)
        if _is_int(limit):
            attrs[sc.GEN_AI_REQUEST_TOP_K] = limit
    elif isinstance(requests, Sequence):
        attrs[sc.RAG_RETRIEVAL_QUERIES] = len(requests)
        limits = {_limit(request) for request in requests}
        if len(limits) == 1 and _is_int(limit := limits.pop()):
            attrs[sc.GEN_AI_REQUEST_TOP_K] = limit  # one top_k where every query of the batch asks the same
    return attrs


def _limit(request: Any) -> Any:
    limit = getattr(request, "limit", None)
    return _DEFAULT_LIMIT if limit is None else limit


def _client_keys(name: str, arguments: Arguments, client: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> list[Key | None]:
    """Where each query's answer is remembered: one key, or one per request of a batch."""
    where = _server(client).where
    collection = arguments.get("collection_name", args, kwargs)
    if "requests" in arguments.positions:
        requests = arguments.get("requests", args, kwargs)
        if not isinstance(requests, Iterable):
            return []
        return [(where, collection, *_query_kind(name, _query_of(request), getattr(request, "using", None)))
                for request in requests]
    query = arguments.get("query", args, kwargs)
    if query is None:
        query = arguments.get("query_vector", args, kwargs)  # search, search_groups
    return [(where, collection, *_query_kind(name, query, arguments.get("using", args, kwargs)))]


def _query_of(request: Any) -> Any:
    """The query of a batch's request: ``query`` (QueryRequest) or ``vector`` (SearchRequest)."""
    query = getattr(request, "query", None)
    return getattr(request, "vector", None) if query is None else query


# Queries the collection's distance scores, as far as the order of the answer goes: a point id or a vector,
# given as it is or as a NearestQuery / a vector given by name.
_NEAREST: Final = frozenset({"list", "tuple", "ndarray", "int", "str", "UUID", "SparseVector", "Document", "Image",
                             "InferenceObject", "NearestQuery", "NamedVector", "NamedSparseVector"})


def _query_kind(method: str, query: Any, using: Any) -> tuple[Any, str]:
    """The vector name and the kind of query: answers of different kinds are ordered by different scores (a
    fusion's rank score, a formula, the collection's distance), so each kind is remembered on its own."""
    if using is None:
        using = getattr(query, "name", None)  # NamedVector: search(query_vector=NamedVector(name=..., vector=...))
        if using is None and isinstance(query, tuple) and len(query) == 2 and isinstance(query[0], str):
            using = query[0]  # search(query_vector=("name", vector))
    if method.startswith(("recommend", "discover")):
        return using, method.removesuffix("_batch").removesuffix("_groups")
    kind = type(query).__name__
    return using, "nearest" if kind in _NEAREST or (query is None and method.startswith("search")) else kind


# -- qdrant-edge -----------------------------------------------------------------------------------
def _edge_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The one request argument of ``EdgeShard.query(query)`` / ``query_batch(request)`` / ``search(search)``."""
    if args:
        return args[0]
    return next(iter(kwargs.values()), None)


def _edge_describe(name: str, arguments: Arguments, shard: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {sc.DB_OPERATION_NAME: name}
    request = _edge_request(args, kwargs)
    queries = getattr(request, "queries", None)
    if name == "query_batch" and isinstance(queries, Sequence):
        attrs[sc.RAG_RETRIEVAL_QUERIES] = len(queries)
        limits = {getattr(query, "limit", None) for query in queries}
        if len(limits) == 1 and _is_int(limit := limits.pop()):
            attrs[sc.GEN_AI_REQUEST_TOP_K] = limit
    elif _is_int(limit := getattr(request, "limit", None)):
        attrs[sc.GEN_AI_REQUEST_TOP_K] = limit
    return attrs


def _edge_keys(name: str, arguments: Arguments, shard: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> list[Key | None]:
    """An edge request's query reads back as its base class (``Query``, ``Fusion``, ``OrderBy``, ...), without its
    vector name: the kind is that class."""
    request = _edge_request(args, kwargs)
    where = ("edge", id(shard))
    requests = getattr(request, "queries", None) if name == "query_batch" else [request]
    if not isinstance(requests, Iterable):
        return []
    return [(where, type(getattr(query, "query", None)).__name__) for query in requests]


# -- what a search returned ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Answer:
    """One query's answer: its points, their scores, and the runs of scores Qdrant ordered best first (the answer
    itself; for a groups search, each group's hits and the groups' best hits)."""

    points: Sequence[Any]
    scores: Sequence[float | None]
    runs: Sequence[Sequence[float | None]]


def _answers(result: Any) -> list[_Answer] | None:
    """The answers in ``result``: a QueryResponse, a GroupsResult, or a list of points, of QueryResponses (a batch)
    or of lists of points (a batch of the older searches, qdrant-edge's ``query_batch``); ``None`` for another
    shape."""
    if isinstance(result, list):
        if not result:
            return []
        first = result[0]
        if isinstance(first, list):
            return [_answer(points) for points in result]
        if hasattr(first, "points"):
            return [_answer(response.points) for response in result]
        if hasattr(first, "score"):
            return [_answer(result)]
        return None
    points = getattr(result, "points", None)
    if isinstance(points, list):
        return [_answer(points)]
    groups = getattr(result, "groups", None)
    if isinstance(groups, list):
        every: list[Any] = []
        runs: list[list[float | None]] = []
        for group in groups:
            every.extend(group.hits)
            runs.append([point.score for point in group.hits])
        runs.append([run[0] for run in runs if run])  # the groups come best group first
        return [_Answer(every, [score for run in runs[:-1] for score in run], runs)]
    return None


def _answer(points: Sequence[Any]) -> _Answer:
    scores = [point.score for point in points]
    return _Answer(points, scores, (scores,))


def _found(answers: list[_Answer], keys: list[Key | None]) -> Found:
    """What the search found: every answer's points and scores, read as distances where an answer's order (or,
    where it cannot tell, what was remembered for its query) says so."""
    if len(answers) == 1:
        points, scores = answers[0].points, answers[0].scores
    else:
        points = [point for answer in answers for point in answer.points]
        scores = [score for answer in answers for score in answer.scores]
    distances = False
    for index, answer in enumerate(answers):
        distances = _distances(keys[index] if index < len(keys) else None, answer.runs) or distances
    documents = _documents(points) if VectorStore.wants_documents() else None
    return Found(len(points), score_stats(scores), distances=distances, documents=documents)


_ORDERS: Final = ScoreOrders()
# Queries whose answers are not ordered by score (a sample, an order by a payload field).
_UNORDERED: Final = frozenset({"SampleQuery", "OrderByQuery", "Sample", "OrderBy"})


def _distances(key: Key | None, runs: Sequence[Sequence[float | None]]) -> bool:
    """Whether this answer's scores are distances: from its own order where it can tell, else from the last
    answer for ``key`` that could."""
    if key is not None and key[-1] in _UNORDERED:
        return False
    return _ORDERS.distances(key, runs)


def _documents(points: Sequence[Any]) -> list[hits.Document]:
    """The hits as documents (as many as a span keeps): id, score and the payload's text."""
    found = []
    for point in points[:MAX_DOCUMENTS_ON_SPAN]:
        point_id = getattr(point, "id", None)
        score = getattr(point, "score", None)
        found.append(hits.Document(None if point_id is None else str(point_id),
                                   float(score) if isinstance(score, (int, float)) else None,
                                   payload_text(getattr(point, "payload", None))))
    return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- writes ----------------------------------------------------------------------------------------
Count = Callable[[Arguments, tuple[Any, ...], dict[str, Any]], int | None]


def _writing(count: Count) -> Callable[[Any], Any]:
    """The wrapper factory of a write method: its points counted once it returned. ``AsyncQdrantClient``'s
    uploads are plain methods (they run their own workers), its ``upsert`` a coroutine."""

    def wrap(original: Any) -> Any:
        arguments = Arguments(original)

        def counted(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
            return count(arguments, args, kwargs)

        if inspect.iscoroutinefunction(original):
            return _STORE.writing_async(counted)(original)
        return _STORE.writing(counted)(original)

    return wrap


def _points(points: Any) -> int | None:
    """Points in ``upsert(points=...)``: a list of points or a Batch; a stream is not counted."""
    ids = getattr(points, "ids", None)  # models.Batch
    if isinstance(ids, Sequence):
        return len(ids)
    return len(points) if isinstance(points, (list, tuple)) else None


def _upserted(arguments: Arguments, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    return _points(arguments.get("points", args, kwargs))


def _uploaded_points(arguments: Arguments, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    points = arguments.get("points", args, kwargs)
    return len(points) if isinstance(points, (list, tuple)) else None


def _uploaded_vectors(arguments: Arguments, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """Vectors in ``upload_collection``: an array's rows, a list's items, or the rows of named arrays (all as
    long); as the client itself counts them."""
    vectors = arguments.get("vectors", args, kwargs)
    if isinstance(vectors, Mapping):
        vectors = next(iter(vectors.values()), ())
    shape = getattr(vectors, "shape", None)
    if isinstance(shape, tuple) and shape:
        return int(shape[0])
    return len(vectors) if isinstance(vectors, (list, tuple)) else None


def _batch_upserted(arguments: Arguments, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """Points upserted by ``batch_update_points``: its UpsertOperations' points (other updates write none)."""
    operations = arguments.get("update_operations", args, kwargs)
    if not isinstance(operations, (list, tuple)):
        return None
    total = 0
    for operation in operations:
        upsert = getattr(operation, "upsert", None)
        if upsert is None:
            continue
        batch = getattr(upsert, "batch", None)
        written = _points(upsert.points if batch is None else batch)
        total += written or 0
    return total


_WRITES: Final[dict[str, Count]] = {
    "upsert": _upserted,
    "upload_points": _uploaded_points,
    "upload_collection": _uploaded_vectors,
    "batch_update_points": _batch_upserted,
}
