"""Index gauges (items, dimension, age observed at collection) and the counters ingestion adds.

Run in a fresh interpreter: gauges keep their last value in the process's global instruments, which
would show in every later test's collections."""

from __future__ import annotations

from typing import Any

import pytest

from ragotel import semconv as sc
from tests.test_configure import run_python

SCENARIO = """
import json, time, ragotel
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
ragotel.configure(service_name="rag-retriever", metric_readers=[reader])

def collect():
    found = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for scope in rm.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found.setdefault(metric.name, []).append([dict(point.attributes), point.value])
    return found

out = {}
ragotel.record_index("index", items=352, dimension=384, built_at=time.time() - 3600, data_source="faiss")
ragotel.record_index("matrix", built_at=time.time() - 86400 * 9, data_source="tfidf")
out["first"] = collect()
time.sleep(0.05)
out["later"] = collect()                    # nothing recorded in between: the age is observed
ragotel.record_index("matrix", built_at=time.time() - 10, data_source="tfidf")  # a reload
out["reloaded"] = collect()
ragotel.record_index_write(documents=43, chunks=352, embedded=352, data_source="faiss")
ragotel.record_index_write(documents=2, chunks=5, data_source="faiss")  # nothing embedded: not counted
ragotel.record_index("index", built_at="yesterday", dimension="wide")  # never raises
ragotel.record_index_write(documents="many")
out["written"] = collect()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def collected() -> dict[str, Any]:
    env = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    return run_python(SCENARIO, env=env)


def value(collection: dict[str, Any], name: str, part: str | None = None, source: str | None = None) -> float:
    (found,) = [v for attrs, v in collection[name]
                if (part is None or attrs.get(sc.RAG_INDEX_PART) == part)
                and (source is None or attrs.get(sc.GEN_AI_DATA_SOURCE_ID) == source)]
    return float(found)


def test_record_index_sets_dimension_and_the_age_grows_between_collections(collected: dict[str, Any]) -> None:
    first, later = collected["first"], collected["later"]
    assert collected["first"][sc.RAG_INDEX_DIMENSION] == [
        [{sc.RAG_INDEX_PART: "index", sc.GEN_AI_DATA_SOURCE_ID: "faiss"}, 384]]
    assert 3600 <= value(first, sc.RAG_INDEX_AGE, "index") < 3660
    assert value(first, sc.RAG_INDEX_AGE, "matrix") > 86400 * 8
    assert value(later, sc.RAG_INDEX_AGE, "index") > value(first, sc.RAG_INDEX_AGE, "index")


def test_a_reload_resets_the_age(collected: dict[str, Any]) -> None:
    assert value(collected["reloaded"], sc.RAG_INDEX_AGE, "matrix") < 60
    assert value(collected["reloaded"], sc.RAG_INDEX_AGE, "index") > 3600  # the other part is untouched


def test_record_index_write_counts_documents_chunks_and_embeddings(collected: dict[str, Any]) -> None:
    written = collected["written"]
    assert value(written, sc.RAG_INDEX_DOCUMENTS_WRITTEN, source="faiss") == 45
    assert value(written, sc.RAG_INDEX_CHUNKS_WRITTEN, source="faiss") == 357
    assert value(written, sc.RAG_INDEX_CHUNKS_EMBEDDED, source="faiss") == 352
    assert value(written, sc.RAG_INDEX_DIMENSION, "index") == 384  # the bad values changed nothing
