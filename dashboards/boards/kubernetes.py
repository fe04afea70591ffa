"""Kubernetes: CPU and memory by namespace and deployment, restarts, replicas, request rate per
deployment (cAdvisor through the kubelet, kube-state-metrics, node exporter)."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import panels as p
from dashboards import promql as q

CPU: Final = "container_cpu_usage_seconds_total"
MEMORY: Final = "container_memory_working_set_bytes"
RESTARTS: Final = "kube_pod_container_status_restarts_total"
SPEC_REPLICAS: Final = "kube_deployment_spec_replicas"
READY_REPLICAS: Final = "kube_deployment_status_replicas_ready"
AVAILABLE_REPLICAS: Final = "kube_deployment_status_replicas_available"
POD_PHASE: Final = "kube_pod_status_phase"
NODE_CPU: Final = "node_cpu_seconds_total"
NODE_MEM_AVAILABLE: Final = "node_memory_MemAvailable_bytes"
NODE_MEM_TOTAL: Final = "node_memory_MemTotal_bytes"

NAMESPACE: Final = 'namespace=~"$namespace"'
# A deployment's pods are named <deployment>-<replicaset hash>-<pod hash>.
PODS: Final = '{namespace=~"$namespace", pod=~"($deployment)-[a-z0-9]+-[a-z0-9]+", container!="", container!="POD"}'
IDLE: Final = '{mode="idle"}'
DEPLOYMENTS: Final = '{namespace=~"$namespace", deployment=~"$deployment"}'


def build() -> Dashboard:
    containers = f'{{{NAMESPACE}, container!="", container!="POD"}}'
    return (
        p.dashboard("rag-kubernetes", "RAG on Kubernetes",
                    "Resources, restarts and replicas of the RAG stack's namespaces and deployments.",
                    ["kubernetes"])
        .with_variable(p.prometheus_variable())
        .with_variable(p.namespace_variable(SPEC_REPLICAS))
        .with_variable(p.label_values_variable("deployment", "Deployment", "deployment",
                                               f'{SPEC_REPLICAS}{{{NAMESPACE}}}', description="Deployment"))
        .with_panel(p.single("Deployments", p.COUNT, p.Query(f"count({SPEC_REPLICAS}{DEPLOYMENTS})"),
                             description="Deployments selected.", decimals=0))
        .with_panel(p.single("Running pods", p.COUNT,
                             p.Query(f'sum({POD_PHASE}{{{NAMESPACE}, phase="Running"}})'),
                             description="Pods in phase Running in the selected namespaces.", decimals=0))
        .with_panel(p.single("Restarts (1h)", p.COUNT,
                             p.Query(f"sum(increase({RESTARTS}{{{NAMESPACE}}}[1h]))"),
                             description="Container restarts in the last hour.", decimals=0))
        .with_panel(p.single("App requests/s", p.REQUESTS_PER_SECOND,
                             p.Query(f"sum({q.rate(q.HTTP_DURATION + '_count', '{' + NAMESPACE + '}')})"),
                             description="Requests served by the app's services in the selected namespaces.",
                             width=12))
        .with_row(p.row("By namespace"))
        .with_panel(p.series("CPU by namespace", "cores",
                             p.Query(f"sum by (namespace) ({q.rate(CPU, containers)})", "{{namespace}}"),
                             description="CPU cores used by containers (cAdvisor).", stack=True))
        .with_panel(p.series("Memory by namespace", "bytes",
                             p.Query(f"sum by (namespace) ({MEMORY}{containers})", "{{namespace}}"),
                             description="Working-set memory of containers (what the OOM killer counts).",
                             stack=True))
        .with_row(p.row("By deployment"))
        .with_panel(p.series("CPU by pod", "cores", p.Query(f"sum by (pod) ({q.rate(CPU, PODS)})", "{{pod}}"),
                             description="CPU cores used by each pod of the selected deployments."))
        .with_panel(p.series("Memory by pod", "bytes", p.Query(f"sum by (pod) ({MEMORY}{PODS})", "{{pod}}"),
                             description="Working-set memory of each pod of the selected deployments."))
        .with_panel(p.series(
            "Replicas: desired / ready / available", p.COUNT,
            p.Query(f"sum by (deployment) ({SPEC_REPLICAS}{DEPLOYMENTS})", "desired {{deployment}}"),
            p.Query(f"sum by (deployment) ({READY_REPLICAS}{DEPLOYMENTS})", "ready {{deployment}}"),
            p.Query(f"sum by (deployment) ({AVAILABLE_REPLICAS}{DEPLOYMENTS})", "available {{deployment}}"),
            description="Desired replicas against those ready and available (kube-state-metrics)."))
        .with_panel(p.series(
            "Container restarts", p.COUNT,
            p.Query(f"sum by (pod, container) (increase({RESTARTS}{PODS}[{q.RATE}]))", "{{pod}} {{container}}"),
            description="Restarts per container: a crash-looping vLLM or retriever shows here first."))
        .with_row(p.row("Nodes"))
        .with_panel(p.series(
            "Node CPU busy", p.PERCENT_UNIT,
            p.Query(f"1 - avg by (instance) ({q.rate(NODE_CPU, IDLE)})", "{{instance}}"),
            description="Share of CPU time not idle on each node (node exporter)."))
        .with_panel(p.series(
            "Node memory used", p.PERCENT_UNIT,
            p.Query(f"1 - sum by (instance) ({NODE_MEM_AVAILABLE}) / sum by (instance) ({NODE_MEM_TOTAL})",
                    "{{instance}}"),
            description="Share of memory not available on each node (node exporter)."))
    )
