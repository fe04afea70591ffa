"""Tempo, Mimir, Loki and Grafana configs: they parse, and contain the settings the stack relies on
(exemplars, the metrics generator, OTLP ingestion, linked datasources)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import K8S_BASE, ROOT, Doc, find, load_yaml

TEMPO = K8S_BASE / "tempo" / "tempo.yaml"
MIMIR = K8S_BASE / "mimir" / "mimir.yaml"
LOKI = K8S_BASE / "loki" / "loki.yaml"
GRAFANA = K8S_BASE / "grafana"
DATASOURCES = GRAFANA / "datasources.yaml"
PROVISIONED_UIDS = {"mimir", "tempo", "loki"}


def leaves(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in leaves(value, (*path, str(key)))]
    if isinstance(node, list):
        return [leaf for i, value in enumerate(node) for leaf in leaves(value, (*path, str(i)))]
    return [(path, node)]


def absolute_paths(config: Any) -> list[tuple[str, str]]:
    return [(".".join(p), v) for p, v in leaves(config) if isinstance(v, str) and v.startswith("/")]


@pytest.mark.parametrize(("path", "data_dir"), [(TEMPO, "/var/tempo"), (MIMIR, "/data"), (LOKI, "/loki")])
def test_backends_write_only_to_their_volume(path: Path, data_dir: str) -> None:
    """The root filesystem is read-only: every directory written must be on the mounted volume."""
    config = load_yaml(path)
    found = absolute_paths(config)
    assert found, path.name
    # Mimir's "local" ruler storage only reads: the rules come from a ConfigMap.
    read_only = {"ruler_storage.local.directory"}
    outside = [(key, value) for key, value in found
               if key not in read_only and value != data_dir and not value.startswith(data_dir + "/")]
    assert outside == []


@pytest.mark.parametrize("path", [TEMPO, MIMIR, LOKI])
def test_backends_listen_beyond_loopback(path: Path) -> None:
    text = path.read_text()
    assert "127.0.0.1" not in text and "localhost" not in text


def test_tempo_generates_span_metrics_and_service_graphs_with_exemplars() -> None:
    tempo = load_yaml(TEMPO)
    assert tempo["target"] == "all"
    assert set(tempo["overrides"]["defaults"]["metrics_generator"]["processors"]) >= {"service-graphs", "span-metrics"}
    [remote] = tempo["metrics_generator"]["storage"]["remote_write"]
    assert remote["url"] == "http://mimir:9009/api/v1/push"
    assert remote["send_exemplars"] is True
    assert "rag.step.kind" in tempo["metrics_generator"]["processor"]["span_metrics"]["dimensions"]


def test_tempo_receives_otlp_on_all_interfaces() -> None:
    protocols = load_yaml(TEMPO)["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols == {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}


def test_tempo_config_uses_the_3x_layout() -> None:
    # Tempo 3 dropped the ingester and compactor blocks and refuses to start with them.
    tempo = load_yaml(TEMPO)
    assert not {"ingester", "ingester_client", "compactor", "metrics_generator_client"} & set(tempo)
    assert {"live_store", "backend_scheduler", "backend_worker"} <= set(tempo)


def test_mimir_stores_exemplars_and_runs_without_kafka() -> None:
    mimir = load_yaml(MIMIR)
    assert mimir["limits"]["max_global_exemplars_per_user"] > 0
    assert mimir["ingest_storage"]["enabled"] is False
    assert mimir["ingester"]["push_grpc_method_enabled"] is True
    assert mimir["ingester"]["ring"]["replication_factor"] == 1
    assert mimir["multitenancy_enabled"] is False, "Alloy and Grafana send no X-Scope-OrgID"
    assert mimir["server"]["http_listen_port"] == 9009


def test_mimir_directories_do_not_overlap() -> None:
    dirs = sorted(value for _, value in absolute_paths(load_yaml(MIMIR)))
    assert len(dirs) == len(set(dirs))
    for a in dirs:
        for b in dirs:
            assert a == b or not b.startswith(a.rstrip("/") + "/"), f"{b} is inside {a}"


def test_loki_ingests_otlp_natively_and_keeps_trace_ids_out_of_the_index() -> None:
    loki = load_yaml(LOKI)
    limits = loki["limits_config"]
    assert limits["allow_structured_metadata"] is True
    [schema] = loki["schema_config"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    indexed = {a for rule in limits["otlp_config"]["resource_attributes"]["attributes_config"]
               if rule["action"] == "index_label" for a in rule["attributes"]}
    assert indexed == {"namespace", "pod", "container"}
    assert loki["auth_enabled"] is False


# ---- Grafana ------------------------------------------------------------------------------------------


def single_dollars(text: str) -> list[str]:
    """Lines with a `$` Grafana would expand from its environment (anything but `$$`)."""
    return [line for line in text.splitlines()
            if not line.lstrip().startswith("#") and re.search(r"(?<!\$)\$(?!\$)", re.sub(r"\$\$", "", line))]


@pytest.mark.parametrize("path", [DATASOURCES, GRAFANA / "dashboards.yaml"])
def test_provisioning_escapes_dollar_signs(path: Path) -> None:
    assert single_dollars(path.read_text()) == []


def test_dollar_check_finds_an_unescaped_variable() -> None:
    assert single_dollars('query: "{x} | trace_id=\\"${__trace.traceId}\\""') != []
    assert single_dollars("url: $${__value.raw}") == []


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    config = load_yaml(DATASOURCES)
    assert config["apiVersion"] == 1
    return {ds["uid"]: ds for ds in config["datasources"]}


def test_exactly_the_dashboard_uids_are_provisioned(datasources: dict[str, dict[str, Any]]) -> None:
    assert set(datasources) == PROVISIONED_UIDS
    assert {ds["type"] for ds in datasources.values()} == {"prometheus", "tempo", "loki"}
    assert [uid for uid, ds in datasources.items() if ds.get("isDefault")] == ["mimir"]


def test_datasource_urls_point_at_the_backends(datasources: dict[str, dict[str, Any]]) -> None:
    assert datasources["mimir"]["url"] == "http://mimir:9009/prometheus"
    assert datasources["tempo"]["url"] == "http://tempo:3200"
    assert datasources["loki"]["url"] == "http://loki:3100"


def test_metrics_exemplars_link_to_tempo(datasources: dict[str, dict[str, Any]]) -> None:
    destinations = datasources["mimir"]["jsonData"]["exemplarTraceIdDestinations"]
    assert {d["datasourceUid"] for d in destinations} == {"tempo"}
    assert {d["name"] for d in destinations} == {"trace_id", "traceID"}


def test_traces_link_to_logs_metrics_and_the_service_map(datasources: dict[str, dict[str, Any]]) -> None:
    tempo = datasources["tempo"]["jsonData"]
    logs = tempo["tracesToLogsV2"]
    assert logs["datasourceUid"] == "loki"
    assert "trace_id=" in logs["query"] and "__trace.traceId" in logs["query"]
    metrics = tempo["tracesToMetrics"]
    assert metrics["datasourceUid"] == "mimir"
    assert all("traces_spanmetrics_" in q["query"] for q in metrics["queries"])
    assert tempo["serviceMap"]["datasourceUid"] == "mimir"
    assert tempo["lokiSearch"]["datasourceUid"] == "loki"
    assert tempo["nodeGraph"]["enabled"] is True


def test_log_trace_ids_link_to_tempo(datasources: dict[str, dict[str, Any]]) -> None:
    fields = datasources["loki"]["jsonData"]["derivedFields"]
    assert {f["datasourceUid"] for f in fields} == {"tempo"}
    by_type = {f.get("matcherType", "regex"): f for f in fields}
    assert by_type["label"]["matcherRegex"] == "trace_id"
    pattern = by_type["regex"]["matcherRegex"]
    match = re.search(pattern, 'msg="done" trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7')
    assert match and match.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_dashboards_are_provisioned_from_the_mounted_folder() -> None:
    provider = load_yaml(GRAFANA / "dashboards.yaml")
    [entry] = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"] == "/var/lib/grafana/dashboards/ragotel"
    assert entry["allowUiUpdates"] is False


def test_grafana_ini_has_no_credentials() -> None:
    ini = (GRAFANA / "grafana.ini").read_text()
    assert not re.search(r"^\s*(admin_password|admin_user|secret_key)\s*=", ini, re.MULTILINE)


@pytest.mark.parametrize("overlay", ["local-cpu", "gpu"])
def test_mimir_ruler_loads_the_generated_alert_rules(rendered: dict[str, list[Doc]], overlay: str) -> None:
    directory = load_yaml(MIMIR)["ruler_storage"]["local"]["directory"]
    rules = (ROOT / "dashboards" / "generated" / "rules" / "ragotel.rules.yaml").read_text()
    configmap = find(rendered[overlay], "ConfigMap", "mimir-rules", "rag")
    assert configmap["data"] == {"ragotel.rules.yaml": rules}
    mimir = find(rendered[overlay], "StatefulSet", "mimir", "rag")
    pod = mimir["spec"]["template"]["spec"]
    name = configmap["metadata"]["name"]
    volume = next(v["name"] for v in pod["volumes"] if v.get("configMap", {}).get("name") == name)
    mounts = {m["name"]: m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
    # <directory>/<tenant>/<file>: the tenant is "anonymous" while multitenancy is off.
    assert mounts[volume] == f"{directory}/anonymous"
