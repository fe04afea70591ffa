"""Retrieval spans and metrics for FAISS searches, and index writes, with no code change.

::

    import ragotel

    ragotel.instrument_faiss()              # or, with no code: opentelemetry-instrument (ragotel_faiss)
    scores, ids = index.search(vectors, 4)  # span "retrieval faiss", rag.step.duration{rag_step_name="faiss"}

Every ``Index.search`` and ``range_search`` is a retrieval step: span ``retrieval faiss`` with
``gen_ai.operation.name=retrieval``, ``gen_ai.data_source.id=faiss``, ``gen_ai.request.top_k``, the
queries in the batch, results returned (ids that are not -1), score statistics read with the index's
metric (``rag.retrieval.score.kind=distance`` for L2 and the other distances: lower is better, so no
similarity threshold judges them), index size, dimension, type, metric and ``nprobe`` / ``efSearch``
where the index has them. Inside the application's own retrieval step it is that step's sub-step: its
span and duration, while the documents and the retrieval quality stay the enclosing step's to count.
A retrieval step that says it is the FAISS search (``data_source="faiss"``) gets no sub-step: the
index's facts go onto its span instead, so a hand-decorated search and this instrumentation together
still make one span and one record.
``add`` and ``add_with_ids`` count their vectors in ``rag.index.chunks.written``.

FAISS run by Milvus Lite as its engine is left alone: milvus-lite 3 (pure Python) searches each segment's FAISS
index on its gRPC server's worker threads and builds the indexes on a background one, so each of those calls would
be a root span of its own, outside the request's trace, one per segment searched. Those searches and writes are
Milvus's (``ragotel_milvus``: one ``retrieval milvus`` step per search).

Seed 002's attributes map onto these names: ``faiss.top_k`` → ``gen_ai.request.top_k``,
``faiss.index_size`` → ``rag.index.size``, ``faiss.results_count`` → ``rag.retrieval.results.returned``,
``faiss.score_min/max/avg`` → ``rag.retrieval.score.min/max/avg``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import sys
from collections.abc import Callable, Collection
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._genai import hits
from ragotel.instrumentation._base import Instrumentor
from ragotel.instrumentation._vector import Found, VectorStore

__all__ = ["FaissInstrumentor", "instrument_faiss", "uninstrument_faiss"]

DATA_SOURCE: Final = "faiss"
# Distributions that provide the faiss module.
_DISTRIBUTIONS: Final = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss")


class FaissInstrumentor(Instrumentor):
    """FAISS searches as retrieval steps, as an OpenTelemetry instrumentor (``ragotel_faiss``).

    Patches ``search``, ``range_search``, ``add`` and ``add_with_ids`` of every index class the ``faiss``
    module defines; ``uninstrument()`` puts them back.
    """

    label = "instrument_faiss()"
    modules = ("faiss",)

    def instrumentation_dependencies(self) -> Collection[str]:
        for name in _DISTRIBUTIONS:
            try:
                importlib.metadata.version(name)
                return (name,)
            except importlib.metadata.PackageNotFoundError:
                continue
        return ("faiss-cpu",)

    def _instrument(self, **kwargs: Any) -> None:
        import faiss

        for cls in _index_classes(faiss):
            self._patches.apply(cls, "search", _applications(_searching(_search_facts)))
            self._patches.apply(cls, "range_search", _applications(_searching(_range_search_facts)))
            self._patches.apply(cls, "add", _applications(_writing))
            self._patches.apply(cls, "add_with_ids", _applications(_writing))


def instrument_faiss() -> None:
    """Instrument every FAISS index (see ``ragotel.instrumentation.faiss``); a second call does nothing."""
    FaissInstrumentor.turn_on()


def uninstrument_faiss() -> None:
    """Undo ``instrument_faiss``."""
    FaissInstrumentor.turn_off()


def _index_classes(faiss: Any) -> list[type]:
    base = faiss.Index
    return [obj for obj in vars(faiss).values() if isinstance(obj, type) and issubclass(obj, base)]


# Packages that run FAISS as the engine of a store of their own: their calls are that store's work, not searches or
# writes of the application's (see the module's docstring).
_ENGINES: Final = ("milvus_lite",)
_ENGINE_MODULES: Final = tuple(f"{engine}." for engine in _ENGINES)


def _applications(wrap: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``wrap`` for the application's calls; a call made by an engine's own code (``_ENGINES``) goes to the
    original method untraced. Who calls is read off the calling frame's module (the thread such an engine searches
    on carries no trace context that could tell), and only in a process that has imported such an engine."""

    def apply(original: Callable[..., Any]) -> Callable[..., Any]:
        traced = wrap(original)

        @functools.wraps(original)
        def call(index: Any, *args: Any, **kwargs: Any) -> Any:
            modules = sys.modules
            for engine in _ENGINES:
                if engine in modules:
                    caller = sys._getframe(1).f_globals.get("__name__")
                    if isinstance(caller, str) and caller.startswith(_ENGINE_MODULES):
                        return original(index, *args, **kwargs)
                    break
            return traced(index, *args, **kwargs)

        return call

    return apply


