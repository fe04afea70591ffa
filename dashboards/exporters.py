"""Metric names of the cluster exporters the dashboards and alerts read, as each project documents
them. A local stack has none of these exporters but the node exporter (it starts one), so the stack
test checks queries that read only the other exporters' names by parsing them and looking the names
up here, instead of running them; tests/dashboards/test_cluster_panels.py runs them on those exporters'
series, backfilled into a real Prometheus.

Sources: NVIDIA dcgm-exporter's default counters (etc/default-counters.csv), kube-state-metrics'
docs/metrics/workload/{deployment,pod}-metrics.md and
docs/metrics/cluster/node-metrics.md, cAdvisor's docs/storage/prometheus.md (served by
the kubelet at /metrics/cadvisor) and node_exporter's cpu, meminfo and stat collectors.
"""

from __future__ import annotations

from typing import Final

DOCUMENTED: Final[dict[str, frozenset[str]]] = {
    "dcgm-exporter": frozenset({
        "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK",
    }),
    "kube-state-metrics": frozenset({
        "kube_deployment_spec_replicas", "kube_deployment_status_replicas",
        "kube_deployment_status_replicas_ready", "kube_deployment_status_replicas_available",
        "kube_pod_status_phase", "kube_pod_container_status_restarts_total", "kube_pod_info", "kube_node_info",
    }),
    "cadvisor": frozenset({
        "container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_memory_usage_bytes",
    }),
    "node-exporter": frozenset({
        "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
        "node_boot_time_seconds",
    }),
}

LOCAL: Final = frozenset({"node-exporter"})
"""Exporters the local stack runs too (examples/reference_app/run_local.py): their queries run there."""

CLUSTER_ONLY: Final = frozenset().union(*(names for name, names in DOCUMENTED.items() if name not in LOCAL))
"""Every name of the other exporters: a query reading only these needs a cluster to return data."""
