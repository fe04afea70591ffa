"""LanceDB searches as retrieval steps, on the real lancedb (sync ``lancedb.connect`` and async
``lancedb.connect_async`` over one table of 2,000 × 64 vectors with a full-text index): vector, batched,
full-text and hybrid searches through ``to_list``, ``to_pandas``, ``to_arrow`` and ``to_batches``; that the span
is the search and not the query builder; plain scans left alone; searches inside the application's own
retrieval step; content capture; writes; failures; and uninstrumenting."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from lancedb.index import FTS
from lancedb.query import AsyncVectorQuery, LanceHybridQueryBuilder, LanceVectorQueryBuilder
from lancedb.rerankers import Reranker
from opentelemetry.instrumentation.utils import suppress_instrumentation

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel.instrumentation.lancedb import instrument_lancedb, uninstrument_lancedb
from tests.conftest import Recorded
from tests.no_code import run_without_code

ROWS, DIM, K = 2000, 64, 5
TABLE = "docs"
TOPICS = ("clinic opening hours", "parking near the station", "refund policy", "vaccination appointments")


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    instrument_lancedb()
    yield
    uninstrument_lancedb()


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype("float32")


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of one table, ``docs``: ids, texts (full-text indexed) and 2,000 vectors of 64 dimensions."""
    where = tmp_path_factory.mktemp("lancedb")
    data = pa.table({
        "id": [f"doc-{i}" for i in range(ROWS)],
        "text": [f"{TOPICS[i % len(TOPICS)]} note {i}" for i in range(ROWS)],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors(ROWS).ravel()), DIM),
    })
    table = lancedb.connect(where).create_table(TABLE, data)
    table.create_index("text", config=FTS())
    return where


@pytest.fixture
def table(path: Path) -> Any:
    return lancedb.connect(path).open_table(TABLE)


async def async_table(path: Path) -> Any:
    return await (await lancedb.connect_async(path)).open_table(TABLE)


def query(seed: int) -> np.ndarray:
    """A query near one stored vector: row ``seed`` comes back first."""
    return vectors(ROWS)[seed] + 0.01


def lancedb_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if s.name == "retrieval lancedb"]


def step_points(recorded: Recorded) -> list[Any]:
    return [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes.get(sc.RAG_STEP_NAME) == "lancedb"]


def documents_counted(recorded: Recorded, step: str = "lancedb") -> float:
    return sum(p.value or 0 for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
               if p.attributes.get(sc.RAG_STEP_NAME) == step)


class ObservingReranker(Reranker):
    """A reranker (LanceDB's extension point, run inside the search once its rows exist) that notes which spans
    are open at that moment and keeps the order, adding the ``_relevance_score`` LanceDB requires."""

    def __init__(self, recorded: Recorded, scores: Any = None) -> None:
        super().__init__()
        self.recorded = recorded
        self.scores = scores
        self.open_then: list[str] = []
        self.rows_then: int | None = None
        self.at_ns: int | None = None

    def rerank_vector(self, query: str, vector_results: pa.Table) -> pa.Table:
        self.at_ns = time.time_ns()
        self.open_then = self.recorded.open_spans()
        self.rows_then = vector_results.num_rows
        scores = self.scores if self.scores is not None else pa.array(
            [1.0 / (1.0 + d) for d in vector_results["_distance"].to_pylist()], pa.float32())
        return vector_results.append_column("_relevance_score", scores)

    def rerank_hybrid(self, query: str, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        raise NotImplementedError("only vector searches are reranked here")


# -- sync vector searches ----------------------------------------------------------------------------
def test_each_to_list_and_to_arrow_is_one_retrieval_step(recorded: Recorded, table: Any) -> None:
    searches = 3
    lists = [table.search(query(i)).limit(K).to_list() for i in range(searches)]
    arrows = [table.search(query(i)).limit(K).to_arrow() for i in range(searches)]
    assert [r[0]["id"] for r in lists] == [a["id"][0].as_py() for a in arrows] == ["doc-0", "doc-1", "doc-2"]
    spans = lancedb_spans(recorded)
    assert len(spans) == 2 * searches == len(recorded.spans())
    (point,) = step_points(recorded)
    assert point.count == 2 * searches
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "ok"
    assert documents_counted(recorded) == 2 * searches * K
    attrs = spans[-1].attributes
    assert attrs[sc.DB_SYSTEM_NAME] == "lancedb"
    assert attrs[sc.GEN_AI_DATA_SOURCE_ID] == "lancedb"
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    assert (attrs[sc.DB_COLLECTION_NAME], attrs[sc.DB_OPERATION_NAME]) == (TABLE, "search")
    assert attrs[sc.GEN_AI_REQUEST_TOP_K] == K
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == K
    assert (attrs[sc.RAG_RETRIEVAL_SCORE_KIND], attrs[sc.RAG_RETRIEVAL_DISTANCE]) == ("distance", "l2")
    distances = arrows[-1]["_distance"].to_pylist()
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(distances))
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(distances))
    assert attrs[sc.RAG_RETRIEVAL_SCORE_AVG] == pytest.approx(sum(distances) / K)
    assert sc.RAG_RETRIEVAL_QUERIES not in attrs  # one vector
    assert recorded.open_spans() == []


