"""Instrumentation never raises into the application, whatever release of a library it meets.

A library whose layout ragotel does not know (httpx 1.0's pre-releases have no ``AsyncClient``, no
``Client.send`` and no byte stream classes; a ``requests`` without ``requests.adapters.HTTPAdapter``) is left
uninstrumented with one WARNING naming the library, its version and what goes uninstrumented; what the
process has that ragotel does know (httpx2 beside such an httpx) is instrumented as usual.

The layouts are test doubles shaped like those releases, put in ``sys.modules`` for one test; one test runs
the real httpx 1.0.dev6 (what ``pip install --pre httpx`` picks) in a subprocess when pip can fetch it.
"""

from __future__ import annotations

import importlib.machinery
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ragotel
from ragotel import semconv as sc
from ragotel.instrumentation._base import Instrumentor
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

CHAT = {"model": "tiny-llama", "messages": [{"role": "user", "content": "When does the clinic open?"}],
        "max_tokens": 16}


def module_double(name: str, version: str, **members: Any) -> ModuleType:
    """A test double of a library's top-level module: only ``members``, with a spec so import machinery and
    OpenTelemetry's dependency check treat it as imported."""
    module = ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__version__ = version  # type: ignore[attr-defined]
    for key, value in members.items():
        value.__module__ = f"{name}._client"
        setattr(module, key, value)
    return module


def httpx_1_layout_double(version: str = "1.0.dev6") -> ModuleType:
    """A test double shaped like httpx 1.0.dev6's top level: one ``Client`` that sends through its transport
    (no ``send`` of its own), no ``AsyncClient``, no ``SyncByteStream`` / ``AsyncByteStream``. Warnings come
    once per release: each test names its own."""

    class Client:
        def request(self, method: str, url: str) -> None:
            raise NotImplementedError  # never called: only the layout matters

    class Stream:
        pass

    return module_double("httpx", version, Client=Client, Stream=Stream)


def sync_only_layout_double() -> ModuleType:
    """A test double of an httpx-like release that kept the sync client and dropped the async one."""

    class Client:
        def send(self, request: Any, **kwargs: Any) -> None:
            raise NotImplementedError

    class SyncByteStream:
        pass

    return module_double("httpx", "0.99.0", Client=Client, SyncByteStream=SyncByteStream)


@pytest.fixture
def uninstrumented() -> Iterator[None]:
    yield
    ragotel.uninstrument_httpx()
    ragotel.uninstrument_requests()


@pytest.fixture
def server() -> Iterator[RecordedOpenAIServer]:
    with RecordedOpenAIServer() as srv:
        yield srv


def ragotel_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ragotel" and r.levelno == logging.WARNING]


def test_httpx_1_layout_is_skipped_with_one_warning_and_httpx2_still_instrumented(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, uninstrumented: None,
    recorded: Recorded, server: RecordedOpenAIServer,
) -> None:
    httpx2 = pytest.importorskip("httpx2")
    originals = httpx2.Client.send, httpx2.AsyncClient.send
    monkeypatch.setitem(sys.modules, "httpx", httpx_1_layout_double())
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        ragotel.instrument_httpx()
        ragotel.instrument_httpx()  # again: nothing new to say
    (warning,) = ragotel_warnings(caplog)
    assert warning.startswith("ragotel: httpx 1.0.dev6 has no Client.send, SyncByteStream, AsyncClient, "
                              "AsyncByteStream"), warning
    assert "sync and async clients are not instrumented" in warning
    assert ragotel.HttpxInstrumentor().is_instrumented_by_opentelemetry
    assert (httpx2.Client.send, httpx2.AsyncClient.send) != originals
    with httpx2.Client(base_url=server.base_url) as client:  # what the process has that ragotel knows
        client.post("/chat/completions", json=CHAT)
    (span,) = [s for s in recorded.spans() if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) == "chat"]
    assert span.name == "chat tiny-llama"


def test_a_layout_with_the_sync_client_only_gets_the_sync_client_instrumented(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, uninstrumented: None
) -> None:
    double = sync_only_layout_double()
    original = double.Client.send
    monkeypatch.setitem(sys.modules, "httpx", double)
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        ragotel.instrument_httpx()
    assert double.Client.send is not original
    assert any(w.startswith("ragotel: httpx 0.99.0 has no AsyncClient, AsyncByteStream")
               and "async clients are not instrumented" in w for w in ragotel_warnings(caplog))
    ragotel.uninstrument_httpx()
    assert double.Client.send is original


def test_one_client_of_an_unknown_layout_is_left_alone_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    double = httpx_1_layout_double("1.0.dev7")
    monkeypatch.setitem(sys.modules, "httpx", double)
    client = double.Client()
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        ragotel.instrument_httpx(client)
    (warning,) = ragotel_warnings(caplog)
    assert "httpx 1.0.dev7 has no Client.send, SyncByteStream" in warning, warning
    assert "send" not in vars(client)


