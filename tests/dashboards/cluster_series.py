"""Three hours of what a small GPU cluster's exporters serve, stored as this deploy's Alloy scrapes them:
the data tests/dashboards/test_cluster_panels.py runs the Kubernetes and GPU dashboards and the alerts
on those exporters against, written as OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``.

Names and labels are each exporter's own, at the version the deploy pins:

* kube-state-metrics v2.19.1 (deploy/k8s/base/kube-state-metrics): docs/metrics/workload/deployment-metrics.md,
  docs/metrics/workload/pod-metrics.md and docs/metrics/cluster/node-metrics.md at tag v2.19.1.
  ``kube_pod_status_phase`` has one series per phase: 1 for the pod's, 0 for the four others.
* cAdvisor as the kubelet serves it on /metrics/cadvisor: the kubelet labels every cgroup's series with
  ``container``, ``pod``, ``namespace``, ``image``, ``id`` and ``name`` (empty, so absent once stored,
  where they do not apply: a pod's own cgroup has no container, the node's cgroups have none of them),
  and its CPU usage is one ``cpu="total"`` series per cgroup (the kubelet keeps per-CPU figures off).
  A restarted container is a new cgroup: new ``id`` and ``name``, its counter from zero.
* node-exporter v1.12.1 (deploy/k8s/base/node-exporter): the cpu, meminfo and stat collectors.
* dcgm-exporter 4.6.0-4.8.3 (deploy/k8s/overlays/gpu): fields of its etc/default-counters.csv, every GPU's
  series labelled ``gpu``, ``UUID``, ``pci_bus_id``, ``device``, ``modelName``, ``hostname`` and
  ``DCGM_FI_DRIVER_VERSION`` (a label field of the default counters). ``hostname`` is spelt ``Hostname``
  up to 4.5.3-4.8.2 (NVIDIA/dcgm-exporter#655 renamed it) and holds the NODE_NAME variable or else the
  container's host name, the exporter pod's name (read from the overlay's DaemonSet here). With
  ``DCGM_EXPORTER_KUBERNETES`` the GPU a container holds also carries that ``pod``, ``namespace`` and
  ``container``.
* ragotel's HTTP server requests: a label set tests/dashboards/real.py gets from the real exposition.

Then each target's series get what deploy/alloy/kubernetes.alloy's scrapes add: ``job``, ``instance`` and
the discovery's labels for annotated pods, ``job``, ``instance`` and ``node`` for the kubelet's cAdvisor,
and an ``up`` series. Where an exporter's own label has the name of one the scrape adds, the file's
``honor_labels`` decides, as in Prometheus: on, the exporter's stays; off, it becomes ``exported_<name>``.
Alloy scrapes every 15 s (``scrape_interval`` in deploy/alloy/config.alloy).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Final

import yaml

from dashboards import promql as q
from tests.dashboards import real
from tests.deploy import alloy_syntax as ax

ROOT: Final = Path(__file__).resolve().parents[2]
ALLOY_KUBERNETES: Final = ROOT / "deploy" / "alloy" / "kubernetes.alloy"
DCGM_DAEMONSET: Final = ROOT / "deploy" / "k8s" / "overlays" / "gpu" / "dcgm-exporter.yaml"

STEP_S: Final = 15
MINUTES: Final = 180
SCRAPES: Final = MINUTES * 60 // STEP_S + 1

# The story the series tell, in minutes from their start.
PANELS_AT: Final = 150
"""Every target answers here, with more than an hour of history: the dashboards are run at this minute."""
GPU0_FULL_FROM: Final = 100
"""vLLM's GPU holds 90% of its framebuffer (``--gpu-memory-utilization=0.90``); from here 96%."""
GPU1_SPIKE: Final = (140, 143)
"""The idle GPU at 95% for three minutes only: GpuMemoryHigh pending, never firing."""
NODE_EXPORTER_GAP: Final = (120, 121)
"""One minute of failed scrapes of the CPU node's node-exporter: RagScrapeTargetDown waits 2 minutes."""
DCGM_DOWN_FROM: Final = 165
"""The DCGM exporter stops answering until the end: RagScrapeTargetDown fires 2 minutes later."""

