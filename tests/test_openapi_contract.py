"""Both services' OpenAPI documents tell the truth, and what they expose is safe by default.

schemathesis generates requests from each service's own ``/openapi.json`` (valid and invalid ones)
and checks every answer against it: no 5xx, statuses, content types, headers and bodies as
documented. The chat API runs with its dependencies replaced by test doubles (a vLLM replaying
recorded answers, a retriever with fixed hits); the retriever serves a real TF-IDF index built here
from three documents."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from examples.reference_app import retriever
from examples.reference_app.chat_api import create_app as create_chat_app
from examples.reference_app.config import ChatSettings, RetrieverSettings
from ragotel._core import runtime
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.retriever_double import RetrieverDouble

DOCUMENTS = [
    ("faq-parking", "Parking", "The clinic car park has 40 spaces and two electric car chargers."),
    ("faq-hours", "Opening hours", "The clinic is open from 8 am to 6 pm on weekdays."),
    ("policy-cancel", "Cancellations", "Cancel an appointment at least 24 hours ahead by phone."),
]
TOKEN = "reload-token-for-tests"


def write_sparse_index(directory: Path) -> Path:
    """A real TF-IDF index in the layout the ingest step writes (sparse part only)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    directory.mkdir(parents=True, exist_ok=True)
    vectorizer = TfidfVectorizer().fit([text for _, _, text in DOCUMENTS])
    sparse.save_npz(directory / "sparse_matrix.npz", vectorizer.transform([t for _, _, t in DOCUMENTS]).tocsr())
    with (directory / "sparse_vectorizer.pkl").open("wb") as f:
        pickle.dump(vectorizer, f)
    with (directory / "meta.jsonl").open("w") as f:
        for n, (doc_id, section, text) in enumerate(DOCUMENTS):
            f.write(json.dumps({"id": f"{doc_id}#{n}", "doc_id": doc_id, "section": section, "text": text,
                                "source": f"{doc_id}.md"}) + "\n")
    return directory


@contextmanager
def no_index_gauges() -> Iterator[None]:
    """Loading an index sets gauges, which every later metric collection in this process would report."""
    saved = runtime.update(disabled=True)
    try:
        yield
    finally:
        runtime.swap(saved)


@pytest.fixture(scope="module")
def doubles() -> Iterator[tuple[RecordedOpenAIServer, RetrieverDouble]]:
    with RecordedOpenAIServer(chunk_delay=0) as vllm, RetrieverDouble() as search:
        yield vllm, search


def chat_app(doubles: tuple[RecordedOpenAIServer, RetrieverDouble], **overrides: Any) -> FastAPI:
    vllm, search = doubles
    return create_chat_app(ChatSettings(retriever_url=search.url, vllm_url=vllm.base_url, **overrides))


@pytest.fixture(scope="module")
def search_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    index_dir = write_sparse_index(tmp_path_factory.mktemp("index"))
    app = retriever.create_app(RetrieverSettings(index_dir=index_dir, backend="sparse", reload_token=TOKEN),
                               load=False)
    with no_index_gauges():
        app.state.index.load()
    return app


