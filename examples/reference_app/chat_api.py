"""Chat API: retrieve, keep the useful hits, build the prompt, ask vLLM.

::

    python -m examples.reference_app.chat_api   # port 8080; RAG_RETRIEVER_URL, RAG_VLLM_URL, RAG_MODEL

Endpoints: ``POST /chat {question, k, max_tokens, temperature, debug}``, ``POST /chat/stream`` (the
same, as server-sent events), ``POST /dryrun`` (the messages that would be sent, without
calling vLLM), ``GET /health``, ``GET /ready``, ``GET /metrics``.

Failures name their stage: the retriever down or not ready answers 503, a retriever timeout 504,
a vLLM error 502 (with vLLM's own message) and a vLLM timeout 504; invalid input 422 with a message,
a body over ``RAG_MAX_BODY_BYTES`` 413. Each lands in the span, in ``rag.step.errors`` and in a log
line carrying the trace id. A stream that fails after its headers ends with an ``error`` event and
still counts as a failed request (server and pipeline spans ERROR, ``error.type`` on
``http.server.request.duration``); a client leaving a stream is ``cancelled``, not an error.

The prompt fits the model's context window: the window comes from ``RAG_MAX_MODEL_LEN`` or vLLM's
``GET /v1/models`` (``max_model_len``), prompt tokens from vLLM's ``POST /tokenize`` (an estimate of
characters / ``RAG_CHARS_PER_TOKEN`` where a server has none). Context is trimmed, lowest-scored
chunks first, until question, context and ``max_tokens`` fit; if the question alone leaves less than
``max_tokens``, the answer gets what is left (``finish_reason: length`` says it was cut); a question
that leaves no room for an answer at all is a 422 naming the window.

Safe by default: listens on 127.0.0.1 unless ``RAG_HOST`` says otherwise; ``/dryrun`` and
``"debug": true`` (which show the system prompt and the retrieved context) answer 403 unless
``RAG_DEBUG_ENDPOINTS=true``; a client's ``traceparent`` is linked, never adopted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.types import Send

import ragotel
from examples.reference_app import rejections
from examples.reference_app.config import CHAT_PORT, MAX_QUESTION_CHARS, NOT_BLANK, ChatSettings, listen_host
from examples.reference_app.errors import Rejected, StageError
from examples.reference_app.rejections import JsonInt, error_responses
from ragotel import semconv as sc

log = logging.getLogger("rag.chat")
# A question must leave at least this much of the context window (or max_tokens, if smaller) for the answer.
MIN_ANSWER_TOKENS = 16

SYSTEM_PROMPT = (
    "You are the assistant of Lindenhof Family Clinic. Answer the question using only the context. "
    "If the context does not contain the answer, say you do not know. Cite sources as [n]."
)


class ChatRequest(BaseModel):
    # Strict types: "4" is not a k, 0 and "yes" are not booleans; unknown fields are refused.
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="The user's question.",
                          strict=True, json_schema_extra={"pattern": NOT_BLANK})
    k: JsonInt = Field(default=4, ge=1, le=20, description="Chunks to retrieve.")
    max_tokens: JsonInt = Field(default=128, ge=1, le=1024, description="Most tokens to generate.")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0, strict=True)
    debug: bool = Field(default=False, strict=True, description="Return the exact messages sent to the model "
                                                   "(403 unless the deployment enables debug endpoints).")
    conversation_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$", strict=True,
        description="The client's session or thread id: gen_ai.conversation.id on every span of the request.")

    @field_validator("question")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not re.search(NOT_BLANK, value):
            raise ValueError("question must not be blank")
        return value


class FeedbackRequest(BaseModel):
    """A user's verdict on an answer (thumbs up/down from a UI), attached to the answer's trace."""

    # The schema says what the validator below checks: a score or a label, not null.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["score"], "properties": {"score": {"type": "number"}}},
        {"required": ["label"], "properties": {"label": {"type": "string"}}},
    ]})

    trace_id: str = Field(pattern="^[0-9a-f]{32}$", strict=True,
                          description="The trace_id the answer carried (32 lowercase hex digits).")
    score: float | None = Field(default=None, ge=0.0, le=1.0, strict=True, description="0 (bad) to 1 (good).")
    label: Literal["up", "down"] | None = Field(default=None, description="Thumbs up or down.")
    comment: str | None = Field(default=None, max_length=1000, strict=True,
                                description="Free text; kept only where content capture is on.")

    @model_validator(mode="after")
    def says_something(self) -> FeedbackRequest:
        if self.score is None and self.label is None:
            raise ValueError("give a score or a label")
        return self


class FeedbackAccepted(BaseModel):
    recorded: bool
    trace_id: str


_CITATION = re.compile(r"\[(\d{1,3})\]")


def check_citations(answer: str, citations: list[Citation], response_id: str | None) -> None:
    """Online checks without a judge model, as evaluations of the current (pipeline) span: does the answer
    cite at all, and does every ``[n]`` it cites name a chunk that was retrieved?"""
    cited = {int(n) for n in _CITATION.findall(answer)}
    ragotel.record_evaluation("cites_sources", score=1.0 if cited else 0.0, label="cited" if cited else "uncited",
                              response_id=response_id)
    if cited:
        exist = cited & {c.n for c in citations}
        ragotel.record_evaluation("citations_exist", score=len(exist) / len(cited),
                                  label="all" if exist == cited else "missing", response_id=response_id)


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
    finish_reason: str | None = None
    trace_id: str | None = None
    messages: list[dict[str, str]] | None = None


class Readiness(BaseModel):
    ready: bool
    retriever: str = Field(description="ready, or why not")
    vllm: str = Field(description="ready, or why not")


class DryRun(BaseModel):
    would_send: dict[str, Any]
    citations: list[Citation]
    retrieval_ms: float
    trace_id: str | None = None


class EventStream(StreamingResponse):
    """Server-sent events. Closes its event source in the task that streamed it, whatever ended the
    stream, so that the spans inside end in their own context instead of in a garbage collector's."""

    media_type = "text/event-stream"

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


