"""The bike shop's assistant: finds passages in the doc index, asks the model, answers with sources.

    uvicorn tests.apps.plainrag.chat:app --port 9000    # DOC_INDEX_URL, LLM_BASE_URL, LLM_MODEL

``POST /ask {"question": ..., "top_k": 3, "max_tokens": 64, "stream": false}`` asks the model with the
``openai`` SDK (``"stream": true`` answers as plain text chunks); ``POST /ask/raw`` asks the same
OpenAI-compatible server with ``requests``. The doc index unreachable or failing is a 503, the model
failing a 502. No telemetry code: see ``decorated.py`` for the same service with ragotel's steps.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import requests
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

DOC_INDEX_URL = os.environ.get("DOC_INDEX_URL", "http://127.0.0.1:9001")
LLM_BASE_URL = os.environ.get("LLM_BASE_URL", "http://127.0.0.1:8000/v1")
LLM_MODEL = os.environ.get("LLM_MODEL", "tiny-llama")
MAX_CONTEXT_CHARS = int(os.environ.get("MAX_CONTEXT_CHARS", "1200"))

INSTRUCTIONS = ("You answer questions about the Spoke & Chain bike shop using only the numbered passages. "
                "Say so when they do not contain the answer.")


class Ask(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=3, ge=1, le=10)
    max_tokens: int = Field(default=64, ge=1, le=512)
    stream: bool = False


class Answerer:
    """Search, prompt, model call: one method each."""

    def __init__(self) -> None:
        self.doc_index = httpx.AsyncClient(base_url=DOC_INDEX_URL, timeout=10)
        self.llm = openai.AsyncOpenAI(base_url=LLM_BASE_URL, api_key=os.environ.get("LLM_API_KEY", "none"),
                                      max_retries=0)

    async def close(self) -> None:
        await self.doc_index.aclose()
        await self.llm.close()

    async def passages(self, question: str, k: int) -> list[dict[str, Any]]:
        response = await self.doc_index.post("/query", json={"text": question, "top_k": k})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["passages"]
        return found

    def compose(self, question: str, passages: list[dict[str, Any]]) -> list[dict[str, str]]:
        context, used = [], 0
        for n, passage in enumerate(passages, 1):
            if used + len(passage["text"]) > MAX_CONTEXT_CHARS:
                break
            context.append(f"[{n}] {passage['text']}")
            used += len(passage["text"])
        return [{"role": "system", "content": INSTRUCTIONS + "\n\n" + "\n".join(context)},
                {"role": "user", "content": question}]

    async def complete(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        completion = await self.llm.chat.completions.create(
            model=LLM_MODEL, messages=messages, max_tokens=max_tokens, temperature=0.2)
        return completion.choices[0].message.content or ""

    async def complete_stream(self, messages: list[dict[str, str]], max_tokens: int) -> AsyncIterator[str]:
        stream = await self.llm.chat.completions.create(
            model=LLM_MODEL, messages=messages, max_tokens=max_tokens, temperature=0.2,
            stream=True, stream_options={"include_usage": True})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    def complete_raw(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        response = requests.post(f"{LLM_BASE_URL}/chat/completions", timeout=60, json={
            "model": LLM_MODEL, "messages": messages, "max_tokens": max_tokens, "temperature": 0.2})
        response.raise_for_status()
        completion: dict[str, Any] = response.json()
        return completion

    async def answer(self, question: str, k: int, max_tokens: int) -> dict[str, Any]:
        passages = await self.passages(question, k)
        text = await self.complete(self.compose(question, passages), max_tokens)
        return {"answer": text, "sources": [p["id"] for p in passages]}

    async def answer_raw(self, question: str, k: int, max_tokens: int) -> dict[str, Any]:
        passages = await self.passages(question, k)
        messages = self.compose(question, passages)
        completion = await asyncio.to_thread(self.complete_raw, messages, max_tokens)  # requests blocks
        return {"answer": completion["choices"][0]["message"]["content"], "sources": [p["id"] for p in passages]}

    async def answer_stream(self, question: str, k: int, max_tokens: int) -> AsyncIterator[str]:
        passages = await self.passages(question, k)
        async for text in self.complete_stream(self.compose(question, passages), max_tokens):
            yield text


def create_app(answerer_type: type[Answerer] = Answerer) -> FastAPI:
    answerer = answerer_type()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await answerer.close()

    app = FastAPI(title="Bike shop assistant", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ask", response_model=None)
    async def ask(body: Ask) -> dict[str, Any] | StreamingResponse:
        try:
            if body.stream:
                chunks = answerer.answer_stream(body.question, body.top_k, body.max_tokens)
                first = await anext(chunks, "")  # search and model errors before the 200 goes out
                return StreamingResponse(_prepend(first, chunks), media_type="text/plain")
            return await answerer.answer(body.question, body.top_k, body.max_tokens)
        except httpx.HTTPError as exc:
            raise HTTPException(status_code=503, detail=f"doc index unavailable ({type(exc).__name__})") from exc
        except openai.APIError as exc:
            raise HTTPException(status_code=502, detail=f"model call failed ({type(exc).__name__})") from exc

    @app.post("/ask/raw")
    async def ask_raw(body: Ask) -> dict[str, Any]:
        try:
            return await answerer.answer_raw(body.question, body.top_k, body.max_tokens)
        except httpx.HTTPError as exc:
            raise HTTPException(status_code=503, detail=f"doc index unavailable ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            raise HTTPException(status_code=502, detail=f"model call failed ({type(exc).__name__})") from exc

    return app


async def _prepend(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    if first:
        yield first
    async for text in rest:
        yield text


app = create_app()
