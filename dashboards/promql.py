"""PromQL building blocks shared by the dashboards and the alert rules.

Names are the ones a Prometheus scrape (or Alloy's ``otelcol.exporter.prometheus``) produces from
:mod:`ragotel.semconv`; vLLM's are its own ``vllm:*`` families. Selectors filter on the dashboards'
variables: ``$namespace`` everywhere; for the app also the placement (``$provider``, ``$cluster``,
``$region``, ``$environment``: labels ragotel copies from its resource onto every series), ``$deployment``
and ``$service`` (the scrape job); ``$model`` for generation. Every "All" is ``.*``, which also matches a
series without the label (a local Prometheus has no namespace, deployment or placement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from ragotel import semconv as sc


@dataclass(frozen=True)
class Renamed:
    """A metric the two GenAI modes name differently: the default's name, then what
    ``gen_ai_latest_experimental`` records the same under (one or more metrics, split by operation). Its
    selector reads all of them, so a panel has data whichever mode a service runs in, and sums a fleet that
    runs both. ``+`` suffixes each name: ``TIME_TO_FIRST_CHUNK + "_bucket"``."""

    default: str
    latest: tuple[str, ...]

    def __add__(self, suffix: str) -> Renamed:
        return Renamed(self.default + suffix, tuple(name + suffix for name in self.latest))

    @property
    def names(self) -> tuple[str, ...]:
        return (self.default, *self.latest)


Metric: TypeAlias = str | Renamed


def series(metric: Metric, selector: str = "") -> str:
    """A vector selector: ``metric`` with ``selector``'s matchers (``{...}`` or empty); a :class:`Renamed`
    metric matches its names by ``__name__``."""
    if isinstance(metric, str):
        return metric + selector
    matchers = [f'__name__=~"{"|".join(metric.names)}"', selector[1:-1]]
    return "{" + ", ".join(m for m in matchers if m) + "}"


def _seconds(metric: str) -> str:
    return sc.prometheus_name(metric, sc.UNIT_SECONDS)


# --- ragotel metrics, as scraped ------------------------------------------------------------------
STEP_DURATION: Final = sc.prometheus_name(sc.RAG_STEP_DURATION, sc.UNIT_SECONDS)
STEP_ERRORS: Final = sc.prometheus_name(sc.RAG_STEP_ERRORS, sc.UNIT_ERROR, counter=True)
# A pipeline is a workflow by default, an agent invocation in the latest mode.
PIPELINE_DURATION: Final = Renamed(_seconds(sc.RAG_PIPELINE_DURATION), (_seconds(sc.GEN_AI_INVOKE_AGENT_DURATION),))
# Model calls (and, with detailed metrics, retrieval steps): the latest mode times chat and text completion,
# embeddings and retrieval each on a metric of its own.
OPERATION_DURATION: Final = Renamed(_seconds(sc.GEN_AI_CLIENT_OPERATION_DURATION),
                                    tuple(map(_seconds, dict.fromkeys(sc.LATEST_DURATIONS.values()))))
TIME_TO_FIRST_CHUNK: Final = Renamed(_seconds(sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK),
                                     (_seconds(sc.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK),))
TIME_PER_OUTPUT_CHUNK: Final = Renamed(_seconds(sc.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK),
                                       (_seconds(sc.GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK),))
# Tokens: one histogram by gen_ai.token.type (default); the latest mode counts each type of a chat or text
# completion on a counter and an embeddings call's input on a histogram. Read through tokens().
TOKEN_USAGE: Final = sc.prometheus_name(sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.UNIT_TOKEN)
TOKEN_COUNTERS: Final = {kind: sc.prometheus_name(sc.INFERENCE_USAGE_COUNTERS[kind], sc.UNIT_TOKEN, counter=True)
                         for kind in (sc.TokenType.INPUT.value, sc.TokenType.OUTPUT.value)}
EMBEDDING_TOKENS: Final = sc.prometheus_name(sc.GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS, sc.UNIT_TOKEN)
RETRIEVAL_DOCUMENTS: Final = sc.prometheus_name(sc.RAG_RETRIEVAL_DOCUMENTS, sc.UNIT_DOCUMENT, counter=True)
RETRIEVAL_DOCUMENTS_KEPT: Final = sc.prometheus_name(sc.RAG_RETRIEVAL_DOCUMENTS_KEPT, sc.UNIT_DOCUMENT, counter=True)
RETRIEVAL_TOP_SCORE: Final = sc.prometheus_name(sc.RAG_RETRIEVAL_TOP_SCORE, sc.UNIT_SCORE)
PROMPT_CONTEXT_SIZE: Final = sc.prometheus_name(sc.RAG_PROMPT_CONTEXT_SIZE, sc.UNIT_CHAR, counter=True)
PROMPT_CONTEXT_CHUNKS: Final = sc.prometheus_name(sc.RAG_PROMPT_CONTEXT_CHUNKS, sc.UNIT_CHUNK, counter=True)
EVALUATIONS: Final = sc.prometheus_name(sc.RAG_EVALUATIONS, sc.UNIT_EVALUATION, counter=True)
EVALUATION_SCORE: Final = sc.prometheus_name(sc.RAG_EVALUATION_SCORE, sc.UNIT_SCORE)
ATTRIBUTE_OVERFLOW: Final = sc.prometheus_name(sc.RAG_METRIC_ATTRIBUTE_OVERFLOW, sc.UNIT_VALUE, counter=True)
INDEX_ITEMS: Final = sc.prometheus_name(sc.RAG_INDEX_ITEMS, sc.UNIT_ITEM)
INDEX_LOAD_DURATION: Final = sc.prometheus_name(sc.RAG_INDEX_LOAD_DURATION, sc.UNIT_SECONDS)
HTTP_DURATION: Final = sc.prometheus_name(sc.HTTP_SERVER_REQUEST_DURATION, sc.UNIT_SECONDS)
HTTP_ACTIVE: Final = sc.prometheus_name(sc.HTTP_SERVER_ACTIVE_REQUESTS, sc.UNIT_REQUEST)
HTTP_REQUEST_BODY_SIZE: Final = sc.prometheus_name(sc.HTTP_SERVER_REQUEST_BODY_SIZE, sc.UNIT_BYTES)
HTTP_RESPONSE_BODY_SIZE: Final = sc.prometheus_name(sc.HTTP_SERVER_RESPONSE_BODY_SIZE, sc.UNIT_BYTES)
INDEX_DIMENSION: Final = sc.prometheus_name(sc.RAG_INDEX_DIMENSION, sc.UNIT_DIMENSION)
INDEX_AGE: Final = sc.prometheus_name(sc.RAG_INDEX_AGE, sc.UNIT_SECONDS)
INDEX_DOCUMENTS_WRITTEN: Final = sc.prometheus_name(sc.RAG_INDEX_DOCUMENTS_WRITTEN, sc.UNIT_DOCUMENT, counter=True)
INDEX_CHUNKS_WRITTEN: Final = sc.prometheus_name(sc.RAG_INDEX_CHUNKS_WRITTEN, sc.UNIT_CHUNK, counter=True)
INDEX_CHUNKS_EMBEDDED: Final = sc.prometheus_name(sc.RAG_INDEX_CHUNKS_EMBEDDED, sc.UNIT_CHUNK, counter=True)
COST: Final = sc.prometheus_name(sc.RAG_COST, sc.UNIT_USD, counter=True)


def label(attribute: str) -> str:
    """The Prometheus label of a metric attribute: ``rag.step.kind`` → ``rag_step_kind``."""
    return attribute.replace(".", "_")


STEP_KIND: Final = label(sc.RAG_STEP_KIND)
STEP_NAME: Final = label(sc.RAG_STEP_NAME)
OUTCOME: Final = label(sc.RAG_OUTCOME)
QUALITY: Final = label(sc.RAG_RETRIEVAL_QUALITY)
EVALUATION: Final = label(sc.GEN_AI_EVALUATION_NAME)
VERDICT: Final = label(sc.GEN_AI_EVALUATION_SCORE_LABEL)
METRIC_ATTRIBUTE: Final = label(sc.RAG_METRIC_ATTRIBUTE)
ERROR_TYPE: Final = label(sc.ERROR_TYPE)
MODEL: Final = label(sc.GEN_AI_REQUEST_MODEL)
TOKEN_TYPE: Final = label(sc.GEN_AI_TOKEN_TYPE)
# cache_read, cache_write and reasoning are parts of input and output: totals read these two only.
IN_OUT_TOKENS: Final = f'{TOKEN_TYPE}=~"{sc.TokenType.INPUT.value}|{sc.TokenType.OUTPUT.value}"'
OPERATION: Final = label(sc.GEN_AI_OPERATION_NAME)
WORKFLOW: Final = label(sc.GEN_AI_WORKFLOW_NAME)
AGENT: Final = label(sc.GEN_AI_AGENT_NAME)
PIPELINE_NAME: Final = f"{WORKFLOW}, {AGENT}"
"""A pipeline's name, to group by: ``gen_ai_workflow_name`` by default, ``gen_ai_agent_name`` in the latest mode
(one is empty). Group by both: grouping by one merges every pipeline whose series carry the other."""
PIPELINE_LEGEND: Final = "{{" + WORKFLOW + "}}{{" + AGENT + "}}"
"""A pipeline's name in a legend or summary, whichever of the two labels its series carry."""
INDEX_PART: Final = label(sc.RAG_INDEX_PART)
ROUTE: Final = label(sc.HTTP_ROUTE)
DATA_SOURCE: Final = label(sc.GEN_AI_DATA_SOURCE_ID)
# Placement labels, as the Prometheus endpoint copies them from the resource onto every series.
CLOUD_PROVIDER: Final = label(sc.CLOUD_PROVIDER)
CLUSTER: Final = label(sc.K8S_CLUSTER_NAME)
REGION: Final = label(sc.CLOUD_REGION)
ENVIRONMENT: Final = label(sc.DEPLOYMENT_ENVIRONMENT)
# Grafana variable → the label it filters, in the order the dashboards show them.
PLACEMENT: Final = (("provider", CLOUD_PROVIDER), ("cluster", CLUSTER), ("region", REGION),
                    ("environment", ENVIRONMENT))
