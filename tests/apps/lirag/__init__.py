"""The bike shop's assistant written on LlamaIndex, the way LlamaIndex services are written: no telemetry code.

``app.py`` is the service (FastAPI, a ``VectorStoreIndex`` over ``PGVectorStore`` in PostgreSQL with pgvector,
``HuggingFaceEmbedding``, an ``OpenAILike`` model behind an OpenAI-compatible server); ``launch.py`` runs it with a
pgserver PostgreSQL, unchanged under ``opentelemetry-instrument``, for a test.
"""
