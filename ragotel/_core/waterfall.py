"""One trace drawn as an indented timeline: what ``ragotel trace`` and the console exporter print.

::

    trace 4bf92f3577b34da6a3ce929d0e0e4736  2025-05-01 09:30:00.120 UTC  4 spans  812.4 ms  1 error
    SERVICE   SPAN                         DURATION   SHARE  TIMELINE
    chat-api  POST /chat                   812.4 ms  100.0%  |█████████████████████████████████████████|
    chat-api  ├─ retrieval dense (search)  120.0 ms   14.8%  |███████                                  |
    vllm      │  └─ embeddings              40.0 ms    4.9%  | ███                                     |
    vllm      └─ chat [ERROR]              600.0 ms   73.9%  |          ███████████████████████████████|
    [ERROR] chat (vllm): upstream timeout

A step's span is named after its operation and data source or model, as the GenAI conventions ask;
its own name (``rag.step.name``, the positional name or the decorated function) follows in
parentheses when the span name does not already say it.

Pure functions over ``SpanRecord`` values (the spans file is read by ``ragotel.cli.waterfall``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias, TypeGuard

from ragotel import semconv as sc

__all__ = ["JSONValue", "SpanRecord", "order_key", "render_waterfall", "trace_usage"]

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None

ERROR_MARKER = "[ERROR]"
ORPHAN_MARKER = "[orphan]"

# Cap the text columns so a very long span name cannot squeeze the timeline away.
_MAX_SERVICE_WIDTH = 24
_MIN_BAR_WIDTH = 10


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span, as stored in one line of the spans file.

    Ids are lowercase hex; ``parent_span_id`` is ``None`` for a root span. Times are
    nanoseconds since the Unix epoch, as in OTLP.

    >>> rec = SpanRecord("ab" * 16, "cd" * 8, None, "POST /chat", "chat-api", 0, 2_000_000)
    >>> rec.duration_ms
    2.0
    >>> SpanRecord.from_json(rec.to_json()) == rec
    True
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service_name: str
    start_ns: int
    end_ns: int
    kind: str = "INTERNAL"
    status_code: str = "UNSET"
    status_message: str = ""
    attributes: dict[str, JSONValue] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    scope: str = ""

    @property
    def duration_ns(self) -> int:
        # Clock skew between processes can produce end < start; never show negative time.
        return max(0, self.end_ns - self.start_ns)

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6

    @property
    def is_error(self) -> bool:
        return self.status_code == "ERROR"

    def to_json(self) -> dict[str, JSONValue]:
        """The object written as one line of the spans file."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "service_name": self.service_name,
            "scope": self.scope,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            # Redundant with start/end, but handy for `jq 'select(.duration_ms > 500)'`.
            "duration_ms": round(self.duration_ms, 3),
            "status_code": self.status_code,
            "status_message": self.status_message,
            "attributes": self.attributes,
            "events": list(self.events),
        }

    @classmethod
    def from_json(cls, obj: object) -> SpanRecord | None:
        """Build a record from a decoded JSON line, or ``None`` if it is not a valid span."""
        if not isinstance(obj, Mapping):
            return None
        trace_id = obj.get("trace_id")
        span_id = obj.get("span_id")
        name = obj.get("name")
        start_ns = obj.get("start_ns")
        end_ns = obj.get("end_ns")
        if not (isinstance(trace_id, str) and trace_id and isinstance(span_id, str) and span_id):
            return None
        if not isinstance(name, str) or not _is_int(start_ns) or not _is_int(end_ns):
            return None
        parent = obj.get("parent_span_id")
        attributes = obj.get("attributes")
        events = obj.get("events")
        return cls(
            trace_id=trace_id.lower(),
            span_id=span_id.lower(),
            parent_span_id=parent.lower() if isinstance(parent, str) and parent else None,
            name=name,
            service_name=_str_or(obj.get("service_name"), "unknown_service"),
            start_ns=int(start_ns),
            end_ns=int(end_ns),
            kind=_str_or(obj.get("kind"), "INTERNAL"),
            status_code=_str_or(obj.get("status_code"), "UNSET"),
            status_message=_str_or(obj.get("status_message"), ""),
            attributes=dict(attributes) if isinstance(attributes, Mapping) else {},
            events=tuple(e for e in events if isinstance(e, str)) if isinstance(events, list) else (),
            scope=_str_or(obj.get("scope"), ""),
        )


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass; a boolean timestamp means the line is not ours.
    return isinstance(value, int) and not isinstance(value, bool)


def _str_or(value: object, default: str) -> str:
    return value if isinstance(value, str) else default


@dataclass(frozen=True, slots=True)
class _Row:
    span: SpanRecord
    prefix: str
    orphan: bool


