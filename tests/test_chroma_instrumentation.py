"""Chroma queries as retrieval steps, on real Chroma: a ``PersistentClient`` in a temporary directory, and a
``chroma run`` server (started once for the module) through ``HttpClient`` and ``AsyncHttpClient``. Single and
batched queries, the collection's space, included fields, queries inside the application's steps, writes,
content capture, HTTP client spans under the query, uninstrumenting, and readers facing an unknown result.

Every collection is made with ``embedding_function=None`` and given its embeddings, or with the small
deterministic embedding function below: Chroma's default one downloads a model."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.api.models.AsyncCollection import AsyncCollection
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings
from opentelemetry.trace import SpanKind

import ragotel
from examples.reference_app.processes import ManagedProcess, free_port
from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel.instrumentation.chroma import instrument_chroma, uninstrument_chroma
from tests.conftest import Recorded
from tests.no_code import run_without_code

DIM = 8
NAMESPACE = "default_tenant|default_database"
SETTINGS = Settings(anonymized_telemetry=False)


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    instrument_chroma()
    yield
    uninstrument_chroma()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An embedded Chroma persisting to a temporary directory; each test makes its own collections."""
    return chromadb.PersistentClient(path=str(tmp_path_factory.mktemp("chroma-local")), settings=SETTINGS)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A ``chroma run`` server for the module, ready once its heartbeat answers; yields its port."""
    data = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    with ManagedProcess("chroma", [str(chroma), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                        ready_url=f"http://127.0.0.1:{port}/api/v2/heartbeat", log_path=data / "chroma.log",
                        startup_timeout=60):
        yield port


@pytest.fixture(scope="module")
def remote(server: int) -> Any:
    return chromadb.HttpClient(host="127.0.0.1", port=server, settings=SETTINGS)


@pytest.fixture
async def remote_async(server: int) -> AsyncIterator[Any]:
    yield await chromadb.AsyncHttpClient(host="127.0.0.1", port=server, settings=SETTINGS)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype("float32")


def filled(client: Any, n: int = 20, **options: Any) -> Any:
    """A new collection of ``n`` records (ids ``doc-i``, texts ``text of doc-i``)."""
    collection = client.create_collection(f"c-{uuid.uuid4().hex[:12]}", embedding_function=None, **options)
    ids = [f"doc-{i}" for i in range(n)]
    collection.add(ids=ids, embeddings=vectors(n), documents=[f"text of {i}" for i in ids])
    return collection


def chroma_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if s.attributes.get(sc.RAG_STEP_NAME) == "chroma"]


def step_points(recorded: Recorded) -> list[Any]:
    return [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes.get(sc.RAG_STEP_NAME) == "chroma"]


def documents_counted(recorded: Recorded) -> float:
    return sum(p.value or 0 for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS))


class Lengths(chromadb.EmbeddingFunction):  # type: ignore[misc]
    """An application's embedding function, deterministic and offline: a text's length and a constant."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Any) -> Any:
        return [np.array([len(text), 1.0], dtype="float32") for text in input]

    @staticmethod
    def name() -> str:
        return "lengths"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> Lengths:
        return Lengths()


# -- an embedded client ----------------------------------------------------------------------------
def test_each_query_is_one_retrieval_step(recorded: Recorded, local: Any) -> None:
    collection = filled(local)
    recorded.clear()
    results = [collection.query(query_embeddings=vectors(1, seed=i)[0], n_results=4) for i in range(3)]
    spans = chroma_spans(recorded)
    assert len(spans) == 3
    for span, result in zip(spans, results, strict=True):
        attrs = span.attributes
        assert attrs[sc.GEN_AI_OPERATION_NAME] == "retrieval"
        assert attrs[sc.GEN_AI_DATA_SOURCE_ID] == "chroma"
        assert attrs[sc.DB_SYSTEM_NAME] == "chroma"
        assert attrs[sc.DB_COLLECTION_NAME] == collection.name
        assert attrs[sc.DB_OPERATION_NAME] == "query"
        assert attrs[sc.DB_NAMESPACE] == NAMESPACE
        assert attrs[sc.GEN_AI_REQUEST_TOP_K] == 4
        assert attrs[sc.RAG_RETRIEVAL_QUERIES] == 1
        assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 4
        assert attrs[sc.RAG_RETRIEVAL_DISTANCE] == "l2"
        assert attrs[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
        distances = result["distances"][0]
        assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(distances))
        assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(distances))
        assert attrs[sc.RAG_RETRIEVAL_SCORE_AVG] == pytest.approx(sum(distances) / 4)
        assert sc.SERVER_ADDRESS not in attrs  # embedded: no server
        assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in attrs  # content capture is off
    (point,) = step_points(recorded)
    assert point.count == 3
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "ok"  # distances: no similarity threshold judges them
    assert documents_counted(recorded) == 12
    assert recorded.open_spans() == []


