"""The documentation's tables, each built from what defines it.

* settings (docs/reference/settings.md): the rows of :mod:`ragotel._core.settings`;
* names (docs/reference/names.md): :mod:`ragotel.semconv`, each name with its docstring; metrics as
  ``ragotel._core.instruments`` creates them in each GenAI mode, spans as the six steps start them;
* ``error.type`` values (docs/reference/error-types.md): :data:`ragotel._core.errors.DOCUMENTED`;
* the six steps (docs/guide/steps.md): their signatures and ``help()`` text;
* panels (docs/dashboards.md): the dashboards as :mod:`dashboards.boards` builds them.

Links in a table are written relative to ``docs/``; :func:`docsgen.sections.relink` makes them relative to the
page. Docstrings are reStructuredText: :func:`markdown` turns their literals and references into Markdown.
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from opentelemetry.metrics import NoOpMeter

import ragotel
from dashboards.boards import BOARDS
from dashboards.panels import encode
from dashboards.queries import PromQuery
from docsgen import pictures
from ragotel import semconv as sc
from ragotel._core import errors, settings
from ragotel._core import instruments as _instruments
from ragotel._steps.spec import Spec


# --- Markdown ------------------------------------------------------------------------------------------
def cell(text: str) -> str:
    """``text`` as one table cell: one line, pipes escaped."""
    # A pipe splits a cell unless escaped, but inside a code span Python-Markdown keeps the backslash (a reader
    # would copy it): escape the pipes between code spans only.
    parts = " ".join(text.split()).split("`")
    return "`".join(part if index % 2 else part.replace("|", "\\|") for index, part in enumerate(parts))


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def code(value: object) -> str:
    return f"`{value}`"


_ROLE = re.compile(r":(?:class|data|func|mod|meth|attr):`~?([^`]+)`")
# A docstring names another constant or enumeration by its Python name (``GEN_AI_WORKFLOW_NAME``, ``TokenType``).
_CONSTANT = re.compile(r"``([A-Z][A-Za-z0-9_]*)``")


def markdown(text: str, resolve: Callable[[str], str | None] = lambda _: None) -> str:
    """A docstring's reStructuredText as one line of Markdown: double-backtick literals become code spans, and a
    cross-reference (``:class:``, ``:data:``, or a constant's or class's name as a literal) what ``resolve`` makes
    of its target, else the target as code."""
    text = _ROLE.sub(lambda found: resolve(found.group(1)) or code(found.group(1)), text)
    text = _CONSTANT.sub(lambda found: resolve(found.group(1)) or f"``{found.group(1)}``", text)
    return " ".join(text.replace("``", "`").split())


def _semconv_reference(name: str) -> str | None:
    """A reference in a :mod:`ragotel.semconv` docstring: an enumeration's values, a constant's value."""
    found = getattr(sc, name, None)
    if isinstance(found, type) and issubclass(found, enum.Enum):
        return ", ".join(code(member.value) for member in found)
    if isinstance(found, str):
        return code(found)
    return None


# --- ragotel.semconv ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Name:
    """One name :mod:`ragotel.semconv` defines: its constant, the section it is declared in, its docstring."""

    constant: str
    value: str
    section: str
    doc: str

    @property
    def meaning(self) -> str:
        return markdown(self.doc, _semconv_reference)


_SECTION = re.compile(r"^# --- (.+?) -*$")
_DOTTED = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


@cache
def names() -> tuple[Name, ...]:
    """Every string constant of :mod:`ragotel.semconv`, in the order it declares them."""
    source = Path(inspect.getfile(sc)).read_text(encoding="utf-8")
    sections = [(number, heading.group(1).replace("``", "`")) for number, line in enumerate(source.splitlines(), 1)
                if (heading := _SECTION.match(line))]
    body = ast.parse(source).body
    found: list[Name] = []
    for index, node in enumerate(body):
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if not isinstance(target, ast.Name) or not isinstance(value := getattr(sc, target.id, None), str):
            continue
        following = body[index + 1] if index + 1 < len(body) else None
        doc = following.value.value if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                                        and isinstance(following.value.value, str)) else ""
        section = next((title for number, title in reversed(sections) if number < node.lineno), "")
        found.append(Name(target.id, value, section, doc))
    return tuple(found)


def _by_value() -> dict[str, Name]:
    return {name.value: name for name in names()}


def _mode(value: str) -> str:
    return "default" if value in sc.DEFAULT_ONLY else "latest" if value in sc.LATEST_ONLY else "both"


# --- metric instruments, as each mode creates them ------------------------------------------------------
@dataclass(frozen=True)
class Instrument:
    name: str
    kind: str
    """``histogram``, ``counter``, ``gauge`` or ``updowncounter``: what the exporters make of it."""
    unit: str

    @property
    def prometheus(self) -> str:
        return sc.prometheus_name(self.name, self.unit, counter=self.kind == "counter")


_KINDS = {
    "create_counter": "counter", "create_observable_counter": "counter", "create_histogram": "histogram",
    "create_gauge": "gauge", "create_observable_gauge": "gauge", "create_up_down_counter": "updowncounter",
    "create_observable_up_down_counter": "updowncounter",
}


class _Recording(NoOpMeter):
    """A meter that notes every instrument made through it (each ``create_*`` of ``_KINDS``, below)."""

    def __init__(self) -> None:
        super().__init__("docsgen")
        self.made: list[Instrument] = []


def _noting(method: str) -> Callable[..., Any]:
    """``NoOpMeter``'s ``method``, noting the instrument's name, kind and unit first."""
    create = getattr(NoOpMeter, method)

    def noting(self: _Recording, *args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(create).bind(self, *args, **kwargs)
        self.made.append(Instrument(bound.arguments["name"], _KINDS[method], bound.arguments.get("unit", "")))
        return create(self, *args, **kwargs)

    return noting


for _method in _KINDS:
    setattr(_Recording, _method, _noting(_method))


@cache
def instruments(latest: bool) -> tuple[Instrument, ...]:
    """Every metric instrument ragotel creates in one GenAI mode (the default, or ``gen_ai_latest_experimental``)."""
    meter = _Recording()
    _instruments._build(meter, latest)
    return tuple(meter.made)


_DECLARED = re.compile(r"^(Histogram|Counter|Gauge|UpDownCounter), ([^:]+): ")


def declared(doc: str) -> tuple[str, str] | None:
    """The instrument kind and unit a metric's docstring starts with (``Histogram, s: ...``)."""
    found = _DECLARED.match(doc)
    return (found.group(1).lower(), found.group(2)) if found else None


