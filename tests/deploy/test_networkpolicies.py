"""deploy/k8s NetworkPolicies: each namespace the stack uses denies by default, every flow the stack
needs is open, and nothing else is.

The flows are derived from the rendered manifests, not listed by hand: every ``host:port`` of a
Service in a container's command, args or environment or in a ConfigMap the pod mounts (app → retriever,
app → vLLM, everything → Alloy, Alloy → Tempo/Mimir/Loki, Tempo → Mimir, Grafana's datasources), Alloy's
scrape of every pod annotated ``k8s.grafana.com/scrape``, the kubelet for Alloy's node discovery, the
kube-apiserver for every pod that mounts a service-account token, DNS for every pod, the model hub where
vLLM's model is a hub id, and the two entry points. Then every (source, destination, port) pair is asked
of the policies (``tests/deploy/netpol.py``): allowed exactly when it is one of those flows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.deploy import alloy_syntax as ax
from tests.deploy.conftest import Doc, containers, env_of, find, pod_spec, workloads
from tests.deploy.netpol import (
    API_SERVER,
    INTERNET,
    KUBE_DNS,
    NODE,
    OTHER_KUBE_SYSTEM,
    OUTSIDE,
    Endpoint,
    Pod,
    Policies,
    pods_of,
)

OVERLAY_NAMES = ("local-cpu", "gpu")

# The stack's entry points: the chat API and Grafana's UI (deploy/README.md).
PUBLIC = {"rag-chat-api": 8080, "grafana": 3000}
# Backends in monolithic mode talk to themselves (gRPC, ring) on any of their ports.
SELF_TALKERS = ("tempo", "mimir", "loki")
# The kube-apiserver as a pod sees it: the `kubernetes` Service's 443, or the endpoint behind it
# (6443 kubeadm/kind, 8443 minikube) where the CNI matches after the Service is resolved.
API_SERVER_PORTS = (443, 6443, 8443)
KUBELET_PORT = 10250

# Destination keys besides workload names.
CLUSTER_ADDRESS = "cluster-address"  # nodes, the API server endpoint: private, outside the pod network
DNS = "kube-dns"
INTERNET_KEY = "internet"
OUTSIDE_KEY = "outside"

Flow = tuple[str, str, int, str]  # (source, destination, port, protocol)
SERVICE_REFERENCE = re.compile(r"(?<![\w.-])([a-z][a-z0-9-]*)(?:\.[a-z0-9-]+(?:\.svc[\w.-]*)?)?:(\d{2,5})\b")


def configmap_texts(docs: list[Doc], workload: Doc) -> Iterator[str]:
    """The contents of every ConfigMap the pod mounts or reads its environment from."""
    spec = pod_spec(workload)
    names = {v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
    names |= {s["configMapRef"]["name"] for c in containers(workload) for s in c.get("envFrom", [])
              if "configMapRef" in s}
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] in names:
            yield from (str(v) for v in (doc.get("data") or {}).values())


def texts_of(docs: list[Doc], workload: Doc) -> Iterator[str]:
    for container in containers(workload):
        yield from container.get("command", [])
        yield from container.get("args", [])
        yield from (str(e["value"]) for e in container.get("env", []) if "value" in e)
    yield from configmap_texts(docs, workload)


def resolve(docs: list[Doc], pods: dict[str, Pod], namespace: str, host: str, port: int) -> tuple[str, int] | None:
    """``host:port`` of a Service -> (workload behind it, container port), or None if not a Service."""
    services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == host
                and d["metadata"]["namespace"] == namespace]
    if not services:
        return None
    [service] = services
    [service_port] = [p for p in service["spec"]["ports"] if p["port"] == port] or [None]
    assert service_port is not None, f"{host}:{port} names a port the Service {host} does not have"
    selector = service["spec"]["selector"]
    [target] = [p for p in pods.values() if p.namespace == namespace
                and all(dict(p.labels).get(k) == v for k, v in selector.items())]
    target_port = service_port.get("targetPort", port)
    if isinstance(target_port, str):
        number = target.port_number(target_port, service_port.get("protocol", "TCP"))
        assert number is not None, f"Service {host}: no container port named {target_port}"
        target_port = number
    return target.name, target_port


def token_mounted(docs: list[Doc], workload: Doc) -> bool:
    spec = pod_spec(workload)
    if spec.get("automountServiceAccountToken") is False:
        return False
    account = spec.get("serviceAccountName", "default")
    for doc in docs:
        if doc["kind"] == "ServiceAccount" and doc["metadata"]["name"] == account:
            return doc.get("automountServiceAccountToken") is not False
    return True  # the namespace's default account mounts a token unless told otherwise


def trace_routing_peers(docs: list[Doc]) -> Iterator[tuple[str, str, int]]:
    """(namespace, Service, port) every DNS resolver of an otelcol.exporter.loadbalancing dials, with
    the DaemonSet's environment: Alloy sending spans to the Alloy that samples their trace."""
    alloy = find(docs, "DaemonSet", "alloy", "rag")
    env = {name: str(e["value"]) for name, e in env_of(containers(alloy)[0]).items() if "value" in e}
    config = find(docs, "ConfigMap", "alloy-config", "rag")["data"]["kubernetes.alloy"]
    for block in (b for s in ax.parse(config) if isinstance(s, ax.Block) for b in s.walk()):
        if block.name != "otelcol.exporter.loadbalancing":
            continue
        for dns in (d for resolver in block.blocks("resolver") for d in resolver.blocks("dns")):
            host = ax.evaluate(dns.attr("hostname"), env)
            service, namespace = [*host.split("."), "rag"][:2]
            yield namespace, service, int(ax.evaluate(dns.attr("port"), env))