def test_a_batch_counts_every_query(recorded: Recorded, local: Any) -> None:
    collection = filled(local, n=5)
    recorded.clear()
    batch = collection.query(query_embeddings=vectors(3, seed=1), n_results=2)  # a 2-d array: three queries
    listed = collection.query(query_embeddings=vectors(2, seed=2).tolist(), n_results=4)  # a list of vectors
    one = collection.query(query_embeddings=vectors(1, seed=3)[0].tolist(), n_results=9)  # one vector; past the size
    first, second, third = chroma_spans(recorded)
    assert (first.attributes[sc.RAG_RETRIEVAL_QUERIES], first.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (3, 6)
    assert (second.attributes[sc.RAG_RETRIEVAL_QUERIES], second.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (2, 8)
    assert (third.attributes[sc.RAG_RETRIEVAL_QUERIES], third.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (1, 5)
    assert [len(row) for row in batch["ids"] + listed["ids"] + one["ids"]] == [2, 2, 2, 4, 4, 5]
    every = [d for row in batch["distances"] for d in row]
    assert first.attributes[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(every))
    assert first.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(every))
    assert documents_counted(recorded) == 6 + 8 + 5
    (point,) = step_points(recorded)
    assert point.count == 3


def test_text_queries_are_counted_and_never_recorded(recorded: Recorded, local: Any) -> None:
    collection = local.create_collection(f"t-{uuid.uuid4().hex[:12]}", embedding_function=Lengths())
    collection.add(ids=["short", "long"], documents=["tiny", "a much longer text"])
    recorded.clear()
    collection.query(query_texts=["tin", "an even longer text, secret"], n_results=1)
    (span,) = chroma_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_QUERIES] == 2
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2
    assert not any("secret" in str(v) for v in span.attributes.values())


def test_the_space_is_read_from_the_collection(recorded: Recorded, local: Any) -> None:
    cosine = filled(local, configuration={"hnsw": {"space": "cosine"}})
    inner = filled(local, metadata={"hnsw:space": "ip"})  # the legacy way of naming it
    recorded.clear()
    cosine.query(query_embeddings=vectors(1, seed=4), n_results=3)
    inner.query(query_embeddings=vectors(1, seed=4), n_results=3)
    first, second = chroma_spans(recorded)
    assert first.attributes[sc.RAG_RETRIEVAL_DISTANCE] == "cosine"
    assert second.attributes[sc.RAG_RETRIEVAL_DISTANCE] == "ip"
    assert {s.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] for s in (first, second)} == {"distance"}


def test_a_query_without_distances_counts_results_and_no_scores(recorded: Recorded, local: Any) -> None:
    collection = filled(local)
    recorded.clear()
    result = collection.query(query_embeddings=vectors(2, seed=5), n_results=3, include=["documents"])
    assert result["distances"] is None
    (span,) = chroma_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 6
    assert sc.RAG_RETRIEVAL_SCORE_MIN not in span.attributes


def test_an_empty_collection_is_an_empty_retrieval(recorded: Recorded, local: Any) -> None:
    collection = local.create_collection(f"e-{uuid.uuid4().hex[:12]}", embedding_function=None)
    recorded.clear()
    result = collection.query(query_embeddings=vectors(1, seed=6), n_results=3)
    assert result["ids"] == [[]]
    (span,) = chroma_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 0
    (point,) = step_points(recorded)
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "empty"


def test_chroma_errors_pass_through_unchanged_and_are_recorded(recorded: Recorded, local: Any) -> None:
    collection = filled(local)
    recorded.clear()
    with pytest.raises(chromadb.errors.InvalidArgumentError):  # the query's dimension is not the collection's
        collection.query(query_embeddings=np.zeros(DIM + 1, dtype="float32"), n_results=2)
    (span,) = chroma_spans(recorded)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[sc.ERROR_TYPE] == "chromadb.errors.InvalidArgumentError"
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert (error.attributes[sc.RAG_STEP_NAME], error.value) == ("chroma", 1)


