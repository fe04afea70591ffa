"""The whole reference stack on this machine, in one command.

::

    python -m examples.reference_app.run_local          # until Ctrl-C
    python -m examples.reference_app.run_local --once   # ask, print, stop

Builds the index from the sample corpus, starts vLLM (the tiny local model unless
``RAGOTEL_MODEL=<hub id or path>``), the retriever and the chat API, and, each when it is installed,
a node exporter, an Alertmanager and a Prometheus scraping all of them, evaluating the generated
alert rules and sending what fires to that Alertmanager; asks a few sample questions; prints the
answers with citations, a terminal waterfall of one request's trace (chat API, retriever and vLLM's
own ``llm_request``), and where to look next. Spans go to ``OTEL_EXPORTER_OTLP_ENDPOINT`` when it
is set (a Grafana Alloy), otherwise to a local receiver writing ``var/telemetry/``. A second run
reuses the model and index.

``RAGOTEL_ALERT_FOR_OVERRIDE=10s`` (and ``RAGOTEL_ALERT_INTERVAL_OVERRIDE=5s``) make Prometheus load
a copy of the rules with every ``for:`` (and the evaluation interval) replaced, to see alerts fire
within seconds; the shipped rule file is never changed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import httpx
import yaml

from examples.reference_app import ingest
from examples.reference_app.config import (
    APP_DIR,
    CHAT_PORT,
    CORPUS_DIR,
    REPO_ROOT,
    RETRIEVER_PORT,
    VAR_DIR,
    VLLM_PORT,
)
from examples.reference_app.processes import ManagedProcess, free_port, port_or_free
from examples.reference_app.vllm_server import VllmServer, ensure_tiny_model, ensure_vllm
from ragotel.cli import LOGS_FILENAME, SPANS_FILENAME
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import load_spans, render_waterfall

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
NODE_EXPORTER_PORT = 9100
RULES_FILE = REPO_ROOT / "dashboards" / "generated" / "rules" / "ragotel.rules.yaml"
ALERT_FOR_ENV = "RAGOTEL_ALERT_FOR_OVERRIDE"
ALERT_INTERVAL_ENV = "RAGOTEL_ALERT_INTERVAL_OVERRIDE"
_DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")
TINY_MODEL = "tiny-llama"
# From QUESTIONS.md, which lists the expected answer and source of each.
SAMPLE_QUESTIONS = (
    "Until what time is the clinic open on Tuesdays?",
    "How much does it cost to charge an electric car in the clinic car park?",
    "Which receptionist speaks Polish?",
)
PROMQL_EXAMPLES = {
    "chat requests/s by status":
        'sum by (http_response_status_code) (rate(http_server_request_duration_seconds_count{job="rag-chat-api"}[1m]))',
    "p95 end-to-end chat latency":
        "histogram_quantile(0.95, sum by (le) (rate(rag_pipeline_duration_seconds_bucket[5m])))",
    "p95 latency by step":
        "histogram_quantile(0.95, sum by (le, rag_step_name) (rate(rag_step_duration_seconds_bucket[5m])))",
    "client time to first chunk p95":
        "histogram_quantile(0.95, sum by (le) (rate(gen_ai_client_operation_time_to_first_chunk_seconds_bucket[5m])))",
    "vLLM time to first token p95":
        "histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[5m])))",
    "tokens/s by type": "sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_sum[5m]))",
}


class LocalStack:
    """vLLM, retriever, chat API, Prometheus, Alertmanager, node exporter and (without an external
    endpoint) an OTLP receiver.

    ``vllm_url`` reuses a running vLLM instead of starting one; ``otlp_endpoint`` sends telemetry there
    instead of to a local receiver; ``env`` adds to the retriever's and chat API's environment (e.g.
    ``OTEL_SDK_DISABLED``). ``alert_for`` / ``alert_interval`` (default: ``RAGOTEL_ALERT_FOR_OVERRIDE`` /
    ``RAGOTEL_ALERT_INTERVAL_OVERRIDE``) replace every rule's ``for:`` / the groups' evaluation
    interval in the copy of the rules Prometheus loads. Prometheus, Alertmanager and the node exporter
    are skipped, with a log line, when not installed. Every process started is stopped on exit,
    whatever happened.
    """

    def __init__(
        self,
        var_dir: Path = VAR_DIR,
        *,
        model: str | None = None,
        otlp_endpoint: str | None = None,
        vllm_url: str | None = None,
        served_model: str | None = None,
        prometheus: bool = True,
        fixed_ports: bool = True,
        backend: str = "dense",
        env: dict[str, str] | None = None,
        alert_for: str | None = None,
        alert_interval: str | None = None,
        log: Any = print,
    ) -> None:
        self.var_dir = var_dir
        self.model = model
        self.otlp_endpoint = otlp_endpoint
        self.vllm_url = vllm_url
        self.served_model = served_model or (model if model and not Path(model).exists() else TINY_MODEL)
        self.want_prometheus = prometheus
        self.fixed_ports = fixed_ports
        self.backend = backend
        self.env = dict(env or {})
        self.log = log
        self.processes: dict[str, ManagedProcess] = {}
        self.telemetry_dir = var_dir / "telemetry"
        self.local_receiver = False  # True when spans land in telemetry_dir (no external endpoint)
        self.reload_token = secrets.token_urlsafe(24)  # what the retriever's POST /reload asks for
        self.alert_for = alert_for or os.environ.get(ALERT_FOR_ENV) or None
        self.alert_interval = alert_interval or os.environ.get(ALERT_INTERVAL_ENV) or None
        for value in (self.alert_for, self.alert_interval):
            if value is not None and not _DURATION.fullmatch(value):
                raise ValueError(f"not a Prometheus duration: {value!r} (e.g. 10s, 1m)")
        self.prometheus_url: str | None = None
        self.alertmanager_url: str | None = None
        self.node_exporter_url: str | None = None
        self.rules_path: Path | None = None  # the rule file Prometheus loads
        self._stack = contextlib.ExitStack()

    def _port(self, preferred: int) -> int:
        return port_or_free(preferred) if self.fixed_ports else free_port()

    @property
    def spans_path(self) -> Path:
        return self.telemetry_dir / SPANS_FILENAME

    def __enter__(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def _start(self) -> None:
        logs = self.var_dir / "logs"
        self.log(f"• index: building from {CORPUS_DIR.relative_to(REPO_ROOT)} (skipped when unchanged)")
        manifest = ingest.build(CORPUS_DIR, self.var_dir / "index", progress=sys.stderr.isatty())
        self.log(f"  {manifest['chunks']} chunks from {manifest['documents']} documents")

        if self.otlp_endpoint is None:
            receiver = OtlpReceiver(port=self._port(4318), spans_path=self.spans_path,
                                    logs_path=self.telemetry_dir / LOGS_FILENAME)
            self._stack.enter_context(receiver)
            self.otlp_endpoint = receiver.endpoint
            self.local_receiver = True
            self.log(f"• telemetry: local OTLP receiver {receiver.endpoint} → {self.telemetry_dir}/")
        else:
            self.log(f"• telemetry: OTLP to {self.otlp_endpoint}")

        if self.vllm_url is None:
            python = ensure_vllm(REPO_ROOT)
            model = self.model or str(ensure_tiny_model(REPO_ROOT, self.var_dir / "tiny-model", python))
            port = self._port(VLLM_PORT)
            self.log(f"• vLLM: starting {model} as {self.served_model!r} on :{port} (about 30–60 s on a CPU)")
            vllm = VllmServer(python, model, port, served_model_name=self.served_model,
                              otlp_traces_endpoint=f"{self.otlp_endpoint}/v1/traces", service_name="vllm",
                              log_path=logs / "vllm.log")
            self._stack.enter_context(vllm)
            self.vllm_url = vllm.base_url

        common = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            # Metrics are scraped from /metrics (as Prometheus and Alloy do); exporting them over OTLP
            # as well would store every series twice.
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
            "RAGOTEL_PRICES_FILE": os.environ.get("RAGOTEL_PRICES_FILE", str(APP_DIR / "prices.toml")),
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        retriever_port = self._port(RETRIEVER_PORT)
        self.retriever_url = f"http://127.0.0.1:{retriever_port}"
        self.log(f"• retriever: :{retriever_port} ({self.backend})")
        self.processes["retriever"] = self._stack.enter_context(ManagedProcess(
            "retriever", [sys.executable, "-m", "examples.reference_app.retriever"],
            ready_url=f"{self.retriever_url}/ready", log_path=logs / "retriever.log", cwd=REPO_ROOT,
            env={**common, "PORT": str(retriever_port), "RAG_INDEX_DIR": str(self.var_dir / "index"),
                 "RAG_BACKEND": self.backend, "RAG_RELOAD_TOKEN": self.reload_token},
        ))
        chat_port = self._port(CHAT_PORT)
        self.chat_url = f"http://127.0.0.1:{chat_port}"
        self.log(f"• chat API: :{chat_port}")
        self.processes["chat API"] = self._stack.enter_context(ManagedProcess(
            "chat API", [sys.executable, "-m", "examples.reference_app.chat_api"],
            ready_url=f"{self.chat_url}/ready", log_path=logs / "chat-api.log", cwd=REPO_ROOT,
            env={**common, "PORT": str(chat_port), "RAG_RETRIEVER_URL": self.retriever_url,
                 "RAG_VLLM_URL": f"{self.vllm_url}/v1", "RAG_MODEL": self.served_model,
                 # The tiny model's tokenizer spends about one token per 1.5 characters of a
                 # 1024-token window: keep its context small enough to leave room for the answer.
                 **({"RAG_CONTEXT_CHARS": "700"} if self.served_model == TINY_MODEL else {})},
        ))
        if self.want_prometheus:
            self._start_prometheus(logs)

    def _start_node_exporter(self, logs: Path) -> None:
        port = self._port(NODE_EXPORTER_PORT)
        process = node_exporter_process(port, logs / "node-exporter.log")
        if process is None:
            self.log("• node exporter: not installed (apt-get install prometheus-node-exporter), skipping")
            return
        self.node_exporter_url = f"http://127.0.0.1:{port}"
        self.log(f"• node exporter: :{port} (this machine's CPU, memory, disks)")
        self.processes["node exporter"] = self._stack.enter_context(process)

    def _start_alertmanager(self, logs: Path) -> None:
        port = self._port(ALERTMANAGER_PORT)
        process = alertmanager_process(port, self.var_dir / "alertmanager", logs / "alertmanager.log")
        if process is None:
            self.log("• Alertmanager: not installed (apt-get install prometheus-alertmanager), skipping")
            return
        self.alertmanager_url = f"http://127.0.0.1:{port}"
        self.log(f"• Alertmanager: :{port} receiving what the alert rules fire")
        self.processes["Alertmanager"] = self._stack.enter_context(process)

    def _rules(self, directory: Path) -> Path:
        """The generated rules, or with overrides a copy of them with ``for:`` / interval replaced."""
        if self.alert_for is None and self.alert_interval is None:
            return RULES_FILE
        copy = directory / "rules" / RULES_FILE.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(override_rules(RULES_FILE.read_text(), for_=self.alert_for, interval=self.alert_interval))
        self.log(f"  alert rules: a copy with for: {self.alert_for or '(as shipped)'}, interval: "
                 f"{self.alert_interval or '(as shipped)'} in {copy}")
        return copy

    def _start_prometheus(self, logs: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            self.log("• Prometheus: not installed (apt-get install prometheus), skipping")
            return
        self._start_node_exporter(logs)
        self._start_alertmanager(logs)
        port = self._port(PROMETHEUS_PORT)
        directory = self.var_dir / "prometheus"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        targets = {"rag-chat-api": self.chat_url, "rag-retriever": self.retriever_url, "vllm": str(self.vllm_url)}
        if self.node_exporter_url:
            targets["node-exporter"] = self.node_exporter_url
        self.rules_path = self._rules(directory)
        config.write_text(prometheus_config(targets, rule_files=[self.rules_path],
                                            alertmanagers=[self.alertmanager_url] if self.alertmanager_url else []))
        self.prometheus_url = f"http://127.0.0.1:{port}"
        self.log(f"• Prometheus: :{port} scraping {', '.join(targets)} every 5 s, alert rules from {self.rules_path}")
        self._stack.enter_context(ManagedProcess(
            "Prometheus",
            [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=2d",
             "--web.enable-lifecycle", "--enable-feature=exemplar-storage"],
            ready_url=f"{self.prometheus_url}/-/ready", log_path=logs / "prometheus.log", startup_timeout=60,
        ))


def prometheus_config(targets: dict[str, str], *, rule_files: Sequence[Path] = (),
                      alertmanagers: Sequence[str] = ()) -> str:
    """A scrape config with one job per service (the job is the service name the dashboards use), the
    rule files to evaluate and the Alertmanagers to send what fires to."""
    lines = ["global:", "  scrape_interval: 5s", "  evaluation_interval: 5s"]
    if rule_files:
        lines += ["rule_files:", *(f"  - {json.dumps(str(path))}" for path in rule_files)]
    if alertmanagers:
        lines += ["alerting:", "  alertmanagers:", "    - static_configs:",
                  "        - targets: [" + ", ".join(f"'{url.split('://', 1)[1]}'" for url in alertmanagers) + "]"]
    lines.append("scrape_configs:")
    for job, url in targets.items():
        lines += [f"  - job_name: {job}", "    static_configs:", f"      - targets: ['{url.split('://', 1)[1]}']"]
    return "\n".join(lines) + "\n"


def node_exporter_process(port: int, log_path: Path) -> ManagedProcess | None:
    """The node exporter on 127.0.0.1:``port`` (not started yet); None when it is not installed."""
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        return None
    return ManagedProcess(
        "node exporter", [binary, f"--web.listen-address=127.0.0.1:{port}", "--no-collector.textfile"],
        ready_url=f"http://127.0.0.1:{port}/metrics", log_path=log_path, startup_timeout=30,
    )


def alertmanager_process(port: int, directory: Path, log_path: Path) -> ManagedProcess | None:
    """Alertmanager on 127.0.0.1:``port`` with its config and data in ``directory`` (not started yet);
    None when it is not installed."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "alertmanager.yml"
    config.write_text(alertmanager_config())
    return ManagedProcess(
        "Alertmanager",
        [binary, f"--config.file={config}", f"--storage.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],  # one instance: no gossip port on every interface
        ready_url=f"http://127.0.0.1:{port}/-/ready", log_path=log_path, startup_timeout=30,
    )


def alertmanager_config() -> str:
    """One route to a receiver that notifies no one: alerts are seen in the UI and ``/api/v2/alerts``."""
    return "\n".join([
        "route:",
        "  receiver: local",
        "  group_by: [alertname, job]",
        "  group_wait: 5s",
        "  group_interval: 30s",
        "  repeat_interval: 4h",
        "receivers:",
        "  - name: local",
    ]) + "\n"


def override_rules(text: str, *, for_: str | None = None, interval: str | None = None) -> str:
    """A rule file's text with every alert's ``for:`` and every group's ``interval:`` replaced."""
    document = yaml.safe_load(text)
    for group in document["groups"]:
        if interval is not None:
            group["interval"] = interval
        for rule in group["rules"]:
            if for_ is not None and "alert" in rule:
                rule["for"] = for_
    header = "# A copy of dashboards/generated/rules/ragotel.rules.yaml made by the local stack, with "
    header += f"for: {for_ or 'unchanged'} and interval: {interval or 'unchanged'}.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True)


def ask(chat_url: str, question: str) -> tuple[int, dict[str, Any]]:
    response = httpx.post(f"{chat_url}/chat", json={"question": question, "k": 4, "max_tokens": 48}, timeout=120)
    return response.status_code, dict(response.json())


def stream_once(chat_url: str, question: str) -> tuple[float, str]:
    """Seconds to the first streamed answer chunk, and the answer."""
    started, first, parts = time.perf_counter(), 0.0, []
    body = {"question": question, "max_tokens": 48}
    with httpx.stream("POST", f"{chat_url}/chat/stream", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                first = first or time.perf_counter() - started
                parts.append(json.loads(line[6:])["content"])
    return first, "".join(parts)


def wait_for_trace(spans_path: Path, trace_id: str, services: set[str], timeout: float = 20.0) -> bool:
    """True once spans of every service in ``services`` arrived for ``trace_id`` (vLLM's come late)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spans_path.exists():
            seen = {s.service_name for s in load_spans(spans_path) if s.trace_id == trace_id}
            if services <= seen:
                return True
        time.sleep(0.5)
    return False


def _show(stack: LocalStack, questions: tuple[str, ...]) -> None:
    print("\n── Answers " + "─" * 60)
    last: dict[str, Any] = {}  # the last successful answer
    if stack.served_model == TINY_MODEL:
        print("(The local model has random weights: its answers are noise, the retrieval and the telemetry are real.\n"
              " RAGOTEL_MODEL=<hub id or path> serves a real model.)")
    for question in questions:
        status, reply = ask(stack.chat_url, question)
        if status != 200:
            print(f"\nQ: {question}\n→ {status} at stage {reply.get('stage')}: {reply.get('detail')}")
            continue
        last = reply
        print(f"\nQ: {question}\nA: {last['answer'].strip()}")
        for c in last["citations"]:
            print(f"   [{c['n']}] {c['source']} — {c['section']} (score {c['score']:.2f})")
        print(f"   {last['usage'].get('prompt_tokens', '?')} prompt + {last['usage'].get('completion_tokens', '?')}"
              f" completion tokens, {last['latency_ms']['total']:.0f} ms, trace {last['trace_id']}")
    ttfc, _ = stream_once(stack.chat_url, questions[0])
    print(f"\nStreamed the first question again: first chunk after {ttfc * 1000:.0f} ms")

    trace_id = last.get("trace_id")
    # Only spans this run received locally: with an external endpoint, var/telemetry/ is an earlier run's.
    if trace_id and stack.local_receiver and stack.spans_path.exists():
        complete = wait_for_trace(stack.spans_path, trace_id, {"rag-chat-api", "rag-retriever", "vllm"})
        print("\n── Trace of the last question " + "─" * 41)
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 120
        try:
            print(render_waterfall(load_spans(stack.spans_path), trace_id, width=width))
        except LookupError:
            print(f"(no spans of trace {trace_id} arrived in {stack.telemetry_dir}/)")
        if not complete:
            print("(vLLM's llm_request span had not arrived yet: run `ragotel trace " + trace_id + "` again)")
    elif trace_id:
        print(f"\nTrace {trace_id} went to {stack.otlp_endpoint}: find it in Grafana → Explore → Tempo.")

    print("\n── Where to look " + "─" * 54)
    print(f"Metrics:    {stack.chat_url}/metrics   {stack.retriever_url}/metrics   {stack.vllm_url}/metrics")
    if stack.local_receiver:
        print(f"Traces:     ragotel trace [TRACE_ID] --dir {stack.telemetry_dir}   (spans and logs are there too)")
    if stack.prometheus_url:
        print(f"Prometheus: {stack.prometheus_url}/graph — try:")
        for title, query in PROMQL_EXAMPLES.items():
            print(f"  {title}:\n    {query}")
        print(f"Alerts:     {stack.prometheus_url}/alerts (rules: {stack.rules_path})")
    if stack.alertmanager_url:
        print(f"Alertmanager: {stack.alertmanager_url}/#/alerts   curl -s {stack.alertmanager_url}/api/v2/alerts")
    if stack.node_exporter_url:
        print(f"Node:       {stack.node_exporter_url}/metrics (node_* series; the Kubernetes dashboard's node panels)")
    print("Grafana:    OTEL_EXPORTER_OTLP_ENDPOINT=http://<alloy>:4318 ./scripts/run-local.sh sends every span and")
    print("            log to Grafana Alloy (deploy/alloy); deploy/README.md runs it with Tempo, Mimir and Loki.")
    print("Dashboards: dashboards/generated/*.json (Grafana 11.6; pick this Prometheus in the Metrics variable),")
    print("            alert rules in dashboards/generated/rules/")
    print(f"Try it:     curl -s {stack.chat_url}/chat -H 'content-type: application/json' "
          "-d '{\"question\": \"Do you offer telehealth?\"}'")


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after printing instead of serving until Ctrl-C")
    parser.add_argument("--backend", choices=("dense", "sparse"), default=os.environ.get("RAG_BACKEND", "dense"))
    args = parser.parse_args(argv)
    with _interrupt_on_sigterm():
        try:
            with LocalStack(model=os.environ.get("RAGOTEL_MODEL") or None,
                            otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
                            backend=args.backend) as stack:
                _show(stack, SAMPLE_QUESTIONS)
                if not args.once:
                    print("\nServing until Ctrl-C …")
                    while True:
                        time.sleep(3600)
        except KeyboardInterrupt:
            print("\nStopped every process this command started.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
