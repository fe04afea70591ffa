"""The help desk's ragotel ``/metrics`` scraped by a real Prometheus (the Debian package), one for every door of
the matrix, and the dashboards' and alerts' queries run on what it stored.

One Prometheus serves the whole matrix: a job per door, scraped every second, started with the first door so
that its targets are in place long before a door's app runs (Prometheus applies a new target list 5 to 10 s after
it changes, and a door's app lives a few seconds). Each job scrapes a relay in this process, on a port held from
start to end, which hands the scrape (its ``Accept`` header, the answer's body and ``Content-Type``) to the
Prometheus endpoint of the app its door runs now; no other port is chosen ahead of time that something else could
take meanwhile. Each job's series carry the door as their ``namespace`` too, so every query picks one door's data,
as Grafana does with its namespace and service variables."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from dashboards.queries import PromQuery
from tests.http_double import HttpDouble
from tests.stack.conftest import prometheus

SCRAPE_INTERVAL: Final = "1s"
ANSWER_WITHIN: Final = 30.0
"""Seconds a door's queries get to return data once its requests are answered (rate() needs two scrapes)."""


class ScrapeRelay(HttpDouble):
    """``GET /<door>/metrics`` answered by the Prometheus endpoint on the port :meth:`route` gave that door; 503
    while it has none or nothing answers there."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self._lock = threading.Lock()
        super().__init__(_relay_handler(self))

    def route(self, door: str, port: int | None) -> None:
        with self._lock:
            if port is None:
                self.ports.pop(door, None)
            else:
                self.ports[door] = port

    def port_of(self, door: str) -> int | None:
        with self._lock:
            return self.ports.get(door)


def _relay_handler(relay: ScrapeRelay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            door, _, rest = self.path.lstrip("/").partition("/")
            port = relay.port_of(door)
            answer = None
            if port is not None and rest == "metrics":
                with contextlib.suppress(httpx.TransportError):
                    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2,
                                       headers={"Accept": self.headers.get("Accept", "*/*")})
            body = answer.content if answer is not None else b""
            self.send_response(answer.status_code if answer is not None else 503)
            if answer is not None and "content-type" in answer.headers:
                self.send_header("Content-Type", answer.headers["content-type"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def door_job(stage: str, settings: str) -> str:
    return f"door-{stage}-{settings}"


def prometheus_config(relay: ScrapeRelay, jobs: list[str]) -> str:
    target = relay.url.split("://", 1)[1]
    scrapes = [{"job_name": job, "metrics_path": f"/{job}/metrics",
                "static_configs": [{"targets": [target], "labels": {"namespace": job}}]} for job in jobs]
    return yaml.safe_dump({"global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
                           "scrape_configs": scrapes}, sort_keys=False)


@dataclass
class Answered:
    """A door's queries, as its Prometheus answered them while the app ran."""

    empty: list[PromQuery] = field(default_factory=list)
    """Queries that must have had data and had none."""
    unexcused: dict[PromQuery, str] = field(default_factory=dict)
    """Queries with data though the reason given for them says there is none: reason by query."""
    seconds: float = 0.0


def series(prometheus: httpx.Client, expr: str) -> list[dict[str, Any]]:
    """The instant query's result, over one kept-alive connection (a new client for each of a door's ninety-odd
    queries costs more than the queries)."""
    response = prometheus.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


def door_has_data(prometheus: httpx.Client, query: PromQuery, job: str) -> bool:
    """Whether ``query``, run as Grafana runs it with the door's namespace and service chosen, returns a series of
    that door's: every series it returns that keeps the job or namespace label must name the door there, since an
    alert's query chooses neither."""
    found = series(prometheus, query.expand({"$service": job, "$namespace": job}))
    return any(s["metric"].get("job", job) == job and s["metric"].get("namespace", job) == job for s in found)


def answer(prometheus_url: str, job: str, answered: list[PromQuery], excused: dict[PromQuery, str]) -> Answered:
    """Until every query of ``answered`` has data for ``job`` (up to :data:`ANSWER_WITHIN` s), then each of
    ``excused`` once: it must have none."""
    start = time.monotonic()
    empty = answered
    with httpx.Client(base_url=prometheus_url, timeout=30) as prometheus:
        while empty and time.monotonic() - start < ANSWER_WITHIN:
            empty = [query for query in empty if not door_has_data(prometheus, query, job)]
            if empty:
                time.sleep(0.25)  # the next scrape is at most a second away
        unexcused = {query: why for query, why in excused.items() if door_has_data(prometheus, query, job)}
    return Answered(empty, unexcused, time.monotonic() - start)


@contextlib.contextmanager
def door_prometheus(binary: str, directory: Path, jobs: list[str]) -> Iterator[tuple[ScrapeRelay, str]]:
    """The relay and the URL of a Prometheus scraping each of ``jobs`` through it."""
    with ScrapeRelay() as relay, contextlib.ExitStack() as running:
        process, url = prometheus(binary, directory / "prometheus", prometheus_config(relay, jobs), directory)
        running.enter_context(process)
        yield relay, url
