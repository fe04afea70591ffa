"""The same two services decorated by hand with ragotel's public API, under the app's own step names.

    uvicorn tests.apps.plainrag.decorated:retriever_app --factory --port 9001
    uvicorn tests.apps.plainrag.decorated:chat_app --factory --port 9000

What a user adds to ``chat.py`` and ``retriever.py``: ``configure()``, the FastAPI and httpx
instrumentations, and a step around each method, by subclassing so that the plain code stays as it
is. Step names are the app's (``ask``, ``passages``, ``compose``, ``complete_raw``, ``lookup``,
``encode``, ``faiss``); the service names come from ``OTEL_SERVICE_NAME`` (default below).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import FastAPI

import ragotel
from tests.apps.plainrag import chat, retriever


class TracedIndex(retriever.Index):
    def __init__(self, model: Any, passages: list[dict[str, str]]) -> None:
        started = time.perf_counter()
        super().__init__(model, passages)
        ragotel.record_index("vectors", items=int(self.vectors.ntotal), dimension=int(self.vectors.d),
                             load_seconds=time.perf_counter() - started, built_at=time.time(), data_source="faiss")

    @ragotel.embedding("encode", model=retriever.MODEL_NAME)
    def encode(self, text: str) -> np.ndarray:
        return super().encode(text)

    @ragotel.retrieval("faiss", data_source="faiss")
    def nearest(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        return super().nearest(vector, k)

    @ragotel.retrieval("lookup", data_source="docs")
    def lookup(self, text: str, k: int) -> list[dict[str, Any]]:
        return super().lookup(text, k)


class TracedAnswerer(chat.Answerer):
    @ragotel.retrieval("passages", data_source="doc-index")
    async def passages(self, question: str, k: int) -> list[dict[str, Any]]:
        return await super().passages(question, k)

    def compose(self, question: str, passages: list[dict[str, Any]]) -> list[dict[str, str]]:
        with ragotel.prompt("compose", template="numbered-passages") as step:
            messages = super().compose(question, passages)
            context = [line for line in messages[0]["content"].splitlines() if line.startswith("[")]
            step.record(chunks=len(context), context_chars=sum(map(len, context)))
        return messages

    # The openai SDK's calls go through httpx, which ragotel instruments; requests' call is a step.
    @ragotel.generation("complete_raw", model=chat.LLM_MODEL, provider="vllm")
    def complete_raw(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        return super().complete_raw(messages, max_tokens)

    @ragotel.pipeline("ask")
    async def answer(self, question: str, k: int, max_tokens: int) -> dict[str, Any]:
        return await super().answer(question, k, max_tokens)

    @ragotel.pipeline("ask_raw")
    async def answer_raw(self, question: str, k: int, max_tokens: int) -> dict[str, Any]:
        return await super().answer_raw(question, k, max_tokens)

    @ragotel.pipeline("ask_stream")
    async def answer_stream(self, question: str, k: int, max_tokens: int) -> AsyncIterator[str]:
        async for text in super().answer_stream(question, k, max_tokens):
            yield text


def retriever_app() -> FastAPI:
    ragotel.configure(service_name="doc-index", prometheus_port=0)
    app = retriever.create_app(TracedIndex)
    ragotel.instrument_fastapi(app, metrics_path="/metrics")
    return app


def chat_app() -> FastAPI:
    ragotel.configure(service_name="answers", prometheus_port=0)
    ragotel.instrument_httpx()  # every client: the doc index (trace context) and the openai SDK's (GenAI spans)
    app = chat.create_app(TracedAnswerer)
    ragotel.instrument_fastapi(app, metrics_path="/metrics")
    return app
