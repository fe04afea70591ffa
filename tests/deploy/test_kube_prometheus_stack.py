"""deploy/k8s/components/kube-prometheus-stack: added to each overlay, it renders ServiceMonitors, the
PrometheusRule, NetworkPolicies and a sidecar dashboards ConfigMap that the Prometheus Operator's CRD
schemas accept (cloudcoil's models of prometheus-operator's CRDs) and that select what the stack
runs; the scrape-health alert fires for the job names those ServiceMonitors give Prometheus."""

from __future__ import annotations

import copy
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as operator
from pydantic import ValidationError

from dashboards import alerts
from tests.dashboards.test_generated import promtool
from tests.deploy.conftest import DEPLOY, OVERLAYS, ROOT, Doc, find, render
from tests.deploy.netpol import Pod, Policies, pods_of
from tests.deploy.test_k8s import validate

COMPONENT = DEPLOY / "k8s" / "components" / "kube-prometheus-stack"
GENERATED = ROOT / "dashboards" / "generated"
RELEASE = "kube-prometheus-stack"
MONITORING = "monitoring"
SCRAPED = {"rag-chat-api": 8080, "rag-retriever": 8001, "vllm": 8000}
# What the seed setups scrape at (ServiceMonitor interval / scrapeTimeout).
INTERVAL, TIMEOUT = "15s", "10s"
[SCRAPE_DOWN] = [alert for alert in alerts.ALERTS if alert.name == "RagScrapeTargetDown"]
PROMETHEUS_POD = Pod("prometheus-kube-prometheus-stack-prometheus-0", MONITORING,
                     (("app.kubernetes.io/name", "prometheus"),), (("kubernetes.io/metadata.name", MONITORING),))


def with_component(tmp: Path, overlay: str, extra: str = "") -> list[Doc]:
    """``overlay`` with the component added, as a user's kustomization would, plus ``extra`` lines."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(OVERLAYS[overlay], tmp)}\n"
        f"components:\n  - {os.path.relpath(COMPONENT, tmp)}\n" + extra)
    return render(tmp)


@pytest.fixture(scope="module", params=["local-cpu", "gpu"])
def docs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Doc]:
    return with_component(tmp_path_factory.mktemp(request.param), request.param)


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def crd_problems(doc: Doc) -> list[str]:
    """What prometheus-operator's CRD schema rejects: wrong types and patterns, missing fields, and (as
    the round trip through the model drops them) fields the schema does not have."""
    try:
        parsed = getattr(operator, doc["kind"]).model_validate(doc)
    except ValidationError as error:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {e['loc']}: {e['msg']}" for e in error.errors()]
    if parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") != doc:
        return [f"{doc['kind']}/{doc['metadata']['name']}: a field the CRD does not define"]
    return []


def test_operator_objects_validate_against_the_crd_schemas(docs: list[Doc]) -> None:
    objects = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert sorted(d["kind"] for d in objects) == ["PrometheusRule", "ServiceMonitor", "ServiceMonitor",
                                                  "ServiceMonitor"]
    assert [problem for d in objects for problem in crd_problems(d)] == []
    # The rest (NetworkPolicies, the ConfigMap) against the Kubernetes API schemas.
    added = [d for d in docs if d["metadata"]["name"].startswith(("kube-prometheus-stack-", "ragotel-grafana-"))]
    assert sorted(d["kind"] for d in added) == ["ConfigMap", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy"]
    for doc in added:
        validate(doc)


def test_the_schema_check_rejects_a_misspelt_field_and_a_bad_duration(docs: list[Doc]) -> None:
    monitor = copy.deepcopy(of_kind(docs, "ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["scrapeTimout"] = TIMEOUT
    assert crd_problems(monitor) == [f"ServiceMonitor/{monitor['metadata']['name']}: a field the CRD does not define"]
    del monitor["spec"]["endpoints"][0]["scrapeTimout"]
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    assert crd_problems(monitor) and "interval" in crd_problems(monitor)[0]


def selected_service(docs: list[Doc], monitor: Doc) -> Doc:
    """The one Service a ServiceMonitor selects: its namespace (no namespaceSelector), matching labels."""
    assert "namespaceSelector" not in monitor["spec"], "the monitor watches its own namespace"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    [service] = [s for s in of_kind(docs, "Service") if s["metadata"]["namespace"] == monitor["metadata"]["namespace"]
                 and wanted.items() <= s["metadata"].get("labels", {}).items()]
    return service


def job_name(docs: list[Doc], monitor: Doc) -> str:
    """The job label the operator gives the targets: the Service's ``jobLabel`` label, else its name."""
    service = selected_service(docs, monitor)
    label = monitor["spec"].get("jobLabel")
    return str(service["metadata"]["labels"].get(label) if label else service["metadata"]["name"])


