"""Alerts end to end on real parts: the generated rules loaded into the local stack's Prometheus, a real
fault (the retriever stopped), and the matching alerts arriving in a real Alertmanager's
``/api/v2/alerts``. This stack shortens every rule's ``for:`` to 10 s and evaluates every 5 s; the
shipped rule file keeps its own durations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboards import alerts
from dashboards.__main__ import RULES, outputs
from examples.reference_app.run_local import RULES_FILE, LocalStack
from examples.reference_app.vllm_server import VllmServer
from ragotel.cli.receiver import OtlpReceiver
from tests.stack.conftest import ROOT, SERVED_MODEL, require

pytestmark = pytest.mark.stack

FOR, INTERVAL = "10s", "5s"


@pytest.fixture(scope="module")
def alerting_stack(vllm: VllmServer, vllm_receiver: OtlpReceiver) -> Iterator[LocalStack]:
    """A stack of its own (its Prometheus loads the shortened rules), sharing the test run's vLLM."""
    with LocalStack(ROOT / "var" / "alert-test", otlp_endpoint=vllm_receiver.endpoint, vllm_url=vllm.base_url,
                    served_model=SERVED_MODEL, fixed_ports=False, log=lambda *a: None,
                    alert_for=FOR, alert_interval=INTERVAL) as running:
        yield running


def get(url: str, **params: str) -> Any:
    response = httpx.get(url, params=params, timeout=30)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text}"
    return response.json()


def received(alertmanager_url: str, alertname: str, **labels: str) -> list[dict[str, Any]]:
    """Alerts Alertmanager holds (active, not resolved) with that name and those labels."""
    return [a for a in get(f"{alertmanager_url}/api/v2/alerts")
            if a["labels"].get("alertname") == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 1.0,
             tick: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        tick()
        time.sleep(every)


def test_shipped_rules_keep_their_durations(alerting_stack: LocalStack) -> None:
    require(alerting_stack, "prometheus_url")
    # What Prometheus loads is a copy; the shipped file is what the generator writes, with each alert's for:.
    assert alerting_stack.rules_path is not None and alerting_stack.rules_path != RULES_FILE
    assert alerting_stack.rules_path.is_relative_to(alerting_stack.var_dir)
    assert RULES_FILE.read_text() == outputs()[RULES / RULES_FILE.name]
    shipped = yaml.safe_load(RULES_FILE.read_text())["groups"]
    assert [(r["alert"], r["for"]) for g in shipped for r in g["rules"]] == [(a.name, a.for_) for a in alerts.ALERTS]
    copy = yaml.safe_load(Path(alerting_stack.rules_path).read_text())["groups"]
    assert [(r["alert"], r["for"]) for g in copy for r in g["rules"]] == [(a.name, FOR) for a in alerts.ALERTS]
    assert {g["interval"] for g in copy} == {INTERVAL} != {g.get("interval") for g in shipped}
    # Only for: and interval differ.
    for ours, theirs in zip(copy, shipped, strict=True):
        assert {**ours, "interval": None, "rules": [{**r, "for": None} for r in ours["rules"]]} == \
               {**theirs, "interval": None, "rules": [{**r, "for": None} for r in theirs["rules"]]}


def test_prometheus_evaluates_the_rules_and_knows_the_alertmanager(alerting_stack: LocalStack) -> None:
    prometheus = require(alerting_stack, "prometheus_url")
    alertmanager = require(alerting_stack, "alertmanager_url")
    groups = get(f"{prometheus}/api/v1/rules")["data"]["groups"]
    assert alerts.GROUP in {g["name"] for g in groups}
    assert {g["interval"] for g in groups} == {5}
    loaded = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert set(loaded) == {a.name for a in alerts.ALERTS}
    assert {r["duration"] for r in loaded.values()} == {10}
    assert {r["health"] for r in loaded.values()} <= {"ok", "unknown"}, loaded

    def discovered() -> list[str]:  # Prometheus applies its alerting config a moment after it is ready
        return [a["url"] for a in get(f"{prometheus}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]]

    wait_for("Prometheus sends to the stack's Alertmanager", lambda: bool(discovered()), timeout=30)
    assert discovered() == [f"{alertmanager}/api/v2/alerts"]


def test_a_stopped_retriever_reaches_alertmanager(alerting_stack: LocalStack) -> None:
    prometheus = require(alerting_stack, "prometheus_url")
    alertmanager = require(alerting_stack, "alertmanager_url")
    chat = alerting_stack.chat_url
    ok = httpx.post(f"{chat}/chat", json={"question": "Is there parking?", "max_tokens": 8}, timeout=120)
    assert ok.status_code == 200, ok.text
    # Quiet first: the retriever is scraped (up == 1) and no alert names it.
    def retriever_up() -> bool:
        result = get(f"{prometheus}/api/v1/query", query='up{job="rag-retriever"}')["data"]["result"]
        return any(series["value"][1] == "1" for series in result)

    wait_for("the retriever scraped", retriever_up, timeout=30)
    assert received(alertmanager, "RagScrapeTargetDown", job="rag-retriever") == []
    assert received(alertmanager, "RagStageErrorRateHigh", rag_step_kind="retrieval") == []

    def failing_request() -> None:
        reply = httpx.post(f"{chat}/chat", json={"question": "Is there parking?"}, timeout=60)
        assert reply.status_code == 503 and reply.json()["stage"] == "retrieval", reply.text

    retriever = alerting_stack.processes["retriever"]
    retriever.stop()
    try:
        # Scrapes fail every 5 s, chat requests fail in retrieval; each rule holds for 10 s, then fires.
        wait_for("RagScrapeTargetDown{job=rag-retriever} in Alertmanager",
                 lambda: bool(received(alertmanager, "RagScrapeTargetDown", job="rag-retriever")),
                 timeout=90, every=2, tick=failing_request)
        wait_for("RagStageErrorRateHigh{rag_step_kind=retrieval} in Alertmanager",
                 lambda: bool(received(alertmanager, "RagStageErrorRateHigh", rag_step_kind="retrieval")),
                 timeout=60, every=2, tick=failing_request)

        (down,) = received(alertmanager, "RagScrapeTargetDown", job="rag-retriever")
        assert down["status"]["state"] == "active", down
        assert down["labels"]["severity"] == "critical" and down["labels"]["stage"] == "scrape", down
        assert down["annotations"]["summary"].startswith("[scrape] rag-retriever target 127.0.0.1:"), down
        assert down["annotations"]["dashboard_uid"] == "rag-overview", down
        (stage,) = received(alertmanager, "RagStageErrorRateHigh", rag_step_kind="retrieval")
        # Per stage, not per job: the stage's errors as the service that saw most of them counted them.
        assert "job" not in stage["labels"] and stage["labels"]["stage"] == "pipeline", stage
        assert "in the retrieval stage" in stage["annotations"]["summary"], stage
        # The other targets stayed up: nothing else is reported down.
        assert {a["labels"]["job"] for a in received(alertmanager, "RagScrapeTargetDown")} == {"rag-retriever"}
    finally:
        retriever.start()

    # The retriever back: an evaluation after its next scrape resolves the alert, and Alertmanager
    # stops listing it.
    wait_for("RagScrapeTargetDown resolved", lambda: not received(alertmanager, "RagScrapeTargetDown",
                                                                   job="rag-retriever"), timeout=60, every=2)
