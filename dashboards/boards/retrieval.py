"""Retrieval: search latency seen by the caller and inside the retriever, documents, scores, index."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import panels as p
from dashboards import promql as q

RETRIEVAL = q.eq(q.STEP_KIND, "retrieval")
# A search and its parts (encode the query, search the index, rerank): the kinds, never the app's names.
SEARCH_KINDS = q.re(q.STEP_KIND, "retrieval|embedding|rerank")
# The steps to break a search down into: the app's own step names, read from the data.
STEP_VARIABLE = "step"


def build() -> Dashboard:
    app = q.sel()
    retrieval = q.sel(RETRIEVAL)
    read_hits = q.sel(RETRIEVAL, q.ne(q.QUALITY, ""))  # retrievals whose hits ragotel read
    prompts = q.sel(q.eq(q.STEP_KIND, "prompt"))
    searches = q.sel(SEARCH_KINDS)
    retrieving_jobs = f"group by (job) ({q.STEP_DURATION}_count{retrieval})"
    return (
        p.app_variables(
            p.dashboard("rag-retrieval", "RAG retrieval",
                        "Search latency and its sub-steps, documents returned, scores, index size and load times.",
                        ["retrieval"]))
        .with_variable(p.label_values_variable(
            STEP_VARIABLE, "Step", q.STEP_NAME,
            f'{q.STEP_DURATION}_count{{namespace=~"$namespace", job=~"$service", {SEARCH_KINDS}}}',
            description="Retrieval, embedding and rerank steps by name (rag.step.name), as the services record "
                        "them"))
        .with_panel(p.series(
            "Search latency", p.SECONDS,
            *p.percentiles(q.STEP_DURATION, retrieval, "job", q.STEP_NAME),
            description="Retrieval steps (rag.step.kind=retrieval): the chat API's call to the retriever and "
                        "the retriever's own search."))
        .with_panel(p.series(
            "p95 by step", p.SECONDS,
            p.Query(q.quantile(0.95, q.STEP_DURATION, q.sel(SEARCH_KINDS, q.re(q.STEP_NAME, f"${STEP_VARIABLE}")),
                               by=f"job, {q.STEP_KIND}, {q.STEP_NAME}"),
                    q.legend("job", q.STEP_KIND, q.STEP_NAME), exemplar=True),
            description="A search and its sub-steps (query embedding, index search, rerank: whatever the services "
                        "name them), one line per step; pick steps in the Step variable."))
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
            "Search errors by step", p.PER_SECOND,
            p.Query(f"sum by (job, {q.STEP_KIND}, {q.STEP_NAME}, {q.ERROR_TYPE}) ({q.rate(q.STEP_ERRORS, searches)})",
                    f"{q.legend('job', q.STEP_KIND, q.STEP_NAME)}: {q.legend(q.ERROR_TYPE)}"),
            description="Failed retrieval, embedding and rerank steps by service, step and error type: search "
                        "failures, a retriever down or not ready (seen by its caller as a failed retrieval)."))
        .with_panel(p.series(
            "Requests/s of services that retrieve", p.REQUESTS_PER_SECOND,
            p.Query(f"sum by (job, {q.ROUTE}, {q.STATUS}) ({q.rate(q.HTTP_DURATION + '_count', app)}) "
                    f"and on (job) {retrieving_jobs}", q.legend("job", q.ROUTE, q.STATUS)),
            description="Requests answered by each service that runs retrieval steps (a retriever, or the chat "
                        "API that calls it), by route and status code (a retriever answers 503 while not ready)."))
    )