def test_to_pandas_is_one_search_and_its_conversion_is_not_the_search(recorded: Recorded, table: Any) -> None:
    """``to_pandas`` runs ``to_arrow``, then converts: the span is the search, one per call."""
    searches = 3
    for i in range(searches):
        frame = table.search(query(i)).limit(K).to_pandas()
        assert len(frame) == K and frame["id"][0] == f"doc-{i}"
    spans = lancedb_spans(recorded)
    assert len(spans) == searches == len(recorded.spans())
    assert all(s.status.status_code.name == "UNSET" and s.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == K
               for s in spans)
    (point,) = step_points(recorded)
    assert (point.count, point.attributes[sc.RAG_OUTCOME]) == (searches, "ok")
    assert documents_counted(recorded) == searches * K


def test_a_batch_of_vectors_counts_every_query_with_the_distance_type_asked(recorded: Recorded, table: Any) -> None:
    found = table.search(np.stack([query(1), query(2), query(3)])).distance_type("cosine").limit(K).to_arrow()
    assert found.num_rows == 3 * K and set(found["query_index"].to_pylist()) == {0, 1, 2}
    (span,) = lancedb_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_QUERIES] == 3
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3 * K
    assert span.attributes[sc.RAG_RETRIEVAL_DISTANCE] == "cosine"
    assert documents_counted(recorded) == 3 * K


def test_no_limit_is_lancedbs_default_of_ten(recorded: Recorded, table: Any) -> None:
    rows = table.search(query(4)).to_list()
    (span,) = lancedb_spans(recorded)
    assert len(rows) == span.attributes[sc.GEN_AI_REQUEST_TOP_K] == span.attributes[
        sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 10


def test_to_batches_is_timed_and_its_reader_left_to_the_application(recorded: Recorded, table: Any) -> None:
    reader = table.search(query(5)).limit(K).to_batches()
    (span,) = lancedb_spans(recorded)  # ended when to_batches returned: LanceDB collected the rows before that
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == K
    assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in span.attributes  # the rows are in the reader, unread
    assert reader.read_all().num_rows == K
    (point,) = step_points(recorded)
    assert point.count == 1 and sc.RAG_RETRIEVAL_QUALITY not in point.attributes
    assert documents_counted(recorded) == 0


# -- the span is the search ---------------------------------------------------------------------------
def test_the_span_is_open_while_the_search_produces_its_rows_and_ends_with_to_arrow(
        recorded: Recorded, table: Any) -> None:
    reranker = ObservingReranker(recorded)
    before = time.time_ns()
    found = table.search(query(6)).limit(K).rerank(reranker, query_string="clinic").to_arrow()
    after = time.time_ns()
    assert reranker.rows_then == found.num_rows == K
    assert reranker.open_then == ["retrieval lancedb"]  # the rows existed inside the span
    (span,) = lancedb_spans(recorded)
    assert reranker.at_ns is not None
    assert before <= span.start_time <= reranker.at_ns <= span.end_time <= after
    assert recorded.open_spans() == []
    # A reranked search is ranked by _relevance_score: a similarity, the distance kept beside it.
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in span.attributes
    assert span.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(found["_relevance_score"].to_pylist()))