def required_flows(docs: list[Doc]) -> set[Flow]:
    pods = pods_of(docs)
    flows: set[Flow] = set()
    for workload in workloads(docs):
        name, namespace = workload["metadata"]["name"], workload["metadata"]["namespace"]
        source = pods[name]
        for text in texts_of(docs, workload):
            for host, port in SERVICE_REFERENCE.findall(text):
                target = resolve(docs, pods, namespace, host, int(port))
                if target and target[0] != name:
                    flows.add((name, target[0], target[1], "TCP"))
        notes = workload["spec"]["template"]["metadata"].get("annotations", {})
        if notes.get("k8s.grafana.com/scrape") == "true":
            port = int(notes["k8s.grafana.com/metrics.portNumber"])
            flows.add(("alloy", CLUSTER_ADDRESS if source.host_network else name, port, "TCP"))
        if not source.host_network:
            flows |= {(name, DNS, 53, "UDP"), (name, DNS, 53, "TCP")}
            if token_mounted(docs, workload):
                flows |= {(name, CLUSTER_ADDRESS, port, "TCP") for port in API_SERVER_PORTS}
        if name in SELF_TALKERS:
            flows |= {(name, name, port, "TCP") for _, port, _ in source.ports}
    # The trace-id load balancer: Alloy to Alloy, between instances of the one DaemonSet.
    for namespace, service, port in trace_routing_peers(docs):
        target = resolve(docs, pods, namespace, service, port)
        assert target is not None, f"the load balancer dials {service}.{namespace}, which is no Service"
        flows.add(("alloy", target[0], target[1], "TCP"))
    alloy_config = find(docs, "ConfigMap", "alloy-config", "rag")["data"]["kubernetes.alloy"]
    if re.search(r'discovery\.kubernetes\s+"node"', alloy_config):
        flows.add(("alloy", CLUSTER_ADDRESS, KUBELET_PORT, "TCP"))  # the kubelet's /metrics, /metrics/cadvisor
    model = find(docs, "ConfigMap", "rag-model", "rag")["data"]["VLLM_MODEL"]
    if not model.startswith("/"):
        flows.add(("vllm", INTERNET_KEY, 443, "TCP"))  # weights from the model hub
    flows |= {(OUTSIDE_KEY, name, port, "TCP") for name, port in PUBLIC.items()}
    return flows


