"""A RAG service ragotel has never seen, written the way services are written without a telemetry library.

``chat.py`` (the assistant: FastAPI, httpx to the doc index, vLLM's OpenAI API through the ``openai``
SDK and through ``requests``) and ``retriever.py`` (the doc index: sentence-transformers + FAISS in a
thread pool) carry no telemetry code. ``decorated.py`` is the same service decorated by hand with
ragotel's public API under its own step names; ``launch.py`` runs either variant as two processes.
"""
