"""Names and attributes per step kind, metric cardinality, content capture and error isolation."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from tests.conftest import Recorded

SECRET_QUERY = "what is the door code of ward 7"
SECRET_DOC = "The door code of ward 7 is 4417"
SECRET_ANSWER = "It is 4417."


@dataclass
class Hit:
    doc_id: str
    score: float
    text: str


@ragotel.retrieval(data_source="faiss")
def search(query: str, k: int = 4) -> list[Hit]:
    return [Hit("faq-1", 0.82, SECRET_DOC), Hit("faq-2", 0.41, "other"), Hit("faq-3", 0.2, "noise")][:k]


@ragotel.embedding(model="all-MiniLM-L6-v2")
def embed(texts: list[str]) -> list[list[float]]:
    return [[0.1] * 384 for _ in texts]


@ragotel.rerank(model="cross-encoder")
def rerank(query: str, documents: list[Hit], top_n: int = 2) -> list[tuple[Hit, float]]:
    return [(d, 1.0 - i / 10) for i, d in enumerate(documents[:top_n])]


@ragotel.prompt(template="rag-v1")
def build(question: str, hits: list[Hit]) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer from context."}, {"role": "user", "content": question}]


@ragotel.generation(model="tiny-llama", provider="vllm")
def generate(messages: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "model": "tiny-llama",
        "choices": [{"message": {"content": SECRET_ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7},
    }


@ragotel.pipeline("chat")
def chat(question: str) -> str:
    hits = search(question, k=3)
    embed([question])
    kept = [h for h, _ in rerank(question, hits)]
    messages = build(question, kept)
    return str(generate(messages)["choices"][0]["message"]["content"])


def test_span_names_and_semconv_attributes(recorded: Recorded) -> None:
    assert chat(SECRET_QUERY) == SECRET_ANSWER

    retrieval = recorded.span("retrieval faiss").attributes
    assert retrieval[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    assert retrieval[sc.GEN_AI_DATA_SOURCE_ID] == "faiss"
    assert retrieval[sc.GEN_AI_REQUEST_TOP_K] == 3
    assert retrieval[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3
    assert retrieval[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(0.82)
    assert retrieval[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(0.2)
    assert retrieval[sc.RAG_RETRIEVAL_SCORE_AVG] == pytest.approx((0.82 + 0.41 + 0.2) / 3)
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in retrieval  # serialised only with content capture on
    assert retrieval[sc.RAG_STEP_NAME] == "search"

    emb = recorded.span("embeddings all-MiniLM-L6-v2").attributes
    assert emb[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert emb[sc.GEN_AI_REQUEST_MODEL] == "all-MiniLM-L6-v2"
    assert (emb[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT], emb[sc.RAG_EMBEDDING_INPUTS]) == (384, 1)

    rr = recorded.span("rerank cross-encoder").attributes
    assert sc.GEN_AI_OPERATION_NAME not in rr
    assert (rr[sc.RAG_STEP_KIND], rr[sc.RAG_RERANK_INPUT_DOCUMENTS], rr[sc.RAG_RERANK_TOP_N]) == ("rerank", 3, 2)
    assert rr[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(1.0)

    pr = recorded.span("prompt rag-v1").attributes
    assert (pr[sc.RAG_STEP_KIND], pr[sc.GEN_AI_PROMPT_NAME], pr[sc.RAG_PROMPT_MESSAGES]) == ("prompt", "rag-v1", 2)

    gen = recorded.span("chat tiny-llama").attributes
    assert gen[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert gen[sc.GEN_AI_PROVIDER_NAME] == "vllm"
    assert (gen[sc.GEN_AI_USAGE_INPUT_TOKENS], gen[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (42, 7)
    assert gen[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert gen[sc.GEN_AI_RESPONSE_ID] == "cmpl-1"
    assert gen[sc.RAG_GENERATION_RESPONSE_CHARS] == len(SECRET_ANSWER)

    pipe = recorded.span("invoke_workflow chat")
    assert pipe.attributes[sc.GEN_AI_WORKFLOW_NAME] == "chat"
    assert all(s.context.trace_id == pipe.context.trace_id for s in recorded.spans())


def test_step_metrics(recorded: Recorded) -> None:
    chat(SECRET_QUERY)
    durations = recorded.points(sc.RAG_STEP_DURATION)
    # One duration record per step: the pipeline's is rag.pipeline.duration, none is recorded twice.
    assert sorted(p.attributes[sc.RAG_STEP_KIND] for p in durations) == [
        "embedding", "generation", "prompt", "rerank", "retrieval"]
    assert all(p.count == 1 for p in durations)
    assert recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION) == []
    (workflow,) = recorded.points(sc.RAG_PIPELINE_DURATION)
    assert workflow.attributes == {sc.RAG_STEP_KIND: "pipeline", sc.GEN_AI_WORKFLOW_NAME: "chat", sc.RAG_OUTCOME: "ok"}
    (retrieval,) = [p for p in durations if p.attributes[sc.RAG_STEP_KIND] == "retrieval"]
    assert retrieval.attributes == {sc.RAG_STEP_KIND: "retrieval", sc.RAG_STEP_NAME: "search", sc.RAG_OUTCOME: "ok",
                                    sc.GEN_AI_DATA_SOURCE_ID: "faiss", sc.RAG_RETRIEVAL_QUALITY: "ok"}
    usage = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in recorded.points(sc.GEN_AI_CLIENT_TOKEN_USAGE)}
    assert usage == {"input": 42, "output": 7}
    docs = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert sorted((p.attributes[sc.RAG_STEP_KIND], p.value) for p in docs) == [("rerank", 2), ("retrieval", 3)]
    assert recorded.points(sc.RAG_RETRIEVAL_TOP_SCORE) == recorded.points(sc.RAG_RETRIEVAL_SCORE) == []


def test_detailed_metrics_add_document_scores_and_genai_durations(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.update(detailed_metrics=True)
    chat(SECRET_QUERY)
    scores = [p for p in recorded.points(sc.RAG_RETRIEVAL_SCORE) if p.attributes[sc.RAG_STEP_KIND] == "retrieval"]
    assert scores[0].count == 3 and scores[0].sum == pytest.approx(1.43)
    top = {p.attributes[sc.RAG_STEP_KIND]: (p.count, p.sum) for p in recorded.points(sc.RAG_RETRIEVAL_TOP_SCORE)}
    assert top["retrieval"] == (1, pytest.approx(0.82)) and top["rerank"] == (1, pytest.approx(1.0))
    operations = {p.attributes[sc.GEN_AI_OPERATION_NAME] for p in recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)}
    assert operations == {"retrieval", "embeddings", "chat"}


@pytest.mark.parametrize(
    ("hits", "low_score", "quality"),
    [([], None, "empty"), ([{"id": "a", "score": 0.1}], 0.5, "low_score"), ([{"id": "a", "score": 0.9}], 0.5, "ok"),
     ([{"id": "a", "score": 0.1}], None, "low_score"), ([{"id": "a"}], 0.5, "ok")],
)
def test_retrieval_quality_labels_the_duration(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch, hits: list[dict[str, Any]], low_score: float | None,
    quality: str,
) -> None:
    runtime.update(low_score=low_score)

    @ragotel.retrieval(data_source="faiss", min_score=0.2)  # the threshold when no low_score is set
    def find(query: str) -> list[dict[str, Any]]:
        return hits

    find("q")
    (point,) = recorded.points(sc.RAG_STEP_DURATION)
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == quality


def test_metric_attributes_are_allow_listed_and_carry_no_user_text(recorded: Recorded) -> None:
    runtime.update(content_spans=True)  # even with content capture on
    chat(SECRET_QUERY)
    with pytest.raises(ValueError), ragotel.prompt("failing"):
        raise ValueError(SECRET_QUERY)
    points = recorded.points()
    assert points
    for point in points:
        assert set(point.attributes) <= sc.METRIC_ATTRIBUTES, point
        for value in point.attributes.values():
            assert SECRET_QUERY not in str(value) and "4417" not in str(value)


def _everything_exported(recorded: Recorded) -> str:
    parts = []
    for span in recorded.spans():
        parts.append(span.name)
        parts.extend(str(v) for v in (span.attributes or {}).values())
        for event in span.events:
            parts.extend(str(v) for v in (event.attributes or {}).values())
    return "\n".join(parts)


def test_content_is_not_captured_by_default(recorded: Recorded) -> None:
    chat(SECRET_QUERY)
    exported = _everything_exported(recorded)
    for secret in (SECRET_QUERY, SECRET_DOC, SECRET_ANSWER, "Answer from context."):
        assert secret not in exported


def test_content_capture_opt_in_truncates_and_redacts(recorded: Recorded) -> None:
    runtime.update(content_spans=True)
    runtime.update(max_content_chars=20)
    runtime.update(redact=lambda text: text.replace("4417", "****"))
    chat(SECRET_QUERY)
    retrieval = recorded.span("retrieval faiss").attributes
    assert retrieval[sc.GEN_AI_RETRIEVAL_QUERY_TEXT] == SECRET_QUERY[:20] + "…[truncated]"
    assert json.loads(retrieval[sc.GEN_AI_RETRIEVAL_DOCUMENTS])[0]["content"].startswith(SECRET_DOC[:20])
    generation = recorded.span("chat tiny-llama").attributes
    assert json.loads(generation[sc.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": "It is ****."}]
    assert "4417" not in _everything_exported(recorded)


def test_capture_can_be_enabled_for_one_step(recorded: Recorded) -> None:
    with ragotel.retrieval("one", capture_content=True) as step:
        step.record(query="visible here")
    with ragotel.retrieval("two") as step:
        step.record(query="not here")
    assert recorded.span("retrieval one").attributes[sc.GEN_AI_RETRIEVAL_QUERY_TEXT] == "visible here"
    assert sc.GEN_AI_RETRIEVAL_QUERY_TEXT not in recorded.span("retrieval two").attributes


def test_failing_redaction_hook_drops_the_text(recorded: Recorded) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("hook bug")

    runtime.update(content_spans=True)
    runtime.update(redact=broken)
    with ragotel.retrieval("r") as step:
        step.record(query=SECRET_QUERY, top_k=2)
    attrs = recorded.span("retrieval r").attributes
    assert sc.GEN_AI_RETRIEVAL_QUERY_TEXT not in attrs and attrs[sc.GEN_AI_REQUEST_TOP_K] == 2


def test_instrumentation_errors_never_reach_the_application(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_extractor(result: Any, step: ragotel.Step) -> None:
        raise KeyError("extractor bug")

    @ragotel.retrieval(extractor=broken_extractor)
    def lookup() -> str:
        return "result"

    caplog.set_level(logging.WARNING, logger="ragotel")
    assert lookup() == "result"
    assert lookup() == "result"
    assert len([s for s in recorded.spans() if s.name == "retrieval lookup"]) == 2
    reports = [r for r in caplog.records if r.name == "ragotel" and "reading a result" in r.getMessage()]
    assert len(reports) == 1, "an internal error is logged once, not per call"

    # a broken tracer: the function still runs and returns
    from ragotel._core import instruments as _instruments

    class ExplodingTracerDouble:
        def start_span(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("tracer bug")

    monkeypatch.setattr(_instruments, "tracer", lambda: ExplodingTracerDouble())
    with ragotel.prompt("p") as step:
        step.record(chunks=1)
    assert lookup() == "result"


def test_custom_extractor_records_other_shapes(recorded: Recorded) -> None:
    def from_response(result: dict[str, Any], step: ragotel.Step) -> None:
        step.record(documents=[(m["key"], m["similarity"]) for m in result["matches"]], index_size=result["total"])

    @ragotel.retrieval(data_source="pgvector", extractor=from_response)
    def vector_query(text: str) -> dict[str, Any]:
        return {"matches": [{"key": "a", "similarity": 0.7}], "total": 1000}

    vector_query("x")
    attrs = recorded.span("retrieval pgvector").attributes
    assert (attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED], attrs[sc.RAG_INDEX_SIZE]) == (1, 1000)
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(0.7)


def test_record_sets_model_as_metric_dimension(recorded: Recorded) -> None:
    with ragotel.generation("call") as step:
        step.record(model="tiny-llama", input_tokens=3, output_tokens=2)
    (point,) = recorded.points(sc.RAG_STEP_DURATION)
    assert point.attributes[sc.GEN_AI_REQUEST_MODEL] == "tiny-llama"
    assert {p.attributes[sc.GEN_AI_REQUEST_MODEL] for p in recorded.points(sc.GEN_AI_CLIENT_TOKEN_USAGE)} == {
        "tiny-llama"}
    assert recorded.span("chat call").attributes[sc.GEN_AI_REQUEST_MODEL] == "tiny-llama"


def test_disabled_runtime_makes_steps_plain_calls(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime.update(disabled=True)
    assert chat(SECRET_QUERY) == SECRET_ANSWER
    with ragotel.prompt("p") as step:
        step.record(chunks=3)
    assert recorded.spans() == []
    assert recorded.points() == []


def test_step_facts_recorded_on_context_manager(recorded: Recorded) -> None:
    with ragotel.pipeline("chat"):
        with ragotel.retrieval(data_source="faiss", min_score=0.3) as step:
            step.record(documents=[{"id": "x", "score": 0.9}, {"id": "y", "score": 0.1}], results_kept=1,
                        index_size=120, top_k=2)
        with ragotel.prompt(template="rag-v1") as step:
            step.record(chunks=1, context_chars=812, context_tokens=190)
    retrieval = recorded.span("retrieval faiss").attributes
    assert retrieval[sc.RAG_RETRIEVAL_MIN_SCORE] == 0.3
    assert (retrieval[sc.RAG_RETRIEVAL_RESULTS_KEPT], retrieval[sc.RAG_INDEX_SIZE]) == (1, 120)
    prompt = recorded.span("prompt rag-v1").attributes
    assert (prompt[sc.RAG_PROMPT_CHUNKS], prompt[sc.RAG_PROMPT_CONTEXT_CHARS]) == (1, 812)
    assert prompt[sc.RAG_PROMPT_CONTEXT_TOKENS] == 190
    (size,) = recorded.points(sc.RAG_PROMPT_CONTEXT_SIZE)
    (chunks,) = recorded.points(sc.RAG_PROMPT_CONTEXT_CHUNKS)
    (kept,) = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS_KEPT)
    assert (size.value, chunks.value, kept.value) == (812, 1, 1)


async def test_exemplars_point_at_the_step_that_was_timed(recorded: Recorded) -> None:
    @ragotel.retrieval(data_source="faiss")
    async def find(query: str) -> list[dict[str, Any]]:
        return [{"id": "a", "score": 0.8}]

    async with ragotel.pipeline("chat"):  # a root span: recorded after it is detached it would name nothing
        await find("q")
    retrieval, pipeline = recorded.span("retrieval faiss"), recorded.span("invoke_workflow chat")
    (step,) = recorded.points(sc.RAG_STEP_DURATION)
    (workflow,) = recorded.points(sc.RAG_PIPELINE_DURATION)
    assert step.span_ids == (retrieval.context.span_id,)
    assert workflow.span_ids == (pipeline.context.span_id,)


def test_a_pipeline_totals_the_tokens_and_cost_of_its_calls(recorded: Recorded) -> None:
    from ragotel._genai import cost

    previous = cost.set_prices(None)
    cost.set_prices({"tiny-llama": ragotel.ModelPrice(input_per_million=1.0, output_per_million=2.0)})
    try:
        with ragotel.pipeline("chat"):
            generate([])  # 42 in, 7 out
            with ragotel.generation("second", model="tiny-llama") as step:
                step.record(input_tokens=100, output_tokens=50)
            with ragotel.generation("unpriced", model="other") as step:
                step.record(input_tokens=1, output_tokens=1)
    finally:
        cost.set_prices(previous)
    by_name = {s.attributes[sc.RAG_STEP_NAME]: s.attributes for s in recorded.spans()}
    first, second = by_name["generate"], by_name["second"]
    assert first[sc.RAG_COST] == pytest.approx((42 * 1.0 + 7 * 2.0) / 1e6)
    assert second[sc.RAG_COST] == pytest.approx((100 + 100) / 1e6)
    assert sc.RAG_COST not in by_name["unpriced"]
    pipe = recorded.span("invoke_workflow chat").attributes
    assert (pipe[sc.GEN_AI_USAGE_INPUT_TOKENS], pipe[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (143, 58)
    assert pipe[sc.RAG_COST] == pytest.approx(first[sc.RAG_COST] + second[sc.RAG_COST])
