"""The public API, listed: a change to what users can import is a visible diff here.

Everything a user imports comes from ``ragotel`` itself, ``ragotel.semconv`` (the names emitted),
``ragotel.instrumentation.*`` (the instrumentors, also entry points) or ``ragotel.cli``; every other
module is private by name (``tests/test_architecture.py`` checks that).
"""

from __future__ import annotations

import importlib

import pytest

import ragotel

PUBLIC: dict[str, list[str]] = {
    "ragotel": [
        "Document", "FaissInstrumentor", "FastApiInstrumentor", "HttpxInstrumentor", "ModelPrice", "Operation",
        "PriceTable", "QueryRedactor", "RagotelMiddleware", "RequestsInstrumentor", "SentenceTransformersInstrumentor",
        "Step", "StepFacts", "StepKind", "StepSpec", "Telemetry",
        "__version__", "configure", "current_step", "current_trace_id", "embedding", "fail_response", "generation",
        "get_telemetry", "instrument_faiss", "instrument_fastapi", "instrument_httpx",
        "instrument_requests", "instrument_sentence_transformers", "pipeline", "prometheus_app", "prompt",
        "record_error", "record_evaluation", "record_index", "record_index_write", "rerank", "retrieval",
        "set_prices", "uninstrument_faiss", "uninstrument_fastapi", "uninstrument_httpx",
        "uninstrument_requests", "uninstrument_sentence_transformers",
        # vector databases and RAG frameworks
        "ChromaInstrumentor", "LanceDBInstrumentor", "LangChainInstrumentor", "LlamaIndexInstrumentor",
        "MilvusInstrumentor", "PgvectorInstrumentor", "QdrantInstrumentor",
        "instrument_chroma", "instrument_lancedb", "instrument_langchain", "instrument_llamaindex",
        "instrument_milvus", "instrument_pgvector", "instrument_qdrant",
        "uninstrument_chroma", "uninstrument_lancedb", "uninstrument_langchain", "uninstrument_llamaindex",
        "uninstrument_milvus", "uninstrument_pgvector", "uninstrument_qdrant",
    ],
    "ragotel.instrumentation.requests": ["RequestsInstrumentor", "instrument_requests", "uninstrument_requests"],
    "ragotel.instrumentation.faiss": ["FaissInstrumentor", "instrument_faiss", "uninstrument_faiss"],
    "ragotel.instrumentation.milvus": ["MilvusInstrumentor", "instrument_milvus", "uninstrument_milvus"],
    "ragotel.instrumentation.llamaindex": [
        "LlamaIndexInstrumentor", "instrument_llamaindex", "uninstrument_llamaindex",
    ],
    "ragotel.instrumentation.langchain": ["LangChainInstrumentor", "instrument_langchain", "uninstrument_langchain"],
    "ragotel.instrumentation.lancedb": ["LanceDBInstrumentor", "instrument_lancedb", "uninstrument_lancedb"],
    "ragotel.instrumentation.pgvector": ["PgvectorInstrumentor", "instrument_pgvector", "uninstrument_pgvector"],
    "ragotel.instrumentation.chroma": ["ChromaInstrumentor", "instrument_chroma", "uninstrument_chroma"],
    "ragotel.instrumentation.qdrant": ["QdrantInstrumentor", "instrument_qdrant", "uninstrument_qdrant"],
    "ragotel.instrumentation.sentence_transformers": [
        "SentenceTransformersInstrumentor", "instrument_sentence_transformers", "uninstrument_sentence_transformers",
    ],
    "ragotel.instrumentation.httpx": ["CLIENT_MODULES", "HttpxInstrumentor", "instrument_httpx", "uninstrument_httpx"],
    "ragotel.instrumentation.asgi": [
        "BodySizeMiddleware", "DEFAULT_EXCLUDED_PATHS", "FastApiInstrumentor", "MetricsEndpoint", "RagotelMiddleware",
        "fail_response", "instrument_fastapi", "uninstrument_fastapi",
    ],
    "ragotel.instrumentation.auto": [
        "RagotelConfigurator", "RagotelDistro", "after_instrumentors", "before_instrumentors",
    ],
    "ragotel.cli": ["COMMANDS", "DEFAULT_DIR", "LOGS_FILENAME", "METRICS_FILENAME", "SPANS_FILENAME", "Command",
                    "build_parser", "main"],
    "ragotel.cli.waterfall": [
        "ExemplarRecord", "JSONValue", "SpanRecord", "TraceSummary", "find_trace_ids", "group_by_trace",
        "latest_trace_id", "list_traces", "load_exemplars", "load_spans", "render_exemplars", "render_waterfall",
        "trace_usage",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_exported_members(module: str) -> None:
    found = importlib.import_module(module)
    assert sorted(found.__all__) == sorted(PUBLIC[module])
    for name in found.__all__:
        assert hasattr(found, name), f"{module}.__all__ names {name}, which is not there"


def test_the_package_exposes_nothing_else() -> None:
    """No public attribute beyond ``__all__`` and the public submodules."""
    extra = {name for name in dir(ragotel) if not name.startswith("_")} - set(ragotel.__all__)
    assert extra <= {"semconv", "instrumentation", "cli"}


def test_public_callables_have_usage_docstrings() -> None:
    missing = [name for name in ragotel.__all__ if not name.startswith("_")
               and callable(getattr(ragotel, name)) and not (getattr(ragotel, name).__doc__ or "").strip()]
    assert missing == []
