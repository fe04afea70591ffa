"""The door matrix: the help desk (``helpdesk.py``, no telemetry code) run under the real ``opentelemetry-instrument``
in a virtualenv grown the way the OpenTelemetry documentation grows one — ragotel alone, then
``opentelemetry-distro``, then ``opentelemetry-exporter-otlp``, then what ``opentelemetry-bootstrap -a install``
adds — with no settings and with the one the README documents (``OTEL_PYTHON_DISTRO=ragotel``). Three requests,
a SIGTERM as Kubernetes sends it, and what arrived at ragotel's OTLP receiver is counted."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doors.doors import APP_LIBRARIES, REPO, REQUESTS, Arrived, Venv, serve_and_ask
from tests.recorded_openai_server import RecordedOpenAIServer

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1800)]

STAGES = ("ragotel", "opentelemetry-distro", "opentelemetry-exporter-otlp", "bootstrap")
DOCUMENTED = {"OTEL_PYTHON_DISTRO": "ragotel"}
"""The one setting the README gives for every door."""


class Door:
    """One virtualenv, grown stage by stage as a user grows theirs (never shrunk: the stages run in order)."""

    def __init__(self, path: Path) -> None:
        self.venv: Venv | None = None
        self.path = path
        self.stage = -1

    def grow_to(self, stage: str) -> Venv:
        target = STAGES.index(stage)
        while self.stage < target:
            self.stage += 1
            self._install(STAGES[self.stage])
        assert self.venv is not None
        return self.venv

    def _install(self, stage: str) -> None:
        if stage == "ragotel":
            self.venv = Venv(self.path)
            self.venv.pip(str(REPO), *APP_LIBRARIES)
            return
        assert self.venv is not None
        if stage == "bootstrap":
            proc = self.venv.run(str(self.venv.bin / "opentelemetry-bootstrap"), "-a", "install")
            assert proc.returncode == 0, proc.stdout + proc.stderr
        else:
            self.venv.pip(stage)
        check = self.venv.run("-m", "pip", "check")
        assert check.returncode == 0, f"after {stage}: {check.stdout}"


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Door:
    return Door(tmp_path_factory.mktemp("door") / "venv")


@pytest.fixture(scope="module")
def llm() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as server:
        yield server


def run_door(venv: Venv, env: dict[str, str], tmp_path: Path, llm: RecordedOpenAIServer) -> Arrived:
    command = [str(venv.bin / "opentelemetry-instrument"), str(venv.bin / "uvicorn"), "helpdesk:app"]
    return serve_and_ask(command, env, tmp_path, llm.base_url)


def assert_exactly_once(arrived: Arrived) -> None:
    """Every request: its server span, its GenAI span in the same trace, its log line, its point in the server
    metric the dashboards read; nothing twice, no ASGI send/receive spans."""
    assert arrived.answered == REQUESTS, arrived.stderr
    servers = arrived.spans_named("SERVER")
    assert [s["name"] for s in servers] == ["GET /answer"] * REQUESTS, arrived.spans
    chats = arrived.spans_named("CLIENT", "chat ")
    assert len(chats) == REQUESTS, arrived.spans
    assert {c["trace_id"] for c in chats} == {s["trace_id"] for s in servers}
    assert not [s for s in arrived.spans if s["name"].endswith((" http send", " http receive"))], arrived.spans
    assert len(arrived.answers_logged()) == REQUESTS, arrived.logs
    assert {r["trace_id"] for r in arrived.answers_logged()} == {s["trace_id"] for s in servers}
    assert arrived.last_count("http.server.request.duration") == REQUESTS, sorted({m["name"] for m in arrived.metrics})
    assert arrived.last_count("http.server.duration") is None


@pytest.mark.parametrize("settings", ["documented", "none"])
@pytest.mark.parametrize("stage", STAGES)  # the outer loop: the virtualenv grows once, in this order
def test_door(stage: str, settings: str, door: Door, llm: RecordedOpenAIServer, tmp_path: Path) -> None:
    venv = door.grow_to(stage)
    env = DOCUMENTED if settings == "documented" else {}
    arrived = run_door(venv, env, tmp_path, llm)
    assert arrived.answered == REQUESTS, arrived.stderr  # whatever the door, the app works as it would without it
    if settings == "documented" or stage == "ragotel":
        assert_exactly_once(arrived)
        assert "Traceback" not in arrived.stderr, arrived.stderr
        return
    # No settings beside opentelemetry-distro: the loader takes the first distro and configurator it finds, an
    # order this file system decides. What each choice gives is known; nothing is ever doubled.
    distro = venv.entry_points("opentelemetry_distro")[0]
    configurator = "ragotel" if distro == "ragotel" else venv.entry_points("opentelemetry_configurator")[0]
    grpc = stage != "opentelemetry-distro" and distro != "ragotel"  # the distro's default protocol, now installed
    assert len(arrived.spans_named("SERVER")) <= REQUESTS and len(arrived.answers_logged()) <= REQUESTS
    assert len(arrived.spans_named("CLIENT", "chat ")) <= REQUESTS
    if configurator == "ragotel" and not grpc:
        assert_exactly_once(arrived)
        if distro != "ragotel":  # opentelemetry-distro's grpc default, no gRPC exporter: over HTTP, said once
            assert sum("exporting over http/protobuf" in w for w in arrived.warnings) == 1, arrived.stderr
    elif configurator == "ragotel":  # gRPC to an OTLP/HTTP receiver: named for what it is
        assert any("answers, but not over gRPC" in w for w in arrived.warnings), arrived.stderr
    elif "Configuration of configurator failed" not in arrived.stderr:
        assert any("OTEL_PYTHON_DISTRO=ragotel" in w for w in arrived.warnings), arrived.stderr


def test_one_command_installs_ragotel_with_opentelemetry_distro(tmp_path: Path) -> None:
    """``pip install ragotel opentelemetry-distro`` resolves with a current pip, and ``pip check`` passes."""
    venv = Venv(tmp_path / "venv")
    venv.pip(str(REPO), "opentelemetry-distro")
    check = venv.run("-m", "pip", "check")
    assert check.returncode == 0, check.stdout
    assert os.path.exists(venv.bin / "opentelemetry-instrument")
