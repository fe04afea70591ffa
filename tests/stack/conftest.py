"""Real services for stack tests, started once per test session: a local OTLP receiver, vLLM (CPU build,
tiny random-weight model) exporting its own spans there, and the reference app (retriever, chat API,
a node exporter, Alertmanager, and Prometheus scraping them all and evaluating the alert rules) sending
its telemetry to the same receiver.

Prometheus, Alertmanager and the node exporter are Debian packages (scripts/install_tools.sh). Where
one is missing the local stack runs without it and the tests that need it skip; in CI (``CI=true``)
they are required and a missing one fails the stack tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from examples.reference_app.processes import ManagedProcess
from examples.reference_app.run_local import LocalStack, node_exporter_process
from examples.reference_app.vllm_server import VllmServer, ensure_tiny_model, ensure_vllm, free_port
from ragotel._core.settings import BY_ARG
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import SpanRecord, load_spans
from tests.apps.lcrag.launch import LcRag
from tests.apps.lirag.launch import LiRag
from tests.apps.plainrag.launch import PlainRag
from tests.apps.served import ServedApp

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


# --- an app ragotel has never seen ----------------------------------------------------------------
# tests/apps/plainrag decorated by hand, under its own step names and scrape jobs (none is the
# reference app's); a second Prometheus renames every step, pipeline, route and job once more at
# scrape time, so a query that matched any of the names would come back empty there.
PLAIN_JOBS = {"chat": "answers", "retriever": "doc-index", "vllm": "llm-engine", "node": "host"}
RENAMED_LABELS = ("rag_step_name", "gen_ai_workflow_name", "gen_ai_agent_name", "http_route")
RENAMED_PREFIX = "renamed-"


# The GenAI conventions the second app runs under: each once (docs/genai-conventions.md: the two modes).
GENAI_MODES = {"default conventions": "", "latest conventions": "gen_ai_latest_experimental"}


@dataclass
class PlainStack:
    app: PlainRag
    genai_opt_in: str
    """``OTEL_SEMCONV_STABILITY_OPT_IN`` of both services: empty, or ``gen_ai_latest_experimental``."""
    prometheus_url: str
    """Scrapes the app under ``PLAIN_JOBS``."""
    renamed_prometheus_url: str
    """Scrapes the same targets with every job and every value of ``RENAMED_LABELS`` prefixed ``renamed-``."""


def plain_prometheus_config(targets: dict[str, str], *, rename: bool) -> str:
    jobs = []
    for job, url in targets.items():
        scrape: dict[str, object] = {"job_name": RENAMED_PREFIX + job if rename else job,
                                     "static_configs": [{"targets": [url.split("://", 1)[1]]}]}
        if rename:
            scrape["metric_relabel_configs"] = [
                {"source_labels": [label], "regex": "(.+)", "target_label": label, "replacement": RENAMED_PREFIX + "$1"}
                for label in RENAMED_LABELS]
        jobs.append(scrape)
    return yaml.safe_dump({"global": {"scrape_interval": "5s"}, "scrape_configs": jobs}, sort_keys=False)


def prometheus_binary() -> str:
    """The Debian package's ``prometheus``; without it, skip here and fail in CI."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus is not installed (scripts/install_tools.sh)"
        if in_ci():
            pytest.fail(f"{message}: CI requires it")
        pytest.skip(message)
    return binary


