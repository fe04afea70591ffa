"""Shared fixtures for the deploy checks: paths, the rendered overlays, and small lookups over them.

Every overlay is rendered once per session with ``kubectl kustomize`` (or a standalone ``kustomize``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALLOY_DIR = DEPLOY / "alloy"
K8S_BASE = DEPLOY / "k8s" / "base"
OVERLAYS = {p.name: p for p in sorted((DEPLOY / "k8s" / "overlays").iterdir()) if p.is_dir()}
COMPONENTS = DEPLOY / "k8s" / "components"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"

# The Kubernetes minor the manifests target (kind / minikube defaults and the managed clusters'
# supported range as of late 2026).
KUBERNETES_VERSION = "1.34.0"

Doc = dict[str, Any]


def kustomize_command() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def build(directory: Path) -> subprocess.CompletedProcess[str]:
    """``kubectl kustomize directory`` (or ``kustomize build``), whatever it answers."""
    command = kustomize_command()
    if command is None:
        # scripts/install_tools.sh installs kustomize where kubectl is missing; CI must not skip.
        if os.environ.get("CI"):
            pytest.fail("neither kubectl nor kustomize is installed")
        pytest.skip("neither kubectl nor kustomize is installed")
    return subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=60, check=False)


def render(directory: Path) -> list[Doc]:
    result = build(directory)
    assert result.returncode == 0, f"kustomize failed for {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def user_kustomization(tmp: Path, overlay: str, components: Sequence[Path], extra: str = "") -> Path:
    """A kustomization in ``tmp`` as a user's would be: ``overlay`` with ``components`` added, plus ``extra``
    lines (patches, a namePrefix, ...). Returns its directory."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(OVERLAYS[overlay], tmp)}\n"
        "components:\n" + "".join(f"  - {os.path.relpath(c, tmp)}\n" for c in components) + extra)
    return tmp


def render_with(tmp: Path, overlay: str, components: Sequence[Path], extra: str = "") -> list[Doc]:
    """The objects ``overlay`` renders with ``components`` added (:func:`user_kustomization`)."""
    return render(user_kustomization(tmp, overlay, components, extra))


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """Overlay name -> the objects ``kubectl kustomize`` renders for it."""
    assert set(OVERLAYS) == {"local-cpu", "gpu"}, f"unexpected overlays: {sorted(OVERLAYS)}"
    return {name: render(path) for name, path in OVERLAYS.items()}


def find(docs: list[Doc], kind: str, name: str, namespace: str | None = None) -> Doc:
    """The object of that kind and name; generated ConfigMaps match with their hash suffix."""
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] != kind or (namespace and meta.get("namespace") != namespace):
            continue
        if meta["name"] == name or (kind == "ConfigMap" and meta["name"].rsplit("-", 1)[0] == name):
            return doc
    raise AssertionError(f"no {kind} {name} rendered")


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    yield from (d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"))


def pod_spec(workload: Doc) -> Doc:
    return workload["spec"]["template"]["spec"]


def containers(workload: Doc, *, init: bool = True) -> list[Doc]:
    spec = pod_spec(workload)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def env_of(container: Doc) -> dict[str, Doc]:
    """Env var name -> its entry (with ``value`` or ``valueFrom``)."""
    return {e["name"]: e for e in container.get("env", [])}


def configmap_value(docs: list[Doc], entry: Doc) -> str:
    """The value an env entry gets, following a configMapKeyRef to the rendered ConfigMap."""
    if "value" in entry:
        return str(entry["value"])
    ref = entry["valueFrom"]["configMapKeyRef"]
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == ref["name"]:
            return str(doc["data"][ref["key"]])
    raise AssertionError(f"ConfigMap {ref['name']} not rendered")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
