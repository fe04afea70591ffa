"""The door matrix: the help desk (``helpdesk.py``, no telemetry code) run under the real ``opentelemetry-instrument``
in a virtualenv grown the way the OpenTelemetry documentation grows one — ragotel alone, then
``opentelemetry-distro``, then ``opentelemetry-exporter-otlp``, then what ``opentelemetry-bootstrap -a install``
adds — with no settings and with the one the README documents (``OTEL_PYTHON_DISTRO=ragotel``). Three requests,
a SIGTERM as Kubernetes sends it, and what arrived at ragotel's OTLP receiver is counted.

Where the door runs ragotel's configurator (with the documented setting, and without it where the loader happens
to pick ragotel's), the app also serves ragotel's ``/metrics`` (``OTEL_METRICS_EXPORTER=otlp,prometheus``, as the
Operator component sets it for Alloy's scrape) to a real Prometheus, and the dashboards' and alerts' queries run
there while the app is up: each one the help desk can give data to has data for that door, and each other one has
none, for the reason tests/doors/help_desk_series.py gives (vLLM's own metrics, what dashboards/needs.py says a
panel needs, or a series the app does not record: a step, a pipeline, a failure)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboards.queries import PromQuery
from examples.reference_app.processes import free_port
from tests.doors.doors import APP_LIBRARIES, REPO, REQUESTS, Arrived, Venv, serve_and_ask
from tests.doors.help_desk_series import partition
from tests.doors.scrape import Answered, ScrapeRelay, answer, door_job, door_prometheus
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.stack.conftest import prometheus_binary
from tests.stack.test_dashboard_queries import local_queries

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1800)]

STAGES = ("ragotel", "opentelemetry-distro", "opentelemetry-exporter-otlp", "bootstrap")
SETTINGS = ("documented", "none")
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


@dataclass
class Dashboards:
    relay: ScrapeRelay
    prometheus_url: str
    answered: list[PromQuery]
    """The queries the help desk gives data to."""
    excused: dict[PromQuery, str]
    """Every other query that concerns one app service, and why the help desk gives it none."""


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboards | None]:
    """One Prometheus for the matrix, a job per door; ``None`` where Prometheus is not installed (a door that
    needs it then skips, or fails in CI, once its own checks have passed)."""
    if shutil.which("prometheus") is None:
        yield None
        return
    # The host's series (node exporter) are no app's; the cluster's and the ingest job's are left out already.
    answered, excused = partition(local_queries(node_exporter=False))
    jobs = [door_job(stage, settings) for stage in STAGES for settings in SETTINGS]
    with door_prometheus(prometheus_binary(), tmp_path_factory.mktemp("door-prometheus"), jobs) as (relay, url):
        yield Dashboards(relay, url, answered, excused)


def query_into(found: list[Answered], dashboards: Dashboards, job: str) -> Callable[[], None]:
    """What the app's run calls while it serves: the door's queries, answered, appended to ``found``."""
    return lambda: found.append(answer(dashboards.prometheus_url, job, dashboards.answered, dashboards.excused))


def run_door(venv: Venv, env: dict[str, str], tmp_path: Path, llm: RecordedOpenAIServer,
             while_serving: Callable[[], None] | None = None) -> Arrived:
    command = [str(venv.bin / "opentelemetry-instrument"), str(venv.bin / "uvicorn"), "helpdesk:app"]
    return serve_and_ask(command, env, tmp_path, llm.base_url, while_serving=while_serving)


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


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("stage", STAGES)  # the outer loop: the virtualenv grows once, in this order
def test_door(stage: str, settings: str, door: Door, llm: RecordedOpenAIServer, dashboards: Dashboards | None,
              tmp_path: Path) -> None:
    venv = door.grow_to(stage)
    env = dict(DOCUMENTED) if settings == "documented" else {}
    # No settings beside opentelemetry-distro: the loader takes the first distro and configurator it finds, an
    # order this file system decides. What each choice gives is known; nothing is ever doubled.
    distro = "ragotel" if settings == "documented" else venv.entry_points("opentelemetry_distro")[0]
    configurator = "ragotel" if distro == "ragotel" else venv.entry_points("opentelemetry_configurator")[0]
    # Only ragotel's configurator serves ragotel's /metrics; the SDK's, asked for a Prometheus exporter that is
    # not installed, would fail where this door otherwise works.
    job, found = door_job(stage, settings), list[Answered]()
    scraped = dashboards if configurator == "ragotel" else None
    if scraped is not None:
        port = free_port()
        env |= {"OTEL_METRICS_EXPORTER": "otlp,prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)}
        scraped.relay.route(job, port)
    try:
        arrived = run_door(venv, env, tmp_path, llm, None if scraped is None else query_into(found, scraped, job))
    finally:
        if scraped is not None:
            scraped.relay.route(job, None)
    assert arrived.answered == REQUESTS, arrived.stderr  # whatever the door, the app works as it would without it
    if settings == "documented" or stage == "ragotel":
        assert_exactly_once(arrived)
        assert "Traceback" not in arrived.stderr, arrived.stderr
    else:
        assert_undocumented_door(stage, distro, configurator, arrived)
    if configurator != "ragotel":  # another configurator serves no ragotel /metrics; the README's setting is the remedy
        return
    if scraped is None:
        prometheus_binary()  # skips here, fails in CI
        return
    (result,) = found  # the queries ran once, while the app served
    assert [f"{query.source}: {query.runnable}" for query in result.empty] == [], (
        f"no data for {job} within {result.seconds:.1f} s", arrived.stderr)
    assert {query.source: why for query, why in result.unexcused.items()} == {}, "data where none was expected"


def assert_undocumented_door(stage: str, distro: str, configurator: str, arrived: Arrived) -> None:
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
