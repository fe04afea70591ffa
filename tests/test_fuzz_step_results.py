"""Whatever a decorated step returns or yields — ``None``, generators, numpy arrays, objects without a
score, NaN, huge numbers, huge lists — the caller gets it back unchanged, nothing raises, the span ends
exactly once and no user text reaches a metric attribute. Fuzzed (hypothesis) through the four shapes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded

MARK = "user-text-7f3a"  # appears in every text the fuzzer makes: it must never be a metric value


class Hit:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


SCORES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**400, 10**400), st.none(),
    st.text(max_size=5), st.booleans(),
)
TEXTS = st.text(max_size=8).map(lambda t: f"{MARK}{t}")
FIELDS = st.fixed_dictionaries({}, optional={"id": TEXTS, "doc_id": st.integers(), "score": SCORES,
                                             "similarity": SCORES, "text": TEXTS | st.integers(),
                                             "content": TEXTS, MARK: TEXTS})
HITS = st.one_of(
    FIELDS,
    FIELDS.map(lambda f: Hit(**f)),
    st.tuples(FIELDS | TEXTS, SCORES),
    TEXTS,
    st.none(),
    st.integers(),
)
RESULTS = st.one_of(
    st.none(), st.integers(), TEXTS, st.binary(max_size=8), FIELDS,
    st.lists(HITS, max_size=30),
    st.lists(HITS, max_size=5).map(tuple),
    st.lists(st.lists(st.floats(allow_nan=True), max_size=6), max_size=4),  # vectors, ragged ones too
    st.sampled_from([np.zeros(0), np.ones(4), np.ones((3, 8)), np.ones((2, 2, 2)), np.array([np.nan])]),
    st.builds(lambda n: ({"id": i, "score": i / 7} for i in range(n)), st.integers(0, 5)),  # an iterator
    st.builds(lambda: {"choices": [{"message": {"content": MARK}, "finish_reason": MARK}],
                       "usage": {"prompt_tokens": -1, "completion_tokens": 2**70}, "model": MARK}),
)
KINDS = [ragotel.retrieval, ragotel.embedding, ragotel.rerank, ragotel.prompt, ragotel.generation, ragotel.pipeline]
SHAPES = ["function", "coroutine", "generator", "async generator"]


def decorate(kind: Callable[..., Any], shape: str, result: Any) -> Callable[[], Any]:
    """A step of ``kind`` and ``shape`` returning (or yielding the items of) ``result``; called, it gives
    back what the caller sees."""
    items = list(result) if isinstance(result, (list, tuple)) else [result]
    if shape == "function":
        return kind(lambda: result)  # type: ignore[no-any-return]
    if shape == "coroutine":
        async def coroutine() -> Any:
            return result
        step = kind(coroutine)
        return lambda: asyncio.run(step())
    if shape == "generator":
        def generator() -> Iterator[Any]:
            yield from items
        step = kind(generator)
        return lambda: list(step())

    async def agen() -> AsyncIterator[Any]:
        for item in items:
            yield item

    step = kind(agen)

    async def drain() -> list[Any]:
        return [item async for item in step()]

    return lambda: asyncio.run(drain())


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a is b
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a is b or a == b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(result=RESULTS, kind=st.sampled_from(KINDS), shape=st.sampled_from(SHAPES))
def test_any_result_passes_through_and_ends_the_span_once(
    recorded: Recorded, result: Any, kind: Callable[..., Any], shape: str
) -> None:
    call = decorate(kind, shape, result)
    before = len(recorded.spans())
    got = call()
    if shape in ("function", "coroutine"):
        assert got is result
    else:
        expected = list(result) if isinstance(result, (list, tuple)) else [result]
        assert len(got) == len(expected) and all(same(a, b) for a, b in zip(got, expected, strict=True))
    assert len(recorded.spans()) == before + 1
    assert recorded.open_spans() == []
    for point in recorded.points():
        for value in point.attributes.values():
            assert MARK not in str(value), point


def test_a_huge_result_costs_a_bounded_scan(recorded: Recorded) -> None:
    hits = [{"id": str(i), "score": 1.0 - i / 10**6} for i in range(200_000)]

    @ragotel.retrieval(data_source="faiss")
    def search() -> list[dict[str, Any]]:
        return hits

    assert search() is hits
    attrs = recorded.span("retrieval faiss").attributes
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 200_000
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == 1.0
    # statistics cover the first hits only: a bounded amount of work per call
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(1.0 - 999 / 10**6)


def test_mixed_and_unscored_hits_fall_back_to_one_hit_at_a_time(recorded: Recorded) -> None:
    @ragotel.retrieval(data_source="faiss")
    def search() -> list[Any]:
        return [{"id": "a", "score": 0.9}, Hit(id="b", score=0.4), ("c", 0.1), {"id": "d"}, "plain text",
                {"id": "e", "score": float("nan")}]

    search()
    attrs = recorded.span("retrieval faiss").attributes
    assert (attrs[sc.RAG_RETRIEVAL_SCORE_MAX], attrs[sc.RAG_RETRIEVAL_SCORE_MIN]) == (0.9, 0.1)
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 6
