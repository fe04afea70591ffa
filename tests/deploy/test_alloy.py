"""deploy/alloy: the pipeline parses, every reference resolves, and every signal reaches its backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy import alloy_syntax as ax
from tests.deploy.conftest import ALLOY_DIR

MAIN = "config.alloy"
PLATFORMS = ("kubernetes.alloy", "compose.alloy")
SIGNALS = ("traces", "metrics", "logs")


def alloy_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(ALLOY_DIR.glob("*.alloy"))}


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    found = alloy_files()
    assert set(found) == {MAIN, *PLATFORMS}
    return found


@pytest.fixture(scope="module")
def main(files: dict[str, str]) -> ax.Module:
    return ax.load_module(MAIN, files[MAIN])


@pytest.fixture(scope="module")
def platforms(files: dict[str, str]) -> dict[str, ax.Module]:
    return {name: ax.load_module(name, files[name]) for name in PLATFORMS}


def components(statements: list) -> dict[tuple[str, str], ax.Block]:
    return {(b.name, b.label): b for b in statements if isinstance(b, ax.Block) and b.label and b.name != "declare"}


def only(statements: list, name: str) -> ax.Block:
    found = [b for (n, _), b in components(statements).items() if n == name]
    assert len(found) == 1, f"expected one {name}, found {len(found)}"
    return found[0]


def value(block: ax.Block, attr: str, env: dict[str, str] | None = None):
    expr = block.attr(attr)
    assert expr is not None, f"{block.key} has no {attr}"
    return ax.evaluate(expr, env)


def targets_of(expr) -> list[tuple[str, ...]]:
    return [ref.path for ref in ax.refs(expr)]


def split(path: tuple[str, ...], statements: list) -> tuple[str, str]:
    """(component name, label) a reference path points at, within those statements."""
    comps = components(statements)
    for k in range(len(path) - 1, 0, -1):
        if (".".join(path[:k]), path[k]) in comps:
            return ".".join(path[:k]), path[k]
    raise AssertionError(f"{'.'.join(path)} names no component")


def next_hops(block: ax.Block, signal: str) -> Iterator[tuple[str, ...]]:
    """Where a component sends one signal: its output block's attribute, or forward_to."""
    for out in block.blocks("output"):
        expr = out.attr(signal)
        if expr is not None:
            yield from targets_of(expr)
    forward = block.attr("forward_to")
    if forward is not None:
        yield from targets_of(forward)
    # A platform module's `traces` instance hands whole traces on to its `sampler` argument (in
    # Kubernetes through the load balancer and another Alloy; test_tracing.py checks the module).
    if signal == "traces" and block.name.endswith(".traces"):
        sampler = block.attr("sampler")
        if sampler is not None:
            yield from targets_of(sampler)


def paths(statements: list, start: ax.Block, signal: str) -> list[list[str]]:
    """Every component path a signal takes from ``start`` to a component that sends it nowhere."""
    comps = components(statements)
    out: list[list[str]] = []

    def walk(block: ax.Block, trail: list[str]) -> None:
        hops = list(next_hops(block, signal))
        if not hops:
            out.append(trail)
        for hop in hops:
            name, label = split(hop, statements)
            assert f"{name}.{label}" not in trail, f"loop through {name}.{label}"
            walk(comps[(name, label)], [*trail, f"{name}.{label}"])

    walk(start, [f"{start.name}.{start.label}"])
    return out


# ---- Syntax and wiring --------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_reference_resolves_to_a_real_export(files: dict[str, str], platform: str) -> None:
    assert ax.check(files, {"platform": platform}) == []


def test_checker_catches_a_misspelt_component(files: dict[str, str]) -> None:
    broken = files[MAIN].replace("prometheus.remote_write.mimir.receiver]", "prometheus.remote_write.mimr.receiver]", 1)
    assert broken != files[MAIN]
    problems = ax.check({**files, MAIN: broken}, {"platform": "kubernetes.alloy"})
    assert any("prometheus.remote_write.mimr.receiver: no such component" in p for p in problems), problems


def test_checker_catches_the_wrong_export(files: dict[str, str]) -> None:
    # A processor is fed through .input; .receiver is what prometheus/loki components export.
    broken = files[MAIN].replace("otelcol.processor.batch.default.input", "otelcol.processor.batch.default.receiver", 1)
    problems = ax.check({**files, MAIN: broken}, {"platform": "kubernetes.alloy"})
    assert any("exports input, not receiver" in p for p in problems), problems


