"""TraceQL numeric literals are typed like the attribute they compare (dashboards/traceql.yaml).

Tempo compares typed values: a float attribute never matches an integer literal (``span.x > 1`` is
false for 1.7; ``1.0`` matches) and an integer attribute never matches a float literal. The types are
read from real spans: a ragotel pipeline with a retrieval, a prompt and a streamed chat call over real
HTTP (``RecordedOpenAIServer``), into the in-memory exporter of tests/conftest.py. Attributes only vLLM
sets (its ``llm_request`` span) are typed as the real vLLM CPU server sent them to the stack tests'
receiver (``tests/vllm_served.json``, which tests/stack/test_vllm_served.py keeps equal to the real spans).
Every attribute a catalog query reads must be on those spans: ragotel's, in both GenAI modes, or vLLM's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import ragotel
from dashboards import traceql
from tests import rag_workload, vllm_served
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list}
# The real llm_request span's attributes, as the stack tests' vLLM exported them.
VLLM_SPAN_ATTRIBUTES: dict[str, set[type]] = {
    key: {_TYPES[name] for name in types.split("/")}
    for key, types in vllm_served.committed()["llm_request_attributes"].items()
}

COMPARISON = re.compile(r"\b(?:span|resource)\.([\w.]+)\s*(?:=|!=|<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)(?![\w.])")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?([a-zµ]*)")
DURATION = re.compile(r"\bduration\s*(?:=|!=|<=|>=|<|>)\s*(\d+(?:\.\d+)?)(?:ns|us|µs|ms|s|m|h)\b")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def numeric_comparisons(query: str) -> Iterator[tuple[str, str]]:
    """(attribute, literal) for each numeric comparison; fails on a number it cannot place."""
    code = STRING.sub('""', query)
    found = list(COMPARISON.finditer(code))
    placed = {m.start(2) for m in found} | {m.start(1) for m in DURATION.finditer(code)}
    for number in NUMBER.finditer(code):
        assert number.start() in placed, f"{query}: a number outside an attribute or duration comparison: " \
                                         f"{number.group(0)!r}"
    for match in found:
        yield match.group(1), match.group(2)


def literal_type(literal: str) -> type:
    return float if "." in literal else int


def kind(value: Any) -> type:
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    return str


def mismatches(queries: list[tuple[str, str]], emitted: dict[str, set[type]]) -> list[str]:
    problems = []
    for name, query in queries:
        for attribute, literal in numeric_comparisons(query):
            types = emitted.get(attribute) or VLLM_SPAN_ATTRIBUTES.get(attribute, set())
            if not types:
                problems.append(f"{name}: {attribute} is not emitted")
            elif types != {literal_type(literal)}:
                wanted = "/".join(sorted(t.__name__ for t in types))
                problems.append(f"{name}: {attribute} is {wanted}, compared with {literal}")
    return problems


@pytest.fixture
def emitted(recorded: Recorded) -> dict[str, set[type]]:
    """Attribute -> the value types ragotel set on real spans of one chat pipeline."""

    @ragotel.retrieval(data_source="faiss")
    def search(query: str, k: int = 3) -> list[dict[str, Any]]:
        # One integer score: ragotel records scores as floats whatever the retriever returns.
        return [{"id": "d1", "score": 0.82, "text": "Open 8-18."}, {"id": "d2", "score": 1, "text": "Closed Sun."},
                {"id": "d3", "score": 0.41, "text": "Parking."}][:k]

    previous = ragotel.set_prices(None)  # priced, so that the pipeline carries its cost
    ragotel.set_prices({"*": ragotel.ModelPrice(input_per_million=3.0, output_per_million=15.0)})
    with RecordedOpenAIServer() as server, httpx.Client(base_url=server.base_url, timeout=5) as client:
        ragotel.instrument_httpx(client)
        with ragotel.pipeline("chat"):
            hits = search("When does the clinic open?")
            with ragotel.prompt(template="rag-v1") as step:
                step.record(chunks=len(hits), context_chars=sum(len(h["text"]) for h in hits))
            body = {"model": "tiny-llama", "stream": True, "max_tokens": 16,
                    "messages": [{"role": "user", "content": "When does the clinic open?"}]}
            with client.stream("POST", "/chat/completions", json=body) as response:
                assert response.status_code == 200
                lines = list(response.iter_lines())  # to the end: the usage chunk comes last
                assert any(line.startswith("data:") for line in lines)
    ragotel.set_prices(previous)
    types: dict[str, set[type]] = {}
    for span in recorded.spans():
        for key, value in (span.attributes or {}).items():
            types.setdefault(key, set()).add(kind(value))
    return types


def test_the_spans_carry_what_the_catalog_compares(emitted: dict[str, set[type]]) -> None:
    assert emitted["gen_ai.response.time_to_first_chunk"] == {float}
    assert emitted["rag.retrieval.results.returned"] == {int}
    assert emitted["rag.retrieval.score.max"] == {float}
    assert emitted["rag.cost.usd"] == {float}


def test_every_numeric_literal_has_the_type_of_its_attribute(emitted: dict[str, set[type]]) -> None:
    queries = [(q.name, q.query) for q in traceql.load()]
    compared = [c for _, query in queries for c in numeric_comparisons(query)]
    assert len(compared) >= 5, compared  # the catalog's thresholds were found at all
    assert mismatches(queries, emitted) == []


def test_an_integer_literal_against_a_float_attribute_is_reported(emitted: dict[str, set[type]]) -> None:
    queries = [
        ("int-for-float", '{ span.gen_ai.response.time_to_first_chunk > 1 }'),
        ("float-for-int", '{ span.rag.retrieval.results.returned >= 10.0 }'),
        ("vllm-int-for-float", '{ name = "llm_request" && span.gen_ai.latency.time_in_queue > 2 }'),
        ("unknown", '{ span.rag.retrieval.results.lost > 1 }'),
        ("typed", '{ span.gen_ai.response.time_to_first_chunk > 1.0 && duration>1.5s && name = "a 2" }'),
    ]
    assert mismatches(queries, emitted) == [
        "int-for-float: gen_ai.response.time_to_first_chunk is float, compared with 1",
        "float-for-int: rag.retrieval.results.returned is int, compared with 10.0",
        "vllm-int-for-float: gen_ai.latency.time_in_queue is float, compared with 2",
        "unknown: rag.retrieval.results.lost is not emitted",
    ]


def test_a_number_outside_a_comparison_is_not_let_through() -> None:
    with pytest.raises(AssertionError, match="outside an attribute or duration comparison"):
        list(numeric_comparisons("{ 1 < span.gen_ai.response.time_to_first_chunk }"))


def test_the_vllm_attributes_compared_are_served() -> None:
    compared = {attribute for entry in traceql.load() if "llm_request" in entry.query
                for attribute, _ in numeric_comparisons(entry.query)}
    assert compared and compared <= set(VLLM_SPAN_ATTRIBUTES)


def test_every_attribute_the_catalog_reads_is_on_a_span(recorded: Recorded) -> None:
    """A renamed attribute leaves a query reading nothing: each must be on ragotel's spans (either mode,
    every kind of step) or on vLLM's."""
    rag_workload.serve(latest=False)
    rag_workload.serve(latest=True)
    on_spans = {key for span in recorded.spans() for key in span.attributes or {}} | set(VLLM_SPAN_ATTRIBUTES)
    read = {name for entry in traceql.load() for scope, name in entry.attributes() if scope == "span"}
    assert read and read - on_spans == set()
