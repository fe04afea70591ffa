"""deploy/k8s: every overlay renders, validates against the Kubernetes API schemas, and keeps the
security, wiring and app-contract promises of the reference stack."""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest

from tests.deploy.conftest import (
    ALLOY_DIR,
    K8S_BASE,
    KUBERNETES_VERSION,
    Doc,
    configmap_value,
    containers,
    env_of,
    find,
    pod_spec,
    render,
    workloads,
)

OVERLAY_NAMES = ("local-cpu", "gpu")
APP = ("rag-chat-api", "rag-retriever")
BACKENDS = ("tempo", "mimir", "loki")

# The one workload allowed to run as root: DCGM reads the GPUs through the driver (NVML).
ROOT_ALLOWED = {"dcgm-exporter"}


@pytest.fixture(scope="module", autouse=True)
def _cache_schemas():
    """kubernetes-validate reads its JSON schemas from disk on every call; read each once."""
    original = kubernetes_validate.utils.schema_contents
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(original)
    yield
    kubernetes_validate.utils.schema_contents = original


def validate(doc: Doc) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def name_of(workload: Doc) -> str:
    return workload["metadata"]["name"]


def by_name(docs: list[Doc]) -> dict[str, Doc]:
    return {name_of(w): w for w in workloads(docs)}


# ---- Rendering and schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_overlay_renders_the_whole_stack(rendered: dict[str, list[Doc]], overlay: str) -> None:
    names = set(by_name(rendered[overlay]))
    expected = {"rag-chat-api", "rag-retriever", "vllm", "alloy", "tempo", "mimir", "loki", "grafana",
                "kube-state-metrics", "node-exporter"}
    if overlay == "gpu":
        expected.add("dcgm-exporter")
    assert names == expected


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_object_validates_against_the_kubernetes_schemas(rendered: dict[str, list[Doc]], overlay: str) -> None:
    failures = []
    for doc in rendered[overlay]:
        try:
            validate(doc)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert failures == []