def test_checker_catches_an_undeclared_argument(files: dict[str, str]) -> None:
    name = "kubernetes.alloy"
    broken = files[name].replace("argument.logs_receivers.value", "argument.log_receivers.value", 1)
    problems = ax.check({**files, name: broken}, {"platform": name})
    assert any("argument.log_receivers.value: no such argument" in p for p in problems), problems


def test_checker_catches_unknown_components_and_syntax_errors(files: dict[str, str]) -> None:
    platform = {"platform": PLATFORMS[0]}
    typo = files[MAIN].replace('memory_limiter "default" {', 'memorylimiter "default" {')
    problems = ax.check({**files, MAIN: typo}, platform)
    assert any("unknown component otelcol.processor.memorylimiter" in p for p in problems), problems
    unbalanced = files[MAIN].replace("logging {", "logging {{", 1)
    assert any("config.alloy" in p for p in ax.check({**files, MAIN: unbalanced}, platform))


def test_parser_reads_expressions() -> None:
    [block] = ax.parse('a.b "x" {\n  v = coalesce(sys.env("E"), "d") + ":1" // c\n  w = [c.d.e, {k = `r\\n`}]\n}')
    assert ax.evaluate(block.attr("v")) == "d:1"
    assert ax.evaluate(block.attr("v"), {"E": "e"}) == "e:1"
    refs = [r.path for r in ax.refs(block)]
    assert refs == [("c", "d", "e")]
    assert ax.evaluate(block.attr("w"))[1] == {"k": "r\\n"}


# ---- What the pipeline does ---------------------------------------------------------------------------


def test_otlp_receiver_listens_on_all_interfaces(main: ax.Module) -> None:
    receiver = only(main.statements, "otelcol.receiver.otlp")
    endpoints = {b.name: value(b, "endpoint") for b in receiver.blocks() if b.name in ("grpc", "http")}
    assert endpoints == {"grpc": "0.0.0.0:4317", "http": "0.0.0.0:4318"}


def test_no_loopback_addresses(files: dict[str, str]) -> None:
    for name, text in files.items():
        assert "127.0.0.1" not in text, name
        assert "localhost" not in text, name


@pytest.mark.parametrize("signal", SIGNALS)
def test_memory_limiter_first_then_kubernetes_metadata_and_batch_last(main: ax.Module, signal: str) -> None:
    receiver = only(main.statements, "otelcol.receiver.otlp")
    routes = paths(main.statements, receiver, signal)
    assert routes, f"{signal}: the receiver sends it nowhere"
    for route in routes:
        names = [step.rsplit(".", 1)[0] for step in route]
        assert names[1] == "otelcol.processor.memory_limiter", route
        assert "otelcol.processor.k8sattributes" in names, route
        exporter = next(i for i, n in enumerate(names) if n.startswith("otelcol.exporter."))
        assert names[exporter - 1] == "otelcol.processor.batch", route


EXPECTED_BACKENDS = {
    # signal: (the component at the end of the route, its URL attribute, the default URL)
    "traces": ("otelcol.exporter.otlp", "tempo:4317"),
    "metrics": ("prometheus.remote_write", "http://mimir:9009/api/v1/push"),
    "logs": ("otelcol.exporter.otlphttp", "http://loki:3100/otlp"),
}


def url_of(block: ax.Block) -> str:
    holder = (block.blocks("client") or block.blocks("endpoint"))[0]
    return value(holder, "endpoint" if holder.name == "client" else "url")


@pytest.mark.parametrize("signal", SIGNALS)
def test_every_otlp_signal_reaches_its_backend(main: ax.Module, signal: str) -> None:
    receiver = only(main.statements, "otelcol.receiver.otlp")
    kind, url = EXPECTED_BACKENDS[signal]
    for route in paths(main.statements, receiver, signal):
        name, label = route[-1].rsplit(".", 1)
        assert name == kind, f"{signal} ends at {route[-1]}, not a {kind}"
        assert url_of(components(main.statements)[(name, label)]) == url


