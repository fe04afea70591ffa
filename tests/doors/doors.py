"""The doors users switch telemetry on by, as they are: a virtualenv of its own holding ragotel and the app's
libraries, grown the way the OpenTelemetry documentation grows it (``opentelemetry-distro``, the OTLP exporters,
``opentelemetry-bootstrap -a install``), and the app run under the real ``opentelemetry-instrument``, or under
the OpenTelemetry Operator's injected ``sitecustomize``. What arrives is read from ragotel's OTLP receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from examples.reference_app.processes import free_port
from ragotel.cli.receiver import OtlpReceiver
from tests.test_configure import read_jsonl
from tests.truth.test_shutdown import wait_listening

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
APP_LIBRARIES = ("fastapi", "uvicorn", "openai", "httpx")
REQUESTS = 3


class Venv:
    """A virtualenv under ``path``; :meth:`pip` installs into it from PyPI (the pip cache is shared)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        self.pip("--upgrade", "pip")

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def pip(self, *args: str) -> str:
        proc = subprocess.run([str(self.bin / "python"), "-m", "pip", "install", "--quiet", *args],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / "python"), *args], capture_output=True, text=True, timeout=300)

    def entry_points(self, group: str) -> list[str]:
        """The entry points of ``group`` in the order the loader meets them in this environment."""
        code = ("import json; from importlib.metadata import entry_points; "
                f"print(json.dumps([e.name for e in entry_points(group={group!r})]))")
        proc = self.run("-c", code)
        assert proc.returncode == 0, proc.stderr
        return list(json.loads(proc.stdout))


@dataclass
class Arrived:
    """What one run of the app sent, and what it printed."""

    answered: int
    spans: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    stderr: str
    scrape: str | None = None
    warnings: list[str] = field(default_factory=list)
    """ragotel's own lines on stderr (its WARNINGs, printed by Python's last-resort handler)."""

    def spans_named(self, kind: str, prefix: str = "") -> list[dict[str, Any]]:
        return [s for s in self.spans if s["kind"] == kind and s["name"].startswith(prefix)]

    def answers_logged(self) -> list[dict[str, Any]]:
        return [r for r in self.logs if r["body"] == "answered a question"]

    def last_count(self, metric: str) -> int | None:
        """The count of the last data point of ``metric`` (cumulative), across its series."""
        latest: dict[str, dict[str, Any]] = {}
        for point in self.metrics:
            if point["name"] == metric:
                latest[json.dumps(point["attributes"], sort_keys=True)] = point
        return sum(int(p["count"]) for p in latest.values()) if latest else None


def serve_and_ask(command: list[str], env: Mapping[str, str], tmp: Path, llm_url: str,
                  scrape_port: int | None = None, servers_before_stop: int = 0,
                  while_serving: Callable[[], None] | None = None) -> Arrived:
    """Start the help desk with ``command`` (its last words are the uvicorn port), ask it :data:`REQUESTS` times,
    scrape its Prometheus endpoint when one is asked for, call ``while_serving`` (the app still up), stop it with
    SIGTERM as Kubernetes does, and read what arrived. ``servers_before_stop``: wait (up to 30 s) for that many
    server spans to arrive before the SIGTERM, for a run whose SDK is not ragotel's and so does not flush what is
    queued when the server stops."""
    telemetry = tmp / "telemetry"
    with OtlpReceiver(port=0, spans_path=telemetry / "spans.jsonl") as rx:
        port = free_port()
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("OTEL_", "RAGOTEL_", "PYTHON", "VIRTUAL_ENV"))}
        full_env = {**clean, "LLM_URL": llm_url, "OTEL_SERVICE_NAME": "helpdesk",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rx.port}",
                    # Exports that fail give up within the SIGTERM flush, so what they warn is printed.
                    "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
                    "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_BSP_SCHEDULE_DELAY": "200",
                    "OTEL_BLRP_SCHEDULE_DELAY": "200", **env}
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(HERE)) if p)
        proc = subprocess.Popen([*command, "--port", str(port), "--log-level", "warning"], env=full_env,
                                cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        answered, scrape = 0, None
        try:
            try:
                wait_listening(proc, port)
            except AssertionError as exc:  # with what the app printed
                raise AssertionError(f"{exc}: {proc.communicate()[1] if proc.poll() is not None else ''}") from None
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
                for topic in ("hours", "parking", "billing")[:REQUESTS]:
                    answered += client.get("/answer", params={"topic": topic}).status_code == 200
            if scrape_port is not None:
                scrape = httpx.get(f"http://127.0.0.1:{scrape_port}/metrics", timeout=10).text
            if while_serving is not None:
                while_serving()
            deadline = time.monotonic() + 30
            while (len([s for s in read_jsonl(telemetry / "spans.jsonl") if s["kind"] == "SERVER"])
                   < servers_before_stop and time.monotonic() < deadline):
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
    return Arrived(answered, read_jsonl(telemetry / "spans.jsonl"), read_jsonl(telemetry / "logs.jsonl"),
                   read_jsonl(telemetry / "metrics.jsonl"), stderr, scrape,
                   [line for line in stderr.splitlines() if line.startswith("ragotel: ")])
