"""The two GenAI modes, each exact: the semconv package's names by default, the GenAI repository's release
with ``gen_ai_latest_experimental`` (metrics, the details event's severity, the scope's schema URL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.semconv.schemas import Schemas

import ragotel
from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core import runtime
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

CHAT = {"model": "usage-details", "messages": [{"role": "user", "content": "When does the clinic open?"}],
        "max_tokens": 16}
LATEST_ONLY = {sc.GEN_AI_CLIENT_INFERENCE_DURATION, sc.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK,
               sc.GEN_AI_CLIENT_EMBEDDINGS_DURATION, sc.GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS,
               sc.GEN_AI_RETRIEVAL_DURATION, sc.GEN_AI_INVOKE_AGENT_DURATION,
               sc.GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK, sc.GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS,
               sc.GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS, *sc.INFERENCE_USAGE_COUNTERS.values()}
DEFAULT_ONLY = {sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK,
                sc.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with RecordedOpenAIServer() as server, httpx.Client(base_url=server.base_url, timeout=5) as c:
        ragotel.instrument_httpx(c)
        yield c


def _names(recorded: Recorded) -> set[str]:
    return {p.name for p in recorded.points()}


def _stream(client: httpx.Client, model: str = "tiny-llama") -> None:
    with client.stream("POST", "/chat/completions", json={**CHAT, "model": model, "stream": True}) as response:
        for _ in response.iter_bytes():
            pass


def test_default_mode_emits_the_semconv_package_names(recorded: Recorded, client: httpx.Client) -> None:
    runtime.update(genai_latest=False)
    client.post("/chat/completions", json=CHAT)
    _stream(client)
    names = _names(recorded)
    assert DEFAULT_ONLY | {sc.GEN_AI_CLIENT_OPERATION_DURATION} <= names
    assert not names & LATEST_ONLY
    assert recorded.span("chat usage-details").instrumentation_scope.schema_url == Schemas.V1_44_0.value


def test_latest_mode_counts_each_token_type_by_modality(recorded: Recorded, client: httpx.Client) -> None:
    runtime.update(genai_latest=True)
    client.post("/chat/completions", json=CHAT)
    names = _names(recorded)
    assert not names & DEFAULT_ONLY
    totals = {p.name: p.value for p in recorded.points() if p.name in sc.INFERENCE_USAGE_COUNTERS.values()}
    assert totals == {sc.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: 41,
                      sc.GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: 7,
                      sc.GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS: 32,
                      sc.GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS: 9,
                      sc.GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS: 3}
    for p in recorded.points():
        assert sc.GEN_AI_TOKEN_TYPE not in p.attributes, p
        if p.name in sc.INFERENCE_USAGE_COUNTERS.values():
            assert p.attributes[sc.GEN_AI_TOKEN_MODALITY] == sc.TOKEN_MODALITY_UNKNOWN
            assert p.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    (per_call,) = recorded.points(sc.GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS)
    assert (per_call.count, per_call.sum) == (1, 41) and sc.GEN_AI_TOKEN_MODALITY not in per_call.attributes
    # Inference is timed on its own metric; gen_ai.client.operation.duration is left to other operations.
    (duration,) = recorded.points(sc.GEN_AI_CLIENT_INFERENCE_DURATION)
    assert duration.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert not recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert not recorded.span("chat usage-details").instrumentation_scope.schema_url


def test_latest_mode_streaming_and_embeddings(recorded: Recorded, client: httpx.Client) -> None:
    runtime.update(genai_latest=True)
    _stream(client)
    client.post("/embeddings", json={"model": "tiny-embed", "input": ["a", "b"]})
    names = _names(recorded)
    assert {sc.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK, sc.GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK} <= names
    assert not names & DEFAULT_ONLY
    # Embeddings have metrics of their own: duration and input tokens per call, no usage counters.
    (embeddings,) = recorded.points(sc.GEN_AI_CLIENT_EMBEDDINGS_DURATION)
    assert embeddings.attributes[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    (embedded,) = recorded.points(sc.GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS)
    assert embedded.count == 1 and embedded.sum > 0 and sc.GEN_AI_TOKEN_TYPE not in embedded.attributes
    assert not recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    counted = {p.attributes[sc.GEN_AI_OPERATION_NAME] for p in recorded.points()
               if p.name in sc.INFERENCE_USAGE_COUNTERS.values()}
    assert counted == {"chat"}
    (chat,) = recorded.points(sc.GEN_AI_CLIENT_INFERENCE_DURATION)
    assert chat.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    # The release advises the duration buckets for the chunk timings too, as core v1.41.1 did for the default's.
    (first_chunk,) = recorded.points(sc.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK)
    assert first_chunk.bounds == sc.DURATION_BUCKETS


def test_latest_mode_records_a_pipeline_as_an_agent_invocation(recorded: Recorded) -> None:
    """v0.1.0: a workflow is timed on gen_ai.invoke_agent.duration and named by gen_ai.agent.name; its
    operation stays invoke_workflow. A retrieval (with detailed metrics) is timed on gen_ai.retrieval.duration."""
    runtime.update(genai_latest=True, detailed_metrics=True)
    with ragotel.pipeline("answer"), ragotel.retrieval("search"):
        pass
    span = recorded.span("invoke_workflow answer").attributes
    assert span[sc.GEN_AI_AGENT_NAME] == "answer" and sc.GEN_AI_WORKFLOW_NAME not in span
    assert span[sc.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    (pipeline,) = recorded.points(sc.GEN_AI_INVOKE_AGENT_DURATION)
    assert pipeline.attributes[sc.GEN_AI_AGENT_NAME] == "answer" and sc.GEN_AI_WORKFLOW_NAME not in pipeline.attributes
    (retrieval,) = recorded.points(sc.GEN_AI_RETRIEVAL_DURATION)
    assert retrieval.attributes[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    names = _names(recorded)
    assert not names & {sc.RAG_PIPELINE_DURATION, sc.GEN_AI_CLIENT_OPERATION_DURATION}


def test_default_mode_records_a_pipeline_as_a_workflow(recorded: Recorded) -> None:
    runtime.update(genai_latest=False, detailed_metrics=True)
    with ragotel.pipeline("answer"), ragotel.retrieval("search"):
        pass
    assert recorded.span("invoke_workflow answer").attributes[sc.GEN_AI_WORKFLOW_NAME] == "answer"
    (pipeline,) = recorded.points(sc.RAG_PIPELINE_DURATION)
    assert pipeline.attributes[sc.GEN_AI_WORKFLOW_NAME] == "answer"
    (retrieval,) = recorded.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert retrieval.attributes[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    assert not _names(recorded) & {sc.GEN_AI_INVOKE_AGENT_DURATION, sc.GEN_AI_RETRIEVAL_DURATION}


def test_details_event_is_debug(recorded: Recorded, client: httpx.Client) -> None:
    runtime.update(genai_latest=True, content_events=True)
    client.post("/chat/completions", json=CHAT)
    (record,) = [r.log_record for r in recorded.logs() if r.log_record.event_name == sc.GEN_AI_INFERENCE_DETAILS_EVENT]
    assert record.severity_number is SeverityNumber.DEBUG and record.severity_text == "DEBUG"


@pytest.mark.parametrize(("latest", "schema"), [(False, sc.SCHEMA_URL_DEFAULT), (True, "")])
def test_a_given_meter_provider_gets_the_mode_s_instruments_and_schema(latest: bool, schema: str | None) -> None:
    saved = runtime.update(genai_latest=latest)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        ins = _instruments.instruments_for(provider)
        assert _instruments.instruments_for(provider) is ins  # made once per provider and mode
        ins.token_usage.record(5, {sc.GEN_AI_TOKEN_TYPE: "input", sc.GEN_AI_OPERATION_NAME: "chat"})
        ins.time_to_first_chunk.record(0.1, {sc.GEN_AI_OPERATION_NAME: "chat"})
        data = reader.get_metrics_data()
        assert data is not None
        (scope,) = data.resource_metrics[0].scope_metrics
        assert scope.scope.schema_url == schema
        expected = ({sc.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS, sc.GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS,
                     sc.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK} if latest
                    else {sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK})
        assert {m.name for m in scope.metrics} == expected
    finally:
        runtime.swap(saved)
        provider.shutdown()


def test_a_token_type_with_no_counter_is_skipped() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counters = _instruments.TokenCounters(provider.get_meter("t"))
    counters.record(3, {sc.GEN_AI_TOKEN_TYPE: "audio"})
    counters.record(3, None)
    data = reader.get_metrics_data()
    assert not data or not any(m.data.data_points for rm in data.resource_metrics
                               for s in rm.scope_metrics for m in s.metrics)
    provider.shutdown()


def _exception_events(recorded: Recorded) -> list[Any]:
    return [r.log_record for r in recorded.logs() if r.log_record.event_name == sc.GEN_AI_INFERENCE_EXCEPTION_EVENT]


@pytest.mark.parametrize("latest", [False, True])
def test_a_failed_inference_call_emits_one_exception_event_in_the_latest_mode(
    recorded: Recorded, client: httpx.Client, latest: bool,
) -> None:
    runtime.update(genai_latest=latest)
    assert client.post("/chat/completions", json={**CHAT, "model": "fault-500"}).status_code == 500
    with ragotel.generation("answer"):  # the call inside a generation step: one event, the call's
        client.post("/chat/completions", json={**CHAT, "model": "fault-500"})
    with httpx.Client(base_url="http://127.0.0.1:9", timeout=2) as closed:  # nothing listens on port 9
        ragotel.instrument_httpx(closed)
        with pytest.raises(httpx.ConnectError):
            closed.post("/v1/chat/completions", json=CHAT)
    with pytest.raises(ValueError), ragotel.generation("parse"):
        raise ValueError("no answer")
    client.post("/embeddings", json={"model": "fault-500", "input": ["a"]})  # not an inference call
    events = _exception_events(recorded)
    if not latest:
        assert events == []
        return
    assert [(e.severity_number, e.severity_text) for e in events] == [(SeverityNumber.WARN, "WARN")] * 4
    by_type = [(e.attributes[sc.ERROR_TYPE], e.attributes.get(sc.EXCEPTION_TYPE)) for e in events]
    assert by_type == [("http.5xx", None), ("http.5xx", None), ("connection", "httpx.ConnectError"),
                       ("ValueError", "ValueError")]
    assert events[0].attributes[sc.GEN_AI_REQUEST_MODEL] == "fault-500"
    assert events[3].attributes[sc.EXCEPTION_MESSAGE] == "no answer"
    spans = {s.context.span_id: s for s in recorded.spans()}
    assert all(spans[e.span_id].status.status_code.name == "ERROR" for e in events)  # parented to the call
    assert not any(sc.GEN_AI_INPUT_MESSAGES in e.attributes for e in events)


def test_chat_and_text_completion_share_one_inference_duration_metric() -> None:
    """Made twice, one name would be two metrics (the SDK keeps both when their descriptions differ), and a
    Prometheus scrape two families of one name."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        ins = _instruments._build(provider.get_meter("modes"), latest=True)
        for operation in ("chat", "text_completion", "embeddings"):
            ins.operation_duration.record(0.5, {sc.GEN_AI_OPERATION_NAME: operation})
        data = reader.get_metrics_data()
        assert data is not None
        found = [(m.name, sum(p.count for p in m.data.data_points))
                 for rm in data.resource_metrics for scope in rm.scope_metrics for m in scope.metrics]
        assert sorted(found) == [(sc.GEN_AI_CLIENT_EMBEDDINGS_DURATION, 1), (sc.GEN_AI_CLIENT_INFERENCE_DURATION, 2)]
    finally:
        provider.shutdown()
