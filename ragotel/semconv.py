"""Every name ragotel emits: spans, attributes, metrics, units and histogram buckets.

This is the one place where a telemetry name is spelled. Names under ``gen_ai.*``, ``error.*``,
``server.*``, ``http.*`` and the resource's follow the OpenTelemetry semantic conventions and are imported
from ``opentelemetry-semantic-conventions`` wherever it defines them (a test fails on one spelled by hand);
names the conventions do not cover (reranking, prompt building, RAG quality signals, a pipeline's duration)
live under ``rag.*``: ``gen_ai.*`` is the conventions' namespace, and tests/test_released_names.py fails on a
``gen_ai.*`` name the package does not define unless docs/genai-conventions.md lists it with its reason.
docs/reference/names.md is generated from this module (``python -m docsgen``): a name's docstring is its
meaning there, and a metric's starts with its instrument and unit (``Histogram, s:``).

Dashboards, alerts and TraceQL queries are written against these names; change one here and the
tests that compare them with what a real Prometheus scrapes will tell you what else must move.

How a name looks once scraped through ``opentelemetry-exporter-prometheus`` (or Alloy's
``otelcol.exporter.prometheus``): dots become underscores, the unit is appended for ``s``
(``_seconds``), counters gain ``_total`` and histograms ``_bucket``/``_sum``/``_count``; units in
braces such as ``{token}`` are annotations and are dropped. ``prometheus_name`` does that
translation so tests and dashboards never hand-type it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from opentelemetry.semconv._incubating.attributes import cloud_attributes as _cloud
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.attributes import k8s_attributes as _k8s
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv._incubating.metrics import http_metrics as _http_metrics_dev
from opentelemetry.semconv.attributes import client_attributes as _client
from opentelemetry.semconv.attributes import db_attributes as _db
from opentelemetry.semconv.attributes import deployment_attributes as _deployment
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import exception_attributes as _exception
from opentelemetry.semconv.attributes import http_attributes as _http
from opentelemetry.semconv.attributes import server_attributes as _server
from opentelemetry.semconv.attributes import service_attributes as _service
from opentelemetry.semconv.attributes import url_attributes as _url
from opentelemetry.semconv.attributes import user_agent_attributes as _user_agent
from opentelemetry.semconv.metrics import http_metrics as _http_metrics
from opentelemetry.semconv.schemas import Schemas as _Schemas


class StepKind(StrEnum):
    """The six kinds of RAG step ragotel instruments (value of ``rag.step.kind``)."""

    RETRIEVAL = "retrieval"
    EMBEDDING = "embedding"
    RERANK = "rerank"
    PROMPT = "prompt"
    GENERATION = "generation"
    PIPELINE = "pipeline"


class Operation(StrEnum):
    """Values of ``gen_ai.operation.name``. Rerank and prompt have no GenAI operation."""

    RETRIEVAL = _gen_ai.GenAiOperationNameValues.RETRIEVAL.value
    EMBEDDINGS = _gen_ai.GenAiOperationNameValues.EMBEDDINGS.value
    CHAT = _gen_ai.GenAiOperationNameValues.CHAT.value
    TEXT_COMPLETION = _gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value
    INVOKE_WORKFLOW = _gen_ai.GenAiOperationNameValues.INVOKE_WORKFLOW.value


class TokenType(StrEnum):
    """Values of ``gen_ai.token.type`` on ``gen_ai.client.token.usage``.

    ``input`` and ``output`` are the conventions'; the other three are parts of them that a provider
    reported (recorded only when above zero), so totals sum ``input`` and ``output`` only.
    """

    INPUT = _gen_ai.GenAiTokenTypeValues.INPUT.value
    OUTPUT = _gen_ai.GenAiTokenTypeValues.OUTPUT.value
    CACHE_READ = "cache_read"
    CACHE_WRITE = "cache_write"
    REASONING = "reasoning"


class RetrievalQuality(StrEnum):
    """Values of ``rag.retrieval.quality``."""

    OK = "ok"
    EMPTY = "empty"
    # The best hit scored under the low-score threshold (``RAGOTEL_RETRIEVAL_LOW_SCORE`` or the step's
    # ``min_score``): the model will answer from weak context.
    LOW_SCORE = "low_score"


class Outcome(StrEnum):
    """Values of ``rag.outcome``: how a step ended."""

    OK = "ok"
    ERROR = "error"
    # The caller stopped it (asyncio cancellation, a generator closed early): not a failure.
    CANCELLED = "cancelled"


# --- GenAI semantic conventions: span and metric attributes --------------------------------------
GEN_AI_OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
"""What the step does: one of ``Operation``."""
GEN_AI_PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
"""Who serves the model, e.g. ``vllm``, ``openai``."""
GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
"""Model asked for (generation, embedding, reranking)."""
GEN_AI_RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
"""Model that answered, as the server reports it."""
GEN_AI_RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
"""Completion id the server returned."""
GEN_AI_RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
"""Why each choice stopped (``stop``, ``length``, ...)."""
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = _gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
"""Seconds from sending a streamed request to the first chunk, on the span."""
GEN_AI_REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
"""The most tokens the request lets the model generate."""
GEN_AI_REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
"""The request's sampling temperature."""
GEN_AI_REQUEST_TOP_P: Final = _gen_ai.GEN_AI_REQUEST_TOP_P
"""The request's nucleus sampling probability."""
GEN_AI_REQUEST_TOP_K: Final = _gen_ai.GEN_AI_REQUEST_TOP_K
"""A generation request's sampling top-k, and how many documents a retrieval asked for: the conventions'
retrieval span (v1.41.1, the last core release defining it) records its k under this name.
Often written by hand as ``rag.top_k`` or ``faiss.top_k``."""
GEN_AI_REQUEST_SEED: Final = _gen_ai.GEN_AI_REQUEST_SEED
"""The request's sampling seed."""
GEN_AI_REQUEST_STOP_SEQUENCES: Final = _gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES
"""Sequences that stop the generation, as the request gave them."""
GEN_AI_REQUEST_CHOICE_COUNT: Final = _gen_ai.GEN_AI_REQUEST_CHOICE_COUNT
"""Choices asked for (the request's ``n``)."""
GEN_AI_REQUEST_STREAM: Final = _gen_ai.GEN_AI_REQUEST_STREAM
"""The request asked for a streamed answer."""
GEN_AI_REQUEST_ENCODING_FORMATS: Final = _gen_ai.GEN_AI_REQUEST_ENCODING_FORMATS
"""Encodings an embeddings request asked for (``float``, ``base64``)."""
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
"""Prompt tokens."""
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
"""Completion tokens."""
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
"""Input tokens served from the prompt cache (part of the input tokens)."""
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
"""Input tokens written to the prompt cache, as released conventions name it (the default)."""
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
"""The same, renamed by the latest conventions (``gen_ai_latest_experimental``); not in the semconv package yet."""
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
"""Output tokens spent reasoning (part of the output tokens)."""
GEN_AI_CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
"""The conversation (session, thread) a pipeline serves, as the application names it; on every span of it."""
GEN_AI_TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE
"""One of ``TokenType``; metric attribute of ``GEN_AI_CLIENT_TOKEN_USAGE``."""
GEN_AI_DATA_SOURCE_ID: Final = _gen_ai.GEN_AI_DATA_SOURCE_ID
"""Which index or store a retrieval searched (e.g. ``faiss``)."""
GEN_AI_RETRIEVAL_DOCUMENTS: Final = _gen_ai.GEN_AI_RETRIEVAL_DOCUMENTS
"""JSON list of ``{id, score}`` of the documents returned; ``content`` only with capture on."""
GEN_AI_RETRIEVAL_QUERY_TEXT: Final = _gen_ai.GEN_AI_RETRIEVAL_QUERY_TEXT
"""Query text. Content: recorded only when capture is on."""
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = _gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT
"""Length of each embedding vector."""
GEN_AI_PROMPT_NAME: Final = _gen_ai.GEN_AI_PROMPT_NAME
"""Name of the prompt template a model call used (``ragotel.prompt(template=...)``): on the prompt step's span
and on the model calls after it in the same pipeline."""
GEN_AI_PROMPT_VERSION: Final = "gen_ai.prompt.version"
"""Version of that template (``ragotel.prompt(template=..., version=...)``); not in the semconv package yet."""
GEN_AI_WORKFLOW_NAME: Final = _gen_ai.GEN_AI_WORKFLOW_NAME
"""Name of a pipeline."""
GEN_AI_INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
"""Prompt messages in the conventions' parts schema, as JSON (``ragotel.messages``). Content: capture only."""
GEN_AI_SYSTEM_INSTRUCTIONS: Final = _gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS
"""Instructions an API takes apart from the chat history; an OpenAI-compatible chat's system messages are part
of it and stay in ``GEN_AI_INPUT_MESSAGES``, as the conventions ask, so ragotel does not set this."""
GEN_AI_OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
"""The answer's messages in the parts schema, as JSON. Content: recorded only when capture is on."""
ERROR_TYPE: Final = _error.ERROR_TYPE
"""Exception class, ``timeout``, ``connection``, ``http.5xx``, ``malformed_body``, ..."""
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
"""The host an instrumented call went to (the model server, the vector database), or the server's own address
on a server span; a metric attribute of model calls."""
SERVER_PORT: Final = _server.SERVER_PORT
"""That host's port."""

