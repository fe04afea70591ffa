"""Alert rules, written once and rendered two ways: a Prometheus / Mimir ruler rule file and the same
groups as a ``PrometheusRule`` manifest (prometheus-operator, or Alloy's ``mimir.rules.kubernetes``).

Each alert carries a ``stage`` label (request, retrieval, generation, gpu, cost, scrape) that its
summary names too, so whoever is paged knows where to look first. Thresholds are the seeds' where
they gave one; change them here and regenerate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from dashboards import promql as q
from dashboards.boards import gpu

WINDOW: Final = "5m"


@dataclass(frozen=True)
class Alert:
    """One alert: ``query`` compared with ``threshold`` must hold for ``for_`` before it fires.

    The query alone (without the comparison) is what a dashboard would plot; the stack tests run it
    against a real Prometheus to prove its series exist.
    """

    name: str
    stage: str
    query: str
    op: str
    threshold: float
    for_: str
    severity: str
    summary: str
    description: str
    dashboard: str

    @property
    def expr(self) -> str:
        # In parentheses: a comparison binds tighter than `and` / `or`, which some queries end with.
        return f"({self.query}) {self.op} {_number(self.threshold)}"

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, "stage": self.stage},
            "annotations": {"summary": f"[{self.stage}] {self.summary}", "description": self.description,
                            "dashboard_uid": self.dashboard},
        }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _http(selector: str) -> str:
    return f"sum by (namespace, job) ({q.rate(q.HTTP_DURATION + '_count', selector, WINDOW)})"


def _p95(histogram: q.Metric, selector: str, by: str) -> str:
    return f"histogram_quantile(0.95, sum by ({by}, le) ({q.rate(histogram + '_bucket', selector, WINDOW)}))"


def _selector(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def _retrieval_share(quality: str) -> str:
    """Share of retrievals (those whose hits ragotel read) with this ``rag.retrieval.quality``, per namespace,
    job and step: 0, not "no data", while none has it."""
    retrieval = q.eq(q.STEP_KIND, "retrieval")
    return q.share(q.STEP_DURATION + "_count", _selector(retrieval, q.eq(q.QUALITY, quality)),
                   _selector(retrieval, q.ne(q.QUALITY, "")), f"namespace, job, {q.STEP_NAME}", WINDOW)


def _uncited_share() -> str:
    """Per namespace and job, the share of answers the ``cites_sources`` check found citing nothing."""
    checked = q.eq(q.EVALUATION, "cites_sources")
    return q.share(q.EVALUATIONS, _selector(checked, q.eq(q.VERDICT, "uncited")), _selector(checked),
                   "namespace, job", WINDOW)


STALE_INDEX_DAYS: Final = 7

# A failed request: a 5xx, or a stream that failed after its 200 went out. Both server instrumentations
# (ragotel's and FastAPI's) put error.type on http.server.request.duration for either; a 4xx has none.
FAILED: Final = f'{q.ERROR_TYPE}!=""'
# The services that answer users are the ones running pipelines, whatever their job and routes are named.
PIPELINE_JOBS: Final = f"group by (namespace, job) ({q.series(q.PIPELINE_DURATION + '_count')})"
# Stages a pipeline can fail in; "request" (4xx validation) is the caller's fault and "pipeline"
# repeats the stage that failed under it.
FAILING_STAGES: Final = q.re(q.STEP_KIND, "retrieval|embedding|rerank|prompt|generation")
# Scrape health watches every job that served, within a day, a series only these targets export: a
# ragotel service's target_info (its resource names the distro), vLLM's engine gauge, and one series
# per GPU or node of the exporters the dashboards read. Jobs are named by whoever scrapes (a
# ServiceMonitor names them after the Service): the rule never lists them.
SERVED_WINDOW: Final = "1d"
SCRAPED_SERIES: Final = (f'target_info{{{q.DISTRO}="ragotel"}}', q.VLLM_RUNNING, gpu.UTIL, "kube_node_info",
                         "node_boot_time_seconds")
WATCHED_JOBS: Final = "group by (job) (" + " or ".join(
    f"last_over_time({series}[{SERVED_WINDOW}])" for series in SCRAPED_SERIES) + ")"


def _chat_errors() -> str:
    """Per namespace and job running pipelines: the share of its requests that failed."""
    return f"{_http('{' + FAILED + '}')} / {_http('')} and on (namespace, job) {PIPELINE_JOBS}"


def _stage_errors() -> str:
    """Per namespace and stage: failed steps per pipeline. A retriever's failure is also its caller's
    (the chat API's retrieval step fails with it), so each stage counts the errors of the job that saw
    the most of them, never the sum; pipelines are summed over the namespace's jobs, so the errors of a
    retriever that runs no pipeline still find them."""
    per_job = f"sum by (namespace, job, {q.STEP_KIND}) ({q.rate(q.STEP_ERRORS, '{' + FAILING_STAGES + '}', WINDOW)})"
    return (f"max by (namespace, {q.STEP_KIND}) ({per_job}) / on (namespace) group_left "
            f"sum by (namespace) ({q.rate(q.PIPELINE_DURATION + '_count', '', WINDOW)})")


ALERTS: Final = (
    Alert(
        name="RagChatErrorRateHigh", stage="request", severity="warning", for_="5m",
        query=_chat_errors(),
        op=">", threshold=0.05,
        summary="{{ $labels.job }}: {{ $value | humanizePercentage }} of requests fail",
        description="More than 5% of the requests to a service that runs RAG pipelines failed (5xx, or a stream "
                    "that broke after it started) for 5 minutes. RagStageErrorRateHigh names the failing stage; the "
                    "RAG overview shows errors by stage.",
        dashboard="rag-overview",
    ),
    Alert(
        name="RagChatErrorRateCritical", stage="request", severity="critical", for_="5m",
        query=_chat_errors(),
        op=">", threshold=0.25,
        summary="{{ $labels.job }}: {{ $value | humanizePercentage }} of requests fail",
        description="A quarter of the requests to a service that runs RAG pipelines fail (5xx or broken "
                    "streams): it is effectively down for its users.",
        dashboard="rag-overview",
    ),
    Alert(
        name="RagStageErrorRateHigh", stage="pipeline", severity="warning", for_="5m",
        query=_stage_errors(),
        op=">", threshold=0.05,
        summary="{{ $value | humanizePercentage }} of pipelines fail in the {{ $labels.rag_step_kind }} stage",
        description="rag.step.errors for one stage exceed 5% of pipelines for 5 minutes (each stage counted by the "
                    "service that saw most of its errors). Traces: the errors-by-stage TraceQL query.",
        dashboard="rag-overview",
    ),
    Alert(
        name="RagEndToEndLatencyHigh", stage="pipeline", severity="warning", for_="10m",
        query=_p95(q.PIPELINE_DURATION, "", f"namespace, job, {q.PIPELINE_NAME}"),
        op=">", threshold=3,
        summary="{{ $labels.job }}: {{ $labels.gen_ai_workflow_name }}{{ $labels.gen_ai_agent_name }} pipeline p95 "
                "is {{ $value | humanizeDuration }}",
        description="End-to-end p95 above 3 s for 10 minutes. The p95-by-step panel shows which stage grew.",
        dashboard="rag-overview",
    ),
    Alert(
        name="RagTimeToFirstTokenHigh", stage="generation", severity="warning", for_="5m",
        query=_p95(q.TIME_TO_FIRST_CHUNK, "", f"namespace, job, {q.MODEL}"),
        op=">", threshold=1,
        summary="{{ $labels.gen_ai_request_model }}: generation time to first token p95 is "
                "{{ $value | humanizeDuration }}",
        description="Streamed answers take more than 1 s to start for 5 minutes; compare vLLM's own TTFT and "
                    "queue time on the generation dashboard.",
        dashboard="rag-generation",
    ),
    Alert(
        name="RagRetrievalLatencyHigh", stage="retrieval", severity="warning", for_="10m",
        query=_p95(q.STEP_DURATION, "{" + q.eq(q.STEP_KIND, "retrieval") + "}", f"namespace, job, {q.STEP_NAME}"),
        op=">", threshold=0.5,
        summary="{{ $labels.job }}: retrieval {{ $labels.rag_step_name }} p95 is {{ $value | humanizeDuration }}",
        description="Retrieval p95 above 500 ms for 10 minutes; the retrieval dashboard's p95-by-step panel "
                    "shows which of its sub-steps grew.",
        dashboard="rag-retrieval",
    ),
    Alert(
        name="RagRetrievalEmptyRateHigh", stage="retrieval", severity="warning", for_="10m",
        query=_retrieval_share("empty"),
        op=">", threshold=0.1,
        summary="{{ $labels.job }}: {{ $value | humanizePercentage }} of retrievals by {{ $labels.rag_step_name }} "
                "find nothing",
        description="More than 10% of retrievals returned no document for 10 minutes (rag.retrieval.quality=empty). "
                    "The model answers without context: check the index size and the retriever's filters on the "
                    "retrieval dashboard.",
        dashboard="rag-retrieval",
    ),
    Alert(
        name="RagRetrievalLowScoreRateHigh", stage="retrieval", severity="warning", for_="15m",
        query=_retrieval_share("low_score"),
        op=">", threshold=0.25,
        summary="{{ $labels.job }}: {{ $value | humanizePercentage }} of retrievals by {{ $labels.rag_step_name }} "
                "score under the threshold",
        description="More than a quarter of retrievals had their best hit under the low-score threshold for 15 "
                    "minutes (rag.retrieval.quality=low_score; RAGOTEL_RETRIEVAL_LOW_SCORE or the step's min_score). "
                    "Questions the index does not cover, or an embedding model that no longer matches it.",
        dashboard="rag-retrieval",
    ),
    Alert(
        name="RagIndexStale", stage="retrieval", severity="warning", for_="30m",
        query=(f"max by (namespace, job, {q.INDEX_PART}, {q.DATA_SOURCE}) ({q.INDEX_AGE}) / 86400"),
        op=">", threshold=STALE_INDEX_DAYS,
        summary="{{ $labels.job }}: index {{ $labels.rag_index_part }} ({{ $labels.gen_ai_data_source_id }}) was "
                "built {{ $value | humanize }} days ago",
        description=f"The index in service was built more than {STALE_INDEX_DAYS} days ago (rag.index.age). The "
                    "ingest job stopped rebuilding it, or the retriever did not load what it built; answers come "
                    "from old documents.",
        dashboard="rag-retrieval",
    ),
    Alert(
        name="VllmRequestsWaiting", stage="generation", severity="warning", for_="5m",
        query=f"sum by (namespace, {q.VLLM_MODEL}) ({q.VLLM_WAITING})",
        op=">", threshold=5,
        summary="vLLM {{ $labels.model_name }}: {{ $value }} requests waiting for a batch slot",
        description="vLLM's waiting queue stayed above 5 for 5 minutes: the engine is saturated. Add replicas "
                    "or lower max_tokens.",
        dashboard="rag-generation",
    ),
    Alert(
        name="VllmKvCacheNearlyFull", stage="generation", severity="warning", for_="5m",
        query=f"max by (namespace, {q.VLLM_MODEL}) ({q.VLLM_KV_CACHE})",
        op=">", threshold=0.9,
        summary="vLLM {{ $labels.model_name }}: KV cache {{ $value | humanizePercentage }} used",
        description="Above 90% of KV-cache blocks in use for 5 minutes; requests will be preempted.",
        dashboard="rag-generation",
    ),
    Alert(
        name="GpuMemoryHigh", stage="gpu", severity="warning", for_="5m",
        query=f"{gpu.FB_USED} / ({gpu.FB_USED} + {gpu.FB_FREE})",
        op=">", threshold=0.9,
        summary="GPU {{ $labels.gpu }} on {{ $labels.hostname }}: {{ $value | humanizePercentage }} of memory used",
        description="GPU framebuffer above 90% for 5 minutes (DCGM exporter).",
        dashboard="rag-gpu",
    ),
    Alert(
        name="RagCostSpike", stage="cost", severity="warning", for_="5m",
        query=f"sum by (namespace, {q.MODEL}) ({q.rate(q.COST, '', '10m')}) * 3600",
        op=">", threshold=10,
        summary="{{ $labels.gen_ai_request_model }}: model calls cost {{ $value | humanize }} USD/h",
        description="Spend rate above 10 USD/h for 5 minutes (rag.cost.usd from the price table).",
        dashboard="rag-cost",
    ),
    Alert(
        name="RagAnswersUncitedRateHigh", stage="generation", severity="warning", for_="30m",
        query=_uncited_share(),
        op=">", threshold=0.5,
        summary="{{ $labels.job }}: {{ $value | humanizePercentage }} of answers cite no source",
        description="More than half of the answers carried no [n] citation for 30 minutes (the cites_sources "
                    "evaluation): the model ignores the retrieved context, or the prompt lost its instruction.",
        dashboard="rag-overview",
    ),
    Alert(
        name="RagScrapeTargetDown", stage="scrape", severity="critical", for_="2m",
        query=f"up and on (job) {WATCHED_JOBS}",
        op="==", threshold=0,
        summary="{{ $labels.job }} target {{ $labels.instance }} is down (scrape failed)",
        description="Prometheus could not scrape this target for 2 minutes: the service is down or its "
                    "/metrics endpoint is broken, and its dashboards are blind. Watched: every job that served, "
                    "within a day, a ragotel service's target_info, vLLM's metrics or those of the DCGM, "
                    "kube-state-metrics and node exporters, whatever the job is named.",
        dashboard="rag-overview",
    ),
)

GROUP: Final = "ragotel"


def rule_file() -> dict[str, Any]:
    """Prometheus / Mimir ruler format."""
    return {"groups": [{"name": GROUP, "interval": "1m", "rules": [a.rule() for a in ALERTS]}]}


def prometheus_rule(namespace: str = "rag") -> dict[str, Any]:
    """The same groups as a ``monitoring.coreos.com/v1`` PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ragotel-alerts", "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "ragotel-alerts", "app.kubernetes.io/part-of": "ragotel"}},
        "spec": rule_file(),
    }


def markdown_table() -> str:
    """The alerts as docs/dashboards.md lists them (``python -m docsgen`` writes it there)."""
    rows = ["| alert | stage | fires when | for | severity |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| `{a.name}` | {a.stage} | {a.description.split('. ')[0].rstrip('.')} | {a.for_} | {a.severity} |"
             for a in ALERTS]
    return "\n".join(rows) + "\n"
