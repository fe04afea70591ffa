"""The documentation's pictures, drawn as hand-written SVG from committed results of real runs.

* the terminal pictures (:data:`TERMINAL_PICTURES`): what ``ragotel trace`` printed, committed as text, drawn as a
  terminal window, each column in its colour:

  - ``docs/assets/waterfall.svg`` from ``docs/assets/waterfall.txt``: the last trace of ``examples/quickstart.py``;
  - ``docs/assets/reference-app.svg`` from ``docs/assets/reference-app.txt``: one ``POST /chat`` to the reference
    app (examples/reference_app) against the real vLLM CPU server, across the chat API, the retriever and vLLM;

* ``docs/assets/benchmarks/NAME.svg``: one horizontal bar chart per ``docs/assets/benchmarks/NAME.json`` (what
  ``benchmarks/NAME.py --json`` wrote): ragotel ÷ the same telemetry by hand per row, with the target line.

The same input always gives the same bytes (no clock, no randomness, fixed number formatting), so
``python -m docsgen --check`` can tell a stale picture from a current one. Refresh the quickstart's text with::

    python -m docsgen.pictures --record-waterfall

and the reference app's (it needs vLLM, so no test runs it) by running the app once, then recording the trace whose
id it printed after the last answer (``... ms, trace TRACE_ID``) from the telemetry it kept in var/telemetry::

    ./scripts/run-local.sh --once
    python -m docsgen.pictures --record-trace TRACE_ID --dir var/telemetry
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ASSETS = ROOT / "docs" / "assets"
BENCHMARKS = ASSETS / "benchmarks"
QUICKSTART = ROOT / "examples" / "quickstart.py"
TELEMETRY = ROOT / "var" / "telemetry"  # where scripts/run-local.sh's receiver writes (``ragotel receive``'s default)


@dataclass(frozen=True, slots=True)
class TerminalPicture:
    """A committed text (what ``command`` printed, ``width`` columns wide) and the terminal picture drawn from it."""

    text: Path
    svg: Path
    title: str  # the window's title, and what a screen reader says
    command: str  # shown at the prompt; its arguments are what the recorder passes ``ragotel`` (before the trace's)
    width: int  # the columns it was recorded at: the command's --width

    def draw(self) -> str:
        """The picture of the committed text."""
        return terminal_svg(self.text.read_text(encoding="utf-8"), title=self.title, command=self.command)


def _trace_picture(name: str, title: str, width: int) -> TerminalPicture:
    return TerminalPicture(ASSETS / f"{name}.txt", ASSETS / f"{name}.svg", title, f"ragotel trace --width {width}",
                           width)


# 100 columns: render_waterfall's default, and what fits a docs page unscaled.
WATERFALL = _trace_picture("waterfall", "ragotel trace: the last trace of examples/quickstart.py", 100)
# 120 columns: what run-local prints when its output is not a terminal; the ten spans' tree needs the room.
REFERENCE_APP = _trace_picture(
    "reference-app",
    "ragotel trace: one POST /chat to the reference app, across the chat API, the retriever and vLLM", 120)
TERMINAL_PICTURES = (WATERFALL, REFERENCE_APP)
# The services a reference app's trace crosses: a trace without one of them is not worth a picture (vLLM exports
# its llm_request span late, after the answer).
REFERENCE_APP_SERVICES = ("rag-chat-api", "rag-retriever", "vllm")

__all__ = [
    "BenchmarkResult",
    "BenchmarkRow",
    "TerminalPicture",
    "Waterfall",
    "WaterfallRow",
    "bar_chart_svg",
    "load_benchmark",
    "outputs",
    "parse_waterfall",
    "record_trace",
    "record_waterfall",
    "terminal_svg",
]


def _num(value: float) -> str:
    """A coordinate as SVG text: two decimals at most, no trailing zeros, so the bytes depend on the value only."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


# --------------------------------------------------------------------------- the waterfall's text

# What render_waterfall writes (ragotel/_core/waterfall.py): the tree glyphs, Unicode and --ascii.
_TREE = r"(?:├─ |└─ |│  |   |\|- |`- |\|  )*"
_HEADER = re.compile(r"^trace (?P<trace_id>[0-9a-f]+)  (?P<started>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC  "
                     r"(?P<spans>\d+) spans?  (?P<total>\d+\.\d) ms(?P<rest>.*)$")
