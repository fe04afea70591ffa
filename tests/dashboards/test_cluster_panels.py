"""The Kubernetes and GPU dashboards, and the alerts on the cluster exporters' series, run by a real
Prometheus on what those exporters serve: tests/dashboards/cluster_series.py (kube-state-metrics, the
kubelet's cAdvisor, node-exporter and the DCGM exporter at the deploy's versions, labelled as the deploy's
Alloy stores them), backfilled with ``promtool tsdb create-blocks-from openmetrics``.

Every query of both dashboards runs as Grafana sends it, once with each variable at "All" and once with
one value picked in each: it must return lines, each carrying what its legend prints and only what was
picked. Each alert rule reading those exporters is evaluated as the rule manager evaluates it, once per
group interval through its ``for:``, and must fire where the series say it should and nowhere else.
Prometheus and promtool are Debian packages (scripts/install_tools.sh): skipped where missing, required in CI.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
import yaml

from dashboards import exporters
from dashboards import promql as q
from dashboards.queries import GENERATED, PromQuery, alert_queries, dashboard_queries, variable_queries
from examples.reference_app.processes import ManagedProcess, free_port
from examples.reference_app.run_local import prometheus_config
from tests.dashboards import cluster_series as cluster
from tests.dashboards.test_real_series import legends, summaries, variable_labels
from tests.stack.test_dashboard_queries import series
from tests.test_local_alerting import need

pytestmark = pytest.mark.stack

BOARDS: Final = ("rag-kubernetes", "rag-gpu")
EXPORTER_NAMES: Final = frozenset().union(*exporters.DOCUMENTED.values())
# What Grafana puts in place of each variable: "All" (SUBSTITUTIONS: .*) or one value picked.
PICKED: Final = {"namespace": "rag", "deployment": "rag-chat-api", "node": cluster.GPU_NODE}
CHOICES: Final[dict[str, dict[str, str]]] = {
    "all": {}, "one": {f"${variable}": value for variable, value in PICKED.items()}}
# A deployment's pods, as the Kubernetes board selects them.
POD_OF: Final = "{}-[a-z0-9]+-[a-z0-9]+"


@dataclass(frozen=True)
class Backfilled:
    url: str
    start: float
    names: frozenset[str]

    def at(self, minute: float) -> float:
        return self.start + minute * 60


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfilled]:
    promtool, prometheus = need("promtool"), need("prometheus")
    directory = tmp_path_factory.mktemp("cluster-series")
    # Whole minutes, ending ten minutes ago: every block in the past and inside the retention.
    start = (time.time() // 60 - cluster.MINUTES - 10) * 60
    stored = cluster.series(start)
    text = directory / "series.om"
    text.write_text(cluster.openmetrics(stored, start))
    made = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(text), str(directory / "data")],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    text.unlink()
    config = directory / "prometheus.yml"
    config.write_text(prometheus_config({}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess("prometheus", [prometheus, f"--config.file={config}",
                                       f"--storage.tsdb.path={directory / 'data'}",
                                       f"--web.listen-address=127.0.0.1:{port}"],
                        ready_url=f"{url}/-/ready", log_path=directory / "prometheus.log", startup_timeout=60):
        yield Backfilled(url, start, frozenset(s.name for s in stored))


def board_queries() -> list[PromQuery]:
    return [query for query in dashboard_queries() if query.source.split(" / ")[0] in BOARDS]


def board_variables() -> list[PromQuery]:
    return [query for query in variable_queries() if query.source.split(" / ")[0] in BOARDS]


def rules_on_exporters() -> set[str]:
    return {query.source.removeprefix("alert ") for query in alert_queries() if query.metrics() & EXPORTER_NAMES}


# --- the series are the exporters', the scrape the deploy's -------------------------------------------
def test_the_series_are_the_exporters_and_every_name_read_is_among_them(backfilled: Backfilled) -> None:
    served = {f"{q.HTTP_DURATION}_count", "up"}  # the app's requests (App requests/s) and the scrape's
    assert backfilled.names - served <= EXPORTER_NAMES
    for query in board_queries() + board_variables():
        assert query.metrics() <= backfilled.names, query.source
    for query in alert_queries():
        assert query.metrics() & EXPORTER_NAMES <= backfilled.names, query.source


def test_the_scrape_modelled_is_the_deploy_s() -> None:
    """Every label Alloy's pod discovery sets is set here too (and nothing else), and ``honor_labels`` is
    read from deploy/alloy/kubernetes.alloy: exporters that describe other pods keep their labels."""
    scrape = cluster.annotated_scrape()
    for pod in cluster.PODS:
        assert set(cluster.pod_target(pod)) - {"instance"} <= scrape.relabeled
    assert set(cluster.pod_target(cluster.PODS[0])) - {"instance"} == scrape.relabeled
    assert scrape.honor_labels, "kube-state-metrics' and DCGM's namespace/pod/container would become exported_*"


# --- panels and variables ------------------------------------------------------------------------------
def label_values(url: str, label: str, selector: str, at: float) -> set[str]:
    """What Grafana lists for ``label_values(selector, label)`` over the hour before ``at``."""
    response = httpx.get(f"{url}/api/v1/label/{label}/values",
                         params={"match[]": selector, "start": at - 3600, "end": at}, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{selector}: {body}"
    return set(body["data"])


@pytest.mark.parametrize("choice", CHOICES)
def test_each_variable_lists_the_cluster_s_values(backfilled: Backfilled, choice: str) -> None:
    expected = {"namespace": {namespace for namespace, _ in cluster.DEPLOYMENTS},
                "deployment": {deployment for namespace, deployment in cluster.DEPLOYMENTS
                               if choice == "all" or namespace == PICKED["namespace"]},
                "node": {cluster.GPU_NODE}}
    listed = variable_labels()
    variables = board_variables()
    assert {query.source.rsplit("$", 1)[1] for query in variables} == set(PICKED)
    for query in variables:
        (label,) = listed[query.source]
        found = label_values(backfilled.url, label, query.expand(CHOICES[choice]), backfilled.at(cluster.PANELS_AT))
        assert found == expected[query.source.rsplit("$", 1)[1]], query.source


def picked_problems(query: PromQuery, labels: Mapping[str, str]) -> list[str]:
    """What a line of a query with one value picked per variable shows that was not picked."""
    problems = [f"{name}={labels[name]!r}" for name, value in PICKED.items()
                if f"${name}" in query.expr and name in labels and labels[name] != value]
    pod = labels.get("pod")
    if "$deployment" in query.expr and pod and not re.fullmatch(POD_OF.format(PICKED["deployment"]), pod):
        problems.append(f"pod={pod!r}")
    return problems


@pytest.mark.parametrize("choice", CHOICES)
def test_every_panel_returns_lines_of_what_was_picked(backfilled: Backfilled, choice: str) -> None:
    queries, printed = board_queries(), legends()
    assert len(queries) >= 20 and {query.source.split(" / ")[0] for query in queries} == set(BOARDS)
    problems = []
    for query in queries:
        expr = query.expand(CHOICES[choice])
        lines = series(backfilled.url, expr, backfilled.at(cluster.PANELS_AT))
        if not lines:
            problems.append(f"{query.source}: no data: {expr}")
        for line in lines:
            labels = line["metric"]
            unprinted = [label for label in printed[f"{query.source} / {query.expr}"] if not labels.get(label)]
            if unprinted:
                problems.append(f"{query.source}: the legend prints {unprinted}, absent from {labels}")
            if choice == "one" and (shown := picked_problems(query, labels)):
                problems.append(f"{query.source}: {', '.join(shown)} shown, not picked: {expr}")
    assert problems == []


def values(backfilled: Backfilled, source: str, choice: str, by: str = "") -> dict[str, float]:
    """The value of each line of the panel's first query, keyed by its ``by`` label."""
    query = next(query for query in board_queries() if query.source == source)
    lines = series(backfilled.url, query.expand(CHOICES[choice]), backfilled.at(cluster.PANELS_AT))
    return {line["metric"].get(by, ""): float(line["value"][1]) for line in lines}