def test_the_span_lasts_the_search_not_the_query_builder(recorded: Recorded, table: Any) -> None:
    """Loose on purpose (timings on shared cores): no span is shorter than building a query takes at its fastest,
    and the spans cover most of each ``to_arrow`` call (the median share is at least half)."""
    builder_ns, call_ns = [], []
    for i in range(7):
        started = time.perf_counter_ns()
        builder = table.search(query(i)).limit(K)
        built = time.perf_counter_ns()
        builder.to_arrow()
        done = time.perf_counter_ns()
        builder_ns.append(built - started)
        call_ns.append(done - built)
    spans = lancedb_spans(recorded)
    durations = [s.end_time - s.start_time for s in spans]
    assert len(durations) == 7
    assert min(durations) >= min(builder_ns)
    assert statistics.median(d / c for d, c in zip(durations, call_ns, strict=True)) >= 0.5


# -- other kinds of search ---------------------------------------------------------------------------
def test_a_full_text_search_is_a_retrieval_with_similarity_scores(recorded: Recorded, table: Any) -> None:
    found = table.search("refund", query_type="fts").limit(K).to_arrow()
    assert found.num_rows == K
    (span,) = lancedb_spans(recorded)
    attrs = span.attributes
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == K
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(found["_score"].to_pylist()))
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in attrs and sc.RAG_RETRIEVAL_DISTANCE not in attrs
    assert documents_counted(recorded) == K


def test_a_sync_hybrid_search_is_one_step_though_its_legs_run_on_a_thread_pool(
        recorded: Recorded, table: Any) -> None:
    found = table.search(query_type="hybrid").vector(query(7)).text("parking").limit(K).to_list()
    assert len(found) == K
    (span,) = recorded.spans()  # the vector and full-text legs make no spans of their own
    assert span.name == "retrieval lancedb" and span.parent is None
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == K
    assert span.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(r["_relevance_score"] for r in found))
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in span.attributes
    assert span.attributes[sc.RAG_RETRIEVAL_DISTANCE] == "l2"
    (point,) = step_points(recorded)
    assert point.count == 1
    assert documents_counted(recorded) == K


def test_plain_scans_are_not_retrievals(recorded: Recorded, table: Any) -> None:
    assert len(table.search().limit(K).to_list()) == K
    assert table.search().where("id = 'doc-3'").to_arrow().num_rows == 1
    assert table.search().limit(3).to_batches().read_all().num_rows == 3
    assert lancedb_spans(recorded) == [] and step_points(recorded) == []


# -- async -----------------------------------------------------------------------------------------------
async def test_async_searches_are_one_step_per_call(recorded: Recorded, path: Path) -> None:
    table = await async_table(path)
    searches = 3
    lists = [await table.query().nearest_to(query(i)).limit(K).to_list() for i in range(searches)]
    arrows = [await table.vector_search(query(i)).limit(K).to_arrow() for i in range(searches)]
    for i in range(searches):
        frame = await (await table.search(query(i))).limit(K).to_pandas()
        assert len(frame) == K
    assert [r[0]["id"] for r in lists] == [a["id"][0].as_py() for a in arrows] == ["doc-0", "doc-1", "doc-2"]
    spans = lancedb_spans(recorded)
    assert len(spans) == 3 * searches == len(recorded.spans())
    (point,) = step_points(recorded)
    assert point.count == 3 * searches
    assert documents_counted(recorded) == 3 * searches * K
    attrs = spans[0].attributes
    assert (attrs[sc.DB_COLLECTION_NAME], attrs[sc.GEN_AI_REQUEST_TOP_K]) == (TABLE, K)
    assert (attrs[sc.RAG_RETRIEVAL_SCORE_KIND], attrs[sc.RAG_RETRIEVAL_DISTANCE]) == ("distance", "l2")
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(r["_distance"] for r in lists[0]))