GEN_AI_EVALUATION_NAME: Final = _gen_ai.GEN_AI_EVALUATION_NAME
"""What was judged (``user_feedback``, ``citations_exist``, ...); metric attribute, bounded by code."""
GEN_AI_EVALUATION_SCORE_VALUE: Final = _gen_ai.GEN_AI_EVALUATION_SCORE_VALUE
"""The score, a number."""
GEN_AI_EVALUATION_SCORE_LABEL: Final = _gen_ai.GEN_AI_EVALUATION_SCORE_LABEL
"""The verdict as a word (``up``/``down``, ``cited``/``uncited``); metric attribute, capped like every value."""
GEN_AI_EVALUATION_EXPLANATION: Final = _gen_ai.GEN_AI_EVALUATION_EXPLANATION
"""Why: content, recorded only when content capture is on."""
GEN_AI_EVALUATION_RESULT_EVENT: Final = "gen_ai.evaluation.result"
"""Name of the event (a log record) an evaluation is, parented to the span it judges."""
GEN_AI_INFERENCE_DETAILS_EVENT: Final = "gen_ai.client.inference.operation.details"
"""Name of the event carrying one model call's messages, structured (latest conventions, content on events)."""
RAG_ERROR_EVENT: Final = "rag.error"
"""A failure the code handled or a response that failed after its status line: ``error.type``, the stage,
an optional message."""
RAG_ERROR_MESSAGE: Final = "message"
"""The ``rag.error`` event's human-readable reason (no user text)."""

