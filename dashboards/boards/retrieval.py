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
    return (
        p.dashboard("rag-retrieval", "RAG retrieval",
                    "Search latency and its sub-steps, documents returned, scores, index size and load times.",
                    ["retrieval"])
        .with_variable(p.prometheus_variable()).with_variable(p.namespace_variable())
        .with_variable(p.service_variable())
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
            "Documents returned", p.COUNT,
            p.Query(q.mean(q.RETRIEVAL_DOCUMENTS, app, by="job"), "mean {{job}}"),
            p.Query(q.quantile(0.95, q.RETRIEVAL_DOCUMENTS, app, by="job"), "p95 {{job}}"),
            description="Documents each retrieval returned (rag.retrieval.documents)."))
        .with_panel(p.distribution(
            "Score distribution", p.COUNT,
            p.Query(f"sum by (le) (increase({q.RETRIEVAL_SCORE}_bucket{app}[{q.RATE}]))"),
            description="Similarity score of every returned document (rag.retrieval.score): a shift left means "
                        "the index stopped matching the questions."))
        .with_panel(p.series(
            "Score p50 / p10", p.COUNT,
            p.Query(q.quantile(0.5, q.RETRIEVAL_SCORE, app, by="job"), "p50 {{job}}"),
            p.Query(q.quantile(0.1, q.RETRIEVAL_SCORE, app, by="job"), "p10 {{job}}"),
            description="Median and low-end similarity scores of returned documents."))
        .with_panel(p.series(
            "Context put in prompts", p.COUNT,
            p.Query(q.mean(q.PROMPT_CONTEXT_SIZE, app, by="job"), "mean chars {{job}}"),
            description="Characters of retrieved context placed in each prompt (rag.prompt.context.size)."))
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
