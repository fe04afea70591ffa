"""The client matrix of ``tests/truth/test_clients.py`` against the real vLLM CPU server: each client, plain,
streamed to the end (with and without ``include_usage``) and abandoned after its first chunk. The truth for
tokens is vLLM's own count: the growth of ``vllm:prompt_tokens_total`` and ``vllm:generation_tokens_total``
over the completed calls must equal the tokens ragotel recorded for them."""

from __future__ import annotations

import re

import httpx
import pytest
from opentelemetry.trace import StatusCode

from examples.reference_app.vllm_server import VllmServer
from ragotel import semconv as sc
from tests.conftest import Recorded
from tests.truth.test_clients import CALLS, CLIENTS, Scenario, genai_spans, tokens

pytestmark = pytest.mark.stack


def _vllm_tokens(vllm: VllmServer) -> tuple[float, float]:
    text = httpx.get(f"{vllm.base_url}/metrics", timeout=10).text

    def total(name: str) -> float:
        return sum(float(m.group(1)) for m in re.finditer(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M))

    return total("vllm:prompt_tokens_total"), total("vllm:generation_tokens_total")


COMPLETED = [Scenario(client, mode, usage, "nothing", False)
             for client in CLIENTS for mode, usage in (("plain", False), ("stream", False), ("stream", True))]


def test_completed_calls_count_the_tokens_vllm_counted(
    recorded: Recorded, vllm: VllmServer, http_clients_instrumented: None
) -> None:
    before = _vllm_tokens(vllm)
    for scenario in COMPLETED:
        assert CALLS[scenario.client](f"{vllm.base_url}/v1", scenario).outcome == "completed", scenario
    after = _vllm_tokens(vllm)
    spans = genai_spans(recorded)
    assert len(spans) == len(COMPLETED) and recorded.open_spans() == []
    for span in spans:
        attrs = span.attributes or {}
        assert sc.RAG_OUTCOME not in attrs and span.status.status_code is not StatusCode.ERROR, attrs
    assert tokens(recorded, "input") == after[0] - before[0]
    assert tokens(recorded, "output") == after[1] - before[1]
    durations = sum(p.count or 0 for p in recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION))
    assert durations == len(COMPLETED)


@pytest.mark.parametrize("client", CLIENTS)
def test_an_abandoned_stream_is_cancelled(
    recorded: Recorded, vllm: VllmServer, http_clients_instrumented: None, client: str
) -> None:
    # long enough that the end of the stream cannot have arrived with its first chunk
    scenario = Scenario(client, "abandon", True, "nothing", False, max_tokens=512)
    assert CALLS[client](f"{vllm.base_url}/v1", scenario).outcome == "abandoned"
    (span,) = genai_spans(recorded)
    assert (span.attributes or {}).get(sc.RAG_OUTCOME) == "cancelled"
    assert recorded.points(sc.RAG_STEP_ERRORS) == []
