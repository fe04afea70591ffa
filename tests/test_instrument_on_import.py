"""Instrumenting before the library is imported (as ``opentelemetry-instrument`` does) imports nothing: the patches
go on when the application imports it. Each case runs in a fresh interpreter, since this one has imported the
libraries already: instrumenting imports nothing, the first import patches and the search is recorded; undone
before the import, nothing is patched; a library whose shape the instrumentor does not expect is imported all the
same, left uninstrumented with one WARNING; under the real loader, a process that never imports a library does not
load it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from ragotel.instrumentation.faiss import FaissInstrumentor, instrument_faiss, uninstrument_faiss

def search():
    import numpy as np
    import faiss
    index = faiss.IndexFlatL2(4)
    index.add(np.eye(4, dtype="float32"))
    index.search(np.eye(4, dtype="float32")[:1], 2)
    return [s.name for s in exporter.get_finished_spans()]
"""


def run(body: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_instrumenting_imports_nothing_and_the_first_import_patches() -> None:
    proc = run("""
        instrument_faiss()
        print("imported at instrument:", "faiss" in sys.modules, FaissInstrumentor().is_instrumented_by_opentelemetry)
        print("spans:", search())
    """)
    assert proc.returncode == 0, proc.stderr
    assert "imported at instrument: False True" in proc.stdout
    assert "spans: ['retrieval faiss']" in proc.stdout


def test_undone_before_the_import_nothing_is_patched() -> None:
    proc = run("""
        instrument_faiss()
        uninstrument_faiss()
        print("spans:", search())
        import faiss
        print("patched:", hasattr(faiss.IndexFlatL2.search, "__wrapped__"))
        instrument_faiss()  # the library is there now: patched at once
        print("again:", search())
    """)
    assert proc.returncode == 0, proc.stderr
    assert "spans: []" in proc.stdout
    assert "patched: False" in proc.stdout
    assert "again: ['retrieval faiss']" in proc.stdout


def test_a_library_of_an_unexpected_shape_is_imported_uninstrumented_with_one_warning() -> None:
    # Failure injection: an _instrument that fails as it would on a release that moved what it patches.
    proc = run("""
        import logging
        logging.basicConfig(level=logging.WARNING)
        def broken(self, **kwargs):
            raise AttributeError("module 'faiss' has no attribute 'Index'")
        FaissInstrumentor._instrument = broken
        instrument_faiss()
        print("spans:", search())
        print("instrumented:", FaissInstrumentor().is_instrumented_by_opentelemetry)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "spans: []" in proc.stdout
    assert "instrumented: False" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "cannot instrument" in line]
    assert len(warnings) == 1 and "instrument_faiss()" in warnings[0], proc.stderr


LIBRARIES = ("sentence_transformers", "chromadb", "lancedb", "qdrant_client", "langchain_core",
             "llama_index_instrumentation", "faiss", "psycopg", "psycopg2", "asyncpg", "pymilvus",
             "milvus_lite")


def test_under_the_loader_a_library_the_application_never_imports_is_not_loaded() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                # opentelemetry-instrumentation-psycopg / -psycopg2 (installed for the pgvector tests) import theirs
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "psycopg,psycopg2"})
    cli = Path(sys.executable).with_name("opentelemetry-instrument")
    script = f"import sys; print([m for m in {LIBRARIES!r} if m in sys.modules])"
    proc = subprocess.run([str(cli), sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
