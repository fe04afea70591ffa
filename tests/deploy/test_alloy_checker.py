"""The Alloy checker (alloy_syntax.py with the reference tables of alloy_schema.py) on the real files: each
mutation below is a mistake that once went unnoticed or that Alloy would refuse, applied to a copy of the
real configuration, and each must be reported; the unmutated files must pass.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tests.deploy import alloy_schema as schema
from tests.deploy import alloy_syntax as ax
from tests.deploy.conftest import ALLOY_DIR, COMPOSE_FILE, DEPLOY, load_yaml

MAIN, K8S, COMPOSE = "config.alloy", "kubernetes.alloy", "compose.alloy"


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
    assert files[mutation.file].count(mutation.old) == 1, f"{name}: the text to mutate is not in the file once"
    mutated = {**files, mutation.file: files[mutation.file].replace(mutation.old, mutation.new)}
    problems = ax.check(mutated, {"platform": mutation.platform})
    assert any(mutation.complaint in p for p in problems), problems


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
    assert schema.REFERENCE.split(",")[0] in readme
