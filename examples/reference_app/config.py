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


def _flag(name: str) -> bool:
    return _env(name, "false").lower() in {"1", "true", "yes", "on"}


# The chat API passes questions to the retriever as they are: one limit for both, so a question the chat
# API accepts is never refused downstream.
MAX_QUESTION_CHARS = 2000
# "Not blank", one definition for the OpenAPI pattern (ECMA regex) and the check (Python re): a character
# that is whitespace in neither.
NOT_BLANK = r"[^\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"


def listen_host() -> str:
    """Where a service listens: loopback unless ``RAG_HOST`` says otherwise (containers set ``0.0.0.0``)."""
    return _env("RAG_HOST", "127.0.0.1")


def max_body_bytes() -> int:
    """Largest request body either service reads (``RAG_MAX_BODY_BYTES``, default 64 KiB); more is a 413."""
    return int(_env("RAG_MAX_BODY_BYTES", str(64 * 1024)))


def _secret(name: str) -> str:
    """``$NAME_FILE``'s content (a mounted Secret) if set, else ``$NAME``; surrounding whitespace dropped."""
    path = os.environ.get(f"{name}_FILE", "").strip()
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return os.environ.get(name, "").strip()


@dataclass(frozen=True)
class RetrieverSettings:
    index_dir: Path = field(default_factory=lambda: Path(_env("RAG_INDEX_DIR", str(VAR_DIR / "index"))))
    backend: str = field(default_factory=lambda: _env("RAG_BACKEND", "dense"))
    """``dense`` (all-MiniLM-L6-v2 + FAISS inner product) or ``sparse`` (TF-IDF)."""
    reload_token: str = field(default_factory=lambda: _secret("RAG_RELOAD_TOKEN"))
    """The bearer token ``POST /reload`` requires, from ``RAG_RELOAD_TOKEN_FILE`` (a mounted Secret) or
    ``RAG_RELOAD_TOKEN``; empty turns reloading over HTTP off (403)."""
    max_body_bytes: int = field(default_factory=max_body_bytes)


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
    max_model_len: int = field(default_factory=lambda: int(_env("RAG_MAX_MODEL_LEN", "0")))
    """The model's context window in tokens; 0 asks vLLM (``max_model_len`` in ``GET /v1/models``)."""
    chars_per_token: float = field(default_factory=lambda: float(_env("RAG_CHARS_PER_TOKEN", "1.5")))
    """Used only when the server has no ``/tokenize`` endpoint (vLLM has): prompt tokens are estimated as
    characters / this. 1.5 fits the local tiny model's tokenizer; English text on real models is nearer 4."""
    debug_endpoints: bool = field(default_factory=lambda: _flag("RAG_DEBUG_ENDPOINTS"))
    """``POST /dryrun`` and ``"debug": true`` show the system prompt and the retrieved context: off (403)
    unless ``RAG_DEBUG_ENDPOINTS=true``."""
    max_body_bytes: int = field(default_factory=max_body_bytes)
