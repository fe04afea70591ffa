"""Gauges describing a retrieval index: how many items each part holds and how long it took to load.

::

    started = time.perf_counter()
    index = faiss.read_index(path)
    ragotel.record_index("index", items=index.ntotal, load_seconds=time.perf_counter() - started,
                         data_source="faiss")

Parts are free-form but bounded by code: ``model``, ``index``, ``vectorizer``, ``matrix``, ``meta``.
"""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from ragotel import _instruments
from ragotel import semconv as sc
from ragotel._runtime import runtime
from ragotel._safe import report_internal_error


def record_index(
    part: str, *, items: int | None = None, load_seconds: float | None = None, data_source: str | None = None
) -> None:
    """Set ``rag.index.items`` and/or ``rag.index.load.duration`` for one index part. Never raises."""
    if runtime.disabled:
        return
    try:
        attrs: dict[str, AttributeValue] = {sc.RAG_INDEX_PART: part}
        if data_source is not None:
            attrs[sc.GEN_AI_DATA_SOURCE_ID] = data_source
        ins = _instruments.instruments()
        if items is not None:
            ins.index_items.set(items, attrs)
        if load_seconds is not None:
            ins.index_load_duration.set(load_seconds, attrs)
    except Exception as exc:
        report_internal_error("record_index", exc)
