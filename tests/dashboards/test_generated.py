"""Dashboards, rules and the TraceQL catalog: generated output is current and well formed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import alerts, needs, traceql
from dashboards import promql as q
from dashboards.__main__ import RULES, outputs, stale
from dashboards.queries import (
    PromQuery,
    alert_queries,
    dashboard_queries,
    dashboards,
    panels,
    traceql_queries,
    variable_queries,
)
from ragotel import semconv as sc

ROOT = Path(__file__).resolve().parents[2]
APP_BOARDS = {"rag-overview", "rag-retrieval", "rag-generation", "rag-cost"}


def test_committed_output_matches_the_code() -> None:
    assert stale() == [], "run: python -m dashboards"


def test_check_reports_a_hand_edited_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edited = next(path for path in outputs() if path.suffix == ".json")
    original = edited.read_text()
    try:
        edited.write_text(original.replace('"refresh": "30s"', '"refresh": "5s"'))
        assert any(edited.name in line for line in stale())
    finally:
        edited.write_text(original)


def test_seven_dashboards() -> None:
    assert set(dashboards()) == APP_BOARDS | {"rag-gpu", "rag-kubernetes", "rag-traces"}


@pytest.mark.parametrize("uid", sorted(dashboards()))
def test_every_panel_has_a_unit_and_a_description(uid: str) -> None:
    for panel in panels(dashboards()[uid]):
        if panel["type"] == "row":
            continue
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{uid} / {panel['title']}: no unit"
        assert panel.get("description"), f"{uid} / {panel['title']}: no description"


@pytest.mark.parametrize("uid", sorted(dashboards()))
def test_panel_ids_are_unique(uid: str) -> None:
    ids = [panel["id"] for panel in panels(dashboards()[uid])]
    assert len(set(ids)) == len(ids) and 0 not in ids


def test_latency_panels_ask_for_exemplars() -> None:
    latency = [query for query in dashboard_queries() if query.panel_type == "timeseries"
               and "histogram_quantile" in query.expr and "_seconds_bucket" in query.expr]
    assert latency, "no latency panels found"
    assert [query.source for query in latency if not query.exemplar] == []


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


@pytest.mark.parametrize("uid", sorted(APP_BOARDS))
def test_app_dashboards_filter_by_namespace_service_and_model(uid: str) -> None:
    found = variables(dashboards()[uid])
    assert {"datasource", "namespace", "service"} <= set(found)
    assert found["datasource"]["query"] == "prometheus" and found["datasource"]["current"]["value"] == "mimir"
    # "All" must also match series that lack the label (a Prometheus outside Kubernetes has no namespace).
    assert found["namespace"]["allValue"] == ".*"
    if uid != "rag-retrieval":
        assert "model" in found


PLACEMENT_LABELS = {"provider": "cloud_provider", "cluster": "k8s_cluster_name", "region": "cloud_region",
                    "environment": "deployment_environment_name"}


@pytest.mark.parametrize("uid", sorted(APP_BOARDS))
def test_app_dashboards_have_placement_and_deployment_variables(uid: str) -> None:
    found = variables(dashboards()[uid])
    wanted = [*PLACEMENT_LABELS, "namespace", "deployment", "service"]
    names = [v for v in found if v in wanted]
    assert names == wanted  # in this order, each narrowing the next
    for name in wanted:
        assert found[name]["allValue"] == ".*" and found[name]["includeAll"] and found[name]["multi"], name
    for name, label in PLACEMENT_LABELS.items():
        assert found[name]["query"].endswith(f", {label})"), found[name]["query"]
    assert found["deployment"]["query"] == 'label_values(up{namespace=~"$namespace"}, deployment)'
    # Every query on an app series filters by all of them (vLLM's series carry no placement of ragotel's).
    app_queries = [query for query in dashboard_queries() if query.source.startswith(f"{uid} / ")
                   and any(not name.startswith("vllm:") for name in query.metrics())]
    assert app_queries
    for query in app_queries:
        for name, label in PLACEMENT_LABELS.items():
            assert f'{label}=~"${name}"' in query.expr, (query.source, name)
        assert 'deployment=~"$deployment"' in query.expr, query.source


def test_kubernetes_dashboard_has_namespace_and_deployment_variables() -> None:
    assert {"namespace", "deployment"} <= set(variables(dashboards()["rag-kubernetes"]))


def test_every_query_parses() -> None:
    for query in dashboard_queries() + alert_queries():
        query.metrics()  # raises on a syntax error or a variable with no test value


def test_a_broken_query_fails_to_parse() -> None:
    with pytest.raises(ValueError):
        PromQuery("bad", "sum(rate(x[1m])").metrics()
    with pytest.raises(ValueError, match="no test value"):
        _ = PromQuery("bad", "x{a=~\"$unknown\"}").runnable


# Which metric names exist, and which labels they carry: tests/dashboards/test_real_series.py, against the
# series a real exporter serves (not this package's constants).


# Labels whose values the app or its scrape config chooses: scrape jobs, step, pipeline and service
# names, routes. A query may group by them or filter by a variable, never name a value.
APP_NAMED_LABELS = frozenset({"job", "instance", "service", "service_name", q.STEP_NAME,
                              q.WORKFLOW, q.AGENT, q.ROUTE})
APP_NAMED_ATTRIBUTES = ("rag.step.name", "gen_ai.workflow.name", "service.name", "http.route")
# Evaluation names are a convention the docs document (record_evaluation("cites_sources", ...)).
DOCUMENTED_VALUES = frozenset({(q.EVALUATION, "cites_sources")})


def named_values(queries: list[PromQuery]) -> list[str]:
    """Every matcher of a query that names a value of an app-named label (a variable or "" is fine)."""
    return [f"{query.source}: {label} {op} {value!r}" for query in queries
            for label, op, value in query.matchers()
            if label in APP_NAMED_LABELS and value and not value.startswith("$")]


def test_no_panel_rule_or_variable_names_what_the_app_names() -> None:
    queries = dashboard_queries() + alert_queries() + variable_queries()
    assert named_values(queries) == []
    matched = {(label, value) for query in queries for label, _, value in query.matchers()}
    assert {pair for pair in matched if pair[0] == q.EVALUATION} <= DOCUMENTED_VALUES
    traceql_named = [entry.name for entry in traceql.load()
                     if re.search(r"\.(" + "|".join(map(re.escape, APP_NAMED_ATTRIBUTES)) + r")\s*(=|!=|=~|!~)",
                                  entry.query)]
    assert traceql_named == []


def test_the_name_check_sees_a_step_or_job_name() -> None:
    found = named_values([
        PromQuery("sub-steps", f'rate({q.STEP_DURATION}_count{{{q.STEP_NAME}=~"dense_encode|faiss_search"}}[1m])'),
        PromQuery("scrape", 'up{job=~"rag-chat-api|rag-retriever"}'),
        PromQuery("fine", f'rate({q.STEP_DURATION}_count{{job=~"$service", {q.STEP_NAME}!=""}}[$__rate_interval])'),
    ])
    assert found == ["sub-steps: rag_step_name Re 'dense_encode|faiss_search'",
                     "scrape: job Re 'rag-chat-api|rag-retriever'"]


def test_sub_steps_come_from_a_step_variable_filled_by_the_data() -> None:
    board = dashboards()["rag-retrieval"]
    step = variables(board)["step"]
    assert step["query"].startswith(f"label_values({q.STEP_DURATION}_count{{") and \
        step["query"].endswith(f", {q.STEP_NAME})")
    assert step["allValue"] == ".*" and step["multi"] and step["includeAll"]
    [panel] = [p for p in panels(board) if p["title"] == "p95 by step"]
    assert f'{q.STEP_NAME}=~"$step"' in panel["targets"][0]["expr"]


def test_errors_by_stage_leave_pipelines_to_their_own_panel() -> None:
    found = {query.source: query for query in dashboard_queries()}
    stages = found["rag-overview / Errors/s by stage"]
    assert (q.STEP_KIND, "NotEqual", "pipeline") in stages.matchers()
    pipelines = found["rag-overview / Failed pipelines/s"]
    assert (q.STEP_KIND, "Equal", "pipeline") in pipelines.matchers()


def test_every_need_names_queries_that_ship() -> None:
    shipped = {query.source for query in dashboard_queries() + alert_queries()}
    named = [source for need in needs.NEEDS for source in need.sources]
    assert len(named) == len(set(named))
    assert set(named) - shipped == set()
    assert needs.markdown_table() in (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8")


def test_metric_names_follow_semconv() -> None:
    assert q.STEP_DURATION == sc.prometheus_name(sc.RAG_STEP_DURATION, sc.UNIT_SECONDS) == "rag_step_duration_seconds"
    assert q.COST == "rag_cost_usd_total"


def test_traces_dashboard_runs_the_catalog() -> None:
    catalog = traceql.load()
    assert [query for _, query in traceql_queries()] == [entry.query for entry in catalog]
    assert len({entry.name for entry in catalog}) == len(catalog) >= 7


def test_traceql_uses_scoped_attributes_only() -> None:
    for entry in traceql.load():
        assert entry.attributes(), entry.name
        # An unscoped ".attr" searches every scope and is slow; the catalog always says which.
        assert " ." not in entry.query and "{." not in entry.query, entry.name


def test_the_dashboards_page_lists_the_catalog_the_alerts_and_the_panels() -> None:
    page = (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8")
    assert all(f"`{entry.name}`" in page for entry in traceql.load())
    assert all(f"`{alert.name}`" in page for alert in alerts.ALERTS)
    assert all(f"(`{uid}`)" in page for uid in dashboards())
    assert all(f"| {query.source.split(' / ', 1)[1]} |" in page for query in dashboard_queries())


# --- alert rules -----------------------------------------------------------------------------------
def rule_file() -> dict[str, Any]:
    return yaml.safe_load((RULES / "ragotel.rules.yaml").read_text())


def test_prometheus_rule_carries_the_same_groups() -> None:
    manifest = yaml.safe_load((RULES / "ragotel.prometheusrule.yaml").read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1" and manifest["kind"] == "PrometheusRule"
    assert manifest["spec"] == rule_file()


def test_every_rule_has_for_severity_stage_and_a_summary_naming_the_stage() -> None:
    rules = rule_file()["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {
        "RagChatErrorRateHigh", "RagEndToEndLatencyHigh", "RagTimeToFirstTokenHigh", "RagRetrievalLatencyHigh",
        "VllmRequestsWaiting", "VllmKvCacheNearlyFull", "GpuMemoryHigh", "RagCostSpike", "RagScrapeTargetDown"}
    for rule in rules:
        assert rule["for"] and rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].startswith(f"[{rule['labels']['stage']}] "), rule["alert"]
        assert rule["annotations"]["dashboard_uid"] in dashboards(), rule["alert"]


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load((ROOT / "dashboards" / "rules_test.yaml").read_text())["tests"]
    outcomes: dict[str, set[bool]] = {}
    for case in tests:
        for check in case["alert_rule_test"]:
            outcomes.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    assert outcomes == {alert.name: {True, False} for alert in alerts.ALERTS}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: scripts/install_tools.sh installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


def test_promtool_check_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES / "ragotel.rules.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alerts.ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run([promtool(), "test", "rules", "rules_test.yaml"], cwd=ROOT / "dashboards",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# --- both GenAI modes -----------------------------------------------------------------------------
def _scraped(metric: str, unit: str, *, counter: bool = False) -> str:
    return sc.prometheus_name(metric, unit, counter=counter)


# What each metric of the default mode is called under gen_ai_latest_experimental, as scraped (from semconv,
# not from the dashboards' own constants).
LATEST_NAMES = {
    _scraped(sc.GEN_AI_CLIENT_OPERATION_DURATION, sc.UNIT_SECONDS):
        {_scraped(sc.GEN_AI_CLIENT_INFERENCE_DURATION, sc.UNIT_SECONDS),
         _scraped(sc.GEN_AI_CLIENT_EMBEDDINGS_DURATION, sc.UNIT_SECONDS),
         _scraped(sc.GEN_AI_RETRIEVAL_DURATION, sc.UNIT_SECONDS)},
    _scraped(sc.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK, sc.UNIT_SECONDS):
        {_scraped(sc.GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK, sc.UNIT_SECONDS)},
    _scraped(sc.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK, sc.UNIT_SECONDS):
        {_scraped(sc.GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK, sc.UNIT_SECONDS)},
    _scraped(sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.UNIT_TOKEN):
        {_scraped(sc.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS, sc.UNIT_TOKEN, counter=True),
         _scraped(sc.GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS, sc.UNIT_TOKEN, counter=True),
         _scraped(sc.GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS, sc.UNIT_TOKEN)},
    _scraped(sc.RAG_PIPELINE_DURATION, sc.UNIT_SECONDS):
        {_scraped(sc.GEN_AI_INVOKE_AGENT_DURATION, sc.UNIT_SECONDS)},
}


def _family(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)


@pytest.mark.parametrize("query", dashboard_queries() + alert_queries() + variable_queries(), ids=lambda q: q.source)
def test_a_query_reading_a_renamed_metric_reads_both_modes_names(query: PromQuery) -> None:
    """A panel, alert or variable has data whether the services run the default or the latest conventions."""
    read = {_family(name) for name in query.metrics()}
    for default, latest in LATEST_NAMES.items():
        if default in read or read & latest:
            assert {default, *latest} <= read, (query.source, query.expr)
    # A pipeline's name is a label of each mode's own: grouping by one only would merge the other's pipelines.
    if q.WORKFLOW in query.expr or q.AGENT in query.expr:
        assert q.WORKFLOW in query.expr and q.AGENT in query.expr, (query.source, query.expr)