def metrics() -> str:
    default, latest = ({i.name: i for i in instruments(mode)} for mode in (False, True))
    order = {name.value: index for index, name in enumerate(names())}
    by_value = _by_value()
    rows = []
    for name in sorted({**default, **latest}, key=lambda n: (order.get(n, len(order)), n)):
        made = default.get(name) or latest[name]
        mode = "both" if name in default and name in latest else "default" if name in default else "latest"
        doc = by_value[name].doc if name in by_value else ""
        meaning = markdown(_DECLARED.sub("", doc), _semconv_reference)
        meaning = meaning[:1].upper() + meaning[1:]
        rows.append((code(name), made.kind, code(made.unit), code(made.prometheus), mode, meaning))
    return table(("metric", "instrument", "unit", "Prometheus name", "mode", "what it measures"), rows)


def listed(name: Name) -> bool:
    """An attribute or event name, which the names page lists from :mod:`ragotel.semconv` (metrics it lists from the
    instruments; units, severities and values it does not list)."""
    return bool(_DOTTED.match(name.value)) and name.value not in {i.name for m in (False, True) for i in instruments(m)}


def _event(name: Name) -> bool:
    return name.constant.endswith("_EVENT")


def attributes() -> str:
    """One table per section of :mod:`ragotel.semconv`: every attribute name, its mode, its label, its meaning."""
    out: list[str] = []
    sections: dict[str, list[Name]] = {}
    for name in names():
        if listed(name) and not _event(name):
            sections.setdefault(name.section, []).append(name)
    for section, found in sections.items():
        rows = [(code(n.value), _mode(n.value),
                 code(n.value.replace(".", "_")) if n.value in sc.METRIC_ATTRIBUTES else "", n.meaning)
                for n in found]
        out.append(f"### {section}\n\n" + table(("attribute", "mode", "metric label", "meaning"), rows))
    return "\n".join(out)


