"""FAISS searches as retrieval steps, on the real faiss-cpu: flat, IVF and HNSW indexes, L2 and inner
product, batches, ``k`` past ``ntotal``, empty indexes, NaN queries, range searches, writes, and searches
inside the application's own retrieval step."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import faiss
import numpy as np
import pytest

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded

DIM = 16


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    ragotel.instrument_faiss()
    yield
    ragotel.uninstrument_faiss()


def vectors(n: int, seed: int = 0) -> np.ndarray:
    found = np.random.default_rng(seed).standard_normal((n, DIM)).astype("float32")
    faiss.normalize_L2(found)
    return found


def flat(cls: Any = faiss.IndexFlatIP, n: int = 100) -> Any:
    index = cls(DIM)
    index.add(vectors(n))
    return index


def faiss_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if s.name == "retrieval faiss"]


def step_points(recorded: Recorded) -> list[Any]:
    return [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes.get(sc.RAG_STEP_NAME) == "faiss"]


def test_inner_product_search_is_a_retrieval_step(recorded: Recorded) -> None:
    index = flat()
    distances, _ = index.search(vectors(1, seed=1), 4)
    (span,) = faiss_spans(recorded)
    attrs = span.attributes
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    assert attrs[sc.GEN_AI_DATA_SOURCE_ID] == "faiss"
    assert attrs[sc.GEN_AI_REQUEST_TOP_K] == 4
    assert attrs[sc.RAG_RETRIEVAL_QUERIES] == 1
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 4
    assert attrs[sc.RAG_INDEX_SIZE] == 100
    assert attrs[sc.RAG_FAISS_DIMENSION] == DIM
    assert (attrs[sc.RAG_FAISS_INDEX_TYPE], attrs[sc.RAG_FAISS_METRIC]) == ("IndexFlatIP", "inner_product")
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(float(distances.max()))
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(float(distances.min()))
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in attrs  # similarities: the default reading
    (point,) = step_points(recorded)
    assert point.attributes[sc.RAG_STEP_KIND] == "retrieval"
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "ok"
    assert point.span_ids == (span.context.span_id,)
    documents = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert sum(p.value or 0 for p in documents) == 4


def test_l2_scores_are_distances_and_no_similarity_threshold_judges_them(recorded: Recorded) -> None:
    from ragotel._core import runtime

    index = flat(faiss.IndexFlatL2)
    saved = runtime.update(low_score=0.5)  # a similarity threshold every L2 distance here is under
    try:
        index.search(vectors(1, seed=1), 3)
    finally:
        runtime.swap(saved)
    (span,) = faiss_spans(recorded)
    assert span.attributes[sc.RAG_FAISS_METRIC] == "l2"
    assert span.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
    (point,) = step_points(recorded)
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "ok"  # not low_score


def test_a_batch_counts_every_query_and_k_past_ntotal_counts_only_real_ids(recorded: Recorded) -> None:
    index = flat(n=3)
    _, ids = index.search(vectors(5, seed=2), 10)
    assert (ids == -1).sum() == 5 * 7
    (span,) = faiss_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_QUERIES] == 5
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 15


def test_an_empty_index_is_an_empty_retrieval(recorded: Recorded) -> None:
    index = faiss.IndexFlatIP(DIM)
    _, ids = index.search(vectors(1), 4)
    assert (ids == -1).all()
    (span,) = faiss_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 0
    assert sc.RAG_RETRIEVAL_SCORE_MAX not in span.attributes
    (point,) = step_points(recorded)
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "empty"


def test_nan_queries_never_raise_into_the_caller(recorded: Recorded) -> None:
    index = flat()
    query = np.full((1, DIM), np.nan, dtype="float32")
    expected = faiss.IndexFlatIP.search.__wrapped__(index, query, 4)  # what faiss alone returns
    found = index.search(query, 4)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(found, expected, strict=True))
    (span,) = faiss_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_QUERIES] == 1


def test_faiss_errors_pass_through_unchanged_and_are_recorded(recorded: Recorded) -> None:
    index = flat()
    with pytest.raises(AssertionError):  # faiss checks the query's dimension with an assert
        index.search(np.zeros((1, DIM + 1), dtype="float32"), 4)
    (span,) = faiss_spans(recorded)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[sc.ERROR_TYPE] == "AssertionError"
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert error.attributes[sc.RAG_STEP_NAME] == "faiss"


def test_ivf_and_hnsw_report_their_search_parameters(recorded: Recorded) -> None:
    quantizer = faiss.IndexFlatL2(DIM)
    ivf = faiss.IndexIVFFlat(quantizer, DIM, 4)
    ivf.train(vectors(200))
    ivf.add(vectors(200))
    ivf.nprobe = 3
    ivf.search(vectors(2, seed=3), 5)
    hnsw = faiss.IndexHNSWFlat(DIM, 8)
    hnsw.add(vectors(50))
    hnsw.hnsw.efSearch = 24
    hnsw.search(vectors(1, seed=4), 2)
    first, second = faiss_spans(recorded)
    assert (first.attributes[sc.RAG_FAISS_INDEX_TYPE], first.attributes[sc.RAG_FAISS_NPROBE]) == ("IndexIVFFlat", 3)
    assert (second.attributes[sc.RAG_FAISS_INDEX_TYPE], second.attributes[sc.RAG_FAISS_EF_SEARCH]) == (
        "IndexHNSWFlat", 24)


def test_range_search(recorded: Recorded) -> None:
    index = flat()
    lims, distances, _ = index.range_search(vectors(2, seed=5), 0.2)
    (span,) = faiss_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == int(lims[-1]) == len(distances)


def test_writes_are_counted(recorded: Recorded) -> None:
    index = faiss.IndexIDMap(faiss.IndexFlatIP(DIM))
    index.add_with_ids(vectors(7), np.arange(7, dtype="int64"))
    flat(n=5)
    written = recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)
    assert sum(p.value or 0 for p in written) == 12
    assert {p.attributes[sc.GEN_AI_DATA_SOURCE_ID] for p in written} == {"faiss"}


def test_inside_the_applications_retrieval_it_is_a_sub_step_that_counts_nothing_twice(recorded: Recorded) -> None:
    index = flat()

    @ragotel.retrieval("search")
    def search(query: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
        scores, ids = index.search(query, k)
        return [{"id": int(i), "score": float(s)} for i, s in zip(ids[0], scores[0], strict=True)]

    search(vectors(1, seed=6))
    (outer,) = [s for s in recorded.spans() if s.name == "retrieval search"]
    (inner,) = faiss_spans(recorded)
    assert inner.parent.span_id == outer.context.span_id
    assert inner.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3
    documents = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert [p.attributes[sc.RAG_STEP_NAME] for p in documents] == ["search"]  # counted once, by the app's step
    (sub,) = step_points(recorded)
    assert sc.RAG_RETRIEVAL_QUALITY not in sub.attributes  # judged once, on the app's step


def test_uninstrument_restores_faiss() -> None:
    ragotel.uninstrument_faiss()
    assert "replacement_search" in faiss.IndexFlatL2.search.__qualname__
    ragotel.instrument_faiss()
    assert faiss.IndexFlatL2.search.__wrapped__.__qualname__.endswith("replacement_search")


def test_suppressed_and_disabled_searches_are_plain(recorded: Recorded) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    index = flat()
    with suppress_instrumentation():
        index.search(vectors(1), 2)
    assert faiss_spans(recorded) == []


def test_a_step_that_is_the_faiss_search_gets_its_facts_and_no_second_span(recorded: Recorded) -> None:
    index = flat(faiss.IndexFlatL2)

    @ragotel.retrieval("faiss", data_source="faiss")
    def nearest(query: np.ndarray, k: int) -> list[tuple[int, float]]:
        scores, ids = index.search(query, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True)]

    nearest(vectors(1, seed=7), 2)
    (span,) = recorded.spans()
    assert span.name == "retrieval faiss"
    assert (span.attributes[sc.RAG_FAISS_INDEX_TYPE], span.attributes[sc.RAG_INDEX_SIZE]) == ("IndexFlatL2", 100)
    assert span.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
    (point,) = step_points(recorded)
    assert point.count == 1


def test_faiss_run_by_milvus_lite_as_its_engine_is_left_to_milvus(recorded: Recorded,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    index = flat()
    query, more = vectors(1, seed=8), vectors(3, seed=9)
    recorded.clear()
    # Code of Milvus Lite's runs only once its package is imported: a stand-in package (a test double) where
    # milvus-lite is not installed.
    monkeypatch.setitem(sys.modules, "milvus_lite", sys.modules.get("milvus_lite") or types.ModuleType("milvus_lite"))
    # The calls made from a module of Milvus Lite's (milvus-lite 3 searches each segment's FAISS index on its gRPC
    # server's threads): a Milvus search's work, not a FAISS search of the application's.
    engine = {"__name__": "milvus_lite.index.faiss_hnsw", "index": index, "query": query, "more": more}
    exec("found = index.search(query, 2)\nindex.add(more)", engine)
    assert recorded.spans() == []
    assert recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN) == []
    assert engine["found"][1].shape == (1, 2)  # searched all the same
    assert index.ntotal == 103
    index.search(query, 2)  # the application's own call, on the same index
    assert len(faiss_spans(recorded)) == 1
