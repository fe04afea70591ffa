"""RAG overview: traffic, errors by stage, end-to-end latency and its breakdown, tokens and cost."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import panels as p
from dashboards import promql as q

RETRIEVAL = q.eq(q.STEP_KIND, "retrieval")
PIPELINE = q.eq(q.STEP_KIND, "pipeline")


def build() -> Dashboard:
    app, by_model = q.sel(), q.sel(model=q.MODEL)
    requests = f"sum by (job) ({q.rate(q.HTTP_DURATION + '_count', app)})"
    tokens = q.tokens()
    cost = q.rate(q.COST, by_model)
    return (
        p.app_variables(
            p.dashboard("rag-overview", "RAG overview",
                        "Requests, errors by stage, latency by step, tokens and cost of ragotel services.",
                        ["overview"]), q.OPERATION_DURATION + "_count")
        .with_panel(p.single("Requests/s", p.REQUESTS_PER_SECOND, p.Query(requests, q.legend("job")),
                             description="Requests each service answered per second, whatever its routes are "
                                         "called (health, readiness and /metrics are not counted)."))
        .with_panel(p.single("5xx ratio", p.PERCENT_UNIT,
                             p.Query(q.share(q.HTTP_DURATION + "_count", q.sel(q.re(q.STATUS, "5..")), app, "job"),
                                     q.legend("job")),
                             description="Share of each service's requests answered with a 5xx (it or a dependency "
                                         "failed)."))
        .with_panel(p.single("End-to-end p95", p.SECONDS, p.Query(q.quantile(0.95, q.PIPELINE_DURATION, app)),
                             description="95th percentile of whole pipelines (rag.pipeline.duration; "
                                         "gen_ai.invoke_agent.duration with the latest conventions)."))
        .with_panel(p.single("Tokens/s", p.TOKENS_PER_SECOND, p.Query(f"sum({tokens})"),
                             description="Input and output tokens per second across models."))
        .with_panel(p.single("Cost", p.USD_PER_HOUR, p.Query(f"sum({cost}) * 3600"),
                             description="Spend rate of model calls (rag.cost.usd), in USD per hour."))
        .with_panel(p.single("In flight", p.COUNT, p.Query(f"sum({q.HTTP_ACTIVE}{app})"),
                             description="HTTP requests being served now (http.server.active_requests)."))
        .with_row(p.row("Traffic and errors"))
        .with_panel(p.series(
            "Requests/s by route and status", p.REQUESTS_PER_SECOND,
            p.Query(f"sum by (job, {q.ROUTE}, {q.STATUS}) ({q.rate(q.HTTP_DURATION + '_count', app)})",
                    q.legend("job", q.ROUTE, q.STATUS)),
            description="Every HTTP request the services answered, by route template and status code."))
        .with_panel(p.series(
            "Errors/s by stage", p.PER_SECOND,
            p.Query(f"sum by (job, {q.STEP_KIND}, {q.ERROR_TYPE}) "
                    f"({q.rate(q.STEP_ERRORS, q.sel(q.ne(q.STEP_KIND, 'pipeline')))})",
                    f"{q.legend('job', q.STEP_KIND)}: {q.legend(q.ERROR_TYPE)}"),
            description="Failed steps (rag.step.errors) by the service, the stage that failed and the error type. "
                        "Pipelines are in their own panel: each failure counts once here. A retriever's failure "
                        "also fails its caller's retrieval step: one line per service, not stacked."))
        .with_panel(p.series(
            "Failed pipelines/s", p.PER_SECOND,
            p.Query(f"sum by (job, {q.PIPELINE_NAME}, {q.ERROR_TYPE}) ({q.rate(q.STEP_ERRORS, q.sel(PIPELINE))})",
                    f"{q.legend('job')} {q.PIPELINE_LEGEND}: {q.legend(q.ERROR_TYPE)}"),
            description="Pipelines that ended in an error, by pipeline and error type: the roll-up of the stages "
                        "beside, one per failed request.", stack=True))
        .with_panel(p.series(
            "Body size p95 by route", "bytes",
            p.Query(q.quantile(0.95, q.HTTP_REQUEST_BODY_SIZE, app, by=f"job, {q.ROUTE}"),
                    f"request {q.legend('job', q.ROUTE)}"),
            p.Query(q.quantile(0.95, q.HTTP_RESPONSE_BODY_SIZE, app, by=f"job, {q.ROUTE}"),
                    f"response {q.legend('job', q.ROUTE)}"),
            description="Request and response bodies (http.server.request.body.size / response.body.size: "
                        "Content-Length, or the bytes that passed; a streamed answer in full).", width=24))
        .with_row(p.row("Latency"))
        .with_panel(p.series(
            "End-to-end latency", p.SECONDS,
            *p.percentiles(q.PIPELINE_DURATION, app, q.WORKFLOW, q.AGENT),
            description="Whole pipelines (chat, chat_stream) from the first step to the answer; "
                        "exemplar dots link to their traces."))
        .with_panel(p.series(
            "p95 by step", p.SECONDS,
            p.Query(q.step_quantile(0.95, f"job, {q.STEP_KIND}, {q.STEP_NAME}"),
                    q.legend("job", q.STEP_KIND, q.STEP_NAME), exemplar=True),
            description="Where the time goes: every instrumented step (rag.step.duration, and model calls made "
                        "outside a step, gen_ai.client.operation.duration) by kind and name."))
        .with_panel(p.series(
            "Time share by step kind", p.SECONDS,
            p.Query(q.step_durations("_sum", q.STEP_KIND), q.legend(q.STEP_KIND)),
            description="Seconds spent per second of wall time in each kind of step, stacked: the latency "
                        "breakdown.", stack=True))
        .with_row(p.row("Retrieval quality"))
        .with_panel(p.series(
            "Chunks sent to the model per request", p.COUNT,
            p.Query(f"sum by (job) ({q.rate(q.PROMPT_CONTEXT_CHUNKS, app)}) / "
                    f"sum by (job) ({q.rate(q.PIPELINE_DURATION + '_count', app)})", "chunks {{job}}"),
            description="Retrieved chunks placed in prompts (rag.prompt.context.chunks) per pipeline: what the "
                        "model answers from."))
        .with_panel(p.series(
            "Empty and low-score retrievals", p.PERCENT_UNIT,
            p.Query(q.share(q.STEP_DURATION + "_count", q.sel(RETRIEVAL, q.eq(q.QUALITY, "empty")),
                            q.sel(RETRIEVAL, q.ne(q.QUALITY, "")), "job"), "empty {{job}}"),
            p.Query(q.share(q.STEP_DURATION + "_count", q.sel(RETRIEVAL, q.eq(q.QUALITY, "low_score")),
                            q.sel(RETRIEVAL, q.ne(q.QUALITY, "")), "job"), "low score {{job}}"),
            description="Share of retrievals that found nothing, or whose best hit scored under the low-score "
                        "threshold (rag.retrieval.quality); RagRetrievalEmptyRateHigh / LowScoreRateHigh alert."))
        .with_panel(p.series(
            "Evaluations by verdict", p.PERCENT_UNIT,
            p.Query(f"sum by (job, {q.EVALUATION}, {q.VERDICT}) ({q.rate(q.EVALUATIONS, app)}) / on (job, "
                    f"{q.EVALUATION}) group_left sum by (job, {q.EVALUATION}) ({q.rate(q.EVALUATIONS, app)})",
                    q.legend("job", q.EVALUATION, q.VERDICT)),
            description="Share of each verdict of every online check and feedback (ragotel.record_evaluation: "
                        "rag.evaluations by gen_ai.evaluation.name and score label), e.g. answers citing no source "
                        "(cites_sources, RagAnswersUncitedRateHigh alerts) or users' thumbs down."))
        .with_row(p.row("Tokens and cost"))
        .with_panel(p.series(
            "Tokens/s by type", p.TOKENS_PER_SECOND,
            p.Query(f"sum by ({q.MODEL}, {q.TOKEN_TYPE}) ({tokens})", q.legend(q.MODEL, q.TOKEN_TYPE)),
            description="Input and output tokens per second (gen_ai.client.token.usage; with the latest "
                        "conventions, gen_ai.client.inference.usage.input_tokens / output_tokens)."))
        .with_panel(p.series(
            "Cost by model", p.USD_PER_HOUR,
            p.Query(f"sum by ({q.MODEL}) ({cost}) * 3600", q.legend(q.MODEL)),
            description="Spend rate (rag.cost.usd) by model, in USD per hour."))
    )
