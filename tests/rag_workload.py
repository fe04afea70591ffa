"""One RAG service that makes ragotel record everything it can, for the tests that compare what ragotel
emits with what is real: the semconv package's names, the Prometheus exporter's translation, the labels
the dashboards group by.

A Starlette app instrumented with :func:`ragotel.instrument_fastapi` answers over ASGI: a pipeline that
encodes, retrieves, reranks, builds a prompt and calls the recorded OpenAI-compatible server through an
instrumented httpx client (plain and streamed chat, embeddings, rerank), a pipeline that fails in its
retrieval, a generation whose call fails, a rejected request; then evaluations, index gauges and an
ingest's writes. Run it inside the ``recorded`` fixture; :func:`serve` leaves nothing switched on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import ragotel
from ragotel._core import runtime
from tests.recorded_openai_server import RecordedOpenAIServer

QUESTION = "When does the clinic open?"
HITS = [{"id": "d1", "score": 0.82, "text": "Open 8-18."}, {"id": "d2", "score": 0.41, "text": "Closed Sun."},
        {"id": "d3", "score": 0.12, "text": "Parking."}]
PRICES = {"*": ragotel.ModelPrice(input_per_million=3.0, output_per_million=15.0)}


@ragotel.embedding(model="tiny-embed")
def encode(texts: list[str]) -> list[list[float]]:
    return [[0.1] * 8 for _ in texts]


@ragotel.retrieval(data_source="faiss", min_score=0.3)
def search(query: str, k: int = 3) -> list[dict[str, Any]]:
    if query == "timeout":
        raise TimeoutError("index did not answer")
    if query == "nothing":
        return []
    return (HITS[2:] if query == "parking" else HITS)[:k]  # parking: only a hit under min_score


@ragotel.rerank(model="cross-encoder")
def rerank(query: str, documents: list[dict[str, Any]], top_n: int = 2) -> list[tuple[dict[str, Any], float]]:
    return [(document, 0.9 - i / 10) for i, document in enumerate(documents[:top_n])]


async def _chat(llm: httpx.AsyncClient, question: str, *, stream: bool) -> None:
    async with ragotel.pipeline("chat", conversation_id="conversation-1"):
        encode([question])
        await llm.post("/embeddings", json={"model": "tiny-embed", "input": [question]})
        hits = search(question, k=3)
        with ragotel.retrieval("above_threshold", data_source="faiss") as step:
            step.record(documents=hits, results_kept=len([hit for hit in hits if hit["score"] >= 0.3]))
        await llm.post("/rerank", json={"model": "cross-encoder", "query": question,
                                        "documents": [hit["text"] for hit in hits]})
        kept = rerank(question, hits)
        async with ragotel.prompt(template="rag-v1", version="3") as step:
            step.record(chunks=len(kept), context_chars=sum(len(hit["text"]) for hit, _ in kept))
        body = {"model": "tiny-llama" if stream else "usage-details", "max_tokens": 16, "stream": stream,
                "messages": [{"role": "system", "content": "Answer from context."},
                             {"role": "user", "content": question}]}
        if stream:
            async with llm.stream("POST", "/chat/completions", json=body) as response:
                async for _ in response.aiter_bytes():
                    pass
        else:
            await llm.post("/chat/completions", json=body)


def app(llm: httpx.AsyncClient) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        await _chat(llm, str(body["question"]), stream=bool(body.get("stream")))
        cited = body["question"] == QUESTION
        ragotel.record_evaluation("cites_sources", label="cited" if cited else "uncited", score=float(cited))
        return JSONResponse({"ok": True})

    async def failing(request: Request) -> JSONResponse:
        try:
            async with ragotel.pipeline("chat_stream"):
                search("timeout")
        except TimeoutError:
            return JSONResponse({"stage": "retrieval"}, status_code=503)
        return JSONResponse({"ok": True})

    async def broken_model(request: Request) -> JSONResponse:
        async with ragotel.pipeline("chat"), ragotel.generation("answer", model="fault-500"):
            response = await llm.post("/chat/completions", json={"model": "fault-500", "messages": []})
        return JSONResponse({"status": response.status_code}, status_code=502)

    async def rejected(request: Request) -> JSONResponse:
        ragotel.record_error("request", "validation", message="question must not be empty")
        return JSONResponse({"detail": "empty"}, status_code=422)

    instrumented: Starlette = ragotel.instrument_fastapi(Starlette(routes=[
        Route("/chat", chat, methods=["POST"]), Route("/fail", failing, methods=["POST"]),
        Route("/broken", broken_model, methods=["POST"]), Route("/rejected", rejected, methods=["POST"]),
    ]))
    return instrumented


async def _serve(llm_url: str) -> None:
    async with httpx.AsyncClient(base_url=llm_url, timeout=10) as llm:
        ragotel.instrument_httpx(llm)
        transport = httpx.ASGITransport(app=app(llm), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://rag") as users:
            for stream in (False, True):
                assert (await users.post("/chat", json={"question": QUESTION, "stream": stream})).status_code == 200
            for question in ("nothing", "parking"):  # an empty retrieval, a low-score one
                assert (await users.post("/chat", json={"question": question})).status_code == 200
            assert (await users.post("/fail", json={})).status_code == 503
            assert (await users.post("/broken", json={})).status_code == 502
            assert (await users.post("/rejected", json={})).status_code == 422
        ragotel.uninstrument_httpx(llm)


def serve(*, latest: bool) -> None:
    """Run the service once in one GenAI mode, with every optional signal on (detailed metrics, prices,
    content capture on spans and events), then switch them back."""
    ragotel.set_prices(PRICES)
    saved = runtime.update(genai_latest=latest, detailed_metrics=True, content_spans=True, content_events=latest)
    try:
        with RecordedOpenAIServer(chunk_delay=0) as llm:
            asyncio.run(_serve(llm.base_url))
        ragotel.record_index("index", items=3, load_seconds=0.02, data_source="faiss", dimension=8,
                             built_at=time.time() - 3600)
        ragotel.record_index_write(documents=3, chunks=3, embedded=3, data_source="faiss")
    finally:
        ragotel.set_prices(None)  # the suite's default: no price table
        runtime.swap(saved)
