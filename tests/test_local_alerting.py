"""The local stack's monitoring parts without vLLM: the Prometheus config and rule copy it writes pass
promtool, the shortened rules change only ``for:`` and the interval, and the real Alertmanager and
node exporter it starts answer with what the stack relies on. The binaries are Debian packages
(scripts/install_tools.sh): skipped where missing, required in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from dashboards import alerts, exporters
from examples.reference_app.processes import free_port
from examples.reference_app.run_local import (
    RULES_FILE,
    LocalStack,
    alertmanager_process,
    node_exporter_process,
    override_rules,
    prometheus_config,
)


def need(command: str) -> str:
    path = shutil.which(command)
    if path:
        return path
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{command} is not installed (scripts/install_tools.sh): CI requires it")
    pytest.skip(f"{command} is not installed (scripts/install_tools.sh)")


def test_override_changes_only_for_and_interval() -> None:
    shipped_text = RULES_FILE.read_text()
    copy = yaml.safe_load(override_rules(shipped_text, for_="10s", interval="5s"))
    shipped = yaml.safe_load(shipped_text)
    assert RULES_FILE.read_text() == shipped_text
    rules = [r for g in copy["groups"] for r in g["rules"]]
    assert [(r["alert"], r["for"]) for r in rules] == [(a.name, "10s") for a in alerts.ALERTS]
    assert {g["interval"] for g in copy["groups"]} == {"5s"}
    for ours, theirs in zip(rules, (r for g in shipped["groups"] for r in g["rules"]), strict=True):
        assert {**ours, "for": None} == {**theirs, "for": None}
    # Without overrides nothing changes but the comment on top.
    assert yaml.safe_load(override_rules(shipped_text)) == shipped


def test_bad_override_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        LocalStack(alert_for="ten seconds")
    monkeypatch.setenv("RAGOTEL_ALERT_FOR_OVERRIDE", "15s")
    monkeypatch.setenv("RAGOTEL_ALERT_INTERVAL_OVERRIDE", "5s")
    stack = LocalStack()
    assert (stack.alert_for, stack.alert_interval) == ("15s", "5s")


def test_prometheus_config_and_rule_copy_pass_promtool(tmp_path: Path) -> None:
    promtool = need("promtool")
    rules = tmp_path / "rules.yaml"
    rules.write_text(override_rules(RULES_FILE.read_text(), for_="10s", interval="5s"))
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(
        {"rag-chat-api": "http://127.0.0.1:8080", "node-exporter": "http://127.0.0.1:9100"},
        rule_files=[rules], alertmanagers=["http://127.0.0.1:9093"]))
    parsed = yaml.safe_load(config.read_text())
    assert parsed["rule_files"] == [str(rules)]
    assert parsed["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in checked.stdout + checked.stderr


def test_alertmanager_starts_with_the_stack_config(tmp_path: Path) -> None:
    need("prometheus-alertmanager")
    port = free_port()
    process = alertmanager_process(port, tmp_path / "alertmanager", tmp_path / "alertmanager.log")
    assert process is not None
    with process:
        status = httpx.get(f"http://127.0.0.1:{port}/api/v2/status", timeout=10).json()
        assert yaml.safe_load(status["config"]["original"])["route"]["receiver"] == "local"
        assert status["cluster"]["status"] == "disabled"  # no gossip port opened
        assert httpx.get(f"http://127.0.0.1:{port}/api/v2/alerts", timeout=10).json() == []
    assert (tmp_path / "alertmanager" / "data").is_dir()


def test_node_exporter_serves_what_the_node_panels_read(tmp_path: Path) -> None:
    need("prometheus-node-exporter")
    port = free_port()
    process = node_exporter_process(port, tmp_path / "node-exporter.log")
    assert process is not None
    with process:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert exporters.DOCUMENTED["node-exporter"] <= served
    assert 'node_cpu_seconds_total{cpu="0",mode="idle"}' in text
    # Every exporter the stack runs locally is out of the cluster-only names.
    assert not exporters.DOCUMENTED["node-exporter"] & exporters.CLUSTER_ONLY
