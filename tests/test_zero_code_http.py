"""Zero-code gives one generation of the HTTP conventions: the real ``opentelemetry-instrument`` CLI runs an
app that calls a local server with httpx and with requests, instrumented by the real
opentelemetry-instrumentation-httpx and -requests; its ``/metrics`` holds their client durations under the
stable name, in seconds, as ragotel's server metrics are (the dashboards read those), unless the user chose
another HTTP mode. The other entries of ``OTEL_SEMCONV_STABILITY_OPT_IN`` stay."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ragotel.instrumentation.auto import opt_into_stable_http
from tests.test_zero_code import CLI, REPO_ROOT, free_port

APP = textwrap.dedent('''
    """Calls a local server once with httpx and once with requests; no telemetry code."""
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx
    import requests

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    assert httpx.get(url).status_code == 200
    assert requests.get(url, timeout=5).status_code == 200
    print("OPT_IN", os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN"))
    scrape = f"http://127.0.0.1:{os.environ['OTEL_EXPORTER_PROMETHEUS_PORT']}/metrics"
    with open(os.environ["SCRAPE_FILE"], "w") as out:
        out.write(requests.get(scrape, timeout=5).text)
    server.shutdown()
''')

# The client duration as each generation names it once scraped: the stable http.client.request.duration in
# seconds, the old http.client.duration in milliseconds.
STABLE = "http_client_request_duration_seconds"
OLD = "http_client_duration_milliseconds"


def run(tmp_path: Path, **extra_env: str) -> tuple[str, dict[str, set[str]]]:
    """The app under the real CLI: what it saw in ``OTEL_SEMCONV_STABILITY_OPT_IN``, and each scraped client
    duration family with the ``otel_scope_name`` of the instrumentations that recorded it."""
    script, scrape_file = tmp_path / "app.py", tmp_path / "scrape.txt"
    script.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_"))}
    env.update({"PYTHONPATH": str(REPO_ROOT), "SCRAPE_FILE": str(scrape_file), "OTEL_SERVICE_NAME": "zero-code-http",
                "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "prometheus",
                "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port()), **extra_env})
    proc = subprocess.run([str(CLI), sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    (opt_in,) = [line.split(" ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("OPT_IN ")]
    families: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scrape_file.read_text()):
        if family.name in (STABLE, OLD):
            families[family.name] = {sample.labels.get("otel_scope_name", "") for sample in family.samples}
    return opt_in, families


CONTRIB = {"opentelemetry.instrumentation.httpx", "opentelemetry.instrumentation.requests"}


def test_contrib_http_clients_record_the_stable_conventions(tmp_path: Path) -> None:
    opt_in, families = run(tmp_path, OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental")
    assert opt_in == "gen_ai_latest_experimental,http"  # the GenAI opt-in kept
    assert set(families) == {STABLE}, families
    assert families[STABLE] == CONTRIB


def test_a_user_s_http_dup_is_kept(tmp_path: Path) -> None:
    opt_in, families = run(tmp_path, OTEL_SEMCONV_STABILITY_OPT_IN="http/dup")
    assert opt_in == "http/dup"
    assert families == {STABLE: CONTRIB, OLD: CONTRIB}


@pytest.mark.parametrize(("before", "after"), [
    (None, "http"),
    ("", "http"),
    ("gen_ai_latest_experimental", "gen_ai_latest_experimental,http"),
    ("database, gen_ai_latest_experimental", "database,gen_ai_latest_experimental,http"),
    ("http", "http"),
    ("gen_ai_latest_experimental,http/dup", "gen_ai_latest_experimental,http/dup"),
])
def test_the_opt_in_gains_http_only_where_no_http_mode_was_chosen(before: str | None, after: str) -> None:
    environ = {} if before is None else {"OTEL_SEMCONV_STABILITY_OPT_IN": before}
    opt_into_stable_http(environ)
    assert environ == {"OTEL_SEMCONV_STABILITY_OPT_IN": after}
