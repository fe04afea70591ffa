"""Chat API: retrieve, keep the useful hits, build the prompt, ask vLLM.

::

    python -m examples.reference_app.chat_api   # port 8080; RAG_RETRIEVER_URL, RAG_VLLM_URL, RAG_MODEL

Endpoints: ``POST /chat {question, k, max_tokens, temperature, debug}``, ``POST /chat/stream`` (the
same, as server-sent events), ``POST /dryrun`` (the messages that would be sent, without
calling vLLM), ``GET /health``, ``GET /ready``, ``GET /metrics``.

Failures name their stage: the retriever down or not ready answers 503, a retriever timeout 504,
a vLLM error 502 and a vLLM timeout 504; invalid input 422 with a message. Each lands in the span,
in ``rag.step.errors`` and in a log line carrying the trace id.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

import ragotel
from examples.reference_app import rejections
from examples.reference_app.config import CHAT_PORT, MAX_QUESTION_CHARS, ChatSettings

log = logging.getLogger("rag.chat")

SYSTEM_PROMPT = (
    "You are the assistant of Lindenhof Family Clinic. Answer the question using only the context. "
    "If the context does not contain the answer, say you do not know. Cite sources as [n]."
)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="The user's question.")
    k: int = Field(default=4, ge=1, le=20, description="Chunks to retrieve.")
    max_tokens: int = Field(default=128, ge=1, le=1024, description="Most tokens to generate.")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    debug: bool = Field(default=False, description="Return the exact messages sent to the model.")

    @field_validator("question")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        return value


class Citation(BaseModel):
    n: int
    doc_id: str
    section: str
    source: str
    score: float


class ChatResponse(BaseModel):
    answer: str
    citations: list[Citation]
    usage: dict[str, int]
    latency_ms: dict[str, float]
    model: str
    finish_reason: str | None
    trace_id: str | None
    messages: list[dict[str, str]] | None = None


class StageError(Exception):
    """A dependency failed; ``status`` is the HTTP answer, ``stage`` the step that failed."""

    def __init__(self, stage: str, status: int, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage, self.status, self.detail = stage, status, detail


@dataclass
class Prepared:
    """What goes to the model for one question."""

    messages: list[dict[str, str]]
    citations: list[Citation]
    retrieval_ms: float


class ChatService:
    def __init__(self, settings: ChatSettings) -> None:
        self.settings = settings
        self.retriever = httpx.AsyncClient(base_url=settings.retriever_url, timeout=settings.retriever_timeout)
        self.vllm = httpx.AsyncClient(base_url=settings.vllm_url, timeout=settings.vllm_timeout)
        ragotel.instrument_httpx(self.retriever)  # trace context to the retriever
        ragotel.instrument_httpx(self.vllm)  # GenAI spans, tokens, time to first chunk

    async def aclose(self) -> None:
        await self.retriever.aclose()
        await self.vllm.aclose()

    # -- stages ------------------------------------------------------------------------------------
    async def retrieve(self, question: str, k: int) -> tuple[list[dict[str, Any]], float]:
        """Hits worth putting in the prompt: no noise, no duplicates, within the context budget."""
        started = time.perf_counter()
        async with ragotel.retrieval("retrieve", data_source="retriever", min_score=self.settings.min_score) as step:
            step.record(top_k=k)
            try:
                response = await self.retriever.post("/search", json={"query": question, "k": k})
            except httpx.TimeoutException as exc:
                raise StageError("retrieval", 504, "the retriever did not answer in time") from exc
            except httpx.TransportError as exc:
                raise StageError("retrieval", 503, f"the retriever is unreachable ({type(exc).__name__})") from exc
            if response.status_code == 503:
                raise StageError("retrieval", 503, response.json().get("detail", "the retriever is not ready"))
            if response.status_code != 200:
                raise StageError("retrieval", 502, f"the retriever answered {response.status_code}")
            hits = response.json()["hits"]
            step.record(documents=hits)
            kept = self._keep(hits)
            step.record(results_kept=len(kept))
        return kept, (time.perf_counter() - started) * 1000

    def _keep(self, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept, seen, budget = [], set(), self.settings.context_chars
        for hit in sorted(hits, key=lambda h: -float(h["score"])):
            key = hit["text"].strip().lower()
            if float(hit["score"]) < self.settings.min_score or key in seen:
                continue
            if len(hit["text"]) > budget:
                break
            seen.add(key)
            kept.append(hit)
            budget -= len(hit["text"])
        return kept

    async def prepare(self, question: str, k: int) -> Prepared:
        hits, retrieval_ms = await self.retrieve(question, k)
        async with ragotel.prompt("build_prompt", template="rag-v1") as step:
            context = "\n\n".join(f"[{n}] {hit['section']}\n{hit['text']}" for n, hit in enumerate(hits, 1))
            messages = [
                {"role": "system", "content": f"{SYSTEM_PROMPT}\n\nContext:\n{context or '(no relevant documents)'}"},
                {"role": "user", "content": question},
            ]
            step.record(chunks=len(hits), context_chars=len(context), messages=messages)
        citations = [
            Citation(n=n, doc_id=h["doc_id"], section=h["section"], source=h["source"], score=h["score"])
            for n, h in enumerate(hits, 1)
        ]
        return Prepared(messages, citations, retrieval_ms)

    def completion_request(self, req: ChatRequest, messages: list[dict[str, str]], stream: bool) -> dict[str, Any]:
        return {"model": self.settings.model, "messages": messages, "max_tokens": req.max_tokens,
                "temperature": req.temperature, "stream": stream}

    async def generate(self, req: ChatRequest, messages: list[dict[str, str]]) -> dict[str, Any]:
        try:
            response = await self.vllm.post("/chat/completions", json=self.completion_request(req, messages, False))
        except httpx.TimeoutException as exc:
            raise StageError("generation", 504, "vLLM did not answer in time") from exc
        except httpx.TransportError as exc:
            raise StageError("generation", 502, f"vLLM is unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise StageError("generation", 502, f"vLLM answered {response.status_code}: {_error_text(response)}")
        try:
            return dict(response.json())
        except ValueError as exc:
            raise StageError("generation", 502, "vLLM sent a malformed body") from exc

    # -- endpoints ---------------------------------------------------------------------------------
    async def chat(self, req: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        async with ragotel.pipeline("chat"):
            prepared = await self.prepare(req.question, req.k)
            generation_started = time.perf_counter()
            body = await self.generate(req, prepared.messages)
            choice = body["choices"][0]
            return ChatResponse(
                answer=choice["message"]["content"] or "",
                citations=prepared.citations,
                usage={k: int(v) for k, v in body.get("usage", {}).items() if isinstance(v, int)},
                latency_ms={
                    "total": round((time.perf_counter() - started) * 1000, 1),
                    "retrieval": round(prepared.retrieval_ms, 1),
                    "generation": round((time.perf_counter() - generation_started) * 1000, 1),
                },
                model=body.get("model", self.settings.model),
                finish_reason=choice.get("finish_reason"),
                trace_id=ragotel.current_trace_id(),
                messages=prepared.messages if req.debug else None,
            )

    @ragotel.pipeline("chat_stream")
    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[bytes]:
        """Server-sent events: ``meta`` (citations), ``delta`` chunks, then ``done`` or ``error``."""
        started = time.perf_counter()
        prepared = await self.prepare(req.question, req.k)  # fails before the first event: a plain HTTP error
        yield _sse("meta", {"citations": [c.model_dump() for c in prepared.citations],
                            "trace_id": ragotel.current_trace_id(),
                            **({"messages": prepared.messages} if req.debug else {})})
        body = self.completion_request(req, prepared.messages, True)
        body["stream_options"] = {"include_usage": True}
        usage: dict[str, int] = {}
        finish_reason = None
        try:
            async with self.vllm.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise StageError("generation", 502, f"vLLM answered {response.status_code}")
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices", []):
                        finish_reason = choice.get("finish_reason") or finish_reason
                        if choice.get("delta", {}).get("content"):
                            yield _sse("delta", {"content": choice["delta"]["content"]})
        except httpx.TimeoutException:
            exc = StageError("generation", 504, "vLLM did not answer in time")
            _log_stage_error(exc)
            yield _sse("error", {"stage": exc.stage, "status": exc.status, "detail": exc.detail})
            return
        except (httpx.TransportError, StageError, ValueError) as error:
            exc = error if isinstance(error, StageError) else StageError(
                "generation", 502, f"vLLM stream failed ({type(error).__name__})")
            _log_stage_error(exc)
            yield _sse("error", {"stage": exc.stage, "status": exc.status, "detail": exc.detail})
            return
        yield _sse("done", {"usage": usage, "finish_reason": finish_reason,
                            "latency_ms": {"total": round((time.perf_counter() - started) * 1000, 1),
                                           "retrieval": round(prepared.retrieval_ms, 1)}})

    async def ready(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        for name, client, path in (("retriever", self.retriever, "/ready"), ("vllm", self.vllm, "/models")):
            try:
                response = await client.get(path, timeout=2)
                checks[name] = "ready" if response.status_code == 200 else f"answered {response.status_code}"
            except httpx.HTTPError as exc:
                checks[name] = f"unreachable ({type(exc).__name__})"
        return all(v == "ready" for v in checks.values()), checks


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.json().get("detail") or "")[:200]
    except ValueError:
        return response.text[:200]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _log_stage_error(exc: StageError) -> None:
    log.warning("request failed at stage=%s status=%d: %s", exc.stage, exc.status, exc.detail)


def create_app(settings: ChatSettings | None = None) -> FastAPI:
    service = ChatService(settings or ChatSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.aclose()

    app = FastAPI(title="RAG chat API", version=ragotel.__version__, lifespan=lifespan)
    app.state.service = service
    ragotel.instrument_fastapi(app)
    app.add_route("/metrics", ragotel.prometheus_app())

    rejections.install(app, log)

    @app.exception_handler(StageError)
    async def failed(request: Request, exc: StageError) -> JSONResponse:
        _log_stage_error(exc)
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail, "stage": exc.stage,
                                                             "trace_id": ragotel.current_trace_id()})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        ok, checks = await service.ready()
        return JSONResponse(status_code=200 if ok else 503, content={"ready": ok, **checks})

    @app.post("/chat", response_model=ChatResponse, response_model_exclude_none=True)
    async def chat(req: ChatRequest) -> ChatResponse:
        return await service.chat(req)

    @app.post("/chat/stream")
    async def chat_stream(req: ChatRequest) -> StreamingResponse:
        events = service.chat_stream(req)
        first = await anext(events)  # retrieval and prompt: their errors get a status code, not an event

        async def all_events() -> AsyncIterator[bytes]:
            yield first
            async for event in events:
                yield event

        return StreamingResponse(all_events(), media_type="text/event-stream")

    # A POST, not a GET with ?question=: user text in a URL ends up in access logs and in the server
    # span's url.query.
    @app.post("/dryrun")
    async def dryrun(req: ChatRequest) -> dict[str, Any]:
        prepared = await service.prepare(req.question, req.k)
        return {"would_send": service.completion_request(req, prepared.messages, False),
                "citations": [c.model_dump() for c in prepared.citations],
                "retrieval_ms": round(prepared.retrieval_ms, 1), "trace_id": ragotel.current_trace_id()}

    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s %(message)s")
    ragotel.configure(service_name="rag-chat-api", prometheus_port=0)
    uvicorn.run(create_app(), host="0.0.0.0", port=int(os.environ.get("PORT", CHAT_PORT)), log_level="warning")


if __name__ == "__main__":
    main()
