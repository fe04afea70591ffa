"""checkov over the rendered overlays: no finding beyond the committed list of accepted ones
(deploy/k8s/checkov-accepted.yaml, each with its reason), and no stale entry in that list.

checkov lives in its own virtualenv (scripts/install_tools.sh, pinned). Without it the test is skipped
locally and fails in CI.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, ROOT, Doc, find, pod_spec

ACCEPTED_FILE = DEPLOY / "k8s" / "checkov-accepted.yaml"
INSTALL_TOOLS = ROOT / "scripts" / "install_tools.sh"
CHECKOV_VENV = ROOT / "var" / "tools" / "checkov-venv"
OVERLAY_NAMES = ("local-cpu", "gpu")

Finding = tuple[str, str]  # (check id, resource)


def checkov() -> Path:
    found = CHECKOV_VENV / "bin" / "checkov"
    if found.exists():
        return found
    on_path = shutil.which("checkov")
    if on_path:
        return Path(on_path)
    if os.environ.get("CI"):
        pytest.fail("checkov is not installed (scripts/install_tools.sh installs it)")
    pytest.skip("checkov is not installed; run scripts/install_tools.sh")


def scan(tmp_path: Path, name: str, docs: Iterable[Doc]) -> set[Finding]:
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    # --skip-download: no guidelines or severities from the vendor's API; the checks are all local.
    result = subprocess.run(
        [str(checkov()), "--file", str(manifest), "--framework", "kubernetes", "--output", "json", "--quiet",
         "--skip-download"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )
    assert result.returncode in (0, 1), f"checkov crashed ({result.returncode}):\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    [report] = report if isinstance(report, list) else [report]
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= 40 and summary["passed"] > 0, f"checkov read too little: {summary}"
    return {(c["check_id"], c["resource"]) for c in report.get("results", {}).get("failed_checks", [])}


def accepted() -> dict[Finding, str]:
    out: dict[Finding, str] = {}
    for entry in yaml.safe_load(ACCEPTED_FILE.read_text())["accepted"]:
        reason = entry["reason"].strip()
        assert re.fullmatch(r"CKV2?_K8S_\d+", entry["check"]), entry["check"]
        assert len(reason) > 20 and "\n" not in reason, f"{entry['check']}: give a one-line reason"
        for resource in entry["resources"]:
            key = (entry["check"], resource)
            assert key not in out, f"{key} accepted twice"
            out[key] = reason
    return out


@pytest.fixture(scope="module")
def findings(rendered: dict[str, list[Doc]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[Finding]]:
    tmp = tmp_path_factory.mktemp("checkov")
    return {name: scan(tmp, name, rendered[name]) for name in OVERLAY_NAMES}


def test_the_pinned_checkov_runs() -> None:
    pinned = re.search(r'^CHECKOV_VERSION="([\d.]+)"', INSTALL_TOOLS.read_text(), re.MULTILINE)
    assert pinned, "scripts/install_tools.sh pins no checkov version"
    version = subprocess.run([str(checkov()), "--version"], capture_output=True, text=True, timeout=120,
                             check=True).stdout.strip()
    assert version == pinned.group(1)


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_no_finding_beyond_the_accepted_ones(findings: dict[str, set[Finding]], overlay: str) -> None:
    new = sorted(findings[overlay] - set(accepted()))
    assert new == [], f"new checkov findings in {overlay}: fix them or accept them with a reason in {ACCEPTED_FILE}"


def test_every_accepted_finding_still_occurs(findings: dict[str, set[Finding]]) -> None:
    seen = set().union(*findings.values())
    stale = sorted(set(accepted()) - seen)
    assert stale == [], f"no longer reported, remove from {ACCEPTED_FILE}"


def test_the_scan_catches_a_privileged_container(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    """The gate is live: a privileged chat API with its NetworkPolicies gone is reported, and none of
    it is accepted."""
    docs = copy.deepcopy(rendered["local-cpu"])
    chat = pod_spec(find(docs, "Deployment", "rag-chat-api"))["containers"][0]
    chat["securityContext"]["privileged"] = True
    chat["securityContext"]["allowPrivilegeEscalation"] = True
    docs = [d for d in docs if d["kind"] != "NetworkPolicy"]
    new = scan(tmp_path, "broken", docs) - set(accepted())
    checks = {check for check, _ in new}
    assert {"CKV_K8S_16", "CKV_K8S_20"} <= checks, sorted(new)  # privileged; privilege escalation
    assert "CKV2_K8S_6" in checks, sorted(new)  # pods with no NetworkPolicy
