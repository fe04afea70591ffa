"""Qdrant searches as retrieval steps, on the real qdrant-client in local mode (in memory, on disk, async) and on
qdrant-edge's in-process shard: counts, batches, groups, the score order per distance, nesting in the application's
own retrieval step, writes, content capture, a client pointed at a server (whose refusal is recorded), result
shapes the reader does not know, and the same search under ``opentelemetry-instrument`` with no code."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import qdrant_edge
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel.instrumentation.qdrant import QdrantInstrumentor, instrument_qdrant, uninstrument_qdrant
from tests.conftest import Recorded
from tests.no_code import run_without_code

DIM = 8


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    instrument_qdrant()
    yield
    uninstrument_qdrant()


def vectors(n: int, seed: int = 0) -> list[list[float]]:
    found: list[list[float]] = np.random.default_rng(seed).standard_normal((n, DIM)).tolist()
    return found


def points(n: int, text_key: str = "text") -> list[models.PointStruct]:
    return [models.PointStruct(id=i, vector=v, payload={text_key: f"passage {i}", "group": i % 3})
            for i, v in enumerate(vectors(n))]


def collection(client: QdrantClient, name: str = "docs", distance: models.Distance = models.Distance.COSINE,
               n: int = 20, text_key: str = "text") -> None:
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=distance))
    client.upsert(name, points=points(n, text_key))


def qdrant_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if s.name == "retrieval qdrant"]


def step_points(recorded: Recorded) -> list[Any]:
    return [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes.get(sc.RAG_STEP_NAME) == "qdrant"]


def documents_sum(recorded: Recorded) -> float:
    return sum(p.value or 0 for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS))


def query(seed: int = 1) -> list[float]:
    return vectors(1, seed=seed)[0]


# -- local mode ------------------------------------------------------------------------------------
def test_searches_in_memory_are_retrieval_steps_counted_exactly(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client)
    answers = [client.query_points("docs", query=query(seed), limit=4) for seed in (1, 2, 3)]
    spans = qdrant_spans(recorded)
    assert len(spans) == 3
    attrs = spans[0].attributes
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    assert (attrs[sc.DB_SYSTEM_NAME], attrs[sc.GEN_AI_DATA_SOURCE_ID]) == ("qdrant", "qdrant")
    assert (attrs[sc.DB_COLLECTION_NAME], attrs[sc.DB_OPERATION_NAME]) == ("docs", "query_points")
    assert attrs[sc.GEN_AI_REQUEST_TOP_K] == 4
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 4
    scores = [p.score for p in answers[0].points]
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(scores))
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(scores))
    assert attrs[sc.RAG_RETRIEVAL_SCORE_AVG] == pytest.approx(sum(scores) / 4)
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in attrs  # cosine: similarities, the default reading
    assert sc.SERVER_ADDRESS not in attrs and sc.SERVER_PORT not in attrs  # local mode: no server
    assert sc.RAG_RETRIEVAL_QUERIES not in attrs  # one query, not a batch
    durations = step_points(recorded)
    assert sum(p.count or 0 for p in durations) == 3
    assert {p.attributes[sc.RAG_RETRIEVAL_QUALITY] for p in durations} == {"ok"}
    assert {p.attributes[sc.RAG_STEP_KIND] for p in durations} == {"retrieval"}
    assert documents_sum(recorded) == 12
    assert recorded.open_spans() == []


def test_the_clients_default_limit_is_the_top_k(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client, n=15)
    client.query_points("docs", query=query())
    (span,) = qdrant_spans(recorded)
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == 10
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 10


def test_a_collection_on_disk(recorded: Recorded, tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        collection(client, n=6)
        client.query_points("docs", query=query(), limit=2)
        client.query_points("docs", query=query(2), limit=3, with_payload=False)
    finally:
        client.close()
    first, second = qdrant_spans(recorded)
    assert (first.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED], second.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]
            ) == (2, 3)
    assert sc.SERVER_ADDRESS not in first.attributes
    assert sum(p.count or 0 for p in step_points(recorded)) == 2
    assert documents_sum(recorded) == 5


def test_the_async_client_in_memory(recorded: Recorded) -> None:
    async def work() -> list[int]:
        client = AsyncQdrantClient(":memory:")
        await client.create_collection("docs", vectors_config=models.VectorParams(size=DIM,
                                                                                 distance=models.Distance.DOT))
        await client.upsert("docs", points=points(9))
        client.upload_points("docs", points=[models.PointStruct(id=100 + i, vector=v)  # a plain method here
                                             for i, v in enumerate(vectors(2, seed=9))])
        found = [len((await client.query_points("docs", query=query(seed), limit=3)).points) for seed in (1, 2)]
        batch = await client.query_batch_points("docs", requests=[models.QueryRequest(query=query(3), limit=2)] * 2)
        found.append(sum(len(r.points) for r in batch))
        await client.close()
        return found

    assert asyncio.run(work()) == [3, 3, 4]
    spans = qdrant_spans(recorded)
    assert [s.attributes[sc.DB_OPERATION_NAME] for s in spans] == ["query_points", "query_points",
                                                                   "query_batch_points"]
    assert [s.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] for s in spans] == [3, 3, 4]
    assert sum(p.count or 0 for p in step_points(recorded)) == 3
    assert documents_sum(recorded) == 10
    assert sum(p.value or 0 for p in recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)) == 9 + 2
    assert recorded.open_spans() == []


def test_a_batch_is_one_step_over_all_its_queries(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client)
    requests = [models.QueryRequest(query=query(seed), limit=3, with_payload=True) for seed in (1, 2, 3)]
    answers = client.query_batch_points("docs", requests=requests)
    client.query_batch_points("docs", requests=[models.QueryRequest(query=query(4), limit=2),
                                                models.QueryRequest(query=query(5))])
    first, second = qdrant_spans(recorded)
    assert first.attributes[sc.DB_OPERATION_NAME] == "query_batch_points"
    assert first.attributes[sc.RAG_RETRIEVAL_QUERIES] == 3
    assert first.attributes[sc.GEN_AI_REQUEST_TOP_K] == 3
    assert first.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 9
    every = [p.score for answer in answers for p in answer.points]
    assert first.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(every))
    assert first.attributes[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(every))
    # limits 2 and (Qdrant's default) 10: no single top_k
    assert (second.attributes[sc.RAG_RETRIEVAL_QUERIES], second.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (
        2, 12)
    assert sc.GEN_AI_REQUEST_TOP_K not in second.attributes
    assert documents_sum(recorded) == 21


def test_a_groups_search_counts_the_hits_of_every_group(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client)
    result = client.query_points_groups("docs", group_by="group", query=query(), limit=3, group_size=2)
    hits = [hit for group in result.groups for hit in group.hits]
    assert len(hits) == 6
    (span,) = qdrant_spans(recorded)
    assert span.attributes[sc.DB_OPERATION_NAME] == "query_points_groups"
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == 3
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 6
    assert span.attributes[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(h.score for h in hits))
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in span.attributes
    assert documents_sum(recorded) == 6


@pytest.mark.parametrize(("distance", "kind"), [(models.Distance.EUCLID, "distance"),
                                                (models.Distance.MANHATTAN, "distance"),
                                                (models.Distance.COSINE, None), (models.Distance.DOT, None)])
def test_the_score_kind_follows_the_collections_distance(recorded: Recorded, distance: models.Distance,
                                                         kind: str | None) -> None:
    client = QdrantClient(":memory:")
    collection(client, distance=distance)
    saved = runtime.update(low_score=1e9)  # a similarity threshold every score here is under
    try:
        client.query_points("docs", query=query(), limit=5)
        client.query_points_groups("docs", group_by="group", query=query(), limit=3, group_size=1)
    finally:
        runtime.swap(saved)
    for span in qdrant_spans(recorded):
        assert span.attributes.get(sc.RAG_RETRIEVAL_SCORE_KIND) == kind
    qualities = {p.attributes[sc.RAG_RETRIEVAL_QUALITY]: p.count for p in step_points(recorded)}
    assert qualities == ({"ok": 2} if kind == "distance" else {"low_score": 2})


def test_a_single_hit_answer_takes_the_order_last_seen_for_its_collection(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client, "near", models.Distance.EUCLID)
    collection(client, "fresh", models.Distance.EUCLID)
    client.query_points("fresh", query=query(), limit=1)  # nothing seen yet: read as similarities
    client.query_points("near", query=query(), limit=3)
    client.query_points("near", query=query(2), limit=1)  # one hit: the order seen for "near"
    client.query_points("near", query=query(3), limit=1, using=None)
    fresh, three, one, again = qdrant_spans(recorded)
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in fresh.attributes
    assert [s.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] for s in (three, one, again)] == ["distance"] * 3


def test_a_fusion_is_remembered_apart_from_the_collections_distance(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client, distance=models.Distance.EUCLID)
    client.query_points("docs", query=query(), limit=3)
    fused = client.query_points("docs", prefetch=[models.Prefetch(query=query(s), limit=5) for s in (1, 2)],
                                query=models.FusionQuery(fusion=models.Fusion.RRF), limit=4)
    assert fused.points[0].score > fused.points[-1].score  # a rank score: higher is better
    client.query_points("docs", query=query(2), limit=1)
    nearest, fusion, single = qdrant_spans(recorded)
    assert nearest.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in fusion.attributes
    assert single.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"  # the fusion did not overwrite it


# -- nesting ---------------------------------------------------------------------------------------
def test_inside_the_applications_retrieval_it_is_a_sub_step_that_counts_nothing_twice(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client)

    @ragotel.retrieval("search")
    def search(vector: list[float]) -> list[dict[str, Any]]:
        found = client.query_points("docs", query=vector, limit=5).points
        return [{"id": p.id, "score": p.score, "text": p.payload["text"]} for p in found[:3] if p.payload]

    search(query())
    outer = recorded.span("retrieval search")
    (inner,) = qdrant_spans(recorded)
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 5
    assert outer.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3
    documents = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert [(p.attributes[sc.RAG_STEP_NAME], p.value) for p in documents] == [("search", 3)]  # once, the app's
    (sub,) = step_points(recorded)
    assert sc.RAG_RETRIEVAL_QUALITY not in sub.attributes  # judged once, on the app's step


def test_a_step_that_is_the_qdrant_search_gets_its_facts_and_no_second_span(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client, distance=models.Distance.EUCLID)

    @ragotel.retrieval("x", data_source="qdrant")
    def nearest(vector: list[float]) -> list[tuple[int | str, float]]:
        return [(p.id, p.score) for p in client.query_points("docs", query=vector, limit=2).points]

    nearest(query())
    (span,) = recorded.spans()  # the application's step, named for its data source
    assert (span.name, span.attributes[sc.RAG_STEP_NAME]) == ("retrieval qdrant", "x")
    assert (span.attributes[sc.DB_COLLECTION_NAME], span.attributes[sc.DB_OPERATION_NAME]) == ("docs", "query_points")
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == 2
    assert step_points(recorded) == []
    (point,) = [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes[sc.RAG_STEP_NAME] == "x"]
    assert point.count == 1
    assert documents_sum(recorded) == 2


# -- writes ----------------------------------------------------------------------------------------
def test_writes_are_counted_and_streams_are_left_unconsumed(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    client.upsert("docs", points=points(5))  # 5
    client.upsert("docs", points=models.Batch(ids=[10, 11, 12], vectors=vectors(3, seed=4)))  # 3
    client.upload_points("docs", points=[models.PointStruct(id=20 + i, vector=v) for i, v in
                                         enumerate(vectors(4, seed=5))])  # 4
    client.upload_points("docs", points=(models.PointStruct(id=30 + i, vector=v) for i, v in
                                         enumerate(vectors(7, seed=6))))  # a generator: not counted
    client.upload_collection("docs", vectors=np.asarray(vectors(6, seed=7)), ids=list(range(40, 46)))  # 6
    client.batch_update_points("docs", update_operations=[
        models.UpsertOperation(upsert=models.PointsList(points=[models.PointStruct(id=50 + i, vector=v)
                                                                for i, v in enumerate(vectors(2, seed=8))])),
        models.DeleteOperation(delete=models.PointIdsList(points=[50])),
    ])  # 2
    assert client.count("docs").count == 5 + 3 + 4 + 7 + 6 + 2 - 1  # the generator was uploaded in full
    written = recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)
    assert sum(p.value or 0 for p in written) == 20
    assert {p.attributes[sc.GEN_AI_DATA_SOURCE_ID] for p in written} == {"qdrant"}
    assert qdrant_spans(recorded) == []  # writes are no retrieval


# -- content ---------------------------------------------------------------------------------------
def test_no_payload_text_on_spans_unless_content_capture_is_on(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client, n=5, text_key="page_content")
    client.query_points("docs", query=query(), limit=3)
    (span,) = qdrant_spans(recorded)
    assert not any("passage" in str(value) for value in span.attributes.values())
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in span.attributes
    recorded.clear()

    runtime.update(content_spans=True)
    found = client.query_points("docs", query=query(), limit=3).points
    (span,) = qdrant_spans(recorded)
    documents = json.loads(str(span.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]))
    assert documents == [{"id": str(p.id), "score": round(p.score, 6), "content": f"passage {p.id}"} for p in found]
    assert not any("passage" in json.dumps(p.attributes) for p in recorded.points())  # never in metric labels


@pytest.mark.parametrize("key", ["text", "content", "document"])
def test_the_documents_text_is_read_from_the_usual_payload_keys(recorded: Recorded, key: str) -> None:
    runtime.update(content_spans=True)
    client = QdrantClient(":memory:")
    collection(client, n=3, text_key=key)
    client.query_points("docs", query=query(), limit=1)
    (span,) = qdrant_spans(recorded)
    (document,) = json.loads(str(span.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]))
    assert document["content"].startswith("passage ")


# -- a client of a server --------------------------------------------------------------------------
def refused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.mark.parametrize("how", ["url", "host", "location"])
def test_a_remote_client_names_its_server_and_its_failure_is_recorded(recorded: Recorded, how: str) -> None:
    port = refused_port()
    options: dict[str, Any] = {
        "url": {"url": f"http://127.0.0.1:{port}"},
        "host": {"host": "127.0.0.1", "port": port},
        "location": {"location": f"http://127.0.0.1:{port}"},
    }[how]
    client = QdrantClient(**options, check_compatibility=False, timeout=2)
    with pytest.raises(ResponseHandlingException):  # the client's own error for a refused connection
        client.query_points("docs", query=query(), limit=3)
    (span,) = qdrant_spans(recorded)
    assert (span.attributes[sc.SERVER_ADDRESS], span.attributes[sc.SERVER_PORT]) == ("127.0.0.1", port)
    assert (span.attributes[sc.DB_COLLECTION_NAME], span.attributes[sc.GEN_AI_REQUEST_TOP_K]) == ("docs", 3)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[sc.ERROR_TYPE] == "connection"
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert (error.attributes[sc.RAG_STEP_NAME], error.attributes[sc.ERROR_TYPE]) == ("qdrant", "connection")


def test_a_grpc_client_names_its_grpc_port(recorded: Recorded) -> None:
    port = refused_port()
    client = QdrantClient(url="http://127.0.0.1:6333", grpc_port=port, prefer_grpc=True, check_compatibility=False,
                          timeout=2)
    with pytest.raises(grpc.RpcError):  # UNAVAILABLE: nothing listens there
        client.query_points("docs", query=query(), limit=3)
    (span,) = qdrant_spans(recorded)
    assert (span.attributes[sc.SERVER_ADDRESS], span.attributes[sc.SERVER_PORT]) == ("127.0.0.1", port)


# -- what the instrumentation must never do --------------------------------------------------------
class UnknownAnswer:
    """A test double for failure injection: an answer of a shape the reader does not know."""


class RaisingPoint:
    """A test double for failure injection: a hit whose score cannot be read."""

    @property
    def score(self) -> float:
        raise RuntimeError("no score")


def test_a_result_shape_the_reader_does_not_know_is_returned_untouched(recorded: Recorded) -> None:
    client = QdrantClient(":memory:")
    collection(client, n=3)
    unknown = UnknownAnswer()
    raising = models.QueryResponse.model_construct(points=[RaisingPoint()])
    local: Any = client._client
    local.query_points = lambda **kwargs: unknown  # type: ignore[method-assign]
    assert client.query_points("docs", query=query(), limit=2) is unknown
    local.query_points = lambda **kwargs: raising  # type: ignore[method-assign]
    assert client.query_points("docs", query=query(), limit=2) is raising
    first, second = qdrant_spans(recorded)
    for span in (first, second):
        assert span.attributes[sc.DB_COLLECTION_NAME] == "docs"
        assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in span.attributes
        assert span.status.status_code.name == "UNSET"
    assert sum(p.count or 0 for p in step_points(recorded)) == 2
    assert recorded.open_spans() == []


def test_uninstrument_restores_the_clients(recorded: Recorded) -> None:
    original = QdrantClient.query_points.__wrapped__
    original_async = AsyncQdrantClient.query_points.__wrapped__
    uninstrument_qdrant()
    assert QdrantClient.query_points is original
    assert AsyncQdrantClient.query_points is original_async
    assert not hasattr(QdrantClient.upsert, "__wrapped__")
    assert not hasattr(qdrant_edge.EdgeShard.query, "__wrapped__")
    client = QdrantClient(":memory:")
    collection(client, n=3)
    client.query_points("docs", query=query(), limit=2)
    assert qdrant_spans(recorded) == []
    assert recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN) == []
    instrument_qdrant()
    assert QdrantClient.query_points.__wrapped__ is original
    assert QdrantInstrumentor().is_instrumented_by_opentelemetry


def test_suppressed_searches_are_plain(recorded: Recorded) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    client = QdrantClient(":memory:")
    collection(client, n=3)
    with suppress_instrumentation():
        client.query_points("docs", query=query(), limit=2)
    assert qdrant_spans(recorded) == []


# -- qdrant-edge -----------------------------------------------------------------------------------
def edge_shard(path: Path, distance: Any) -> Any:
    shard = qdrant_edge.EdgeShard.create(str(path), qdrant_edge.EdgeConfig(
        vectors=qdrant_edge.EdgeVectorParams(size=DIM, distance=distance)))
    shard.update(qdrant_edge.UpdateOperation.upsert_points(
        [qdrant_edge.Point(i, v, {"text": f"passage {i}"}) for i, v in enumerate(vectors(12))]))
    return shard


def test_edge_shard_searches_are_retrieval_steps(recorded: Recorded, tmp_path: Path) -> None:
    shard = edge_shard(tmp_path / "euclid", qdrant_edge.Distance.Euclid)
    try:
        nearest = qdrant_edge.Query.Nearest(query())
        found = shard.query(qdrant_edge.QueryRequest(limit=4, query=nearest, with_payload=True))
        shard.query(qdrant_edge.QueryRequest(limit=1, query=qdrant_edge.Query.Nearest(query(2))))
        shard.search(qdrant_edge.SearchRequest(query=nearest, limit=3))
        batch = shard.query_batch(qdrant_edge.QueryBatchRequest(
            [qdrant_edge.QueryRequest(limit=2, query=qdrant_edge.Query.Nearest(query(s))) for s in (3, 4, 5)]))
    finally:
        shard.close()
    assert [len(found), sum(len(answer) for answer in batch)] == [4, 6]
    spans = qdrant_spans(recorded)
    assert [s.attributes[sc.DB_OPERATION_NAME] for s in spans] == ["query", "query", "search", "query_batch"]
    assert [s.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] for s in spans] == [4, 1, 3, 6]
    assert [s.attributes[sc.GEN_AI_REQUEST_TOP_K] for s in spans] == [4, 1, 3, 2]
    assert spans[3].attributes[sc.RAG_RETRIEVAL_QUERIES] == 3
    # Euclid: distances, the one-hit answer included (the order seen for this shard's nearest queries)
    assert [s.attributes.get(sc.RAG_RETRIEVAL_SCORE_KIND) for s in spans] == ["distance"] * 4
    assert spans[0].attributes[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(p.score for p in found))
    assert sc.DB_COLLECTION_NAME not in spans[0].attributes and sc.SERVER_ADDRESS not in spans[0].attributes
    assert sum(p.count or 0 for p in step_points(recorded)) == 4
    assert documents_sum(recorded) == 14


def test_edge_shard_documents_under_content_capture(recorded: Recorded, tmp_path: Path) -> None:
    runtime.update(content_spans=True)
    shard = edge_shard(tmp_path / "cosine", qdrant_edge.Distance.Cosine)
    try:
        found = shard.query(qdrant_edge.QueryRequest(limit=2, query=qdrant_edge.Query.Nearest(query()),
                                                     with_payload=True))
    finally:
        shard.close()
    (span,) = qdrant_spans(recorded)
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in span.attributes
    documents = json.loads(str(span.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]))
    assert [d["content"] for d in documents] == [f"passage {p.id}" for p in found]


# -- no code ---------------------------------------------------------------------------------------
APP = textwrap.dedent('''
    """A script with no telemetry code."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection("docs", vectors_config=models.VectorParams(size=2, distance=models.Distance.EUCLID))
    client.upsert("docs", points=[models.PointStruct(id=i, vector=[1.0, i / 4], payload={"text": f"passage {i}"})
                                  for i in range(4)])
    print("FOUND", len(client.query_points("docs", query=[1.0, 0.2], limit=2).points))
''')


def test_opentelemetry_instrument_gives_the_qdrant_retrieval_span_with_no_code(tmp_path: Path) -> None:
    proc, spans = run_without_code(tmp_path, APP, "ragotel_qdrant")
    assert proc.returncode == 0, proc.stderr
    assert "FOUND 2" in proc.stdout
    (span,) = [s for s in spans if s["name"] == "retrieval qdrant"]
    attrs = span["attributes"]
    assert (attrs[sc.DB_SYSTEM_NAME], attrs[sc.DB_COLLECTION_NAME], attrs[sc.DB_OPERATION_NAME]) == (
        "qdrant", "docs", "query_points")
    assert (attrs[sc.GEN_AI_REQUEST_TOP_K], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (2, 2)
    assert attrs[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
    assert not any("passage" in json.dumps(s["attributes"]) for s in spans)  # content capture is off by default