def test_panels_count_what_the_cluster_runs(backfilled: Backfilled) -> None:
    deployments = {deployment for _, deployment in cluster.DEPLOYMENTS}
    assert values(backfilled, "rag-kubernetes / Deployments", "all") == {"": len(deployments)}
    assert values(backfilled, "rag-kubernetes / Deployments", "one") == {"": 1}
    assert values(backfilled, "rag-kubernetes / Running pods", "all") == {"": len(cluster.PODS)}
    in_namespace = [pod for pod in cluster.PODS if pod.namespace == PICKED["namespace"]]
    assert values(backfilled, "rag-kubernetes / Running pods", "one") == {"": len(in_namespace)}
    replicas = [pod for pod in cluster.PODS if pod.deployment == PICKED["deployment"]]
    assert values(backfilled, "rag-kubernetes / Replicas: desired / ready / available", "one", "deployment") == {
        PICKED["deployment"]: len(replicas)}
    assert set(values(backfilled, "rag-kubernetes / CPU by pod", "one", "pod")) == {pod.name for pod in replicas}
    memory = values(backfilled, "rag-kubernetes / Memory by namespace", "all", "namespace")
    assert set(memory) == {pod.namespace for pod in cluster.PODS}  # the node's own cgroups are not a namespace
    shares = values(backfilled, "rag-gpu / Framebuffer used share", "one", "gpu")
    assert {gpu: round(share, 2) for gpu, share in shares.items()} == {
        str(gpu.index): gpu.used_share(cluster.PANELS_AT) for gpu in cluster.GPUS}


