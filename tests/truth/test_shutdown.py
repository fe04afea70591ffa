"""Every span of a stopped server arrives once, and the server exits as it would without ragotel.

Each scenario serves ``tests/truth/inventory_service.py`` with a real server (uvicorn alone or with its worker
processes, gunicorn with uvicorn workers, hypercorn) as a child process exporting over OTLP/HTTP to ragotel's
receiver. It makes ``REQUESTS`` requests, starts one more that is still being answered when it stops the server
(and, for Kubernetes, one that never finishes), and stops it one way: SIGTERM, SIGINT, the ASGI lifespan
shutdown on its own (uvicorn's ``--limit-max-requests``), or as Kubernetes stops a pod (SIGTERM to the main
process, SIGKILL to all of it after the grace period). The batch processors' delay is set far beyond the test,
so telemetry reaches the receiver only if something flushed it before the process ended.

The truth is what the scenario did and what the app wrote down it finished (its ledger, kept apart from any
telemetry: whether a server ran the lifespan shutdown or ended the endless request is the server's choice).
The receiver must hold exactly one server span per finished request and one retrieval span per lookup, none
twice; and the exit status must equal that of the same server, stop and requests with no ragotel in the process
(measured, not assumed: servers differ, and how a server exits is its contract with its supervisor).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.reference_app.processes import free_port, group_alive
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import load_spans

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.truth.inventory_service:app"
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
ITEMS = ("bolt", "nut", "washer")
REQUESTS = len(ITEMS)
SERVER_GRACE_S = 2
"""gunicorn's and hypercorn's own graceful timeout (``--graceful-timeout``), shortened from their defaults
(30 s, 3 s) as the pod's grace period is below."""
GRACE_S = 5.0
"""The pod's termination grace period, scaled down from Kubernetes' 30 s; longer than the servers' own, so each
server does what it does with a request still in flight before the SIGKILL."""


@dataclass(frozen=True)
class Case:
    server: str  # uvicorn, uvicorn-workers (its own process manager), gunicorn, hypercorn
    stop: str  # sigterm, sigint, lifespan, kubernetes
    telemetry: str = "code"  # code: configure() + instrument_fastapi(); zero-code: opentelemetry-instrument; none

    @property
    def id(self) -> str:
        return "-".join((self.server, self.stop) + (() if self.telemetry == "code" else (self.telemetry,)))

    @property
    def baseline(self) -> Case:
        return Case(self.server, self.stop, "none")


CASES = [
    *(Case(server, stop) for server in ("uvicorn", "gunicorn", "hypercorn")
      for stop in ("sigterm", "sigint", "kubernetes")),
    Case("uvicorn", "lifespan"),
    Case("uvicorn-workers", "sigterm"),
    Case("uvicorn", "sigterm", "zero-code"),
]


@dataclass(frozen=True)
class Outcome:
    returncode: int
    service: str
    log: Path
    ledger: Counter[str]

    def describe(self) -> str:
        return (f"exit {self.returncode}, ledger {dict(self.ledger)}; {self.log}:\n"
                f"{self.log.read_text(errors='replace')[-3000:]}")


