"""Reading facts out of what instrumented functions return.

A decorated step looks at its return value and records what it recognises:

* retrieval and rerank: a sequence of hits — dicts, objects, or ``(doc, score)`` tuples — with an
  id (``id``, ``doc_id``, ``document_id``, ``chunk_id``), a ``score`` and a text (``text``,
  ``content``, ``page_content``);
* embedding: one vector or a batch of vectors (lists, tuples or anything with ``.shape``);
* prompt: a list of chat messages;
* generation: a string, or an OpenAI-style completion (dict or SDK object) with ``choices``,
  ``usage``, ``model`` and ``id`` — read by ``ragotel.openai_protocol``, the reader HTTP calls use too.

For other shapes pass ``extractor=`` to the step: it is called with the return value and the
``ragotel.Step``, and records what it wants through ``Step.record``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, Final

from ragotel.semconv import RetrievalQuality

_ID_KEYS = ("id", "doc_id", "document_id", "chunk_id")
_SCORE_KEYS = ("score", "similarity", "relevance_score")
_TEXT_KEYS = ("text", "content", "page_content")


@dataclass(frozen=True, slots=True)
class Document:
    """One retrieved document as ragotel sees it."""

    id: str | None = None
    score: float | None = None
    text: str | None = None


def _field(item: Any, keys: tuple[str, ...]) -> Any:
    if type(item) is dict or isinstance(item, Mapping):  # the exact-type check skips the slow ABC one
        for key in keys:
            value = item.get(key)
            if value is not None:
                return value
        return None
    for key in keys:
        value = getattr(item, key, None)
        if value is not None:
            return value
    return None


def _score(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def to_document(item: Any) -> Document:
    """Normalise one hit: a dict, an object, a string, or a ``(doc, score)`` pair."""
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[1], (str, Mapping)):
        doc = to_document(item[0])
        return Document(doc.id, _score(item[1]), doc.text)
    if isinstance(item, str):
        return Document(text=item)
    doc_id = _field(item, _ID_KEYS)
    text = _field(item, _TEXT_KEYS)
    return Document(
        id=None if doc_id is None else str(doc_id),
        score=_score(_field(item, _SCORE_KEYS)),
        text=text if isinstance(text, str) else None,
    )


def hit_list(result: Any) -> Sequence[Any] | None:
    """``result`` when it is a sequence of hits (not a string, a mapping or an iterator), else ``None``."""
    if type(result) is list:
        return result
    if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Sequence):
        return None
    return result


# Score statistics look at this many hits at most: a runaway result costs a bounded scan.
MAX_SCORED_HITS: Final = 1000


@dataclass(frozen=True, slots=True)
class Scores:
    """Statistics of the scores of a list of hits (hits without a usable score are left out)."""

    top: float
    low: float
    mean: float
    scored: int


def score_of(item: Any) -> float | None:
    """The score of one hit, read the way ``to_document`` reads it (a bare number is its own score)."""
    if type(item) is float or (isinstance(item, (int, float)) and not isinstance(item, bool)):
        return float(item)
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[1], (str, Mapping)):
        return _score(item[1])
    if isinstance(item, str):
        return None
    return _score(_field(item, _SCORE_KEYS))


def scores(items: Sequence[Any]) -> Scores | None:
    """Score statistics of ``items``, or ``None`` when none has a score.

    Hits of one list share a shape, so the shape of the first decides one getter for all; a list that
    turns out mixed falls back to reading each hit on its own.
    """
    if len(items) > MAX_SCORED_HITS:
        items = items[:MAX_SCORED_HITS]
    if not items:
        return None
    values: list[float] | None = None
    getter = _getter(items[0])
    if getter is not None:
        try:
            values = [float(getter(item)) for item in items]
        except Exception:
            values = None
    if values is None:
        values = [v for v in map(score_of, items) if v is not None]
        if not values:
            return None
    total = sum(values)
    if not math.isfinite(total):
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return None
        total = sum(values)
    return Scores(top=max(values), low=min(values), mean=total / len(values), scored=len(values))


def _getter(first: Any) -> Any:
    """One fast getter for the score of hits shaped like ``first``, or ``None``."""
    if type(first) is dict:
        key = next((k for k in _SCORE_KEYS if first.get(k) is not None), None)
        return None if key is None else itemgetter(key)
    if type(first) is tuple:
        return itemgetter(1) if len(first) == 2 and not isinstance(first[1], (str, Mapping)) else None
    if type(first) is float or type(first) is int:  # bare scores (a generator's, a rerank answer's)
        return float
    if isinstance(first, (str, bytes, Mapping, Sequence)):
        return None
    attr = next((k for k in _SCORE_KEYS if getattr(first, k, None) is not None), None)
    return None if attr is None else attrgetter(attr)


def quality(count: int, stats: Scores | None, threshold: float | None) -> str:
    """``rag.retrieval.quality`` of a listing: empty, a best score under ``threshold``, or ok."""
    if count == 0:
        return RetrievalQuality.EMPTY.value
    if stats is not None and threshold is not None and stats.top < threshold:
        return RetrievalQuality.LOW_SCORE.value
    return RetrievalQuality.OK.value


def embedding_shape(result: Any) -> tuple[int, int] | None:
    """``(vectors, dimension)`` of one vector or a batch, or ``None`` if ``result`` is neither."""
    shape = getattr(result, "shape", None)
    if shape is not None:
        dims = tuple(shape)
        if len(dims) == 1:
            return 1, int(dims[0])
        if len(dims) == 2:
            return int(dims[0]), int(dims[1])
        return None
    if not isinstance(result, Sequence) or isinstance(result, (str, bytes)) or not result:
        return None
    first = result[0]
    if isinstance(first, (int, float)):
        return 1, len(result)
    first_len = getattr(first, "__len__", None)
    return (len(result), first_len()) if first_len is not None else None
