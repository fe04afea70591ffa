"""Every ``gen_ai.*`` name ragotel emits is the conventions' own, checked against the conventions rather than
against ragotel's names module.

A RAG service (tests/rag_workload.py) runs in each GenAI mode. Every metric name and every attribute key
under ``gen_ai.*`` it emits (span, span event, metric point and log record attributes) must be one the
installed opentelemetry-semantic-conventions package defines, or one docs/genai-conventions.md names with its
reason: the departures table, and in the latest mode the latest column of the two-modes table (the GenAI conventions'
own release, which the package does not carry). The default mode also follows core v1.41.1, the last core
release defining the GenAI conventions, where the package says nothing: bucket advice and span kinds.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache
from pathlib import Path

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.trace import SpanKind

from docsgen import tables
from ragotel import semconv as sc
from tests import rag_workload
from tests.conftest import Recorded

CONVENTIONS = (Path(__file__).resolve().parents[1] / "docs" / "genai-conventions.md").read_text(encoding="utf-8")

# core v1.41.1, docs/gen-ai/gen-ai-metrics.md: the ExplicitBucketBoundaries advised for
# gen_ai.client.operation.time_to_first_chunk and gen_ai.client.operation.time_per_output_chunk.
RELEASED_CHUNK_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


@cache
def package_names() -> frozenset[str]:
    """Every attribute and metric name the installed semconv package defines, stable and incubating."""
    names: set[str] = set()
    for package in ("attributes", "metrics", "_incubating.attributes", "_incubating.metrics"):
        found = importlib.import_module(f"opentelemetry.semconv.{package}")
        for info in pkgutil.iter_modules(found.__path__, f"{found.__name__}."):
            module = importlib.import_module(info.name)
            names.update(v for k, v in vars(module).items() if k.isupper() and isinstance(v, str))
    return frozenset(names)


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("|") and not line.startswith("| ---")]


def departures() -> dict[str, str]:
    """The departures table of docs/genai-conventions.md: name → reason."""
    table = CONVENTIONS.split("<!-- departures:begin -->\n", 1)[1].split("<!-- departures:end -->", 1)[0]
    header, *rows = _rows(table)
    assert header == ["name", "why"], header
    return {row[0].strip("`"): row[1] for row in rows}


def latest_names() -> set[str]:
    """The names the two-modes table of docs/genai-conventions.md gives the latest mode (its third column)."""
    start = CONVENTIONS.index("| | default | `gen_ai_latest_experimental` |")
    table = CONVENTIONS[start:CONVENTIONS.index("\n\n", start)]
    return {name for row in _rows(table)[1:] for name in re.findall(r"`(gen_ai\.[a-z0-9_.]+)`", row[2])}


def emitted(recorded: Recorded) -> dict[str, str]:
    """Every metric name and attribute key recorded, with one place it was seen."""
    found: dict[str, str] = {}
    for span in recorded.spans():
        found.update({key: f"attribute of span {span.name!r}" for key in span.attributes or {}})
        for event in span.events:
            found.update({key: f"attribute of event {event.name!r} on {span.name!r}" for key in event.attributes or {}})
    for point in recorded.points():
        found[point.name] = "metric"
        found.update({key: f"attribute of metric {point.name}" for key in point.attributes})
    for log in recorded.logs():
        record = log.log_record
        found.update({key: f"attribute of log record {record.event_name!r}" for key in record.attributes or {}})
    return found


def unreleased(found: dict[str, str], *, latest: bool) -> dict[str, str]:
    """The ``gen_ai.*`` names among ``found`` that neither the package nor the page's tables account for."""
    allowed = package_names() | set(departures()) | (latest_names() if latest else set())
    return {name: where for name, where in found.items() if name.startswith("gen_ai.") and name not in allowed}


@pytest.mark.parametrize("latest", [False, True], ids=["default", "latest"])
def test_every_gen_ai_name_is_the_package_s_or_a_documented_departure(recorded: Recorded, latest: bool) -> None:
    rag_workload.serve(latest=latest)
    found = emitted(recorded)
    assert len([name for name in found if name.startswith("gen_ai.")]) >= 25  # the service reached its steps
    assert unreleased(found, latest=latest) == {}


def test_every_departure_has_a_reason_and_is_emitted(recorded: Recorded) -> None:
    listed = departures()
    assert listed and all(len(reason) > 20 for reason in listed.values()), listed
    rag_workload.serve(latest=False)
    rag_workload.serve(latest=True)
    assert set(listed) - set(emitted(recorded)) == set()  # a row for a name ragotel stopped emitting is stale


def test_a_name_from_no_release_is_reported() -> None:
    found = {"gen_ai.workflow.duration": "metric", "gen_ai.retrieval.top_k": "attribute of span 'retrieval faiss'",
             "gen_ai.client.inference.duration": "metric", gen_ai_attributes.GEN_AI_REQUEST_MODEL: "attribute",
             gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE: "metric", "rag.pipeline.duration": "metric"}
    assert unreleased(found, latest=False) == {
        "gen_ai.workflow.duration": "metric", "gen_ai.retrieval.top_k": "attribute of span 'retrieval faiss'",
        "gen_ai.client.inference.duration": "metric",  # a latest-mode name in the default mode
    }
    assert set(unreleased(found, latest=True)) == {"gen_ai.workflow.duration", "gen_ai.retrieval.top_k"}


def test_each_mode_emits_the_names_the_names_page_gives_it(recorded: Recorded) -> None:
    """docs/reference/names.md says which names only one mode emits (semconv's DEFAULT_ONLY and LATEST_ONLY, each
    mode's instruments): a real service emits them in that mode and not in the other."""
    found: dict[bool, set[str]] = {}
    for latest in (False, True):
        recorded.clear()
        rag_workload.serve(latest=latest)
        found[latest] = set(emitted(recorded)) | {event.name for span in recorded.spans() for event in span.events} \
            | {str(log.log_record.event_name) for log in recorded.logs()}
        assert {point.name for point in recorded.points()} <= {made.name for made in tables.instruments(latest)}
    assert found[False] >= sc.DEFAULT_ONLY and not sc.DEFAULT_ONLY & found[True]
    assert found[True] >= sc.LATEST_ONLY and not sc.LATEST_ONLY & found[False]


# --- where the package is silent, core v1.41.1 ----------------------------------------------------
def test_default_chunk_timings_take_the_release_s_bucket_advice(recorded: Recorded) -> None:
    rag_workload.serve(latest=False)
    for name in (gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
                 gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK):
        points = recorded.points(name)
        assert points and {point.bounds for point in points} == {RELEASED_CHUNK_BUCKETS}, name


def test_a_retrieval_is_a_client_span_with_the_request_s_top_k(recorded: Recorded) -> None:
    rag_workload.serve(latest=False)
    retrievals = [span for span in recorded.spans()
                  if (span.attributes or {}).get(gen_ai_attributes.GEN_AI_OPERATION_NAME) == "retrieval"]
    assert retrievals and {span.kind for span in retrievals} == {SpanKind.CLIENT}
    asked = [(span.attributes or {})[gen_ai_attributes.GEN_AI_REQUEST_TOP_K] for span in retrievals
             if gen_ai_attributes.GEN_AI_REQUEST_TOP_K in (span.attributes or {})]
    assert asked and set(asked) == {3}