def test_writes_are_counted(recorded: Recorded, local: Any) -> None:
    collection = local.create_collection(f"w-{uuid.uuid4().hex[:12]}", embedding_function=None)
    recorded.clear()
    collection.add(ids=[f"a{i}" for i in range(4)], embeddings=vectors(4))
    collection.upsert(ids=["a0", "b0"], embeddings=vectors(2, seed=1))
    collection.upsert(ids="solo", embeddings=vectors(1, seed=2)[0])  # one record given as one id
    with pytest.raises(chromadb.errors.DuplicateIDError):  # a failed write wrote nothing
        collection.add(ids=["x", "x"], embeddings=vectors(2, seed=3))
    assert collection.count() == 6  # a0 upserted again
    written = recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)
    assert sum(p.value or 0 for p in written) == 4 + 2 + 1  # records written, rewrites included
    assert {p.attributes[sc.GEN_AI_DATA_SOURCE_ID] for p in written} == {"chroma"}
    assert chroma_spans(recorded) == []  # writes are counted, not spans


def test_inside_the_applications_retrieval_it_is_a_sub_step_that_counts_nothing_twice(recorded: Recorded,
                                                                                      local: Any) -> None:
    collection = filled(local)

    @ragotel.retrieval("search")
    def search(query: np.ndarray) -> list[dict[str, Any]]:
        found = collection.query(query_embeddings=query, n_results=3)
        return [{"id": i, "score": d} for i, d in zip(found["ids"][0], found["distances"][0], strict=True)]

    recorded.clear()
    search(vectors(1, seed=7))
    outer = recorded.span("retrieval search")
    (inner,) = chroma_spans(recorded)
    assert inner.parent.span_id == outer.context.span_id
    assert inner.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3
    documents = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert [(p.attributes[sc.RAG_STEP_NAME], p.value) for p in documents] == [("search", 3)]  # counted once
    (sub,) = step_points(recorded)
    assert sub.count == 1
    assert sc.RAG_RETRIEVAL_QUALITY not in sub.attributes  # judged once, on the application's step


def test_a_step_that_is_the_chroma_search_gets_its_facts_and_no_second_span(recorded: Recorded, local: Any) -> None:
    collection = filled(local)

    @ragotel.retrieval("x", data_source="chroma")
    def nearest(query: np.ndarray) -> list[dict[str, Any]]:
        found = collection.query(query_embeddings=query, n_results=2)
        return [{"id": i, "score": d} for i, d in zip(found["ids"][0], found["distances"][0], strict=True)]

    recorded.clear()
    nearest(vectors(1, seed=8))
    (span,) = recorded.spans()
    assert span.attributes[sc.RAG_STEP_NAME] == "x"
    assert span.attributes[sc.DB_COLLECTION_NAME] == collection.name
    assert span.attributes[sc.RAG_RETRIEVAL_DISTANCE] == "l2"
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == 2
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2
    assert step_points(recorded) == []
    assert documents_counted(recorded) == 2


def test_documents_only_with_content_capture(recorded: Recorded, local: Any) -> None:
    collection = filled(local)
    recorded.clear()
    query = vectors(1, seed=9)
    collection.query(query_embeddings=query, n_results=2)
    runtime.update(content_spans=True)  # the autouse fixture restores the switches
    result = collection.query(query_embeddings=query, n_results=2)
    without, with_content = chroma_spans(recorded)
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in without.attributes
    assert not any("text of" in str(v) for v in without.attributes.values())
    listed = json.loads(with_content.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS])
    assert [d["id"] for d in listed] == result["ids"][0]
    assert [d["content"] for d in listed] == result["documents"][0]
    assert [d["score"] for d in listed] == pytest.approx(result["distances"][0], abs=1e-6)
    for point in recorded.points():
        assert not any("text of" in str(v) for v in point.attributes.values())  # never in metric labels


def test_uninstrument_restores_chroma(recorded: Recorded, local: Any) -> None:
    collection = filled(local)
    uninstrument_chroma()
    for cls in (Collection, AsyncCollection):
        for name in ("query", "add", "upsert"):
            assert not hasattr(vars(cls)[name], "__wrapped__"), f"{cls.__name__}.{name}"
    recorded.clear()
    collection.query(query_embeddings=vectors(1), n_results=2)
    collection.add(ids=["more"], embeddings=vectors(1))
    assert chroma_spans(recorded) == []
    assert recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN) == []
    instrument_chroma()
    assert vars(Collection)["query"].__wrapped__.__qualname__ == "Collection.query"
    collection.query(query_embeddings=vectors(1), n_results=2)
    assert len(chroma_spans(recorded)) == 1