def events() -> str:
    rows = [(code(n.value), _mode(n.value), n.meaning) for n in names() if listed(n) and _event(n)]
    return table(("event", "mode", "what it is"), rows)


# --- the six steps -----------------------------------------------------------------------------------------
STEPS: tuple[Callable[..., Any], ...] = (ragotel.retrieval, ragotel.embedding, ragotel.rerank, ragotel.prompt,
                                         ragotel.generation, ragotel.pipeline)
COMMON = ("attributes", "extractor", "capture_content")
"""Keywords every step takes."""
_SPAN = re.compile(r"The span is ``([^`]+)``(?: \(((?:[^()]|\([^()]*\))*)\))?")


def keywords(step: Callable[..., Any]) -> list[inspect.Parameter]:
    """A step's own keywords: neither its name nor the ones every step takes."""
    return [p for p in inspect.signature(step).parameters.values() if p.kind is p.KEYWORD_ONLY and p.name not in COMMON]


def _sample(parameter: inspect.Parameter) -> object:
    annotation = str(parameter.annotation)
    if "Operation" in annotation:
        return sc.Operation.TEXT_COMPLETION
    return 3 if "int" in annotation else 0.5 if "float" in annotation else "x"


def _started(step: Callable[..., Any], given: Mapping[str, object]) -> dict[str, object]:
    """The span attributes a step starts with, given these keywords."""
    spec = step("step", **given)
    assert isinstance(spec, Spec), spec
    found: dict[str, object] = dict(spec.span_attributes)
    if spec.conversation_id is not None:
        found[sc.GEN_AI_CONVERSATION_ID] = spec.conversation_id
    return found


def set_by(step: Callable[..., Any]) -> dict[str, list[str]]:
    """Each keyword of a step → the span attributes it sets (alone, or beside the others where it needs them)."""
    every = {p.name: _sample(p) for p in keywords(step)}
    bare = _started(step, {})
    out = {}
    for name, value in every.items():
        alone = _started(step, {name: value})
        found = [key for key, v in alone.items() if bare.get(key) != v]
        if not found:
            full = _started(step, every)
            without = _started(step, {k: v for k, v in every.items() if k != name})
            found = [key for key, v in full.items() if without.get(key) != v]
        out[name] = found
    return out


def span_name(step: Callable[..., Any]) -> str:
    """The span name a step's ``help()`` gives, with its parenthesis (``retrieval {name}`` without a data source)."""
    found = _SPAN.search(" ".join((inspect.getdoc(step) or "").split()))
    assert found, f"{step.__name__}: its docstring names no span (The span is ``...``)"
    return markdown(f"``{found.group(1)}``" + (f" ({found.group(2)})" if found.group(2) else ""))


def _paragraph(step: Callable[..., Any], verb: str) -> str:
    """The paragraph of a step's docstring that starts with ``verb``, without it."""
    for paragraph in (inspect.getdoc(step) or "").split("\n\n"):
        if paragraph.startswith(f"{verb} "):
            return markdown(paragraph[len(verb) + 1:])
    return "—"


def steps() -> str:
    rows = []
    for step in STEPS:
        given = ", ".join(f"{code(name)} ({', '.join(map(code, keys))})" if keys else code(name)
                          for name, keys in set_by(step).items())
        rows.append((code(f"{step.__name__}(name)"), span_name(step), given, _paragraph(step, "Reads"),
                     _paragraph(step, "Records")))
    header = ("step", "span", f"keywords (all also take {', '.join(map(code, COMMON))})", "reads", "records")
    return table(header, rows)


