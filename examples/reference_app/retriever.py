"""Retriever service: ``POST /search`` over a dense (FAISS) or sparse (TF-IDF) index.

::

    python -m examples.reference_app.retriever        # port 8001, RAG_INDEX_DIR, RAG_BACKEND

Endpoints: ``POST /search {query, k}``, ``POST /reload``, ``GET /health``, ``GET /ready`` (503 with
the reason until the index is loaded), ``GET /metrics``. A reload builds the new index aside and
swaps one reference, so a search uses either the old index or the new one, never half of each.

An internal service: it continues the caller's trace, listens on 127.0.0.1 unless ``RAG_HOST`` says
otherwise, refuses bodies over ``RAG_MAX_BODY_BYTES`` (413) and unknown or mistyped fields (422), and
``/reload`` needs ``Authorization: Bearer <token>`` with the token from ``RAG_RELOAD_TOKEN_FILE`` (a
mounted Secret) or ``RAG_RELOAD_TOKEN`` (401 without it; 403 when no token is configured). Error
bodies name the problem, never a path or an exception's text (the log has those).

Telemetry (all through ragotel): a ``search`` retrieval step with the dense sub-steps
``dense_encode`` (embedding) and ``faiss_search``, or the sparse ones ``sparse_vectorize`` and
``sparse_dot``; load times and item counts of each index part as gauges; errors by stage.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import pickle
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

import ragotel
from examples.reference_app import rejections
from examples.reference_app.config import (
    EMBEDDING_MODEL,
    MAX_QUESTION_CHARS,
    NOT_BLANK,
    RETRIEVER_PORT,
    RetrieverSettings,
    listen_host,
)
from examples.reference_app.rejections import ErrorBody, JsonInt, error_responses

log = logging.getLogger("rag.retriever")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="What to search for.",
                       strict=True, json_schema_extra={"pattern": NOT_BLANK})
    k: JsonInt = Field(default=4, ge=1, le=20, description="How many hits to return.")

    @field_validator("query")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not re.search(NOT_BLANK, value):
            raise ValueError("query must not be blank")
        return value


class Hit(BaseModel):
    id: str
    doc_id: str
    section: str
    text: str
    source: str
    score: float


class SearchResponse(BaseModel):
    backend: str
    hits: list[Hit]


class Readiness(BaseModel):
    ready: bool
    backend: str | None = None
    items: int | None = None
    reason: str | None = Field(default=None, description="Why not ready")


class Reloaded(BaseModel):
    reloaded: bool
    backend: str
    items: int
    seconds: float


class SearchFailed(Exception):
    """A search failed in one of its stages (``dense_encode``, ``faiss_search``, ...)."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"search failed in stage {stage}")
        self.stage = stage


class Index(Protocol):
    backend: str
    size: int

    def search(self, query: str, k: int) -> list[Hit]: ...


def _load_meta(index_dir: Path) -> list[dict[str, str]]:
    started = time.perf_counter()
    with (index_dir / "meta.jsonl").open(encoding="utf-8") as f:
        meta = [json.loads(line) for line in f if line.strip()]
    ragotel.record_index("meta", items=len(meta), load_seconds=time.perf_counter() - started)
    return meta


def _built_at(index_dir: Path) -> float:
    """When the index was built: the manifest's ``built_at``, or (an older manifest) when it was written."""
    from examples.reference_app.ingest import MANIFEST

    path = index_dir / MANIFEST
    try:
        built = json.loads(path.read_text()).get("built_at")
        return float(built) if isinstance(built, (int, float)) else path.stat().st_mtime
    except (OSError, ValueError):
        return (index_dir / "meta.jsonl").stat().st_mtime


def _hits(meta: list[dict[str, str]], pairs: list[tuple[int, float]]) -> list[Hit]:
    return [Hit(**meta[i], score=round(float(score), 6)) for i, score in pairs if 0 <= i < len(meta)]


