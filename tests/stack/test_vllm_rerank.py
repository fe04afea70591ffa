"""Rerank and score calls on a real vLLM serving a cross-encoder (a tiny random-weight BERT, ``--runner pooling``),
through the instrumented httpx client: the spans and the step metric come from vLLM's own answers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import ragotel
from examples.reference_app.vllm_server import VllmServer, ensure_vllm, free_port
from ragotel import semconv as sc
from tests.conftest import Recorded

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["The clinic opens at eight.", "The cat sat on the mat.", "Retry the request after a timeout."]


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    python = ensure_vllm(ROOT)
    model = ROOT / "var" / "tiny-reranker"
    subprocess.run([str(python), str(ROOT / "scripts" / "make_tiny_reranker.py"), str(model)], check=True)
    with VllmServer(python, model, free_port(), served_model_name="tiny-reranker",
                    log_path=tmp_path_factory.mktemp("reranker-log") / "vllm.log",
                    extra_args=("--runner", "pooling", "--max-model-len", "512")) as server:
        yield server


@pytest.fixture
def client(reranker: VllmServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{reranker.host}:{reranker.port}", timeout=60) as c:
        ragotel.instrument_httpx(c)
        yield c


def test_rerank_on_real_vllm(recorded: Recorded, client: httpx.Client) -> None:
    response = client.post("/v1/rerank", json={"model": "tiny-reranker", "query": "When does the clinic open?",
                                               "documents": DOCUMENTS, "top_n": 2})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    span = recorded.span("rerank tiny-reranker").attributes
    assert (span[sc.RAG_RERANK_INPUT_DOCUMENTS], span[sc.RAG_RERANK_TOP_N]) == (3, 2)
    assert span[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == len(results) == 2
    assert span[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(r["relevance_score"] for r in results))
    assert span[sc.GEN_AI_USAGE_INPUT_TOKENS] == response.json()["usage"]["prompt_tokens"]
    assert span[sc.GEN_AI_RESPONSE_ID] == response.json()["id"]
    (duration,) = recorded.points(sc.RAG_STEP_DURATION)
    assert duration.attributes[sc.RAG_STEP_KIND] == "rerank" and duration.attributes[sc.RAG_RETRIEVAL_QUALITY] == "ok"


def test_score_and_a_refused_rerank_on_real_vllm(recorded: Recorded, client: httpx.Client) -> None:
    with ragotel.rerank("rescore"):
        scored = client.post("/score", json={"model": "tiny-reranker", "text_1": "clinic hours",
                                             "text_2": DOCUMENTS[:2]})
    assert scored.status_code == 200, scored.text
    call = recorded.span("rerank tiny-reranker").attributes
    assert call[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2
    assert call[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(d["score"] for d in scored.json()["data"]))
    refused = client.post("/rerank", json={"model": "tiny-reranker", "documents": DOCUMENTS})  # no query
    assert refused.status_code == 400
    failed = [s for s in recorded.spans() if (s.attributes or {}).get(sc.ERROR_TYPE) == "http.4xx"]
    assert [s.name for s in failed] == ["rerank tiny-reranker"]
