"""deploy/k8s/components/opentelemetry-operator: added to each overlay, it renders an Instrumentation the
Operator's CRD schema and webhook accept (tests/deploy/otel_operator_schema.py: no package carries that
schema), annotates the chat API and the retriever for Python injection, and leaves the pods, after the
Operator has injected them, sending each signal once, to Alloy, through ragotel from the app image.

What the Operator does to an annotated pod is taken from its source (v0.158.0,
internal/instrumentation/{sdk,python,exporter}.go): it instruments the first container; a variable the
container sets wins over ``spec.python.env``, which wins over ``spec.env``, which wins over its Python
defaults (OTLP over http/protobuf for every signal) and the variables it derives from ``exporter``,
``sampler`` and ``propagators``; it refuses a PYTHONPATH taken from a ConfigMap or Secret, and otherwise
sets PYTHONPATH to its loader, then the container's own value, then its packages.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.conftest import COMPONENTS, ROOT, Doc, containers, env_of, find, pod_spec, render_with, workloads
from tests.deploy.netpol import Policies, pods_of
from tests.deploy.otel_operator_schema import API_VERSION, problems
from tests.deploy.test_k8s import validate
from tests.deploy.test_networkpolicies import policy_mismatches

COMPONENT = COMPONENTS / "opentelemetry-operator"
DOCKERFILE = ROOT / "examples" / "reference_app" / "Dockerfile"
INJECT = "instrumentation.opentelemetry.io/inject-python"
INJECTED = ("rag-chat-api", "rag-retriever")
# Where the Operator puts its loader (sitecustomize) and its packages in the pod.
OPERATOR_LOADER = "/otel-auto-instrumentation-python/opentelemetry/instrumentation/auto_instrumentation"
OPERATOR_PACKAGES = "/otel-auto-instrumentation-python"
# Its Python defaults, applied last.
OPERATOR_PYTHON_DEFAULTS = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp",
                            "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp"}


@pytest.fixture(scope="module", params=["local-cpu", "gpu"])
def docs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Doc]:
    return render_with(tmp_path_factory.mktemp(request.param), request.param, [COMPONENT])


def instrumentation(docs: list[Doc]) -> Doc:
    [found] = [d for d in docs if d["kind"] == "Instrumentation"]
    return found


def injected(docs: list[Doc]) -> list[Doc]:
    return [w for w in workloads(docs) if INJECT in w["spec"]["template"]["metadata"].get("annotations", {})]


def after_injection(container: Doc, inst: Doc) -> dict[str, str]:
    """The plain-valued environment of ``container`` once the Operator has injected ``inst`` into it."""
    spec = inst["spec"]
    env = {name: str(e["value"]) for name, e in env_of(container).items() if "value" in e}
    env |= {name: "<from the API>" for name, e in env_of(container).items() if "value" not in e}

    def add(name: str, value: str) -> None:
        env.setdefault(name, value)

    for entry in [*spec.get("python", {}).get("env", []), *spec.get("env", [])]:
        add(entry["name"], str(entry.get("value", "<from the API>")))
    for name, value in OPERATOR_PYTHON_DEFAULTS.items():
        add(name, value)
    if spec.get("exporter", {}).get("endpoint"):
        add("OTEL_EXPORTER_OTLP_ENDPOINT", spec["exporter"]["endpoint"])
    if spec.get("propagators"):
        add("OTEL_PROPAGATORS", ",".join(spec["propagators"]))
    sampler = spec.get("sampler", {})
    if sampler.get("type") and "OTEL_TRACES_SAMPLER" not in env and "OTEL_TRACES_SAMPLER_ARG" not in env:
        env["OTEL_TRACES_SAMPLER"] = sampler["type"]
        if sampler.get("argument"):
            env["OTEL_TRACES_SAMPLER_ARG"] = sampler["argument"]
    own = env.get("PYTHONPATH")
    env["PYTHONPATH"] = ":".join([OPERATOR_LOADER, *([own] if own else []), OPERATOR_PACKAGES])
    return env


def injected_envs(docs: list[Doc]) -> dict[str, dict[str, str]]:
    inst = instrumentation(docs)
    return {w["metadata"]["name"]: after_injection(containers(w, init=False)[0], inst) for w in injected(docs)}


# --- the objects ----------------------------------------------------------------------------------
def test_the_instrumentation_validates_against_the_operators_schema(docs: list[Doc]) -> None:
    inst = instrumentation(docs)
    assert inst["apiVersion"] == API_VERSION
    assert problems(inst) == []
    # The Deployments it patches, against the Kubernetes API schemas.
    for workload in injected(docs):
        validate(workload)


MUTATIONS: dict[str, tuple[Any, str]] = {
    "an API version the CRD does not serve": (lambda d: d.update(apiVersion="opentelemetry.io/v1beta1"), "apiVersion"),
    "a misspelt field": (lambda d: d["spec"]["python"].update(envs=d["spec"]["python"].pop("env")), "python.envs"),
    "a field of another kind": (lambda d: d["spec"].update(endpoint="http://alloy:4318"), "spec.endpoint"),
    "an unknown sampler": (lambda d: d["spec"]["sampler"].update(type="probabilistic"), "sampler.type"),
    "a ratio above 1": (lambda d: d["spec"].update(sampler={"type": "parentbased_traceidratio", "argument": "10"}),
                        "sampler"),
    "an unknown propagator": (lambda d: d["spec"]["propagators"].append("w3c"), "propagators"),
    "an env entry without a name": (lambda d: d["spec"]["python"]["env"][0].pop("name"), "env.0.name"),
    "a number where a string is wanted": (lambda d: d["spec"]["python"]["env"][0].update(value=1), "env.0.value"),
    "a memory that is no quantity": (
        lambda d: d["spec"]["python"]["resourceRequirements"]["limits"].update(memory="256MB"), "limits.memory"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_schema_check_refuses_a_mutation(docs: list[Doc], mutation: str) -> None:
    change, where = MUTATIONS[mutation]
    broken = copy.deepcopy(instrumentation(docs))
    change(broken)
    found = problems(broken)
    assert found and any(where in problem for problem in found), found


# --- which pods, and how the annotation names the Instrumentation ----------------------------------
def test_the_annotation_lands_on_the_app_deployments(docs: list[Doc]) -> None:
    inst = instrumentation(docs)
    assert sorted(w["metadata"]["name"] for w in injected(docs)) == sorted(INJECTED)
    for workload in injected(docs):
        assert workload["kind"] == "Deployment"
        # It names the Instrumentation in the pod's own namespace.
        assert workload["spec"]["template"]["metadata"]["annotations"][INJECT] == inst["metadata"]["name"]
        assert workload["metadata"]["namespace"] == inst["metadata"]["namespace"]
        # The Operator instruments the first container: the app's, not a sidecar.
        assert containers(workload, init=False)[0]["name"] == workload["metadata"]["name"]
    # The retriever's ingest init container (and vLLM) stay as they are.
    retriever = find(docs, "Deployment", "rag-retriever", "rag")
    assert [c["name"] for c in pod_spec(retriever)["initContainers"]] == ["ingest"]
    assert "PYTHONPATH" not in env_of(pod_spec(retriever)["initContainers"][0])
    assert INJECT not in find(docs, "Deployment", "vllm", "rag")["spec"]["template"]["metadata"]["annotations"]


def test_a_name_prefix_follows_into_the_annotation(tmp_path: Path) -> None:
    docs = render_with(tmp_path, "local-cpu", [COMPONENT], "namePrefix: shop-\n")
    assert instrumentation(docs)["metadata"]["name"] == "shop-ragotel"
    assert {w["spec"]["template"]["metadata"]["annotations"][INJECT] for w in injected(docs)} == {"shop-ragotel"}


# --- where the signals go, and that each goes once -------------------------------------------------
def test_the_exporter_endpoint_is_alloys_otlp_http_port(docs: list[Doc]) -> None:
    inst = instrumentation(docs)
    url = urlsplit(inst["spec"]["exporter"]["endpoint"])
    host, _, namespace = url.hostname.partition(".")
    service = find(docs, "Service", host, namespace.split(".")[0] or inst["metadata"]["namespace"])
    [port] = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    alloy = pods_of(docs)["alloy"]
    assert service["spec"]["selector"].items() <= dict(alloy.labels).items()
    assert (url.scheme, port["name"], alloy.port_number(port["targetPort"], "TCP")) == ("http", "otlp-http", 4318)
    for name, env in injected_envs(docs).items():
        # Every injected app container sends to that receiver, over HTTP.
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (endpoint.hostname, endpoint.port) == (host, url.port), name
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf", name


def test_ragotel_from_the_app_image_is_the_distro_and_configurator(docs: list[Doc]) -> None:
    python_env = {e["name"]: e["value"] for e in instrumentation(docs)["spec"]["python"]["env"]}
    assert (python_env["OTEL_PYTHON_DISTRO"], python_env["OTEL_PYTHON_CONFIGURATOR"]) == ("ragotel", "ragotel")
    # The names ragotel registers for the loader.
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert "ragotel" in entry_points["opentelemetry_distro"]
    assert "ragotel" in entry_points["opentelemetry_configurator"]
    for name, env in injected_envs(docs).items():
        assert (env["OTEL_PYTHON_DISTRO"], env["OTEL_PYTHON_CONFIGURATOR"]) == ("ragotel", "ragotel"), name
        # Nothing turns ragotel (or the SDK) off.
        disabled = {n.strip() for n in env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
        assert not {n for n in disabled if n == "*" or n.startswith("ragotel")}, name
        assert env.get("OTEL_SDK_DISABLED", "false") != "true", name


def test_the_app_images_packages_come_before_the_operators(docs: list[Doc]) -> None:
    """The Operator's packages would shadow the app image's (PYTHONPATH comes before site-packages): the
    app container names its own site-packages, which the Operator keeps between its loader and its
    packages, so ragotel runs on the OpenTelemetry versions it was installed with."""
    [python] = re.findall(r"^FROM python:(\d+\.\d+)-slim AS app$", DOCKERFILE.read_text(), re.MULTILINE)
    site_packages = f"/usr/local/lib/python{python}/site-packages"
    for workload in injected(docs):
        own = env_of(containers(workload, init=False)[0])["PYTHONPATH"]
        assert own == {"name": "PYTHONPATH", "value": site_packages}, "a plain value: from a ConfigMap it is refused"
    for name, env in injected_envs(docs).items():
        path = env["PYTHONPATH"].split(":")
        assert path == [OPERATOR_LOADER, site_packages, OPERATOR_PACKAGES], name


def test_each_signal_is_exported_once(docs: list[Doc]) -> None:
    for workload in injected(docs):
        name = workload["metadata"]["name"]
        env = injected_envs(docs)[name]
        notes = workload["spec"]["template"]["metadata"]["annotations"]
        ports = {p["containerPort"] for p in containers(workload, init=False)[0]["ports"]}
        # Metrics: scraped by Alloy from the app's own /metrics, never also over OTLP, and configure() (which
        # now runs before the app's code) opens no second endpoint.
        assert env["OTEL_METRICS_EXPORTER"] == "prometheus", name
        assert notes["k8s.grafana.com/scrape"] == "true" and int(notes["k8s.grafana.com/metrics.portNumber"]) in ports
        assert env["OTEL_EXPORTER_PROMETHEUS_PORT"] == "0", name
        # Logs: over OTLP by ragotel's handler only; Alloy does not tail the same lines from stdout.
        assert env["OTEL_LOGS_EXPORTER"] == "otlp" and notes["ragotel.io/logs"] == "otlp", name
        assert env["OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION"] == "false", name
        assert env.get("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "false") != "true", name
        # Traces: over OTLP, every one recorded for Alloy's tail sampler to decide on.
        assert env["OTEL_TRACES_EXPORTER"] == "otlp", name
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_always_on", name
        assert env["OTEL_PROPAGATORS"] == "tracecontext,baggage", name
        # The service keeps its own name.
        assert env["OTEL_SERVICE_NAME"] == name


def test_a_pod_that_sets_nothing_sends_each_signal_over_otlp_once(docs: list[Doc]) -> None:
    bare = {"name": "app", "image": "example/app:1.0.0"}
    env = after_injection(bare, instrumentation(docs))
    assert {env[f"OTEL_{signal}_EXPORTER"] for signal in ("TRACES", "METRICS", "LOGS")} == {"otlp"}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == instrumentation(docs)["spec"]["exporter"]["endpoint"]


# --- what the Operator adds to the pod, and the network -------------------------------------------
def test_the_init_container_the_operator_adds_is_bounded_and_restricted(docs: list[Doc]) -> None:
    """The Operator's init container copies its packages with the resources given here and the security
    context of the container it instruments (namespace `rag` enforces the restricted profile)."""
    resources = instrumentation(docs)["spec"]["python"]["resourceRequirements"]
    assert {kind: sorted(resources[kind]) for kind in ("requests", "limits")} == \
        {"requests": ["cpu", "memory"], "limits": ["cpu", "memory"]}
    for workload in injected(docs):
        context = containers(workload, init=False)[0]["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
        assert context["readOnlyRootFilesystem"] is True
        assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True


def test_network_policies_still_allow_exactly_the_stacks_flows(docs: list[Doc]) -> None:
    """The component needs no policy of its own: the injected init container only copies files, the
    Operator's webhook is called by the API server, and the pods keep sending to Alloy's 4318."""
    assert not [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].startswith("ragotel")]
    assert policy_mismatches(docs) == ([], [])
    policies, pods = Policies.of(docs), pods_of(docs)
    for name in INJECTED:
        assert policies.allows(pods[name], pods["alloy"], 4318), name
