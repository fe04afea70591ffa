"""Traces: one Tempo table per query of the TraceQL catalog."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import panels as p
from dashboards import traceql


def build() -> Dashboard:
    board = (p.dashboard("rag-traces", "RAG traces", "The TraceQL catalog (dashboards/traceql.yaml) as tables.",
                         ["traces"])
             .with_variable(p.tempo_variable()))
    for query in traceql.load():
        board = board.with_panel(p.traces(query.name, query.query, description=query.purpose, width=12))
    return board
