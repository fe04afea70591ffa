"""The tracer and the metric instruments every ragotel integration records into.

They are created on first use from the global providers, through OpenTelemetry's proxies: a
decorator applied at import time, before :func:`ragotel.configure` runs (or before the application
installs its own providers), still reports to whichever providers are set later.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from opentelemetry import metrics, trace
from opentelemetry.metrics import Counter, Histogram, UpDownCounter, _Gauge

from ragotel import semconv as sc
from ragotel._version import __version__

SCOPE = "ragotel"


@dataclass(frozen=True, slots=True)
class Instruments:
    step_duration: Histogram
    step_errors: Counter
    operation_duration: Histogram
    workflow_duration: Histogram
    token_usage: Histogram
    time_to_first_chunk: Histogram
    time_per_output_chunk: Histogram
    retrieval_documents: Histogram
    retrieval_score: Histogram
    prompt_context_size: Histogram
    cost: Counter
    http_server_duration: Histogram
    active_requests: UpDownCounter
    index_items: _Gauge
    index_load_duration: _Gauge


@cache
def tracer() -> trace.Tracer:
    return trace.get_tracer(SCOPE, __version__)


@cache
def instruments() -> Instruments:
    meter = metrics.get_meter(SCOPE, __version__)

    def histogram(name: str, unit: str, description: str, buckets: tuple[float, ...]) -> Histogram:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
        )

    return Instruments(
        step_duration=histogram(
            sc.RAG_STEP_DURATION, sc.UNIT_SECONDS, "Duration of a RAG step.", sc.STEP_DURATION_BUCKETS
        ),
        step_errors=meter.create_counter(
            sc.RAG_STEP_ERRORS, unit=sc.UNIT_ERROR, description="RAG steps that failed."
        ),
        operation_duration=histogram(
            sc.GEN_AI_CLIENT_OPERATION_DURATION, sc.UNIT_SECONDS, "GenAI operation duration.",
            sc.DURATION_BUCKETS,
        ),
        workflow_duration=histogram(
            sc.GEN_AI_WORKFLOW_DURATION, sc.UNIT_SECONDS, "RAG pipeline duration, end to end.",
            sc.DURATION_BUCKETS,
        ),
        token_usage=histogram(
            sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.UNIT_TOKEN, "Number of input and output tokens used.",
            sc.TOKEN_BUCKETS,
        ),
        time_to_first_chunk=histogram(
            sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK, sc.UNIT_SECONDS,
            "Time from sending a streamed request to receiving its first chunk.",
            sc.TIME_TO_FIRST_CHUNK_BUCKETS,
        ),
        time_per_output_chunk=histogram(
            sc.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK, sc.UNIT_SECONDS,
            "Time between consecutive streamed chunks after the first.", sc.TIME_PER_CHUNK_BUCKETS,
        ),
        retrieval_documents=histogram(
            sc.RAG_RETRIEVAL_DOCUMENTS, sc.UNIT_DOCUMENT, "Documents returned per retrieval.",
            sc.DOCUMENT_COUNT_BUCKETS,
        ),
        retrieval_score=histogram(
            sc.RAG_RETRIEVAL_SCORE, sc.UNIT_SCORE, "Score of each retrieved document.", sc.SCORE_BUCKETS
        ),
        prompt_context_size=histogram(
            sc.RAG_PROMPT_CONTEXT_SIZE, sc.UNIT_CHAR, "Characters of retrieved context per prompt.",
            sc.CONTEXT_CHARS_BUCKETS,
        ),
        cost=meter.create_counter(sc.RAG_COST, unit=sc.UNIT_USD, description="Cost of model calls."),
        http_server_duration=histogram(
            sc.HTTP_SERVER_REQUEST_DURATION, sc.UNIT_SECONDS, "Duration of HTTP server requests.",
            sc.HTTP_DURATION_BUCKETS,
        ),
        active_requests=meter.create_up_down_counter(
            sc.HTTP_SERVER_ACTIVE_REQUESTS, unit=sc.UNIT_REQUEST, description="HTTP server requests in flight."
        ),
        index_items=meter.create_gauge(
            sc.RAG_INDEX_ITEMS, unit=sc.UNIT_ITEM, description="Items in a loaded retrieval index part."
        ),
        index_load_duration=meter.create_gauge(
            sc.RAG_INDEX_LOAD_DURATION, unit=sc.UNIT_SECONDS, description="Duration of the last index part load."
        ),
    )
