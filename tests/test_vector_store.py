"""The one mechanism every vector-store instrumentor is built on (``ragotel.instrumentation._vector``), on a store
test double whose searches and writes are plain Python: sync and coroutine searches each one retrieval step that
ends once, failures and cancellations recorded as such and passed through unchanged, a reader that fails leaving
the result untouched, nesting (own step, sub-step, the application's step for this search, the store's own
delegation) and index writes counted only once they succeeded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._genai.hits import Document
from ragotel.instrumentation._base import Patches
from ragotel.instrumentation._vector import Found, ScoreOrders, VectorStore, order_kind, score_stats
from tests.conftest import Recorded


class Shelf:
    """A vector store test double: ``search`` returns ``(id, score)`` pairs, best first."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores

    def search(self, query: list[float], limit: int = 3) -> list[tuple[str, float]]:
        if not query:
            raise ValueError("empty query")
        return [(f"doc-{i}", s) for i, s in enumerate(self.scores[:limit])]

    async def asearch(self, query: list[float], limit: int = 3) -> list[tuple[str, float]]:
        await asyncio.sleep(0)
        return self.search(query, limit)

    def search_twice(self, query: list[float], limit: int = 3) -> list[tuple[str, float]]:
        """A client method that delegates to another patched one (as a facade calls its engine)."""
        return self.search(query, limit)

    def add(self, rows: list[Any]) -> int:
        if rows is None:
            raise TypeError("no rows")
        return len(rows)


STORE = VectorStore("shelf", "shelf")


