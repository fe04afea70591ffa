"""The Alloy checker (alloy_syntax.py with the reference tables of alloy_schema.py) on the real files: each
mutation below is a mistake that once went unnoticed or that Alloy would refuse (at the stability level the
images run at), applied to a copy of the real configuration, and each must be reported; the unmutated files
must pass, and so must the sound variants in ACCEPTED.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import yaml

from tests.deploy import alloy_schema as schema
from tests.deploy import alloy_syntax as ax
from tests.deploy.conftest import ALLOY_DIR, COMPOSE_FILE, DEPLOY, K8S_BASE, load_yaml

MAIN, K8S, COMPOSE = "config.alloy", "kubernetes.alloy", "compose.alloy"

# Places in the real files that several mutations start from (each occurs once in its file).
DOCKER_HOST = '    host       = coalesce(sys.env("DOCKER_HOST"), "unix:///var/run/docker.sock")\n'
K8S_LOGS = '  loki.source.kubernetes "pods" {\n'
TRACES_PER_SEC = "  expected_new_traces_per_sec       = 100\n"
SELF_TARGETS = "targets         = discovery.relabel.alloy.output"
SELF_EXPORTER = 'prometheus.exporter.self "alloy" { }\n'
SUFFIXES = "add_metric_suffixes = true"
EXEMPLARS = "send_exemplars = true"
LOKI_LABELS = '  external_labels = {\n    cluster = coalesce(sys.env("RAGOTEL_CLUSTER"), "local"),\n  }\n'
LB_RESOLVER = (
    "    resolver {\n      dns {\n"
    '        hostname = coalesce(sys.env("ALLOY_TRACES_PEERS"), "alloy-traces.rag.svc.cluster.local")\n'
    '        port     = "4319"\n        interval = "5s"\n      }\n    }\n'
)
LB_PROTOCOL = (
    "    protocol {\n      otlp {\n        client {\n          // Pod to pod inside the namespace.\n"
    "          tls {\n            insecure = true\n          }\n        }\n      }\n    }\n"
)


class Mutation(NamedTuple):
    file: str
    old: str
    new: str
    complaint: str  # a fragment of the problem the checker must report
    platform: str = K8S


MUTATIONS = {
    # The eight the config tests once missed.
    "misspelt attribute": Mutation(
        MAIN, "invert_match = true", "invert_matc = true", "unknown argument invert_matc (did you mean invert_match?)"),
    "missing required check_interval": Mutation(
        MAIN, '  check_interval         = "1s"\n', "", "missing required argument check_interval"),
    "duration given as a number": Mutation(
        MAIN, 'decision_wait                     = coalesce(sys.env("TRACES_DECISION_WAIT"), "100s")',
        "decision_wait                     = 10", "decision_wait: expected a duration string"),
    "unknown policy type": Mutation(
        MAIN, 'type = "probabilistic"', 'type = "probabilistics"',
        "'probabilistics' is not one of the documented values (did you mean 'probabilistic'?)"),
    "sys.envv": Mutation(
        MAIN, 'sys.env("TEMPO_OTLP_ENDPOINT")', 'sys.envv("TEMPO_OTLP_ENDPOINT")',
        "sys.envv(): no such function in Alloy's standard library"),
    "metrics wired into tail_sampling": Mutation(
        MAIN, "metrics = [otelcol.exporter.prometheus.mimir.input]",
        "metrics = [otelcol.processor.tail_sampling.default.input]",
        "sends metrics to otelcol.processor.tail_sampling 'default', which takes traces only"),
    "unknown argument to a custom component": Mutation(
        MAIN, 'platform.collect "default" {\n', 'platform.collect "default" {\n  scrape_intervall = "30s"\n',
        "unknown argument scrape_intervall (did you mean scrape_interval?)"),
    "keepequal with replacement": Mutation(
        COMPOSE, '      action        = "keepequal"\n',
        '      action        = "keepequal"\n      replacement   = "kept"\n',
        "keepequal takes only source_labels and target_label, not replacement", COMPOSE),
    # More of the same kinds.
    "metrics into the sampler through the platform module": Mutation(
        MAIN, "metrics = [otelcol.exporter.prometheus.mimir.input]", "metrics = [platform.traces.default.input]",
        "sends metrics to otelcol.processor.tail_sampling 'default', which takes traces only", COMPOSE),
    "traces into the Prometheus converter": Mutation(
        MAIN, "traces = [otelcol.exporter.otlp.tempo.input]", "traces = [otelcol.exporter.prometheus.mimir.input]",
        "sends traces to otelcol.exporter.prometheus 'mimir', which takes metrics only"),
    "a processor that drops a signal it receives": Mutation(
        MAIN, "    logs    = [otelcol.processor.transform.labels.input]\n", "",
        "otelcol.processor.k8sattributes 'default' receives logs but its output passes no logs on"),
    "log lines into a metrics receiver": Mutation(
        MAIN, "forward_to = [loki.write.loki.receiver]", "forward_to = [prometheus.remote_write.mimir.receiver]",
        "forward_to: expected logs_receiver, got metrics_receiver"),
    "an object argument written as a block": Mutation(
        MAIN, "  decision_cache = {\n    sampled_cache_size     = 100000,\n    non_sampled_cache_size = 100000,\n  }",
        "  decision_cache {\n    sampled_cache_size     = 100000\n    non_sampled_cache_size = 100000\n  }",
        "unknown block decision_cache (it is an argument: name = value)"),
    "misspelt block": Mutation(
        MAIN, 'grpc {\n    endpoint = "0.0.0.0:4317"', 'grcp {\n    endpoint = "0.0.0.0:4317"',
        "unknown block grcp (did you mean grpc?)"),
    "both kinds of memory limit": Mutation(
        MAIN, "  spike_limit_percentage = 20\n\n  output {\n    traces  = [otelcol.processor.k8sattributes",
        '  spike_limit_percentage = 20\n  limit                  = "800MiB"\n\n  output {\n'
        "    traces  = [otelcol.processor.k8sattributes",
        "set either limit or limit_percentage"),
    "a status code that does not exist": Mutation(
        MAIN, 'status_codes = ["ERROR"]', 'status_codes = ["FAILED"]', "'FAILED' is not one of the documented values"),
    "a policy without its settings block": Mutation(
        MAIN, 'type = "latency"', 'type = "numeric_attribute"',
        "policy type numeric_attribute without its numeric_attribute block"),
    "an OTTL context of another signal": Mutation(
        MAIN, 'context    = "datapoint"', 'context    = "span"', "'span' is not one of the documented values"),
    "a required module argument left out": Mutation(
        MAIN, "  logs_receivers    = [loki.process.containers.receiver]\n", "",
        "missing required argument logs_receivers"),
    "a CA that verification never uses": Mutation(
        K8S, '    tls_config {\n      insecure_skip_verify = true\n    }\n  }\n\n  prometheus.scrape "cadvisor"',
        '    tls_config {\n      ca_file              = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"\n'
        '      insecure_skip_verify = true\n    }\n  }\n\n  prometheus.scrape "cadvisor"',
        "a CA is set but insecure_skip_verify = true never uses it"),
    "an unknown standard-library constant": Mutation(
        MAIN, "replacement  = constants.hostname", "replacement  = constants.host_name",
        "constants.host_name: not a constant of Alloy's standard library"),
    # What the tables once described after an older Alloy than the one the stack runs.
    "loki.source.docker's old client block": Mutation(
        COMPOSE, DOCKER_HOST, DOCKER_HOST + '    client {\n      bearer_token_file = "/run/secrets/docker"\n    }\n',
        "unknown block client", COMPOSE),
    "a position block in loki.source.kubernetes": Mutation(
        K8S, K8S_LOGS, K8S_LOGS + "    position {\n    }\n", "unknown block position"),
    "num_shards in tail sampling": Mutation(
        MAIN, TRACES_PER_SEC, TRACES_PER_SEC + "  num_shards                        = 4\n",
        "unknown argument num_shards"),
    "a garbage-collection knob memory_limiter does not have": Mutation(
        MAIN, '  check_interval         = "1s"\n  limit_percentage       = 80\n',
        '  check_interval         = "1s"\n  min_gc_interval_when_soft_limited = "10s"\n  limit_percentage       = 80\n',
        "unknown argument min_gc_interval_when_soft_limited"),
    "targets.merge, which the standard library does not have": Mutation(
        MAIN, SELF_TARGETS, "targets         = targets.merge(discovery.relabel.alloy.output, [])",
        "targets.merge(): no such function in Alloy's standard library"),
    "the load balancer without its protocol block": Mutation(
        K8S, LB_PROTOCOL, "", "otelcol.exporter.loadbalancing \"traces\": missing required block protocol"),
    "the load balancer's protocol without its otlp client": Mutation(
        K8S, LB_PROTOCOL, "    protocol {\n      otlp {\n      }\n    }\n", "missing required block client"),
    "a load balancer with no resolver": Mutation(
        K8S, LB_RESOLVER, "    resolver {\n    }\n", "resolver needs one of static, dns, kubernetes or aws_cloud_map"),
    # Below --stability.level=generally-available, the level the images run at.
    "an experimental standard-library function": Mutation(
        MAIN, SELF_TARGETS,
        'targets         = array.combine_maps(discovery.relabel.alloy.output, [], ["__address__"])',
        "standard-library function array.combine_maps() is experimental, below the stability level Alloy runs "
        "at here (generally-available)"),
    "an experimental component": Mutation(
        MAIN, SELF_EXPORTER, SELF_EXPORTER + '\notelcol.processor.interval "default" {\n  output {\n  }\n}\n',
        "component otelcol.processor.interval is experimental, below the stability level"),
    "a public-preview component": Mutation(
        MAIN, SELF_EXPORTER,
        SELF_EXPORTER + '\notelcol.receiver.filelog "default" {\n  include = ["/var/log/*.log"]\n'
        "  output {\n  }\n}\n",
        "component otelcol.receiver.filelog is public-preview, below the stability level"),
    "an experimental configuration block": Mutation(
        MAIN, SELF_EXPORTER,
        SELF_EXPORTER + '\nforeach "pods" {\n  collection = []\n  var        = "each"\n  template {\n  }\n}\n',
        "block foreach is experimental, below the stability level"),
    "an experimental argument of a scrape": Mutation(
        MAIN, SELF_TARGETS, SELF_TARGETS + "\n  honor_metadata  = true",
        "argument honor_metadata is experimental, below the stability level"),
    "an experimental argument of the Prometheus converter": Mutation(
        MAIN, SUFFIXES, SUFFIXES + "\n  convert_classic_histograms_to_nhcb = true",
        "argument convert_classic_histograms_to_nhcb is experimental, below the stability level"),
    "an experimental block of loki.write": Mutation(
        MAIN, LOKI_LABELS, "  wal {\n    enabled = true\n  }\n\n" + LOKI_LABELS,
        "block wal is experimental, below the stability level"),
    "an experimental value: Remote Write v2": Mutation(
        MAIN, EXEMPLARS, EXEMPLARS + '\n    protobuf_message = "io.prometheus.write.v2.Request"',
        "protobuf_message = 'io.prometheus.write.v2.Request' is experimental, below the stability level"),
    "an experimental value: routing metrics by stream": Mutation(
        K8S, 'routing_key = "traceID"', 'routing_key = "streamID"',
        "routing_key = 'streamID' is experimental, below the stability level"),
}

# Sound variants the corrected tables accept (the older ones refused each): they must pass.
ACCEPTED = {
    "loki.source.docker's http_client_config": Mutation(
        COMPOSE, DOCKER_HOST,
        DOCKER_HOST + '    http_client_config {\n      bearer_token_file = "/run/secrets/docker"\n    }\n',
        "", COMPOSE),
    "the load balancer's own timeout, retry_on_failure and sending_queue": Mutation(
        K8S, 'routing_key = "traceID"\n',
        'routing_key = "traceID"\n    timeout     = "10s"\n\n    retry_on_failure {\n      max_elapsed_time = "1m"\n'
        "    }\n\n    sending_queue {\n      queue_size = 5000\n    }\n", ""),
    "constants.version": Mutation(MAIN, "replacement  = constants.hostname", "replacement  = constants.version", ""),
    "a byte size as a string": Mutation(
        MAIN,
        "  limit_percentage       = 80\n  spike_limit_percentage = 20\n\n"
        "  output {\n    traces  = [otelcol.processor.k8s",
        '  limit                  = "800MiB"\n  spike_limit            = "200MiB"\n\n  output {\n'
        "    traces  = [otelcol.processor.k8s", ""),
}


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(ALLOY_DIR.glob("*.alloy"))}


@pytest.mark.parametrize("platform", [K8S, COMPOSE])
def test_the_real_configuration_passes(files: dict[str, str], platform: str) -> None:
    assert ax.check(files, {"platform": platform}) == []


@pytest.mark.parametrize("name", MUTATIONS)
def test_the_checker_reports_the_mutation(files: dict[str, str], name: str) -> None:
    mutation = MUTATIONS[name]
    problems = ax.check(mutate(files, name, mutation), {"platform": mutation.platform})
    assert any(mutation.complaint in p for p in problems), problems


def mutate(files: dict[str, str], name: str, mutation: Mutation) -> dict[str, str]:
    assert files[mutation.file].count(mutation.old) == 1, f"{name}: the text to mutate is not in the file once"
    return {**files, mutation.file: files[mutation.file].replace(mutation.old, mutation.new)}


@pytest.mark.parametrize("name", ACCEPTED)
def test_the_checker_accepts_what_alloy_accepts(files: dict[str, str], name: str) -> None:
    mutation = ACCEPTED[name]
    assert ax.check(mutate(files, name, mutation), {"platform": mutation.platform}) == []


def test_an_experimental_item_passes_at_the_experimental_level(files: dict[str, str]) -> None:
    # The refusals above come from the level the stack runs at, not from the items themselves.
    for name in ("an experimental standard-library function", "an experimental argument of a scrape",
                 "an experimental block of loki.write", "an experimental value: Remote Write v2"):
        mutation = MUTATIONS[name]
        assert ax.check(mutate(files, name, mutation), {"platform": mutation.platform}) != []
        assert ax.check(mutate(files, name, mutation), {"platform": mutation.platform}, schema.EXPERIMENTAL) == []


def test_the_checker_runs_at_the_level_the_images_run_at() -> None:
    # --stability.level of the Alloy container in Compose and in the DaemonSet.
    compose_args = load_yaml(COMPOSE_FILE)["services"]["alloy"]["command"]
    docs = yaml.safe_load_all((K8S_BASE / "alloy" / "daemonset.yaml").read_text())
    [daemonset] = [d for d in docs if d and d["kind"] == "DaemonSet"]
    [container] = [c for c in daemonset["spec"]["template"]["spec"]["containers"] if c["name"] == "alloy"]
    for args in (compose_args, container["args"]):
        assert [a for a in args if a.startswith("--stability.level=")] == [f"--stability.level={schema.RUN_LEVEL}"]


def test_every_level_in_the_tables_is_one_alloy_has() -> None:
    def levels(spec: schema.Spec) -> list[str]:
        return [spec.level, *spec.levels.values(), *(lv for b in spec.blocks.values() for lv in levels(b))]

    found = [c.stability for c in schema.COMPONENTS.values()]
    found += [lv for c in schema.COMPONENTS.values() for lv in levels(c.body)]
    found += [*schema.OTHER_COMPONENT_LEVELS.values(), *schema.CONFIG_BLOCK_LEVELS.values()]
    found += [*schema.STDLIB_FUNCTION_LEVELS.values()]
    found += [lv for values in schema.ENUM_LEVELS.values() for lv in values.values()]
    assert set(found) <= set(schema.LEVELS)
    assert not set(schema.OTHER_COMPONENT_LEVELS) & set(schema.COMPONENTS)
    assert all(value in schema.ENUMS[enum] for enum, values in schema.ENUM_LEVELS.items() for value in values)


def used_components() -> set[str]:
    names = set()
    for path in ALLOY_DIR.glob("*.alloy"):
        for stmt in ax.parse(path.read_text()):
            blocks = stmt.body if isinstance(stmt, ax.Block) and stmt.name == "declare" else [stmt]
            names |= {b.name for b in blocks if isinstance(b, ax.Block) and b.label and b.name in schema.COMPONENTS}
    return names


def test_the_reference_tables_describe_exactly_the_components_in_use() -> None:
    # Every component used has a table (an unknown one is an error); a table nothing uses is unchecked text.
    assert used_components() == set(schema.COMPONENTS)


@pytest.mark.parametrize(("value", "kind", "fits"), [
    ("1m30s", "duration", True), ("90", "duration", False), (10, "duration", False),
    (3, "uint", True), (-3, "uint", False), (2.5, "int", False), (True, "number", False),
    (["ERROR"], "list(enum:status_code)", True), ({"a": "b"}, "map(string)", True), ({"a": 1}, "map(string)", False),
    ({"sampled_cache_size": 5}, "object(sampled_cache_size:int,non_sampled_cache_size:int)", True),
    ({"sampled_cache": 5}, "object(sampled_cache_size:int,non_sampled_cache_size:int)", False),
    (ax.Capsule("metrics_receiver", "x"), "logs_receiver", False), (ax.UNKNOWN, "duration", True),
])
def test_types(value: object, kind: str, fits: bool) -> None:
    assert (ax.type_problem(value, kind) is None) is fits


def test_the_stronger_check_is_documented() -> None:
    # `alloy validate` in the image the stack runs, for when Docker is at hand; and what the tables describe.
    readme = (DEPLOY / "README.md").read_text()
    image = load_yaml(COMPOSE_FILE)["services"]["alloy"]["image"]
    assert f"{image} validate --stability.level=generally-available /etc/alloy/config.alloy" in readme
    assert f"{image} validate --stability.level=generally-available /etc/alloy/$module.alloy" in readme
    assert schema.REFERENCE.split(",")[0] in " ".join(readme.split())
