"""The chat API judges every answer without a judge model (does it cite, do its citations exist) and takes
users' feedback on an answer's trace: each an evaluation event on the trace and a metric."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from examples.reference_app.chat_api import Citation, check_citations, create_app
from examples.reference_app.config import ChatSettings
from ragotel import semconv as sc
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.retriever_double import RetrieverDouble

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def evaluations(recorded: Recorded) -> list[dict[str, Any]]:
    return [dict(r.log_record.attributes) | {"trace_id": format(r.log_record.trace_id, "032x")}
            for r in recorded.logs() if r.log_record.event_name == sc.GEN_AI_EVALUATION_RESULT_EVENT]


@pytest.fixture
async def chat() -> AsyncIterator[httpx.AsyncClient]:
    with RecordedOpenAIServer() as vllm, RetrieverDouble() as retriever:
        app = create_app(ChatSettings(retriever_url=retriever.url, vllm_url=vllm.base_url))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as client:
            yield client


def citation(n: int) -> Citation:
    return Citation(n=n, doc_id=f"d{n}", section="s", source="faq.md", score=0.5)


@pytest.mark.parametrize(("answer", "expected"), [
    ("Parking is free [1] and open late [2].", {"cites_sources": ("cited", 1.0), "citations_exist": ("all", 1.0)}),
    ("See [1] and [7].", {"cites_sources": ("cited", 1.0), "citations_exist": ("missing", 0.5)}),
    ("I do not know.", {"cites_sources": ("uncited", 0.0)}),
])
def test_citation_checks(recorded: Recorded, answer: str, expected: dict[str, tuple[str, float]]) -> None:
    check_citations(answer, [citation(1), citation(2)], "cmpl-1")
    found = {e[sc.GEN_AI_EVALUATION_NAME]: (e[sc.GEN_AI_EVALUATION_SCORE_LABEL], e[sc.GEN_AI_EVALUATION_SCORE_VALUE])
             for e in evaluations(recorded)}
    assert found == expected
    assert all(e[sc.GEN_AI_RESPONSE_ID] == "cmpl-1" for e in evaluations(recorded))


async def test_every_answer_is_judged_on_its_own_trace(recorded: Recorded, chat: httpx.AsyncClient) -> None:
    reply = (await chat.post("/chat", json={"question": "Is there parking?", "max_tokens": 8})).json()
    (judged,) = evaluations(recorded)  # the recorded answer cites nothing
    assert judged[sc.GEN_AI_EVALUATION_NAME] == "cites_sources" and judged["trace_id"] == reply["trace_id"]
    await chat.post("/chat/stream", json={"question": "Is there parking?", "max_tokens": 8})
    labels = [p.attributes[sc.GEN_AI_EVALUATION_SCORE_LABEL] for p in recorded.points(sc.RAG_EVALUATIONS)]
    assert labels == ["uncited"] and recorded.points(sc.RAG_EVALUATIONS)[0].value == 2


async def test_feedback_lands_on_the_answers_trace(recorded: Recorded, chat: httpx.AsyncClient) -> None:
    accepted = await chat.post("/feedback", json={"trace_id": TRACE, "label": "down", "score": 0.0,
                                                  "comment": "wrong opening hours"})
    assert accepted.status_code == 202 and accepted.json() == {"recorded": True, "trace_id": TRACE}
    (event,) = evaluations(recorded)
    assert event["trace_id"] == TRACE and event[sc.GEN_AI_EVALUATION_SCORE_LABEL] == "down"
    assert sc.GEN_AI_EVALUATION_EXPLANATION not in event  # the comment is content: capture is off


@pytest.mark.parametrize("body", [
    {"trace_id": "XYZ", "label": "up"}, {"trace_id": TRACE}, {"trace_id": TRACE, "label": "meh"},
    {"trace_id": TRACE, "score": 2}, {"trace_id": TRACE, "label": "up", "extra": 1},
    {"trace_id": TRACE, "label": "up", "comment": "x" * 1001}, {"trace_id": TRACE.upper(), "label": "up"},
])
async def test_malformed_feedback_is_a_422_with_a_message(recorded: Recorded, chat: httpx.AsyncClient,
                                                          body: dict[str, Any]) -> None:
    response = await chat.post("/feedback", json=body)
    assert response.status_code == 422 and response.json()["detail"].strip()
    assert evaluations(recorded) == []
