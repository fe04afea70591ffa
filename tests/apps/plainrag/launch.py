"""Run the plain RAG service's two processes (doc index, then the assistant) for a test.

::

    with PlainRag(tmp_dir, llm_base_url=vllm.base_url + "/v1", model="tiny-llama") as app:
        httpx.post(f"{app.chat_url}/ask", json={"question": "When are you open?"})

``variant="plain"`` runs ``chat.py`` and ``retriever.py`` as they are, ``"decorated"`` the hand-decorated
``decorated.py``; ``command_prefix`` goes before ``python -m uvicorn ...`` (e.g. the
``opentelemetry-instrument`` command for zero-code instrumentation); ``env`` is added to both
processes' environment, ``service_env`` to one's (keys ``"retriever"`` and ``"chat"``);
``retriever_port`` fixes the doc index's port (to name its URL in the chat API's settings). Each process
is stopped, with everything it started, on exit.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from examples.reference_app.processes import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[3]
APPS = {
    "plain": {"retriever": ["tests.apps.plainrag.retriever:app"], "chat": ["tests.apps.plainrag.chat:app"]},
    "decorated": {"retriever": ["tests.apps.plainrag.decorated:retriever_app", "--factory"],
                  "chat": ["tests.apps.plainrag.decorated:chat_app", "--factory"]},
}


class PlainRag:
    def __init__(self, var_dir: Path, *, llm_base_url: str, model: str, variant: str = "decorated",
                 env: Mapping[str, str] | None = None, service_env: Mapping[str, Mapping[str, str]] | None = None,
                 command_prefix: Sequence[str] = (), retriever_port: int | None = None) -> None:
        if variant not in APPS:
            raise ValueError(f"variant: {variant!r} is not one of {sorted(APPS)}")
        self.var_dir = var_dir
        self.llm_base_url = llm_base_url
        self.model = model
        self.variant = variant
        self.env = dict(env or {})
        self.service_env = {name: dict(values) for name, values in (service_env or {}).items()}
        self.command_prefix = list(command_prefix)
        self.retriever_port = retriever_port
        self.retriever_url = self.chat_url = ""
        self.processes: dict[str, ManagedProcess] = {}
        self._stack = contextlib.ExitStack()

    def _process(self, name: str, port: int, env: dict[str, str]) -> ManagedProcess:
        command = [*self.command_prefix, sys.executable, "-m", "uvicorn", *APPS[self.variant][name],
                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        return ManagedProcess(name, command, ready_url=f"http://127.0.0.1:{port}/health",
                              log_path=self.var_dir / "logs" / f"{name}.log", cwd=ROOT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **env,
                                   **self.service_env.get(name, {})})

    def __enter__(self) -> PlainRag:
        try:
            retriever_port, chat_port = self.retriever_port or free_port(), free_port()
            self.retriever_url = f"http://127.0.0.1:{retriever_port}"
            self.chat_url = f"http://127.0.0.1:{chat_port}"
            self.processes["retriever"] = self._stack.enter_context(self._process("retriever", retriever_port, {}))
            self.processes["chat"] = self._stack.enter_context(self._process("chat", chat_port, {
                "DOC_INDEX_URL": self.retriever_url, "LLM_BASE_URL": self.llm_base_url, "LLM_MODEL": self.model}))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()
