"""Traces: tail sampling in Alloy (the policies, where the sampler sits, the trace-id load balancer in
Kubernetes and its headless Service) and the span metrics / service graph Tempo derives from what is kept.

Each check is a function returning problems, so the tests can mutate a config and see it fail.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import alloy_syntax as ax
from tests.deploy.conftest import ALLOY_DIR, COMPOSE_FILE, K8S_BASE, Doc, containers, env_of, find, load_yaml
from tests.deploy.test_alloy import components, only, paths, split, targets_of, value

MAIN = ALLOY_DIR / "config.alloy"
KUBERNETES = ALLOY_DIR / "kubernetes.alloy"
COMPOSE = ALLOY_DIR / "compose.alloy"
TEMPO = K8S_BASE / "tempo" / "tempo.yaml"
DATASOURCES = K8S_BASE / "grafana" / "datasources.yaml"


# ---- The sampler's place in the pipeline -----------------------------------------------------------


def placement_problems(text: str) -> list[str]:
    """Every trace route: receiver -> ... -> k8sattributes -> ... -> tail_sampling -> ... -> Tempo."""
    statements = ax.parse(text)
    receiver = only(statements, "otelcol.receiver.otlp")
    problems = []
    for route in paths(statements, receiver, "traces"):
        names = [step.rsplit(".", 1)[0] for step in route]
        if names[-1] != "otelcol.exporter.otlp":
            problems.append(f"traces end at {route[-1]}")
        if "otelcol.processor.tail_sampling" not in names:
            problems.append(f"route without a sampler: {route}")
            continue
        sampler = names.index("otelcol.processor.tail_sampling")
        if "otelcol.processor.k8sattributes" not in names[:sampler]:
            problems.append("Kubernetes metadata must be added on the receiving node, before routing and sampling")
        if not any(n.endswith(".traces") and not n.startswith("otelcol.") for n in names[:sampler]):
            problems.append("the sampler is not behind the platform module's trace routing")
    # Nothing reaches the Tempo exporter but through the sampler.
    comps = components(statements)
    for (name, label), block in comps.items():
        for out in block.blocks("output"):
            for path in targets_of(out.attr("traces")) if out.attr("traces") is not None else []:
                if split(path, statements)[0] == "otelcol.exporter.otlp" and name != "otelcol.processor.batch":
                    problems.append(f"{name}.{label} sends traces to Tempo directly")
    return problems


def test_the_sampler_sits_between_the_receivers_and_tempo() -> None:
    assert placement_problems(MAIN.read_text()) == []


def test_placement_check_sees_a_bypass() -> None:
    text = MAIN.read_text()
    bypass = text.replace("traces  = [platform.traces.default.input]", "traces  = [otelcol.exporter.otlp.tempo.input]")
    assert bypass != text
    assert any("without a sampler" in p for p in placement_problems(bypass))
    tap = text.replace("traces  = [otelcol.processor.batch.default.input]",
                       "traces  = [otelcol.processor.batch.default.input, otelcol.exporter.otlp.tempo.input]")
    assert tap != text
    assert any("directly" in p for p in placement_problems(tap))


# ---- The policies ------------------------------------------------------------------------------------


def policies(text: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Policy name -> {"type": ..., <type block>: its evaluated attributes (nested for `and`)}."""
    sampler = only(ax.parse(text), "otelcol.processor.tail_sampling")

    def read(block: ax.Block) -> dict[str, Any]:
        out: dict[str, Any] = {a.name: ax.evaluate(a.value, env) for a in block.body if isinstance(a, ax.Attribute)}
        for inner in block.blocks():
            if inner.name == "and_sub_policy":
                out.setdefault(inner.name, []).append(read(inner))
            else:
                out[inner.name] = read(inner)
        return out

    return {value(p, "name"): read(p) for p in sampler.blocks("policy")}


