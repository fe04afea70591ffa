"""Milvus searches as retrieval steps, on real Milvus Lite (``pymilvus[milvus_lite]``): a ``.db`` file per module,
reached through ``MilvusClient`` and ``AsyncMilvusClient``, and the same engine served on a loopback port as a
server. Exact counts over many searches, batches, the metric read from the call or from the hits' order, FAISS
instrumented at the same time (Milvus Lite searches each segment with FAISS on its own threads), queries inside the
application's steps, writes, content capture, uninstrumenting, and readers facing an unknown result."""

from __future__ import annotations

import importlib.metadata
import json
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pymilvus = pytest.importorskip("pymilvus")
faiss = pytest.importorskip("faiss")

import ragotel  # noqa: E402
from ragotel import semconv as sc  # noqa: E402
from ragotel._core import runtime  # noqa: E402
from ragotel.instrumentation.milvus import instrument_milvus, uninstrument_milvus  # noqa: E402
from tests.conftest import Recorded  # noqa: E402
from tests.no_code import run_without_code  # noqa: E402

DIM = 8


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    instrument_milvus()
    yield
    uninstrument_milvus()


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Milvus Lite on a ``.db`` file for the module, its client made with the instrumentation on (the client's URI
    is read when it is made); each test makes its own collections."""
    instrument_milvus()
    try:
        return pymilvus.MilvusClient(str(tmp_path_factory.mktemp("milvus") / "lite.db"))
    finally:
        uninstrument_milvus()


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype("float32")


def rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "vector": v.tolist(), "text": f"text of {i}"} for i, v in enumerate(vectors(n, seed))]


def filled(client: Any, n: int = 20, metric: str = "COSINE") -> str:
    """A new collection of ``n`` rows (ids 0..n-1, texts ``text of i``); returns its name."""
    name = f"c_{uuid.uuid4().hex[:12]}"
    client.create_collection(name, dimension=DIM, metric_type=metric)
    client.insert(name, rows(n))
    return name


def milvus_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if s.attributes.get(sc.RAG_STEP_NAME) == "milvus"]


def step_points(recorded: Recorded) -> list[Any]:
    return [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes.get(sc.RAG_STEP_NAME) == "milvus"]


def documents_counted(recorded: Recorded) -> float:
    return sum(p.value or 0 for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS))


def distances(result: Any) -> list[float]:
    return [hit["distance"] for row in result for hit in row]


# -- searches --------------------------------------------------------------------------------------
def test_each_search_is_one_retrieval_step(recorded: Recorded, lite: Any) -> None:
    name = filled(lite)
    recorded.clear()
    results = [lite.search(name, data=vectors(1, seed=i).tolist(), limit=4) for i in range(7)]
    spans = milvus_spans(recorded)
    assert len(spans) == 7
    assert [s.name for s in recorded.spans()] == ["retrieval milvus"] * 7  # and nothing else
    for span, result in zip(spans, results, strict=True):
        attrs = span.attributes
        assert attrs[sc.GEN_AI_OPERATION_NAME] == "retrieval"
        assert attrs[sc.GEN_AI_DATA_SOURCE_ID] == "milvus"
        assert attrs[sc.DB_SYSTEM_NAME] == "milvus"
        assert attrs[sc.DB_COLLECTION_NAME] == name
        assert attrs[sc.DB_OPERATION_NAME] == "search"
        assert attrs[sc.GEN_AI_REQUEST_TOP_K] == 4
        assert attrs[sc.RAG_RETRIEVAL_QUERIES] == 1
        assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 4
        found = distances(result)
        assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(found))
        assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(found))
        assert attrs[sc.RAG_RETRIEVAL_SCORE_AVG] == pytest.approx(sum(found) / 4)
        assert sc.RAG_RETRIEVAL_SCORE_KIND not in attrs  # cosine: similarities
        assert sc.SERVER_ADDRESS not in attrs and sc.SERVER_PORT not in attrs  # Milvus Lite: no server
        assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in attrs  # content capture is off
        assert span.parent is None
    (point,) = step_points(recorded)
    assert point.count == 7
    assert documents_counted(recorded) == 28
    assert recorded.open_spans() == []


def test_a_batch_counts_every_query(recorded: Recorded, lite: Any) -> None:
    name = filled(lite, n=5)
    recorded.clear()
    listed = lite.search(name, data=vectors(3, seed=1).tolist(), limit=2)  # three queries as lists
    array = lite.search(name, data=vectors(2, seed=2), limit=4)  # a 2-d array: two queries
    past = lite.search(name, data=vectors(1, seed=3).tolist(), limit=9)  # past the collection's size
    first, second, third = milvus_spans(recorded)
    assert [len(row) for row in [*listed, *array, *past]] == [2, 2, 2, 4, 4, 5]
    assert (first.attributes[sc.RAG_RETRIEVAL_QUERIES], first.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (3, 6)
    assert (second.attributes[sc.RAG_RETRIEVAL_QUERIES], second.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (2, 8)
    assert (third.attributes[sc.GEN_AI_REQUEST_TOP_K], third.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (9, 5)
    assert first.attributes[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(distances(listed)))
    assert first.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(distances(listed)))
    assert documents_counted(recorded) == 6 + 8 + 5
    (point,) = step_points(recorded)
    assert point.count == 3


def test_the_limit_defaults_to_the_clients(recorded: Recorded, lite: Any) -> None:
    name = filled(lite, n=15)
    recorded.clear()
    lite.search(name, vectors(1, seed=4).tolist())  # data given by position, no limit: pymilvus' 10
    (span,) = milvus_spans(recorded)
    assert (span.attributes[sc.GEN_AI_REQUEST_TOP_K], span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (10, 10)


def test_l2_scores_are_distances_read_from_the_order(recorded: Recorded, lite: Any) -> None:
    name = filled(lite, metric="L2")
    recorded.clear()
    lite.search(name, data=vectors(1, seed=5).tolist(), limit=3)
    lite.search(name, data=vectors(1, seed=6).tolist(), limit=1)  # one hit cannot tell: the last order can
    first, second = milvus_spans(recorded)
    assert first.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
    assert second.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
    assert sc.RAG_RETRIEVAL_DISTANCE not in first.attributes  # the call names no metric
    (point,) = step_points(recorded)
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "ok"  # no similarity threshold judges distances


def test_the_metric_a_call_names_says_which_way_scores_go(recorded: Recorded, lite: Any) -> None:
    l2, inner = filled(lite, metric="L2"), filled(lite, metric="IP")
    recorded.clear()
    lite.search(l2, data=vectors(1, seed=7).tolist(), limit=1, search_params={"metric_type": "L2"})
    lite.search(inner, data=vectors(1, seed=7).tolist(), limit=3, search_params={"metric_type": "IP"})
    first, second = milvus_spans(recorded)
    assert (first.attributes[sc.RAG_RETRIEVAL_DISTANCE], first.attributes[sc.RAG_RETRIEVAL_SCORE_KIND]) == (
        "l2", "distance")
    assert second.attributes[sc.RAG_RETRIEVAL_DISTANCE] == "ip"
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in second.attributes


def test_an_empty_collection_is_an_empty_retrieval(recorded: Recorded, lite: Any) -> None:
    name = f"e_{uuid.uuid4().hex[:12]}"
    lite.create_collection(name, dimension=DIM)
    recorded.clear()
    assert [len(row) for row in lite.search(name, data=vectors(1).tolist(), limit=3)] == [0]
    (span,) = milvus_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 0
    (point,) = step_points(recorded)
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "empty"


def test_milvus_errors_pass_through_unchanged_and_are_recorded(recorded: Recorded, lite: Any) -> None:
    recorded.clear()
    with pytest.raises(pymilvus.MilvusException):
        lite.search(f"missing_{uuid.uuid4().hex[:8]}", data=vectors(1).tolist(), limit=2)
    (span,) = milvus_spans(recorded)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[sc.ERROR_TYPE] == "pymilvus.exceptions.MilvusException"
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert (error.attributes[sc.RAG_STEP_NAME], error.value) == ("milvus", 1)


# -- FAISS, Milvus Lite's engine -------------------------------------------------------------------
class FaissCalls:
    """Every FAISS index method called, with the thread that called it, recorded under ragotel's FAISS
    instrumentation (so the instrumentation sees the caller it would see without this record)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int]] = []
        ragotel.uninstrument_faiss()
        for cls in [c for c in vars(faiss).values() if isinstance(c, type) and issubclass(c, faiss.Index)]:
            for name in ("search", "add"):
                if name in vars(cls):
                    monkeypatch.setattr(cls, name, self._spy(name, vars(cls)[name]))
        ragotel.instrument_faiss()

    def _spy(self, name: str, original: Any) -> Any:
        def spy(index: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, threading.get_ident()))
            return original(index, *args, **kwargs)

        return spy

    def searches(self) -> list[int]:
        """The threads of the searches recorded so far."""
        return [thread for name, thread in self.calls if name == "search"]

    def adds(self) -> list[int]:
        return [thread for name, thread in self.calls if name == "add"]