CPU_NODE: Final = "ip-10-0-1-11.ec2.internal"
GPU_NODE: Final = "ip-10-0-1-12.ec2.internal"
FB_TOTAL_MIB: Final = 22_716  # FB_USED + FB_FREE of a 24 GB GPU (what the driver reserves is neither)


@dataclass(frozen=True)
class Series:
    """One stored series: its name, its labels (none empty) and a value per scrape (None: not scraped)."""

    name: str
    labels: Mapping[str, str]
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    cores: float
    memory_mib: float
    restarts_at: tuple[int, ...] = ()


@dataclass(frozen=True)
class Pod:
    """A pod: its owner (a ReplicaSet of ``deployment``, or a DaemonSet), where it runs and the port Alloy
    scrapes (``k8s.grafana.com/metrics.portNumber``; 0: not annotated)."""

    name: str
    namespace: str
    node: str
    ip: str
    containers: tuple[Container, ...]
    app: str  # its app.kubernetes.io/name label: the scrape's job
    deployment: str = ""
    daemonset: str = ""
    port: int = 0

    @property
    def uid(self) -> str:
        digest = hashlib.sha256(self.name.encode()).hexdigest()
        return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

    @property
    def owner(self) -> tuple[str, str]:
        """(kind, name) as kube_pod_info's created_by_* give it."""
        if self.deployment:
            return "ReplicaSet", self.name.rsplit("-", 1)[0]
        return "DaemonSet", self.daemonset


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    cpus: int
    memory_gib: int
    busy: float  # share of CPU time not idle
    pod_cidr: str


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    pci_bus_id: str
    holder: Pod | None  # the pod whose container holds it (DCGM's Kubernetes mapping)
    used_share: Callable[[float], float] = field(compare=False)
    utilization: float = 0.0


NODES: Final = (
    Node(CPU_NODE, "10.0.1.11", 4, 16, 0.35, "10.244.1.0/24"),
    Node(GPU_NODE, "10.0.1.12", 8, 32, 0.55, "10.244.2.0/24"),
)
APP_IMAGE: Final = "docker.io/ragotel/reference-app:0.1.0"
PODS: Final = (
    Pod("rag-chat-api-7d9c6b5f4c-x8k2p", "rag", CPU_NODE, "10.244.1.17", (
        Container("rag-chat-api", APP_IMAGE, 0.25, 380),), "rag-chat-api", deployment="rag-chat-api", port=8080),
    Pod("rag-chat-api-7d9c6b5f4c-q4m7n", "rag", CPU_NODE, "10.244.1.18", (
        Container("rag-chat-api", APP_IMAGE, 0.22, 365),), "rag-chat-api", deployment="rag-chat-api", port=8080),
    Pod("rag-retriever-5b8f9d7c6d-h2j9w", "rag", CPU_NODE, "10.244.1.21", (
        Container("rag-retriever", APP_IMAGE, 0.40, 1_250, restarts_at=(60, 130)),), "rag-retriever",
        deployment="rag-retriever", port=8001),
    Pod("kube-state-metrics-6f7c9b8d5c-t5r8z", "rag", CPU_NODE, "10.244.1.9", (
        Container("kube-state-metrics", "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.19.1", 0.02, 48),),
        "kube-state-metrics", deployment="kube-state-metrics", port=8080),
    Pod("vllm-8c5d7f9b6b-m3n6q", "rag", GPU_NODE, "10.244.2.14", (
        Container("vllm", "docker.io/vllm/vllm-openai:v0.32.0", 3.6, 9_800, restarts_at=(30,)),), "vllm",
        deployment="vllm", port=8000),
    Pod("node-exporter-7xk4p", "rag-node", CPU_NODE, "10.0.1.11", (
        Container("node-exporter", "quay.io/prometheus/node-exporter:v1.12.1", 0.01, 22),), "node-exporter",
        daemonset="node-exporter", port=9100),
    Pod("node-exporter-b2v9c", "rag-node", GPU_NODE, "10.0.1.12", (
        Container("node-exporter", "quay.io/prometheus/node-exporter:v1.12.1", 0.01, 24),), "node-exporter",
        daemonset="node-exporter", port=9100),
    Pod("dcgm-exporter-q7w4s", "rag-node", GPU_NODE, "10.244.2.6", (
        Container("dcgm-exporter", "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3-distroless", 0.05, 180),),
        "dcgm-exporter", daemonset="dcgm-exporter", port=9400),
)
DEPLOYMENTS: Final = tuple(dict.fromkeys((pod.namespace, pod.deployment) for pod in PODS if pod.deployment))


