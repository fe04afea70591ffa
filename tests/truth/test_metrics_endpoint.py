"""The migration guide's ``/metrics`` as written: ``configure()`` without ``prometheus_port`` and
``instrument_fastapi(app, metrics_path="/metrics")`` serve ragotel's series beside the application's own
prometheus_client ones, each once. Where ragotel's series cannot reach that endpoint (the application set its
own MeterProvider without a Prometheus reader, or nothing set one), one WARNING says what to do.

Each scenario runs a real FastAPI app in a fresh process (one global MeterProvider per process), requests it
through Starlette's TestClient, scrapes ``/metrics`` and reports the scrape and ragotel's log records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

# The migration guide (docs/migrating.md), in code: the hand-written metrics go except a business counter; configure();
# the stages become steps; instrument_fastapi(app, metrics_path="/metrics") replaces the generate_latest() route.
APP = textwrap.dedent('''
    import json, logging, sys
    import prometheus_client
    from fastapi import FastAPI
    from starlette.testclient import TestClient
    import ragotel

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append({"level": record.levelname, "message": record.getMessage()})

    logging.getLogger("ragotel").addHandler(Keep())
    SCENARIO = sys.argv[1]

    ORDERS = prometheus_client.Counter("orders", "Orders taken.")  # kept: ragotel does not know it

    if SCENARIO.startswith("own_provider"):  # the application sets its own MeterProvider first
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        readers = []
        if SCENARIO == "own_provider_with_prometheus":
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            readers.append(PrometheusMetricReader())
        metrics.set_meter_provider(MeterProvider(metric_readers=readers))

    app = FastAPI()

    @ragotel.retrieval("search", data_source="faiss")
    def search(query: str) -> list[dict]:
        return [{"id": "a", "score": 0.9}]

    @app.get("/ask")
    def ask(q: str) -> dict:
        ORDERS.inc()
        return {"hits": len(search(q))}

    if SCENARIO == "instrument_first":
        ragotel.instrument_fastapi(app, metrics_path="/metrics")
        ragotel.configure(service_name="chat-api")
    elif SCENARIO == "no_configure":
        ragotel.instrument_fastapi(app, metrics_path="/metrics")
    elif SCENARIO == "prometheus_app":  # the route mounted by hand, as the configure() section shows
        ragotel.configure(service_name="chat-api")
        ragotel.instrument_fastapi(app)
        app.add_route("/metrics", ragotel.prometheus_app())
    else:
        ragotel.configure(service_name="chat-api")
        ragotel.instrument_fastapi(app, metrics_path="/metrics")

    with TestClient(app) as client:
        assert client.get("/ask", params={"q": "opening hours"}).status_code == 200
        first = client.get("/metrics").text
        client.get("/ask", params={"q": "parking"})
        second = client.get("/metrics").text
    print(json.dumps({"scrapes": [first, second], "records": records}))
''')


def run(scenario: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_"))}
    # Nothing to export to: OTLP off, so only the Prometheus endpoint is in play.
    env.update({"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    result = subprocess.run([sys.executable, "-c", APP, scenario], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return found


def samples(text: str) -> list[str]:
    """Every sample line without its value: name and labels."""
    return [line.split(" ", 1)[0] if "}" not in line else line[: line.index("}") + 1]
            for line in text.splitlines() if line and not line.startswith("#")]


def value(text: str, prefix: str) -> float:
    """The value of the one sample whose line starts with ``prefix``."""
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


def warnings(found: dict[str, Any]) -> list[str]:
    return [r["message"] for r in found["records"] if r["level"] == "WARNING"]


@pytest.mark.parametrize("scenario", ["guide", "instrument_first", "prometheus_app"])
def test_metrics_path_serves_ragotels_series_without_prometheus_port(scenario: str) -> None:
    found = run(scenario)
    first, second = found["scrapes"]
    for text in (first, second):
        names = samples(text)
        assert len(names) == len(set(names)), sorted({s for s in names if names.count(s) > 1})
        assert any(s.startswith("orders_total") for s in names)  # the application's own metric, still there
    route = 'http_server_request_duration_seconds_count{'
    assert value(first, "rag_step_duration_seconds_count{") == 1
    assert value(second, "rag_step_duration_seconds_count{") == 2
    (line,) = [s for s in samples(second) if s.startswith(route)]
    assert 'http_route="/ask"' in line and value(second, route) == 2  # the scrapes themselves are not counted
    assert warnings(found) == []


def test_the_applications_own_provider_with_a_prometheus_reader_serves_them_too() -> None:
    found = run("own_provider_with_prometheus")
    assert value(found["scrapes"][1], "rag_step_duration_seconds_count{") == 2
    assert not [w for w in warnings(found) if "/metrics" in w or "metrics_path" in w]


def test_the_applications_own_provider_without_one_gets_one_warning_naming_the_fix() -> None:
    found = run("own_provider")
    assert not any(s.startswith("rag_step_duration") for s in samples(found["scrapes"][1]))
    (warning,) = [w for w in warnings(found) if "metrics_path" in w]
    assert "own MeterProvider" in warning and "PrometheusMetricReader" in warning, warning


def test_an_endpoint_without_configure_gets_one_warning_at_its_first_scrape() -> None:
    found = run("no_configure")
    (warning,) = warnings(found)
    assert "ragotel.configure()" in warning, warning
