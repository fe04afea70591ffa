"""Cost: spend rate by model, tokens by type, cost per thousand requests."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import panels as p
from dashboards import promql as q


def build() -> Dashboard:
    by_model = q.sel(model=q.MODEL)
    spent = f"sum(increase({q.COST}{by_model}[{q.RANGE}]))"
    pipelines = f"sum({q.rate(q.PIPELINE_DURATION + '_count', q.sel(), q.RANGE, 'increase')})"
    model = q.legend(q.MODEL)
    return (
        p.app_variables(
            p.dashboard("rag-cost", "RAG cost",
                        "What model calls cost (rag.cost.usd, from the price table), tokens by type and cost per "
                        "request.", ["cost"]), q.OPERATION_DURATION + "_count")
        .with_panel(p.single("Spent in range", p.USD, p.Query(spent),
                             description="USD spent on model calls in the dashboard's time range.", width=8))
        .with_panel(p.single("Cost per 1k requests", p.USD, p.Query(f"{spent} / {pipelines} * 1000"),
                             description="USD per thousand pipelines (chat requests) in the time range.", width=8))
        .with_panel(p.single("Tokens in range", p.COUNT,
                             p.Query(f"sum({q.tokens(window=q.RANGE, fn='increase')})"),
                             description="Input plus output tokens in the time range.", width=8))
        .with_panel(p.series(
            "USD/h by model", p.USD_PER_HOUR,
            p.Query(f"sum by ({q.MODEL}) ({q.rate(q.COST, by_model)}) * 3600", model),
            description="Spend rate by model.", stack=True))
        .with_panel(p.series(
            "Tokens/s by type", p.TOKENS_PER_SECOND,
            p.Query(f"sum by ({q.MODEL}, {q.TOKEN_TYPE}) ({q.tokens()})",
                    q.legend(q.MODEL, q.TOKEN_TYPE)),
            description="Input and output tokens per second: output tokens drive self-hosted cost.", stack=True))
        .with_panel(p.series(
            "Cost per 1k requests", p.USD,
            p.Query(f"sum({q.rate(q.COST, by_model)}) / sum({q.rate(q.PIPELINE_DURATION + '_count', q.sel())}) "
                    "* 1000", "USD per 1k requests"),
            description="Rolling cost of a thousand pipelines.", width=24))
    )