def _pod(app: str, node: str | None = None) -> Pod:
    return next(pod for pod in PODS if pod.app == app and node in (None, pod.node))


def _vllm_gpu(minute: float) -> float:
    return 0.96 if minute >= GPU0_FULL_FROM else 0.90


def _idle_gpu(minute: float) -> float:
    return 0.95 if GPU1_SPIKE[0] <= minute < GPU1_SPIKE[1] else 0.02


GPUS: Final = (
    Gpu(0, "GPU-3f1c9a52-7be4-2d1e-9c3a-5b8e0d7f41a6", "00000000:00:1E.0", _pod("vllm"), _vllm_gpu, 71.0),
    Gpu(1, "GPU-8a2d4e67-1c9b-4f3e-b7d2-0e6c5a9f83b1", "00000000:00:1F.0", None, _idle_gpu, 0.0),
)
DRIVER_VERSION: Final = "580.95.05"


# --- the scrape --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scrape:
    """What deploy/alloy/kubernetes.alloy's ``annotated`` scrape does to a pod's series."""

    honor_labels: bool
    relabeled: frozenset[str]  # every label its discovery.relabel sets that the stored series keep


@cache
def annotated_scrape() -> Scrape:
    module = ax.load_module(ALLOY_KUBERNETES.name, ALLOY_KUBERNETES.read_text())
    blocks = {(b.name, b.label): b for b in module.declares["collect"].body if isinstance(b, ax.Block)}
    honor = blocks[("prometheus.scrape", "annotated")].attr("honor_labels")
    rules = blocks[("discovery.relabel", "annotated")].blocks("rule")
    relabeled = frozenset(str(ax.evaluate(rule.attr("target_label"))) for rule in rules
                          if rule.attr("target_label") is not None)
    relabeled = frozenset(label for label in relabeled if not label.startswith("__"))  # kept by Prometheus
    return Scrape(bool(ax.evaluate(honor)) if honor is not None else False, relabeled)


def pod_target(pod: Pod) -> dict[str, str]:
    """The labels the annotated scrape gives a pod's target (discovery.relabel "annotated")."""
    labels = {"job": pod.app, "instance": f"{pod.ip}:{pod.port}", "namespace": pod.namespace, "pod": pod.name,
              "container": pod.containers[0].name, "node": pod.node}
    if pod.deployment:  # a ReplicaSet's pod: <deployment>-<pod-template-hash>
        labels["deployment"] = pod.deployment
    return labels


def cadvisor_target(node: Node) -> dict[str, str]:
    """discovery.relabel "cadvisor": the node's kubelet, on its address and port 10250."""
    return {"job": "cadvisor", "instance": f"{node.ip}:10250", "node": node.name}


def stored(exposed: Mapping[str, str], target: Mapping[str, str], honor_labels: bool) -> dict[str, str]:
    """A sample's labels once scraped: empty ones dropped, the target's added as Prometheus adds them."""
    labels = {name: value for name, value in exposed.items() if value}
    for name, value in target.items():
        if name in labels:
            if honor_labels:
                continue
            renamed = f"exported_{name}"
            while renamed in labels:
                renamed = f"exported_{renamed}"
            labels[renamed] = labels[name]
        labels[name] = value
    return labels


# --- values ------------------------------------------------------------------------------------------
def minute(scrape: int) -> float:
    return scrape * STEP_S / 60


def _wobble(scrape: int, seed: str, amplitude: float = 0.1) -> float:
    phase = int(hashlib.sha256(seed.encode()).hexdigest()[:4], 16) / 0xFFFF * 2 * math.pi
    return 1 + amplitude * math.sin(2 * math.pi * minute(scrape) / 17 + phase)


def _gauge(level: float, seed: str, amplitude: float = 0.05) -> tuple[float, ...]:
    return tuple(round(level * _wobble(i, seed, amplitude), 3) for i in range(SCRAPES))


def _counter(per_second: float, seed: str, start: float = 0.0) -> tuple[float, ...]:
    values, total = [], start
    for i in range(SCRAPES):
        values.append(round(total, 6))
        total += per_second * STEP_S * _wobble(i, seed, 0.2)
    return tuple(values)