def policy_problems(text: str, env: dict[str, str] | None = None, expect: dict[str, Any] | None = None) -> list[str]:
    expect = {"slow_ms": 5000, "score": "0.2", "percent": 10, **(expect or {})}
    found = policies(text, env)
    problems = []
    want_types = {"errors": "status_code", "slow": "latency", "poor-retrieval": "ottl_condition",
                  "generation-without-vllm-span": "and", "share-of-the-rest": "probabilistic"}
    if {n: p["type"] for n, p in found.items()} != want_types:
        return [f"policies are {sorted((n, p['type']) for n, p in found.items())}"]
    if found["errors"]["status_code"]["status_codes"] != ["ERROR"]:
        problems.append("errors: not status ERROR")
    if found["slow"]["latency"]["threshold_ms"] != expect["slow_ms"]:
        problems.append(f"slow: threshold {found['slow']['latency']['threshold_ms']}")
    spans = found["poor-retrieval"]["ottl_condition"]["span"]
    if spans != ['attributes["rag.retrieval.results.returned"] == 0',
                 f'attributes["rag.retrieval.score.max"] < {expect["score"]}']:
        problems.append(f"poor-retrieval: {spans}")
    subs = {s["name"]: s for s in found["generation-without-vllm-span"]["and"]["and_sub_policy"]}
    generation = " ".join(subs.get("has-generation", {}).get("ottl_condition", {}).get("span", []))
    if 'attributes["gen_ai.operation.name"] == "chat"' not in generation:
        problems.append("generation-without-vllm-span: no generation condition")
    vllm = subs.get("no-vllm-span", {}).get("string_attribute", {})
    if vllm != {"key": "service.name", "values": ["vllm"], "invert_match": True}:
        problems.append(f"generation-without-vllm-span: {vllm}")
    if found["share-of-the-rest"]["probabilistic"]["sampling_percentage"] != expect["percent"]:
        problems.append("share-of-the-rest: wrong percentage")
    # An inverted match outside `and` overrides every other policy's "keep" (errors included).
    for name, policy in found.items():
        if policy.get("string_attribute", {}).get("invert_match"):
            problems.append(f"{name}: inverted match at the top level")
    return problems


def test_sampling_policies_keep_what_is_worth_keeping() -> None:
    assert policy_problems(MAIN.read_text()) == []


def test_sampling_knobs_come_from_the_environment() -> None:
    env = {"TRACES_SAMPLE_PERCENT": "25", "TRACES_SLOW_THRESHOLD_MS": "8000", "TRACES_LOW_SCORE_THRESHOLD": "0.35"}
    assert policy_problems(MAIN.read_text(), env, {"slow_ms": 8000, "score": "0.35", "percent": 25}) == []
    assert policy_problems(MAIN.read_text(), env) != []  # the defaults no longer hold


@pytest.mark.parametrize(("old", "new", "complaint"), [
    ('status_codes = ["ERROR"]', 'status_codes = ["OK"]', "errors"),
    ('`attributes["rag.retrieval.results.returned"] == 0`,', "", "poor-retrieval"),
    ("invert_match = true", "invert_match = false", "generation-without-vllm-span"),
    ('"TRACES_SAMPLE_PERCENT"), "10"', '"TRACES_SAMPLE_PERCENT"), "100"', "share-of-the-rest"),
    ('name = "slow"', 'name = "latency"', "policies are"),
])
def test_policy_check_sees_a_changed_policy(old: str, new: str, complaint: str) -> None:
    text = MAIN.read_text()
    assert text.count(old) == 1
    assert any(complaint in p for p in policy_problems(text.replace(old, new)))


def test_the_vllm_service_name_in_the_policy_is_the_one_vllm_uses(rendered: dict[str, list[Doc]]) -> None:
    compose = load_yaml(COMPOSE_FILE)["services"]
    names = {str(s.get("environment", {}).get("OTEL_SERVICE_NAME")) for s in compose.values()
             if "--otlp-traces-endpoint=http://alloy:4318/v1/traces" in s.get("command", [])}
    for docs in rendered.values():
        vllm = find(docs, "Deployment", "vllm", "rag")
        names.add(env_of(containers(vllm, init=False)[0])["OTEL_SERVICE_NAME"]["value"])
    assert names == {"vllm"}


# ---- Whole traces in one place -------------------------------------------------------------------------


