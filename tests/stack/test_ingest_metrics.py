"""The ingest step counts what it wrote: run for real (all-MiniLM-L6-v2, FAISS, TF-IDF) on a few documents of
the sample corpus, its counters carry the Prometheus names the retrieval dashboard reads, with the counts it
wrote, and the CLI pushes them over OTLP before it exits (a batch job is never scraped)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dashboards import promql as q
from examples.reference_app.config import CORPUS_DIR
from ragotel.cli.receiver import OtlpReceiver

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("faq-parking.md", "policy-late-arrival.md", "data-price-list.json")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in DOCUMENTS:
        shutil.copy(CORPUS_DIR / name, folder / name)
    return folder


def run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def samples(exposition: str, name: str) -> dict[str, float]:
    """``data source → value`` of one counter in a Prometheus text exposition."""
    found = {}
    for line in exposition.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            source = labels.split(f'{q.DATA_SOURCE}="', 1)[1].split('"', 1)[0]
            found[source] = float(value)
    return found


def test_ingest_counts_documents_and_chunks_under_the_dashboards_names(corpus: Path, tmp_path: Path) -> None:
    code = f"""
import json, ragotel
from prometheus_client import generate_latest
from examples.reference_app import ingest
ragotel.configure(service_name="rag-ingest", prometheus_port=0)
manifest = ingest.build(ingest.Path({str(corpus)!r}), ingest.Path({str(tmp_path / "index")!r}), progress=False)
again = ingest.build(ingest.Path({str(corpus)!r}), ingest.Path({str(tmp_path / "index")!r}), progress=False)
print(json.dumps({{"manifest": manifest, "exposition": generate_latest().decode()}}))
"""
    done = run(code, {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_TRACES_EXPORTER": "none",
                      "OTEL_LOGS_EXPORTER": "none"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    manifest, exposition = out["manifest"], out["exposition"]
    assert manifest["documents"] == len(DOCUMENTS) and manifest["chunks"] > len(DOCUMENTS)
    assert isinstance(manifest["built_at"], float)
    documents, chunks = manifest["documents"], manifest["chunks"]
    # The second build found the corpus unchanged and wrote nothing: counted once.
    assert samples(exposition, q.INDEX_DOCUMENTS_WRITTEN) == {"faiss": documents, "tfidf": documents}
    assert samples(exposition, q.INDEX_CHUNKS_WRITTEN) == {"faiss": chunks, "tfidf": chunks}
    assert samples(exposition, q.INDEX_CHUNKS_EMBEDDED) == {"faiss": chunks}


def test_ingest_cli_pushes_its_counters_over_otlp_before_it_exits(corpus: Path, tmp_path: Path) -> None:
    with OtlpReceiver(port=0, spans_path=tmp_path / "otlp" / "spans.jsonl") as receiver:
        done = subprocess.run(
            [sys.executable, "-m", "examples.reference_app.ingest", "--corpus", str(corpus),
             "--out", str(tmp_path / "index")], cwd=ROOT, capture_output=True, text=True, timeout=240,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                 "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRICS_EXPORTER": "otlp",
                 "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"from {len(DOCUMENTS)} documents" in done.stdout
        # Five counter points (documents, chunks written for faiss and tfidf; chunks embedded for faiss), at least.
        assert receiver.stats.metric_points >= 5, receiver.stats
