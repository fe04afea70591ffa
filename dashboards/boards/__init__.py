"""One module per dashboard; each ``build()`` returns the dashboard builder."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.boards import cost, generation, gpu, kubernetes, overview, retrieval, traces

BOARDS: dict[str, Callable[[], Dashboard]] = {
    "rag-overview": overview.build,
    "rag-retrieval": retrieval.build,
    "rag-generation": generation.build,
    "rag-cost": cost.build,
    "rag-gpu": gpu.build,
    "rag-kubernetes": kubernetes.build,
    "rag-traces": traces.build,
}
"""File stem (also the dashboard uid) → builder."""