def prometheus(binary: str, directory: Path, config: str, log_dir: Path) -> tuple[ManagedProcess, str]:
    """A Prometheus (not started yet) with ``config`` and its data in ``directory``, and its URL."""
    directory.mkdir()
    (directory / "prometheus.yml").write_text(config)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return ManagedProcess(
        directory.name, [binary, f"--config.file={directory / 'prometheus.yml'}",
                         f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        ready_url=f"{url}/-/ready", log_path=log_dir / f"{directory.name}.log", startup_timeout=60), url


@pytest.fixture(scope="session", params=list(GENAI_MODES.values()), ids=list(GENAI_MODES))
def plain_stack(request: pytest.FixtureRequest, vllm: VllmServer, vllm_receiver: OtlpReceiver,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainStack]:
    binary = prometheus_binary()
    var_dir = tmp_path_factory.mktemp("plainrag")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": vllm_receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_METRICS_EXPORTER": "prometheus", "OTEL_BSP_SCHEDULE_DELAY": "500",
           # The opt-ins the reference stack runs with too (docs/dashboards.md: what a panel needs).
           "RAGOTEL_DETAILED_METRICS": "true",
           "RAGOTEL_PRICES_FILE": str(ROOT / "examples" / "reference_app" / "prices.toml"),
           # The tiny model's 1024-token window: room for the question and a short answer.
           "MAX_CONTEXT_CHARS": "600",
           "OTEL_SEMCONV_STABILITY_OPT_IN": request.param}
    names = {service: {"OTEL_SERVICE_NAME": PLAIN_JOBS[service]} for service in ("retriever", "chat")}
    with contextlib.ExitStack() as running:
        app = running.enter_context(PlainRag(var_dir, llm_base_url=f"{vllm.base_url}/v1", model=SERVED_MODEL,
                                             env=env, service_env=names))
        targets = {PLAIN_JOBS["chat"]: app.chat_url, PLAIN_JOBS["retriever"]: app.retriever_url,
                   PLAIN_JOBS["vllm"]: vllm.base_url}
        node_port = free_port()
        node = node_exporter_process(node_port, var_dir / "logs" / "node-exporter.log")
        if node is not None:
            running.enter_context(node)
            targets[PLAIN_JOBS["node"]] = f"http://127.0.0.1:{node_port}"
        urls = []
        for rename in (False, True):
            process, url = prometheus(binary, var_dir / ("prometheus-renamed" if rename else "prometheus"),
                                      plain_prometheus_config(targets, rename=rename), var_dir / "logs")
            running.enter_context(process)
            urls.append(url)
        yield PlainStack(app, request.param, *urls)


# --- apps written on LangChain and LlamaIndex ---------------------------------------------------------
# tests/apps/lcrag and tests/apps/lirag run unchanged under opentelemetry-instrument, scraped by one Prometheus
# under job names of their own (none is the reference app's or the plain app's).
FRAMEWORK_JOBS = {"langchain": "lc-assistant", "llamaindex": "li-assistant", "vllm": "model-server"}


@dataclass
class FrameworkStack:
    langchain: LcRag
    llamaindex: LiRag
    prometheus_url: str
    """Scrapes each app as ``FRAMEWORK_JOBS[framework]``, and vLLM."""

    @property
    def apps(self) -> dict[str, ServedApp]:
        """By framework: the keys of ``FRAMEWORK_JOBS``."""
        return {"langchain": self.langchain, "llamaindex": self.llamaindex}


@pytest.fixture(scope="session")
def framework_stack(vllm: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrameworkStack]:
    binary = prometheus_binary()
    var_dir = tmp_path_factory.mktemp("frameworks")
    # The opt-ins the plain stack runs with (docs/dashboards.md: what a panel needs).
    env = {"RAGOTEL_DETAILED_METRICS": "true",
           "RAGOTEL_PRICES_FILE": str(ROOT / "examples" / "reference_app" / "prices.toml")}
    with contextlib.ExitStack() as running:
        llm = {"llm_base_url": f"{vllm.base_url}/v1", "model": SERVED_MODEL}
        langchain = running.enter_context(LcRag(tmp_path_factory.mktemp("langchain"), **llm, env=env))
        llamaindex = running.enter_context(LiRag(tmp_path_factory.mktemp("llamaindex"), **llm, env=env))
        targets = {FRAMEWORK_JOBS["langchain"]: f"http://127.0.0.1:{langchain.metrics_port}",
                   FRAMEWORK_JOBS["llamaindex"]: f"http://127.0.0.1:{llamaindex.metrics_port}",
                   FRAMEWORK_JOBS["vllm"]: vllm.base_url}
        process, url = prometheus(binary, var_dir / "prometheus", plain_prometheus_config(targets, rename=False),
                                  var_dir / "logs")
        running.enter_context(process)
        yield FrameworkStack(langchain, llamaindex, url)


def llm_request_under(receiver: OtlpReceiver, chat: SpanRecord, timeout: float = 30.0) -> SpanRecord:
    """vLLM's span of the call ``chat`` made (vLLM exports in batches, seconds late)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver.spans_path.exists():
            found = [s for s in load_spans(receiver.spans_path)
                     if s.name == "llm_request" and s.parent_span_id == chat.span_id]
            if found:
                return found[0]
        time.sleep(0.3)
    raise AssertionError(f"vLLM exported no llm_request under {chat.name} ({chat.span_id}) within {timeout} s")
