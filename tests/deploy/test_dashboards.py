"""Dashboards: every datasource uid they use is provisioned, and the Kubernetes ConfigMap carries
current copies of dashboards/generated/*.json (which may not exist yet)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import K8S_BASE, ROOT, Doc, find, load_yaml

GENERATED = ROOT / "dashboards" / "generated"
K8S_DASHBOARDS = K8S_BASE / "dashboards"
BUILTIN_UIDS = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}


def provisioned_uids() -> set[str]:
    return {ds["uid"] for ds in load_yaml(K8S_BASE / "grafana" / "datasources.yaml")["datasources"]}


def datasource_uids(node: Any) -> Iterator[str]:
    """Every datasource a dashboard names, as a uid (legacy string references included)."""
    if isinstance(node, dict):
        ref = node.get("datasource")
        if isinstance(ref, dict) and "uid" in ref:
            yield str(ref["uid"])
        elif isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


def unknown_uids(dashboard: dict[str, Any], known: set[str]) -> set[str]:
    return {uid for uid in datasource_uids(dashboard) if uid not in known | BUILTIN_UIDS and not uid.startswith("$")}


def dashboard_files() -> list[Path]:
    return sorted(GENERATED.glob("*.json")) + sorted(K8S_DASHBOARDS.glob("*.json"))


def test_uid_check_finds_an_unprovisioned_datasource() -> None:
    dashboard = {"panels": [{"datasource": {"type": "prometheus", "uid": "prometheus"}, "targets": [
        {"datasource": {"uid": "mimir"}}]}, {"datasource": "${datasource}"}]}
    assert unknown_uids(dashboard, provisioned_uids()) == {"prometheus"}


def test_provisioned_uids_are_the_dashboard_contract() -> None:
    assert provisioned_uids() == {"mimir", "tempo", "loki"}


def test_dashboards_use_only_provisioned_datasources() -> None:
    """Checked against dashboards/generated/*.json and the Kubernetes copies, whichever exist."""
    known = provisioned_uids()
    found = {path.relative_to(ROOT).as_posix(): unknown_uids(json.loads(path.read_text()), known)
             for path in dashboard_files()}
    assert {name: uids for name, uids in found.items() if uids} == {}


def load_sync():
    spec = importlib.util.spec_from_file_location("dashboards_sync", K8S_DASHBOARDS / "sync.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kubernetes_copies_match_dashboards_generated() -> None:
    problems = load_sync().problems()
    assert problems == [], "run: python deploy/k8s/base/dashboards/sync.py\n" + "\n".join(problems)


@pytest.mark.parametrize("overlay", ["local-cpu", "gpu"])
def test_dashboard_configmap_holds_every_dashboard(rendered: dict[str, list[Doc]], overlay: str) -> None:
    configmap = find(rendered[overlay], "ConfigMap", "grafana-dashboards", "rag")
    assert set(configmap.get("data", {})) == {p.name for p in GENERATED.glob("*.json")}
    size = sum(len(v.encode()) for v in configmap.get("data", {}).values())
    assert size < 1024 * 1024, "a ConfigMap holds at most 1 MiB: split the dashboards"