_COLUMNS = re.compile(r"^SERVICE +SPAN +DURATION +SHARE  TIMELINE$")


def _span_line(service_width: int) -> re.Pattern[str]:
    return re.compile(
        rf"^(?P<service>.{{{service_width}}})  (?P<prefix>{_TREE})(?P<title>.*?)"
        r"(?P<markers>(?: \[orphan\])?(?: \[ERROR\])?) +(?P<duration>\d+\.\d) ms +(?P<share>\d+\.\d)%  "
        r"\|(?P<bar>[█# ]*)\|$"
    )


@dataclass(frozen=True, slots=True)
class WaterfallRow:
    """One span's line of a waterfall, read back into its columns."""

    service: str
    prefix: str  # the tree glyphs before the name: three columns per level
    title: str  # the span's name, then its step's name in parentheses where render_waterfall adds it
    markers: str
    duration_ms: float
    share: float  # percent of the trace
    bar_start: int
    bar_end: int
    bar_width: int

    @property
    def depth(self) -> int:
        return len(self.prefix) // 3

    @property
    def operation(self) -> str:
        """The span name's first word: the GenAI operation (``retrieval``, ``chat``, ...) for a step's span."""
        return self.title.split(" ", 1)[0]


@dataclass(frozen=True, slots=True)
class Waterfall:
    """A ``ragotel trace`` waterfall read back: its header, one row per span and the notes under them."""

    header: str
    trace_id: str
    span_count: int
    total_ms: float
    columns: str
    rows: tuple[WaterfallRow, ...]
    notes: tuple[str, ...]


def parse_waterfall(text: str) -> Waterfall:
    """Read a waterfall as :func:`ragotel.cli.waterfall.render_waterfall` formats it; :class:`ValueError` on a line
    it would not write (the check that a committed text is the CLI's output, not something edited by hand)."""
    lines = text.rstrip("\n").split("\n")
    if len(lines) < 3:
        raise ValueError("a waterfall has a header, a column line and at least one span")
    header = _HEADER.match(lines[0])
    if header is None:
        raise ValueError(f"not a waterfall header: {lines[0]!r}")
    if _COLUMNS.match(lines[1]) is None:
        raise ValueError(f"not the waterfall's column line: {lines[1]!r}")
    pattern = _span_line(lines[1].index("SPAN") - 2)
    rows: list[WaterfallRow] = []
    for at, line in enumerate(lines[2:], start=2):
        found = pattern.match(line)
        if found is None:
            notes = tuple(lines[at:])
            if not all(note.startswith(("[ERROR] ", "[orphan] ")) for note in notes):
                raise ValueError(f"neither a span line nor a note: {line!r}")
            break
        bar = found["bar"]
        filled = bar.strip(" ")
        rows.append(WaterfallRow(
            service=found["service"].rstrip(" "), prefix=found["prefix"], title=found["title"],
            markers=found["markers"].strip(), duration_ms=float(found["duration"]), share=float(found["share"]),
            bar_start=len(bar) - len(bar.lstrip(" ")), bar_end=len(bar.rstrip(" ")), bar_width=len(bar),
        ))
        if not filled or filled.strip(filled[0]):
            raise ValueError(f"a span's bar must be one run of one glyph: {line!r}")
    else:
        notes = ()
    return Waterfall(header=lines[0], trace_id=header["trace_id"], span_count=int(header["spans"]),
                     total_ms=float(header["total"]), columns=lines[1], rows=tuple(rows), notes=notes)


def _run(argv: list[str], cwd: str, env: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=120, check=False)
    if done.returncode != 0:  # say why: CalledProcessError would name the command only
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode(errors='replace')}")
    return done.stdout.decode("utf-8")