# --- RAG attributes (not covered by the conventions) ---------------------------------------------
RAG_STEP_KIND: Final = "rag.step.kind"
"""One of ``StepKind``; on every ragotel span and metric, so queries can group by stage."""
RAG_STEP_NAME: Final = "rag.step.name"
"""The step's name in code (function qualname, or the name given); bounded by the code base."""
RAG_OUTCOME: Final = "rag.outcome"
"""One of ``Outcome``; metric attribute."""
RAG_RETRIEVAL_MIN_SCORE: Final = "rag.retrieval.min_score"
"""Score threshold applied after search (often written by hand as ``rag.min_score``)."""
RAG_RETRIEVAL_RESULTS_RETURNED: Final = "rag.retrieval.results.returned"
"""Documents the search returned, before filtering (often written by hand as ``faiss.results_count``)."""
RAG_RETRIEVAL_RESULTS_KEPT: Final = "rag.retrieval.results.kept"
"""Documents left after filtering (often written by hand as ``rag.results_filtered_count``)."""
RAG_RETRIEVAL_SCORE_MIN: Final = "rag.retrieval.score.min"
"""The lowest score among the returned documents (often written by hand as ``faiss.score_min``)."""
RAG_RETRIEVAL_SCORE_MAX: Final = "rag.retrieval.score.max"
"""The best score among the returned documents (often written by hand as ``faiss.score_max``)."""
RAG_RETRIEVAL_SCORE_AVG: Final = "rag.retrieval.score.avg"
"""The mean score of the returned documents (often written by hand as ``faiss.score_avg``)."""
RAG_INDEX_SIZE: Final = "rag.index.size"
"""Vectors (or documents) in the searched index (often written by hand as ``faiss.index_size``)."""
RAG_RETRIEVAL_QUERIES: Final = "rag.retrieval.queries"
"""Query vectors searched in one call (a batch); results and scores count all of them."""
RAG_RETRIEVAL_SCORE_KIND: Final = "rag.retrieval.score.kind"
"""``similarity`` (higher is better) or ``distance`` (lower is better, e.g. FAISS L2): how to read the scores."""
DB_SYSTEM_NAME: Final = _db.DB_SYSTEM_NAME
"""The vector database a retrieval searched (``qdrant``, ``chroma``, ``postgresql``, ``lancedb``): no convention for
vector databases is released yet, so the database conventions' name, with the engine's own lower-case name where
their list has none."""
DB_COLLECTION_NAME: Final = _db.DB_COLLECTION_NAME
"""The collection (table) searched or written; on spans only, since collections are the application's names."""
DB_OPERATION_NAME: Final = _db.DB_OPERATION_NAME
"""The client method (``query_points``, ``query``, ``search``) or SQL verb (``SELECT``) that ran."""
DB_NAMESPACE: Final = _db.DB_NAMESPACE
"""The database (PostgreSQL) or tenant/database (Chroma) the collection lives in."""
RAG_RETRIEVAL_DISTANCE: Final = "rag.retrieval.distance"
"""The store's distance function for the searched collection (``cosine``, ``l2``, ``dot``, ...), as it names it."""
RAG_FAISS_INDEX_TYPE: Final = "rag.faiss.index_type"
"""The FAISS index class searched (``IndexFlatIP``, ``IndexIVFFlat``, ``IndexHNSWFlat``, ...)."""
RAG_FAISS_METRIC: Final = "rag.faiss.metric"
"""The index's metric type: ``inner_product``, ``l2``, ``l1``, ..."""
RAG_FAISS_DIMENSION: Final = "rag.faiss.dimension"
"""Length of the index's vectors."""
RAG_FAISS_NPROBE: Final = "rag.faiss.nprobe"
"""Inverted lists visited per query (IVF indexes)."""
RAG_FAISS_EF_SEARCH: Final = "rag.faiss.ef_search"
"""Candidate list size of an HNSW search."""
RAG_PROMPT_CHUNKS: Final = "rag.prompt.chunks"
"""Chunks placed in the prompt (often written by hand as ``rag.chunks_sent``)."""
RAG_PROMPT_CONTEXT_CHARS: Final = "rag.prompt.context.chars"
"""Characters of retrieved context in the prompt (often written by hand as ``rag.context_chars``)."""
RAG_PROMPT_CONTEXT_TOKENS: Final = "rag.prompt.context.tokens"
"""Tokens of retrieved context in the prompt, when known."""
RAG_PROMPT_MESSAGES: Final = "rag.prompt.messages"
"""Number of messages built."""
RAG_GENERATION_RESPONSE_CHARS: Final = "rag.generation.response.chars"
"""Characters of the answer (often written by hand as ``llm.response_chars``)."""
RAG_GENERATION_REASONING_CHARS: Final = "rag.generation.reasoning.chars"
"""Characters of reasoning/thinking content (often written by hand as ``llm.thinking_chars``)."""
RAG_EMBEDDING_INPUTS: Final = "rag.embedding.inputs"
"""Texts embedded in one call."""
RAG_EMBEDDING_DEVICE: Final = "rag.embedding.device"
"""Where a local encoder ran (``cpu``, ``cuda:0``, ``mps``)."""
RAG_EMBEDDING_NORMALIZED: Final = "rag.embedding.normalized"
"""The vectors were normalised to unit length (so inner product is cosine similarity)."""
RAG_EMBEDDING_INPUT_TYPE: Final = "rag.embedding.input_type"
"""``query`` or ``document`` when the encoder was told which (``encode_query`` / ``encode_document``)."""
RAG_RERANK_INPUT_DOCUMENTS: Final = "rag.rerank.input_documents"
"""Documents handed to the reranker."""
RAG_RERANK_TOP_N: Final = "rag.rerank.top_n"
"""Documents the reranker was asked to keep."""
RAG_RETRIEVAL_QUALITY: Final = "rag.retrieval.quality"
"""One of ``RetrievalQuality``: whether a retrieval found anything worth using; metric attribute of
``RAG_STEP_DURATION`` for retrieval and rerank steps whose hits were read."""
RAG_METRIC_ATTRIBUTE: Final = "rag.metric.attribute"
"""The attribute key whose values hit the cap; metric attribute of ``RAG_METRIC_ATTRIBUTE_OVERFLOW``."""