def test_requests_without_the_adapter_it_patches_stays_uninstrumented_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, uninstrumented: None
) -> None:
    pytest.importorskip("requests")
    adapters = ModuleType("requests.adapters")  # a test double: a release that moved HTTPAdapter elsewhere
    monkeypatch.setitem(sys.modules, "requests.adapters", adapters)
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        ragotel.instrument_requests()
        ragotel.instrument_requests()
    (warning,) = ragotel_warnings(caplog)
    assert warning.startswith("ragotel: instrument_requests() cannot instrument requests 2."), warning
    assert "ImportError" in warning and "stays uninstrumented" in warning
    assert not ragotel.RequestsInstrumentor().is_instrumented_by_opentelemetry


def test_fastapi_without_its_app_class_leaves_starlette_uninstrumented_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.applications import Starlette

    original = Starlette.__call__
    applications = ModuleType("fastapi.applications")  # a test double: a release that renamed FastAPI
    monkeypatch.setitem(sys.modules, "fastapi.applications", applications)
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        ragotel.FastApiInstrumentor().instrument()
    (warning,) = ragotel_warnings(caplog)
    assert warning.startswith("ragotel: FastApiInstrumentor().instrument() cannot instrument starlette "), warning
    assert "AttributeError" in warning
    assert Starlette.__call__ is original  # patched first, then undone
    assert not ragotel.FastApiInstrumentor().is_instrumented_by_opentelemetry


class Target:
    """What the instrumentor below patches."""

    def first(self) -> str:
        return "first"

    def second(self) -> str:
        return "second"


def halfway(label: str, error: type[Exception]) -> type[Instrumentor]:
    """An instrumentor (its own singleton) that patches one method of ``Target``, then meets ``error``: a library
    release whose next part is gone."""

    class Halfway(Instrumentor):
        def instrumentation_dependencies(self) -> tuple[str, ...]:
            return ("pytest",)

        def _instrument(self, **kwargs: Any) -> None:
            self._patches.apply(Target, "first", lambda original: lambda self: "patched")
            raise error("module 'target' has no attribute 'Second'")

    Halfway.label = label
    return Halfway


def test_an_instrumentor_failing_halfway_undoes_its_patches_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    instrumentor = halfway("instrument_target()", AttributeError)
    with caplog.at_level(logging.WARNING, logger="ragotel"):
        instrumentor.turn_on()
        instrumentor.turn_on()
    (warning,) = ragotel_warnings(caplog)
    assert warning.startswith(f"ragotel: instrument_target() cannot instrument pytest {pytest.__version__} "
                              "(AttributeError: module 'target' has no attribute 'Second')"), warning
    assert Target().first() == "first"  # the half-done patch is undone
    assert not instrumentor().is_instrumented_by_opentelemetry


def test_the_opentelemetry_instrument_loader_still_sees_a_missing_library() -> None:
    # The loader skips an instrumentor whose library is not installed when it raises ModuleNotFoundError.
    instrumentor = halfway("instrument_missing()", ModuleNotFoundError)
    with pytest.raises(ModuleNotFoundError):
        instrumentor().instrument(raise_exception_on_conflict=True)
    assert Target().first() == "first"
    instrumentor().instrument()  # called by the application: nothing raised
    assert Target().first() == "first" and not instrumentor().is_instrumented_by_opentelemetry


# The real release, in a fresh process: httpx 1.0.dev6 put first on the path; everything else from this venv.
REAL = textwrap.dedent('''
    import json, logging
    import httpx
    import ragotel

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append({"level": record.levelname, "message": record.getMessage()})

    logging.getLogger("ragotel").addHandler(Keep())
    ragotel.instrument_httpx()
    ragotel.instrument_httpx(httpx.Client())
    try:
        import httpx2
        patched = [hasattr(cls.send, "__wrapped__") for cls in (httpx2.Client, httpx2.AsyncClient)]
    except ImportError:
        patched = None
    print(json.dumps({"version": httpx.__version__, "records": records, "httpx2": patched}))
''')


def test_the_real_httpx_1_dev6_is_skipped_with_one_warning(tmp_path: Path) -> None:
    target = tmp_path / "site"
    fetched = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--pre",
                              "--target", str(target), "httpx==1.0.dev6"], capture_output=True, text=True, timeout=180)
    if fetched.returncode != 0:
        pytest.skip(f"pip cannot fetch httpx 1.0.dev6 here: {fetched.stderr.strip()[-300:]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(Path(__file__).parents[2])])
    result = subprocess.run([sys.executable, "-c", REAL], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["version"] == "1.0.dev6"
    (warning,) = [r["message"] for r in found["records"] if r["level"] == "WARNING"]
    assert warning.startswith("ragotel: httpx 1.0.dev6 has no Client.send, SyncByteStream, AsyncClient, "
                              "AsyncByteStream"), warning
    if found["httpx2"] is not None:
        assert found["httpx2"] == [True, True]  # httpx2 beside it: instrumented