def routing_problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    declare = ax.load_module("kubernetes.alloy", text).declares["traces"]
    comps = components(declare.body)
    problems = []
    balancer = comps.get(("otelcol.exporter.loadbalancing", "traces"))
    if balancer is None:
        return ["no otelcol.exporter.loadbalancing in declare traces"]
    if balancer.attr("routing_key") is not None and value(balancer, "routing_key") != "traceID":
        problems.append(f"routing by {value(balancer, 'routing_key')}, not traceID")
    [resolver] = balancer.blocks("resolver")
    [dns] = resolver.blocks("dns")
    receiver = comps[("otelcol.receiver.otlp", "traces")]
    [grpc] = receiver.blocks("grpc")
    if value(grpc, "endpoint") != f"0.0.0.0:{value(dns, 'port')}":
        problems.append("the routed spans' receiver does not listen on the resolver's port")
    # Routed spans skipped their own node's first memory limiter: one on this side refuses them, and
    # the sending load balancer retries what it refuses.
    [out] = receiver.blocks("output")
    hops = [split(p, declare.body) for p in targets_of(out.attr("traces"))]
    limiter = comps.get(hops[0]) if len(hops) == 1 and hops[0][0] == "otelcol.processor.memory_limiter" else None
    if limiter is None:
        problems.append(f"routed spans go to {hops}, not through a memory limiter")
    elif targets_of(limiter.blocks("output")[0].attr("traces")) != [("argument", "sampler", "value")]:
        problems.append("routed spans do not go on to the sampler argument")
    for otlp in (b for p in balancer.blocks("protocol") for b in p.blocks("otlp")):
        if any(r.attr("enabled") is not None and value(r, "enabled") is False for r in otlp.blocks("retry")):
            problems.append("the load balancer does not retry what the receiving side refuses")
    [export] = declare.blocks("export")
    if targets_of(export.attr("value")) != [("otelcol", "exporter", "loadbalancing", "traces", "input")]:
        problems.append("the module's input is not the load balancer")
    return problems


def test_kubernetes_routes_spans_by_trace_id_to_the_sampling_alloy() -> None:
    assert routing_problems(KUBERNETES.read_text()) == []


def test_routing_check_sees_a_wrong_key_or_port_or_no_limiter() -> None:
    text = KUBERNETES.read_text()
    assert any("not traceID" in p for p in routing_problems(text.replace('"traceID"', '"service"')))
    assert any("port" in p for p in routing_problems(text.replace('port     = "4319"', 'port     = "4317"')))
    bypass = text.replace("traces = [otelcol.processor.memory_limiter.traces.input]",
                          "traces = [argument.sampler.value]")
    assert bypass != text
    assert any("not through a memory limiter" in p for p in routing_problems(bypass))
    no_retry = text.replace("    protocol {\n      otlp {\n", "    protocol {\n      otlp {\n        retry {\n"
                            "          enabled = false\n        }\n\n")
    assert no_retry != text
    assert any("does not retry" in p for p in routing_problems(no_retry))


def test_nothing_after_the_batch_refuses_spans_in_compose() -> None:
    """Compose passes spans from the (asynchronous) batch straight to the sampler: a memory limiter in
    between would drop what it refuses, since nobody is left to retry."""
    statements = ax.parse(MAIN.read_text())
    [platform] = [b for b in statements if isinstance(b, ax.Block) and b.name == "platform.traces"]
    assert [split(p, statements)[0] for p in targets_of(platform.attr("sampler"))] == [
        "otelcol.processor.tail_sampling"]
    receiver = only(statements, "otelcol.receiver.otlp")
    for route in paths(statements, receiver, "traces"):
        names = [step.rsplit(".", 1)[0] for step in route]
        batch = names.index("otelcol.processor.batch")
        assert "otelcol.processor.memory_limiter" not in names[batch:], route
        assert names.index("otelcol.processor.memory_limiter") == 1, route


def test_compose_has_one_alloy_and_passes_traces_straight_to_the_sampler() -> None:
    declare = ax.load_module("compose.alloy", COMPOSE.read_text()).declares["traces"]
    assert {n for n, _ in components(declare.body)} == {"argument", "export"}, "no component: nothing to route"
    [export] = declare.blocks("export")
    assert targets_of(export.attr("value")) == [("argument", "sampler", "value")]


def test_both_platform_modules_declare_the_same_traces_interface() -> None:
    shapes = {}
    for path in (KUBERNETES, COMPOSE):
        declare = ax.load_module(path.name, path.read_text()).declares["traces"]
        shapes[path.name] = ({b.label for b in declare.blocks("argument")}, {b.label for b in declare.blocks("export")})
    assert shapes["kubernetes.alloy"] == shapes["compose.alloy"] == ({"sampler"}, {"input"})