def test_backend_endpoints_come_from_the_environment(main: ax.Module) -> None:
    env = {
        "TEMPO_OTLP_ENDPOINT": "traces.example:4317",
        "MIMIR_REMOTE_WRITE_URL": "https://metrics.example/api/v1/push",
        "LOKI_OTLP_URL": "https://logs.example/otlp",
        "LOKI_PUSH_URL": "https://logs.example/loki/api/v1/push",
    }
    comps = components(main.statements)
    urls = set()
    for block in comps.values():
        for holder in block.blocks("client") + block.blocks("endpoint"):
            attr = "endpoint" if holder.name == "client" else "url"
            urls.add(ax.evaluate(holder.attr(attr), env))
    assert urls == set(env.values())


def test_otlp_metrics_get_the_scrape_names_and_keep_exemplars(main: ax.Module) -> None:
    exporter = only(main.statements, "otelcol.exporter.prometheus")
    # Suffixes on: `_seconds`, `_total`, as the app's own /metrics shows them (not Mimir's OTLP endpoint).
    assert value(exporter, "add_metric_suffixes") is True
    remote = only(main.statements, "prometheus.remote_write")
    [endpoint] = remote.blocks("endpoint")
    assert value(endpoint, "send_exemplars") is True
    placement = {"RAGOTEL_PROVIDER": "aws", "RAGOTEL_CLUSTER": "c1", "RAGOTEL_REGION": "r1"}
    labels = value(remote, "external_labels", placement)
    assert labels == {"provider": "aws", "cluster": "c1", "region": "r1"}


def test_kubernetes_metadata_is_looked_up_only_inside_kubernetes(main: ax.Module) -> None:
    k8s = only(main.statements, "otelcol.processor.k8sattributes")
    assert value(k8s, "passthrough", {}) is False
    assert value(k8s, "passthrough", {"ALLOY_K8S_METADATA": "false"}) is True
    metadata = value(k8s.blocks("extract")[0], "metadata")
    assert {"k8s.namespace.name", "k8s.pod.name", "k8s.node.name"} <= set(metadata)


def test_otlp_data_gets_namespace_pod_container(main: ax.Module) -> None:
    transform = only(main.statements, "otelcol.processor.transform")
    for section in ("metric_statements", "log_statements"):
        statements = " ".join(value(transform.blocks(section)[0], "statements"))
        for label in ("namespace", "pod", "container"):
            assert f'set(attributes["{label}"]' in statements, (section, label)


def test_alloy_scrapes_itself_as_job_alloy(main: ax.Module) -> None:
    scrape = only(main.statements, "prometheus.scrape")
    assert value(scrape, "scrape_interval") == "15s"
    [(name, label)] = [split(p, main.statements) for p in targets_of(scrape.attr("targets"))]
    relabel = components(main.statements)[(name, label)]
    jobs = [value(r, "replacement") for r in relabel.blocks("rule") if value(r, "target_label") == "job"]
    assert jobs == ["alloy"]
    [source] = [split(p, main.statements) for p in targets_of(relabel.attr("targets"))]
    assert source[0] == "prometheus.exporter.self"
    [remote] = targets_of(scrape.attr("forward_to"))
    assert split(remote, main.statements)[0] == "prometheus.remote_write"


def test_platform_module_is_chosen_by_environment(main: ax.Module) -> None:
    imp = only(main.statements, "import.file")
    assert value(imp, "filename") == "/etc/alloy/kubernetes.alloy"
    assert value(imp, "filename", {"ALLOY_PLATFORM_MODULE": "/etc/alloy/compose.alloy"}) == "/etc/alloy/compose.alloy"
    instance = components(main.statements)[(f"{imp.label}.collect", "default")]
    assert value(instance, "scrape_interval") == "15s"
    [metrics] = targets_of(instance.attr("metrics_receivers"))
    assert split(metrics, main.statements) == ("prometheus.remote_write", "mimir")
    [logs] = targets_of(instance.attr("logs_receivers"))
    process = components(main.statements)[split(logs, main.statements)]
    [write] = targets_of(process.attr("forward_to"))
    write_block = components(main.statements)[split(write, main.statements)]
    assert write_block.name == "loki.write"
    assert url_of(write_block) == "http://loki:3100/loki/api/v1/push"


