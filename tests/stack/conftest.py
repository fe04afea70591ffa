"""Real services for stack tests, started once per test session: a local OTLP receiver, vLLM (CPU build,
tiny random-weight model) exporting its own spans there, and the reference app (retriever, chat API,
a node exporter, Alertmanager, and Prometheus scraping them all and evaluating the alert rules) sending
its telemetry to the same receiver.

Prometheus, Alertmanager and the node exporter are Debian packages (scripts/install_tools.sh). Where
one is missing the local stack runs without it and the tests that need it skip; in CI (``CI=true``)
they are required and a missing one fails the stack tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from examples.reference_app.run_local import LocalStack
from examples.reference_app.vllm_server import VllmServer, ensure_tiny_model, ensure_vllm, free_port
from ragotel._config.settings import BY_ARG
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import SpanRecord, load_spans

ROOT = Path(__file__).resolve().parents[2]
SERVED_MODEL = "tiny-llama"
# What the local stack starts only when installed: LocalStack attribute → Debian package.
OPTIONAL_PARTS = {"prometheus_url": "prometheus", "alertmanager_url": "prometheus-alertmanager",
                  "node_exporter_url": "prometheus-node-exporter"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(stack: LocalStack, part: str) -> str:
    """The URL of an optional part of ``stack``; without it, skip here and fail in CI."""
    url = getattr(stack, part)
    if url:
        return str(url)
    message = f"{OPTIONAL_PARTS[part]} is not installed (scripts/install_tools.sh)"
    if in_ci():
        pytest.fail(f"{message}: CI requires it")
    pytest.skip(message)


def check_parts(stack: LocalStack) -> None:
    """In CI every optional part must have started."""
    missing = [package for part, package in OPTIONAL_PARTS.items() if not getattr(stack, part)]
    if missing and in_ci():
        pytest.fail(f"not installed: {', '.join(missing)} (scripts/install_tools.sh); CI requires them")


@pytest.fixture(scope="session")
def vllm_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtlpReceiver]:
    """The OTLP/HTTP endpoint vLLM exports its own spans to."""
    with OtlpReceiver(port=0, spans_path=tmp_path_factory.mktemp("vllm-otlp") / "spans.jsonl") as receiver:
        yield receiver


@pytest.fixture(scope="session")
def vllm(vllm_receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    python = ensure_vllm(ROOT)
    model = ensure_tiny_model(ROOT, ROOT / "var" / "tiny-model", python)
    with VllmServer(
        python, model, free_port(), served_model_name=SERVED_MODEL,
        otlp_traces_endpoint=f"{vllm_receiver.endpoint}/v1/traces", service_name="vllm",
        log_path=tmp_path_factory.mktemp("vllm-log") / "vllm.log",
    ) as server:
        yield server


@pytest.fixture
def vllm_span(vllm_receiver: OtlpReceiver) -> Callable[[str], SpanRecord]:
    """Wait for vLLM's ``llm_request`` span of a response id (vLLM exports in batches, 1–5 s late)."""

    def find(response_id: str, timeout: float = 30.0) -> SpanRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if vllm_receiver.spans_path.exists():
                for span in load_spans(vllm_receiver.spans_path):
                    request_id = str(span.attributes.get("gen_ai.request.id", ""))
                    if span.name == "llm_request" and request_id.startswith(response_id):
                        return span
            time.sleep(0.2)
        raise AssertionError(f"vLLM exported no llm_request span for {response_id} within {timeout} s")

    return find


@pytest.fixture(scope="session")
def stack(vllm: VllmServer, vllm_receiver: OtlpReceiver) -> Iterator[LocalStack]:
    """Retriever, chat API and Prometheus as separate processes, sharing the session's vLLM and receiver.

    With the opt-in detailed metrics on, so that the panels reading them are checked too."""
    with LocalStack(ROOT / "var" / "stack-test", otlp_endpoint=vllm_receiver.endpoint, vllm_url=vllm.base_url,
                    served_model=SERVED_MODEL, fixed_ports=False, log=lambda *a: None,
                    env={BY_ARG["detailed_metrics"].env: "true"}) as running:
        check_parts(running)
        yield running
