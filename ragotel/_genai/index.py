"""Gauges describing a retrieval index, and counters of what ingestion wrote into one.

At load (the service that searches the index)::

    started = time.perf_counter()
    index = faiss.read_index(path)
    ragotel.record_index("index", items=index.ntotal, load_seconds=time.perf_counter() - started,
                         dimension=index.d, built_at=manifest["built_at"], data_source="faiss")

At ingest (the job that builds it)::

    ragotel.record_index_write(documents=43, chunks=352, embedded=352, data_source="faiss")

Parts are free-form but bounded by code: ``model``, ``index``, ``vectorizer``, ``matrix``, ``meta``.
``built_at`` (Unix seconds) makes ``rag.index.age`` report how old the index in service is, observed
at every collection, so an index that stops being rebuilt shows (and alerts) as it ages.
"""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import instruments as _instruments
from ragotel._core import runtime
from ragotel._core.safe import report_internal_error


def _attributes(first: tuple[str, str] | None, data_source: str | None) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = dict([first]) if first else {}
    if data_source is not None:
        attrs[sc.GEN_AI_DATA_SOURCE_ID] = data_source
    return attrs


def record_index(
    part: str, *, items: int | None = None, load_seconds: float | None = None, data_source: str | None = None,
    dimension: int | None = None, built_at: float | None = None,
) -> None:
    """Set ``rag.index.items``, ``rag.index.load.duration``, ``rag.index.dimension`` and/or the build time
    ``rag.index.age`` is counted from, for one index part. Never raises."""
    if runtime.current.disabled:
        return
    try:
        attrs = _attributes((sc.RAG_INDEX_PART, part), data_source)
        ins = _instruments.instruments()
        if items is not None:
            ins.index_items.set(items, attrs)
        if load_seconds is not None:
            ins.index_load_duration.set(load_seconds, attrs)
        if dimension is not None:
            ins.index_dimension.set(dimension, attrs)
        if built_at is not None:
            ins.index_ages.set(float(built_at), attrs)
    except Exception as exc:
        report_internal_error("record_index", exc)


def record_index_write(
    *, documents: int = 0, chunks: int = 0, embedded: int = 0, data_source: str | None = None
) -> None:
    """Count what an ingestion run wrote: ``rag.index.documents.written``, ``rag.index.chunks.written`` and
    ``rag.index.chunks.embedded`` (zero adds nothing). Call it once the index is written. Never raises."""
    if runtime.current.disabled:
        return
    try:
        attrs = _attributes(None, data_source)
        ins = _instruments.instruments()
        for counter, amount in ((ins.index_documents_written, documents), (ins.index_chunks_written, chunks),
                                (ins.index_chunks_embedded, embedded)):
            if amount > 0:
                counter.add(amount, attrs)
    except Exception as exc:
        report_internal_error("record_index_write", exc)
