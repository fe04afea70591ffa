"""Reading the spans file ``ragotel.cli.receiver`` writes, and finding traces in it.

The receiver appends one JSON object per span to ``spans.jsonl``; ``load_spans`` reads it back and
``render_waterfall`` draws one trace as an indented timeline::

    from ragotel.cli.waterfall import latest_trace_id, load_spans, render_waterfall

    spans = load_spans("var/telemetry/spans.jsonl")
    trace_id = latest_trace_id(spans)
    if trace_id is not None:
        print(render_waterfall(spans, trace_id, width=120))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ragotel import semconv as sc
from ragotel._core.waterfall import JSONValue, SpanRecord, order_key, render_waterfall, trace_usage

__all__ = [
    "ExemplarRecord",
    "JSONValue",
    "SpanRecord",
    "TraceSummary",
    "find_trace_ids",
    "group_by_trace",
    "latest_trace_id",
    "list_traces",
    "load_exemplars",
    "load_spans",
    "render_exemplars",
    "render_waterfall",
    "trace_usage",
]


def load_spans(path: str | Path) -> list[SpanRecord]:
    """Read every valid span from a spans file, in file order.

    Blank, truncated (the receiver may be mid-write) or otherwise invalid lines are
    skipped. A span exported twice (an exporter retry) is kept once, last copy wins.
    Raises ``FileNotFoundError`` when the file does not exist.

    >>> spans = load_spans("var/telemetry/spans.jsonl")  # doctest: +SKIP
    """
    records: dict[tuple[str, str], SpanRecord] = {}
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            record = SpanRecord.from_json(obj)
            if record is not None:
                key = (record.trace_id, record.span_id)
                records.pop(key, None)  # re-insert so dict order follows the last copy
                records[key] = record
    return list(records.values())


def group_by_trace(spans: Iterable[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """Spans keyed by trace id, each list sorted by start time."""
    traces: dict[str, list[SpanRecord]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    for members in traces.values():
        members.sort(key=order_key)
    return traces


def find_trace_ids(spans: Iterable[SpanRecord], prefix: str) -> list[str]:
    """Trace ids that start with ``prefix`` (case-insensitive), sorted.

    Lets the command line accept a short id, like git does with commits.

    >>> find_trace_ids([SpanRecord("4bf9" + "0" * 28, "1" * 16, None, "x", "s", 0, 1)], "4BF")
    ['4bf90000000000000000000000000000']
    """
    wanted = prefix.strip().lower()
    return sorted({s.trace_id for s in spans if s.trace_id.startswith(wanted)})


# Server spans of endpoints that probes and scrapers call: a trace of nothing else is not "the latest".
_BACKGROUND_PATHS = frozenset({"/metrics", "/health", "/healthz", "/ready", "/readyz", "/livez"})


def is_background(members: Sequence[SpanRecord]) -> bool:
    """True for a trace of a scrape or a probe only (``GET /metrics``, ``GET /health``, ...)."""
    for span in members:
        path = span.attributes.get(sc.URL_PATH) or span.attributes.get(sc.HTTP_ROUTE)
        if path is None and " " in span.name:
            path = span.name.split(" ", 1)[1]
        if path not in _BACKGROUND_PATHS:
            return False
    return True


def latest_trace_id(spans: Iterable[SpanRecord]) -> str | None:
    """The trace whose root span ended last, or ``None`` when there are no spans.

    A trace counts only once its root (a span without a parent) has arrived, so a
    request still in flight, whose child spans are exported first, does not hide the
    last finished one. When no trace has a root yet, the trace with the latest ending
    span is chosen instead. Scrapes and probes are chosen only when nothing else is there.
    """
    best: tuple[bool, bool, int, str] | None = None
    for trace_id, members in group_by_trace(spans).items():
        roots = [s.end_ns for s in members if s.parent_span_id is None]
        end = max(roots) if roots else max(s.end_ns for s in members)
        key = (not is_background(members), bool(roots), end, trace_id)
        if best is None or key > best:
            best = key
    return None if best is None else best[3]


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One line of ``ragotel trace --list``."""

    trace_id: str
    root: str
    service: str
    spans: int
    duration_ms: float
    end_ns: int


def list_traces(spans: Iterable[SpanRecord], *, include_background: bool = False) -> list[TraceSummary]:
    """Every trace, newest first; scrapes and probes left out unless asked for."""
    found = []
    for trace_id, members in group_by_trace(spans).items():
        if not include_background and is_background(members):
            continue
        root = next((s for s in members if s.parent_span_id is None), min(members, key=lambda s: s.start_ns))
        start, end = min(s.start_ns for s in members), max(s.end_ns for s in members)
        found.append(TraceSummary(trace_id, root.name, root.service_name, len(members), (end - start) / 1e6, end))
    return sorted(found, key=lambda t: t.end_ns, reverse=True)


@dataclass(frozen=True, slots=True)
class ExemplarRecord:
    """A measurement that names the span it was recorded in: a data point's exemplar in ``metrics.jsonl``."""

    metric: str
    unit: str
    value: float
    span_id: str
    attributes: tuple[tuple[str, str], ...]
    time_ns: int


def load_exemplars(path: str | Path, trace_id: str) -> list[ExemplarRecord]:
    """The exemplars of ``trace_id`` in a metrics file the receiver wrote, oldest first, each once.

    Invalid lines are skipped, as in ``load_spans``; a missing file has none."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    found: set[ExemplarRecord] = set()
    for line in text.splitlines():
        try:
            point = json.loads(line)
            labels = tuple(sorted((str(k), str(v)) for k, v in (point.get("attributes") or {}).items()))
            for exemplar in point.get("exemplars") or ():
                if exemplar.get("trace_id") == trace_id:
                    found.add(ExemplarRecord(str(point["name"]), str(point.get("unit") or ""),
                                             float(exemplar["value"]), str(exemplar.get("span_id") or ""),
                                             labels, int(exemplar.get("time_ns") or 0)))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # a line being written, or not the receiver's
    return sorted(found, key=lambda e: (e.time_ns, e.metric))


def render_exemplars(exemplars: Sequence[ExemplarRecord], spans: Iterable[SpanRecord]) -> str:
    """One line per exemplar: the metric, the value recorded, its labels and the span it names."""
    names = {span.span_id: span.name for span in spans}
    lines = [f"metric exemplars of this trace ({len(exemplars)}):"]
    for e in exemplars:
        labels = ", ".join(f"{k}={v}" for k, v in e.attributes)
        value = f"{e.value:g}" + (f" {e.unit}" if e.unit else "")
        lines.append(f"  {e.metric}  {value}  {{{labels}}}  span {e.span_id} {names.get(e.span_id, '(not received)')}")
    return "\n".join(lines)