def describe(shelf: Shelf, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    limit = kwargs.get("limit", args[1] if len(args) > 1 else 3)
    return {sc.DB_COLLECTION_NAME: "books", sc.GEN_AI_REQUEST_TOP_K: limit}


def read(result: Any, shelf: Shelf, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found:
    scores = [s for _, s in result]
    documents = [Document(i, s, f"text of {i}") for i, s in result] if VectorStore.wants_documents() else None
    return Found(len(result), score_stats(scores), distances=bool(order_kind(scores)), documents=documents)


def broken_read(result: Any, shelf: Shelf, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found:
    raise KeyError("a result shape this reader does not know")


@pytest.fixture
def patched() -> Iterator[Patches]:
    patches = Patches()
    patches.apply(Shelf, "search", STORE.searching(describe, read))
    patches.apply(Shelf, "asearch", STORE.searching_async(describe, read))
    patches.apply(Shelf, "search_twice", STORE.searching(describe, read))
    patches.apply(Shelf, "add", STORE.writing(lambda shelf, args, kwargs: len(args[0])))
    yield patches
    patches.restore()


def shelf_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if s.attributes.get(sc.RAG_STEP_NAME) == "shelf"]


def durations(recorded: Recorded) -> list[Any]:
    return [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes.get(sc.RAG_STEP_NAME) == "shelf"]


def documents_sum(recorded: Recorded, step: str) -> float:
    return sum(p.value or 0 for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
               if p.attributes.get(sc.RAG_STEP_NAME) == step)


def test_each_sync_search_is_one_retrieval_step(patched: Patches, recorded: Recorded) -> None:
    shelf = Shelf([0.9, 0.7, 0.4])
    for _ in range(3):
        assert shelf.search([1.0], limit=2) == [("doc-0", 0.9), ("doc-1", 0.7)]
    spans = shelf_spans(recorded)
    assert len(spans) == 3
    attrs = spans[0].attributes
    assert attrs[sc.DB_SYSTEM_NAME] == "shelf"
    assert attrs[sc.DB_COLLECTION_NAME] == "books"
    assert attrs[sc.GEN_AI_REQUEST_TOP_K] == 2
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2
    assert (attrs[sc.RAG_RETRIEVAL_SCORE_MIN], attrs[sc.RAG_RETRIEVAL_SCORE_MAX]) == (0.7, 0.9)
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in attrs  # descending: similarities
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in attrs  # content is off by default
    assert sum(p.count or 0 for p in durations(recorded)) == 3
    assert documents_sum(recorded, "shelf") == 6


async def test_each_awaited_search_is_one_step_spanning_the_await(patched: Patches, recorded: Recorded) -> None:
    shelf = Shelf([0.1, 0.5, 0.8])  # ascending: distances
    results = await asyncio.gather(*(shelf.asearch([1.0]) for _ in range(4)))
    assert all(len(r) == 3 for r in results)
    spans = shelf_spans(recorded)
    assert len(spans) == 4
    assert {s.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] for s in spans} == {"distance"}
    assert sum(p.count or 0 for p in durations(recorded)) == 4
    assert recorded.open_spans() == []


def test_a_failing_search_reaches_the_caller_unchanged_and_is_counted_once(patched: Patches,
                                                                            recorded: Recorded) -> None:
    shelf = Shelf([0.9])
    with pytest.raises(ValueError, match="empty query"):
        shelf.search([])
    (span,) = shelf_spans(recorded)
    assert span.attributes[sc.ERROR_TYPE] == "ValueError"
    assert [p.value for p in recorded.points(sc.RAG_STEP_ERRORS)] == [1]


class SlowShelf:
    """A store test double whose search waits until it is cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def asearch(self, query: list[float], limit: int = 3) -> list[tuple[str, float]]:
        self.started.set()
        await asyncio.sleep(30)
        return []


async def test_a_cancelled_search_is_not_a_failure(recorded: Recorded) -> None:
    patches = Patches()
    patches.apply(SlowShelf, "asearch", STORE.searching_async(describe, read))
    try:
        shelf = SlowShelf()
        task = asyncio.ensure_future(shelf.asearch([1.0]))
        await shelf.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        patches.restore()
    (span,) = shelf_spans(recorded)
    assert span.attributes[sc.RAG_OUTCOME] == "cancelled"
    assert recorded.points(sc.RAG_STEP_ERRORS) == []


def test_a_reader_that_fails_leaves_the_result_and_ends_the_step(recorded: Recorded) -> None:
    patches = Patches()
    patches.apply(Shelf, "search", STORE.searching(describe, broken_read))
    try:
        result = Shelf([0.9, 0.8]).search([1.0])
    finally:
        patches.restore()
    assert result == [("doc-0", 0.9), ("doc-1", 0.8)]
    (span,) = shelf_spans(recorded)
    assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in span.attributes
    assert sum(p.count or 0 for p in durations(recorded)) == 1


def test_delegation_inside_the_store_makes_one_step(patched: Patches, recorded: Recorded) -> None:
    Shelf([0.9, 0.8]).search_twice([1.0])
    assert len(shelf_spans(recorded)) == 1


def test_under_the_applications_retrieval_it_is_a_sub_step_and_counts_no_documents(patched: Patches,
                                                                                   recorded: Recorded) -> None:
    with ragotel.retrieval("search") as step:
        found = Shelf([0.9, 0.8, 0.7]).search([1.0])
        step.record(documents=[{"id": i, "score": s} for i, s in found[:2]])
    (inner,) = shelf_spans(recorded)
    outer = recorded.span("retrieval search")
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert documents_sum(recorded, "shelf") == 0
    assert documents_sum(recorded, "search") == 2


def test_the_applications_step_for_this_store_gets_its_facts_and_no_second_span(patched: Patches,
                                                                                recorded: Recorded) -> None:
    with ragotel.retrieval("books", data_source="shelf"):
        Shelf([0.9]).search([1.0], limit=1)
    assert shelf_spans(recorded) == []
    (span,) = [s for s in recorded.spans() if s.attributes.get(sc.RAG_STEP_NAME) == "books"]
    assert span.attributes[sc.DB_COLLECTION_NAME] == "books"


def test_documents_only_with_content_capture(patched: Patches, recorded: Recorded) -> None:
    runtime.update(content_spans=True)
    Shelf([0.9, 0.8]).search([1.0])
    (span,) = shelf_spans(recorded)
    assert '"text of doc-0"' in span.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]


def test_writes_are_counted_once_they_succeeded(patched: Patches, recorded: Recorded) -> None:
    shelf = Shelf([])
    shelf.add([1, 2, 3])
    with pytest.raises(TypeError):
        shelf.add(None)  # type: ignore[arg-type]
    written = [p.value for p in recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)
               if p.attributes.get(sc.GEN_AI_DATA_SOURCE_ID) == "shelf"]
    assert written == [3]


@pytest.mark.parametrize(("scores", "kind"), [
    ([0.9, 0.5], False), ([0.1, 0.4], True), ([0.3], None), ([0.2, 0.2], None), ([None, 0.1, 0.3], True), ([], None),
])
def test_order_kind_reads_best_first_order(scores: list[float | None], kind: bool | None) -> None:
    assert order_kind(scores) is kind


def test_score_orders_remember_each_keys_last_telling_answer_bounded() -> None:
    orders = ScoreOrders(limit=2)
    assert orders.distances(("a",), [[0.1, 0.3]]) is True  # ascending: distances, remembered
    assert orders.distances(("a",), [[0.5]]) is True  # one hit tells nothing: the remembered order
    assert orders.distances(("b",), [[0.9, 0.2]]) is False
    assert orders.distances(("b",), [[0.2]], known=True) is True  # the metric the call names wins
    assert orders.distances(("c",), [[0.4, 0.4]]) is False  # ties, nothing remembered: similarities
    orders.distances(("c",), [[0.1, 0.2]])  # a third key pushes the oldest ("a") out
    assert orders.distances(("a",), [[0.5]]) is False
    assert orders.distances(None, [[0.1, 0.2]]) is True  # no key: this answer only
