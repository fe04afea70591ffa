"""Evaluations are ``gen_ai.evaluation.result`` events on the judged span, and metrics by name and label."""

from __future__ import annotations

import pytest

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from tests.conftest import Recorded

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def events(recorded: Recorded) -> list[object]:
    return [r.log_record for r in recorded.logs() if r.log_record.event_name == sc.GEN_AI_EVALUATION_RESULT_EVENT]


def test_an_evaluation_is_an_event_on_the_span_it_judges(recorded: Recorded) -> None:
    with ragotel.generation("answer") as step:
        pass
    judged = step.span.get_span_context()
    ragotel.record_evaluation("citations_exist", score=1.0, label="cited", context=judged, response_id="cmpl-1",
                              explanation="every [n] names a retrieved chunk")
    (event,) = events(recorded)
    assert (event.trace_id, event.span_id) == (judged.trace_id, judged.span_id)  # type: ignore[attr-defined]
    assert dict(event.attributes) == {  # type: ignore[attr-defined]
        sc.GEN_AI_EVALUATION_NAME: "citations_exist", sc.GEN_AI_EVALUATION_SCORE_VALUE: 1.0,
        sc.GEN_AI_EVALUATION_SCORE_LABEL: "cited", sc.GEN_AI_RESPONSE_ID: "cmpl-1"}  # no explanation: content
    (score,) = recorded.points(sc.RAG_EVALUATION_SCORE)
    assert score.attributes == {sc.GEN_AI_EVALUATION_NAME: "citations_exist", sc.GEN_AI_EVALUATION_SCORE_LABEL: "cited"}
    assert (score.count, score.sum) == (1, 1.0)


def test_feedback_by_trace_id_and_the_current_span(recorded: Recorded) -> None:
    runtime.update(content_spans=True)  # explanation is content: kept only with capture on
    ragotel.record_evaluation("user_feedback", label="down", context=TRACE, explanation="wrong hours")
    with ragotel.pipeline("chat") as step:
        ragotel.record_evaluation("cites_sources", score=0.0, label="uncited")
    feedback, current = events(recorded)
    assert format(feedback.trace_id, "032x") == TRACE and feedback.span_id == 0  # type: ignore[attr-defined]
    assert feedback.attributes[sc.GEN_AI_EVALUATION_EXPLANATION] == "wrong hours"  # type: ignore[attr-defined]
    assert current.span_id == step.span.get_span_context().span_id  # type: ignore[attr-defined]
    counts = {(p.attributes[sc.GEN_AI_EVALUATION_NAME], p.attributes.get(sc.GEN_AI_EVALUATION_SCORE_LABEL)): p.value
              for p in recorded.points(sc.RAG_EVALUATIONS)}
    assert counts == {("user_feedback", "down"): 1, ("cites_sources", "uncited"): 1}
    (score,) = recorded.points(sc.RAG_EVALUATION_SCORE)  # the label-only feedback has no score
    assert score.attributes[sc.GEN_AI_EVALUATION_NAME] == "cites_sources"


@pytest.mark.parametrize("context", ["not-hex", "0" * 32, -1, 1 << 128])
def test_a_bad_target_is_swallowed(recorded: Recorded, context: object) -> None:
    ragotel.record_evaluation("user_feedback", label="up", context=context)  # type: ignore[arg-type]
    assert events(recorded) == []