DEPLOYMENT: Final = "deployment"
# ragotel's resource names itself (telemetry.distro.name=ragotel); the endpoint's target_info carries it.
DISTRO: Final = label("telemetry.distro.name")
STATUS: Final = label(sc.HTTP_RESPONSE_STATUS_CODE)

# Grafana's own interval variables; the stack test substitutes real durations.
RATE: Final = "$__rate_interval"
RANGE: Final = "$__range"


def legend(*labels: str) -> str:
    """A Grafana legend showing these labels: ``legend("job", STEP_KIND)`` → ``{{job}} {{rag_step_kind}}``."""
    return " ".join("{{" + name + "}}" for name in labels)


def sel(*extra: str, app: bool = True, model: str | None = None) -> str:
    """A label selector: the namespace filter, for the app also its placement, deployment and service
    filters, ``model`` filtered by ``$model``, then any further matchers given verbatim
    (``'rag_step_kind="retrieval"'``). vLLM's series (``app=False``) carry no placement of ragotel's."""
    matchers = ['namespace=~"$namespace"']
    if app:
        matchers += [f'{name}=~"${variable}"' for variable, name in PLACEMENT]
        matchers += [f'{DEPLOYMENT}=~"$deployment"', 'job=~"$service"']
    if model:
        matchers.append(f'{model}=~"$model"')
    return "{" + ", ".join([*matchers, *extra]) + "}"