@pytest.mark.parametrize("overlay", ["local-cpu", "gpu"])
def test_the_resolver_names_a_headless_service_of_the_daemonset(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    daemonset = find(docs, "DaemonSet", "alloy", "rag")
    container = containers(daemonset)[0]
    env = {n: str(e["value"]) for n, e in env_of(container).items() if "value" in e}
    declare = ax.load_module("kubernetes.alloy", KUBERNETES.read_text()).declares["traces"]
    [dns] = components(declare.body)[("otelcol.exporter.loadbalancing", "traces")].blocks("resolver")[0].blocks("dns")
    host, port = value(dns, "hostname", env), int(value(dns, "port", env))
    service_name, namespace = host.split(".")[:2]
    service = find(docs, "Service", service_name, namespace)
    assert service["spec"]["clusterIP"] == "None", "a virtual IP would hide the pods from the DNS resolver"
    assert not service["spec"].get("publishNotReadyAddresses")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [service_port] = [p for p in service["spec"]["ports"] if p["port"] == port]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[service_port["targetPort"]] == port
    # The knobs are set where an operator looks for them, with the module's defaults.
    assert policy_problems(MAIN.read_text(), env) == []


# ---- Span metrics and the service graph ---------------------------------------------------------------


def generator_problems(tempo: dict[str, Any], datasources: dict[str, Any]) -> list[str]:
    problems = []
    processors = set(tempo["overrides"]["defaults"]["metrics_generator"]["processors"])
    if not {"span-metrics", "service-graphs"} <= processors:
        problems.append(f"generator processors: {sorted(processors)}")
    generator = tempo["metrics_generator"]
    if [r["url"] for r in generator["storage"]["remote_write"]] != ["http://mimir:9009/api/v1/push"]:
        problems.append("generator does not write to Mimir")
    for name in ("span_metrics", "service_graphs"):
        buckets = generator["processor"][name].get("histogram_buckets", [])
        if not buckets or max(buckets) < 60:
            problems.append(f"{name}: buckets end below a minute ({buckets})")
    tempo_ds = next(d for d in datasources["datasources"] if d["uid"] == "tempo")["jsonData"]
    mimir_uid = next(d["uid"] for d in datasources["datasources"] if d["type"] == "prometheus")
    if tempo_ds["serviceMap"]["datasourceUid"] != mimir_uid:
        problems.append("service map does not read Mimir")
    metrics = tempo_ds["tracesToMetrics"]
    if metrics["datasourceUid"] != mimir_uid:
        problems.append("traces to metrics does not read Mimir")
    # Tempo's generator names: traces_spanmetrics_calls_total / _latency_bucket, labels service, span_name.
    if {t["value"] for t in metrics["tags"] if t["key"] == "service.name"} != {"service"}:
        problems.append("service.name is not mapped to the generator's `service` label")
    for query in (q["query"] for q in metrics["queries"]):
        names = {n for n in ("traces_spanmetrics_calls_total", "traces_spanmetrics_latency_bucket") if n in query}
        if not names or "span_name" not in query:
            problems.append(f"query not on the generator's series: {query}")
    return problems


def test_tempo_generates_the_service_graph_and_red_metrics_grafana_reads() -> None:
    assert generator_problems(load_yaml(TEMPO), load_yaml(DATASOURCES)) == []


def test_generator_check_sees_missing_pieces() -> None:
    tempo, datasources = load_yaml(TEMPO), load_yaml(DATASOURCES)
    tempo["overrides"]["defaults"]["metrics_generator"]["processors"] = ["span-metrics"]
    del tempo["metrics_generator"]["processor"]["span_metrics"]["histogram_buckets"]
    tempo_ds = next(d for d in datasources["datasources"] if d["uid"] == "tempo")["jsonData"]
    tempo_ds["serviceMap"]["datasourceUid"] = "loki"
    tempo_ds["tracesToMetrics"]["queries"][0]["query"] = "sum(rate(traces_span_metrics_calls_total[5m]))"
    problems = generator_problems(tempo, datasources)
    for expected in ("processors", "span_metrics: buckets", "service map", "query not on"):
        assert any(expected in p for p in problems), (expected, problems)
