"""Settings of the reference app, read from the environment once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parents[1]
CORPUS_DIR = APP_DIR / "corpus"
VAR_DIR = REPO_ROOT / "var"

CHAT_PORT = 8080
RETRIEVER_PORT = 8001
VLLM_PORT = 8000
EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


# The chat API passes questions to the retriever as they are: one limit for both, so a question the chat
# API accepts is never refused downstream.
MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class RetrieverSettings:
    index_dir: Path = field(default_factory=lambda: Path(_env("RAG_INDEX_DIR", str(VAR_DIR / "index"))))
    backend: str = field(default_factory=lambda: _env("RAG_BACKEND", "dense"))
    """``dense`` (all-MiniLM-L6-v2 + FAISS inner product) or ``sparse`` (TF-IDF)."""


@dataclass(frozen=True)
class ChatSettings:
    retriever_url: str = field(default_factory=lambda: _env("RAG_RETRIEVER_URL", f"http://127.0.0.1:{RETRIEVER_PORT}"))
    vllm_url: str = field(default_factory=lambda: _env("RAG_VLLM_URL", f"http://127.0.0.1:{VLLM_PORT}/v1"))
    model: str = field(default_factory=lambda: _env("RAG_MODEL", "tiny-llama"))
    min_score: float = field(default_factory=lambda: float(_env("RAG_MIN_SCORE", "0.2")))
    """Hits scoring below this are noise and are dropped before the prompt is built."""
    context_chars: int = field(default_factory=lambda: int(_env("RAG_CONTEXT_CHARS", "1500")))
    """Budget for retrieved context in the prompt; the local tiny model has a 1024-token window."""
    retriever_timeout: float = field(default_factory=lambda: float(_env("RAG_RETRIEVER_TIMEOUT", "5")))
    vllm_timeout: float = field(default_factory=lambda: float(_env("RAG_VLLM_TIMEOUT", "60")))