# --- alerts --------------------------------------------------------------------------------------------
def _seconds(duration: str) -> int:
    return sum(int(amount) * {"s": 1, "m": 60, "h": 3600}[unit] for amount, unit in re.findall(r"(\d+)([smh])",
                                                                                                duration))


def shipped_rule(name: str) -> tuple[dict[str, Any], int]:
    """The rule as shipped (generated/rules) and its group's evaluation interval in seconds."""
    groups = yaml.safe_load((GENERATED / "rules" / "ragotel.rules.yaml").read_text())["groups"]
    (found,) = [(rule, _seconds(group["interval"])) for group in groups for rule in group["rules"]
                if rule.get("alert") == name]
    return found


def firing(backfilled: Backfilled, name: str, minute: float) -> list[dict[str, str]]:
    """The label sets the rule fires for at that minute: its expression true at every evaluation of the
    ``for:`` before it (the rule manager's pending → firing), evaluated once per group interval."""
    rule, interval = shipped_rule(name)
    hold, at = _seconds(rule["for"]), backfilled.at(minute)
    response = httpx.get(f"{backfilled.url}/api/v1/query_range", timeout=30,
                         params={"query": rule["expr"], "start": at - hold, "end": at, "step": interval})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{rule['expr']}: {body}"
    return [line["metric"] for line in body["data"]["result"] if len(line["values"]) == hold // interval + 1]


GPU_0: Final = {"hostname": cluster.GPU_NODE, "gpu": "0"}
GPU_1: Final = {"hostname": cluster.GPU_NODE, "gpu": "1"}
DCGM_TARGET: Final = {"job": "dcgm-exporter", "node": cluster.GPU_NODE}
NODE_EXPORTER_TARGET: Final = {"job": "node-exporter", "node": cluster.CPU_NODE}
# (rule, minute, what fires then): each identified by the labels given.
ALERT_CASES: Final[tuple[tuple[str, int, list[dict[str, str]]], ...]] = (
    ("GpuMemoryHigh", cluster.GPU0_FULL_FROM - 1, []),  # vLLM's 90%: not above it
    ("GpuMemoryHigh", cluster.GPU0_FULL_FROM + 4, []),  # 96% for four minutes: pending
    ("GpuMemoryHigh", cluster.GPU0_FULL_FROM + 5, [GPU_0]),
    ("GpuMemoryHigh", cluster.GPU1_SPIKE[1] - 1, [GPU_0]),  # the idle GPU's three minutes at 95%: pending
    ("GpuMemoryHigh", cluster.PANELS_AT, [GPU_0]),
    ("RagScrapeTargetDown", cluster.NODE_EXPORTER_GAP[0], []),  # one failed minute: pending
    ("RagScrapeTargetDown", cluster.NODE_EXPORTER_GAP[1] + 1, []),
    ("RagScrapeTargetDown", cluster.DCGM_DOWN_FROM + 1, []),
    ("RagScrapeTargetDown", cluster.DCGM_DOWN_FROM + 2, [DCGM_TARGET]),
    ("RagScrapeTargetDown", cluster.MINUTES, [DCGM_TARGET]),
)


# (rule, minute, what its condition holds for then): the quiet cases above that only ``for:`` keeps quiet.
PENDING_CASES: Final[tuple[tuple[str, int, list[dict[str, str]]], ...]] = (
    ("GpuMemoryHigh", cluster.GPU0_FULL_FROM + 4, [GPU_0]),
    ("GpuMemoryHigh", cluster.GPU1_SPIKE[1] - 1, [GPU_0, GPU_1]),
    ("RagScrapeTargetDown", cluster.NODE_EXPORTER_GAP[0], [NODE_EXPORTER_TARGET]),
    ("RagScrapeTargetDown", cluster.DCGM_DOWN_FROM + 1, [DCGM_TARGET]),
)


def identified(found: list[dict[str, str]], expected: list[dict[str, str]]) -> tuple[list[tuple[str, ...]], ...]:
    """Both lists of label sets as the labels ``expected`` names, sorted: comparable."""
    keys = sorted({key for labels in expected for key in labels})
    return (sorted(tuple(labels.get(key, "") for key in keys) for labels in found),
            sorted(tuple(labels[key] for key in keys) for labels in expected))


def test_every_rule_on_the_exporters_series_has_cases() -> None:
    outcomes: dict[str, set[bool]] = {}
    for name, _, fired in ALERT_CASES:
        outcomes.setdefault(name, set()).add(bool(fired))
    assert set(outcomes) == rules_on_exporters()
    assert all(found == {True, False} for found in outcomes.values()), outcomes


@pytest.mark.parametrize(("name", "minute", "expected"), ALERT_CASES,
                         ids=[f"{name}-{at}m-{'fires' if fired else 'quiet'}" for name, at, fired in ALERT_CASES])
def test_rule_fires_where_the_series_say(backfilled: Backfilled, name: str, minute: int,
                                         expected: list[dict[str, str]]) -> None:
    fired = firing(backfilled, name, minute)
    got, wanted = identified(fired, expected)
    assert got == wanted, fired
    templated = summaries()[f"alert {name}"]  # the labels its summary and description print
    for labels in fired:
        assert all(labels.get(label) for label in templated), (templated, labels)


@pytest.mark.parametrize(("name", "minute", "expected"), PENDING_CASES,
                         ids=[f"{name}-{at}m" for name, at, _ in PENDING_CASES])
def test_rule_condition_holds_where_only_for_keeps_it_quiet(backfilled: Backfilled, name: str, minute: int,
                                                           expected: list[dict[str, str]]) -> None:
    rule, _ = shipped_rule(name)
    held = [line["metric"] for line in series(backfilled.url, rule["expr"], backfilled.at(minute))]
    got, wanted = identified(held, expected)
    assert got == wanted, held
