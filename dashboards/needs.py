"""What a panel or alert needs beyond decorating the steps and instrumenting FastAPI and httpx.

Every other query has data for any app decorated with ragotel's steps, whatever its steps, pipelines,
routes and scrape jobs are named, and for LangChain and LlamaIndex apps run unchanged under
``opentelemetry-instrument`` (the stack tests run each query against such an app under two sets of names,
and against one app of each framework). docs/dashboards.md lists these (``python -m docsgen`` writes the table;
its links are relative to docs/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Need:
    """``sources`` name queries as :class:`dashboards.queries.PromQuery` does: ``<uid> / <panel>`` or
    ``alert <name>``."""

    what: str
    sources: tuple[str, ...]


NEEDS: Final = (
    Need("a price table: `RAGOTEL_PRICES_FILE` or `ragotel.set_prices(...)` (see [Cost](guide/cost.md))",
         ("rag-overview / Cost", "rag-overview / Cost by model", "rag-cost / Spent in range",
          "rag-cost / Cost per 1k requests", "rag-cost / USD/h by model", "alert RagCostSpike")),
    Need("`RAGOTEL_DETAILED_METRICS=true` (best score per retrieval)",
         ("rag-retrieval / Best-score distribution", "rag-retrieval / Best score p50 / p10")),
    Need("`step.record(results_kept=n)` in the retrieval step that drops hits (the kept line)",
         ("rag-retrieval / Documents per retrieval: returned vs kept",)),
    Need("`ragotel.record_index(part, items=..., load_seconds=..., dimension=..., built_at=...)` where the "
         "index is loaded",
         ("rag-retrieval / Index size", "rag-retrieval / Index load time", "rag-retrieval / Index age",
          "rag-retrieval / Embedding dimension", "alert RagIndexStale")),
    Need("`ragotel.record_index_write(...)` in the ingest job (pushed over OTLP)",
         ("rag-retrieval / Index writes at ingest",)),
    Need("`ragotel.record_evaluation(name, label=...)`: online checks, users' feedback",
         ("rag-overview / Evaluations by verdict",)),
    Need('`ragotel.record_evaluation("cites_sources", label="cited" or "uncited")` for each answer',
         ("alert RagAnswersUncitedRateHigh",)),
    Need("streamed model calls through an instrumented client (httpx, the `openai` SDK)",
         ("rag-generation / Time to first token p95", "rag-generation / Time per output token p95",
          "rag-generation / Time to first token outside the engine", "alert RagTimeToFirstTokenHigh")),
)


def needed_by(source: str) -> list[Need]:
    return [need for need in NEEDS if source in need.sources]


def markdown_table() -> str:
    rows = ["| needs | panels and alerts |", "| --- | --- |"]
    rows += [f"| {need.what} | {', '.join(need.sources)} |" for need in NEEDS]
    return "\n".join(rows) + "\n"