def rate(metric: Metric, selector: str, window: str = RATE, fn: str = "rate") -> str:
    return f"{fn}({series(metric, selector)}[{window}])"


def tokens(*extra: str, window: str = RATE, fn: str = "rate") -> str:
    """Input and output tokens of each app series over the window (``fn``: ``rate`` per second, ``increase``
    in all), filtered by ``$model`` and ``extra`` matchers and labelled ``gen_ai_token_type``, whichever
    conventions counted them: the default's histogram by type or the latest's counter of each type. Only
    these two types: the parts (cached, reasoning) are inside them."""
    default = rate(TOKEN_USAGE + "_sum", sel(IN_OUT_TOKENS, *extra, model=MODEL), window, fn)
    latest = [(counter, kind) for kind, counter in TOKEN_COUNTERS.items()]
    latest.append((EMBEDDING_TOKENS + "_sum", sc.TokenType.INPUT.value))
    typed = [f'label_replace({rate(metric, sel(*extra, model=MODEL), window, fn)}, "{TOKEN_TYPE}", "{kind}", '
             '"__name__", ".*")' for metric, kind in latest]
    return "(" + " or ".join([default, *typed]) + ")"


def quantile(q: float, histogram: Metric, selector: str, by: str = "", window: str = RATE) -> str:
    """``histogram_quantile`` over a histogram's buckets, grouped ``by`` extra labels."""
    group = ", ".join(["le", *[b.strip() for b in by.split(",") if b.strip()]])
    return f"histogram_quantile({q}, sum by ({group}) ({rate(histogram + '_bucket', selector, window)}))"