RAG_INDEX_PART: Final = "rag.index.part"
"""Which part of a retrieval index a gauge describes: ``model``, ``index``, ``vectorizer``, ``matrix``,
``meta``; metric attribute of ``RAG_INDEX_ITEMS`` and ``RAG_INDEX_LOAD_DURATION``."""

# --- OpenInference (opt-in: RAGOTEL_OPENINFERENCE), for Phoenix and other OpenInference viewers ----
OI_SPAN_KIND: Final = "openinference.span.kind"
"""CHAIN, RETRIEVER, EMBEDDING, RERANKER or LLM, by step kind."""
OI_LLM_MODEL_NAME: Final = "llm.model_name"
"""A generation's model, as OpenInference names it."""
OI_EMBEDDING_MODEL_NAME: Final = "embedding.model_name"
"""An embedding's model, as OpenInference names it."""
OI_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
"""Input tokens, as OpenInference names them."""
OI_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
"""Output tokens, as OpenInference names them."""
OI_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
"""Input plus output tokens."""
OI_INPUT_VALUE: Final = "input.value"
"""Content: with capture on only."""
OI_OUTPUT_VALUE: Final = "output.value"
"""Content: with capture on only."""
OI_INPUT_MIME_TYPE: Final = "input.mime_type"
"""How a viewer renders ``input.value``: ``text/plain`` or ``application/json``."""
OI_OUTPUT_MIME_TYPE: Final = "output.mime_type"
"""How a viewer renders ``output.value``."""
OI_MIME_TYPES: Final = {OI_INPUT_VALUE: OI_INPUT_MIME_TYPE, OI_OUTPUT_VALUE: OI_OUTPUT_MIME_TYPE}
"""The mime-type key of each value: ``text/plain`` or ``application/json``, how a viewer renders the value (Phoenix
otherwise takes the type of one it derives from ``gen_ai.*``, and shows a text as broken JSON)."""
OI_TEXT: Final = "text/plain"
OI_JSON: Final = "application/json"
OI_RETRIEVAL_DOCUMENTS: Final = "retrieval.documents"
"""Prefix of the flattened documents: ``retrieval.documents.{i}.document.id`` / ``.score`` / ``.content``."""
OI_RERANKER_OUTPUT_DOCUMENTS: Final = "reranker.output_documents"
"""The same for a rerank step's output."""
OI_SPAN_KINDS: Final = {
    StepKind.PIPELINE: "CHAIN", StepKind.PROMPT: "CHAIN", StepKind.RETRIEVAL: "RETRIEVER",
    StepKind.EMBEDDING: "EMBEDDING", StepKind.RERANK: "RERANKER", StepKind.GENERATION: "LLM",
}