def test_both_platform_modules_declare_the_same_interface(platforms: dict[str, ax.Module]) -> None:
    interfaces = {
        name: {b.label: b.attr("optional") is not None for b in module.declares["collect"].blocks("argument")}
        for name, module in platforms.items()
    }
    assert interfaces["kubernetes.alloy"] == interfaces["compose.alloy"]
    assert set(interfaces["kubernetes.alloy"]) == {"metrics_receivers", "logs_receivers", "scrape_interval"}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_scrape_and_log_source_feeds_the_module_arguments(platforms: dict[str, ax.Module], platform: str) -> None:
    body = platforms[platform].declares["collect"].body
    scrapes = [b for (n, _), b in components(body).items() if n == "prometheus.scrape"]
    sources = [b for (n, _), b in components(body).items() if n.startswith("loki.source.")]
    assert scrapes and sources
    for scrape in scrapes:
        assert targets_of(scrape.attr("forward_to")) == [("argument", "metrics_receivers", "value")], scrape.key
        assert targets_of(scrape.attr("scrape_interval")) == [("argument", "scrape_interval", "value")], scrape.key
    for source in sources:
        assert targets_of(source.attr("forward_to")) == [("argument", "logs_receivers", "value")], source.key


@pytest.mark.parametrize("platform", PLATFORMS)
def test_annotated_targets_get_job_namespace_pod_container(platforms: dict[str, ax.Module], platform: str) -> None:
    body = platforms[platform].declares["collect"].body
    relabel = components(body)[("discovery.relabel", "annotated")]
    rules = relabel.blocks("rule")
    set_labels = {value(r, "target_label") for r in rules if r.attr("target_label") is not None}
    assert {"job", "namespace", "pod", "container", "__metrics_path__"} <= set_labels
    actions = [value(r, "action") for r in rules if r.attr("action") is not None]
    assert actions[0] == "keep", "scraping is opt-in: the first rule keeps annotated targets only"
    assert "keepequal" in actions, "one target per pod: the annotated port"
    scrape = components(body)[("prometheus.scrape", "annotated")]
    # OpenMetrics first: the text format that carries exemplars.
    assert value(scrape, "scrape_protocols")[0].startswith("OpenMetricsText")


def test_kubernetes_module_stays_on_its_node_and_scrapes_kubelet_and_cadvisor(platforms: dict[str, ax.Module]) -> None:
    body = platforms["kubernetes.alloy"].declares["collect"].body
    comps = components(body)
    for label in ("pods", "node"):
        [selector] = comps[("discovery.kubernetes", label)].blocks("selectors")
        assert value(selector, "field", {"NODE_NAME": "n1"}).endswith("=n1")
    paths_scraped = {
        label: value(comps[("prometheus.scrape", label)], "metrics_path") if comps[("prometheus.scrape", label)].attr(
            "metrics_path") else "/metrics"
        for label in ("kubelet", "cadvisor")
    }
    assert paths_scraped == {"kubelet": "/metrics", "cadvisor": "/metrics/cadvisor"}


def log_relabel_rules(platform: ax.Module) -> list[ax.Block]:
    body = platform.declares["collect"].body
    [source] = [b for (n, _), b in components(body).items() if n.startswith("loki.source.")]
    relabels = {split(p, body) for p in targets_of(source.attr("targets")) + targets_of(source.attr("relabel_rules"))}
    return [rule for key in relabels if key[0] == "discovery.relabel" for rule in components(body)[key].blocks("rule")]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_tailed_logs_carry_namespace_pod_container_and_never_a_trace_label(
    platforms: dict[str, ax.Module], platform: str
) -> None:
    rules = log_relabel_rules(platforms[platform])
    labels = {value(r, "target_label") for r in rules if r.attr("target_label") is not None}
    assert {"namespace", "pod", "container"} <= labels
    assert not {label for label in labels if "trace" in label.lower() or "span" in label.lower()}
    # Pods that send their records over OTLP are not tailed as well.
    assert any(value(r, "action") == "drop" and "ragotel_io_logs" in value(r, "source_labels")[0] for r in rules
               if r.attr("action") is not None)


def test_trace_ids_in_log_lines_become_structured_metadata(files: dict[str, str], main: ax.Module) -> None:
    process = only(main.statements, "loki.process")
    [regex] = process.blocks("stage.regex")
    assert "(?P<trace_id>" in value(regex, "expression")
    [metadata] = process.blocks("stage.structured_metadata")
    assert "trace_id" in value(metadata, "values")
    for name, text in files.items():
        for block in (b for s in ax.parse(text) if isinstance(s, ax.Block) for b in s.walk()):
            assert block.name not in ("stage.labels", "stage.static_labels") or "trace" not in str(
                block.attr("values")), f"{name}: {block.key} makes a trace id an index label"
