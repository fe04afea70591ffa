"""``tests/vllm_served.json`` is what the real vLLM serves: the fast tests that read it (the dashboards' metric
names and labels, the TraceQL catalog's attribute types) then check against the real server, not a copy
that can drift. When vLLM changes, ``python -m tests.vllm_served`` writes the file again."""

from __future__ import annotations

import pytest

from examples.reference_app.vllm_server import VllmServer
from ragotel.cli.receiver import OtlpReceiver
from tests import vllm_served

pytestmark = pytest.mark.stack


def test_the_committed_list_is_what_the_real_vllm_serves(vllm: VllmServer, vllm_receiver: OtlpReceiver) -> None:
    found = vllm_served.observe(vllm.base_url, vllm.served_model_name, vllm_receiver.spans_path)
    committed = vllm_served.committed()
    assert found["metrics"] == committed["metrics"], "run: python -m tests.vllm_served"
    assert found["llm_request_attributes"] == committed["llm_request_attributes"], "run: python -m tests.vllm_served"