@pytest.fixture
def faiss_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaissCalls]:
    version = importlib.metadata.version("milvus-lite")
    if int(version.split(".")[0]) < 3:
        pytest.skip(f"milvus-lite {version} searches in a server process of its own: no FAISS in this one")
    yield FaissCalls(monkeypatch)
    ragotel.uninstrument_faiss()  # before the spies are taken off


def indexed(client: Any, faiss_calls: FaissCalls, n: int = 50, metric: str = "COSINE") -> str:
    """A collection whose search runs on FAISS: flushed into a segment, searched until the segment's index,
    built on Milvus Lite's background thread, answers."""
    name = filled(client, n=n, metric=metric)
    client.flush(name)
    deadline = time.monotonic() + 30
    while not faiss_calls.searches():
        assert time.monotonic() < deadline, "Milvus Lite never searched with FAISS"
        client.search(name, data=vectors(1).tolist(), limit=2)
        time.sleep(0.05)
    return name


def test_with_faiss_instrumented_too_each_search_is_still_one_span(recorded: Recorded, lite: Any,
                                                                   faiss_calls: FaissCalls) -> None:
    name = indexed(lite, faiss_calls)
    recorded.clear()
    faiss_calls.calls.clear()
    for i in range(6):
        lite.search(name, data=vectors(2, seed=i).tolist(), limit=3)
    assert len(faiss_calls.searches()) >= 6  # FAISS did search...
    assert threading.get_ident() not in faiss_calls.searches()  # ...on Milvus Lite's threads, not this one
    assert [s.name for s in recorded.spans()] == ["retrieval milvus"] * 6  # no FAISS span, no stray root
    assert {s.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] for s in milvus_spans(recorded)} == {6}
    (point,) = step_points(recorded)
    assert point.count == 6
    assert documents_counted(recorded) == 36
    assert recorded.open_spans() == []


