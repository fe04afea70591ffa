"""A script with no telemetry code run under the real ``opentelemetry-instrument`` with one of ragotel's
instrumentors, its spans received by ``ragotel receive``::

    proc, spans = run_without_code(tmp_path, SCRIPT, "ragotel_qdrant")
    (span,) = [s for s in spans if s["name"] == "retrieval qdrant"]
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ragotel.cli.receiver import OtlpReceiver

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_without_code(tmp_path: Path, script: str, instrumentors: str | Collection[str],
                     *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """Run ``script`` (its text) with ``args`` and only ``instrumentors`` (entry point names): the others are left
    out to keep the run short (loading them imports their libraries). Returns the finished process and the spans
    it exported."""
    keep = {instrumentors} if isinstance(instrumentors, str) else set(instrumentors)
    path = tmp_path / "app.py"
    path.write_text(script)
    others = sorted({e.name for e in importlib.metadata.entry_points(group="opentelemetry_instrumentor")}
                    - keep)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_"))}
    with OtlpReceiver(port=0, spans_path=tmp_path / "telemetry" / "spans.jsonl") as receiver:
        env.update({
            "PYTHONPATH": str(REPO_ROOT),
            "OTEL_SERVICE_NAME": "no-code-search",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(others),
        })
        cli = Path(sys.executable).with_name("opentelemetry-instrument")
        proc = subprocess.run([str(cli), sys.executable, str(path), *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=90)
    lines = receiver.spans_path.read_text().splitlines() if receiver.spans_path.exists() else []
    return proc, [json.loads(line) for line in lines]
