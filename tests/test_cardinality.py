"""Metric attribute values are capped per key: values chosen by clients or built from input cannot make a
series each; past the cap they become ``_other`` and ``rag.metric.attribute.overflow`` counts them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._core.cardinality import OTHER, limiter
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

LIMIT = 3


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    runtime.update(value_limit=LIMIT)
    limiter.reset()
    yield
    limiter.reset()


def _overflows(recorded: Recorded) -> dict[str, float]:
    totals: dict[str, float] = {}
    for point in recorded.points(sc.RAG_METRIC_ATTRIBUTE_OVERFLOW):
        key = str(point.attributes[sc.RAG_METRIC_ATTRIBUTE])
        totals[key] = totals.get(key, 0) + (point.value or 0)
    return totals


def test_model_names_from_requests_are_capped(recorded: Recorded, small_cap: None) -> None:
    with RecordedOpenAIServer() as server, httpx.Client(base_url=server.base_url, timeout=5) as client:
        ragotel.instrument_httpx(client)
        for n in range(10):  # a client choosing a new model name on every request
            client.post("/chat/completions", json={"model": f"user-model-{n}", "messages": [
                {"role": "user", "content": "hi"}]})
    spans = [s for s in recorded.spans() if s.name.startswith("chat ")]
    assert len({s.attributes[sc.GEN_AI_REQUEST_MODEL] for s in spans}) == 10  # spans keep the real value
    for name in (sc.GEN_AI_CLIENT_OPERATION_DURATION, sc.GEN_AI_CLIENT_TOKEN_USAGE):
        models = {p.attributes[sc.GEN_AI_REQUEST_MODEL] for p in recorded.points(name)}
        assert models == {"user-model-0", "user-model-1", "user-model-2", OTHER}, name
    assert _overflows(recorded) == {sc.GEN_AI_REQUEST_MODEL: 7}


def test_step_names_built_from_input_are_capped(recorded: Recorded, small_cap: None) -> None:
    for n in range(8):
        with ragotel.retrieval(f"search-{n}", data_source="faiss") as step:
            step.record(documents=[{"id": "a", "score": 0.5}])
    names = {p.attributes[sc.RAG_STEP_NAME] for p in recorded.points(sc.RAG_STEP_DURATION)}
    assert names == {"search-0", "search-1", "search-2", OTHER}
    assert {p.attributes[sc.RAG_STEP_NAME] for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)} == names
    assert _overflows(recorded)[sc.RAG_STEP_NAME] >= 5


def test_values_seen_before_the_cap_keep_their_series(recorded: Recorded, small_cap: None) -> None:
    for model in ("a", "b", "c", "d", "a", "e", "b"):
        with ragotel.generation("call") as step:
            step.record(model=model)
    models = [p.attributes[sc.GEN_AI_REQUEST_MODEL] for p in recorded.points(sc.RAG_STEP_DURATION)]
    assert sorted(set(models), key=str) == [OTHER, "a", "b", "c"]
    assert _overflows(recorded) == {sc.GEN_AI_REQUEST_MODEL: 2}