@dataclass
class DenseIndex:
    """all-MiniLM-L6-v2 embeddings in a FAISS inner-product index (cosine on normalised vectors)."""

    model: Any
    index: Any
    meta: list[dict[str, str]]
    backend: str = "dense"

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def load(cls, index_dir: Path) -> DenseIndex:
        import faiss

        from examples.reference_app.ingest import load_embedding_model

        started = time.perf_counter()
        model = load_embedding_model()
        ragotel.record_index("model", load_seconds=time.perf_counter() - started, data_source="faiss")
        started = time.perf_counter()
        index = faiss.read_index(str(index_dir / "dense.faiss"))
        ragotel.record_index("index", items=index.ntotal, load_seconds=time.perf_counter() - started,
                             dimension=int(index.d), built_at=_built_at(index_dir), data_source="faiss")
        return cls(model, index, _load_meta(index_dir))

    def search(self, query: str, k: int) -> list[Hit]:
        stage = "dense_encode"
        try:
            with ragotel.embedding(stage, model=EMBEDDING_MODEL) as step:
                vector = self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True)
                step.record(inputs=1, dimension=int(vector.shape[1]))
            stage = "faiss_search"
            with ragotel.retrieval(stage, data_source="faiss") as step:
                scores, ids = self.index.search(vector.astype("float32"), min(k, self.size))
                step.record(top_k=k, index_size=self.size)
        except Exception as exc:
            raise SearchFailed(stage) from exc
        return _hits(self.meta, list(zip(ids[0].tolist(), scores[0].tolist(), strict=True)))


@dataclass
class SparseIndex:
    """TF-IDF vectors; the score is the dot product of L2-normalised rows (cosine)."""

    vectorizer: Any
    matrix: Any
    meta: list[dict[str, str]]
    backend: str = "sparse"

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])

    @classmethod
    def load(cls, index_dir: Path) -> SparseIndex:
        from scipy import sparse

        started = time.perf_counter()
        with (index_dir / "sparse_vectorizer.pkl").open("rb") as f:
            vectorizer = pickle.load(f)  # written by our own ingest step
        ragotel.record_index("vectorizer", items=len(vectorizer.vocabulary_),
                             load_seconds=time.perf_counter() - started, data_source="tfidf")
        started = time.perf_counter()
        matrix = sparse.load_npz(index_dir / "sparse_matrix.npz")
        ragotel.record_index("matrix", items=matrix.shape[0], load_seconds=time.perf_counter() - started,
                             built_at=_built_at(index_dir), data_source="tfidf")
        return cls(vectorizer, matrix, _load_meta(index_dir))

    def search(self, query: str, k: int) -> list[Hit]:
        import numpy as np

        stage = "sparse_vectorize"
        try:
            with ragotel.embedding(stage, model="tfidf") as step:
                vector = self.vectorizer.transform([query])
                step.record(inputs=1, dimension=int(vector.shape[1]))
            stage = "sparse_dot"
            with ragotel.retrieval(stage, data_source="tfidf") as step:
                scores = (self.matrix @ vector.T).toarray().ravel()
                top = np.argsort(-scores)[:k]
                step.record(top_k=k, index_size=self.size)
        except Exception as exc:
            raise SearchFailed(stage) from exc
        return _hits(self.meta, [(int(i), float(scores[i])) for i in top if scores[i] > 0])


LOADERS = {"dense": DenseIndex.load, "sparse": SparseIndex.load}