# --- HTTP server (semantic conventions), recorded by the ASGI middleware -----------------------------
HTTP_REQUEST_METHOD: Final = _http.HTTP_REQUEST_METHOD
"""The request's method (``GET``, ``POST``, ...)."""
HTTP_ROUTE: Final = _http.HTTP_ROUTE
"""The route template (``/chat``), never the raw path: bounded."""
HTTP_RESPONSE_STATUS_CODE: Final = _http.HTTP_RESPONSE_STATUS_CODE
"""The status the server answered with."""
URL_PATH: Final = _url.URL_PATH
"""The path requested; on the server span only, never a metric attribute."""
URL_SCHEME: Final = _url.URL_SCHEME
"""``http`` or ``https``."""
URL_QUERY: Final = _url.URL_QUERY
"""Query string; its values are content (recorded as ``REDACTED`` unless capture is on)."""
CLIENT_ADDRESS: Final = _client.CLIENT_ADDRESS
"""The address the request came from."""
USER_AGENT_ORIGINAL: Final = _user_agent.USER_AGENT_ORIGINAL
"""The request's ``User-Agent`` header."""

# --- Resource attributes --------------------------------------------------------------------------
SERVICE_NAME: Final = _service.SERVICE_NAME
"""The service (``configure(service_name=...)``; ``OTEL_SERVICE_NAME`` wins)."""
SERVICE_VERSION: Final = _service.SERVICE_VERSION
"""The service's version (``configure(service_version=...)``)."""
DEPLOYMENT_ENVIRONMENT: Final = _deployment.DEPLOYMENT_ENVIRONMENT_NAME
"""The environment (``RAGOTEL_ENVIRONMENT``); a label of every series on ``/metrics``."""
K8S_POD_NAME: Final = _k8s.K8S_POD_NAME
"""The pod, from the downward API (``K8S_POD_NAME`` or ``POD_NAME``)."""
K8S_NAMESPACE_NAME: Final = _k8s.K8S_NAMESPACE_NAME
"""The namespace, from the downward API (``K8S_NAMESPACE_NAME`` or ``POD_NAMESPACE``)."""
K8S_NODE_NAME: Final = _k8s.K8S_NODE_NAME
"""The node, from the downward API (``K8S_NODE_NAME`` or ``NODE_NAME``)."""
K8S_CLUSTER_NAME: Final = _k8s.K8S_CLUSTER_NAME
"""The cluster (``RAGOTEL_CLUSTER``); a label of every series on ``/metrics``."""
CLOUD_PROVIDER: Final = _cloud.CLOUD_PROVIDER
"""The cloud provider (``RAGOTEL_PROVIDER``); a label of every series on ``/metrics``."""
CLOUD_REGION: Final = _cloud.CLOUD_REGION
"""The region (``RAGOTEL_REGION``); a label of every series on ``/metrics``."""