def _during(values: Iterable[float | None], keep: Callable[[float], bool]) -> tuple[float | None, ...]:
    return tuple(value if keep(minute(i)) else None for i, value in enumerate(values))


def _answers(pod: Pod) -> Callable[[float], bool]:
    """Whether a scrape of the pod's target at that minute succeeds."""
    if pod.app == "dcgm-exporter":
        return lambda at: at < DCGM_DOWN_FROM
    if pod.app == "node-exporter" and pod.node == CPU_NODE:
        return lambda at: not NODE_EXPORTER_GAP[0] <= at < NODE_EXPORTER_GAP[1]
    return lambda at: True


# --- what each exporter serves -----------------------------------------------------------------------
Exposed = tuple[str, dict[str, str], tuple[float | None, ...]]


def _cgroup(pod: Pod, container: Container | None, generation: int = 0) -> str:
    slice_ = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod.uid.replace('-', '_')}.slice"
    if container is None:
        return slice_
    return f"{slice_}/cri-containerd-{_container_id(pod, container, generation)}.scope"


def _container_id(pod: Pod, container: Container, generation: int) -> str:
    return hashlib.sha256(f"{pod.name}/{container.name}/{generation}".encode()).hexdigest()


def cadvisor(node: Node) -> list[Exposed]:
    found: list[Exposed] = []
    pods = [pod for pod in PODS if pod.node == node.name]
    for pod in pods:
        for container in pod.containers:
            bounds = (0, *container.restarts_at, MINUTES + 1)
            for generation, (since, until) in enumerate(pairwise(bounds)):
                labels = {"container": container.name, "pod": pod.name, "namespace": pod.namespace,
                          "image": container.image, "id": _cgroup(pod, container, generation),
                          "name": _container_id(pod, container, generation)}
                seed = f"{pod.name}/{container.name}"

                def alive(at: float, since: int = since, until: int = until) -> bool:
                    return since <= at < until

                cpu = _counter(container.cores, seed)
                began = cpu[since * 60 // STEP_S]  # a new cgroup counts from zero
                found.append(("container_cpu_usage_seconds_total", {**labels, "cpu": "total"},
                              _during((value - began for value in cpu), alive)))
                found.append(("container_memory_working_set_bytes", labels,
                              _during(_gauge(container.memory_mib * 2**20, seed), alive)))
        # The pod's own cgroup: its containers and the sandbox together.
        cores = sum(c.cores for c in pod.containers) + 0.001
        memory = sum(c.memory_mib for c in pod.containers) + 0.6
        labels = {"pod": pod.name, "namespace": pod.namespace, "id": _cgroup(pod, None)}
        found.append(("container_cpu_usage_seconds_total", {**labels, "cpu": "total"},
                      _counter(cores, pod.name, 3_600 * cores)))
        found.append(("container_memory_working_set_bytes", labels, _gauge(memory * 2**20, pod.name)))
    # The node's cgroups: no pod, no namespace, no container.
    for cgroup, share in (("/", node.busy), ("/kubepods.slice", node.busy * 0.8)):
        found.append(("container_cpu_usage_seconds_total", {"id": cgroup, "cpu": "total"},
                      _counter(node.cpus * share, node.name + cgroup, 86_400 * node.cpus * share)))
        found.append(("container_memory_working_set_bytes", {"id": cgroup},
                      _gauge(node.memory_gib * 2**30 * share, node.name + cgroup)))
    return found


NODE_CPU_MODES: Final = {"user": 0.62, "system": 0.25, "iowait": 0.04, "irq": 0.01, "softirq": 0.05,
                         "nice": 0.0, "steal": 0.03}
BOOTED_SECONDS_BEFORE: Final = 9 * 86_400


def node_exporter(node: Node, start: float) -> list[Exposed]:
    found: list[Exposed] = []
    for cpu in range(node.cpus):
        shares = {mode: node.busy * share for mode, share in NODE_CPU_MODES.items()}
        shares["idle"] = 1 - node.busy
        for mode, share in shares.items():
            found.append(("node_cpu_seconds_total", {"cpu": str(cpu), "mode": mode},
                          _counter(share, f"{node.name}/{cpu}/{mode}", BOOTED_SECONDS_BEFORE * share)))
    total = node.memory_gib * 2**30
    found.append(("node_memory_MemTotal_bytes", {}, (float(total),) * SCRAPES))
    found.append(("node_memory_MemAvailable_bytes", {}, _gauge(total * (1 - node.busy * 0.9), node.name)))
    found.append(("node_boot_time_seconds", {}, (float(int(start) - BOOTED_SECONDS_BEFORE),) * SCRAPES))
    return found


PHASES: Final = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def _ready(pod: Pod) -> tuple[float, ...]:
    """1, but 0 for two minutes after each restart of one of its containers."""
    down = [at for container in pod.containers for at in container.restarts_at]
    return tuple(0.0 if any(at <= minute(i) < at + 2 for at in down) else 1.0 for i in range(SCRAPES))


def kube_state_metrics() -> list[Exposed]:
    found: list[Exposed] = []
    for namespace, deployment in DEPLOYMENTS:
        pods = [pod for pod in PODS if pod.deployment == deployment]
        labels = {"namespace": namespace, "deployment": deployment}
        ready = tuple(float(sum(values)) for values in zip(*(_ready(pod) for pod in pods), strict=True))
        found.append(("kube_deployment_spec_replicas", labels, (float(len(pods)),) * SCRAPES))
        found.append(("kube_deployment_status_replicas", labels, (float(len(pods)),) * SCRAPES))
        found.append(("kube_deployment_status_replicas_ready", labels, ready))
        found.append(("kube_deployment_status_replicas_available", labels, ready))
    for pod in PODS:
        ids = {"namespace": pod.namespace, "pod": pod.name, "uid": pod.uid}
        node = next(node for node in NODES if node.name == pod.node)
        kind, owner = pod.owner
        found.append(("kube_pod_info", {**ids, "host_ip": node.ip, "pod_ip": pod.ip, "node": pod.node,
                                        "created_by_kind": kind, "created_by_name": owner, "priority_class": "",
                                        "host_network": str(pod.ip == node.ip).lower()}, (1.0,) * SCRAPES))
        for phase in PHASES:
            found.append(("kube_pod_status_phase", {**ids, "phase": phase},
                          (1.0 if phase == "Running" else 0.0,) * SCRAPES))
        for container in pod.containers:
            restarts = tuple(float(sum(at <= minute(i) for at in container.restarts_at)) for i in range(SCRAPES))
            found.append(("kube_pod_container_status_restarts_total", {**ids, "container": container.name},
                          restarts))
    for node in NODES:
        found.append(("kube_node_info", {
            "node": node.name, "kernel_version": "6.12.40-64.114.amzn2023.x86_64",
            "os_image": "Amazon Linux 2023.8.20250818", "container_runtime_version": "containerd://2.0.5",
            "kubelet_version": "v1.34.1-eks-113cf36", "kubeproxy_version": "deprecated",
            "pod_cidr": node.pod_cidr, "provider_id": f"aws:///us-east-1a/i-0{node.ip.replace('.', '')}",
            "system_uuid": f"ec2{node.ip.replace('.', '')}", "internal_ip": node.ip}, (1.0,) * SCRAPES))
    return found


DCGM_FIELDS: Final = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_FB_USED",
                      "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP",
                      "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK")


