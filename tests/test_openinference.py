"""With ``RAGOTEL_OPENINFERENCE`` on, spans also carry OpenInference's keys (span kind, documents, model, token
counts) so Phoenix and other OpenInference viewers show ragotel traces; off by default, and content only with
capture on either way."""

from __future__ import annotations

import httpx
import pytest

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.test_step_attributes import SECRET_DOC, SECRET_QUERY, chat

KINDS = {"invoke_workflow chat": "CHAIN", "retrieval faiss": "RETRIEVER", "embeddings all-MiniLM-L6-v2": "EMBEDDING",
         "rerank cross-encoder": "RERANKER", "prompt rag-v1": "CHAIN", "chat tiny-llama": "LLM"}


def test_off_by_default(recorded: Recorded) -> None:
    assert runtime.current.openinference is False
    chat(SECRET_QUERY)
    for span in recorded.spans():
        assert not [k for k in span.attributes or {} if k.startswith(("openinference.", "llm.", "retrieval.",
                                                                       "input.", "output.", "embedding."))]


def test_on_spans_carry_openinference_keys(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime.update(openinference=True)
    chat(SECRET_QUERY)
    spans = {s.name: dict(s.attributes or {}) for s in recorded.spans()}
    assert {name: spans[name][sc.OI_SPAN_KIND] for name in KINDS} == KINDS
    retrieval = spans["retrieval faiss"]
    assert retrieval["retrieval.documents.0.document.id"] == "faq-1"
    assert retrieval["retrieval.documents.0.document.score"] == pytest.approx(0.82)
    assert "retrieval.documents.0.document.content" not in retrieval  # content: capture is off
    assert spans["rerank cross-encoder"]["reranker.output_documents.1.document.score"] == pytest.approx(0.9)
    generation = spans["chat tiny-llama"]
    assert generation[sc.OI_LLM_MODEL_NAME] == "tiny-llama"
    assert (generation[sc.OI_TOKEN_COUNT_PROMPT], generation[sc.OI_TOKEN_COUNT_COMPLETION],
            generation[sc.OI_TOKEN_COUNT_TOTAL]) == (42, 7, 49)
    assert spans["embeddings all-MiniLM-L6-v2"][sc.OI_EMBEDDING_MODEL_NAME] == "all-MiniLM-L6-v2"
    assert sc.OI_OUTPUT_VALUE not in generation


def test_content_keys_follow_the_capture_policy(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime.update(openinference=True)
    runtime.update(content_spans=True)
    chat(SECRET_QUERY)
    spans = {s.name: dict(s.attributes or {}) for s in recorded.spans()}
    assert spans["retrieval faiss"][sc.OI_INPUT_VALUE] == SECRET_QUERY
    assert spans["retrieval faiss"]["retrieval.documents.0.document.content"] == SECRET_DOC
    assert spans["chat tiny-llama"][sc.OI_OUTPUT_VALUE] == "It is 4417."
    assert spans["chat tiny-llama"][sc.OI_OUTPUT_MIME_TYPE] == "text/plain"


@pytest.mark.parametrize("capture", [True, False], ids=["capture-on", "capture-off"])
def test_a_model_call_over_http_has_its_question_and_answer_as_text(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch, capture: bool
) -> None:
    """Phoenix lists input.value / output.value; without them it shows JSON it builds from the response id."""
    runtime.update(openinference=True)
    runtime.update(content_spans=capture)
    body = {"model": "tiny-llama", "max_tokens": 16, "messages": [
        {"role": "system", "content": "Answer briefly."}, {"role": "user", "content": SECRET_QUERY}]}
    with RecordedOpenAIServer() as server, httpx.Client(base_url=server.base_url) as client:
        ragotel.instrument_httpx(client)
        client.post("/chat/completions", json=body)
    span = dict(recorded.span("chat tiny-llama").attributes or {})
    assert span[sc.OI_SPAN_KIND] == "LLM"
    if capture:
        assert (span[sc.OI_INPUT_VALUE], span[sc.OI_INPUT_MIME_TYPE]) == (SECRET_QUERY, "text/plain")
        assert (span[sc.OI_OUTPUT_VALUE], span[sc.OI_OUTPUT_MIME_TYPE]) == ("The clinic opens at eight.", "text/plain")
    else:
        assert not [k for k in span if k.startswith(("input.", "output."))]
