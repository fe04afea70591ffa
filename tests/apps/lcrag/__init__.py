"""The bike shop's assistant written on LangChain, the way LangChain services are written: no telemetry code.

``app.py`` is the service (FastAPI, an LCEL chain over a ``QdrantVectorStore`` in Qdrant's local mode,
``HuggingFaceEmbeddings``, ``ChatOpenAI`` behind an OpenAI-compatible server); ``launch.py`` runs it unchanged under
``opentelemetry-instrument`` for a test.
"""