@cache
def dcgm_env() -> frozenset[str]:
    """The environment variables the deploy's DCGM exporter container is given."""
    (container,) = yaml.safe_load(DCGM_DAEMONSET.read_text())["spec"]["template"]["spec"]["containers"]
    return frozenset(variable["name"] for variable in container.get("env", []))


def dcgm_exporter(exporter: Pod) -> list[Exposed]:
    found: list[Exposed] = []
    hostname = exporter.node if "NODE_NAME" in dcgm_env() else exporter.name
    for gpu in GPUS:
        labels = {"gpu": str(gpu.index), "UUID": gpu.uuid, "pci_bus_id": gpu.pci_bus_id,
                  "device": f"nvidia{gpu.index}", "modelName": "NVIDIA L4", "hostname": hostname,
                  "DCGM_FI_DRIVER_VERSION": DRIVER_VERSION}
        if gpu.holder is not None:
            labels |= {"pod": gpu.holder.name, "namespace": gpu.holder.namespace,
                       "container": gpu.holder.containers[0].name}
        used = tuple(float(round(FB_TOTAL_MIB * gpu.used_share(minute(i)))) for i in range(SCRAPES))
        busy = gpu.utilization
        values = {
            "DCGM_FI_DEV_GPU_UTIL": _gauge(busy, f"{gpu.uuid}/util", 0.2),
            "DCGM_FI_DEV_MEM_COPY_UTIL": _gauge(busy * 0.45, f"{gpu.uuid}/copy", 0.2),
            "DCGM_FI_DEV_FB_USED": used,
            "DCGM_FI_DEV_FB_FREE": tuple(FB_TOTAL_MIB - value for value in used),
            "DCGM_FI_DEV_POWER_USAGE": _gauge(16 + busy * 0.74, f"{gpu.uuid}/power"),
            "DCGM_FI_DEV_GPU_TEMP": _gauge(34 + busy * 0.4, f"{gpu.uuid}/temp", 0.02),
            "DCGM_FI_DEV_SM_CLOCK": _gauge(2040 if busy else 210, f"{gpu.uuid}/sm", 0.0),
            "DCGM_FI_DEV_MEM_CLOCK": _gauge(6250 if busy else 405, f"{gpu.uuid}/mem", 0.0),
        }
        found += [(name, labels, tuple(round(v, 1) for v in values[name])) for name in DCGM_FIELDS]
    return found


