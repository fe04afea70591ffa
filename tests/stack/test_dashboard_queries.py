"""Every dashboard and alert query, run through a real Prometheus scraping the reference app and vLLM
after real traffic (answers, streams, bad input, a failing generation): each must return data. The
few that need a cluster's exporters are parsed and their names checked against the exporters' docs
(tests/dashboards/test_cluster_panels.py runs them on those exporters' series).
Every attribute a TraceQL catalog query reads must be on the spans the same run emitted.

The same queries run against an app ragotel's examples do not contain (tests/apps/plainrag, decorated
by hand under its own step names and scrape jobs) and against the same app renamed once more at scrape
time: each query with data on the reference app has data on both, or docs/dashboards.md names what it needs.
That app runs once under each GenAI mode (the default conventions, then ``gen_ai_latest_experimental``).

They run too against two apps written on LangChain and LlamaIndex (tests/apps/lcrag, tests/apps/lirag), which
import nothing of ragotel and run unchanged under ``opentelemetry-instrument``: each query with data on the
reference app has data for each of them, or docs/dashboards.md names what it needs."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from dashboards import exporters, needs, traceql
from dashboards import promql as q
from dashboards.queries import PromQuery, alert_queries, dashboard_queries
from examples.reference_app.run_local import LocalStack, stream_once
from examples.reference_app.vllm_server import VllmServer
from ragotel import semconv as sc
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import load_spans
from tests.apps.plainrag.launch import PlainRag
from tests.apps.served import ServedApp, counts, totals
from tests.stack.conftest import FRAMEWORK_JOBS, FrameworkStack, PlainStack

pytestmark = pytest.mark.stack

QUESTIONS = ("Is there parking at the clinic?", "How do I cancel an appointment?", "Do you treat children?")


def cluster_only(query: PromQuery) -> bool:
    metrics = query.metrics()
    return bool(metrics) and metrics <= exporters.CLUSTER_ONLY


# Counted by the ingest job, which exits before any scrape and pushes them over OTLP (to Alloy in a cluster);
# the local Prometheus cannot receive OTLP. tests/stack/test_ingest_metrics.py checks the real ingest emits
# exactly these names, with the counts it wrote.
PUSHED_BY_INGEST = frozenset({q.INDEX_DOCUMENTS_WRITTEN, q.INDEX_CHUNKS_EMBEDDED, q.INDEX_CHUNKS_WRITTEN})


def pushed_by_ingest(query: PromQuery) -> bool:
    metrics = query.metrics()
    return bool(metrics) and metrics <= PUSHED_BY_INGEST


def send_traffic(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.chat_url, timeout=120) as chat:
        for question in QUESTIONS:
            answer = chat.post("/chat", json={"question": question, "max_tokens": 16})
            assert answer.status_code == 200
            stream_once(stack.chat_url, question)
            # A user's verdict on the answer (the overview's feedback share reads it).
            feedback = {"trace_id": answer.json()["trace_id"], "label": "up", "score": 1.0}
            assert chat.post("/feedback", json=feedback).status_code == 202
        # Bad input: rejected by the chat API and by the retriever (request-stage errors).
        assert chat.post("/chat", json={"question": ""}).status_code == 422
        assert chat.post("/chat", json={"question": "hi", "k": 99}).status_code == 422
        # A question of 2000 odd characters does not fit the model's 1024-token window: refused up front.
        refused = chat.post("/chat", json={"question": ("qz7x " * 400)[:2000], "max_tokens": 16})
        assert refused.status_code == 422 and "context window of 1024" in refused.json()["detail"], refused.text
    assert httpx.post(f"{stack.retriever_url}/search", json={"query": ""}, timeout=30).status_code == 422


def fail_requests(stack: LocalStack, vllm: VllmServer) -> None:
    """Real faults: the retriever, then vLLM, stopped and started again; meanwhile the chat API
    answers 503 naming retrieval, then 502 naming generation."""
    for process, status, stage in ((stack.processes["retriever"], 503, "retrieval"), (vllm, 502, "generation")):
        process.stop()
        try:
            failed = httpx.post(f"{stack.chat_url}/chat", json={"question": "Is there parking?"}, timeout=60)
            assert failed.status_code == status and failed.json()["stage"] == stage, failed.text
        finally:
            process.start()


def series(prometheus_url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """The instant query's result, now or at Unix time ``at``."""
    params: dict[str, str | float] = {"query": expr} if at is None else {"query": expr, "time": at}
    response = httpx.get(f"{prometheus_url}/api/v1/query", params=params, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


def local_queries(node_exporter: bool) -> list[PromQuery]:
    """The queries a local stack can answer: not the cluster exporters', not the ingest job's."""
    queries = dashboard_queries() + alert_queries()
    local = [query for query in queries if not cluster_only(query) and not pushed_by_ingest(query)]
    if not node_exporter:  # not installed here; conftest.check_parts fails in CI
        local = [query for query in local if not query.metrics() & exporters.DOCUMENTED["node-exporter"]]
    return local


def test_every_dashboard_and_alert_query_returns_data(stack: LocalStack, vllm: VllmServer) -> None:
    assert stack.prometheus_url, "Prometheus is not installed (scripts/install_tools.sh)"
    send_traffic(stack)
    fail_requests(stack, vllm)
    local = local_queries(stack.node_exporter_url is not None)
    assert len(local) > 60
    # rate() needs two scrapes (every 5 s) after the traffic; give Prometheus up to a minute.
    deadline, empty = time.monotonic() + 60, local
    while empty and time.monotonic() < deadline:
        time.sleep(5)
        empty = [query for query in empty if not series(stack.prometheus_url, query.runnable)]
    assert [f"{q.source}: {q.runnable}" for q in empty] == []


def test_cluster_only_queries_read_documented_exporter_metrics() -> None:
    reviewed = [query for query in dashboard_queries() + alert_queries() if cluster_only(query)]
    sources = {query.source.split(" / ")[0] for query in reviewed}
    # The reviewed list: GPU and Kubernetes dashboards, and the GPU memory alert. Nothing else may hide here.
    pushed = {query.source for query in dashboard_queries() + alert_queries() if pushed_by_ingest(query)}
    assert pushed == {"rag-retrieval / Index writes at ingest"}, pushed
    assert sources == {"rag-gpu", "rag-kubernetes", "alert GpuMemoryHigh"}, sources
    for query in reviewed:
        assert query.metrics() <= exporters.CLUSTER_ONLY


# What a query reads that only the latest GenAI conventions set, with the name the default gives it (the
# reference app runs the default; tests/test_genai_modes.py checks the latest sets these).
LATEST_ONLY_ATTRIBUTES = {("span", sc.GEN_AI_AGENT_NAME): ("span", sc.GEN_AI_WORKFLOW_NAME)}


def test_traceql_attributes_are_on_the_spans_the_app_emits(stack: LocalStack, vllm_receiver: OtlpReceiver) -> None:
    send_traffic(stack)
    needed = {LATEST_ONLY_ATTRIBUTES.get(attribute, attribute)
              for entry in traceql.load() for attribute in entry.attributes()}
    deadline, missing = time.monotonic() + 30, needed
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        spans = load_spans(vllm_receiver.spans_path)
        seen = {("span", key) for span in spans for key in span.attributes}
        seen |= {("resource", "service.name")} if any(span.service_name for span in spans) else set()
        missing = needed - seen
    assert missing == set()


# --- an app ragotel has never seen ----------------------------------------------------------------
PLAIN_QUESTIONS = ("How much does fixing a flat tyre cost?", "When is the workshop open on Saturday?",
                   "What deposit does an e-bike rental need?")


def plain_traffic(app: PlainRag) -> None:
    """Answers through the openai SDK (plain and streamed) and through requests, and bad input."""
    with httpx.Client(base_url=app.chat_url, timeout=120) as chat:
        for question in PLAIN_QUESTIONS:
            for path, body in (("/ask", {}), ("/ask", {"stream": True}), ("/ask/raw", {})):
                answer = chat.post(path, json={"question": question, "max_tokens": 16, **body})
                assert answer.status_code == 200 and answer.text, answer.text
        assert chat.post("/ask", json={"question": ""}).status_code == 422
    assert httpx.post(f"{app.retriever_url}/query", json={"text": " "}, timeout=30).status_code == 422


def status(url: str, body: dict[str, Any]) -> int:
    return httpx.post(url, json=body, timeout=60).status_code


def fail_both(stack: LocalStack, app: PlainRag, vllm: VllmServer) -> None:
    """Both apps' retrievers, then vLLM (once for both), stopped and started again; meanwhile both
    answer 503 and then 502."""
    reference, question = f"{stack.chat_url}/chat", {"question": "Is there parking?"}
    retrievers = (stack.processes["retriever"], app.processes["retriever"])
    for process in retrievers:
        process.stop()
    try:
        assert status(reference, question) == 503
        for path in ("/ask", "/ask/raw"):
            assert status(f"{app.chat_url}{path}", question) == 503, path
    finally:
        for process in retrievers:
            process.start()
    vllm.stop()
    try:
        assert status(reference, question) == 502
        for path, body in (("/ask", {}), ("/ask", {"stream": True}), ("/ask/raw", {})):
            assert status(f"{app.chat_url}{path}", {**question, **body}) == 502, (path, body)
    finally:
        vllm.start()


def test_every_query_with_data_on_the_reference_app_has_data_on_an_app_it_has_never_seen(
    stack: LocalStack, vllm: VllmServer, plain_stack: PlainStack,
) -> None:
    assert stack.prometheus_url, "Prometheus is not installed (scripts/install_tools.sh)"
    send_traffic(stack)
    plain_traffic(plain_stack.app)
    fail_both(stack, plain_stack.app, vllm)
    send_traffic(stack)
    plain_traffic(plain_stack.app)  # vLLM restarted: its series again, on both
    local = local_queries(stack.node_exporter_url is not None)
    servers = {"as named": plain_stack.prometheus_url, "renamed": plain_stack.renamed_prometheus_url}
    # rate() needs two scrapes (every 5 s) after the traffic; give Prometheus up to a minute.
    deadline, unanswered = time.monotonic() + 60, {name: local for name in servers}
    while any(unanswered.values()) and time.monotonic() < deadline:
        time.sleep(5)
        unanswered = {name: [query for query in queries if not series(servers[name], query.runnable)]
                      for name, queries in unanswered.items()}
    # Every local query has data on the reference app (the test above); what this app lacks is what the
    # docs/dashboards.md says a panel needs (dashboards/needs.py).
    unexplained = {name: [f"{query.source}: {query.runnable}" for query in queries if not needs.needed_by(query.source)]
                   for name, queries in unanswered.items()}
    assert unexplained == {name: [] for name in servers}
    # The renamed copy is a real rename: none of the app's own names is left in it.
    steps = {s["metric"].get(q.STEP_NAME, "") for s in series(plain_stack.renamed_prometheus_url,
                                                                f"{q.STEP_DURATION}_count")}
    jobs = {s["metric"]["job"] for s in series(plain_stack.renamed_prometheus_url, "up")}
    assert steps and all(step.startswith("renamed-") for step in steps), steps
    assert jobs and all(job.startswith("renamed-") for job in jobs), jobs
    assert {"renamed-encode", "renamed-faiss", "renamed-lookup", "renamed-passages"} <= steps
    # The app ran under the conventions asked for: only that mode's names are there.
    # (the default mode's pipeline duration is rag.pipeline.duration: no release defines one under gen_ai)
    names = {s["metric"]["__name__"] for s in series(plain_stack.prometheus_url, '{__name__=~"(gen_ai|rag)_.+"}')}
    default_only = {f"{q.TOKEN_USAGE}_count", f"{q.TIME_TO_FIRST_CHUNK.default}_count",
                    f"{q.PIPELINE_DURATION.default}_count"}
    latest_only = {*q.TOKEN_COUNTERS.values(), *(f"{name}_count" for name in q.TIME_TO_FIRST_CHUNK.latest),
                   *(f"{name}_count" for name in q.PIPELINE_DURATION.latest),
                   f"{sc.prometheus_name(sc.GEN_AI_CLIENT_INFERENCE_DURATION, sc.UNIT_SECONDS)}_count"}
    expected, absent = (latest_only, default_only) if plain_stack.genai_opt_in else (default_only, latest_only)
    assert expected <= names and not names & absent, sorted(names)


# --- apps written on LangChain and LlamaIndex -----------------------------------------------------
FRAMEWORK_QUESTIONS = ("When are you open on Saturdays?", "Do you repair e-bikes?", "Can I rent a bike for a week?")
# The chain or query engine each app runs, and the step that builds its prompt.
FRAMEWORK_PIPELINES = {"langchain": "RunnableSequence", "llamaindex": "RetrieverQueryEngine"}
FRAMEWORK_PROMPTS = {"langchain": "ChatPromptTemplate", "llamaindex": "CompactAndRefine"}
# Passages each app puts into a prompt (TOP_K in tests/apps/lcrag/app.py and tests/apps/lirag/app.py).
FRAMEWORK_TOP_K = 2

# Panels with nothing to show where no failure can reach: the LangChain app's Qdrant searches in the app's own process
# (local mode), so no outage of another process fails its search.
NO_OUTAGE_REACHES = {"langchain": frozenset({"rag-retrieval / Search errors by step"})}


def framework_traffic(app: ServedApp) -> None:
    """Answers, whole and streamed, and bad input, as the apps' users send them."""
    with httpx.Client(base_url=app.url, timeout=120) as chat:
        for question in FRAMEWORK_QUESTIONS:
            for path in ("/chat", "/chat/stream"):
                answer = chat.post(path, json={"question": question})
                assert answer.status_code == 200 and answer.text, (path, answer.text)
        assert chat.post("/chat", json={"question": ""}).status_code == 422


def fail_generation_and_search(stack: FrameworkStack, vllm: VllmServer) -> None:
    """vLLM stopped and started again, then the LlamaIndex app's PostgreSQL; meanwhile each app, asked once,
    answers 502 (it maps a failed model call to that), and the LlamaIndex app, whose search fails, 500 (nothing
    handles that error). The LangChain app's Qdrant runs in its own process (local mode): no outage reaches it."""
    question = {"question": "Is there parking?"}
    vllm.stop()
    try:
        for framework, app in stack.apps.items():
            assert status(f"{app.url}/chat", question) == 502, framework
    finally:
        vllm.start()
    stack.llamaindex.stop_database()
    try:
        assert status(f"{stack.llamaindex.url}/chat", question) == 500
    finally:
        stack.llamaindex.start_database()


def requests_by_route(metrics: str) -> dict[tuple[str, str], int]:
    """``http.server.request.duration`` counts by (route, status), from a service's /metrics text."""
    found: dict[tuple[str, str], int] = {}
    for line in metrics.splitlines():
        if line.startswith("http_server_request_duration_seconds_count{"):
            route = re.search(r'http_route="([^"]*)"', line)
            code = re.search(r'http_response_status_code="([^"]*)"', line)
            if route and code and route.group(1) != "/health":  # the launcher's readiness polls
                key = route.group(1), code.group(1)
                found[key] = found.get(key, 0) + int(float(line.rsplit(" ", 1)[1]))
    return found


def has_data_for(prometheus_url: str, query: PromQuery, job: str) -> bool:
    """Whether ``query`` has data for the app scraped as ``job``: run as Grafana runs it with that app chosen as
    the service, and, where its series keep the job label, one of them that app's (an alert's query has no
    service variable)."""
    found = series(prometheus_url, query.expand({"$service": job}))
    jobs = {s["metric"]["job"] for s in found if "job" in s["metric"]}
    return bool(found) and (not jobs or job in jobs)


def test_every_query_with_data_on_the_reference_app_has_data_on_langchain_and_llamaindex_apps(
    framework_stack: FrameworkStack, vllm: VllmServer,
) -> None:
    apps = framework_stack.apps
    fail_generation_and_search(framework_stack, vllm)
    for app in apps.values():  # after the restart: vLLM's own series again
        framework_traffic(app)
    # The host's series (node exporter) are no app's: the plain stack checks them.
    local = local_queries(node_exporter=False)
    jobs = {framework: FRAMEWORK_JOBS[framework] for framework in apps}
    # Every local query has data on the reference app (test_every_dashboard_and_alert_query_returns_data); what
    # these apps lack is what docs/dashboards.md says a panel needs, or a failure this stack cannot cause.
    unexplained = {framework: [query for query in local if not needs.needed_by(query.source)
                               and query.source not in NO_OUTAGE_REACHES.get(framework, ())]
                   for framework in jobs}
    # rate() needs two scrapes (every 5 s) after the traffic; give Prometheus up to a minute.
    deadline = time.monotonic() + 60
    while any(unexplained.values()) and time.monotonic() < deadline:
        time.sleep(5)
        unexplained = {framework: [query for query in queries
                                   if not has_data_for(framework_stack.prometheus_url, query, jobs[framework])]
                       for framework, queries in unexplained.items()}
    assert {framework: [f"{query.source}: {query.runnable}" for query in queries]
            for framework, queries in unexplained.items()} == {framework: [] for framework in jobs}
    # The apps' own counts, read after that wait: a request is recorded just after its answer is sent.
    # Every answered request and every failed one ran the chain or query engine once (the empty question
    # is refused before it); each one but the failed search built a prompt of the passages found.
    asked = len(FRAMEWORK_QUESTIONS)  # on each of /chat and /chat/stream
    answered = 2 * asked
    failed = {"langchain": {"502": 1}, "llamaindex": {"502": 1, "500": 1}}
    # Each failure counted once in each kind of step it went through: the model call's in the generation, the
    # prompt step LlamaIndex makes the call in, the pipeline; the search's in the retrieval (the pgvector search,
    # not again in the retriever around it) and the pipeline.
    errors = {"langchain": {("generation", "chat"): 1, ("pipeline", "RunnableSequence"): 1},
              "llamaindex": {("generation", "chat"): 1, ("prompt", "CompactAndRefine"): 1,
                             ("retrieval", "pgvector"): 1, ("pipeline", "RetrieverQueryEngine"): 2}}
    for framework, app in apps.items():
        metrics = app.scrape()
        assert counts(metrics, "rag_pipeline_duration_seconds") == {
            ("pipeline", FRAMEWORK_PIPELINES[framework]): answered + sum(failed[framework].values())}, framework
        assert requests_by_route(metrics) == {
            ("/chat", "200"): asked, ("/chat/stream", "200"): asked, ("/chat", "422"): 1,
            **{("/chat", code): n for code, n in failed[framework].items()}}, framework
        assert totals(metrics, "rag_step_errors_total") == errors[framework], framework
        assert totals(metrics, "rag_prompt_context_chunks_total") == {
            ("prompt", FRAMEWORK_PROMPTS[framework]): FRAMEWORK_TOP_K * (answered + 1)}, framework