# --- Metrics ---------------------------------------------------------------------------------------
GEN_AI_CLIENT_OPERATION_DURATION: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
"""Histogram, s: a model call (chat, text_completion, embeddings) as the HTTP client instrumentation sees it.
Steps record it only with ``RAGOTEL_DETAILED_METRICS`` (a second record of the step's own duration)."""
GEN_AI_CLIENT_TOKEN_USAGE: Final = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
"""Histogram, {token}: tokens per operation, by ``gen_ai.token.type``."""
GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
"""Histogram, s: request sent → first streamed chunk received."""
GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK
"""Histogram, s: gap between consecutive streamed chunks after the first."""
RAG_PIPELINE_DURATION: Final = "rag.pipeline.duration"
"""Histogram, s: a whole pipeline, end to end (the pipeline step's one duration record). No release of the
conventions names a workflow's duration, so it is ragotel's own name (the latest mode's is
``GEN_AI_INVOKE_AGENT_DURATION``)."""
RAG_STEP_DURATION: Final = "rag.step.duration"
"""Histogram, s: every step but the pipeline, by ``rag.step.kind`` (the latency breakdown); one record per step."""
RAG_STEP_ERRORS: Final = "rag.step.errors"
"""Counter, {error}: failed steps by ``rag.step.kind`` and ``error.type``."""
RAG_RETRIEVAL_DOCUMENTS: Final = "rag.retrieval.documents"
"""Counter, {document}: documents retrievals returned (per retrieval: divide by the step count)."""
RAG_RETRIEVAL_DOCUMENTS_KEPT: Final = "rag.retrieval.documents.kept"
"""Counter, {document}: documents left after filtering, when the code records ``results_kept``."""
RAG_RETRIEVAL_TOP_SCORE: Final = "rag.retrieval.top_score"
"""Histogram, 1: the best score of each retrieval (its exemplar points at the retrieval span). Opt-in
(``RAGOTEL_DETAILED_METRICS``): one record per retrieval; ``rag.retrieval.quality`` is the default signal."""
RAG_RETRIEVAL_SCORE: Final = "rag.retrieval.score"
"""Histogram, 1: score of every returned document. Opt-in (``RAGOTEL_DETAILED_METRICS``): one record per hit."""
RAG_PROMPT_CONTEXT_SIZE: Final = "rag.prompt.context.size"
"""Counter, {char}: characters of retrieved context put into prompts (per prompt: divide by the step count)."""
RAG_PROMPT_CONTEXT_CHUNKS: Final = "rag.prompt.context.chunks"
"""Counter, {chunk}: chunks placed in prompts (per prompt: divide by the step count)."""
RAG_METRIC_ATTRIBUTE_OVERFLOW: Final = "rag.metric.attribute.overflow"
"""Counter, {value}: metric attribute values recorded as ``_other`` because their key reached its cap."""
RAG_INDEX_ITEMS: Final = "rag.index.items"
"""Gauge, {item}: items in a loaded index part (vectors, matrix rows, metadata records)."""
RAG_INDEX_LOAD_DURATION: Final = "rag.index.load.duration"
"""Gauge, s: how long the last load of an index part took."""
RAG_INDEX_DIMENSION: Final = "rag.index.dimension"
"""Gauge, {dimension}: length of the embedding vectors in a loaded index part."""
RAG_INDEX_AGE: Final = "rag.index.age"
"""Gauge, s: seconds since the loaded index part was built, observed at each collection (a stale index grows)."""
RAG_INDEX_DOCUMENTS_WRITTEN: Final = "rag.index.documents.written"
"""Counter, {document}: documents written into an index by ingestion."""
RAG_INDEX_CHUNKS_WRITTEN: Final = "rag.index.chunks.written"
"""Counter, {chunk}: chunks written into an index by ingestion (vectors, matrix rows)."""
RAG_INDEX_CHUNKS_EMBEDDED: Final = "rag.index.chunks.embedded"
"""Counter, {chunk}: chunks embedded by ingestion (fewer than written when unchanged chunks keep their vectors)."""
HTTP_SERVER_REQUEST_DURATION: Final = _http_metrics.HTTP_SERVER_REQUEST_DURATION
"""Histogram, s: HTTP requests served, by method, route and status (requests/s and errors too)."""
HTTP_SERVER_ACTIVE_REQUESTS: Final = _http_metrics_dev.HTTP_SERVER_ACTIVE_REQUESTS
"""UpDownCounter, {request}: requests in flight."""
HTTP_SERVER_REQUEST_BODY_SIZE: Final = _http_metrics_dev.HTTP_SERVER_REQUEST_BODY_SIZE
"""Histogram, By: size of each request body (its ``Content-Length``, or the bytes received), same attributes as
``HTTP_SERVER_REQUEST_DURATION``."""
HTTP_SERVER_RESPONSE_BODY_SIZE: Final = _http_metrics_dev.HTTP_SERVER_RESPONSE_BODY_SIZE
"""Histogram, By: size of each response body (its ``Content-Length``, or the bytes sent: a stream in full)."""
RAG_COST: Final = "rag.cost.usd"
"""Counter, {USD}: money spent on model calls, by model (see ``ragotel.cost``)."""
RAG_EVALUATION_SCORE: Final = "rag.evaluation.score"
"""Histogram, 1: evaluation scores, by ``gen_ai.evaluation.name`` and ``gen_ai.evaluation.score.label`` only."""
RAG_EVALUATIONS: Final = "rag.evaluations"
"""Counter, {evaluation}: evaluations recorded, scored or not, by name and label (the share of a label)."""