SSE_EVENT = {  # one event of the stream, as OpenAPI 3.2 describes server-sent events
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"type": "string", "enum": ["meta", "delta", "done", "error"]},
                   "data": {"type": "string", "description": "A JSON object; its fields depend on the event."}},
}
SSE_DESCRIPTION = (
    "Server-sent events: `meta` (citations, trace_id), `delta` ({content}) chunks, then `done` (usage, "
    "finish_reason, latency_ms) or, when generation fails after the stream started, `error` "
    "({stage, status, detail})."
)


@dataclass
class Prepared:
    """What goes to the model for one question."""

    messages: list[dict[str, str]]
    citations: list[Citation]
    retrieval_ms: float
    max_tokens: int


class ChatService:
    def __init__(self, settings: ChatSettings) -> None:
        self.settings = settings
        self.retriever = httpx.AsyncClient(base_url=settings.retriever_url, timeout=settings.retriever_timeout)
        self.vllm = httpx.AsyncClient(base_url=settings.vllm_url, timeout=settings.vllm_timeout)
        ragotel.instrument_httpx(self.retriever)  # trace context to the retriever
        ragotel.instrument_httpx(self.vllm)  # GenAI spans, tokens, time to first chunk
        self.window = ContextWindow(settings, self.vllm)

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

    async def admit(self, req: ChatRequest) -> int | None:
        """Refuse, before any work, what cannot be served: debug output where it is off, a question
        too long for the model's context window. Returns the window (``None``: unknown)."""
        if req.debug and not self.settings.debug_endpoints:
            raise Rejected(403, "debug: debug output is turned off in this deployment (RAG_DEBUG_ENDPOINTS)",
                           "forbidden")
        window = await self.window.size()
        if window is not None:
            needed = await self.window.count(_messages(req.question, []))
            if needed + min(req.max_tokens, MIN_ANSWER_TOKENS) > window:
                raise Rejected(422, f"question: the prompt needs {needed} tokens, which leaves no room for an answer "
                                    f"in the model's context window of {window} tokens (max_model_len); shorten "
                                    "the question", "context_window")
        return window

    async def prepare(self, req: ChatRequest, window: int | None) -> Prepared:
        hits, retrieval_ms = await self.retrieve(req.question, req.k)
        max_tokens = req.max_tokens
        async with ragotel.prompt("build_prompt", template="rag-v1") as step:
            messages = _messages(req.question, hits)
            if window is not None:
                # Drop the lowest-scored chunks until question, context and the answer fit; without any
                # context left, the answer gets the room there is (admit() made sure there is some).
                tokens = await self.window.count(messages)
                while hits and tokens + max_tokens > window:
                    hits = hits[:-1]
                    messages = _messages(req.question, hits)
                    tokens = await self.window.count(messages)
                max_tokens = max(1, min(max_tokens, window - tokens))
                step.record(context_tokens=tokens)
            context = _context(hits)
            step.record(chunks=len(hits), context_chars=len(context), messages=messages)
        citations = [
            Citation(n=n, doc_id=h["doc_id"], section=h["section"], source=h["source"], score=h["score"])
            for n, h in enumerate(hits, 1)
        ]
        return Prepared(messages, citations, retrieval_ms, max_tokens)

    def completion_request(self, req: ChatRequest, prepared: Prepared, stream: bool) -> dict[str, Any]:
        return {"model": self.settings.model, "messages": prepared.messages, "max_tokens": prepared.max_tokens,
                "temperature": req.temperature, "stream": stream}

    async def generate(self, req: ChatRequest, prepared: Prepared) -> dict[str, Any]:
        try:
            response = await self.vllm.post("/chat/completions", json=self.completion_request(req, prepared, False))
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
    async def chat(self, req: ChatRequest, window: int | None) -> ChatResponse:
        started = time.perf_counter()
        async with ragotel.pipeline("chat", conversation_id=req.conversation_id):
            prepared = await self.prepare(req, window)
            generation_started = time.perf_counter()
            body = await self.generate(req, prepared)
            choice = body["choices"][0]
            answer = choice["message"]["content"] or ""
            check_citations(answer, prepared.citations, body.get("id"))
            return ChatResponse(
                answer=answer,
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
    async def chat_stream(self, req: ChatRequest, window: int | None,
                          conversation_id: str | None = None) -> AsyncGenerator[bytes, None]:
        """Server-sent events: ``meta`` (citations), ``delta`` chunks, then ``done``. A failure after
        ``meta`` raises :class:`StageError` (the pipeline span fails with it); the endpoint turns it into
        the stream's last event, ``error``."""
        started = time.perf_counter()
        prepared = await self.prepare(req, window)  # fails before the first event: a plain HTTP error
        yield _sse("meta", {"citations": [c.model_dump() for c in prepared.citations],
                            "trace_id": ragotel.current_trace_id(),
                            **({"messages": prepared.messages} if req.debug else {})})
        body = self.completion_request(req, prepared, True)
        body["stream_options"] = {"include_usage": True}
        usage: dict[str, int] = {}
        finish_reason, response_id, parts = None, None, []
        try:
            try:
                async with self.vllm.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise StageError("generation", 502,
                                         f"vLLM answered {response.status_code}: {_error_text(response)}")
                    async for line in response.aiter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        usage = chunk.get("usage") or usage
                        response_id = chunk.get("id") or response_id
                        for choice in chunk.get("choices", []):
                            finish_reason = choice.get("finish_reason") or finish_reason
                            if choice.get("delta", {}).get("content"):
                                parts.append(choice["delta"]["content"])
                                yield _sse("delta", {"content": choice["delta"]["content"]})
            except httpx.TimeoutException as error:
                raise StageError("generation", 504, "vLLM did not answer in time") from error
            except (httpx.TransportError, ValueError) as error:
                raise StageError("generation", 502, f"vLLM stream failed ({type(error).__name__})") from error
        except StageError as exc:
            # The pipeline span (current here) names the stage; the step records the exception itself.
            trace.get_current_span().add_event("rag.error", {sc.RAG_STEP_KIND: exc.stage, "message": exc.detail})
            raise
        check_citations("".join(parts), prepared.citations, response_id)
        yield _sse("done", {"usage": usage, "finish_reason": finish_reason,
                            "latency_ms": {"total": round((time.perf_counter() - started) * 1000, 1),
                                           "retrieval": round(prepared.retrieval_ms, 1)}})

    async def stream_events(self, req: ChatRequest, window: int | None) -> EventStream:
        events = self.chat_stream(req, window, conversation_id=req.conversation_id)  # read by the step
        first = await anext(events)  # retrieval and prompt: their errors get a status code, not an event

        async def all_events() -> AsyncIterator[bytes]:
            sent = 0
            try:
                yield first
                async for event in events:
                    sent += 1
                    yield event
            except StageError as exc:  # after the headers: the status is 200 already
                _log_stage_error(exc, streamed=True)
                ragotel.fail_response(exc, stage=exc.stage, message=exc.detail)
                yield _sse("error", {"stage": exc.stage, "status": exc.status, "detail": exc.detail})
            except (GeneratorExit, asyncio.CancelledError):
                log.info("client left the stream after %d events", sent + 1)
                raise
            finally:
                await events.aclose()

        return EventStream(all_events())

    async def ready(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        for name, client, path in (("retriever", self.retriever, "/ready"), ("vllm", self.vllm, "/models")):
            try:
                response = await client.get(path, timeout=2)
                checks[name] = "ready" if response.status_code == 200 else f"answered {response.status_code}"
            except httpx.HTTPError as exc:
                checks[name] = f"unreachable ({type(exc).__name__})"
        return all(v == "ready" for v in checks.values()), checks


class ContextWindow:
    """The model's context window and prompt token counts, from the model server itself."""

    RETRY_AFTER_S = 30.0

    def __init__(self, settings: ChatSettings, vllm: httpx.AsyncClient) -> None:
        self.settings, self.vllm = settings, vllm
        self.tokenize_url = settings.vllm_url.rstrip("/").removesuffix("/v1") + "/tokenize"
        self._size: int | None = settings.max_model_len or None
        self._asked_at = -math.inf
        self._tokenize = True  # until the server shows it has no /tokenize

    async def size(self) -> int | None:
        """``RAG_MAX_MODEL_LEN``, else ``max_model_len`` of the served model in ``GET /v1/models``;
        ``None`` while neither is known (asked again at most every 30 s)."""
        if self._size is not None or time.monotonic() - self._asked_at < self.RETRY_AFTER_S:
            return self._size
        self._asked_at = time.monotonic()
        try:
            response = await self.vllm.get("/models", timeout=5)
            models = response.json().get("data", []) if response.status_code == 200 else []
            lengths = [m.get("max_model_len") for m in models if isinstance(m, dict)
                       and m.get("id") == self.settings.model]
            if lengths and isinstance(lengths[0], int) and lengths[0] > 0:
                self._size = lengths[0]
                log.info("model %s: context window %d tokens", self.settings.model, self._size)
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.info("context window not known yet (%s)", type(exc).__name__)
        return self._size

    async def count(self, messages: list[dict[str, str]]) -> int:
        """Prompt tokens of these messages with the chat template applied, as vLLM counts them."""
        if self._tokenize:
            try:
                response = await self.vllm.post(self.tokenize_url, timeout=5, json={
                    "model": self.settings.model, "messages": messages, "add_generation_prompt": True})
                if response.status_code == 200:
                    return int(response.json()["count"])
                if response.status_code in (404, 405, 501):
                    self._tokenize = False
                    log.info("no %s (%d): estimating prompt tokens from characters", self.tokenize_url,
                             response.status_code)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.info("tokenize failed (%s): estimating prompt tokens from characters", type(exc).__name__)
        # Characters per token, plus a few tokens of chat template per message.
        return sum(math.ceil(len(m["content"]) / self.settings.chars_per_token) + 8 for m in messages)


def _context(hits: list[dict[str, Any]]) -> str:
    return "\n\n".join(f"[{n}] {hit['section']}\n{hit['text']}" for n, hit in enumerate(hits, 1))


def _messages(question: str, hits: list[dict[str, Any]]) -> list[dict[str, str]]:
    context = _context(hits)
    return [
        {"role": "system", "content": f"{SYSTEM_PROMPT}\n\nContext:\n{context or '(no relevant documents)'}"},
        {"role": "user", "content": question},
    ]


def _error_text(response: httpx.Response) -> str:
    """The model server's own message: vLLM puts it under ``error.message``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or body.get("message") or body.get("detail") or "")[:300]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _log_stage_error(exc: StageError, *, streamed: bool = False) -> None:
    log.warning("request failed at stage=%s status=%d%s: %s", exc.stage, exc.status,
                " (after the stream started)" if streamed else "", exc.detail)


def create_app(settings: ChatSettings | None = None) -> FastAPI:
    service = ChatService(settings or ChatSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.aclose()

    app = FastAPI(title="RAG chat API", version=ragotel.__version__, lifespan=lifespan)
    app.state.service = service
    rejections.install(app, log, service.settings.max_body_bytes)
    # A public endpoint: a client's traceparent is linked, never adopted.
    ragotel.instrument_fastapi(app, trust_incoming_context=False, metrics_path="/metrics")

    @app.exception_handler(StageError)
    async def failed(request: Request, exc: StageError) -> JSONResponse:
        _log_stage_error(exc)
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail, "stage": exc.stage,
                                                             "trace_id": ragotel.current_trace_id()})

    @app.exception_handler(Rejected)
    async def refused(request: Request, exc: Rejected) -> JSONResponse:
        return rejections.reject(request, exc.detail, log, status=exc.status, error_type=exc.error_type)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
    async def ready() -> JSONResponse:
        ok, checks = await service.ready()
        return JSONResponse(status_code=200 if ok else 503, content={"ready": ok, **checks})

    failures = error_responses(403, 413, 422, 502, 503, 504)

    @app.post("/chat", response_model=ChatResponse, response_model_exclude_none=True, responses=failures)
    async def chat(req: ChatRequest) -> ChatResponse:
        return await service.chat(req, await service.admit(req))

    # Errors before the stream starts are JSON, whatever the route's own media type.
    json_failures = {status: {"description": answer["description"], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorBody"}}}} for status, answer in failures.items()}

    @app.post("/chat/stream", response_class=EventStream, responses={
        200: {"description": SSE_DESCRIPTION, "content": {"text/event-stream": {"schema": SSE_EVENT}}},
        **json_failures,
    })
    async def chat_stream(req: ChatRequest) -> EventStream:
        return await service.stream_events(req, await service.admit(req))

    @app.post("/feedback", status_code=202, response_model=FeedbackAccepted, responses=error_responses(413, 422))
    async def feedback(req: FeedbackRequest) -> FeedbackAccepted:
        # A trace id this service never issued is fine: the event lands beside nothing.
        ragotel.record_evaluation("user_feedback", score=req.score, label=req.label, explanation=req.comment,
                                  context=req.trace_id)
        return FeedbackAccepted(recorded=True, trace_id=req.trace_id)

    # A POST, not a GET with ?question=: user text in a URL ends up in access logs and in the server
    # span's url.query.
    @app.post("/dryrun", response_model=DryRun, responses=failures)
    async def dryrun(req: ChatRequest) -> DryRun:
        if not service.settings.debug_endpoints:
            raise Rejected(403, "/dryrun is turned off in this deployment (RAG_DEBUG_ENDPOINTS)", "forbidden")
        prepared = await service.prepare(req, await service.admit(req))
        return DryRun(would_send=service.completion_request(req, prepared, False),
                      citations=prepared.citations, retrieval_ms=round(prepared.retrieval_ms, 1),
                      trace_id=ragotel.current_trace_id())

    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s %(message)s")
    ragotel.configure(service_name="rag-chat-api", prometheus_port=0)
    uvicorn.run(create_app(), host=listen_host(), port=int(os.environ.get("PORT", CHAT_PORT)), log_level="warning")


if __name__ == "__main__":
    main()