@dataclass(frozen=True, slots=True)
class _Glyphs:
    tee: str
    corner: str
    pipe: str
    blank: str
    bar: str
    ellipsis: str


_UNICODE = _Glyphs(tee="├─ ", corner="└─ ", pipe="│  ", blank="   ", bar="█", ellipsis="…")
_ASCII = _Glyphs(tee="|- ", corner="`- ", pipe="|  ", blank="   ", bar="#", ellipsis="~")


def order_key(span: SpanRecord) -> tuple[int, int, str, str]:
    # Ties on start time: the longer span first, as it is most likely the enclosing one.
    return (span.start_ns, -span.end_ns, span.name, span.span_id)


def _tree_rows(members: Sequence[SpanRecord], glyphs: _Glyphs) -> list[_Row]:
    by_id = {s.span_id: s for s in members}
    children: dict[str, list[SpanRecord]] = {}
    roots: list[SpanRecord] = []
    for span in members:
        parent = span.parent_span_id
        if parent is None or parent == span.span_id or parent not in by_id:
            roots.append(span)
        else:
            children.setdefault(parent, []).append(span)

    rows: list[_Row] = []
    visited: set[str] = set()

    def walk(top: SpanRecord) -> None:
        # Iterative depth-first walk: a deep trace must not hit Python's recursion limit.
        orphan_top = top.parent_span_id is not None
        stack: list[tuple[SpanRecord, str, str]] = [(top, "", "")]
        while stack:
            span, line_prefix, child_prefix = stack.pop()
            if span.span_id in visited:
                continue
            visited.add(span.span_id)
            rows.append(_Row(span, line_prefix, orphan=orphan_top and span is top))
            pending = (k for k in children.get(span.span_id, ()) if k.span_id not in visited)
            kids = sorted(pending, key=order_key)
            for index in range(len(kids) - 1, -1, -1):
                last = index == len(kids) - 1
                stack.append(
                    (
                        kids[index],
                        child_prefix + (glyphs.corner if last else glyphs.tee),
                        child_prefix + (glyphs.blank if last else glyphs.pipe),
                    )
                )

    for root in sorted(roots, key=order_key):
        walk(root)
    # Spans caught in a parent cycle (only possible with corrupt data) are never reached
    # from a root; show them as orphans rather than dropping them silently.
    for span in sorted(members, key=order_key):
        if span.span_id not in visited:
            walk(span)
    return rows


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _title(span: SpanRecord) -> str:
    """The span's name, then ``rag.step.name`` in parentheses unless the name already says it
    (``retrieval dense (search)``, but ``retrieval search``) or it is only the step's kind."""
    step = span.attributes.get(sc.RAG_STEP_NAME)
    if (not isinstance(step, str) or not step or step == span.attributes.get(sc.RAG_STEP_KIND)
            or span.name == step or span.name.startswith(f"{step} ") or span.name.endswith(f" {step}")):
        return span.name
    return f"{span.name} ({step})"


def _markers(row: _Row) -> str:
    return (f" {ORPHAN_MARKER}" if row.orphan else "") + (f" {ERROR_MARKER}" if row.span.is_error else "")


def _fit(text: str, width: int, ellipsis: str) -> str:
    if len(text) <= width:
        return text.ljust(width)
    return text[: max(0, width - len(ellipsis))] + ellipsis


def _bar(span: SpanRecord, t0: int, total: int, width: int, glyph: str) -> str:
    start = math.floor((span.start_ns - t0) * width / total)
    end = math.ceil((span.end_ns - t0) * width / total)
    start = min(max(start, 0), width - 1)
    end = min(max(end, start + 1), width)  # even a 0 ms span gets one visible cell
    return " " * start + glyph * (end - start) + " " * (width - end)


def trace_usage(members: Sequence[SpanRecord]) -> tuple[int, int, float | None] | None:
    """Input tokens, output tokens and USD of a trace's model calls, or ``None`` when it made none.

    Each call is counted once: a span's figures count only when no span under it carries its own (a
    pipeline's totals and a step around an HTTP call repeat what the call under them recorded).
    """
    has_usage = {s.span_id for s in members if sc.GEN_AI_USAGE_INPUT_TOKENS in s.attributes
                 or sc.GEN_AI_USAGE_OUTPUT_TOKENS in s.attributes}
    if not has_usage:
        return None
    parent_of = {s.span_id: s.parent_span_id for s in members}
    covered: set[str] = set()  # spans with a usage-carrying span somewhere under them
    for span_id in has_usage:
        parent = parent_of.get(span_id)
        while parent is not None and parent not in covered:
            covered.add(parent)
            parent = parent_of.get(parent)
    tokens_in = tokens_out = 0
    usd: float | None = None
    for span in members:
        if span.span_id in has_usage and span.span_id not in covered:
            tokens_in += _number(span.attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS))
            tokens_out += _number(span.attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS))
            cost = span.attributes.get(sc.RAG_COST)
            if isinstance(cost, (int, float)) and not isinstance(cost, bool):
                usd = (usd or 0.0) + float(cost)
    return tokens_in, tokens_out, usd