def test_suppressed_queries_are_plain(recorded: Recorded, local: Any) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    collection = filled(local)
    recorded.clear()
    with suppress_instrumentation():
        collection.query(query_embeddings=vectors(1), n_results=2)
        collection.add(ids=["more"], embeddings=vectors(1))
    assert chroma_spans(recorded) == []
    assert recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN) == []


@pytest.mark.parametrize("shape", [["not", "a", "query", "result"], {"ids": 7}], ids=["no-mapping", "ids-not-rows"])
def test_an_unknown_result_shape_leaves_the_result_untouched(recorded: Recorded, local: Any, shape: Any) -> None:
    collection = filled(local)
    # Failure injection: a test double for the response transform, standing for a release whose result is
    # shaped otherwise; the reader either does not understand it or raises on it.
    collection._transform_query_response = lambda response, include: shape
    recorded.clear()
    assert collection.query(query_embeddings=vectors(1), n_results=2) is shape
    (span,) = chroma_spans(recorded)
    assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in span.attributes
    assert span.attributes[sc.DB_COLLECTION_NAME] == collection.name  # described before it ran
    assert span.status.status_code.name == "UNSET"
    assert recorded.open_spans() == []


def test_a_release_without_a_method_leaves_it_out_with_one_warning(
        recorded: Recorded, local: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    uninstrument_chroma()
    # Failure injection: a chromadb whose async collection has no upsert (as a release that renamed it would).
    monkeypatch.delattr(AsyncCollection, "upsert")
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        instrument_chroma()
    (warning,) = [r for r in caplog.records if "instrument_chroma()" in r.getMessage()]
    assert "AsyncCollection.upsert" in warning.getMessage()
    assert "chromadb" in warning.getMessage()
    collection = filled(local)
    recorded.clear()
    collection.query(query_embeddings=vectors(1), n_results=2)
    assert len(chroma_spans(recorded)) == 1  # the rest is instrumented


# -- a Chroma server -------------------------------------------------------------------------------
def test_http_client_queries_name_the_server_and_hold_the_http_spans(
        recorded: Recorded, remote: Any, server: int, http_clients_instrumented: None) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    collection = filled(remote, configuration={"hnsw": {"space": "cosine"}})
    theirs = HTTPXClientInstrumentor()
    theirs.instrument()
    try:
        recorded.clear()
        for i in range(3):
            collection.query(query_embeddings=vectors(2, seed=i), n_results=5)
    finally:
        theirs.uninstrument()
    spans = chroma_spans(recorded)
    assert len(spans) == 3
    for span in spans:
        attrs = span.attributes
        assert (attrs[sc.SERVER_ADDRESS], attrs[sc.SERVER_PORT]) == ("127.0.0.1", server)
        assert (attrs[sc.DB_COLLECTION_NAME], attrs[sc.DB_NAMESPACE]) == (collection.name, NAMESPACE)
        assert attrs[sc.RAG_RETRIEVAL_DISTANCE] == "cosine"
        assert (attrs[sc.RAG_RETRIEVAL_QUERIES], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (2, 10)
    # The client's request is the query's child: the query span is current while it is sent.
    http = [s for s in recorded.spans() if s.kind is SpanKind.CLIENT and sc.RAG_STEP_KIND not in s.attributes]
    assert sorted(s.parent.span_id for s in http) == sorted(s.context.span_id for s in spans)
    assert {s.name for s in http} == {"POST"}
    # ragotel's httpx instrumentation makes no GenAI span of it: the only GenAI operation is the retrieval.
    operations = [s.attributes.get(sc.GEN_AI_OPERATION_NAME) for s in recorded.spans()]
    assert sorted(filter(None, operations)) == ["retrieval"] * 3
    (point,) = step_points(recorded)
    assert point.count == 3
    assert documents_counted(recorded) == 30


def test_http_client_with_ragotels_httpx_instrumentation_alone_is_one_span_per_query(
        recorded: Recorded, remote: Any, http_clients_instrumented: None) -> None:
    collection = filled(remote)
    recorded.clear()
    for i in range(2):
        collection.query(query_embeddings=vectors(1, seed=i), n_results=3)
    collection.upsert(ids=["doc-0", "new"], embeddings=vectors(2))
    assert [s.name for s in recorded.spans()] == ["retrieval chroma"] * 2
    assert sum(p.value or 0 for p in recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)) == 2


async def test_async_http_client_queries_and_writes(recorded: Recorded, remote_async: Any, server: int) -> None:
    collection = await remote_async.create_collection(f"a-{uuid.uuid4().hex[:12]}", embedding_function=None,
                                                      configuration={"hnsw": {"space": "ip"}})
    ids = [f"doc-{i}" for i in range(10)]
    await collection.add(ids=ids, embeddings=vectors(10), documents=[f"text of {i}" for i in ids])
    await collection.upsert(ids=["doc-0", "doc-10"], embeddings=vectors(2, seed=1))
    results = [await collection.query(query_embeddings=vectors(3, seed=i), n_results=4) for i in range(2)]
    spans = chroma_spans(recorded)
    assert len(spans) == 2
    for span, result in zip(spans, results, strict=True):
        attrs = span.attributes
        assert (attrs[sc.SERVER_ADDRESS], attrs[sc.SERVER_PORT]) == ("127.0.0.1", server)
        assert (attrs[sc.DB_COLLECTION_NAME], attrs[sc.DB_OPERATION_NAME]) == (collection.name, "query")
        assert attrs[sc.RAG_RETRIEVAL_DISTANCE] == "ip"
        assert (attrs[sc.RAG_RETRIEVAL_QUERIES], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (3, 12)
        every = [d for row in result["distances"] for d in row]
        assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(every))
    (point,) = step_points(recorded)
    assert point.count == 2
    assert documents_counted(recorded) == 24
    assert sum(p.value or 0 for p in recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)) == 12