def test_faiss_instrumented_alone_adds_nothing_for_milvus_lite(recorded: Recorded, lite: Any,
                                                               faiss_calls: FaissCalls) -> None:
    uninstrument_milvus()
    name = indexed(lite, faiss_calls)
    recorded.clear()
    faiss_calls.calls.clear()
    lite.insert(name, rows(4, seed=9))
    lite.flush(name)  # a second segment, whose FAISS index is built on the background thread
    deadline = time.monotonic() + 30
    while not faiss_calls.adds():
        assert time.monotonic() < deadline, "Milvus Lite never built a FAISS index"
        time.sleep(0.05)
    for i in range(3):
        lite.search(name, data=vectors(1, seed=i).tolist(), limit=3)
    assert faiss_calls.searches()
    assert recorded.spans() == []
    assert recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN) == []


def test_the_applications_own_faiss_index_is_still_traced(recorded: Recorded, lite: Any,
                                                          faiss_calls: FaissCalls) -> None:
    name = indexed(lite, faiss_calls)
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors(10))
    recorded.clear()
    index.search(vectors(1), 2)
    lite.search(name, data=vectors(1).tolist(), limit=2)
    assert sorted(s.name for s in recorded.spans()) == ["retrieval faiss", "retrieval milvus"]


# -- inside the application's steps ----------------------------------------------------------------
def test_inside_the_applications_retrieval_it_is_a_sub_step_that_counts_nothing_twice(recorded: Recorded,
                                                                                      lite: Any) -> None:
    name = filled(lite)

    @ragotel.retrieval("search")
    def search(query: np.ndarray) -> list[dict[str, Any]]:
        (found,) = lite.search(name, data=query.tolist(), limit=3)
        return [{"id": hit["id"], "score": hit["distance"]} for hit in found]

    recorded.clear()
    search(vectors(1, seed=8))
    outer = recorded.span("retrieval search")
    (inner,) = milvus_spans(recorded)
    assert inner.parent.span_id == outer.context.span_id
    assert inner.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3
    documents = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert [(p.attributes[sc.RAG_STEP_NAME], p.value) for p in documents] == [("search", 3)]  # counted once
    (sub,) = step_points(recorded)
    assert sub.count == 1
    assert sc.RAG_RETRIEVAL_QUALITY not in sub.attributes  # judged once, on the application's step