def spans() -> str:
    rows = []
    for step in STEPS:
        spec = step("step")
        assert isinstance(spec, Spec), spec
        every = {p.name: _sample(p) for p in keywords(step)}
        started = _started(step, every)
        operation = spec.operation.value if spec.operation is not None else None
        keys = ", ".join(code(f"{key}={operation}" if key == sc.GEN_AI_OPERATION_NAME else key) for key in started)
        # The latest conventions rename some of them (a pipeline is an agent invocation).
        renamed = [f"{code(new)} for {code(old)}" for old, new in
                   zip(started, _instruments.as_agent(dict.fromkeys(started, "")), strict=True) if old != new]
        if renamed:
            keys += f"; latest mode: {', '.join(renamed)}"
        rows.append((span_name(step), code(f"ragotel.{step.__name__}"), spec.span_kind.name, keys))
    return table(("span", "step", "span kind", "attributes it starts with"), rows)


# --- settings ----------------------------------------------------------------------------------------------
def _default(value: object) -> str:
    if value is None or (isinstance(value, (tuple, frozenset)) and not value):
        return "—"
    return code(value)


def _accepts(row: settings.Setting) -> str:
    """The first paragraph of the parser's docstring, as a phrase."""
    if row.parse is None:
        return "an object, from code" if row.env is None else "a path (environment) or an object (code)"
    text = markdown((inspect.getdoc(row.parse) or "").split("\n\n", 1)[0]).removesuffix(".")
    return text[:1].lower() + text[1:] if text[:2].istitle() or text[:2] == "A " else text


def _variables(row: settings.Setting) -> str:
    if row.env is None:
        return "—"
    return code(row.env) + "".join(f" (or {code(alias)})" for alias in row.aliases)


def _unusable(row: settings.Setting, *, argument: bool = True) -> str:
    """What an unusable value leaves: an environment value falls back to the argument first, where it may."""
    if row.parse is None and row.when_invalid == "the default is used":
        return "—"
    if not row.fallback:
        return markdown(row.when_invalid)
    then = "the default" if row.when_invalid == "the default is used" else markdown(row.when_invalid)
    return f"the argument, else {then.removesuffix(' is used')}" if argument and row.env is not None else then


def settings_table() -> str:
    rows = [(code(f"{row.arg}="), _variables(row), _default(row.default), markdown(row.doc), _accepts(row),
             _unusable(row)) for row in settings.SETTINGS]
    return table(("argument", "environment variable", "default", "what it does", "accepts",
                  "an unusable value: one WARNING, then"), rows)


def environment_settings() -> str:
    rows = [(_variables(row), _default(row.default), markdown(row.doc), _accepts(row), _unusable(row, argument=False))
            for row in settings.ENVIRONMENT_ONLY]
    return table(("environment variable", "default", "what it does", "accepts", "an unusable value: one WARNING, then"),
                 rows)


def sdk_settings() -> str:
    return ", ".join(code(name) for name in settings.SDK_READS) + "\n"


# --- error.type --------------------------------------------------------------------------------------------
def error_types() -> str:
    def values(row: errors.Documented) -> str:
        if row.label:
            return row.label
        return ", ".join(map(code, row.values)) + (", ..." if row.examples else "")

    return table(("`error.type`", "when", "where"), [(values(row), row.when, row.where) for row in errors.DOCUMENTED])


# --- dashboards ----------------------------------------------------------------------------------------------
def _shows(uid: str, panel: Mapping[str, Any]) -> str:
    """A panel's description, else the metrics (or TraceQL) its queries read."""
    if panel.get("description"):
        return str(panel["description"])
    read: set[str] = set()
    traceql: list[str] = []
    for target in panel.get("targets", []):
        if target.get("expr"):
            read |= PromQuery(f"{uid} / {panel.get('title')}", target["expr"]).metrics()
        elif target.get("query"):
            traceql.append(code(target["query"]))
    return ", ".join([*map(code, sorted(read)), *traceql]) or "—"