async def test_an_awaited_query_inside_the_applications_retrieval_is_a_sub_step(recorded: Recorded,
                                                                                 remote_async: Any) -> None:
    collection = await remote_async.create_collection(f"s-{uuid.uuid4().hex[:12]}", embedding_function=None)
    await collection.add(ids=["a", "b", "c"], embeddings=vectors(3))
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    theirs = HTTPXClientInstrumentor()
    theirs.instrument()
    try:
        recorded.clear()
        async with ragotel.retrieval("search") as step:
            found = await collection.query(query_embeddings=vectors(1, seed=2), n_results=2)
            step.record(documents=[{"id": i} for i in found["ids"][0]])
    finally:
        theirs.uninstrument()
    outer = recorded.span("retrieval search")
    (inner,) = chroma_spans(recorded)
    assert inner.parent.span_id == outer.context.span_id
    (http,) = [s for s in recorded.spans() if sc.RAG_STEP_KIND not in s.attributes]
    assert (http.name, http.parent.span_id) == ("POST", inner.context.span_id)  # sent under the awaited query
    assert [p.attributes[sc.RAG_STEP_NAME] for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)] == ["search"]


# -- no code ---------------------------------------------------------------------------------------
APP = textwrap.dedent('''
    """A script with no telemetry code."""
    import sys

    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
    docs = client.create_collection("docs", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    docs.add(ids=[f"p{i}" for i in range(4)], embeddings=[[1.0, i / 4] for i in range(4)],
             documents=[f"passage {i}" for i in range(4)])
    print("FOUND", len(docs.query(query_embeddings=[1.0, 0.2], n_results=2)["ids"][0]))
''')


def test_opentelemetry_instrument_gives_the_chroma_retrieval_span_with_no_code(tmp_path: Path) -> None:
    proc, spans = run_without_code(tmp_path, APP, "ragotel_chroma", str(tmp_path / "db"))
    assert proc.returncode == 0, proc.stderr
    assert "FOUND 2" in proc.stdout
    (span,) = [s for s in spans if s["name"] == "retrieval chroma"]
    attrs = span["attributes"]
    assert (attrs[sc.DB_SYSTEM_NAME], attrs[sc.DB_COLLECTION_NAME], attrs[sc.DB_OPERATION_NAME]) == (
        "chroma", "docs", "query")
    assert (attrs[sc.GEN_AI_REQUEST_TOP_K], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (2, 2)
    assert (attrs[sc.RAG_RETRIEVAL_DISTANCE], attrs[sc.RAG_RETRIEVAL_SCORE_KIND]) == ("cosine", "distance")
    assert not any("passage" in json.dumps(s["attributes"]) for s in spans)  # content capture is off by default