# -- what the documents say --------------------------------------------------------------------------
def test_chat_schema_documents_every_answer(doubles: Any) -> None:
    spec = chat_app(doubles).openapi()
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["properties"]["detail"]["type"] == "string"  # what a 422 really carries, not an array
    for path in ("/chat", "/chat/stream", "/dryrun"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"200", "403", "413", "422", "502", "503", "504"} <= set(responses), (path, responses.keys())
        assert responses["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert list(spec["paths"]["/chat/stream"]["post"]["responses"]["200"]["content"]) == ["text/event-stream"]
    request = spec["components"]["schemas"]["ChatRequest"]
    assert request["additionalProperties"] is False


def test_retriever_schema_documents_every_answer(search_app: FastAPI) -> None:
    spec = search_app.openapi()
    assert {"200", "413", "422", "500", "503"} <= set(spec["paths"]["/search"]["post"]["responses"])
    assert {"200", "401", "403", "500"} <= set(spec["paths"]["/reload"]["post"]["responses"])
    assert spec["components"]["schemas"]["SearchRequest"]["additionalProperties"] is False


STRICT = [({"debug": "yes"}, "debug"), ({"debug": 0}, "debug"), ({"k": "4"}, "k"), ({"k": True}, "k"),
          ({"max_tokens": 8.5}, "max_tokens"), ({"colour": "blue"}, "colour")]


@pytest.mark.parametrize(("extra", "field"), STRICT, ids=[str(e) for e, _ in STRICT])
def test_chat_types_are_strict_and_unknown_fields_refused(doubles: Any, extra: dict[str, Any], field: str) -> None:
    with TestClient(chat_app(doubles)) as chat:
        response = chat.post("/chat", json={"question": "Is there parking?", **extra})
    assert response.status_code == 422 and field in response.json()["detail"], response.text


@pytest.mark.parametrize("extra", [{"k": "4"}, {"k": True}, {"k": 2.5}, {"colour": "blue"}], ids=str)
def test_retriever_types_are_strict_and_unknown_fields_refused(search_app: FastAPI, extra: dict[str, Any]) -> None:
    with TestClient(search_app) as search:
        response = search.post("/search", json={"query": "parking", **extra})
        assert response.status_code == 422 and next(iter(extra)) in response.json()["detail"], response.text
        assert search.post("/search", json={"query": "parking", "k": 2}).status_code == 200


# -- safe by default ---------------------------------------------------------------------------------
def test_debug_output_and_dryrun_are_off_unless_enabled(doubles: Any) -> None:
    with TestClient(chat_app(doubles)) as chat:
        debug = chat.post("/chat", json={"question": "Is there parking?", "debug": True})
        dry = chat.post("/dryrun", json={"question": "Is there parking?"})
        assert "messages" not in chat.post("/chat", json={"question": "Is there parking?"}).json()
    assert debug.status_code == 403 and "RAG_DEBUG_ENDPOINTS" in debug.json()["detail"]
    assert dry.status_code == 403 and "RAG_DEBUG_ENDPOINTS" in dry.json()["detail"]
    with TestClient(chat_app(doubles, debug_endpoints=True)) as chat:
        assert "messages" in chat.post("/chat", json={"question": "Is there parking?", "debug": True}).json()
        assert chat.post("/dryrun", json={"question": "Is there parking?"}).json()["would_send"]["messages"]


def test_reload_needs_the_token(search_app: FastAPI, tmp_path: Path) -> None:
    with TestClient(search_app) as search:
        assert search.post("/reload").status_code == 401
        wrong = search.post("/reload", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        with no_index_gauges():
            ok = search.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["items"] == len(DOCUMENTS)
    (tmp_path / "token").write_text(TOKEN + "\n")
    unconfigured = retriever.create_app(RetrieverSettings(index_dir=tmp_path, reload_token=""), load=False)
    with TestClient(unconfigured) as search:
        refused = search.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 403 and "turned off" in refused.json()["detail"]


def test_reload_token_comes_from_a_mounted_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    monkeypatch.setenv("RAG_RELOAD_TOKEN_FILE", str(tmp_path / "token"))
    assert RetrieverSettings().reload_token == TOKEN


def test_error_bodies_carry_no_paths(tmp_path: Path) -> None:
    missing = tmp_path / "secret-location" / "index"
    app = retriever.create_app(RetrieverSettings(index_dir=missing, reload_token=TOKEN), load=False)
    with pytest.raises(FileNotFoundError):
        app.state.index.load()
    with TestClient(app, raise_server_exceptions=False) as search:
        bodies = [search.get("/ready").text, search.post("/search", json={"query": "parking"}).text,
                  search.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"}).text]
    assert all("secret-location" not in body and "Errno" not in body for body in bodies), bodies
    assert "run the ingest step" in bodies[0]


# -- schemathesis ------------------------------------------------------------------------------------
SCHEMATHESIS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                        suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def chat_with_doubles(doubles: Any) -> FastAPI:
    return chat_app(doubles)


def run_schemathesis(app: FastAPI) -> int:
    """Valid and invalid examples for every operation, each answer checked against the schema."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        has_input = len(operation.body) > 0 or any(True for _ in operation.iter_parameters())
        # An operation without input (GET /health) has no invalid requests to make.
        for mode in schemathesis.GenerationMode if has_input else [schemathesis.GenerationMode.POSITIVE]:

            @SCHEMATHESIS
            @given(case=operation.as_strategy(mode))
            def check(case: Any) -> None:
                nonlocal calls
                calls += 1
                case.call_and_validate()  # every check: no 5xx, status, content type, headers, body

            check()
    return calls


def test_schemathesis_chat_api_with_test_doubles(doubles: Any) -> None:
    assert run_schemathesis(chat_app(doubles)) > 100


def test_schemathesis_retriever_on_a_real_sparse_index(search_app: FastAPI) -> None:
    assert run_schemathesis(search_app) > 50
