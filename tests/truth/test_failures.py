"""Ground truth for failures as applications write them: each failure counted once per step kind, named by
what failed.

The scenarios are the shapes the migration guide recommends and the reference app uses: a retrieval step
around the search that fails, a retrieval step around a call to a retriever service that times out and is
re-raised as the application's own exception, a generation step around an SDK call that the server refuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import openai
import pytest

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

REQUESTS = 3


class SearchDown(Exception):
    pass


class StageError(Exception):
    """An application's wrapper, raised ``from`` what failed (as the reference app's is)."""


def _errors(recorded: Recorded) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for p in recorded.points(sc.RAG_STEP_ERRORS):
        key = (str(p.attributes[sc.RAG_STEP_KIND]), str(p.attributes[sc.ERROR_TYPE]))
        found[key] = found.get(key, 0) + (p.value or 0)
    return found


@ragotel.retrieval("dense_faiss_search", data_source="dense")
def dense_search(query: str) -> list[dict[str, object]]:
    raise SearchDown("index not loaded")


def test_a_failure_through_nested_retrieval_steps_counts_once(recorded: Recorded) -> None:
    for _ in range(REQUESTS):
        with pytest.raises(SearchDown), ragotel.pipeline("answer"), ragotel.retrieval("search"):
            dense_search("q")
    etype = f"{__name__}.SearchDown"
    assert _errors(recorded) == {("retrieval", etype): REQUESTS, ("pipeline", etype): REQUESTS}
    failed = [s for s in recorded.spans() if (s.attributes or {}).get(sc.ERROR_TYPE) == etype]
    assert len(failed) == 3 * REQUESTS  # every span the failure left says so


def test_a_failure_caught_and_a_second_one_raised_count_twice(recorded: Recorded) -> None:
    """Not the same failure: the inner one was handled, the step then failed on its own."""
    with pytest.raises(ValueError), ragotel.retrieval("search"):
        with contextlib.suppress(SearchDown):
            dense_search("q")
        raise ValueError("fallback failed too")
    assert _errors(recorded) == {("retrieval", f"{__name__}.SearchDown"): 1, ("retrieval", "ValueError"): 1}


@pytest.fixture
def service() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as server:
        yield server


def test_a_timed_out_call_wrapped_by_the_application_is_a_timeout(
    recorded: Recorded, service: RecordedOpenAIServer
) -> None:
    with pytest.raises(StageError), ragotel.retrieval("search"):
        try:
            httpx.post(f"{service.url}/v1/chat/completions", json={"model": "fault-slow"}, timeout=0.2)
        except httpx.TimeoutException as exc:
            raise StageError("the retriever did not answer in time") from exc
    (span,) = [s for s in recorded.spans() if s.name == "retrieval search"]
    assert span.attributes is not None and span.attributes[sc.ERROR_TYPE] == "timeout"
    assert _errors(recorded) == {("retrieval", "timeout"): 1}


def test_a_generation_step_around_a_refused_sdk_call_counts_it_once(
    recorded: Recorded, service: RecordedOpenAIServer, http_clients_instrumented: None
) -> None:
    client = openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0)
    for _ in range(REQUESTS):
        with pytest.raises(openai.InternalServerError), ragotel.generation("answer"):
            client.chat.completions.create(model="fault-500", messages=[{"role": "user", "content": "q"}])
    assert _errors(recorded) == {("generation", "http.5xx"): REQUESTS}
    assert {s.name: (s.attributes or {}).get(sc.ERROR_TYPE) for s in recorded.spans()} == {
        "chat fault-500": "http.5xx", "chat answer": "http.5xx"}


def test_an_sdk_retrying_a_refused_call_counts_each_attempt_once(
    recorded: Recorded, service: RecordedOpenAIServer, http_clients_instrumented: None
) -> None:
    """The SDK tries three times (two retries): three calls, each failed and counted once; the step around
    them fails with the last one and adds no count of its own."""
    client = openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=2)
    with pytest.raises(openai.InternalServerError), ragotel.generation("answer"):
        client.chat.completions.create(model="fault-500", messages=[{"role": "user", "content": "q"}])
    attempts = len(service.requests)
    assert attempts == 3  # what the server saw is the truth
    calls = [s for s in recorded.spans() if s.name == "chat fault-500"]
    assert len(calls) == attempts and all((s.attributes or {}).get(sc.ERROR_TYPE) == "http.5xx" for s in calls)
    assert _errors(recorded) == {("generation", "http.5xx"): attempts}
    durations = recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert sum(p.count or 0 for p in durations) == attempts
    assert sum(p.count or 0 for p in recorded.points(sc.RAG_STEP_DURATION)) == 1


def test_two_failures_on_answers_of_one_status_class_are_two(
    recorded: Recorded, service: RecordedOpenAIServer, http_clients_instrumented: None
) -> None:
    """An embedding step keeps the first of two failed calls (each a 500, each in its own step) and raises it after
    the second: its inner embedding step counted the second, the outer one counts the first. Both are 5xx; they
    are still two failures (hypothesis found the outer one's going uncounted)."""
    client = openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0)

    def ask() -> None:
        client.chat.completions.create(model="fault-500", messages=[{"role": "user", "content": "q"}])

    with pytest.raises(openai.InternalServerError), ragotel.embedding("outer"):
        first: BaseException | None = None
        try:
            with ragotel.retrieval("lookup"):
                ask()
        except openai.InternalServerError as exc:
            first = exc
        with contextlib.suppress(openai.InternalServerError), ragotel.embedding("inner"):
            ask()
        assert first is not None
        raise first
    assert _errors(recorded) == {("generation", "http.5xx"): 2, ("retrieval", "http.5xx"): 1,
                                 ("embedding", "http.5xx"): 2}
