"""Retrieval: search latency seen by the caller and inside the retriever, documents, scores, index."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import panels as p
from dashboards import promql as q

RETRIEVAL = q.eq(q.STEP_KIND, "retrieval")
# The retriever's sub-steps: dense (encode the query, search FAISS) and sparse (vectorize, dot product).
SUB_STEPS = q.re(q.STEP_NAME, "dense_encode|faiss_search|sparse_vectorize|sparse_dot")


def build() -> Dashboard:
    app = q.sel()
    retrieval = q.sel(RETRIEVAL)
    read_hits = q.sel(RETRIEVAL, q.ne(q.QUALITY, ""))  # retrievals whose hits ragotel read
    prompts = q.sel(q.eq(q.STEP_KIND, "prompt"))
    return (
        p.app_variables(
            p.dashboard("rag-retrieval", "RAG retrieval",
                        "Search latency and its sub-steps, documents returned, scores, index size and load times.",
                        ["retrieval"]))
        .with_panel(p.series(
            "Search latency", p.SECONDS,
            *p.percentiles(q.STEP_DURATION, retrieval, "job", q.STEP_NAME),
            description="Retrieval steps (rag.step.kind=retrieval): the chat API's call to the retriever and "
                        "the retriever's own search."))
        .with_panel(p.series(
            "Sub-steps p95: dense encode vs FAISS vs sparse", p.SECONDS,
            p.Query(q.quantile(0.95, q.STEP_DURATION, q.sel(SUB_STEPS), by=q.STEP_NAME),
                    q.legend(q.STEP_NAME), exemplar=True),
            description="Inside a search: query embedding, FAISS inner-product search, TF-IDF vectorize and "
                        "dot product."))
        .with_panel(p.series(
            "Documents per retrieval: returned vs kept", p.COUNT,
            p.Query(q.per_step(q.RETRIEVAL_DOCUMENTS, retrieval, read_hits, f"job, {q.STEP_NAME}"),
                    f"returned {q.legend('job', q.STEP_NAME)}"),
            p.Query(q.per_step(q.RETRIEVAL_DOCUMENTS_KEPT, retrieval, read_hits, f"job, {q.STEP_NAME}"),
                    f"kept {q.legend('job', q.STEP_NAME)}"),
            description="Mean documents each retrieval returned (rag.retrieval.documents) and kept after "
                        "filtering (rag.retrieval.documents.kept)."))
        .with_panel(p.series(
            "Retrieval quality: ok, empty, low score", p.PERCENT_UNIT,
            p.Query(f"sum by (job, {q.QUALITY}) ({q.rate(q.STEP_DURATION + '_count', read_hits)}) / "
                    f"on (job) group_left sum by (job) ({q.rate(q.STEP_DURATION + '_count', read_hits)})",
                    q.legend("job", q.QUALITY)),
            description="Share of retrievals that found nothing (empty) or whose best hit scored under the "
                        "low-score threshold (rag.retrieval.quality): the model answers from weak context.",
            stack=True))
        .with_panel(p.distribution(
            "Best-score distribution", p.COUNT,
            p.Query(f"sum by (le) (increase({q.RETRIEVAL_TOP_SCORE}_bucket{retrieval}[{q.RATE}]))"),
            description="Best score of each retrieval (rag.retrieval.top_score, with RAGOTEL_DETAILED_METRICS=true): "
                        "a shift left means the index stopped matching the questions."))
        .with_panel(p.series(
            "Best score p50 / p10", p.COUNT,
            p.Query(q.quantile(0.5, q.RETRIEVAL_TOP_SCORE, retrieval, by="job"), "p50 {{job}}", exemplar=True),
            p.Query(q.quantile(0.1, q.RETRIEVAL_TOP_SCORE, retrieval, by="job"), "p10 {{job}}", exemplar=True),
            description="Median and low-end best scores (detailed metrics); an exemplar opens the retrieval span "
                        "it came from."))
        .with_panel(p.series(
            "Context put in prompts", p.COUNT,
            p.Query(q.per_step(q.PROMPT_CONTEXT_SIZE, app, prompts, "job"), "mean chars {{job}}"),
            p.Query(q.per_step(q.PROMPT_CONTEXT_CHUNKS, app, prompts, "job"), "mean chunks {{job}}"),
            description="Characters (rag.prompt.context.size) and chunks (rag.prompt.context.chunks) of "
                        "retrieved context placed in each prompt."))
        .with_row(p.row("Index"))
        .with_panel(p.series(
            "Index size", p.COUNT,
            p.Query(f"max by (job, {q.INDEX_PART}) ({q.INDEX_ITEMS}{app})", q.legend("job", q.INDEX_PART)),
            description="Items in each loaded part of the index: vectors, metadata records, matrix rows."))
        .with_panel(p.series(
            "Index load time", p.SECONDS,
            p.Query(f"max by (job, {q.INDEX_PART}) ({q.INDEX_LOAD_DURATION}{app})",
                    q.legend("job", q.INDEX_PART)),
            description="How long the last load of each index part took (start-up and /reload)."))
        .with_panel(p.series(
            "Index age", p.SECONDS,
            p.Query(f"max by (job, {q.INDEX_PART}, {q.DATA_SOURCE}) ({q.INDEX_AGE}{app})",
                    q.legend("job", q.INDEX_PART, q.DATA_SOURCE)),
            description="Time since the index in service was built (rag.index.age, observed at each scrape); "
                        "RagIndexStale fires past 7 days.", width=8))
        .with_panel(p.series(
            "Embedding dimension", p.COUNT,
            p.Query(f"max by (job, {q.INDEX_PART}, {q.DATA_SOURCE}) ({q.INDEX_DIMENSION}{app})",
                    q.legend("job", q.INDEX_PART, q.DATA_SOURCE)),
            description="Length of the vectors in the loaded index (rag.index.dimension): it must match the "
                        "query encoder's.", width=8))
        .with_panel(p.series(
            "Index writes at ingest", p.COUNT,
            p.Query(f"sum by (job, {q.DATA_SOURCE}) (increase({q.INDEX_DOCUMENTS_WRITTEN}{app}[{q.RATE}]))",
                    f"documents written {q.legend('job', q.DATA_SOURCE)}"),
            p.Query(f"sum by (job, {q.DATA_SOURCE}) (increase({q.INDEX_CHUNKS_EMBEDDED}{app}[{q.RATE}]))",
                    f"chunks embedded {q.legend('job', q.DATA_SOURCE)}"),
            p.Query(f"sum by (job, {q.DATA_SOURCE}) (increase({q.INDEX_CHUNKS_WRITTEN}{app}[{q.RATE}]))",
                    f"chunks written {q.legend('job', q.DATA_SOURCE)}"),
            description="What ingestion runs wrote (rag.index.*.written, rag.index.chunks.embedded), pushed over "
                        "OTLP by the ingest job.", width=8))
        .with_row(p.row("Errors"))
        .with_panel(p.series(
            "Retriever errors by stage", p.PER_SECOND,
            p.Query(f"sum by (job, {q.STEP_KIND}, {q.STEP_NAME}, {q.ERROR_TYPE}) ({q.rate(q.STEP_ERRORS, app)})",
                    f"{q.legend('job', q.STEP_KIND, q.STEP_NAME)}: {q.legend(q.ERROR_TYPE)}"),
            description="Failed steps by stage and error type: bad requests, search failures, a retriever "
                        "down or not ready (seen by the caller as retrieval errors).", stack=True))
        .with_panel(p.series(
            "Search requests/s by status", p.REQUESTS_PER_SECOND,
            p.Query(f"sum by (job, {q.STATUS}) ({q.rate(q.HTTP_DURATION + '_count', q.sel(q.eq(q.ROUTE, '/search')))})",
                    q.legend("job", q.STATUS)),
            description="POST /search answered by the retriever, by status code (503 while not ready)."))
    )