async def test_async_batches_full_text_and_hybrid(recorded: Recorded, path: Path) -> None:
    table = await async_table(path)
    batch = await table.query().nearest_to([query(1), query(2)]).distance_type("dot").limit(K).to_arrow()
    text = await table.query().nearest_to_text("vaccination").limit(K).to_list()
    hybrid = await table.query().nearest_to(query(3)).nearest_to_text("clinic").limit(K).to_arrow()
    assert (batch.num_rows, len(text), hybrid.num_rows) == (2 * K, K, K)
    first, second, third = recorded.spans()  # the hybrid search's legs make no spans of their own
    assert all(s.name == "retrieval lancedb" and s.parent is None for s in (first, second, third))
    assert (first.attributes[sc.RAG_RETRIEVAL_QUERIES], first.attributes[sc.RAG_RETRIEVAL_DISTANCE]) == (2, "dot")
    assert first.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2 * K
    assert sc.RAG_RETRIEVAL_DISTANCE not in second.attributes
    assert second.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(r["_score"] for r in text))
    assert third.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(
        max(hybrid["_relevance_score"].to_pylist()))
    assert documents_counted(recorded) == 4 * K


async def test_async_to_batches_and_plain_scans(recorded: Recorded, path: Path) -> None:
    table = await async_table(path)
    reader = await table.query().nearest_to(query(8)).limit(K).to_batches()
    assert sum(b.num_rows for b in await reader.read_all()) == K
    assert len(await table.query().limit(K).to_list()) == K  # a plain scan
    assert (await table.query().where("id = 'doc-9'").to_arrow()).num_rows == 1
    (span,) = recorded.spans()
    assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in span.attributes
    (point,) = step_points(recorded)
    assert point.count == 1


async def test_the_async_span_is_open_while_the_search_produces_its_rows(recorded: Recorded, path: Path) -> None:
    table = await async_table(path)
    reranker = ObservingReranker(recorded)
    search = table.query().nearest_to(query(9)).limit(K)
    assert isinstance(search, AsyncVectorQuery)
    before = time.time_ns()
    found = await search.rerank(reranker, query_string="clinic").to_arrow()
    after = time.time_ns()
    assert reranker.rows_then == found.num_rows == K
    assert reranker.open_then == ["retrieval lancedb"]
    (span,) = lancedb_spans(recorded)
    assert reranker.at_ns is not None
    assert before <= span.start_time <= reranker.at_ns <= span.end_time <= after


async def test_concurrent_async_searches_are_separate_steps(recorded: Recorded, path: Path) -> None:
    table = await async_table(path)
    found = await asyncio.gather(*(table.query().nearest_to(query(i)).limit(K).to_list() for i in range(4)))
    assert [rows[0]["id"] for rows in found] == ["doc-0", "doc-1", "doc-2", "doc-3"]
    spans = lancedb_spans(recorded)
    assert len(spans) == 4 and all(s.parent is None for s in spans)
    assert len({s.context.trace_id for s in spans}) == 4


# -- inside the application's steps --------------------------------------------------------------------
def test_inside_the_applications_retrieval_it_is_a_sub_step_that_counts_nothing_twice(
        recorded: Recorded, table: Any) -> None:
    @ragotel.retrieval("search")
    def search(vector: np.ndarray) -> list[dict[str, Any]]:
        return [{"id": r["id"], "text": r["text"]} for r in table.search(vector).limit(K).to_list()]

    search(query(10))
    outer = recorded.span("retrieval search")
    (inner,) = lancedb_spans(recorded)
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == K
    documents = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert [(p.attributes[sc.RAG_STEP_NAME], p.value) for p in documents] == [("search", K)]
    (sub,) = step_points(recorded)
    assert sub.count == 1 and sc.RAG_RETRIEVAL_QUALITY not in sub.attributes


def test_a_step_that_is_the_lancedb_search_gets_its_facts_and_no_second_span(recorded: Recorded, table: Any) -> None:
    @ragotel.retrieval("lancedb", data_source="lancedb")
    def nearest(vector: np.ndarray) -> list[dict[str, Any]]:
        return table.search(vector).limit(K).to_list()  # type: ignore[no-any-return]

    nearest(query(11))
    (span,) = recorded.spans()
    assert (span.attributes[sc.DB_COLLECTION_NAME], span.attributes[sc.GEN_AI_REQUEST_TOP_K]) == (TABLE, K)
    (point,) = step_points(recorded)
    assert point.count == 1
    assert documents_counted(recorded) == K