def test_a_step_that_is_the_milvus_search_gets_its_facts_and_no_second_span(recorded: Recorded, lite: Any) -> None:
    name = filled(lite)

    @ragotel.retrieval("x", data_source="milvus")
    def nearest(query: np.ndarray) -> list[dict[str, Any]]:
        (found,) = lite.search(name, data=query.tolist(), limit=2)
        return [{"id": hit["id"], "score": hit["distance"]} for hit in found]

    recorded.clear()
    nearest(vectors(1, seed=9))
    (span,) = recorded.spans()
    assert span.attributes[sc.RAG_STEP_NAME] == "x"
    assert (span.attributes[sc.DB_COLLECTION_NAME], span.attributes[sc.GEN_AI_REQUEST_TOP_K]) == (name, 2)
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2
    assert step_points(recorded) == []
    assert documents_counted(recorded) == 2


# -- content ---------------------------------------------------------------------------------------
def test_documents_only_with_content_capture(recorded: Recorded, lite: Any) -> None:
    name = filled(lite)
    query = vectors(1, seed=10).tolist()
    recorded.clear()
    lite.search(name, data=query, limit=2, output_fields=["text"])
    runtime.update(content_spans=True)  # the autouse fixture restores the switches
    (result,) = lite.search(name, data=query, limit=2, output_fields=["text"])
    without, with_content = milvus_spans(recorded)
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in without.attributes
    assert not any("text of" in str(v) for v in without.attributes.values())
    listed = json.loads(with_content.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS])
    assert [d["id"] for d in listed] == [str(hit["id"]) for hit in result]
    assert [d["content"] for d in listed] == [hit["entity"]["text"] for hit in result]
    assert [d["score"] for d in listed] == pytest.approx([hit["distance"] for hit in result], abs=1e-6)
    assert not any(str(v) in json.dumps(listed) for v in vectors(1, seed=10)[0])  # never the query vector
    for point in recorded.points():
        assert not any("text of" in str(v) for v in point.attributes.values())  # never in metric labels


def test_counting_hits_decodes_no_field(recorded: Recorded, lite: Any) -> None:
    name = filled(lite)
    recorded.clear()
    (row,) = lite.search(name, data=vectors(1).tolist(), limit=2, output_fields=["text", "vector"])
    if not hasattr(row, "has_materialized"):
        pytest.skip("this pymilvus decodes every field up front")
    assert row.has_materialized is False  # the vectors and the dynamic "text", left for the application to decode
    (span,) = milvus_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2
    assert span.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(row.distances[0])


# -- writes ----------------------------------------------------------------------------------------
def test_writes_are_counted(recorded: Recorded, lite: Any) -> None:
    name = f"w_{uuid.uuid4().hex[:12]}"
    lite.create_collection(name, dimension=DIM)
    recorded.clear()
    lite.insert(name, rows(4))
    lite.insert(name, {"id": 100, "vector": vectors(1)[0].tolist()})  # one row given as a dict
    lite.upsert(name, data=rows(2, seed=1))
    lite.insert(name, [])  # nothing written
    with pytest.raises(pymilvus.MilvusException):  # a failed write wrote nothing
        lite.insert(name, [{"id": 200, "vector": [1.0, 2.0]}])
    written = recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)
    assert sum(p.value or 0 for p in written) == 4 + 1 + 2
    assert {p.attributes[sc.GEN_AI_DATA_SOURCE_ID] for p in written} == {"milvus"}
    assert milvus_spans(recorded) == []  # writes are counted, not spans