def _command(case: Case, port: int) -> list[str]:
    if case.server.startswith("uvicorn"):
        command = [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
        if case.stop == "lifespan":
            command += ["--limit-max-requests", str(REQUESTS + 1)]
        if case.server == "uvicorn-workers":  # each worker imports the app only once its signal handlers are set
            command += ["--workers", "2"]
    elif case.server == "gunicorn":
        # No control socket: its default path is one per user, and the cases run side by side.
        command = [sys.executable, "-m", "gunicorn", APP, "--worker-class", "uvicorn_worker.UvicornWorker",
                   "--workers", "1", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", str(SERVER_GRACE_S),
                   "--no-control-socket"]
    else:
        command = [sys.executable, "-m", "hypercorn", APP, "--bind", f"127.0.0.1:{port}",
                   "--graceful-timeout", str(SERVER_GRACE_S)]
    return [str(INSTRUMENT), *command] if case.telemetry == "zero-code" else command


def wait_listening(process: subprocess.Popen[Any], port: int, timeout: float = 60) -> None:
    """Until the port accepts connections: a connection is no request, so ``--limit-max-requests`` counts only
    the scenario's own. (uvicorn listens once its lifespan startup is done; gunicorn's and hypercorn's main
    process listens first, and their worker takes what waits there once it is up.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode} before listening"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the server and every process it started are gone within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        process.poll()  # reaps the leader: a zombie keeps the group alive
        if process.returncode is not None and not group_alive(process.pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _stop(case: Case, process: subprocess.Popen[bytes], client: httpx.Client) -> None:
    """Stop the server as ``case`` says, with a restock being answered (and for Kubernetes an endless stream)."""
    with contextlib.ExitStack() as open_answers:
        if case.stop == "kubernetes":
            endless = open_answers.enter_context(client.stream("GET", "/stream")).iter_raw()
            assert next(endless) == b"counting\n"  # the iterator is held: dropping it would close the answer
        restock = open_answers.enter_context(client.stream("GET", "/restock/bolt"))
        parts = restock.iter_raw()
        assert next(parts) == b"restocking\n"  # being answered
        if case.stop in ("sigterm", "sigint", "kubernetes"):
            process.send_signal(signal.SIGINT if case.stop == "sigint" else signal.SIGTERM)
        assert b"".join(parts) == b"restocked\n"  # every server finishes what it has started
        if case.stop == "kubernetes" and not _wait_exit(process, GRACE_S):
            os.killpg(process.pid, signal.SIGKILL)
        assert _wait_exit(process, 30), f"the server did not stop ({case.stop})"


def run(case: Case, receiver: OtlpReceiver, logs: Path) -> Outcome:
    port = free_port()
    service, log, ledger = f"inventory-{case.id}", logs / f"{case.id}.log", logs / f"{case.id}.ledger"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_", "FASTAPI_OTEL_"))}
    env |= {
        "PYTHONPATH": str(ROOT), "INVENTORY_TELEMETRY": "code" if case.telemetry == "code" else "none",
        "INVENTORY_LEDGER": str(ledger),
        "OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        # Nothing leaves by the batch processors' schedule during the test: only a flush sends it.
        "OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BLRP_SCHEDULE_DELAY": "600000",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        # the openai SDK instrumentations the test extra installs are not what this is about
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(_command(case, port), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    try:
        wait_listening(process, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for item in ITEMS:
                assert client.get(f"/stock/{item}").status_code == 200
            _stop(case, process, client)
    finally:
        if not _wait_exit(process, 0):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode is not None
    finished = Counter(ledger.read_text().split("\n")[:-1]) if ledger.exists() else Counter()
    return Outcome(process.returncode, service, log, finished)


class Runs:
    """The selected cases and their baselines, run a few at a time in the background from the module's start:
    most of a scenario's time is a server starting or a grace period passing."""

    def __init__(self, cases: list[Case], receiver: OtlpReceiver, logs: Path) -> None:
        self._pool = ThreadPoolExecutor(max_workers=4)
        self._futures: dict[Case, Future[Outcome]] = {}
        for case in cases:
            for each in (case, case.baseline):
                if each not in self._futures:
                    self._futures[each] = self._pool.submit(run, each, receiver, logs)

    def outcome(self, case: Case) -> Outcome:
        return self._futures[case].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(port=0, spans_path=tmp_path_factory.mktemp("receiver") / "spans.jsonl") as rx:
        yield rx


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, receiver: OtlpReceiver,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "module", None) is request.module and hasattr(item, "callspec")]
    runs = Runs(selected, receiver, tmp_path_factory.mktemp("servers"))
    yield runs
    runs.close()


def expected_spans(case: Case, ledger: Counter[str]) -> Counter[str]:
    """One server span per request the app finished; under configure() one step span per lookup it made."""
    truth = Counter({"GET /stock/{item}": ledger["stock"], "GET /restock/{item}": ledger["restock"],
                     "GET /stream": ledger["stream ended"]})
    if case.telemetry == "code":
        truth |= Counter({"retrieval shelf": ledger["stock"] + ledger["restock"],
                          "retrieval ledger": ledger["stocktake"]})
    return +truth


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_every_span_arrives_once_and_the_exit_status_is_the_servers_own(
        case: Case, runs: Runs, receiver: OtlpReceiver) -> None:
    outcome, baseline = runs.outcome(case), runs.outcome(case.baseline)
    assert (outcome.ledger["stock"], outcome.ledger["restock"]) == (REQUESTS, 1), outcome.describe()
    spans = [span for span in load_spans(receiver.spans_path) if span.service_name == outcome.service] \
        if receiver.spans_path.exists() else []
    assert Counter(span.name for span in spans) == expected_spans(case, outcome.ledger), outcome.describe()
    assert len({span.span_id for span in spans}) == len(spans)  # none exported twice
    servers = {span.span_id for span in spans if span.name.startswith("GET ")}
    assert {span.parent_span_id for span in spans if span.name == "retrieval shelf"} <= servers  # in its request
    assert outcome.returncode == baseline.returncode, (
        f"with ragotel: {outcome.describe()}\n\nwithout: {baseline.describe()}")