# -- content ------------------------------------------------------------------------------------------
def test_documents_stay_off_the_span_unless_content_capture_is_on(recorded: Recorded, table: Any) -> None:
    table.search(query(12)).limit(K).to_list()
    (span,) = lancedb_spans(recorded)
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in span.attributes
    assert not any("note" in str(v) or "doc-" in str(v) for v in span.attributes.values())

    recorded.clear()
    runtime.update(content_spans=True)
    found = table.search(query(12)).limit(K).to_arrow()
    (span,) = lancedb_spans(recorded)
    documents = json.loads(str(span.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]))
    assert [d["id"] for d in documents] == found["id"].to_pylist()
    assert [d["content"] for d in documents] == found["text"].to_pylist()
    assert [d["score"] for d in documents] == pytest.approx(found["_distance"].to_pylist(), abs=1e-5)
    assert not any(isinstance(v, str) and "note" in v for p in recorded.points() for v in p.attributes.values())


# -- failures ----------------------------------------------------------------------------------------------
def test_lancedb_errors_pass_through_unchanged_and_are_recorded(recorded: Recorded, table: Any) -> None:
    with pytest.raises(ValueError, match="doesn't match") as raised:  # raised when the search runs
        table.search(np.zeros(DIM + 3, dtype="float32"), vector_column_name="vector").limit(K).to_list()
    (span,) = lancedb_spans(recorded)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[sc.ERROR_TYPE] == type(raised.value).__qualname__
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert error.attributes[sc.RAG_STEP_NAME] == "lancedb"
    assert recorded.open_spans() == []