def _cli_env() -> dict[str, str]:
    """The environment a user's shell gives the commands: this checkout importable, UTF-8 out, no OTEL_ settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _record(picture: TerminalPicture, *args: str, cwd: str, env: dict[str, str]) -> str:
    """``picture.command`` run with ``args`` after it, as a process of its own: the waterfall it printed.

    The CLI picks Unicode or ASCII glyphs from its stdout's encoding (UTF-8 here). The metric exemplars it prints
    under the waterfall (after a blank line) are left off: lines of 200 columns that would dwarf the picture."""
    program, *command = picture.command.split()
    if program != "ragotel":
        raise ValueError(f"not a ragotel command: {picture.command!r}")
    printed = _run([sys.executable, "-m", "ragotel.cli", *command, *args], cwd, env)
    waterfall = printed.split("\n\n", 1)[0].rstrip("\n") + "\n"
    parse_waterfall(waterfall)  # fail here, not in the picture, if the CLI's format moved on
    return waterfall


def record_waterfall() -> str:
    """Run ``examples/quickstart.py`` in a scratch directory (its local receiver writes the spans there), then
    ``ragotel trace --width 100`` on that directory: the quickstart's last trace as the CLI draws it.

    Both run as processes of their own, as a user runs them: the quickstart configures OpenTelemetry globally."""
    env = _cli_env()
    with tempfile.TemporaryDirectory(prefix="ragotel-waterfall-") as scratch:
        _run([sys.executable, str(QUICKSTART)], scratch, env)  # writes var/telemetry under its working directory
        return _record(WATERFALL, "--dir", "var/telemetry", cwd=scratch, env=env)


def record_trace(trace_id: str, directory: Path = TELEMETRY) -> str:
    """``ragotel trace TRACE_ID --width 120 --dir DIRECTORY``: one trace of the reference app as the CLI draws it,
    from a directory ``ragotel receive`` wrote.

    Run ``./scripts/run-local.sh --once`` first: it starts vLLM (CPU), the retriever and the chat API with a local
    receiver writing ``var/telemetry/`` (the default ``directory``), asks its sample questions and prints the last
    one's trace id (and waterfall). :class:`ValueError` if the trace lacks a service of
    :data:`REFERENCE_APP_SERVICES` (vLLM's span comes late: record again a moment later);
    :class:`RuntimeError` if ``ragotel trace`` fails (no such trace or directory)."""
    directory = Path(directory).resolve()
    waterfall = _record(REFERENCE_APP, trace_id, "--dir", str(directory), cwd=str(ROOT), env=_cli_env())
    missing = set(REFERENCE_APP_SERVICES) - {row.service for row in parse_waterfall(waterfall).rows}
    if missing:
        raise ValueError(f"trace {trace_id} in {directory} has no spans of {', '.join(sorted(missing))}: not a whole "
                         "POST /chat to the reference app (vLLM exports late: try again in a moment)")
    return waterfall


# --------------------------------------------------------------------------- the terminal picture

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace"
FONT_SIZE = 13
CHAR_W = 7.8  # monospace fonts advance about 0.6 em; every run is placed at its column, so drift cannot add up
LINE_H = 18
PAD = 16
TITLE_H = 30
TERMINAL_BG = "#0d1117"
TITLE_BG = "#161b22"
# A bar's colour says the step's kind at a glance; keyed by the GenAI operation that starts the span's name.
BAR_CLASSES = {
    "invoke_workflow": "b-pipeline", "invoke_agent": "b-pipeline", "retrieval": "b-retrieval",
    "embeddings": "b-embeddings", "rerank": "b-rerank", "prompt": "b-prompt", "chat": "b-generation",
    "text_completion": "b-generation", "generate_content": "b-generation", "execute_tool": "b-tool",
}
TERMINAL_STYLE = f"""
.t {{ font-family: {FONT}; font-size: {FONT_SIZE}px; fill: #c9d1d9; white-space: pre; }}
.title {{ font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 12px; fill: #8b949e; }}
.dim {{ fill: #8b949e; }}
.head {{ fill: #8b949e; font-weight: bold; }}
.prompt {{ fill: #7ee787; font-weight: bold; }}
.id {{ fill: #e3b341; }}
.svc {{ fill: #79c0ff; }}
.op {{ fill: #f0f6fc; font-weight: bold; }}
.dur {{ fill: #7ee787; }}
.err {{ fill: #f85149; font-weight: bold; }}
.warn {{ fill: #d29922; font-weight: bold; }}
.b {{ fill: #8b949e; }}
.b-pipeline {{ fill: #a371f7; }}
.b-retrieval {{ fill: #58a6ff; }}
.b-embeddings {{ fill: #39c5cf; }}
.b-rerank {{ fill: #db61a2; }}
.b-prompt {{ fill: #e3b341; }}
.b-generation {{ fill: #3fb950; }}
.b-tool {{ fill: #ffa657; }}
.b-error {{ fill: #f85149; }}
"""

Run = tuple[int, str, str]  # (column, text, CSS class; "" for the default colour)


def _cut(line: str, marks: Iterable[tuple[int, int, str]]) -> list[Run]:
    """``line`` in runs: the marked column ranges with their class, what lies between them plain."""
    runs: list[Run] = []
    at = 0
    for start, end, css in sorted(marks):
        if start > at:
            runs.append((at, line[at:start], ""))
        if end > start:
            runs.append((start, line[start:end], css))
        at = max(at, end)
    if at < len(line):
        runs.append((at, line[at:], ""))
    return runs


def _line_runs(line: str, index: int, span_line: re.Pattern[str] | None) -> list[Run]:
    """Colour one line of the waterfall by what render_waterfall put in each column."""
    if index == 0 and (header := _HEADER.match(line)) is not None:
        marks = [(0, 5, "dim"), (header.start("trace_id"), header.end("trace_id"), "id")]
        marks += [(header.start("rest") + m.start(), header.start("rest") + m.end(), "err")
                  for m in re.finditer(r"\d+ errors?", header["rest"])]
        return _cut(line, marks)
    if index == 1 and _COLUMNS.match(line):
        return _cut(line, [(0, len(line), "head")])
    found = span_line.match(line) if span_line is not None else None
    if found is None:
        for marker, css in (("[ERROR]", "err"), ("[orphan]", "warn")):
            if line.startswith(marker):
                return _cut(line, [(0, len(marker), css)])
        return _cut(line, [])
    title_start, title = found.start("title"), found["title"]
    operation = title.split(" ", 1)[0]
    marks = [(0, len(found["service"].rstrip(" ")), "svc"), (found.start("prefix"), found.end("prefix"), "dim"),
             (title_start, title_start + len(operation), "op"),
             (found.start("duration"), found.end("duration") + 3, "dur"),  # "12.3 ms"
             (found.start("share"), found.end("share") + 1, "dim"),  # "45.6%"
             (found.start("bar") - 1, found.start("bar"), "dim"), (found.end("bar"), found.end("bar") + 1, "dim")]
    # The step's own name, which render_waterfall adds in parentheses: whole, or cut short by the column's width.
    step = title.rfind(" (") + 1
    if step and (title.endswith(")") or (title.endswith(("…", "~")) and ")" not in title[step:])):
        marks.append((title_start + step, title_start + len(title), "dim"))
    for marker, css in (("[orphan]", "warn"), ("[ERROR]", "err")):
        if marker in found["markers"]:
            start = found.start("markers") + found["markers"].index(marker)
            marks.append((start, start + len(marker), css))
    bar = found["bar"]
    left = len(bar) - len(bar.lstrip(" "))
    filled = len(bar.strip(" "))
    css = "b-error" if "[ERROR]" in found["markers"] else BAR_CLASSES.get(operation, "b")
    marks.append((found.start("bar") + left, found.start("bar") + left + filled, css))
    return _cut(line, marks)


def _text_line(runs: list[Run], y: float) -> str:
    """One ``<text>`` whose character data is the line exactly (runs in order, spaces kept), each run at its column;
    a bar's run is stretched to its columns' width, whatever the width of the font's block glyph."""
    parts = []
    for column, text, css in runs:
        attrs = f' x="{_num(PAD + column * CHAR_W)}"'
        if css:
            attrs += f' class="{css}"'
        if css.startswith("b") and text.strip(" "):
            attrs += f' textLength="{_num(len(text) * CHAR_W)}" lengthAdjust="spacingAndGlyphs"'
        parts.append(f"<tspan{attrs}>{escape(text)}</tspan>")
    return f'<text class="t" y="{_num(y)}" xml:space="preserve">{"".join(parts)}</text>'


def terminal_svg(text: str, *, title: str, command: str) -> str:
    """``text`` (what a command printed) as a terminal window: title bar, the prompt and command, then the lines.

    Lines a waterfall has (header, columns, spans, notes) are coloured by column; others are plain."""
    lines = text.rstrip("\n").split("\n")
    span_line = _span_line(lines[1].index("SPAN") - 2) if len(lines) > 1 and _COLUMNS.match(lines[1]) else None
    prompt = f"$ {command}"
    columns = max(len(prompt), *(len(line) for line in lines))
    width = 2 * PAD + columns * CHAR_W
    height = TITLE_H + 2 * PAD + (len(lines) + 1) * LINE_H
    baseline = TITLE_H + PAD + FONT_SIZE  # the first line's baseline
    body = [_text_line(_cut(prompt, [(0, 1, "prompt")]), baseline)]
    body += [_text_line(_line_runs(line, index, span_line), baseline + (index + 1) * LINE_H)
             for index, line in enumerate(lines)]
    w, h = _num(width), _num(height)
    dots = "".join(f'<circle cx="{PAD + 4 + 20 * i}" cy="{TITLE_H // 2}" r="6" fill="{fill}"/>'
                   for i, fill in enumerate(("#ff5f56", "#ffbd2e", "#27c93f")))
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{_attr(title)}">',
        f"<title>{escape(title)}</title>",
        f"<style>{TERMINAL_STYLE}</style>",
        f'<rect width="{w}" height="{h}" rx="8" fill="{TERMINAL_BG}"/>',
        f'<path d="M0 8a8 8 0 0 1 8-8h{_num(width - 16)}a8 8 0 0 1 8 8v{TITLE_H - 8}h-{w}z" fill="{TITLE_BG}"/>',
        dots,
        f'<text class="title" x="{_num(width / 2)}" y="{TITLE_H // 2 + 4}" text-anchor="middle">{escape(title)}</text>',
        *body,
        "</svg>",
        "",
    ])


# --------------------------------------------------------------------------- the benchmark charts


@dataclass(frozen=True, slots=True)
class BenchmarkRow:
    """One scenario: median ns per call plain, with the telemetry by hand and through ragotel."""

    scenario: str
    plain: float
    by_hand: float
    ragotel: float
    ratio: float  # ragotel ÷ by hand


@dataclass(frozen=True, slots=True)
class BenchmarkResult:
    """What ``benchmarks/NAME.py --json`` writes."""

    benchmark: str
    python: str
    machine: str
    rounds: int
    method: str
    target: float
    rows: tuple[BenchmarkRow, ...]
    skipped: tuple[str, ...]


def _text(document: Mapping[str, object], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, not {value!r}")
    return value


def _number(document: Mapping[str, object], key: str) -> float:
    value = document.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):  # a JSON true is no figure
        raise ValueError(f"{key!r} must be a number, not {value!r}")
    return float(value)


def load_benchmark(path: Path) -> BenchmarkResult:
    """Read a benchmark's JSON, checking the fields the chart draws (:class:`ValueError` names a missing one)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a JSON object")
    rows = document.get("rows")
    if not isinstance(rows, list):
        raise ValueError(f"{path}: 'rows' must be a list")
    parsed = []
    for row in rows:
        if not isinstance(row, dict):
            raise ValueError(f"{path}: a row is not an object: {row!r}")
        parsed.append(BenchmarkRow(_text(row, "scenario"), _number(row, "plain"), _number(row, "by_hand"),
                                   _number(row, "ragotel"), _number(row, "ratio")))
    if not parsed:
        raise ValueError(f"{path}: no rows to draw")
    skipped = document.get("skipped") or []
    return BenchmarkResult(
        benchmark=_text(document, "benchmark"), python=_text(document, "python"), machine=_text(document, "machine"),
        rounds=int(_number(document, "rounds")), method=_text(document, "method"), target=_number(document, "target"),
        rows=tuple(parsed),
        skipped=tuple(str(s.get("scenario", s)) if isinstance(s, dict) else str(s)
                      for s in (skipped if isinstance(skipped, list) else [])),
    )


# (title, what the ratio divides by): the benchmarks' own words (their docstrings say what "by hand" is)
CHART_TITLES = {
    "integrations": ("Zero-code integrations: ragotel ÷ by hand",
                     "by hand being the same span and duration record written around the same library call"),
    "overhead": ("Step overhead: ragotel ÷ by hand",
                 "by hand being the identical telemetry (the span and every metric record) written with the "
                 "OpenTelemetry API, variant (c)"),
}
CHART_W = 760
CHART_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
LABEL_CHAR_W = 6.6  # average advance of a 12 px sans-serif character: room for the scenario names
ROW_H = 26
BAR_THICK = 16
VALUE_ROOM = 200  # right of the plot: the ratio and the two medians it divides
CHART_STYLE = f"""
text {{ font-family: {CHART_FONT}; font-size: 12px; fill: #24292f; }}
.h1 {{ font-size: 16px; font-weight: 600; }}
.sub, .tick, .note {{ fill: #57606a; }}
.tick {{ font-size: 11px; }}
.note {{ font-size: 11px; }}
.value {{ font-weight: 600; }}
.ok {{ fill: #2da44e; }}
.over {{ fill: #e16f24; }}
.grid {{ stroke: #d8dee4; stroke-width: 1; }}
.par {{ stroke: #8c959f; stroke-width: 1.5; }}
.target {{ stroke: #cf222e; stroke-width: 1.5; stroke-dasharray: 5 4; }}
.target-label {{ fill: #cf222e; font-size: 11px; font-weight: 600; }}
.par-label {{ fill: #57606a; font-size: 11px; }}
"""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _duration(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns / 1e6:.2f} ms"


def _ticks(top: float) -> tuple[float, list[float]]:
    """The axis' end and its ticks: steps of 0.25×, 0.5× or 1×, whichever gives at most 8, from 0 so a bar's
    length is its ratio."""
    step = next(s for s in (0.25, 0.5, 1.0, 2.0, 5.0, 10.0) if top / s <= 8)
    end = math.ceil(top / step) * step
    return end, [i * step for i in range(round(end / step) + 1)]


def bar_chart_svg(result: BenchmarkResult) -> str:
    """One horizontal bar per row, its length the row's ratio on an axis from 0; a solid line at 1× (as costly as by
    hand) and a dashed one at the target; bars past the target in orange."""
    title, divisor = CHART_TITLES.get(result.benchmark, (f"{result.benchmark}: ragotel ÷ by hand", "by hand"))
    label_w = math.ceil(max(len(row.scenario) for row in result.rows) * LABEL_CHAR_W)
    x0 = PAD + label_w + 12
    x1 = CHART_W - VALUE_ROOM
    end, ticks = _ticks(max(max(row.ratio for row in result.rows), result.target) * 1.05)
    scale = (x1 - x0) / end  # px per 1×

    def x(ratio: float) -> str:
        return _num(x0 + ratio * scale)

    subtitle = f"median ns per call, {_plural(result.rounds, 'round')} · Python {result.python} · {result.machine}"
    top = 84  # room for the title, the subtitle and the reference lines' labels
    bottom = top + len(result.rows) * ROW_H
    out = [
        f'<text class="h1" x="{PAD}" y="28">{escape(title)}</text>',
        f'<text class="sub" x="{PAD}" y="48">{escape(subtitle)}</text>',
    ]
    # Lines first, bars and labels over them: a label crossed by a line stays legible (its halo).
    for tick in ticks:
        out.append(f'<line class="grid" x1="{x(tick)}" y1="{top - 6}" x2="{x(tick)}" y2="{bottom}"/>')
        out.append(f'<text class="tick" x="{x(tick)}" y="{bottom + 16}" text-anchor="middle">{tick:g}×</text>')
    out.append(f'<line class="grid" x1="{_num(x0)}" y1="{bottom}" x2="{_num(x1)}" y2="{bottom}"/>')
    # The two reference lines' labels lean away from each other, so a target near 1× does not stack them.
    out.append(f'<line class="par" x1="{x(1)}" y1="{top - 14}" x2="{x(1)}" y2="{bottom}"/>')
    out.append(f'<text class="par-label" x="{_num(x0 + scale - 4)}" y="{top - 16}" text-anchor="end">'
               "1× = by hand</text>")
    out.append(f'<line class="target" x1="{x(result.target)}" y1="{top - 14}" x2="{x(result.target)}" '
               f'y2="{bottom}"/>')
    out.append(f'<text class="target-label" x="{_num(x0 + result.target * scale + 4)}" y="{top - 16}">'
               f"target ≤ {result.target:g}×</text>")
    for index, row in enumerate(result.rows):
        y = top + index * ROW_H + (ROW_H - BAR_THICK) / 2
        middle = _num(y + BAR_THICK / 2 + 4)
        css = "ok" if row.ratio <= result.target else "over"
        out.append(f'<text x="{x0 - 10}" y="{middle}" text-anchor="end">{escape(row.scenario)}</text>')
        out.append(f'<rect class="bar {css}" x="{_num(x0)}" y="{_num(y)}" width="{_num(row.ratio * scale)}" '
                   f'height="{BAR_THICK}" rx="2"><title>{escape(row.scenario)}: {row.ratio:.2f}×</title></rect>')
        value, detail = f"{row.ratio:.2f}×", f"{_duration(row.ragotel)} vs {_duration(row.by_hand)}"
        left = x0 + row.ratio * scale + 6
        # A white card under the label hides the reference lines it crosses; sized generously from the characters
        # (it covers nothing else in the bar's row).
        card = 7.4 * len(value) + 6 + 6.4 * len(detail) + 8
        out.append(f'<rect fill="#ffffff" x="{_num(left - 3)}" y="{_num(y - 1)}" width="{_num(card)}" '
                   f'height="{BAR_THICK + 2}"/>')
        out.append(f'<text x="{_num(left)}" y="{middle}"><tspan class="value">{value}</tspan>'
                   f'<tspan class="note" dx="6">{escape(detail)}</tspan></text>')
    notes = textwrap.wrap(f"Bar: ragotel ÷ by hand, {divisor}; after it, ragotel's median vs by hand's. "
                          f"Method: {result.method}.", width=int((CHART_W - 2 * PAD) / 5.6))
    if result.skipped:
        notes += textwrap.wrap("Not run (library not installed): " + ", ".join(result.skipped), width=120)
    y_note = bottom + 40
    for line in notes:
        out.append(f'<text class="note" x="{PAD}" y="{y_note}">{escape(line)}</text>')
        y_note += 15
    height = y_note - 15 + PAD
    label = f"{title}, Python {result.python}, {result.machine}"
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{height}" '
        f'viewBox="0 0 {CHART_W} {height}" role="img" aria-label="{_attr(label)}">',
        f"<title>{escape(label)}</title>",
        f"<style>{CHART_STYLE}</style>",
        f'<rect x="0.5" y="0.5" width="{CHART_W - 1}" height="{height - 1}" rx="6" fill="#ffffff" stroke="#d0d7de"/>',
        *out,
        "</svg>",
        "",
    ])


# --------------------------------------------------------------------------- what docsgen writes


def outputs() -> dict[Path, str]:
    """Every picture, with the content it should have: the terminal pictures, and a chart per committed benchmark
    result."""
    files = {picture.svg: picture.draw() for picture in TERMINAL_PICTURES}
    for result in sorted(BENCHMARKS.glob("*.json")):
        files[result.with_suffix(".svg")] = bar_chart_svg(load_benchmark(result))
    return files


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docsgen.pictures", description=(__doc__ or "").splitlines()[0],
                                     epilog="Without options: draw the pictures from the committed texts and results.")
    parser.add_argument("--record-waterfall", action="store_true",
                        help=f"run examples/quickstart.py and `{WATERFALL.command}`, write "
                             f"{WATERFALL.text.relative_to(ROOT)}, then draw the pictures")
    parser.add_argument("--record-trace", metavar="TRACE_ID",
                        help=f"`{REFERENCE_APP.command} TRACE_ID --dir DIR` (a trace of the reference app: run "
                             f"./scripts/run-local.sh --once first), write {REFERENCE_APP.text.relative_to(ROOT)}, "
                             "then draw the pictures")
    parser.add_argument("--dir", type=Path,
                        help="with --record-trace: the directory `ragotel receive` wrote (default: var/telemetry, "
                             "where run-local's receiver writes)")
    args = parser.parse_args(argv)
    if args.dir is not None and not args.record_trace:
        parser.error("--dir goes with --record-trace")
    if args.record_waterfall:
        _write(WATERFALL.text, record_waterfall())
    if args.record_trace:
        try:
            recorded = record_trace(args.record_trace, args.dir or TELEMETRY)
        except (RuntimeError, ValueError) as exc:
            print(f"docsgen.pictures: {exc}", file=sys.stderr)
            return 1
        _write(REFERENCE_APP.text, recorded)
    for path, content in outputs().items():
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            _write(path, content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