def ratio(numerator: str, denominator: str) -> str:
    """A share that reads 0, not "no data", while the numerator has no series yet."""
    return f"(({numerator}) or vector(0)) / ({denominator})"


def share(counter: str, part: str, whole: str, by: str, window: str = RATE) -> str:
    """The part's share of the whole, per ``by``: 0, not "no data", for a group where the part has no series."""
    total = f"sum by ({by}) ({rate(counter, whole, window)})"
    return f"(sum by ({by}) ({rate(counter, part, window)}) or {total} * 0) / {total}"


def mean(histogram: Metric, selector: str, by: str = "", window: str = RATE) -> str:
    """Mean of a histogram's observations over the window."""
    group = f"sum by ({by}) " if by else "sum "
    total, count = rate(histogram + "_sum", selector, window), rate(histogram + "_count", selector, window)
    return f"{group}({total}) / {group}({count})"


def per_step(counter: str, selector: str, steps: str, by: str, window: str = RATE) -> str:
    """A summed counter divided by the steps that added to it: the mean per step (documents per retrieval)."""
    group = f"sum by ({by}) "
    step_count = rate(STEP_DURATION + "_count", steps, window)
    return f"{group}({rate(counter, selector, window)}) / {group}({step_count})"


def step_durations(suffix: str, by: str, *extra: str, window: str = RATE) -> str:
    """``sum by (by)`` of the rate of every step's duration series (``_sum``, ``_count``, ``_bucket``).

    A step records one duration: ``rag.step.duration``, except a model call an HTTP client
    instrumentation made outside any step of its kind, which is its own generation/embedding step and
    records only ``gen_ai.client.operation.duration`` (with ``rag.step.name``; calls inside a step lack it).
    """
    group = f"sum by ({by}) "
    own = rate(STEP_DURATION + suffix, sel(*extra), window)
    calls = rate(OPERATION_DURATION + suffix, sel(*extra, ne(STEP_NAME, "")), window)
    return f"({group}({own}) or {group}({calls}))"


def step_quantile(q: float, by: str, *extra: str) -> str:
    """``histogram_quantile`` over :func:`step_durations`' buckets."""
    group = ", ".join(["le", *[b.strip() for b in by.split(",") if b.strip()]])
    return f"histogram_quantile({q}, {step_durations('_bucket', group, *extra)})"


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def ne(label: str, value: str) -> str:
    return f'{label}!="{value}"'


def re(label: str, pattern: str) -> str:
    return f'{label}=~"{pattern}"'


# --- vLLM's own metrics (its Prometheus names, labelled model_name and engine) --------------------
VLLM_MODEL: Final = "model_name"
VLLM_TTFT: Final = "vllm:time_to_first_token_seconds"
VLLM_INTER_TOKEN: Final = "vllm:inter_token_latency_seconds"
VLLM_E2E: Final = "vllm:e2e_request_latency_seconds"
VLLM_QUEUE: Final = "vllm:request_queue_time_seconds"
VLLM_PREFILL: Final = "vllm:request_prefill_time_seconds"
VLLM_DECODE: Final = "vllm:request_decode_time_seconds"
VLLM_INFERENCE: Final = "vllm:request_inference_time_seconds"
"""First scheduled → last token (prefill plus decode, preemptions included), vLLM v1's RUNNING phase."""
VLLM_RUNNING: Final = "vllm:num_requests_running"
VLLM_WAITING: Final = "vllm:num_requests_waiting"
VLLM_KV_CACHE: Final = "vllm:kv_cache_usage_perc"
VLLM_PREFIX_QUERIES: Final = "vllm:prefix_cache_queries_total"
VLLM_PREFIX_HITS: Final = "vllm:prefix_cache_hits_total"
VLLM_PREEMPTIONS: Final = "vllm:num_preemptions_total"
VLLM_PROMPT_TOKENS: Final = "vllm:prompt_tokens_total"
VLLM_GENERATION_TOKENS: Final = "vllm:generation_tokens_total"
VLLM_SUCCESS: Final = "vllm:request_success_total"


def vllm_sel(*extra: str) -> str:
    """vLLM's series: filtered by namespace and ``$model`` (its ``model_name``), never by service."""
    return sel(*extra, app=False, model=VLLM_MODEL)
