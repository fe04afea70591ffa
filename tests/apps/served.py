"""One FastAPI service of the tests' own apps run unchanged under the real ``opentelemetry-instrument``, and what the
tests read back from it::

    with LcRag(tmp_path, llm_base_url=vllm.base_url + "/v1", model="tiny-llama") as run:
        run.chat("When are you open on Saturdays?")
        traces = run.traces_of("POST /chat", 1, wait_for=("chat tiny-llama",))
        run.scrape()                      # the service's /metrics text

The service exports spans over OTLP to one ``ragotel receive`` and serves ``/metrics`` on a port of its own
(``OTEL_METRICS_EXPORTER=prometheus``). A subclass names its app and adds what it needs first (:meth:`prepare`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import httpx

from examples.reference_app.processes import ManagedProcess, free_port
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import SpanRecord, load_spans

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENT = str(Path(sys.executable).with_name("opentelemetry-instrument"))


class ServedApp:
    name: ClassVar[str]
    """Its process's name and the folder of its module under ``tests/apps``."""
    service: ClassVar[str]
    """``OTEL_SERVICE_NAME``."""

    def __init__(self, var_dir: Path, *, llm_base_url: str, model: str, env: Mapping[str, str] | None = None) -> None:
        self.var_dir = var_dir
        self.llm_base_url, self.model = llm_base_url, model
        self.env = dict(env or {})
        self.metrics_port = free_port()
        self.url = ""
        self.receiver: OtlpReceiver | None = None
        self.process: ManagedProcess | None = None
        self._stack = contextlib.ExitStack()

    def prepare(self, stack: contextlib.ExitStack) -> dict[str, str]:
        """Start what the app needs before it starts (closed with ``stack``); returns its environment."""
        return {}

    def __enter__(self) -> Self:
        try:
            prepared = self.prepare(self._stack)
            self.receiver = self._stack.enter_context(
                OtlpReceiver(port=0, spans_path=self.var_dir / "telemetry" / "spans.jsonl"))
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            env = {
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "OTEL_SERVICE_NAME": self.service,
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
                "LLM_BASE_URL": self.llm_base_url,
                "LLM_MODEL": self.model,
                **prepared,
                **self.env,
            }
            command = [INSTRUMENT, sys.executable, "-m", "uvicorn", f"tests.apps.{self.name}.app:app",
                       "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            self.process = self._stack.enter_context(ManagedProcess(
                self.name, command, ready_url=f"{self.url}/health", log_path=self.var_dir / "logs" / f"{self.name}.log",
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

    def answer_each(self, questions: tuple[str, ...], *, wait_for: tuple[str, ...]) -> list[list[SpanRecord]]:
        """Ask each question on ``/chat`` (each must be answered), and return their traces, one per question, once
        each has the spans named in ``wait_for``."""
        for question in questions:
            response = self.chat(question)
            assert response.status_code == 200, response.text
            assert response.json()["answer"]
        traces = self.traces_of("POST /chat", len(questions), wait_for=wait_for)
        assert len({spans[0].trace_id for spans in traces}) == len(questions)
        return traces

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


# -- reading traces and metrics -------------------------------------------------------------------
def children(spans: list[SpanRecord], parent: SpanRecord) -> list[SpanRecord]:
    """The spans directly under ``parent``, in the order they started."""
    return sorted((s for s in spans if s.parent_span_id == parent.span_id), key=lambda s: s.start_ns)


def child(spans: list[SpanRecord], parent: SpanRecord, name: str) -> SpanRecord:
    """The one span named ``name`` directly under ``parent``."""
    found = [s for s in children(spans, parent) if s.name == name]
    assert len(found) == 1, f"under {parent.name!r}: {[s.name for s in children(spans, parent)]}"
    return found[0]


def counts(metrics: str, name: str) -> Counter[tuple[str, str]]:
    """``{name}_count`` by (step kind, step name or workflow name), from the service's /metrics text."""
    return totals(metrics, f"{name}_count")


def totals(metrics: str, name: str) -> Counter[tuple[str, str]]:
    """The series ``name`` (a counter's ``…_total``) summed by (step kind, step name or workflow name), from the
    service's /metrics text."""
    found: Counter[tuple[str, str]] = Counter()
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{"):
            kind = re.search(r'rag_step_kind="([^"]+)"', line)
            label = re.search(r'(?:rag_step_name|gen_ai_workflow_name)="([^"]+)"', line)
            if kind and label:
                found[kind.group(1), label.group(1)] += int(float(line.rsplit(" ", 1)[1]))
    return found