# -- instrumenting ---------------------------------------------------------------------------------
def test_uninstrument_restores_milvus(recorded: Recorded, lite: Any) -> None:
    name = filled(lite)
    uninstrument_milvus()
    for cls in (pymilvus.MilvusClient, getattr(pymilvus, "AsyncMilvusClient", None)):
        for method in ("search", "insert", "upsert", "__init__"):
            if cls is not None:
                assert not hasattr(vars(cls)[method], "__wrapped__"), f"{cls.__name__}.{method}"
    recorded.clear()
    lite.search(name, data=vectors(1).tolist(), limit=2)
    lite.insert(name, rows(1, seed=3))
    assert recorded.spans() == []
    assert recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN) == []
    instrument_milvus()
    assert vars(pymilvus.MilvusClient)["search"].__wrapped__.__qualname__ == "MilvusClient.search"
    lite.search(name, data=vectors(1).tolist(), limit=2)
    assert len(milvus_spans(recorded)) == 1


def test_suppressed_searches_are_plain(recorded: Recorded, lite: Any) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    name = filled(lite)
    recorded.clear()
    with suppress_instrumentation():
        lite.search(name, data=vectors(1).tolist(), limit=2)
        lite.insert(name, rows(1, seed=4))
    assert recorded.spans() == []
    assert recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN) == []


class Unreadable(list):  # type: ignore[type-arg]
    """A result the reader cannot even iterate."""

    def __iter__(self) -> Any:
        raise RuntimeError("not today")


@pytest.mark.parametrize("shape", [{"data": []}, ["not", "rows"], [[1, 2]], Unreadable([1])],
                         ids=["no-list", "no-rows", "no-hits", "raises"])
