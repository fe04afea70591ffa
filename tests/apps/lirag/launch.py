"""Run the LlamaIndex assistant (``app.py``) unchanged under the real ``opentelemetry-instrument``, on a pgserver
PostgreSQL with pgvector, for a test.

::

    with LiRag(tmp_path, llm_base_url=vllm.base_url + "/v1", model="tiny-llama") as run:
        run.chat("When are you open on Saturdays?")
        spans = run.trace_of("POST /chat", wait_for=("chat tiny-llama",))
        run.scrape()                      # the service's /metrics text

PostgreSQL runs from a fresh data directory under ``var_dir`` (deleted on exit); the service exports spans over
OTLP to one ``ragotel receive`` and serves ``/metrics`` on a port of its own (``OTEL_METRICS_EXPORTER=prometheus``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from examples.reference_app.processes import ManagedProcess, free_port
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import SpanRecord, load_spans

ROOT = Path(__file__).resolve().parents[3]
INSTRUMENT = str(Path(sys.executable).with_name("opentelemetry-instrument"))
SERVICE = "bike-assistant"


class LiRag:
    def __init__(self, var_dir: Path, *, llm_base_url: str, model: str, env: Mapping[str, str] | None = None) -> None:
        self.var_dir = var_dir
        self.llm_base_url, self.model = llm_base_url, model
        self.env = dict(env or {})
        self.metrics_port = free_port()
        self.url = ""
        self.receiver: OtlpReceiver | None = None
        self.process: ManagedProcess | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> LiRag:
        try:
            import pgserver

            postgres = pgserver.get_server(self.var_dir / "pgdata", cleanup_mode="delete")
            self._stack.callback(postgres.cleanup)
            database_url = postgres.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
            self.receiver = self._stack.enter_context(
                OtlpReceiver(port=0, spans_path=self.var_dir / "telemetry" / "spans.jsonl"))
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            env = {
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "OTEL_SERVICE_NAME": SERVICE,
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_METRICS_EXPORTER": "prometheus",
                "OTEL_EXPORTER_PROMETHEUS_PORT": str(self.metrics_port),
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                # The openai SDK instrumentations the test extra installs would each add a span around the call.
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
                "DATABASE_URL": database_url,
                "LLM_BASE_URL": self.llm_base_url,
                "LLM_MODEL": self.model,
                **self.env,
            }
            command = [INSTRUMENT, sys.executable, "-m", "uvicorn", "tests.apps.lirag.app:app", "--host", "127.0.0.1",
                       "--port", str(port), "--log-level", "warning"]
            self.process = self._stack.enter_context(ManagedProcess(
                "lirag", command, ready_url=f"{self.url}/health", log_path=self.var_dir / "logs" / "lirag.log",
                cwd=ROOT, env=env, startup_timeout=240))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    # -- driving it --------------------------------------------------------------------------------
    def chat(self, question: str) -> httpx.Response:
        return httpx.post(f"{self.url}/chat", json={"question": question}, timeout=120)

    def scrape(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text

    def spans(self) -> list[SpanRecord]:
        assert self.receiver is not None
        path = self.receiver.spans_path
        return load_spans(path) if path.exists() else []

    def traces_of(self, root_name: str, count: int, *, wait_for: tuple[str, ...] = (),
                  timeout: float = 30.0) -> list[list[SpanRecord]]:
        """The spans of the first ``count`` traces whose root is ``root_name``, once each has the spans named in
        ``wait_for`` (the service exports in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            roots = sorted((s for s in spans if s.name == root_name and s.parent_span_id is None),
                           key=lambda s: s.start_ns)
            traces = [[s for s in spans if s.trace_id == root.trace_id] for root in roots[:count]]
            if len(traces) == count and all(any(s.name == name for s in members)
                                            for members in traces for name in wait_for):
                return traces
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} complete traces under {root_name!r}: {[s.name for s in spans]}")
            time.sleep(0.2)
