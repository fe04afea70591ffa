"""deploy/k8s/components/kube-prometheus-stack (and its gpu/ part, with the gpu overlay): added to each
overlay, it renders ServiceMonitors, a PodMonitor for the DCGM exporter, the PrometheusRule,
NetworkPolicies, a sidecar dashboards ConfigMap and a sidecar Tempo data source that the Prometheus
Operator's CRD schemas (cloudcoil's models of prometheus-operator's CRDs) and the Kubernetes API accept,
that select what the stack runs and land where the chart's Prometheus and Grafana (chart 88.5.3 defaults)
find them; the chart's release name and namespace are one setting; the scrape-health alert fires for the
job names those monitors give Prometheus."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as operator
from pydantic import ValidationError

from dashboards import alerts
from tests.dashboards.test_generated import promtool
from tests.deploy.conftest import (
    COMPONENTS,
    K8S_BASE,
    ROOT,
    Doc,
    build,
    find,
    load_yaml,
    render_with,
    user_kustomization,
)
from tests.deploy.netpol import Pod, Policies, pods_of
from tests.deploy.test_k8s import validate
from tests.deploy.test_networkpolicies import policy_mismatches

COMPONENT = COMPONENTS / "kube-prometheus-stack"
GPU_COMPONENT = COMPONENT / "gpu"
VALUES = COMPONENT / "values.yaml"
GENERATED = ROOT / "dashboards" / "generated"
# The defaults of the kube-prometheus-stack settings (deploy/k8s/base/kustomization.yaml).
RELEASE = "kube-prometheus-stack"
MONITORING = "monitoring"
# What the chart's Grafana sidecars look for, kube-prometheus-stack 88.5.3 (its values.yaml and the grafana
# chart 12.11.1 it pulls in): label and value, and where (None: Grafana's own namespace only).
DASHBOARDS_SIDECAR = ("grafana_dashboard", "1", "ALL")
DATASOURCES_SIDECAR = ("grafana_datasource", "1", None)
SCRAPED = {"rag-chat-api": 8080, "rag-retriever": 8001, "vllm": 8000}
DCGM_PORT = 9400
# What the seed setups scrape at (ServiceMonitor interval / scrapeTimeout).
INTERVAL, TIMEOUT = "15s", "10s"
[SCRAPE_DOWN] = [alert for alert in alerts.ALERTS if alert.name == "RagScrapeTargetDown"]


def chart_pod(name: str, namespace: str = MONITORING) -> Pod:
    """A pod of the chart (its Prometheus, its Grafana) as policies see it."""
    return Pod(f"{name}-0", namespace, (("app.kubernetes.io/name", name),),
               (("kubernetes.io/metadata.name", namespace),))


PROMETHEUS_POD, GRAFANA_POD = chart_pod("prometheus"), chart_pod("grafana")


def components_for(overlay: str) -> list[Path]:
    return [COMPONENT, *([GPU_COMPONENT] if overlay == "gpu" else [])]


def with_component(tmp: Path, overlay: str, extra: str = "") -> list[Doc]:
    """``overlay`` with the component (and, on the gpu overlay, its gpu part) added, as a user's
    kustomization would, plus ``extra`` lines."""
    return render_with(tmp, overlay, components_for(overlay), extra)


@pytest.fixture(scope="module", params=["local-cpu", "gpu"])
def docs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Doc]:
    return with_component(tmp_path_factory.mktemp(request.param), request.param)


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def operator_objects(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]


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


def added_by_the_component(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["metadata"]["name"].startswith(("kube-prometheus-stack-", "ragotel-grafana-"))]


def test_operator_objects_validate_against_the_crd_schemas(docs: list[Doc]) -> None:
    objects = operator_objects(docs)
    gpu = any(d["metadata"]["name"] == "dcgm-exporter" for d in of_kind(docs, "DaemonSet"))
    assert sorted(d["kind"] for d in objects) == [*(["PodMonitor"] if gpu else []), "PrometheusRule",
                                                  "ServiceMonitor", "ServiceMonitor", "ServiceMonitor"]
    assert [problem for d in objects for problem in crd_problems(d)] == []
    # The rest (NetworkPolicies, the ConfigMaps) against the Kubernetes API schemas.
    added = added_by_the_component(docs)
    assert sorted(d["kind"] for d in added) == ["ConfigMap", "ConfigMap", *["NetworkPolicy"] * (5 if gpu else 4)]
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


def selected_workloads(docs: list[Doc], monitor: Doc) -> list[Doc]:
    """The workloads whose pods a PodMonitor selects: its namespace (no namespaceSelector), matching labels."""
    assert "namespaceSelector" not in monitor["spec"], "the monitor watches its own namespace"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    return [w for w in docs if w["kind"] in ("Deployment", "StatefulSet", "DaemonSet")
            and w["metadata"]["namespace"] == monitor["metadata"]["namespace"]
            and wanted.items() <= w["spec"]["template"]["metadata"]["labels"].items()]


def job_name(docs: list[Doc], monitor: Doc) -> str:
    """The job label the operator gives the targets: a ServiceMonitor's Service's ``jobLabel`` label, else its
    name; a PodMonitor's pods' ``jobLabel`` label, else namespace/name of the monitor."""
    label = monitor["spec"].get("jobLabel")
    if monitor["kind"] == "PodMonitor":
        [workload] = selected_workloads(docs, monitor)
        labels = workload["spec"]["template"]["metadata"]["labels"]
        return str(labels[label]) if label else f"{monitor['metadata']['namespace']}/{monitor['metadata']['name']}"
    service = selected_service(docs, monitor)
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
    assert {d["metadata"]["labels"]["release"] for d in operator_objects(docs)} == {RELEASE}
    assert not [d for d in docs if d["metadata"].get("labels", {}).get("release")
                and not d["apiVersion"].startswith("monitoring.coreos.com/")], "only the operator's objects"


# --- 4. the release name and the chart's namespace: one setting ------------------------------------
SETTINGS = textwrap.dedent("""\
    configMapGenerator:
      - name: kube-prometheus-stack
        namespace: rag
        behavior: merge
        literals:
          - release=kps
          - namespace=observability
    """)


@pytest.mark.parametrize("overlay", ["local-cpu", "gpu"])
def test_another_release_and_namespace_are_one_setting(tmp_path: Path, overlay: str) -> None:
    """The documented way (deploy/README.md): the settings merged in the user's kustomization reach every
    monitor and rule, those of the gpu part included, and every place the chart's namespace is named."""
    docs = with_component(tmp_path, overlay, SETTINGS)
    objects = operator_objects(docs)
    assert {d["kind"] for d in objects} >= {"ServiceMonitor", "PrometheusRule", *(["PodMonitor"] * (overlay == "gpu"))}
    assert {d["metadata"]["name"]: d["metadata"]["labels"]["release"] for d in objects} == \
        {d["metadata"]["name"]: "kps" for d in objects}
    policies = [d for d in added_by_the_component(docs) if d["kind"] == "NetworkPolicy"]
    admitted = {p["metadata"]["name"]: {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                                        for rule in p["spec"]["ingress"] for peer in rule["from"]} for p in policies}
    assert admitted == {name: {"observability"} for name in admitted}
    datasource = find(docs, "ConfigMap", "ragotel-grafana-datasource-tempo")
    assert datasource["metadata"]["namespace"] == "observability"
    # No value anywhere is still a default.
    assert not [v for d in added_by_the_component(docs) + objects for v in values_of(d) if v in (RELEASE, MONITORING)]
    # And the settings themselves are never applied.
    assert not [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kube-prometheus-stack"]


def values_of(node: Any) -> list[Any]:
    """Every scalar in a parsed document."""
    if isinstance(node, dict):
        return [v for value in node.values() for v in values_of(value)]
    if isinstance(node, list):
        return [v for value in node for v in values_of(value)]
    return [node]


def test_the_settings_default_to_the_charts_usual_install() -> None:
    [entry] = [g for g in load_yaml(K8S_BASE / "kustomization.yaml")["configMapGenerator"]
               if g["name"] == "kube-prometheus-stack"]
    assert sorted(entry["literals"]) == [f"namespace={MONITORING}", f"release={RELEASE}"]
    assert entry["options"]["annotations"] == {"config.kubernetes.io/local-config": "true"}


def test_the_prometheus_rule_is_the_generated_rules(docs: list[Doc]) -> None:
    [rule] = of_kind(docs, "PrometheusRule")
    assert rule["spec"] == alerts.rule_file()
    assert rule["metadata"]["namespace"] == "rag"


# --- 1. the dashboards, where the chart's dashboards sidecar looks -----------------------------------
def created_namespaces(docs: list[Doc]) -> set[str]:
    return {d["metadata"]["name"] for d in of_kind(docs, "Namespace")}


def test_dashboards_reach_the_grafana_sidecar(docs: list[Doc]) -> None:
    label, value, searched = DASHBOARDS_SIDECAR
    [configmap] = [d for d in of_kind(docs, "ConfigMap") if d["metadata"].get("labels", {}).get(label) == value]
    assert configmap["metadata"]["name"] == "ragotel-grafana-dashboards"
    # In a namespace the stack creates: the sidecar looks in every one.
    assert searched == "ALL" and configmap["metadata"]["namespace"] in created_namespaces(docs)
    assert configmap["data"] == {p.name: p.read_text() for p in GENERATED.glob("*.json")}
    assert sum(len(v.encode()) for v in configmap["data"].values()) < 1024 * 1024
    # The base's own Grafana keeps its copy, unlabelled for the sidecar.
    assert label not in find(docs, "ConfigMap", "grafana-dashboards", "rag")["metadata"]["labels"]


def test_the_component_adds_nothing_to_a_namespace_nobody_creates(docs: list[Doc]) -> None:
    """Every object lives in a namespace the stack creates, but for the data source, which goes to the
    chart's (Grafana's) namespace, the one place its datasource sidecar looks."""
    elsewhere = {(d["kind"], d["metadata"]["name"], d["metadata"]["namespace"]) for d in docs
                 if d["metadata"].get("namespace") not in (None, *created_namespaces(docs))}
    assert elsewhere == {("ConfigMap", "ragotel-grafana-datasource-tempo", MONITORING)}


# --- 2. Tempo as a data source of the chart's Grafana, and exemplar links ---------------------------
def dashboards_tempo_uid() -> str:
    """The Tempo data source the traces dashboard opens by default (its `tempo` variable)."""
    board = json.loads((K8S_BASE / "dashboards" / "rag-traces.json").read_text())
    [variable] = [v for v in board["templating"]["list"] if v["type"] == "datasource" and v["query"] == "tempo"]
    return str(variable["current"]["value"])


def provisioned(configmap: Doc) -> list[dict[str, Any]]:
    [text] = configmap["data"].values()
    provisioning = yaml.safe_load(text)
    assert provisioning["apiVersion"] == 1
    return list(provisioning["datasources"])


def test_the_tempo_data_source_reaches_the_sidecar_and_tempo(docs: list[Doc]) -> None:
    label, value, searched = DATASOURCES_SIDECAR
    [configmap] = [d for d in of_kind(docs, "ConfigMap") if d["metadata"].get("labels", {}).get(label) == value]
    assert searched is None and configmap["metadata"]["namespace"] == MONITORING, "Grafana's own namespace"
    [source] = provisioned(configmap)
    assert (source["type"], source["uid"]) == ("tempo", dashboards_tempo_uid())
    assert "$" not in yaml.safe_dump(source), "Grafana would expand it from its environment"
    # The URL is the stack's Tempo Service and its query port, from another namespace.
    url = urlsplit(source["url"])
    service_name, namespace, svc = url.hostname.split(".")
    assert (url.scheme, svc) == ("http", "svc")
    service = find(docs, "Service", service_name, namespace)
    [port] = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    tempo = pods_of(docs)["tempo"]
    assert tempo.port_number(port["targetPort"], "TCP") == 3200
    # Its NetworkPolicy lets the chart's Grafana reach that port, and nothing else of the stack.
    policies, pods = Policies.of(docs), pods_of(docs)
    assert policies.allows(GRAFANA_POD, tempo, 3200)
    for name, pod in pods.items():
        for _, number, protocol in pod.ports:
            if (name, number) != ("tempo", 3200) and name not in ("grafana", "rag-chat-api") and not pod.host_network:
                assert not policies.allows(GRAFANA_POD, pod, number, protocol), f"Grafana reaches {name}:{number}"


def ragotel_exemplar_labels() -> set[str]:
    """The labels ragotel's /metrics gives an exemplar in an OpenMetrics scrape."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest

    from ragotel._core.prometheus import ExemplarPrometheusReader

    registry = CollectorRegistry(auto_describe=True)
    provider = MeterProvider(metric_readers=[ExemplarPrometheusReader(registry=registry)])
    histogram = provider.get_meter("m").create_histogram("rag.step.duration", unit="s")
    with TracerProvider().get_tracer("t").start_as_current_span("step"):
        histogram.record(0.2)
    exposition = generate_latest(registry).decode()
    provider.shutdown()
    exemplars = re.findall(r"_bucket\{[^}]*\} \S+ # \{([^}]*)\}", exposition)
    assert exemplars, exposition
    return {pair.split("=", 1)[0] for exemplar in exemplars for pair in exemplar.split(",")}


def test_the_values_give_exemplars_a_trace_link() -> None:
    """What the chart renders itself (its Prometheus data source, its Prometheus's feature flags) is set by
    Helm values: the component ships them (values.yaml), naming the Tempo data source it adds and the label
    ragotel writes an exemplar's trace id under."""
    values = load_yaml(VALUES)
    assert values["prometheus"]["prometheusSpec"]["enableFeatures"] == ["exemplar-storage"]
    destination = values["grafana"]["sidecar"]["datasources"]["exemplarTraceIdDestinations"]
    [tempo] = provisioned(yaml.safe_load((COMPONENT / "grafana-datasource.yaml").read_text()))
    assert destination["datasourceUid"] == tempo["uid"] == dashboards_tempo_uid()
    assert destination["traceIdLabelName"] in ragotel_exemplar_labels() == {"trace_id", "span_id"}


# --- 3. the DCGM exporter, with the gpu overlay only ------------------------------------------------
def test_the_gpu_part_scrapes_the_dcgm_exporter(tmp_path: Path) -> None:
    docs = with_component(tmp_path, "gpu")
    [monitor] = of_kind(docs, "PodMonitor")
    assert crd_problems(monitor) == []
    [exporter] = selected_workloads(docs, monitor)
    assert (exporter["kind"], exporter["metadata"]["name"]) == ("DaemonSet", "dcgm-exporter")
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    [container] = exporter["spec"]["template"]["spec"]["containers"]
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert declared[endpoint["port"]] == DCGM_PORT
    assert {e["name"]: e.get("value") for e in container["env"]}["DCGM_EXPORTER_LISTEN"] == f":{DCGM_PORT}"
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == ("/metrics", INTERVAL, TIMEOUT)
    # As Alloy scrapes annotated pods: the exporter's own namespace/pod/container labels win.
    assert endpoint["honorLabels"] is True
    # The job Alloy gives the same targets (k8s.grafana.com/job defaults to app.kubernetes.io/name).
    assert job_name(docs, monitor) == "dcgm-exporter"
    # Prometheus reaches the exporter's port, and no other port in rag-node.
    policies, pods = Policies.of(docs), pods_of(docs)
    assert policies.allows(PROMETHEUS_POD, pods["dcgm-exporter"], DCGM_PORT)
    for name, pod in pods.items():
        for _, number, protocol in pod.ports:
            if pod.namespace == "rag-node" and not pod.host_network and (name, number) != ("dcgm-exporter", DCGM_PORT):
                assert not policies.allows(PROMETHEUS_POD, pod, number, protocol), f"{name}:{number}"


def test_without_gpus_no_monitor_dangles(tmp_path: Path) -> None:
    """The CPU overlay with the component: every monitor selects something the stack runs. The gpu part
    cannot be added there: kustomize stops, naming the exporter it needs."""
    docs = with_component(tmp_path / "cpu", "local-cpu")
    assert not of_kind(docs, "PodMonitor")
    for monitor in of_kind(docs, "ServiceMonitor"):
        assert selected_service(docs, monitor)
    result = build(user_kustomization(tmp_path / "cpu-gpu", "local-cpu", [COMPONENT, GPU_COMPONENT]))
    assert result.returncode != 0 and "DaemonSet" in result.stderr and "dcgm-exporter" in result.stderr


# --- NetworkPolicies ------------------------------------------------------------------------------
def test_prometheus_reaches_each_metrics_port_and_nothing_else(docs: list[Doc]) -> None:
    policies, pods = Policies.of(docs), pods_of(docs)
    for name, pod in pods.items():
        for _, number, protocol in pod.ports:
            allowed = policies.allows(PROMETHEUS_POD, pod, number, protocol)
            if pod.namespace == "rag" and SCRAPED.get(name) == number:
                assert allowed, f"Prometheus cannot scrape {name}:{number}"
            elif pod.namespace == "rag" and name not in ("grafana", "rag-chat-api"):  # public entry points
                assert not allowed, f"Prometheus reaches {name}:{number}"


def test_the_stacks_own_flows_stay_exactly_as_they_were(docs: list[Doc]) -> None:
    """The component's policies open the stack to the chart's pods only: among the stack's own pods every
    flow it needs is still open, and no other."""
    assert policy_mismatches(docs) == ([], [])


def test_without_the_policies_prometheus_is_shut_out(docs: list[Doc]) -> None:
    kept = [d for d in docs if not d["metadata"]["name"].startswith("kube-prometheus-stack-")]
    pods = pods_of(kept)
    assert not Policies.of(kept).allows(PROMETHEUS_POD, pods["rag-retriever"], SCRAPED["rag-retriever"])
    assert not Policies.of(kept).allows(GRAFANA_POD, pods["tempo"], 3200)


# --- the scrape-health alert for the jobs these monitors make ---------------------------------------
def scrape_down_cases(docs: list[Doc]) -> dict[str, Any]:
    """A promtool test: each monitored target down from minute 3, with the labels the operator puts on
    its targets, after it served its usual series (ragotel's target_info, vLLM's gauge, DCGM's utilisation)."""
    cases = []
    for monitor in [*of_kind(docs, "ServiceMonitor"), *of_kind(docs, "PodMonitor")]:
        job = job_name(docs, monitor)
        if monitor["kind"] == "PodMonitor":
            [workload] = selected_workloads(docs, monitor)
            [endpoint] = monitor["spec"]["podMetricsEndpoints"]
            name, port = workload["metadata"]["name"], DCGM_PORT
            target = {"namespace": workload["metadata"]["namespace"], "pod": f"{name}-x2x4z", "container": name,
                      "endpoint": endpoint["port"], "job": job, "instance": f"10.244.0.9:{port}"}
        else:
            service = selected_service(docs, monitor)
            name = service["metadata"]["name"]
            target = {"namespace": service["metadata"]["namespace"], "service": name, "endpoint": "http",
                      "pod": f"{name}-7d9f8b6c5-x2x4z", "container": name, "job": job,
                      "instance": f"10.244.0.9:{service['spec']['ports'][0]['port']}"}
        labels = ", ".join(f'{k}="{v}"' for k, v in target.items())
        served = (f'vllm:num_requests_running{{{labels}, model_name="m", engine="0"}}' if "vllm" in name
                  else f'DCGM_FI_DEV_GPU_UTIL{{{labels}, gpu="0", Hostname="node-1"}}' if "dcgm" in name
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


def test_scrape_health_fires_for_the_dcgm_exporter(tmp_path: Path) -> None:
    docs = with_component(tmp_path / "render", "gpu")
    cases = scrape_down_cases(docs)
    assert "dcgm-exporter down" in [case["name"] for case in cases["tests"]]
    code, output = promtool_test(tmp_path / "promtool", docs, cases)
    assert code == 0 and "SUCCESS" in output, output


def test_the_promtool_check_fails_for_a_job_the_rule_does_not_watch(tmp_path: Path,
                                                                    docs: list[Doc]) -> None:
    """The check can fail: a target that never served any watched series is not the alert's."""
    cases = scrape_down_cases(docs)
    for case in cases["tests"]:
        case["input_series"] = case["input_series"][:1]  # up only
    code, output = promtool_test(tmp_path, docs, cases)
    assert code != 0 and output.count("got:[]") == len(cases["tests"]), output