def test_schema_validation_rejects_a_misspelt_field(rendered: dict[str, list[Doc]]) -> None:
    doc = copy.deepcopy(find(rendered["local-cpu"], "Deployment", "vllm"))
    pod_spec(doc)["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(doc)


@pytest.fixture(scope="module")
def rendered_base() -> list[Doc]:
    """The base alone: overlays patch it, but it must stand on its own (pinned, bounded)."""
    return render(K8S_BASE)


def pin_and_bound_problems(docs: list[Doc]) -> list[str]:
    problems = []
    for workload in workloads(docs):
        for container in containers(workload):
            where = f"{name_of(workload)}/{container['name']}"
            image = container["image"]
            if not re.fullmatch(r"[\w./-]+:[\w.-]+", image):
                problems.append(f"{where}: {image} has no tag")
            elif image.endswith((":latest", ":main", ":master")):
                problems.append(f"{where}: {image} is a moving tag")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(kind, {}))
                if missing:
                    problems.append(f"{where}: no {kind} for {sorted(missing)}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_images_are_pinned(rendered: dict[str, list[Doc]], overlay: str) -> None:
    assert pin_and_bound_problems(rendered[overlay]) == []


def test_base_images_are_pinned_and_every_container_is_bounded(rendered_base: list[Doc]) -> None:
    assert pin_and_bound_problems(rendered_base) == []
    vllm = pod_spec(find(rendered_base, "Deployment", "vllm"))["containers"][0]
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", vllm["image"])


def test_the_pin_check_sees_an_untagged_image(rendered_base: list[Doc]) -> None:
    docs = copy.deepcopy(rendered_base)
    container = pod_spec(find(docs, "Deployment", "vllm"))["containers"][0]
    container["image"] = "vllm"
    del container["resources"]["limits"]
    assert pin_and_bound_problems(docs) == ["vllm/vllm: vllm has no tag",
                                            "vllm/vllm: no limits for ['cpu', 'memory']"]


def test_backend_versions_are_the_same_in_every_overlay(rendered: dict[str, list[Doc]]) -> None:
    def images(overlay: str) -> dict[str, str]:
        return {name_of(w): containers(w)[0]["image"] for w in workloads(rendered[overlay]) if name_of(w) != "vllm"}

    common = images("local-cpu")
    assert {k: v for k, v in images("gpu").items() if k in common} == common
    assert common["grafana"].startswith("grafana/grafana:11.6.")


# ---- Security -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_containers_are_locked_down(rendered: dict[str, list[Doc]], overlay: str) -> None:
    problems = []
    for workload in workloads(rendered[overlay]):
        name, spec = name_of(workload), pod_spec(workload)
        pod_ctx = spec.get("securityContext", {})
        if pod_ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if name not in ROOT_ALLOWED and not (pod_ctx.get("runAsNonRoot") and pod_ctx.get("runAsUser", 0) > 0):
            problems.append(f"{name}: may run as root")
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            ctx = container.get("securityContext", {})
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: writable root filesystem")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not dropped")
            if ctx.get("privileged"):
                problems.append(f"{where}: privileged")
            if ctx.get("capabilities", {}).get("add") and name not in ROOT_ALLOWED:
                problems.append(f"{where}: adds capabilities")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(kind, {}))
                if missing:
                    problems.append(f"{where}: no {kind} for {sorted(missing)}")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_app_and_vllm_have_startup_liveness_and_readiness_probes(rendered: dict[str, list[Doc]], overlay: str) -> None:
    found = by_name(rendered[overlay])
    for name in (*APP, "vllm"):
        main = pod_spec(found[name])["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert probe in main, f"{name}: no {probe}"
        assert main["livenessProbe"]["httpGet"]["path"] == "/health"
    for name in APP:
        assert pod_spec(found[name])["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/ready"
    for name in ("alloy", *BACKENDS, "grafana"):
        assert "readinessProbe" in pod_spec(found[name])["containers"][0], name


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_restricted_pod_security_where_the_stack_runs(rendered: dict[str, list[Doc]], overlay: str) -> None:
    namespaces = {d["metadata"]["name"]: d["metadata"]["labels"] for d in rendered[overlay] if d["kind"] == "Namespace"}
    assert namespaces["rag"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads(rendered[overlay]):
        spec = pod_spec(workload)
        host_access = spec.get("hostNetwork") or spec.get("hostPID") or any(
            "hostPath" in v for v in spec.get("volumes", []))
        if host_access:
            assert workload["metadata"]["namespace"] == "rag-node", f"{name_of(workload)} needs the host"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_grafana_admin_password_comes_from_a_secret_that_is_not_committed(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    spec = pod_spec(find(docs, "Deployment", "grafana"))
    grafana = spec["containers"][0]
    env = env_of(grafana)
    # As files on a Secret volume (Grafana's __FILE variables), never in the environment.
    assert not {"GF_SECURITY_ADMIN_PASSWORD", "GF_SECURITY_ADMIN_USER"} & set(env)
    [volume] = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "grafana-admin"]
    assert not volume["secret"].get("optional"), "Grafana must not start without it"
    [mount] = [m for m in grafana["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    files = {item["key"]: f"{mount['mountPath']}/{item['path']}" for item in volume["secret"]["items"]}
    assert env["GF_SECURITY_ADMIN_USER__FILE"]["value"] == files["admin-user"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"]["value"] == files["admin-password"]
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets are created at deploy time, never rendered"
    ini = configmap_text(docs, "grafana-config")
    assert "admin_password" not in ini
    assert re.search(r"\[auth\.anonymous\]\s*\n\s*enabled\s*=\s*false", ini)


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_secrets_reach_containers_as_files_only(rendered: dict[str, list[Doc]], overlay: str) -> None:
    as_env = [f"{name_of(w)}/{c['name']}: {e['name']}" for w in workloads(rendered[overlay]) for c in containers(w)
              for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
    as_env += [f"{name_of(w)}/{c['name']}: envFrom" for w in workloads(rendered[overlay]) for c in containers(w)
               for s in c.get("envFrom", []) if "secretRef" in s]
    assert as_env == []


def test_gpu_vllm_reads_the_hub_token_from_a_file(rendered: dict[str, list[Doc]]) -> None:
    spec = pod_spec(find(rendered["gpu"], "Deployment", "vllm"))
    vllm = spec["containers"][0]
    [volume] = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "hf-token"]
    assert volume["secret"]["optional"] is True, "public models need no token"
    [mount] = [m for m in vllm["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert env_of(vllm)["HF_TOKEN_PATH"]["value"] == f"{mount['mountPath']}/token"


def configmap_text(docs: list[Doc], name: str) -> str:
    return "\n".join(find(docs, "ConfigMap", name, "rag")["data"].values())


def allowed_sources(policy: Doc) -> dict[int, set[str]]:
    """Port -> app names allowed in; '*' when a rule admits any source."""
    out: dict[int, set[str]] = {}
    for rule in policy["spec"].get("ingress", []):
        sources = {p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name", "*")
                   for p in rule.get("from", [{"podSelector": {}}]) if "podSelector" in p}
        ports = [p["port"] for p in rule.get("ports", [])] or ["any"]
        for port in ports:
            out.setdefault(port, set()).update(sources)
    return out


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_only_alloy_writes_to_and_only_grafana_reads_from_the_backends(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    policies = {d["metadata"]["name"]: d for d in rendered[overlay]
                if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == "rag"}
    assert set(BACKENDS) <= set(policies)
    for backend in BACKENDS:
        assert policies[backend]["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == backend
        assert policies[backend]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert allowed_sources(policies["tempo"]) == {4317: {"alloy"}, 4318: {"alloy"}, 3200: {"grafana"}, "any": {"tempo"}}
    # One port for both paths: the writers (Alloy, Tempo's metrics generator) and the reader.
    assert allowed_sources(policies["mimir"]) == {9009: {"alloy", "tempo", "grafana"}, "any": {"mimir"}}
    assert allowed_sources(policies["loki"]) == {3100: {"alloy", "grafana"}, "any": {"loki"}}


# ---- The app contract -----------------------------------------------------------------------------------


def service_ports(docs: list[Doc]) -> dict[str, set[int]]:
    return {d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]} for d in docs if d["kind"] == "Service"}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_services_are_named_after_service_name(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    ports = service_ports(docs)
    assert ports["rag-chat-api"] == {8080}
    assert ports["rag-retriever"] == {8001}
    assert ports["vllm"] == {8000}
    assert ports["alloy"] == {4317, 4318}
    found = by_name(docs)
    for name in APP:
        env = env_of(pod_spec(found[name])["containers"][0])
        assert env["OTEL_SERVICE_NAME"]["value"] == name
    assert env_of(pod_spec(found["vllm"])["containers"][0])["OTEL_SERVICE_NAME"]["value"] == "vllm"
    assert all(d["metadata"]["namespace"] == "rag" for d in docs if d["kind"] == "Service")


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_app_environment_follows_the_contract(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    found = by_name(docs)
    placement = find(docs, "ConfigMap", "ragotel-placement", "rag")["data"]
    assert set(placement) == {"RAGOTEL_PROVIDER", "RAGOTEL_CLUSTER", "RAGOTEL_REGION"}
    for name in APP:
        main = pod_spec(found[name])["containers"][0]
        env = env_of(main)
        module = name.removeprefix("rag-").replace("-", "_")
        assert main["command"] == ["python", "-m", f"examples.reference_app.{module}"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://alloy:4318"
        # Metrics reach Mimir by scrape of /metrics only: the OTLP metrics exporter stays off.
        assert env["OTEL_METRICS_EXPORTER"]["value"] == "prometheus"
        for var, field in (("K8S_POD_NAME", "metadata.name"), ("K8S_NAMESPACE_NAME", "metadata.namespace"),
                           ("K8S_NODE_NAME", "spec.nodeName")):
            assert env[var]["valueFrom"]["fieldRef"]["fieldPath"] == field
        assert {"configMapRef": {"name": find(docs, "ConfigMap", "ragotel-placement")["metadata"]["name"]}} in main[
            "envFrom"]
    chat = env_of(pod_spec(found["rag-chat-api"])["containers"][0])
    assert chat["RAG_RETRIEVER_URL"]["value"] == "http://rag-retriever:8001"
    assert chat["RAG_VLLM_URL"]["value"] == "http://vllm:8000/v1"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_retriever_reads_an_index_built_by_ingest_from_a_read_only_volume(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    retriever = by_name(rendered[overlay])["rag-retriever"]
    spec = pod_spec(retriever)
    [ingest] = spec["initContainers"]
    assert ingest["command"] == ["python", "-m", "examples.reference_app.ingest", "--corpus",
                                 "examples/reference_app/corpus", "--out", "/data/index"]
    main = spec["containers"][0]
    env = env_of(main)
    assert env["RAG_INDEX_DIR"]["value"] == "/data/index"
    assert env["RAG_BACKEND"]["value"] in ("dense", "sparse")
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    [mount] = [m for m in main["volumeMounts"] if env["RAG_INDEX_DIR"]["value"].startswith(m["mountPath"])]
    assert mount["readOnly"] is True
    [written] = [m for m in ingest["volumeMounts"] if m["name"] == mount["name"]]
    # ingest swaps a sibling directory into place, so the volume is the index's parent, writable.
    assert written["mountPath"] == "/data" and not written.get("readOnly")


def vllm_container(docs: list[Doc]) -> Doc:
    return pod_spec(find(docs, "Deployment", "vllm"))["containers"][0]


def expand(docs: list[Doc], container: Doc, text: str) -> str:
    """Expand $(VAR) the way the kubelet does, from env and envFrom ConfigMaps."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        values.update(next(d["data"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name))
    for entry in container.get("env", []):
        if "value" in entry or "configMapKeyRef" in entry.get("valueFrom", {}):
            values[entry["name"]] = configmap_value(docs, entry)
    return re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), text)


def flag(docs: list[Doc], container: Doc, name: str) -> str | None:
    for arg in container.get("args", []):
        if arg == name:
            return ""
        if arg.startswith(name + "="):
            return expand(docs, container, arg.split("=", 1)[1])
    return None


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_vllm_traces_to_alloy_under_its_own_service_name(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    vllm = vllm_container(docs)
    env = env_of(vllm)
    assert flag(docs, vllm, "--otlp-traces-endpoint") == "http://alloy:4318/v1/traces"
    assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]["value"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"]["value"] == "vllm"
    assert vllm.get("command"), "the overlay says how the server starts"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_chat_api_asks_for_the_model_vllm_serves(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    chat = pod_spec(find(docs, "Deployment", "rag-chat-api"))["containers"][0]
    served = flag(docs, vllm_container(docs), "--served-model-name")
    assert served and "$(" not in served
    assert configmap_value(docs, env_of(chat)["RAG_MODEL"]) == served


def test_local_overlay_runs_vllm_cpu_with_a_tiny_model(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["local-cpu"]
    vllm = vllm_container(docs)
    assert vllm["image"] == "ragotel/vllm-cpu:0.32.0"
    assert "scripts/make_tiny_model.py" in " ".join(vllm["command"])
    assert flag(docs, vllm, "--dtype") == "float32"
    assert flag(docs, vllm, "--enforce-eager") == ""
    assert flag(docs, vllm, "--max-model-len") == "1024"
    assert env_of(vllm)["VLLM_CPU_KVCACHE_SPACE"]["value"] == "1"
    assert "nvidia.com/gpu" not in str(vllm["resources"])
    assert not [w for w in workloads(docs) if name_of(w) == "dcgm-exporter"]


def test_gpu_overlay_runs_the_official_image_on_one_gpu_with_dcgm(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["gpu"]
    vllm = vllm_container(docs)
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", vllm["image"])
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    dcgm = find(docs, "DaemonSet", "dcgm-exporter")
    assert dcgm["spec"]["template"]["metadata"]["annotations"]["k8s.grafana.com/metrics.portNumber"] == "9400"


# ---- Scraping and Alloy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_scrape_annotations_give_the_dashboard_job_names(rendered: dict[str, list[Doc]], overlay: str) -> None:
    jobs = {}
    for workload in workloads(rendered[overlay]):
        template = workload["spec"]["template"]
        notes = template["metadata"].get("annotations", {})
        if notes.get("k8s.grafana.com/scrape") != "true":
            continue
        job = notes.get("k8s.grafana.com/job") or template["metadata"]["labels"]["app.kubernetes.io/name"]
        port = int(notes["k8s.grafana.com/metrics.portNumber"])
        declared = {p["containerPort"] for c in containers(workload, init=False) for p in c.get("ports", [])}
        assert port in declared, f"{job}: annotated port {port} is not a container port"
        assert notes.get("k8s.grafana.com/metrics.path", "/metrics") == "/metrics"
        jobs[job] = port
    expected = {"rag-chat-api": 8080, "rag-retriever": 8001, "vllm": 8000, "kube-state-metrics": 8080,
                "node-exporter": 9100}
    if overlay == "gpu":
        expected["dcgm-exporter"] = 9400
    assert jobs == expected


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_app_logs_go_over_otlp_and_are_not_tailed_twice(rendered: dict[str, list[Doc]], overlay: str) -> None:
    found = by_name(rendered[overlay])
    for name in APP:
        template = found[name]["spec"]["template"]
        assert template["metadata"]["annotations"]["ragotel.io/logs"] == "otlp"
        assert env_of(pod_spec(found[name])["containers"][0])["OTEL_LOGS_EXPORTER"]["value"] == "otlp"
    assert "ragotel.io/logs" not in found["vllm"]["spec"]["template"]["metadata"].get("annotations", {})


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_alloy_runs_the_checked_in_pipeline_on_every_node(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    alloy = find(docs, "DaemonSet", "alloy")
    spec = pod_spec(alloy)
    assert {"operator": "Exists"} in spec["tolerations"]
    main = spec["containers"][0]
    assert main["args"][:2] == ["run", "/etc/alloy/config.alloy"]
    config = find(docs, "ConfigMap", "alloy-config", "rag")
    for key in ("config.alloy", "kubernetes.alloy"):
        assert config["data"][key] == (ALLOY_DIR / key).read_text()
    env = env_of(main)
    assert env["ALLOY_PLATFORM_MODULE"]["value"] == "/etc/alloy/kubernetes.alloy"
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    [mount] = [m for m in main["volumeMounts"] if m["mountPath"] == "/etc/alloy"]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    service = find(docs, "Service", "alloy")
    assert service["spec"]["internalTrafficPolicy"] == "Local"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_alloy_rbac_is_read_only(rendered: dict[str, list[Doc]], overlay: str) -> None:
    role = find(rendered[overlay], "ClusterRole", "ragotel-alloy")
    granted = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    assert {verb for _, verb in granted} <= {"get", "list", "watch"}
    assert {res for res, _ in granted} == {"pods", "nodes", "namespaces", "pods/log", "nodes/metrics"}
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])
    binding = find(rendered[overlay], "ClusterRoleBinding", "ragotel-alloy")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "alloy", "namespace": "rag"}]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_backends_keep_their_data_on_persistent_volumes(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    data_paths = {"tempo": "/var/tempo", "mimir": "/data", "loki": "/loki"}
    for backend, path in data_paths.items():
        sts = find(docs, "StatefulSet", backend)
        [claim] = sts["spec"]["volumeClaimTemplates"]
        mounts = {m["name"]: m["mountPath"] for m in pod_spec(sts)["containers"][0]["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == path
    grafana = pod_spec(find(docs, "Deployment", "grafana"))
    assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "grafana-data" for v in grafana["volumes"])


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_referenced_configmap_is_rendered(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    wanted: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("configMap", "configMapRef", "configMapKeyRef"):
                if key in node and "name" in node[key]:
                    wanted.add(node[key]["name"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    for workload in workloads(docs):
        collect(workload["spec"]["template"])
    assert wanted and wanted <= names, sorted(wanted - names)


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_kube_state_metrics_and_node_exporter_are_deployed(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    ksm = find(docs, "Deployment", "kube-state-metrics")
    role = find(docs, "ClusterRole", "ragotel-kube-state-metrics")
    assert {v for r in role["rules"] for v in r["verbs"]} == {"list", "watch"}
    listed = next(a for a in pod_spec(ksm)["containers"][0]["args"] if a.startswith("--resources="))
    granted = {res for rule in role["rules"] for res in rule["resources"]}
    assert set(listed.removeprefix("--resources=").split(",")) == granted
    node_exporter = find(docs, "DaemonSet", "node-exporter")
    assert pod_spec(node_exporter)["hostPID"] is True