# --- Latest GenAI conventions (``gen_ai_latest_experimental``) ----------------------------------------
# The release v0.1.0 of open-telemetry/semantic-conventions-genai, not yet in the semconv package: the
# inference metrics are renamed, token usage is counted by counters (one per token type, by modality) instead
# of the gen_ai.client.token.usage histogram, and embeddings keep gen_ai.client.operation.duration.
GEN_AI_CLIENT_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
"""Histogram, s: a chat or text-completion call (latest conventions; the default records
``GEN_AI_CLIENT_OPERATION_DURATION``, which the latest keep for operations they time nowhere else)."""
GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
"""Histogram, s: ``GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK`` as the latest conventions name it."""
GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.inference.time_per_output_chunk"
"""Histogram, s: ``GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK`` as the latest conventions name it."""
GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
"""Counter, {token}: input tokens, cached ones included (latest conventions)."""
GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
"""Counter, {token}: output tokens, reasoning ones included (latest conventions)."""
GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.cache_read.input_tokens"
"""Counter, {token}: input tokens served from the prompt cache, a part of the input (latest conventions)."""
GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.cache_write.input_tokens"
"""Counter, {token}: input tokens written to the prompt cache, a part of the input (latest conventions)."""
GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.reasoning.output_tokens"
"""Counter, {token}: output tokens spent reasoning, a part of the output (latest conventions)."""
GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"
"""Histogram, {token}: input tokens of each call (latest conventions; the per-call distribution the default's
``gen_ai.client.token.usage`` gave)."""
GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
"""Histogram, {token}: output tokens of each call (latest conventions)."""
GEN_AI_CLIENT_EMBEDDINGS_DURATION: Final = "gen_ai.client.embeddings.duration"
"""Histogram, s: an embeddings call (latest conventions; the default records
``GEN_AI_CLIENT_OPERATION_DURATION``)."""
GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.embeddings.operation.input_tokens"
"""Histogram, {token}: input tokens of each embeddings call (latest conventions; the default records them on
``gen_ai.client.token.usage``)."""
GEN_AI_RETRIEVAL_DURATION: Final = "gen_ai.retrieval.duration"
"""Histogram, s: a retrieval step, where the default records ``GEN_AI_CLIENT_OPERATION_DURATION``
(``RAGOTEL_DETAILED_METRICS``; latest conventions)."""
GEN_AI_INVOKE_AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"
"""Histogram, s: a pipeline, end to end, under the latest conventions, which record a workflow as an agent
invocation (``gen_ai.operation.name`` stays ``invoke_workflow``); the default records
``RAG_PIPELINE_DURATION``."""
GEN_AI_AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
"""A pipeline's name under the latest conventions, on its span and ``gen_ai.invoke_agent.duration``
(the default's ``GEN_AI_WORKFLOW_NAME``)."""
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
"""Metric attribute of the latest usage counters. An OpenAI-compatible server reports totals without a
split by modality, so ragotel records ``unknown``."""
TOKEN_MODALITY_UNKNOWN: Final = "unknown"
INFERENCE_USAGE_COUNTERS: Final = {
    TokenType.INPUT.value: GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS,
    TokenType.OUTPUT.value: GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS,
    TokenType.CACHE_READ.value: GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
    TokenType.CACHE_WRITE.value: GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
    TokenType.REASONING.value: GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
}
"""The latest conventions' counter for each ``gen_ai.token.type`` ragotel records in the default mode."""
INFERENCE_OPERATIONS: Final = frozenset({Operation.CHAT.value, Operation.TEXT_COMPLETION.value})
"""Operations the latest conventions time on ``GEN_AI_CLIENT_INFERENCE_DURATION``."""
LATEST_DURATIONS: Final = {
    Operation.CHAT.value: GEN_AI_CLIENT_INFERENCE_DURATION,
    Operation.TEXT_COMPLETION.value: GEN_AI_CLIENT_INFERENCE_DURATION,
    Operation.EMBEDDINGS.value: GEN_AI_CLIENT_EMBEDDINGS_DURATION,
    Operation.RETRIEVAL.value: GEN_AI_RETRIEVAL_DURATION,
}
"""Where the latest conventions time what the default times on ``GEN_AI_CLIENT_OPERATION_DURATION``, by
``gen_ai.operation.name`` (other operations stay there)."""
GEN_AI_INFERENCE_EXCEPTION_EVENT: Final = "gen_ai.client.inference.exception"
"""Name of the event (a log record, parented to the call's span) a failed chat or text-completion call emits
under the latest conventions; the default has none (the span's ``exception`` event says it)."""
GEN_AI_EXCEPTION_SEVERITY: Final = "WARN"
"""Severity of the exception event: the conventions ask for WARN (severity number 13)."""
EXCEPTION_TYPE: Final = _exception.EXCEPTION_TYPE
"""The exception's qualified class name, on the exception event."""
EXCEPTION_MESSAGE: Final = _exception.EXCEPTION_MESSAGE
"""The exception's message, on the exception event."""
GEN_AI_DETAILS_SEVERITY: Final = "DEBUG"
"""Severity of the details event: the latest conventions ask for DEBUG (severity number 5)."""
DEFAULT_ONLY: Final = frozenset({GEN_AI_TOKEN_TYPE, GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS})
"""Attributes only the default mode records: the latest conventions count tokens on a counter per type, by
``GEN_AI_TOKEN_MODALITY``, and spell the cache-write tokens ``GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS``.
(Metrics: each mode's instruments say which they record.)"""
LATEST_ONLY: Final = frozenset({
    GEN_AI_AGENT_NAME, GEN_AI_TOKEN_MODALITY, GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    GEN_AI_INFERENCE_DETAILS_EVENT, GEN_AI_INFERENCE_EXCEPTION_EVENT,
})
"""Attributes and events only the latest mode (``gen_ai_latest_experimental``) records."""