def _number(value: object) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def render_waterfall(
    spans: Iterable[SpanRecord],
    trace_id: str,
    width: int = 100,
    *,
    ascii_only: bool = False,
) -> str:
    """Render one trace as a text waterfall, ``width`` columns wide.

    Each line shows service, span name (indented under its parent; a step's ``rag.step.name`` follows
    in parentheses where the span name does not say it), duration in ms,
    share of the trace's total duration and a bar placed on the trace's timeline.
    Spans whose parent is not in the file are shown at the top level, marked
    ``[orphan]``; spans with an error status are marked ``[ERROR]``. ``spans`` may
    hold other traces, they are ignored. Set ``ascii_only`` for terminals that cannot
    print box-drawing characters. Raises ``LookupError`` if the trace is absent.

    >>> spans = [
    ...     SpanRecord("ab" * 16, "01" * 8, None, "POST /chat", "api", 0, 10_000_000),
    ...     SpanRecord("ab" * 16, "02" * 8, "01" * 8, "retrieve", "api", 0, 5_000_000),
    ... ]
    >>> print(render_waterfall(spans, "ab" * 16, width=60).splitlines()[-1])
    api      └─ retrieve    5.0 ms   50.0%  |█████████         |
    """
    wanted = trace_id.strip().lower()
    unique = {s.span_id: s for s in spans if s.trace_id == wanted}
    members = sorted(unique.values(), key=order_key)
    if not members:
        raise LookupError(f"trace {trace_id} not found")
    glyphs = _ASCII if ascii_only else _UNICODE
    rows = _tree_rows(members, glyphs)

    t0 = min(s.start_ns for s in members)
    t_end = max(max(s.end_ns for s in members), t0)
    total = max(t_end - t0, 1)

    markers = [_markers(r) for r in rows]
    titles = [_title(r.span) for r in rows]
    labels = [r.prefix + t + m for r, t, m in zip(rows, titles, markers, strict=True)]
    durations = [f"{r.span.duration_ms:.1f} ms" for r in rows]
    shares = [f"{100.0 * r.span.duration_ns / total:.1f}%" for r in rows]

    svc_w = min(max(len("SERVICE"), *(len(r.span.service_name) for r in rows)), _MAX_SERVICE_WIDTH)
    dur_w = max(len("DURATION"), *(len(d) for d in durations))
    share_w = max(len("SHARE"), *(len(s) for s in shares))
    # Layout: svc␣␣name␣␣dur␣␣share␣␣|bar|  -> 2+2+2+2 spaces and 2 pipes besides columns.
    fixed = svc_w + dur_w + share_w + 10
    name_room = max(len("SPAN"), width - fixed - max(_MIN_BAR_WIDTH, width // 4))
    name_w = min(max(len("SPAN"), *(len(lb) for lb in labels)), name_room)
    bar_w = max(_MIN_BAR_WIDTH, width - fixed - name_w)

    errors = [r.span for r in rows if r.span.is_error]
    started = datetime.fromtimestamp(t0 / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    header = f"trace {wanted}  {started} UTC  {_plural(len(rows), 'span')}  {total / 1e6:.1f} ms"
    if errors:
        header += f"  {_plural(len(errors), 'error')}"
    usage = trace_usage(members)
    if usage is not None:
        header += f"  tokens {usage[0]} in / {usage[1]} out"
        if usage[2] is not None:
            header += f"  cost ${usage[2]:.6f}"

    lines = [
        header,
        f"{'SERVICE':<{svc_w}}  {'SPAN':<{name_w}}  {'DURATION':>{dur_w}}  {'SHARE':>{share_w}}  TIMELINE",
    ]
    for row, name, marker, dur, share in zip(rows, titles, markers, durations, shares, strict=True):
        # Truncate the name, never the markers: they are what the reader scans for.
        name = _fit(row.prefix + name, max(name_w - len(marker), 1), glyphs.ellipsis).rstrip()
        lines.append(
            f"{_fit(row.span.service_name, svc_w, glyphs.ellipsis)}  {(name + marker).ljust(name_w)}  "
            f"{dur:>{dur_w}}  {share:>{share_w}}  |{_bar(row.span, t0, total, bar_w, glyphs.bar)}|"
        )
    for span in errors:
        detail = f": {span.status_message}" if span.status_message else ""
        lines.append(f"{ERROR_MARKER} {span.name} ({span.service_name}){detail}")
    if any(r.orphan for r in rows):
        lines.append(f"{ORPHAN_MARKER} parent span not in the file (not exported yet, or dropped)")
    return "\n".join(lines)
