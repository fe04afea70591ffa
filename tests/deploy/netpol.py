"""Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), enough to ask of rendered manifests
whether one endpoint may open a connection to another.

A connection is allowed when the source's egress and the destination's ingress both allow it. A pod
that no policy of a direction selects is not isolated in that direction. Peers: ``podSelector`` (the
policy's namespace), ``namespaceSelector`` (every pod there), both (pods in those namespaces), or
``ipBlock``, which matches addresses outside the pod network only (``Address``; a pod's own address is
implementation-defined in the API and never counted on here). Ports: number or container-port name,
``protocol`` (default TCP) and ``endPort``; no ``ports`` means every port, no ``from``/``to`` every peer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Doc = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: its namespace (and that namespace's labels), labels, named ports."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    namespace_labels: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, int, str], ...] = ()  # (name, number, protocol)
    host_network: bool = False

    def port_number(self, name: str, protocol: str) -> int | None:
        return next((n for p_name, n, proto in self.ports if p_name == name and proto == protocol), None)


@dataclass(frozen=True)
class Address:
    """An address outside the pod network: a node, the kube-apiserver, a host on the internet."""

    ip: str


Endpoint = Pod | Address


def matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A LabelSelector: ``{}`` matches everything; ``None`` (absent) is the caller's concern."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def policy_types(policy: Doc) -> set[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return set(spec["policyTypes"])
    return {"Ingress", *(["Egress"] if "egress" in spec else [])}


def _peer_matches(peer: Doc, policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, Address):
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        if ip not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ip in ipaddress.ip_network(e) for e in block.get("except") or [])
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], dict(other.namespace_labels)):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or matches(peer["podSelector"], dict(other.labels))


def _port_matches(rule_port: Doc, destination: Endpoint, port: int, protocol: str) -> bool:
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    wanted = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        if not isinstance(destination, Pod):
            return False
        number = destination.port_number(wanted, protocol)
        return number == port
    first: int = wanted
    last: int = rule_port.get("endPort", first)
    return first <= port <= last


def _rule_allows(rule: Doc, peers_key: str, policy_namespace: str, other: Endpoint, destination: Endpoint,
                 port: int, protocol: str) -> bool:
    peers = rule.get(peers_key)
    if peers and not any(_peer_matches(p, policy_namespace, other) for p in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(_port_matches(p, destination, port, protocol) for p in ports)


@dataclass
class Policies:
    docs: list[Doc] = field(default_factory=list)

    @classmethod
    def of(cls, rendered: list[Doc]) -> Policies:
        return cls([d for d in rendered if d["kind"] == "NetworkPolicy"])

    def selecting(self, pod: Pod, direction: str) -> list[Doc]:
        return [p for p in self.docs if p["metadata"]["namespace"] == pod.namespace
                and matches(p["spec"].get("podSelector"), dict(pod.labels)) and direction in policy_types(p)]

    def egress_allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str) -> bool:
        if not isinstance(source, Pod) or source.host_network:
            return True  # policies do not apply to host-network pods or to addresses outside the cluster
        selected = self.selecting(source, "Egress")
        return not selected or any(
            _rule_allows(rule, "to", p["metadata"]["namespace"], destination, destination, port, protocol)
            for p in selected for rule in p["spec"].get("egress") or [])

    def ingress_allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str) -> bool:
        if not isinstance(destination, Pod) or destination.host_network:
            return True
        selected = self.selecting(destination, "Ingress")
        return not selected or any(
            _rule_allows(rule, "from", p["metadata"]["namespace"], source, destination, port, protocol)
            for p in selected for rule in p["spec"].get("ingress") or [])

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        if isinstance(destination, Pod) and destination.host_network:
            # A host-network pod is reached at its node's address, and egress is matched as such.
            destination = NODE
        return (self.egress_allows(source, destination, port, protocol)
                and self.ingress_allows(source, destination, port, protocol))


# Stand-ins for what lives outside the rendered manifests, with kind's addresses: the node (kubelet
# and host-network pods), the API server endpoint, an internet host, and the cluster DNS.
NODE = Address("172.18.0.3")
API_SERVER = Address("172.18.0.2")
INTERNET = Address("203.0.113.7")
KUBE_SYSTEM = (("kubernetes.io/metadata.name", "kube-system"),)
KUBE_DNS = Pod("coredns", "kube-system", (("k8s-app", "kube-dns"),), KUBE_SYSTEM, (("dns", 53, "UDP"),))
# Another pod in kube-system listening on 53: DNS egress must not reach it.
OTHER_KUBE_SYSTEM = Pod("metrics-server", "kube-system", (("k8s-app", "metrics-server"),), KUBE_SYSTEM)
# A client from outside the stack's namespaces (an ingress controller, say).
OUTSIDE = Pod("ingress-nginx-controller", "ingress-nginx", (("app.kubernetes.io/name", "ingress-nginx"),),
              (("kubernetes.io/metadata.name", "ingress-nginx"),))


def pods_of(rendered: list[Doc]) -> dict[str, Pod]:
    """Workload name -> the pod its template makes, with its namespace's labels as the API sets them."""
    namespaces = {d["metadata"]["name"]: {**d["metadata"].get("labels", {}),
                                          "kubernetes.io/metadata.name": d["metadata"]["name"]}
                  for d in rendered if d["kind"] == "Namespace"}
    pods = {}
    for doc in rendered:
        if doc["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        namespace = doc["metadata"]["namespace"]
        template = doc["spec"]["template"]
        spec = template["spec"]
        ports = tuple((p.get("name", ""), p["containerPort"], p.get("protocol", "TCP"))
                      for c in spec["containers"] for p in c.get("ports", []))
        pods[doc["metadata"]["name"]] = Pod(
            doc["metadata"]["name"], namespace, tuple(sorted(template["metadata"]["labels"].items())),
            tuple(sorted(namespaces.get(namespace, {"kubernetes.io/metadata.name": namespace}).items())),
            ports, bool(spec.get("hostNetwork")))
    return pods