SCHEMA_URL_DEFAULT: Final = list(_Schemas)[-1].value
"""Schema URL of the tracer and meter in the default mode: the newest the semconv package carries."""
SCHEMA_URL_LATEST: Final[str | None] = None
"""In the latest mode: none, since semantic-conventions-genai v0.1.0 publishes no schema URL (its README
leaves it to do); a URL of the core conventions would tell backends to translate names it does not cover."""

UNIT_SECONDS: Final = "s"
UNIT_TOKEN: Final = "{token}"
UNIT_ERROR: Final = "{error}"
UNIT_DOCUMENT: Final = "{document}"
UNIT_CHAR: Final = "{char}"
UNIT_SCORE: Final = "1"
UNIT_USD: Final = "{USD}"
UNIT_ITEM: Final = "{item}"
UNIT_CHUNK: Final = "{chunk}"
UNIT_VALUE: Final = "{value}"
UNIT_EVALUATION: Final = "{evaluation}"
UNIT_REQUEST: Final = "{request}"
UNIT_BYTES: Final = "By"
UNIT_DIMENSION: Final = "{dimension}"

# Bucket advice. The GenAI ones are the conventions' own; the rest are chosen for RAG workloads.
# The conventions advise DURATION_BUCKETS for gen_ai.client.operation.duration and, in v1.41.1 (the last core
# release defining them) as in the latest, for time to first chunk and time per output chunk too.
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
# The HTTP semantic conventions' advice for http.server.request.duration.
HTTP_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# Steps such as prompt building take well under the GenAI advice's first 10 ms bucket.
STEP_DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, *DURATION_BUCKETS)
# Request and response bodies: a chat question is a few hundred bytes, an answer a few KiB, the body limit 64 KiB.
BODY_SIZE_BUCKETS: Final = (0, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
SCORE_BUCKETS: Final = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0, 10.0, 20.0)

METRIC_ATTRIBUTES: Final = frozenset(
    {
        RAG_STEP_KIND,
        RAG_STEP_NAME,
        RAG_OUTCOME,
        GEN_AI_OPERATION_NAME,
        GEN_AI_PROVIDER_NAME,
        GEN_AI_REQUEST_MODEL,
        GEN_AI_DATA_SOURCE_ID,
        GEN_AI_WORKFLOW_NAME,
        GEN_AI_AGENT_NAME,
        GEN_AI_TOKEN_TYPE,
        GEN_AI_TOKEN_MODALITY,
        ERROR_TYPE,
        SERVER_ADDRESS,
        SERVER_PORT,
        RAG_INDEX_PART,
        RAG_RETRIEVAL_QUALITY,
        RAG_METRIC_ATTRIBUTE,
        GEN_AI_EVALUATION_NAME,
        GEN_AI_EVALUATION_SCORE_LABEL,
        HTTP_REQUEST_METHOD,
        HTTP_ROUTE,
        HTTP_RESPONSE_STATUS_CODE,
        URL_SCHEME,
    }
)
"""The only attribute keys a ragotel metric may carry: bounded values set by code or config, never
user text, ids or queries."""

# Units in braces are annotations and "1" is dimensionless: neither adds a suffix.
_PROMETHEUS_UNITS: Final = {UNIT_SECONDS: "seconds", UNIT_BYTES: "bytes"}


def prometheus_name(metric: str, unit: str, *, counter: bool = False) -> str:
    """The name a metric has once scraped, without the histogram ``_bucket``/``_sum``/``_count``.

    >>> prometheus_name(RAG_STEP_DURATION, UNIT_SECONDS)
    'rag_step_duration_seconds'
    >>> prometheus_name(RAG_STEP_ERRORS, UNIT_ERROR, counter=True)
    'rag_step_errors_total'
    """
    name = metric.replace(".", "_")
    suffix = _PROMETHEUS_UNITS.get(unit, "")
    if suffix and not name.endswith(f"_{suffix}"):
        name = f"{name}_{suffix}"
    return f"{name}_total" if counter else name