def ragotel_http(pod: Pod) -> list[Exposed]:
    """The requests a chat API replica served, under the label set the real exposition gives them."""
    (served,) = [s for s in real.ragotel_series() if s.name == f"{q.HTTP_DURATION}_count"
                 and s.value("http_route") == "/chat" and s.value("http_response_status_code") == "200"
                 and s.value("otel_scope_schema_url")]
    return [(served.name, dict(served.labels), _counter(2.5, pod.name))]


# --- the whole cluster -------------------------------------------------------------------------------
def exposed_by(pod: Pod, start: float) -> list[Exposed]:
    """What the pod's annotated port serves, of what the dashboards read."""
    if pod.app == "kube-state-metrics":
        return kube_state_metrics()
    if pod.app == "dcgm-exporter":
        return dcgm_exporter(pod)
    if pod.app == "node-exporter":
        return node_exporter(next(node for node in NODES if node.name == pod.node), start)
    if pod.app == "rag-chat-api":
        return ragotel_http(pod)
    return []


def series(start: float) -> list[Series]:
    """Every series stored, for data starting at ``start`` (Unix seconds): exporters' and ``up``."""
    honor = annotated_scrape().honor_labels
    found: list[Series] = []

    def add(exposed: list[Exposed], target: dict[str, str], answers: Callable[[float], bool]) -> None:
        for name, labels, values in exposed:
            found.append(Series(name, stored(labels, target, honor), _during(values, answers)))
        found.append(Series("up", dict(target), tuple(1.0 if answers(minute(i)) else 0.0 for i in range(SCRAPES))))

    for node in NODES:
        add(cadvisor(node), cadvisor_target(node), lambda at: True)
    for pod in PODS:
        exposed = exposed_by(pod, start)
        if exposed:
            add(exposed, pod_target(pod), _answers(pod))
    return found


TYPES: Final = {
    "container_cpu_usage_seconds_total": "counter", "node_cpu_seconds_total": "counter",
    "kube_pod_container_status_restarts_total": "counter",
    f"{q.HTTP_DURATION}_count": "unknown",  # one series of a histogram: its buckets are not read here
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(found: Iterable[Series], start: float) -> str:
    """The series as one OpenMetrics exposition with a timestamp on every sample (what promtool backfills)."""
    families: dict[str, list[Series]] = {}
    for one in found:
        families.setdefault(one.name, []).append(one)
    lines = []
    for name, members in families.items():
        kind = TYPES.get(name, "gauge")
        lines.append(f"# TYPE {name.removesuffix('_total') if kind == 'counter' else name} {kind}")
        for one in members:
            labels = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(one.labels.items()))
            lines += [f"{name}{{{labels}}} {value!r} {start + i * STEP_S:.0f}"
                      for i, value in enumerate(one.values) if value is not None]
    return "\n".join([*lines, "# EOF"]) + "\n"