class IndexHolder:
    """The index in service; replaced as a whole on reload."""

    def __init__(self, settings: RetrieverSettings) -> None:
        self.settings = settings
        self.current: Index | None = None
        self.not_ready_reason = "index is loading"
        self._reload_lock = threading.Lock()

    def load(self) -> Index:
        """Load a fresh index and swap it in; the previous one keeps serving until then."""
        with self._reload_lock:
            backend = self.settings.backend
            if backend not in LOADERS:
                self.not_ready_reason = f"unknown backend {backend!r} (dense or sparse)"
                raise ValueError(self.not_ready_reason)
            try:
                if not (self.settings.index_dir / "meta.jsonl").is_file():
                    raise FileNotFoundError(self.settings.index_dir / "meta.jsonl")
                fresh = LOADERS[backend](self.settings.index_dir)
            except FileNotFoundError:
                log.error("no index at %s (run the ingest step)", self.settings.index_dir)
                if self.current is None:
                    self.not_ready_reason = "no index found (run the ingest step)"
                raise
            self.current = fresh  # one reference assignment: atomic for every reader
            return fresh

    def load_in_background(self) -> None:
        def run() -> None:
            try:
                index = self.load()
                log.info("index loaded: backend=%s items=%d", index.backend, index.size)
            except Exception as exc:
                log.error("index load failed: %s", exc)
                if self.current is None and not self.not_ready_reason.startswith("no index"):
                    self.not_ready_reason = f"index load failed ({type(exc).__name__}; see the log)"

        threading.Thread(target=run, name="index-loader", daemon=True).start()


def create_app(settings: RetrieverSettings | None = None, *, load: bool = True) -> FastAPI:
    settings = settings or RetrieverSettings()
    holder = IndexHolder(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load:
            holder.load_in_background()  # /ready answers 503 with the reason until it is done
        yield

    app = FastAPI(title="RAG retriever", version=ragotel.__version__, lifespan=lifespan)
    app.state.index = holder
    rejections.install(app, log, settings.max_body_bytes)
    ragotel.instrument_fastapi(app, metrics_path="/metrics")  # internal: continues the chat API's trace

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
    def ready() -> JSONResponse:
        index = holder.current
        if index is None:
            return JSONResponse(status_code=503, content={"ready": False, "reason": holder.not_ready_reason})
        return JSONResponse({"ready": True, "backend": index.backend, "items": index.size})

    @app.post("/search", response_model=SearchResponse, responses=error_responses(413, 422, 500, 503))
    def search(body: SearchRequest) -> Any:
        index = holder.current  # this search keeps this index, whatever a reload does meanwhile
        if index is None:
            ragotel.record_error("retrieval", "not_ready", message=holder.not_ready_reason)
            return JSONResponse(status_code=503, content={"detail": f"retriever not ready: {holder.not_ready_reason}",
                                                          "stage": "retrieval"})
        try:
            with ragotel.retrieval("search") as step:
                step.record(data_source=index.backend, top_k=body.k, index_size=index.size)
                hits = index.search(body.query, body.k)
                step.record(documents=hits)
        except SearchFailed as exc:
            log.exception("search failed in stage %s", exc.stage)
            return JSONResponse(status_code=500, content={"detail": str(exc), "stage": exc.stage})
        return SearchResponse(backend=index.backend, hits=hits)

    @app.post("/reload", response_model=Reloaded, responses={
        **error_responses(401, 403, 500), 401: {"model": ErrorBody, "description": "Missing or wrong token",
                                                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}}})
    def reload(request: Request) -> Any:
        if not settings.reload_token:
            return rejections.reject(request, "reload over HTTP is turned off (no RAG_RELOAD_TOKEN_FILE)", log,
                                     status=403, error_type="forbidden")
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), settings.reload_token.encode()):
            response = rejections.reject(request, "reload needs Authorization: Bearer <token>", log, status=401,
                                         error_type="unauthorized")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        started = time.perf_counter()
        try:
            index = holder.load()
        except Exception as exc:
            log.error("reload failed, still serving the previous index: %s", exc)
            return JSONResponse(status_code=500, content={"detail": "reload failed; still serving the previous index "
                                                                    "(the retriever's log says why)",
                                                          "stage": "retrieval"})
        return Reloaded(reloaded=True, backend=index.backend, items=index.size,
                        seconds=round(time.perf_counter() - started, 3))

    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s %(message)s")
    ragotel.configure(service_name="rag-retriever", prometheus_port=0)
    uvicorn.run(create_app(), host=listen_host(), port=int(os.environ.get("PORT", RETRIEVER_PORT)), log_level="warning")


if __name__ == "__main__":
    main()
