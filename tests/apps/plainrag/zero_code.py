"""The plain RAG service run unchanged under the real ``opentelemetry-instrument``, and what must come out.

::

    with ZeroCode(tmp_path, llm_base_url=..., model="tiny-llama") as run:
        run.ask("/ask")
        trace = run.trace_of(run.ask("/ask"))     # every span of one request, from the OTLP receiver
        run.scrape("chat")                        # the chat API's /metrics text

Each service exports spans over OTLP to one ``ragotel receive`` and serves ``/metrics`` on a port of its
own (``OTEL_METRICS_EXPORTER=prometheus``); the chat API's call to the doc index is a retrieval step by
``RAGOTEL_SERVICE_STEPS``. The checks are shared by the fast test (a recorded vLLM double) and the stack
test (a real vLLM whose ``llm_request`` span joins the trace).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from examples.reference_app.processes import free_port
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import SpanRecord, load_spans
from tests.apps.plainrag.launch import PlainRag

INSTRUMENT = str(Path(sys.executable).with_name("opentelemetry-instrument"))
SERVICES = {"retriever": "doc-index", "chat": "answers"}


class ZeroCode:
    def __init__(self, var_dir: Path, *, llm_base_url: str, model: str, variant: str = "plain",
                 env: Mapping[str, str] | None = None, service_steps: bool = True) -> None:
        self.var_dir = var_dir
        self.llm_base_url, self.model, self.variant = llm_base_url, model, variant
        self.env = dict(env or {})
        self.service_steps = service_steps
        self.metrics_ports = {name: free_port() for name in SERVICES}
        self.app: PlainRag | None = None
        self.receiver: OtlpReceiver | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ZeroCode:
        try:
            self.receiver = self._stack.enter_context(
                OtlpReceiver(port=0, spans_path=self.var_dir / "telemetry" / "spans.jsonl"))
            retriever_port = free_port()
            env = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_METRICS_EXPORTER": "prometheus",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "HF_HUB_OFFLINE": "1",
                # The openai SDK instrumentations the test extra installs (both named "openai") would each add a
                # span around the call: tests/test_official_instrumentations.py checks ragotel beside them.
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
                **self.env,
            }
            service_env = {name: {"OTEL_SERVICE_NAME": service,
                                  "OTEL_EXPORTER_PROMETHEUS_PORT": str(self.metrics_ports[name])}
                           for name, service in SERVICES.items()}
            if self.service_steps:
                service_env["chat"]["RAGOTEL_SERVICE_STEPS"] = (
                    f"http://127.0.0.1:{retriever_port}/query=retrieval:{SERVICES['retriever']}")
            self.app = self._stack.enter_context(PlainRag(
                self.var_dir, llm_base_url=self.llm_base_url, model=self.model, variant=self.variant, env=env,
                service_env=service_env, command_prefix=[INSTRUMENT], retriever_port=retriever_port))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    # -- driving it --------------------------------------------------------------------------------
    def ask(self, path: str, question: str = "When are you open on Saturdays?", **extra: Any) -> httpx.Response:
        assert self.app is not None
        return httpx.post(f"{self.app.chat_url}{path}", json={"question": question, "max_tokens": 16, **extra},
                          timeout=60)

    def scrape(self, name: str) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics", timeout=10).text

    def spans(self) -> list[SpanRecord]:
        assert self.receiver is not None
        path = self.receiver.spans_path
        return load_spans(path) if path.exists() else []

    def trace_of(self, root_name: str, *, wait_for: tuple[str, ...] = (), timeout: float = 30.0,
                 skip: int = 0) -> list[SpanRecord]:
        """Every span of the ``skip``-th trace whose root is ``root_name``, once the spans named in
        ``wait_for`` have arrived (services export in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            roots = [s for s in self.spans() if s.name == root_name and s.parent_span_id is None]
            if len(roots) > skip:
                members = [s for s in self.spans() if s.trace_id == roots[skip].trace_id]
                if all(any(s.name == name for s in members) for name in wait_for):
                    return members
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete trace under {root_name!r}: {[s.name for s in self.spans()]}")
            time.sleep(0.2)


def child_of(spans: list[SpanRecord], parent: SpanRecord, name: str, service: str | None = None) -> SpanRecord:
    """The one span named ``name`` whose parent is ``parent`` (and which ``service`` exported)."""
    found = [s for s in spans if s.parent_span_id == parent.span_id and s.name == name
             and (service is None or s.service_name == service)]
    siblings = [(s.name, s.service_name) for s in spans if s.parent_span_id == parent.span_id]
    assert len(found) == 1, f"under {parent.name!r}: {siblings}"
    return found[0]


def check_waterfall(spans: list[SpanRecord], root_name: str) -> SpanRecord:
    """server → retrieval client → doc index server → embedding and FAISS sub-steps; server → GenAI chat,
    all one trace. Returns the chat span (vLLM's ``llm_request`` hangs under it)."""
    assert len({s.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert (root.name, root.service_name) == (root_name, SERVICES["chat"])
    client = child_of(spans, root, "retrieval doc-index", SERVICES["chat"])
    server = child_of(spans, client, "POST /query", SERVICES["retriever"])
    (embedding,) = [s for s in spans if s.parent_span_id == server.span_id and s.name.startswith("embeddings ")]
    search = child_of(spans, server, "retrieval faiss", SERVICES["retriever"])
    assert embedding.end_ns <= search.start_ns  # encode, then search, in the pool's thread
    (chat,) = [s for s in spans if s.parent_span_id == root.span_id and s.name.startswith("chat ")]
    assert chat.service_name == SERVICES["chat"]
    return chat