def test_a_result_shape_not_understood_is_reported_once_and_returned_untouched(
        recorded: Recorded, table: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A reranker whose ``_relevance_score`` is text, which LanceDB passes on: no statistics can be read."""
    from ragotel._core import safe

    safe._seen.discard("reading a lancedb result")  # so this test sees the one warning however the run was ordered
    texts = pa.array([f"rank {i}" for i in range(K)])
    uninstrument_lancedb()
    expected = table.search(query(13)).limit(K).rerank(ObservingReranker(recorded, texts), "q").to_arrow()
    instrument_lancedb()
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        found = [table.search(query(13)).limit(K).rerank(ObservingReranker(recorded, texts), "q").to_arrow()
                 for _ in range(2)]
    assert all(f.equals(expected) for f in found)
    spans = lancedb_spans(recorded)
    assert len(spans) == 2 and all(sc.RAG_RETRIEVAL_RESULTS_RETURNED not in s.attributes for s in spans)
    assert all(s.status.status_code.name == "UNSET" for s in spans) and recorded.open_spans() == []
    warnings = [r for r in caplog.records if "reading a lancedb result" in r.getMessage()]
    assert len(warnings) == 1


def test_a_release_without_a_patched_method_stays_uninstrumented_with_one_warning(
        recorded: Recorded, table: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from ragotel.instrumentation import _base

    uninstrument_lancedb()
    original = LanceVectorQueryBuilder.to_arrow
    # Failure injection: the hybrid builder as a release that moved its to_arrow would have it.
    monkeypatch.delattr(LanceHybridQueryBuilder, "to_arrow")
    monkeypatch.setattr(_base, "_failed", set())
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        instrument_lancedb()
        instrument_lancedb()
    (warning,) = [r for r in caplog.records if "instrument_lancedb()" in r.getMessage()]
    assert f"lancedb {lancedb.__version__}" in warning.getMessage()
    assert LanceVectorQueryBuilder.to_arrow is original  # what was patched before the missing method is undone
    assert len(table.search(query(14)).limit(K).to_list()) == K
    assert recorded.spans() == []


def test_suppressed_searches_and_writes_are_plain(recorded: Recorded, tmp_path: Path) -> None:
    table = lancedb.connect(tmp_path).create_table("t", [{"id": "a", "vector": [0.0, 1.0]}])
    with suppress_instrumentation():
        table.search([0.0, 1.0]).limit(1).to_list()
        table.add([{"id": "b", "vector": [1.0, 0.0]}])
    assert recorded.spans() == [] and recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN) == []


# -- writes ---------------------------------------------------------------------------------------------
async def test_adds_and_merge_inserts_count_the_rows_they_write(recorded: Recorded, tmp_path: Path) -> None:
    def rows(ids: range) -> list[dict[str, Any]]:
        return [{"id": f"r{i}", "vector": [float(i), 1.0]} for i in ids]

    table = lancedb.connect(tmp_path).create_table("w", rows(range(2)))
    table.add(rows(range(2, 7)))  # 5: once, though the sync add runs the async one
    table.add(pa.Table.from_pylist(rows(range(7, 11)), schema=table.schema))  # 4
    unread = pa.Table.from_pylist(rows(range(11, 14)), schema=table.schema)
    table.add(pa.RecordBatchReader.from_batches(unread.schema, unread.to_batches()))  # not counted: not read
    merged = table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
        rows(range(13, 16)))  # r13 updated, r14 and r15 inserted: 3
    assert (merged.num_updated_rows, merged.num_inserted_rows) == (1, 2)
    atable = await (await lancedb.connect_async(tmp_path)).open_table("w")
    await atable.add(rows(range(16, 23)))  # 7
    amerged = await atable.merge_insert("id").when_not_matched_insert_all().execute(rows(range(22, 24)))  # 1
    assert amerged.num_inserted_rows == 1
    assert await atable.count_rows() == 24
    written = recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)
    assert sum(p.value or 0 for p in written) == 5 + 4 + 3 + 7 + 1
    assert {p.attributes[sc.GEN_AI_DATA_SOURCE_ID] for p in written} == {"lancedb"}
    assert recorded.spans() == []


# -- uninstrument ----------------------------------------------------------------------------------------
def test_uninstrument_restores_lancedb(recorded: Recorded, table: Any) -> None:
    from lancedb.merge import LanceMergeInsertBuilder
    from lancedb.query import AsyncQueryBase
    from lancedb.table import AsyncTable, LanceTable

    patched = [(LanceVectorQueryBuilder, "to_arrow"), (LanceVectorQueryBuilder, "to_batches"),
               (LanceHybridQueryBuilder, "to_arrow"), (AsyncQueryBase, "to_arrow"), (AsyncQueryBase, "to_batches"),
               (AsyncTable, "add"), (LanceTable, "add"), (LanceMergeInsertBuilder, "execute")]
    if "to_batches" in vars(AsyncVectorQuery):  # 0.40 overrides it (collecting the rows first); 0.41 inherits it
        patched.append((AsyncVectorQuery, "to_batches"))
    wrapped = {(cls, name): vars(cls)[name] for cls, name in patched}
    uninstrument_lancedb()
    originals = {(cls, name): vars(cls)[name] for cls, name in patched}
    assert all(originals[key] is not wrapped[key] and not hasattr(originals[key], "__wrapped__")
               for key in originals)
    table.search(query(15)).limit(K).to_list()
    assert recorded.spans() == []
    instrument_lancedb()
    for (cls, name), original in originals.items():
        function = vars(cls)[name]
        while hasattr(function, "__wrapped__"):
            function = function.__wrapped__
        assert function is original, (cls, name)


NO_CODE_APP = '''
"""A script with no telemetry code: a LanceDB table searched twice, as its users read results."""
import sys

import lancedb

table = lancedb.connect(sys.argv[1]).create_table(
    "docs", data=[{"id": f"p{i}", "text": f"passage {i}", "vector": [1.0, i / 8]} for i in range(8)])
found = table.search([1.0, 0.2]).limit(3).to_list()
frame = table.search([1.0, 0.5]).limit(3).to_pandas()
print("FOUND", len(found), len(frame))
'''


def test_opentelemetry_instrument_gives_one_retrieval_span_per_search_with_no_code(tmp_path: Path) -> None:
    proc, spans = run_without_code(tmp_path, NO_CODE_APP, "ragotel_lancedb", str(tmp_path / "db"))
    assert proc.returncode == 0, proc.stderr
    assert "FOUND 3 3" in proc.stdout
    assert [s["name"] for s in spans] == ["retrieval lancedb", "retrieval lancedb"]
    attrs = spans[0]["attributes"]
    assert (attrs[sc.DB_SYSTEM_NAME], attrs[sc.DB_COLLECTION_NAME]) == ("lancedb", "docs")
    assert (attrs[sc.GEN_AI_REQUEST_TOP_K], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (3, 3)
    assert not any("passage" in json.dumps(s["attributes"]) for s in spans)  # content capture is off by default