def probes(pods: dict[str, Pod]) -> Iterator[tuple[str, Endpoint, int, str]]:
    """Every destination worth asking about: each container port, and likely ports elsewhere."""
    for pod in pods.values():
        for _, port, protocol in pod.ports:
            yield (CLUSTER_ADDRESS if pod.host_network else pod.name), pod, port, protocol
    for address in (NODE, API_SERVER):
        for port in (22, 80, 443, 2379, 6443, 8443, 9100, 10250):
            yield CLUSTER_ADDRESS, address, port, "TCP"
    for port in (22, 53, 80, 443):
        yield INTERNET_KEY, INTERNET, port, "TCP"
    for protocol in ("UDP", "TCP"):
        yield DNS, KUBE_DNS, 53, protocol
        yield "other-kube-system", OTHER_KUBE_SYSTEM, 53, protocol
    yield "other-kube-system", OTHER_KUBE_SYSTEM, 443, "TCP"


@pytest.fixture(scope="module", params=OVERLAY_NAMES)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]) -> tuple[str, list[Doc]]:
    return request.param, rendered[request.param]


def test_every_namespace_of_the_stack_denies_by_default(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    used = {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]}
    assert used == {"rag", "rag-node"}
    for namespace in used:
        deny = [p for p in docs if p["kind"] == "NetworkPolicy" and p["metadata"]["namespace"] == namespace
                and p["spec"]["podSelector"] == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")]
        assert deny, f"no default-deny policy in {namespace}"


def test_the_derived_flows_cover_the_known_wiring(overlay: tuple[str, list[Doc]]) -> None:
    """The derivation itself finds what the README describes (so an empty derivation cannot pass)."""
    name, docs = overlay
    flows = required_flows(docs)
    for flow in [
        ("rag-chat-api", "rag-retriever", 8001, "TCP"), ("rag-chat-api", "vllm", 8000, "TCP"),
        ("rag-chat-api", "alloy", 4318, "TCP"), ("rag-retriever", "alloy", 4318, "TCP"),
        ("vllm", "alloy", 4318, "TCP"),
        ("alloy", "tempo", 4317, "TCP"), ("alloy", "mimir", 9009, "TCP"), ("alloy", "loki", 3100, "TCP"),
        ("alloy", "alloy", 4319, "TCP"),
        ("tempo", "mimir", 9009, "TCP"),
        ("grafana", "tempo", 3200, "TCP"), ("grafana", "mimir", 9009, "TCP"), ("grafana", "loki", 3100, "TCP"),
        ("alloy", "rag-chat-api", 8080, "TCP"), ("alloy", "rag-retriever", 8001, "TCP"),
        ("alloy", "vllm", 8000, "TCP"), ("alloy", "kube-state-metrics", 8080, "TCP"),
        ("alloy", CLUSTER_ADDRESS, 9100, "TCP"), ("alloy", CLUSTER_ADDRESS, KUBELET_PORT, "TCP"),
        ("alloy", CLUSTER_ADDRESS, 443, "TCP"), ("kube-state-metrics", CLUSTER_ADDRESS, 443, "TCP"),
        ("grafana", DNS, 53, "UDP"), (OUTSIDE_KEY, "rag-chat-api", 8080, "TCP"), (OUTSIDE_KEY, "grafana", 3000, "TCP"),
    ]:
        assert flow in flows, flow
    assert ("rag-chat-api", CLUSTER_ADDRESS, 443, "TCP") not in flows, "the app mounts no token"
    if name == "gpu":
        assert ("alloy", "dcgm-exporter", 9400, "TCP") in flows
        assert ("vllm", INTERNET_KEY, 443, "TCP") in flows
    else:
        assert not [f for f in flows if f[1] == INTERNET_KEY]


def test_policies_allow_exactly_the_flows_the_stack_needs(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    missing, extra = policy_mismatches(docs)
    assert missing == [], "flows the stack needs that no policy allows"
    assert extra == [], "flows allowed that the stack does not need"


def policy_mismatches(docs: list[Doc]) -> tuple[list[str], list[str]]:
    """Every (source, destination, port) of the rendered pods asked of the policies: the flows the stack
    needs that they refuse, and the flows they allow that it does not need."""
    pods = pods_of(docs)
    policies = Policies.of(docs)
    flows = required_flows(docs)
    sources: dict[str, Pod] = {n: p for n, p in pods.items() if not p.host_network}
    sources[OUTSIDE_KEY] = OUTSIDE
    missing, extra = [], []
    for source_name, source in sources.items():
        for key, destination, port, protocol in probes(pods):
            if key == source_name:
                continue  # a pod reaching its own address does not leave its network namespace
            if source is OUTSIDE and key in (CLUSTER_ADDRESS, INTERNET_KEY, DNS, "other-kube-system"):
                continue  # what an outside client may reach beyond the stack's pods is not the stack's policy
            wanted = (source_name, key, port, protocol) in flows
            allowed = policies.allows(source, destination, port, protocol)
            label = f"{source_name} -> {key}:{port}/{protocol}"
            if wanted and not allowed:
                missing.append(label)
            elif allowed and not wanted:
                extra.append(label)
    # every required flow was asked about (a flow to a port nothing listens on would be a wiring bug)
    asked = {(s, k, p, proto) for s in sources for k, _, p, proto in probes(pods)}  # (self included)
    missing += [f"{s} -> {k}:{p}/{proto} (nothing listens there)" for s, k, p, proto in sorted(flows - asked)]
    return missing, extra


def test_self_traffic_of_the_backends_stays_open(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    pods = pods_of(docs)
    policies = Policies.of(docs)
    for name in SELF_TALKERS:
        for _, port, protocol in pods[name].ports:
            assert policies.allows(pods[name], pods[name], port, protocol), f"{name}:{port}"


def test_alloy_instances_reach_each_other_only_on_the_trace_routing_port(overlay: tuple[str, list[Doc]]) -> None:
    """Pod-to-pod flows inside one workload (the main check skips a pod reaching itself): the derived
    ones are open, every other port of those pods is closed to them, and nobody else gets in."""
    _, docs = overlay
    pods = pods_of(docs)
    policies = Policies.of(docs)
    peer_flows = {(s, port) for s, d, port, _ in required_flows(docs) if s == d and s not in SELF_TALKERS}
    assert peer_flows == {("alloy", 4319)}
    for name, port in peer_flows:
        pod = pods[name]
        assert policies.allows(pod, pod, port), f"{name} -> {name}:{port}"
        for _, other, protocol in pod.ports:
            if other != port:
                assert not policies.allows(pod, pod, other, protocol), f"{name} -> {name}:{other} is open"
        for source in pods.values():
            if source.name != name and not source.host_network:
                assert not policies.allows(source, pod, port), f"{source.name} -> {name}:{port} is open"


def test_dropping_the_peer_egress_closes_trace_routing(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    alloy = pods_of(docs)["alloy"]
    policy = find(docs, "NetworkPolicy", "alloy", "rag")
    egress = [rule for rule in policy["spec"]["egress"] if {p.get("port") for p in rule.get("ports", [])} != {4319}]
    assert len(egress) == len(policy["spec"]["egress"]) - 1
    changed = {**policy, "spec": {**policy["spec"], "egress": egress}}
    assert not Policies.of([changed if d is policy else d for d in docs]).allows(alloy, alloy, 4319)


def test_the_evaluator_sees_a_missing_allow(overlay: tuple[str, list[Doc]]) -> None:
    """Dropping the retriever's policy closes chat API -> retriever (default deny holds)."""
    _, docs = overlay
    pods = pods_of(docs)
    chat, retriever = pods["rag-chat-api"], pods["rag-retriever"]
    assert Policies.of(docs).allows(chat, retriever, 8001)
    without = [d for d in docs if not (d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "rag-retriever")]
    assert not Policies.of(without).allows(chat, retriever, 8001)
    # and without any policy at all, everything is open again: the evaluator is not deny-only
    assert Policies.of([]).allows(pods["grafana"], retriever, 8001)
    assert not Policies.of(docs).allows(pods["grafana"], retriever, 8001)
