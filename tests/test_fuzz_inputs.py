"""Fuzzed input for the chat API and the retriever (hypothesis): whatever arrives, no 5xx for bad
input and every rejection says what was wrong. The oracle is the request model itself: a body it
accepts must be served, one it refuses must get a 422 with a message. Dependencies are test doubles
(chat) or absent (the retriever, which then answers 503 "not ready" to valid searches)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from examples.reference_app import retriever
from examples.reference_app.chat_api import ChatRequest, create_app
from examples.reference_app.config import ChatSettings, RetrieverSettings
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.retriever_double import RetrieverDouble

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
FIELD_VALUES = st.one_of(
    JSON, st.text(min_size=0, max_size=2100), st.integers(-5, 2000), st.floats(-3, 3, allow_nan=False),
    st.sampled_from(["", " ", "\n\t", "x" * 2001, "Is there parking?"]),
)


def bodies(fields: list[str]) -> st.SearchStrategy[Any]:
    """Mostly near-valid objects (known fields, odd values, an unknown key now and then), plus anything."""
    near = st.fixed_dictionaries({}, optional={name: FIELD_VALUES for name in [*fields, "unknown"]})
    return st.one_of(near, near, near, JSON)


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def chat() -> Iterator[TestClient]:
    with RecordedOpenAIServer() as vllm, RetrieverDouble() as search:
        # Debug output on, so that every body the model accepts is served (off, "debug": true is a 403).
        app = create_app(ChatSettings(retriever_url=search.url, vllm_url=vllm.base_url, debug_endpoints=True))
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client


@pytest.fixture(scope="module")
def search_unready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = retriever.create_app(RetrieverSettings(index_dir=tmp_path_factory.mktemp("no-index")), load=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def valid_chat(body: Any) -> bool:
    try:
        ChatRequest.model_validate(body)
    except ValidationError:
        return False
    return True


def assert_rejected_with_a_message(status: int, payload: dict[str, Any]) -> None:
    assert status == 422, payload
    assert isinstance(payload.get("detail"), str) and payload["detail"].strip()


@SETTINGS
@given(body=bodies(["question", "k", "max_tokens", "temperature", "debug"]),
       path=st.sampled_from(["/chat", "/chat/stream", "/dryrun"]))
def test_chat_accepts_exactly_what_its_model_accepts(chat: TestClient, body: Any, path: str) -> None:
    response = chat.post(path, json=body)
    if valid_chat(body):
        assert response.status_code == 200, response.text
    else:
        assert_rejected_with_a_message(response.status_code, response.json())
        assert response.json()["stage"] == "request"


@SETTINGS
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_chat_rejects_bodies_that_are_not_json_objects(chat: TestClient, raw: bytes) -> None:
    response = chat.post("/chat", content=raw, headers={"Content-Type": "application/json"})
    try:
        valid = valid_chat(json.loads(raw))
    except ValueError:
        valid = False
    if not valid:
        assert_rejected_with_a_message(response.status_code, response.json())


@SETTINGS
@given(body=bodies(["query", "k"]))
def test_retriever_rejects_bad_searches_and_says_not_ready_to_good_ones(search_unready: TestClient,
                                                                         body: Any) -> None:
    response = search_unready.post("/search", json=body)
    try:
        retriever.SearchRequest.model_validate(body)
    except ValidationError:
        assert_rejected_with_a_message(response.status_code, response.json())
    else:
        assert response.status_code == 503 and "not ready" in response.json()["detail"]


def test_oracle_is_not_trivial(chat: TestClient, tmp_path: Path) -> None:
    assert valid_chat({"question": "Is there parking?"}) and not valid_chat({"question": " "})
    assert chat.post("/chat", json={"question": "Is there parking?"}).status_code == 200
