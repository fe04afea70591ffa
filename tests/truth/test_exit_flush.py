"""The flush at a stop signal waits no longer than ``RAGOTEL_SHUTDOWN_TIMEOUT``, and configure() leaves alone the
handlers of signals that end nothing or end the process its own way (each in a process of its own: signal
handlers are per process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.otlp_collector_double import OtlpCollectorDouble

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = textwrap.dedent("""
    import json, signal, sys, time
    if sys.argv[1] == "ignored":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import ragotel
    ragotel.configure(service_name="exit-flush")
    with ragotel.retrieval("last lookup", data_source="shelf"):
        pass
    def named(handler):
        return getattr(handler, "name", None) or getattr(handler, "__name__", None) or type(handler).__name__
    names = ("SIGTERM", "SIGINT", "SIGQUIT")
    print(json.dumps({name: named(signal.getsignal(getattr(signal, name))) for name in names}), flush=True)
    if sys.argv[1] == "wait":
        time.sleep(60)
""")


def start(mode: str, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_"))}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            env=clean | {"PYTHONPATH": str(ROOT), "OTEL_BSP_SCHEDULE_DELAY": "600000", **env})


def test_a_stop_signal_waits_for_a_collector_that_hangs_no_longer_than_the_bound() -> None:
    with OtlpCollectorDouble(delay=20) as collector:
        process = start("wait", OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint, OTEL_METRICS_EXPORTER="none",
                        OTEL_LOGS_EXPORTER="none", RAGOTEL_SHUTDOWN_TIMEOUT="1")
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["SIGTERM"] == "_FlushThenChain"  # configured, waiting
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
        elapsed = time.monotonic() - signalled
    assert collector.requests == 1  # the queued span went out; the collector took it and never answered
    assert returncode == -signal.SIGTERM  # ended by the signal, as without ragotel
    assert elapsed < 4, f"took {elapsed:.1f} s"  # the bound (1 s), not the collector's 20 s nor its 10 s timeout


@pytest.mark.parametrize(("mode", "timeout", "expected"), [
    # SIGINT's KeyboardInterrupt unwinds to the exit, where shutdown() flushes (and asyncio.run() keeps its own
    # Ctrl-C handling only while SIGINT has this handler); SIGQUIT's default is a core dump someone asked for.
    ("plain", "5", {"SIGTERM": "_FlushThenChain", "SIGINT": "default_int_handler", "SIGQUIT": "SIG_DFL"}),
    ("ignored", "5", {"SIGTERM": "SIG_IGN", "SIGINT": "default_int_handler", "SIGQUIT": "SIG_DFL"}),
    ("plain", "0", {"SIGTERM": "SIG_DFL", "SIGINT": "default_int_handler", "SIGQUIT": "SIG_DFL"}),
], ids=["default", "sigterm-ignored", "turned-off"])
def test_configure_leaves_the_handlers_it_has_no_business_with(mode: str, timeout: str,
                                                                expected: dict[str, str]) -> None:
    process = start(mode, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                    RAGOTEL_SHUTDOWN_TIMEOUT=timeout)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert json.loads(out) == expected
