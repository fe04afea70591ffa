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

Names emitted are listed in ``ragotel.semconv``.
"""

# Importing ragotel imports nothing else: ``opentelemetry-instrument`` loads the configurator and the distro
# from ragotel.instrumentation.auto, which must import (and fail) on its own, whatever SDK or semantic
# conventions the environment has. Each public name is imported the first time it is used.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ragotel._version import __version__

if TYPE_CHECKING:
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
    from ragotel.instrumentation.asgi import (
        FastApiInstrumentor,
        RagotelMiddleware,
        fail_response,
        instrument_fastapi,
        uninstrument_fastapi,
    )
    from ragotel.instrumentation.chroma import ChromaInstrumentor, instrument_chroma, uninstrument_chroma
    from ragotel.instrumentation.faiss import FaissInstrumentor, instrument_faiss, uninstrument_faiss
    from ragotel.instrumentation.httpx import HttpxInstrumentor, instrument_httpx, uninstrument_httpx
    from ragotel.instrumentation.lancedb import LanceDBInstrumentor, instrument_lancedb, uninstrument_lancedb
    from ragotel.instrumentation.langchain import LangChainInstrumentor, instrument_langchain, uninstrument_langchain
    from ragotel.instrumentation.llamaindex import (
        LlamaIndexInstrumentor,
        instrument_llamaindex,
        uninstrument_llamaindex,
    )
    from ragotel.instrumentation.milvus import MilvusInstrumentor, instrument_milvus, uninstrument_milvus
    from ragotel.instrumentation.pgvector import PgvectorInstrumentor, instrument_pgvector, uninstrument_pgvector
    from ragotel.instrumentation.qdrant import QdrantInstrumentor, instrument_qdrant, uninstrument_qdrant
    from ragotel.instrumentation.requests import RequestsInstrumentor, instrument_requests, uninstrument_requests
    from ragotel.instrumentation.sentence_transformers import (
        SentenceTransformersInstrumentor,
        instrument_sentence_transformers,
        uninstrument_sentence_transformers,
    )
    from ragotel.semconv import Operation, StepKind

_EXPORTS: dict[str, str] = {
    "QueryRedactor": "ragotel._config.configure",
    "Telemetry": "ragotel._config.configure",
    "configure": "ragotel._config.configure",
    "get_telemetry": "ragotel._config.configure",
    "prometheus_app": "ragotel._config.configure",
    "ModelPrice": "ragotel._genai.cost",
    "PriceTable": "ragotel._genai.cost",
    "set_prices": "ragotel._genai.cost",
    "record_evaluation": "ragotel._genai.evaluation",
    "Document": "ragotel._genai.hits",
    "record_index": "ragotel._genai.index",
    "record_index_write": "ragotel._genai.index",
    "Step": "ragotel._steps.kinds",
    "StepFacts": "ragotel._steps.kinds",
    "StepSpec": "ragotel._steps.kinds",
    "current_step": "ragotel._steps.kinds",
    "current_trace_id": "ragotel._steps.kinds",
    "embedding": "ragotel._steps.kinds",
    "generation": "ragotel._steps.kinds",
    "pipeline": "ragotel._steps.kinds",
    "prompt": "ragotel._steps.kinds",
    "record_error": "ragotel._steps.kinds",
    "rerank": "ragotel._steps.kinds",
    "retrieval": "ragotel._steps.kinds",
    "FastApiInstrumentor": "ragotel.instrumentation.asgi",
    "RagotelMiddleware": "ragotel.instrumentation.asgi",
    "fail_response": "ragotel.instrumentation.asgi",
    "instrument_fastapi": "ragotel.instrumentation.asgi",
    "uninstrument_fastapi": "ragotel.instrumentation.asgi",
    "FaissInstrumentor": "ragotel.instrumentation.faiss",
    "instrument_faiss": "ragotel.instrumentation.faiss",
    "uninstrument_faiss": "ragotel.instrumentation.faiss",
    "QdrantInstrumentor": "ragotel.instrumentation.qdrant",
    "instrument_qdrant": "ragotel.instrumentation.qdrant",
    "uninstrument_qdrant": "ragotel.instrumentation.qdrant",
    "ChromaInstrumentor": "ragotel.instrumentation.chroma",
    "instrument_chroma": "ragotel.instrumentation.chroma",
    "uninstrument_chroma": "ragotel.instrumentation.chroma",
    "PgvectorInstrumentor": "ragotel.instrumentation.pgvector",
    "instrument_pgvector": "ragotel.instrumentation.pgvector",
    "uninstrument_pgvector": "ragotel.instrumentation.pgvector",
    "MilvusInstrumentor": "ragotel.instrumentation.milvus",
    "instrument_milvus": "ragotel.instrumentation.milvus",
    "uninstrument_milvus": "ragotel.instrumentation.milvus",
    "LanceDBInstrumentor": "ragotel.instrumentation.lancedb",
    "instrument_lancedb": "ragotel.instrumentation.lancedb",
    "uninstrument_lancedb": "ragotel.instrumentation.lancedb",
    "LangChainInstrumentor": "ragotel.instrumentation.langchain",
    "instrument_langchain": "ragotel.instrumentation.langchain",
    "uninstrument_langchain": "ragotel.instrumentation.langchain",
    "LlamaIndexInstrumentor": "ragotel.instrumentation.llamaindex",
    "instrument_llamaindex": "ragotel.instrumentation.llamaindex",
    "uninstrument_llamaindex": "ragotel.instrumentation.llamaindex",
    "HttpxInstrumentor": "ragotel.instrumentation.httpx",
    "instrument_httpx": "ragotel.instrumentation.httpx",
    "uninstrument_httpx": "ragotel.instrumentation.httpx",
    "RequestsInstrumentor": "ragotel.instrumentation.requests",
    "instrument_requests": "ragotel.instrumentation.requests",
    "uninstrument_requests": "ragotel.instrumentation.requests",
    "SentenceTransformersInstrumentor": "ragotel.instrumentation.sentence_transformers",
    "instrument_sentence_transformers": "ragotel.instrumentation.sentence_transformers",
    "uninstrument_sentence_transformers": "ragotel.instrumentation.sentence_transformers",
    "Operation": "ragotel.semconv",
    "StepKind": "ragotel.semconv",
}
"""Each public name and the module that defines it."""
_SUBMODULES = frozenset({"semconv", "instrumentation", "cli"})

__all__ = [
    "ChromaInstrumentor",
    "Document",
    "FaissInstrumentor",
    "FastApiInstrumentor",
    "HttpxInstrumentor",
    "LanceDBInstrumentor",
    "LangChainInstrumentor",
    "LlamaIndexInstrumentor",
    "MilvusInstrumentor",
    "ModelPrice",
    "Operation",
    "PgvectorInstrumentor",
    "PriceTable",
    "QdrantInstrumentor",
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
    "instrument_chroma",
    "instrument_faiss",
    "instrument_fastapi",
    "instrument_httpx",
    "instrument_lancedb",
    "instrument_langchain",
    "instrument_llamaindex",
    "instrument_milvus",
    "instrument_pgvector",
    "instrument_qdrant",
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
    "uninstrument_chroma",
    "uninstrument_faiss",
    "uninstrument_fastapi",
    "uninstrument_httpx",
    "uninstrument_lancedb",
    "uninstrument_langchain",
    "uninstrument_llamaindex",
    "uninstrument_milvus",
    "uninstrument_pgvector",
    "uninstrument_qdrant",
    "uninstrument_requests",
    "uninstrument_sentence_transformers",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _SUBMODULES:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