def test_an_unknown_result_shape_leaves_the_result_untouched(recorded: Recorded, lite: Any, shape: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    name = filled(lite)

    def search(client: Any, collection_name: str, data: Any = None, limit: int = 10, **kwargs: Any) -> Any:
        return shape

    # Failure injection: a test double for the client's own search, under the instrumentation, standing for a
    # release whose result is shaped otherwise; the reader either does not understand it or raises on it.
    uninstrument_milvus()
    monkeypatch.setattr(pymilvus.MilvusClient, "search", search)
    instrument_milvus()
    try:
        recorded.clear()
        assert lite.search(name, data=vectors(1).tolist(), limit=2) is shape
    finally:
        uninstrument_milvus()
        monkeypatch.undo()  # the client's search back before it is instrumented again
        instrument_milvus()
    (span,) = milvus_spans(recorded)
    assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in span.attributes
    assert span.attributes[sc.DB_COLLECTION_NAME] == name  # described before it ran
    assert span.status.status_code.name == "UNSET"
    assert recorded.open_spans() == []


# -- a server, and the async client ----------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Milvus Lite's engine served on a loopback port, as a Milvus server is: its URI."""
    server_manager = pytest.importorskip("milvus_lite.server_manager")
    uri = server_manager.server_manager_instance.start_and_get_uri(str(tmp_path_factory.mktemp("served") / "s.db"))
    if not isinstance(uri, str) or not uri.startswith("http://"):
        pytest.skip(f"this milvus-lite serves at {uri!r}, not on a port")
    return uri


def test_a_client_of_a_server_names_it(recorded: Recorded, served: str) -> None:
    client = pymilvus.MilvusClient(uri=served)
    name = filled(client)
    recorded.clear()
    for i in range(3):
        client.search(name, data=vectors(1, seed=i).tolist(), limit=2)
    port = int(served.rsplit(":", 1)[1])
    spans = milvus_spans(recorded)
    assert len(spans) == 3
    assert {(s.attributes[sc.SERVER_ADDRESS], s.attributes[sc.SERVER_PORT]) for s in spans} == {("127.0.0.1", port)}


def test_a_client_made_before_instrumenting_is_traced_without_a_server(recorded: Recorded, served: str) -> None:
    uninstrument_milvus()
    client = pymilvus.MilvusClient(uri=served)
    instrument_milvus()
    name = filled(client)
    recorded.clear()
    client.search(name, data=vectors(1).tolist(), limit=2)
    (span,) = milvus_spans(recorded)
    assert sc.SERVER_ADDRESS not in span.attributes
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2


async def test_async_client_searches_and_writes(recorded: Recorded, tmp_path: Path) -> None:
    if getattr(pymilvus, "AsyncMilvusClient", None) is None:
        pytest.skip("this pymilvus has no AsyncMilvusClient")
    name = f"a_{uuid.uuid4().hex[:12]}"
    path = str(tmp_path / "async.db")
    # Made by the sync client: the async one waits for the index with a call Milvus Lite does not answer.
    pymilvus.MilvusClient(path).create_collection(name, dimension=DIM, metric_type="L2")
    client = pymilvus.AsyncMilvusClient(path)
    try:
        recorded.clear()
        await client.insert(name, rows(10))
        await client.upsert(name, rows(2, seed=1))
        results = [await client.search(name, data=vectors(2, seed=i).tolist(), limit=3) for i in range(4)]
        async with ragotel.retrieval("search"):
            await client.search(name, data=vectors(1).tolist(), limit=1)
    finally:
        await client.close()
    first, *others, inner = milvus_spans(recorded)
    assert len(others) == 3
    for span, result in zip([first, *others], results, strict=True):
        attrs = span.attributes
        assert (attrs[sc.DB_COLLECTION_NAME], attrs[sc.DB_OPERATION_NAME]) == (name, "search")
        assert (attrs[sc.RAG_RETRIEVAL_QUERIES], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (2, 6)
        assert attrs[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
        assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(distances(result)))
    assert inner.parent.span_id == recorded.span("retrieval search").context.span_id
    assert sum(p.value or 0 for p in recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)) == 12
    assert recorded.open_spans() == []


# -- no code ---------------------------------------------------------------------------------------
APP = textwrap.dedent('''
    """A script with no telemetry code: Milvus Lite, searched once its segment has a FAISS index."""
    import sys
    import time

    from pymilvus import MilvusClient

    client = MilvusClient(sys.argv[1])
    client.create_collection("docs", dimension=2)
    client.insert("docs", [{"id": i, "vector": [1.0, i / 50], "text": f"passage {i}"} for i in range(50)])
    client.flush("docs")
    time.sleep(1)  # the segment's index, built on Milvus Lite's background thread
    for _ in range(3):
        found = client.search("docs", data=[[1.0, 0.2]], limit=2, output_fields=["text"])
    print("FOUND", len(found[0]))
''')


def test_opentelemetry_instrument_gives_one_milvus_span_per_search_with_no_code(tmp_path: Path) -> None:
    names = {e.name for e in importlib.metadata.entry_points(group="opentelemetry_instrumentor")}
    if "ragotel_milvus" not in names:
        pytest.skip("the ragotel_milvus entry point is not installed")
    proc, spans = run_without_code(tmp_path, APP, ("ragotel_milvus", "ragotel_faiss"), str(tmp_path / "lite.db"))
    assert proc.returncode == 0, proc.stderr
    assert "FOUND 2" in proc.stdout
    assert [s["name"] for s in spans] == ["retrieval milvus"] * 3  # FAISS on as well: no span of its own
    attrs = spans[0]["attributes"]
    assert (attrs[sc.DB_SYSTEM_NAME], attrs[sc.DB_COLLECTION_NAME], attrs[sc.DB_OPERATION_NAME]) == (
        "milvus", "docs", "search")
    assert (attrs[sc.GEN_AI_REQUEST_TOP_K], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (2, 2)
    assert not any("passage" in json.dumps(s["attributes"]) for s in spans)  # content capture is off by default


@pytest.mark.parametrize(("uri", "server"), [
    ("./milvus_demo.db", {}),
    ("unix:/tmp/milvus.sock", {}),
    ("http://localhost:19530", {sc.SERVER_ADDRESS: "localhost", sc.SERVER_PORT: 19530}),
    ("http://10.0.0.7", {sc.SERVER_ADDRESS: "10.0.0.7", sc.SERVER_PORT: 19530}),  # pymilvus' default port
    ("https://in03-abc.serverless.gcp-us-west1.cloud.zilliz.com",
     {sc.SERVER_ADDRESS: "in03-abc.serverless.gcp-us-west1.cloud.zilliz.com", sc.SERVER_PORT: 443}),
    ("https://user:secret@milvus.example.com:19538/mydb",
     {sc.SERVER_ADDRESS: "milvus.example.com", sc.SERVER_PORT: 19538}),
    ("tcp://milvus:19530", {sc.SERVER_ADDRESS: "milvus", sc.SERVER_PORT: 19530}),
])
def test_the_server_is_read_from_the_uri_never_its_credentials(uri: str, server: dict[str, Any]) -> None:
    from ragotel.instrumentation.milvus import _read_server

    assert _read_server(uri).attributes == server