def test_service_monitors_scrape_each_service_where_its_metrics_are(docs: list[Doc]) -> None:
    scraped = {}
    for monitor in of_kind(docs, "ServiceMonitor"):
        service = selected_service(docs, monitor)
        [endpoint] = monitor["spec"]["endpoints"]
        [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        # The Service's target port is a port the selected pods' container declares.
        [workload] = [w for w in of_kind(docs, "Deployment")
                      if service["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        declared = {p.get("name"): p["containerPort"] for c in workload["spec"]["template"]["spec"]["containers"]
                    for p in c.get("ports", [])}
        assert port["targetPort"] in declared, service["metadata"]["name"]
        assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == ("/metrics", INTERVAL, TIMEOUT)
        scraped[service["metadata"]["name"]] = declared[port["targetPort"]]
    assert scraped == SCRAPED


def test_the_operator_selects_everything_by_the_release_label(docs: list[Doc]) -> None:
    objects = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["metadata"]["labels"]["release"] for d in objects} == {RELEASE}
    assert not [d for d in docs if d["metadata"].get("labels", {}).get("release")
                and not d["apiVersion"].startswith("monitoring.coreos.com/")], "only the operator's objects"


def test_another_release_name_is_one_patch(tmp_path: Path) -> None:
    patch = textwrap.dedent("""\
        patches:
          - target:
              group: monitoring.coreos.com
            patch: |-
              - op: replace
                path: /metadata/labels/release
                value: kps
        """)
    docs = with_component(tmp_path, "local-cpu", patch)
    assert {d["metadata"]["labels"]["release"] for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")} \
        == {"kps"}


def test_the_prometheus_rule_is_the_generated_rules(docs: list[Doc]) -> None:
    [rule] = of_kind(docs, "PrometheusRule")
    assert rule["spec"] == alerts.rule_file()
    assert rule["metadata"]["namespace"] == "rag"


def test_dashboards_reach_the_grafana_sidecar(docs: list[Doc]) -> None:
    configmap = find(docs, "ConfigMap", "ragotel-grafana-dashboards", MONITORING)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"] == {p.name: p.read_text() for p in GENERATED.glob("*.json")}
    assert sum(len(v.encode()) for v in configmap["data"].values()) < 1024 * 1024
    # The base's own Grafana keeps its copy, unlabelled for the sidecar.
    assert "grafana_dashboard" not in find(docs, "ConfigMap", "grafana-dashboards", "rag")["metadata"]["labels"]


def test_prometheus_reaches_each_metrics_port_and_nothing_else(docs: list[Doc]) -> None:
    policies, pods = Policies.of(docs), pods_of(docs)
    for name, pod in pods.items():
        for _, number, protocol in pod.ports:
            allowed = policies.allows(PROMETHEUS_POD, pod, number, protocol)
            if pod.namespace == "rag" and SCRAPED.get(name) == number:
                assert allowed, f"Prometheus cannot scrape {name}:{number}"
            elif pod.namespace == "rag" and name not in ("grafana", "rag-chat-api"):  # public entry points
                assert not allowed, f"Prometheus reaches {name}:{number}"


def test_without_the_policies_prometheus_is_shut_out(docs: list[Doc]) -> None:
    kept = [d for d in docs if not d["metadata"]["name"].startswith("kube-prometheus-stack-")]
    pods = pods_of(kept)
    assert not Policies.of(kept).allows(PROMETHEUS_POD, pods["rag-retriever"], SCRAPED["rag-retriever"])


# --- the scrape-health alert for the jobs these ServiceMonitors make -------------------------------
def scrape_down_cases(docs: list[Doc]) -> dict[str, Any]:
    """A promtool test: each monitored service's target down from minute 3, with the labels the operator
    puts on its targets, after it served its usual series (ragotel's target_info, vLLM's gauge)."""
    cases = []
    for monitor in of_kind(docs, "ServiceMonitor"):
        service = selected_service(docs, monitor)
        job, name = job_name(docs, monitor), service["metadata"]["name"]
        target = {"namespace": service["metadata"]["namespace"], "service": name, "endpoint": "http",
                  "pod": f"{name}-7d9f8b6c5-x2x4z", "container": name, "job": job,
                  "instance": f"10.244.0.9:{service['spec']['ports'][0]['port']}"}
        labels = ", ".join(f'{k}="{v}"' for k, v in target.items())
        served = (f'vllm:num_requests_running{{{labels}, model_name="m", engine="0"}}' if "vllm" in name
                  else f'target_info{{{labels}, service_name="{name}", telemetry_distro_name="ragotel"}}')
        cases.append({
            "name": f"{job} down", "interval": "1m",
            "input_series": [{"series": f"up{{{labels}}}", "values": "1x3 0x10"}, {"series": served, "values": "1x3"}],
            "alert_rule_test": [{"eval_time": "10m", "alertname": "RagScrapeTargetDown", "exp_alerts": [{
                "exp_labels": {**target, "severity": "critical", "stage": "scrape"},
                "exp_annotations": {"summary": f"[scrape] {job} target {target['instance']} is down (scrape failed)",
                                    "description": SCRAPE_DOWN.description, "dashboard_uid": SCRAPE_DOWN.dashboard},
            }]}],
        })
    return {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": cases}


def promtool_test(tmp: Path, docs: list[Doc], cases: dict[str, Any]) -> tuple[int, str]:
    """``promtool test rules`` of ``cases`` against the rendered PrometheusRule's groups."""
    [rule] = of_kind(docs, "PrometheusRule")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    (tmp / "test.yaml").write_text(yaml.safe_dump(cases))
    result = subprocess.run([promtool(), "test", "rules", "test.yaml"], cwd=tmp, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("prefix", ["", "shop-"])
def test_scrape_health_fires_for_the_jobs_the_service_monitors_make(tmp_path: Path, prefix: str) -> None:
    """As rendered (jobs rag-chat-api, rag-retriever, vllm) and with every name prefixed as a user's
    overlay might (jobs shop-rag-chat-api, ...): the alert names each job that goes down."""
    docs = with_component(tmp_path / "render", "local-cpu", f"namePrefix: {prefix}\n" if prefix else "")
    jobs = sorted(job_name(docs, m) for m in of_kind(docs, "ServiceMonitor"))
    assert jobs == sorted(prefix + name for name in SCRAPED)
    code, output = promtool_test(tmp_path / "promtool", docs, scrape_down_cases(docs))
    assert code == 0 and "SUCCESS" in output, output


def test_the_promtool_check_fails_for_a_job_the_rule_does_not_watch(tmp_path: Path,
                                                                    docs: list[Doc]) -> None:
    """The check can fail: a target that never served any watched series is not the alert's."""
    cases = scrape_down_cases(docs)
    for case in cases["tests"]:
        case["input_series"] = case["input_series"][:1]  # up only
    code, output = promtool_test(tmp_path, docs, cases)
    assert code != 0 and output.count("got:[]") == len(cases["tests"]), output