def panels() -> str:
    out = []
    for uid, build in BOARDS.items():
        board = json.loads(encode(build()))
        rows, section = [], "—"
        for panel in board.get("panels", []):
            if panel.get("type") == "row":
                section = panel.get("title", "")
                inner = panel.get("panels") or []
            else:
                inner = [panel]
            rows += [(section, panel_.get("title", ""), _shows(uid, panel_)) for panel_ in inner]
        out.append(f"### {board['title']} (`{uid}`)\n\n{board.get('description', '')}\n\n"
                   + table(("row", "panel", "shows"), rows))
    return "\n".join(out)


# -- benchmark figures: the tables beside the charts, from the same committed results (docs/assets/benchmarks/)

def _ns(value: float) -> str:
    """Nanoseconds as the tables print them: thousands apart, milliseconds from 10 ms on."""
    return f"{value / 1e6:.2f} ms" if value >= 1e7 else f"{round(value):,}".replace(",", " ")


def _measured(document: Mapping[str, Any]) -> str:
    return (f"Measured with `{document['command']}` on {document['machine']}, Python {document['python']}, "
            f"ragotel {document['ragotel']}: {document['method']}.\n\n")


def overhead_figures() -> str:
    """benchmarks/overhead.py --json: each step against the bare span (a), span + one record (b), the identical
    telemetry by hand (c) and what a careful person writes (h)."""
    document = json.loads((pictures.BENCHMARKS / "overhead.json").read_text(encoding="utf-8"))
    rows = [(row["scenario"], _ns(row["span"]), _ns(row["span_hist"]), _ns(row["by_hand"]), _ns(row["careful"]),
             _ns(row["ragotel"]), f"{row['ragotel'] / row['span_hist']:.2f}×", f"**{row['ratio']:.2f}×**",
             f"{row['ragotel'] / row['careful']:.2f}×") for row in document["rows"]]
    return _measured(document) + table(
        ("ns per call", "(a) span", "(b) +hist", "(c) same", "(h) careful", "ragotel", "× (b)", "× (c)", "× (h)"),
        rows)


def integration_figures() -> str:
    """benchmarks/integrations.py --json: each integration against the same span and record written by hand."""
    document = json.loads((pictures.BENCHMARKS / "integrations.json").read_text(encoding="utf-8"))
    rows = [(row["scenario"], _ns(row["plain"]), _ns(row["by_hand"]), _ns(row["ragotel"]),
             _ns(row["ragotel"] - row["plain"]), f"**{row['ratio']:.2f}×**") for row in document["rows"]]
    return _measured(document) + table(
        ("ns per call", "plain", "by hand", "ragotel", "ragotel − plain", "× by hand"), rows)


# -- the command line, from its own parser

def _options(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """A command's arguments and their help (which states each default)."""
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        flags = ", ".join(action.option_strings) or (action.metavar if isinstance(action.metavar, str) else action.dest)
        if action.option_strings and action.nargs != 0:
            flags += f" {action.metavar or action.dest.upper()}"
        rows.append((code(flags), (action.help or "").replace("%(default)s", str(action.default))))
    return rows


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(command line, what it does, parser)`` for every command under ``parser``, sub-commands included."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((f"{prefix} {name}", sub.description or helps.get(name, ""), sub))
                found += _commands(sub, f"{prefix} {name}")
    return found


def cli_reference() -> str:
    """Every ``ragotel`` command with its options, read off the parser ``ragotel --help`` prints."""
    from ragotel.cli import build_parser

    parts = []
    for command, does, parser in _commands(build_parser(), "ragotel"):
        parts.append(f"### `{command}`\n\n{markdown(does)}\n")
        rows = _options(parser)
        if rows:
            parts.append(table(("argument", "what it does"), rows))
    return "\n".join(parts)