# -- searches --------------------------------------------------------------------------------------
_STORE: Final = VectorStore(DATA_SOURCE)
Facts = Callable[[Any], tuple[int, hits.Scores | None]]


def _searching(read: Facts) -> Callable[[Any], Any]:
    """The wrapper factory for a search method whose result ``read`` turns into (results, score stats)."""

    def found(result: Any, index: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found:
        count, stats = read(result)
        return Found(count, stats, distances=_distances(index))

    return _STORE.searching(_describe, found)


def _describe(index: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    """The span attributes of ``index.search(x, k, ...)``: the index's type, size, metric and search parameters."""
    attrs = _search_attributes(index, args[0] if args else kwargs.get("x"), args[1:], kwargs)
    if _distances(index):
        attrs[sc.RAG_RETRIEVAL_SCORE_KIND] = "distance"
    return attrs


def _search_attributes(index: Any, x: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        sc.RAG_FAISS_INDEX_TYPE: type(index).__name__,
        sc.RAG_FAISS_METRIC: _metric_name(index),
    }
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) == 2:
        attrs[sc.RAG_RETRIEVAL_QUERIES] = int(shape[0])
    k = args[0] if args else kwargs.get("k")
    if isinstance(k, int) and not isinstance(k, bool):
        attrs[sc.GEN_AI_REQUEST_TOP_K] = k
    for key, name in ((sc.RAG_INDEX_SIZE, "ntotal"), (sc.RAG_FAISS_DIMENSION, "d")):
        value = getattr(index, name, None)
        if isinstance(value, int):
            attrs[key] = value
    params = kwargs.get("params")
    ivf, hnsw = _kinds(type(index))
    nprobe = getattr(params, "nprobe", None) or (index.nprobe if ivf else None)
    if isinstance(nprobe, int):
        attrs[sc.RAG_FAISS_NPROBE] = nprobe
    ef_search = getattr(params, "efSearch", None) or (index.hnsw.efSearch if hnsw else None)
    if isinstance(ef_search, int):
        attrs[sc.RAG_FAISS_EF_SEARCH] = ef_search
    return attrs


_KINDS: dict[type, tuple[bool, bool]] = {}


def _kinds(cls: type) -> tuple[bool, bool]:
    """Whether indexes of ``cls`` have ``nprobe`` (IVF) and ``hnsw`` (HNSW): asked once per class, since a
    failed attribute lookup on a SWIG object costs more than the search's other bookkeeping."""
    found = _KINDS.get(cls)
    if found is None:
        found = _KINDS[cls] = (hasattr(cls, "nprobe"), hasattr(cls, "hnsw"))
    return found


# Results up to this size are read as Python lists: for the usual k, faster than numpy's per-call overhead.
_SMALL: Final = 256


def _search_facts(result: Any) -> tuple[int, hits.Scores | None]:
    """``(distances, ids)`` of ``search``: -1 ids are slots no vector filled."""
    distances, ids = result
    if ids.size <= _SMALL:
        found = [d for d, i in zip(distances.ravel().tolist(), ids.ravel().tolist(), strict=True) if i != -1]
        return len(found), _small_stats(found)
    mask = ids != -1
    return int(mask.sum()), _stats(distances[mask])


def _range_search_facts(result: Any) -> tuple[int, hits.Scores | None]:
    """``(lims, distances, ids)`` of ``range_search``."""
    _, distances, ids = result
    if len(ids) <= _SMALL:
        return len(ids), _small_stats(distances.tolist())
    return len(ids), _stats(distances)


def _small_stats(values: list[float]) -> hits.Scores | None:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return hits.Scores(top=max(finite), low=min(finite), mean=sum(finite) / len(finite), scored=len(finite))


def _stats(values: Any) -> hits.Scores | None:
    import numpy as np

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return hits.Scores(top=float(finite.max()), low=float(finite.min()), mean=float(finite.mean()),
                       scored=int(finite.size))


_METRICS: dict[int, str] = {}


def _metric_name(index: Any) -> str:
    metric = getattr(index, "metric_type", None)
    if not _METRICS:
        import faiss

        _METRICS.update({getattr(faiss, n): n[len("METRIC_"):].lower() for n in dir(faiss)
                         if n.startswith("METRIC_") and isinstance(getattr(faiss, n), int)})
    return _METRICS.get(metric, "unknown") if isinstance(metric, int) else "unknown"


def _distances(index: Any) -> bool:
    """Lower is better for every FAISS metric but the inner product."""
    return _metric_name(index) != "inner_product"


# -- writes ----------------------------------------------------------------------------------------
def _vectors(index: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """Vectors in ``add(x)`` / ``add_with_ids(x, ids)``: the rows of ``x``."""
    shape = getattr(args[0] if args else kwargs.get("x"), "shape", None)
    return int(shape[0]) if shape is not None and len(shape) == 2 else None


_writing: Final = _STORE.writing(_vectors)
