"""GPU, from NVIDIA's DCGM exporter: utilization, framebuffer memory, power and temperature.

A GPU is its ``hostname`` and ``gpu`` (its index there). The exporter spells the host label ``hostname``
from 4.6.0-4.8.3 on (``Hostname`` before) and sets it to the NODE_NAME variable, else to the container's
host name; deploy/k8s/overlays/gpu/dcgm-exporter.yaml sets NODE_NAME to the node's name.
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import panels as p

# DCGM exporter field names (its default counters file). Framebuffer figures are MiB.
HOST: Final = "hostname"
UTIL: Final = "DCGM_FI_DEV_GPU_UTIL"
FB_USED: Final = "DCGM_FI_DEV_FB_USED"
FB_FREE: Final = "DCGM_FI_DEV_FB_FREE"
POWER: Final = "DCGM_FI_DEV_POWER_USAGE"
TEMPERATURE: Final = "DCGM_FI_DEV_GPU_TEMP"
MEMORY_COPY_UTIL: Final = "DCGM_FI_DEV_MEM_COPY_UTIL"

GPU: Final = '{hostname=~"$node"}'
LEGEND: Final = "{{hostname}} GPU {{gpu}}"


def build() -> Dashboard:
    return (
        p.dashboard("rag-gpu", "RAG GPU (DCGM)",
                    "GPUs serving vLLM, from the DCGM exporter: utilization, memory, power, temperature.", ["gpu"])
        .with_variable(p.prometheus_variable())
        .with_variable(p.label_values_variable("node", "Node", HOST, UTIL, description="GPU node"))
        .with_panel(p.series("GPU utilization", "percent", _q(f"avg by ({HOST}, gpu) ({UTIL}{GPU})"),
                             description="Share of time a kernel was running (0–100)."))
        .with_panel(p.series("Memory copy utilization", "percent",
                             _q(f"avg by ({HOST}, gpu) ({MEMORY_COPY_UTIL}{GPU})"),
                             description="Share of time memory was being read or written (0–100)."))
        .with_panel(p.series("Framebuffer used / free", "decmbytes",
                             _q(f"sum by ({HOST}, gpu) ({FB_USED}{GPU})", f"used {LEGEND}"),
                             _q(f"sum by ({HOST}, gpu) ({FB_FREE}{GPU})", f"free {LEGEND}"),
                             description="GPU memory in MiB: vLLM reserves most of it for the KV cache up front."))
        .with_panel(p.series("Framebuffer used share", p.PERCENT_UNIT,
                             _q(f"sum by ({HOST}, gpu) ({FB_USED}{GPU}) / "
                                f"(sum by ({HOST}, gpu) ({FB_USED}{GPU}) + sum by ({HOST}, gpu) ({FB_FREE}{GPU}))"),
                             description="Used / (used + free); the GPU memory alert fires above 90%."))
        .with_panel(p.series("Power", "watt", _q(f"sum by ({HOST}, gpu) ({POWER}{GPU})"),
                             description="Power draw in watts."))
        .with_panel(p.series("Temperature", "celsius", _q(f"max by ({HOST}, gpu) ({TEMPERATURE}{GPU})"),
                             description="GPU die temperature."))
    )


def _q(expr: str, legend: str = LEGEND) -> p.Query:
    return p.Query(expr, legend)
