"""ragotel — OpenTelemetry instrumentation for RAG services that generate with vLLM.

::

    import ragotel

    ragotel.configure(service_name="chat-api")

    @ragotel.retrieval(data_source="faiss")
    def search(query: str, k: int = 4) -> list[dict]: ...

    async def answer(question: str) -> str:
        with ragotel.pipeline("chat"):
            hits = search(question)
            with ragotel.prompt(template="rag-v1") as step:
                messages = build(question, hits)
                step.record(chunks=len(hits), context_chars=sum(len(h["text"]) for h in hits))
            ...

Names emitted are listed in :mod:`ragotel.semconv`.
"""

from ragotel._config.configure import QueryRedactor, Telemetry, configure, get_telemetry, prometheus_app
from ragotel._genai.cost import ModelPrice, PriceTable, set_prices
from ragotel._genai.evaluation import record_evaluation
from ragotel._genai.hits import Document
from ragotel._genai.index import record_index, record_index_write
from ragotel._steps.kinds import (
    Step,
    StepFacts,
    StepSpec,
    current_step,
    current_trace_id,
    embedding,
    generation,
    pipeline,
    prompt,
    record_error,
    rerank,
    retrieval,
)
from ragotel._version import __version__
from ragotel.instrumentation.asgi import (
    FastApiInstrumentor,
    RagotelMiddleware,
    fail_response,
    instrument_fastapi,
    uninstrument_fastapi,
)
from ragotel.instrumentation.faiss import FaissInstrumentor, instrument_faiss, uninstrument_faiss
from ragotel.instrumentation.httpx import HttpxInstrumentor, instrument_httpx, uninstrument_httpx
from ragotel.instrumentation.requests import RequestsInstrumentor, instrument_requests, uninstrument_requests
from ragotel.instrumentation.sentence_transformers import (
    SentenceTransformersInstrumentor,
    instrument_sentence_transformers,
    uninstrument_sentence_transformers,
)
from ragotel.semconv import Operation, StepKind

__all__ = [
    "Document",
    "FaissInstrumentor",
    "FastApiInstrumentor",
    "HttpxInstrumentor",
    "ModelPrice",
    "Operation",
    "PriceTable",
    "QueryRedactor",
    "RagotelMiddleware",
    "RequestsInstrumentor",
    "SentenceTransformersInstrumentor",
    "Step",
    "StepFacts",
    "StepKind",
    "StepSpec",
    "Telemetry",
    "__version__",
    "configure",
    "current_step",
    "current_trace_id",
    "embedding",
    "fail_response",
    "generation",
    "get_telemetry",
    "instrument_faiss",
    "instrument_fastapi",
    "instrument_httpx",
    "instrument_requests",
    "instrument_sentence_transformers",
    "pipeline",
    "prometheus_app",
    "prompt",
    "record_error",
    "record_evaluation",
    "record_index",
    "record_index_write",
    "rerank",
    "retrieval",
    "set_prices",
    "uninstrument_faiss",
    "uninstrument_fastapi",
    "uninstrument_httpx",
    "uninstrument_requests",
    "uninstrument_sentence_transformers",
]
