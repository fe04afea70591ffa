"""What the door matrix's dashboard check expects, checked without a stack: which queries the help desk can give
data to (tests/doors/help_desk_series.py), the reason given for each other one, and the relay Prometheus scrapes
the doors through (tests/doors/scrape.py)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import promql_parser
import pytest
import yaml

from dashboards import promql as q
from dashboards.queries import PromQuery
from tests.doors.help_desk_series import HELP_DESK_SERIES, Series, has_data, help_desk_series, partition
from tests.doors.scrape import ScrapeRelay, prometheus_config
from tests.http_double import HttpDouble
from tests.stack.test_dashboard_queries import local_queries

RECORDED = (Series("a", {"job": "x", "k": "v"}), Series("a_bucket", {"le": "1"}), Series("c", {"k": "w"}))


@pytest.mark.parametrize(("expr", "expected"), [
    ("a", True), ("b", False), ("a or b", True), ("b or a", True), ("a / b", False), ("b / a", False),
    ("sum(a) and sum(c)", True), ("a and on (job) b", False), ("a unless b", True), ("b unless a", False),
    ("(b) or vector(0)", True), ("sum(rate(b[1m])) * 0", False), ("-a", True), ("(b)", False),
    ("histogram_quantile(0.9, sum by (le) (rate(a_bucket[1m])))", True),
    ('label_replace(b, "x", "y", "__name__", ".*")', False), ("sum(rate(a[1m]))[5m:1m]", True),
    ('a{k="v"}', True), ('a{k!="v"}', False), ('a{k=~"v|w"}', True), ('a{k=~"w"}', False), ('a{k!~"v"}', False),
    ('a{missing=""}', True), ('a{missing!=""}', False), ('a{missing=~".*"}', True), ('a{missing=~".+"}', False),
    ('{__name__=~"z|a"}', True), ('{__name__=~"z|y"}', False), ('{__name__=~"a|c", k="w"}', True),
])
def test_data_where_promql_would_have_some(expr: str, expected: bool) -> None:
    assert has_data(promql_parser.parse(expr), RECORDED) is expected


def test_a_function_that_answers_where_there_is_no_data_is_not_guessed() -> None:
    with pytest.raises(NotImplementedError):
        has_data(promql_parser.parse("absent(b)"), RECORDED)


@pytest.fixture(scope="module")
def queries() -> list[PromQuery]:
    return local_queries(node_exporter=False)


def test_every_query_has_data_or_a_reason(queries: list[PromQuery]) -> None:
    answered, excused = partition(queries)
    assert len(answered) + len(excused) == len(queries) and not set(answered) & set(excused)
    assert all(why.strip() for why in excused.values())
    sources = {query.source for query in answered}
    # The server metric every overview panel reads, and the model call ragotel records outside any step.
    assert {"rag-overview / Requests/s", "rag-overview / 5xx ratio", "rag-overview / In flight",
            "rag-overview / Requests/s by route and status", "rag-kubernetes / App requests/s",
            "rag-overview / Tokens/s", "rag-cost / Tokens in range", "rag-overview / p95 by step"} <= sources
    by_source = {query.source: why for query, why in excused.items()}
    assert by_source["alert VllmKvCacheNearlyFull"].startswith("reads vLLM's own metrics")
    assert by_source["rag-overview / Cost"].startswith("needs a price table")
    assert by_source["rag-retrieval / Search latency"] == f"the app records no {q.STEP_DURATION}_bucket"
    assert f'{q.HTTP_DURATION}_count{{error_type!=""}}' in by_source["alert RagChatErrorRateHigh"]
    assert "rag_pipeline_duration_seconds_bucket" in by_source["rag-overview / End-to-end p95"]


def test_without_the_model_call_its_panels_have_no_data(queries: list[PromQuery]) -> None:
    """The expectation follows the series: take the chat call's away and its panels are excused, naming them."""
    answered, _ = partition(queries)
    fewer, excused = partition(queries, help_desk_series(chat_call=False))
    moved = {query.source: excused[query] for query in answered if query not in fewer}
    assert set(moved) == {"rag-cost / Tokens in range", "rag-cost / Tokens/s by type",
                          "rag-generation / Call latency p95", "rag-overview / Tokens/s",
                          "rag-overview / p95 by step", "rag-overview / Time share by step kind",
                          "rag-overview / Tokens/s by type"}, moved
    assert all(why.startswith("the app records no ") for why in moved.values())
    assert all(query.source.startswith(("rag-overview", "rag-kubernetes")) for query in fewer)
    assert len(help_desk_series(chat_call=False)) < len(HELP_DESK_SERIES)


def _metrics_handler(seen: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Accept", ""))
            body = b"up_like 1\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def relay() -> Iterator[ScrapeRelay]:
    with ScrapeRelay() as running:
        yield running


def test_the_relay_hands_each_scrape_to_the_door_that_runs_now(relay: ScrapeRelay) -> None:
    seen: list[str] = []
    with HttpDouble(_metrics_handler(seen)) as app:
        port = int(app.url.rsplit(":", 1)[1])
        assert httpx.get(f"{relay.url}/door-a/metrics").status_code == 503  # no app yet
        relay.route("door-a", port)
        answer = httpx.get(f"{relay.url}/door-a/metrics", headers={"Accept": "application/openmetrics-text"})
        assert (answer.status_code, answer.text) == (200, "up_like 1\n")
        assert answer.headers["content-type"] == "text/plain; version=0.0.4"
        assert seen == ["application/openmetrics-text"]
        assert httpx.get(f"{relay.url}/door-b/metrics").status_code == 503  # another door's job
        relay.route("door-a", None)
        assert httpx.get(f"{relay.url}/door-a/metrics").status_code == 503
    relay.route("door-a", port)  # routed, but nothing listens there any more
    assert httpx.get(f"{relay.url}/door-a/metrics").status_code == 503


def test_each_door_is_a_job_and_a_namespace_of_its_own(relay: ScrapeRelay) -> None:
    config = yaml.safe_load(prometheus_config(relay, ["door-a", "door-b"]))
    jobs = [(c["job_name"], c["metrics_path"], c["static_configs"][0]["labels"]) for c in config["scrape_configs"]]
    assert jobs == [("door-a", "/door-a/metrics", {"namespace": "door-a"}),
                    ("door-b", "/door-b/metrics", {"namespace": "door-b"})]
    assert {c["static_configs"][0]["targets"][0] for c in config["scrape_configs"]} == {relay.url.split("://")[1]}
