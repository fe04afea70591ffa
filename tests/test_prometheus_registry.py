"""ragotel's ``/metrics`` next to an application's own prometheus_client metrics: one endpoint shows both,
each series once (the reader registers one collector in prometheus_client's default registry; its own
internal registry is not exposed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import asyncio, json
    import httpx, prometheus_client
    import ragotel

    orders = prometheus_client.Counter("orders", "Orders taken.", ["shop"])   # the app's own metric
    orders.labels(shop="main").inc()
    ragotel.configure(service_name="shop", prometheus_port=0)

    @ragotel.retrieval(data_source="faiss")
    def search(query: str) -> list[dict]:
        return [{"id": "a", "score": 0.9}]

    search("x")

    async def scrape(accept: str) -> str:
        transport = httpx.ASGITransport(app=ragotel.prometheus_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return (await client.get("/metrics", headers={"Accept": accept})).text

    print(json.dumps([asyncio.run(scrape("text/plain")),
                      asyncio.run(scrape("application/openmetrics-text; version=1.0.0"))]))
''')


def samples(text: str) -> list[str]:
    """Every sample line without its value and exemplar: name and labels."""
    return [line.split(" ", 1)[0] if "}" not in line else line[: line.index("}") + 1]
            for line in text.splitlines() if line and not line.startswith("#")]


def test_one_endpoint_shows_the_apps_and_ragotels_series_once_each() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_"))}
    env.update({"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    for text in json.loads(result.stdout.splitlines()[-1]):
        found = samples(text)
        assert len(found) == len(set(found)), sorted({s for s in found if found.count(s) > 1})
        assert any(s.startswith("orders_total{") for s in found)
        assert any(s.startswith("rag_step_duration_seconds_count{") for s in found)
