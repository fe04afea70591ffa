"""deploy/README.md names the versions that are actually deployed and covers what a user needs."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.conftest import COMPOSE_FILE, DEPLOY, Doc, containers, workloads

README = DEPLOY / "README.md"


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


def test_every_deployed_image_is_listed(readme: str, rendered: dict[str, list[Doc]]) -> None:
    images = {c["image"] for docs in rendered.values() for w in workloads(docs) for c in containers(w)}
    images |= {s["image"] for s in yaml.safe_load(COMPOSE_FILE.read_text())["services"].values()}
    assert sorted(i for i in images if f"`{i}`" not in readme and f" {i} " not in readme) == []


@pytest.mark.parametrize(
    "needle",
    [
        "## Run it on kind or minikube",
        "## Run it on a GPU cluster",
        "## Run it with Docker Compose",
        "## What to open in Grafana first",
        "bump alloy, tempo, mimir, loki and grafana **together**",
        "otelcol.exporter.prometheus",
        "mimir's own otlp endpoint",
        "otel_metrics_exporter=prometheus",
        "tempo-distributed",
        "mimir-distributed",
        "k8s-monitoring",
        "grafana-admin",
        "`mimir`, `tempo`, `loki`",
    ],
)
def test_readme_covers(readme: str, needle: str) -> None:
    assert needle.lower() in " ".join(readme.split()).lower()
