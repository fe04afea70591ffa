"""A RAG service ragotel has never seen (``tests/apps/plainrag``: no telemetry code), run unchanged under the
real ``opentelemetry-instrument`` with a recorded vLLM double: the whole request is one trace, from the chat
API's server span through its call to the doc index, the doc index's encoder and FAISS search (run in a
thread pool), to the model call made with the ``openai`` SDK or with ``requests``; the step metrics have
retrieval and embedding series; a stopped doc index counts under ``retrieval``.
The same checks against a real vLLM, whose own span joins the trace, are in tests/stack/test_zero_code_rag.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apps.plainrag.zero_code import SERVICES, ZeroCode, check_waterfall
from tests.recorded_openai_server import RecordedOpenAIServer


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZeroCode]:
    with RecordedOpenAIServer() as llm, ZeroCode(tmp_path_factory.mktemp("zero-code"),
                                                 llm_base_url=f"{llm.base_url}", model="tiny-llama") as running:
        yield running


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_the_openai_sdk_path_is_one_trace(run: ZeroCode) -> None:
    assert run.ask("/ask").status_code == 200
    spans = run.trace_of("POST /ask", wait_for=("retrieval faiss", "chat tiny-llama"))
    chat = check_waterfall(spans, "POST /ask")
    assert chat.attributes["gen_ai.usage.output_tokens"] == 7


def test_the_requests_path_is_one_trace(run: ZeroCode) -> None:
    assert run.ask("/ask/raw").status_code == 200
    spans = run.trace_of("POST /ask/raw", wait_for=("retrieval faiss", "chat tiny-llama"))
    chat = check_waterfall(spans, "POST /ask/raw")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 41


def test_step_metrics_have_retrieval_and_embedding_series(run: ZeroCode) -> None:
    run.ask("/ask")
    doc_index = series(run.scrape("retriever"), "rag_step_duration_seconds_count")
    kinds = {re.search(r'rag_step_kind="(\w+)"', line).group(1) for line in doc_index}  # type: ignore[union-attr]
    assert {"retrieval", "embedding"} <= kinds
    chat = series(run.scrape("chat"), "rag_step_duration_seconds_count")
    assert any('rag_step_name="doc-index"' in line for line in chat)  # the call to the doc index, as a step


def test_a_stopped_doc_index_counts_under_retrieval(tmp_path: Path) -> None:
    with RecordedOpenAIServer() as llm, ZeroCode(tmp_path, llm_base_url=llm.base_url, model="tiny-llama") as run:
        assert run.app is not None
        run.app.processes["retriever"].stop()
        assert run.ask("/ask").status_code == 503
        errors = series(run.scrape("chat"), "rag_step_errors_total")
    assert any('rag_step_kind="retrieval"' in line and 'error_type="connection"' in line for line in errors), errors
    assert SERVICES["chat"] == "answers"
