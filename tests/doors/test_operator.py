"""The OpenTelemetry Operator's door, simulated with its real parts: the Python packages its autoinstrumentation
image carries (a pinned list, below) installed with ``pip install --target`` as the image installs them, the
help desk in a virtualenv of its own standing for the app image, and ``PYTHONPATH`` and the environment exactly as
the Operator's webhook sets them for the project's ``Instrumentation`` (deploy/k8s/components/opentelemetry-
operator). No cluster runs here: the webhook's rules are applied by :func:`operator_env`, from its documented
behaviour (what it prepends and appends to PYTHONPATH, the variables it sets where the container has none)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.reference_app.processes import free_port
from tests.doors.doors import APP_LIBRARIES, REPO, REQUESTS, Venv, serve_and_ask
from tests.doors.test_doors import assert_exactly_once
from tests.recorded_openai_server import RecordedOpenAIServer

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1800)]

COMPONENT = REPO / "deploy/k8s/components/opentelemetry-operator"
OPERATOR_IMAGE_PACKAGES = (
    # autoinstrumentation/python/requirements.txt of the Operator release that ships distro 0.65b0 and the
    # 1.44.0 exporters: its loader, exporters and propagators, and of its ~50 instrumentations those whose
    # libraries the help desk imports (the others are skipped by the loader when their library is absent).
    "opentelemetry-distro==0.65b0",
    "opentelemetry-exporter-otlp-proto-http==1.44.0",
    "opentelemetry-exporter-prometheus==0.65b0",
    "opentelemetry-propagator-b3==1.44.0",
    "opentelemetry-instrumentation==0.65b0",
    *(f"opentelemetry-instrumentation-{name}==0.65b0" for name in (
        "asgi", "asyncio", "fastapi", "httpx", "logging", "requests", "starlette", "threading", "urllib",
        "urllib3", "wsgi")),
)
LOADER = "opentelemetry/instrumentation/auto_instrumentation"


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = Venv(tmp_path_factory.mktemp("app-image") / "venv")
    venv.pip(str(REPO), *APP_LIBRARIES)
    return venv


@pytest.fixture(scope="module")
def injected(app_image: Venv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the Operator's init container copies into the pod (``/otel-auto-instrumentation-python``)."""
    target = tmp_path_factory.mktemp("otel-auto-instrumentation-python")
    app_image.pip("--target", str(target), *OPERATOR_IMAGE_PACKAGES)
    return target


@pytest.fixture(scope="module")
def llm() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as server:
        yield server


def _documents() -> list[dict[str, Any]]:
    return [d for path in sorted(COMPONENT.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


def instrumentation_env() -> dict[str, str]:
    """``spec.env`` then ``spec.python.env`` of the component's Instrumentation (the second wins)."""
    (spec,) = [d["spec"] for d in _documents() if d.get("kind") == "Instrumentation"]
    return {e["name"]: str(e["value"]) for e in [*spec.get("env", []), *spec.get("python", {}).get("env", [])]}


def container_env() -> dict[str, str]:
    """What the component's patch sets in the chat API's container (it wins over the Instrumentation's)."""
    for doc in _documents():
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == "rag-chat-api":
            return {e["name"]: str(e["value"]) for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
    raise AssertionError("the component patches no chat API container")


def operator_env(injected: Path, site_packages: Path, container: dict[str, str]) -> dict[str, str]:
    """The webhook's rules: PYTHONPATH is its loader directory, the container's own PYTHONPATH, then its packages;
    the Instrumentation's variables where the container sets none; then its defaults where still unset."""
    own = container.get("PYTHONPATH", "").replace("/usr/local/lib/python3.11/site-packages", str(site_packages))
    env = {**instrumentation_env(), **container}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(injected / LOADER), own, str(injected)) if p)
    for name, value in (("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_TRACES_EXPORTER", "otlp"),
                        ("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_LOGS_EXPORTER", "otlp")):
        env.setdefault(name, value)
    return env


def site_packages(venv: Venv) -> Path:
    (found,) = (venv.path / "lib").glob("python3*/site-packages")
    return found


def test_the_operator_starts_the_app_under_ragotel(app_image: Venv, injected: Path, llm: RecordedOpenAIServer,
                                                   tmp_path: Path) -> None:
    """As the component deploys the chat API, with the scrape port a pod Alloy scrapes sets: one server span and
    one GenAI span per request, logs once, ragotel's Prometheus endpoint serving the server metric."""
    port = free_port()
    container = {**container_env(), "OTEL_METRICS_EXPORTER": "otlp,prometheus",
                 "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)}
    env = operator_env(injected, site_packages(app_image), container)
    arrived = serve_and_ask([str(app_image.bin / "python"), "-m", "uvicorn", "helpdesk:app"], env, tmp_path,
                            llm.base_url, scrape_port=port)
    assert_exactly_once(arrived)
    assert arrived.scrape is not None and "http_server_request_duration_seconds_count" in arrived.scrape
    assert "Traceback" not in arrived.stderr and not arrived.warnings, arrived.stderr


def test_without_the_path_patch_the_operators_packages_come_first_and_ragotel_still_runs(
        app_image: Venv, injected: Path, llm: RecordedOpenAIServer, tmp_path: Path) -> None:
    """The Instrumentation alone (no PYTHONPATH in the container): the Operator's SDK and semantic conventions
    shadow the app's. They meet ragotel's floor, so ragotel runs on them, every request exactly once."""
    env = operator_env(injected, site_packages(app_image), {})
    arrived = serve_and_ask([str(app_image.bin / "python"), "-m", "uvicorn", "helpdesk:app"], env, tmp_path,
                            llm.base_url)
    assert_exactly_once(arrived)


def test_semantic_conventions_below_ragotels_floor_leave_the_rest_working(
        app_image: Venv, injected: Path, llm: RecordedOpenAIServer, tmp_path: Path) -> None:
    """An older opentelemetry-semantic-conventions first on the path: ragotel says so once, naming it and where,
    and stays out; the Operator's own instrumentation still gives every request its server span and log line.
    (The SDK alone, as without ragotel, does not flush its queue when uvicorn stops: the run waits for the spans
    before the SIGTERM.)"""
    older = tmp_path / "older"
    app_image.pip("--no-deps", "--target", str(older), "opentelemetry-semantic-conventions==0.60b0")
    env = operator_env(injected, site_packages(app_image), {})
    env["PYTHONPATH"] = os.pathsep.join([str(injected / LOADER), str(older), str(injected)])
    arrived = serve_and_ask([str(app_image.bin / "python"), "-m", "uvicorn", "helpdesk:app"], env, tmp_path,
                            llm.base_url, servers_before_stop=REQUESTS)
    assert arrived.answered == REQUESTS
    (warning,) = [w for w in arrived.warnings if "below" in w or "needs" in w]
    assert "opentelemetry-semantic-conventions 0.60b0" in warning and str(older) in warning
    assert len(arrived.spans_named("SERVER")) == REQUESTS, arrived.stderr  # contrib's FastAPI span, once
    assert not [s for s in arrived.spans if s["scope"].startswith("ragotel")]
    assert "Failed to auto initialize" not in arrived.stderr, arrived.stderr
