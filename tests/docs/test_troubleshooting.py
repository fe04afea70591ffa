"""``docs/troubleshooting.md`` names every diagnostic ragotel prints.

The messages are found by reading ragotel's source (``ast``), not by a list kept here: each logging call at INFO
and above, each message handed to one of the project's helpers that log it (``_Warnings.say``, the ``/metrics``
warning, the CLI's error line, the settings' ``Problem``), the strings of the functions that build a message
(``rejected_message``, ...), and the reasons that reach a warning or the CLI as a ``ValueError``. Each message
gets a stable key, its text before the first placeholder (or, where that is too short to tell it apart, its
longest fixed fragment), and the page must contain that key. Then a few of the diagnostics that matter most are
triggered for real and what was printed must match a message the page shows, with ``<placeholders>`` standing
for the variable parts.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ragotel._core import settings
from tests.docs.blocks import Line, find_blocks
from tests.otlp_collector_double import OtlpCollectorDouble
from tests.test_configure import EXPORT_ALL_AND_FLUSH, run_python
from tests.test_settings import QUIET, free_port, run_script

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ragotel"
PAGE = ROOT / "docs" / "troubleshooting.md"

FOUND_AT_LEAST = 70
"""The scan found 73 diagnostics when the page was written; this is that less a margin for messages merged or removed
since. A scan that finds fewer has stopped seeing a kind of call."""

LOG_METHODS = frozenset({"info", "warning", "warn", "error", "exception", "critical"})
"""Logger methods whose messages reach the user (DEBUG is left out)."""

MESSAGE_ARGS: Mapping[str, tuple[int, ...]] = {
    "say": (2,),  # configure's _Warnings.say(setting, value, message): one WARNING per (setting, value)
    "_warn": (1,),  # metrics_endpoint._warn(served_by, problem): the /metrics WARNING
    "_error": (1,),  # the CLI's "ragotel <command>: <message>" on stderr
    "Problem": (2, 3),  # settings.Problem(setting, value, reason, consequence): "... cannot be used (reason); ..."
    "PartlyUsable": (1, 2),  # settings.PartlyUsable(kept, reason, consequence)
}
"""The project's helpers that log (or carry into a logged message) one of their arguments, by position."""

PLACE_HELPERS: Mapping[str, int] = {"report_internal_error": 0}
"""Helpers that log one fixed message (``telemetry error in <place>``) naming the place they are given: the places
are counted, not looked for on the page (the message itself is, in ``safe.py``)."""

EXTRA_BUILDERS = frozenset({"_late_prometheus_reader", "below_floor"})
"""Functions whose returned (or yielded) strings are messages although no logging call names them: one is handed on
as a callable (``metrics_endpoint.offer``), one's results are joined into the message."""

RAISED_AS_MESSAGES = frozenset({"ragotel/_core/settings.py", "ragotel/cli/bench.py"})
"""Modules whose ``ValueError`` text is shown to the user: the reason in a setting's WARNING, the CLI's error."""

EXTERNAL: Mapping[str, str] = {"_format_message": "only instruments"}
"""Messages built outside ragotel and passed on: the callee's name, and the key the page must show."""

_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0+]*(?:\d+|\*)?(?:\.\d+)?[sdrifgeExXoc]")
_BRACES = re.compile(r"\{[^{}]*\}")
_PLACEHOLDER = "<*>"
_STRIP = " \t\n();:,.='\"`"
_KEY_CHARS = 60


@dataclass(frozen=True, slots=True)
class Message:
    path: str
    line: int
    template: str
    """The message with each variable part as ``<*>``."""
    key: str
    """What the page must contain; ``<*>`` in it stands for any ``<placeholder>`` of the page."""

    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(slots=True)
class Scan:
    messages: list[Message] = field(default_factory=list)
    places: list[tuple[str, int, str]] = field(default_factory=list)
    """``(path, line, place)`` of each ``report_internal_error`` call."""
    unresolved: list[str] = field(default_factory=list)
    """Calls whose message the scan cannot read: ``path:line: why``."""


# --- reading messages from source ----------------------------------------------------------------------------


def _parts(node: ast.expr) -> list[str] | None:
    """A string expression as its fixed parts, one more than its placeholders; None if it is not one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _PERCENT.split(node.value)
    if isinstance(node, ast.JoinedStr):
        parts, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                current += str(value.value)
            else:
                parts.append(current)
                current = ""
        return [*parts, current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _parts(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _parts(node.left), _parts(node.right)
        if left is None and right is None:
            return None
        left, right = left or ["", ""], right or ["", ""]
        return [*left[:-1], left[-1] + right[0], *right[1:]]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str)):
        return _BRACES.split(node.func.value.value)
    return None


def _clean(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"^ragotel:", "", text)
    return text.strip(_STRIP)


def _telling(text: str) -> bool:
    """Long enough to tell one message from another."""
    literal = text.replace(_PLACEHOLDER, "")
    return len(literal) >= 10 and " " in literal.strip()


def _cap(key: str) -> str:
    if len(key) <= _KEY_CHARS:
        return key
    cut = key[:_KEY_CHARS]
    return cut[: cut.rfind(" ")].rstrip(_STRIP) if " " in cut else cut


def key_of(parts: list[str]) -> str | None:
    """The text before the first placeholder; else the longest fixed fragment; else the fragments around the
    placeholders (``matches <*> traces``). None: nothing fixed worth a key (``"%s"``, ``"ragotel: %s"``)."""
    first = _clean(parts[0])
    if _telling(first):
        return _cap(first)
    longest = max((_clean(part) for part in parts), key=len)
    if _telling(longest):
        return _cap(longest)
    joined = _PLACEHOLDER.join(re.sub(r"\s+", " ", part) for part in parts)
    joined = re.sub(r"^ragotel(?=[:\s])", "", joined)
    while True:
        stripped = joined.strip(_STRIP)
        stripped = stripped.removeprefix(_PLACEHOLDER).removesuffix(_PLACEHOLDER)
        if stripped == joined:
            break
        joined = stripped
    return _cap(joined) if _telling(joined) else None


def _template(parts: list[str]) -> str:
    return _PLACEHOLDER.join(parts)


def _loggers(tree: ast.Module) -> set[str]:
    """Names bound to ``logging.getLogger(...)`` at module level."""
    names = set()
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "getLogger"):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


class _Scanner:
    def __init__(self, sources: Mapping[str, str]) -> None:
        self.trees = {path: ast.parse(source, filename=path) for path, source in sources.items()}
        self.defined: dict[str, list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]] = {}
        for path, tree in self.trees.items():
            for function in _functions(tree):
                self.defined.setdefault(function.name, []).append((path, function))
        self.scan = Scan()
        self._built: set[tuple[str, int]] = set()

    def run(self) -> Scan:
        for path, tree in self.trees.items():
            loggers = _loggers(tree)
            enclosing = {id(node): function for function in _functions(tree) for node in ast.walk(function)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    self._call(path, node, loggers, enclosing.get(id(node)))
                elif (isinstance(node, ast.Raise) and path in RAISED_AS_MESSAGES and isinstance(node.exc, ast.Call)
                      and _callee(node.exc) in ("ValueError", "TypeError") and node.exc.args):
                    self._message(path, node.exc.args[0], enclosing.get(id(node)))
            for name in EXTRA_BUILDERS:
                for where, function in self.defined.get(name, ()):
                    if where == path:
                        self._builder(where, function)
        return self.scan

    def _call(self, path: str, call: ast.Call, loggers: set[str],
              function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        func, name = call.func, _callee(call)
        if isinstance(func, ast.Attribute) and func.attr in LOG_METHODS and isinstance(func.value, ast.Name) and (
                func.value.id in loggers or (func.value.id == "warnings" and func.attr == "warn")):
            if call.args and not self._message(path, call.args[0], function):
                # "%s" or "ragotel: %s": the message is an argument, built elsewhere.
                for arg in call.args[1:]:
                    self._message(path, arg, function, passed_on=True)
        elif name == "print" and any(k.arg == "file" and ast.unparse(k.value) == "sys.stderr"
                                     for k in call.keywords):
            if call.args:
                self._message(path, call.args[0], function)
        elif name in MESSAGE_ARGS:
            for index in MESSAGE_ARGS[name]:
                if index < len(call.args):
                    self._message(path, call.args[index], function)
        elif name in PLACE_HELPERS and len(call.args) > PLACE_HELPERS[name]:
            parts = _parts(call.args[PLACE_HELPERS[name]])
            if parts is not None:
                self.scan.places.append((path, call.lineno, _template(parts)))

    def _message(self, path: str, node: ast.expr, function: ast.FunctionDef | ast.AsyncFunctionDef | None,
                 *, passed_on: bool = False, strings_only: bool = False) -> bool:
        """Record the message(s) ``node`` is; False when it has no fixed text of its own. ``strings_only``: a value
        in a builder or a variable, where anything but a string is no message."""
        if isinstance(node, ast.IfExp):
            found = [self._message(path, branch, function, strings_only=strings_only)
                     for branch in (node.body, node.orelse)]
            return any(found)
        parts = _parts(node)
        if parts is not None:
            key = key_of(parts)
            if key is not None:
                self.scan.messages.append(Message(path, node.lineno, _template(parts), key))
            return key is not None
        if strings_only:
            return False
        if isinstance(node, ast.Name) and function is not None:
            # A message put in a variable first: its assignments in the same function.
            for statement in ast.walk(function):
                if isinstance(statement, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == node.id for t in statement.targets):
                    self._message(path, statement.value, function, strings_only=True)
            return False
        if isinstance(node, ast.Call):
            name = _callee(node)
            if name in EXTERNAL:
                self.scan.messages.append(Message(path, node.lineno, f"({name}: built outside ragotel)",
                                                  EXTERNAL[name]))
                return True
            if name in ("str", "repr", "type", "len", "join", "rstrip", "strip"):
                return False
            found = self.defined.get(name or "", [])
            local = [(where, f) for where, f in found if where == path]
            if len(local or found) == 1:
                where, builder = (local or found)[0]
                self._builder(where, builder)
                return True
            if passed_on or not found:
                self.scan.unresolved.append(f"{path}:{node.lineno}: cannot tell what {ast.unparse(node)} returns; "
                                            "name its builder in EXTRA_BUILDERS or EXTERNAL")
        return False

    def _builder(self, path: str, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """Every string a message-building function returns, yields or assigns is (part of) a message."""
        if (path, function.lineno) in self._built:
            return
        self._built.add((path, function.lineno))
        for node in ast.walk(function):
            value = node.value if isinstance(node, (ast.Return, ast.Assign, ast.AugAssign, ast.Yield)) else None
            if value is not None and not (isinstance(value, ast.Constant) and value.value in ("", None)):
                self._message(path, value, None, strings_only=True)


def scan(sources: Mapping[str, str]) -> Scan:
    """The diagnostics in ``sources`` (path -> Python source)."""
    return _Scanner(sources).run()


def scan_package() -> Scan:
    return scan({path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
                 for path in sorted(PACKAGE.rglob("*.py"))})


# --- reading the page ----------------------------------------------------------------------------------------


def _flat(text: str) -> str:
    return " ".join(text.split())


def _key_pattern(key: str) -> re.Pattern[str]:
    """A key as found on the page: its ``<*>`` is any ``<placeholder>`` there."""
    return re.compile(r"\s*<[^<>\n]+>\s*".join(re.escape(_flat(part)) for part in key.split(_PLACEHOLDER)))


def missing(messages: list[Message], page: str) -> list[str]:
    """``path:line: key`` of each message whose key the page lacks."""
    flat = _flat(page)
    return [f"{m.where()}: {m.key!r} (from {m.template!r})" for m in messages if not _key_pattern(m.key).search(flat)]


def page_messages(page: str) -> list[str]:
    """Each line of the page's fenced blocks and each inline code span: where the page quotes a message."""
    lines = [Line(text, PAGE.name, number) for number, text in enumerate(page.split("\n"), start=1)]
    quoted = [line.strip() for block in find_blocks(lines, PAGE.name) for line in block.code.splitlines()]
    in_block = False
    for line in lines:
        if line.text.lstrip().startswith(("```", "~~~")):
            in_block = not in_block
        elif not in_block:
            quoted += re.findall(r"`([^`]+)`", line.text)
    return [q for q in quoted if q]


PROSE = frozenset({"reason", "consequence", "problem", "arguments", "differences", "status", "advice"})
"""Placeholders that stand for a fixed text of their own (a reason, a consequence, a status), not a value: what fills
them must be on the page too."""
SPACED = frozenset({"error", "value", "kept", "asked", "path", "dir", "directory", "served by", "configurator",
                    "calls", "names", "ids", "entries", "methods", "installed", "place", "message"})
"""Placeholders whose values may hold spaces (an error's text, a list, a path); any other value is one word, so that
a placeholder cannot swallow a message's fixed text."""


def _templates(page: str) -> Iterator[tuple[re.Pattern[str], list[str]]]:
    """Each message the page quotes as a pattern, with the names of its placeholders; a quote with hardly any fixed
    text (``<place>``, ``<setting>=<value>``) is no template."""
    for quoted in page_messages(page):
        flat = _flat(quoted)
        pieces = re.split(r"<[^<>]+>", flat)
        if len("".join(pieces).replace(" ", "")) >= 3:
            yield re.compile("(.+?)".join(re.escape(piece) for piece in pieces)), re.findall(r"<([^<>]+)>", flat)


def quoted_on_page(printed: str, page: str, *, depth: int = 0) -> bool:
    """Whether ``printed`` is one of the page's messages, each ``<placeholder>`` there standing for a value, or for
    a reason, consequence or status (:data:`PROSE`) that the page quotes too."""
    printed = _flat(printed)
    for pattern, names in _templates(page):
        match = pattern.fullmatch(printed)
        if match and all(_fills(name, value, page, depth) for name, value in zip(names, match.groups(), strict=True)):
            return True
    return False


def _fills(name: str, value: str, page: str, depth: int) -> bool:
    if name in PROSE:
        return depth < 3 and quoted_on_page(value, page, depth=depth + 1)
    return name in SPACED or not any(c.isspace() for c in value)


@pytest.fixture(scope="module")
def page() -> str:
    assert PAGE.exists(), f"{PAGE} is missing"
    return PAGE.read_text(encoding="utf-8")


# --- the scanner itself -------------------------------------------------------------------------------------

_SAMPLE = '''
import logging
import sys
logger = logging.getLogger("ragotel")

def rejected(endpoint, status):
    head = f"ragotel: {endpoint} answered {status}; they are dropped."
    return f"{head} Check the credentials in OTEL_EXPORTER_OTLP_HEADERS."

def run(port, say, exc):
    logger.warning("ragotel: cannot listen on %s (%s); the endpoint stays off", port, exc)
    logger.warning("ragotel: %s", rejected("http://x", 401))
    logger.debug("ragotel: not a diagnostic at all")
    say.say("PORT", port, f"ragotel: PORT={port!r} cannot be used ({exc}); the port stays off")
    report_internal_error("reading a result", exc)
    print(f"{port} matches {3} traces: {exc}", file=sys.stderr)
    message = "ragotel: a message put in a variable first" if port else f"ragotel: or this one {port}"
    logger.error(message)
    logger.warning("%s", somewhere_else())
'''


def test_the_scanner_reads_each_kind_of_call() -> None:
    found = scan({"ragotel/sample.py": _SAMPLE})
    keys = {m.key: m.line for m in found.messages}
    assert keys == {
        "cannot listen on": 11,
        "they are dropped": 7,  # the head, then the return: both parts of the message
        "Check the credentials in OTEL_EXPORTER_OTLP_HEADERS": 8,
        "the port stays off": 14,
        "matches <*> traces": 16,
        "a message put in a variable first": 17,
        "or this one": 17,
    }, keys
    assert found.places == [("ragotel/sample.py", 15, "reading a result")]
    (unresolved,) = found.unresolved
    assert unresolved.startswith("ragotel/sample.py:19: cannot tell what somewhere_else() returns")


def test_a_message_missing_from_a_page_is_named_by_file_and_line() -> None:
    found = scan({"ragotel/sample.py": _SAMPLE}).messages
    page = textwrap.dedent("""
        ```text
        ragotel: cannot listen on <port> (<error>); the endpoint stays off
        ragotel: <endpoint> answered <status>; they are dropped. Check the credentials in OTEL_EXPORTER_OTLP_HEADERS.
        ragotel: <setting>=<value> cannot be used (<reason>); the port stays off
        <id> matches <n> traces: <ids>
        ragotel: a message put in a variable first
        ```
        """)
    assert missing(found, page) == ["ragotel/sample.py:17: 'or this one' (from 'ragotel: or this one <*>')"]
    assert len(missing(found, "")) == len(found)
    assert quoted_on_page("ragotel: cannot listen on 9464 (Address in use); the endpoint stays off", page)
    assert not quoted_on_page("ragotel: cannot listen on 9464 (Address in use); the endpoint is on", page)


def test_a_printed_message_matches_the_page_in_its_fixed_parts_only() -> None:
    page = textwrap.dedent("""
        `<place>` matches nothing by itself.

        ```text
        ragotel: <setting>=<value> cannot be used (<reason>); <consequence>
        ```

        | reason | instead |
        | --- | --- |
        | `expected a port number from 0 to 65535` | `the Prometheus endpoint stays off` |
        """)
    assert quoted_on_page("ragotel: PORT=70000 cannot be used (expected a port number from 0 to 65535); "
                          "the Prometheus endpoint stays off", page)
    # a reason or a consequence the page does not show is not on the page, whatever the template
    assert not quoted_on_page("ragotel: PORT=70000 cannot be used (expected a port); the Prometheus endpoint "
                              "stays off", page)
    assert not quoted_on_page("ragotel: PORT=70000 cannot be used (expected a port number from 0 to 65535); "
                              "the port stays off", page)
    assert not quoted_on_page("anything at all", page)
    # a placeholder for a value does not stand for a message's words
    assert not quoted_on_page("ragotel: configure() was already called; ignoring PORT=70000 cannot be used "
                              "(expected a port number from 0 to 65535); the Prometheus endpoint stays off", page)


def test_the_scan_sees_every_kind_of_diagnostic_in_ragotel() -> None:
    found = scan_package()
    assert found.unresolved == []
    assert len(found.messages) >= FOUND_AT_LEAST, len(found.messages)
    where = {m.path for m in found.messages}
    for path in ("ragotel/_config/configure.py", "ragotel/_config/export.py", "ragotel/_core/settings.py",
                 "ragotel/_core/metrics_endpoint.py", "ragotel/_core/safe.py", "ragotel/instrumentation/_base.py",
                 "ragotel/instrumentation/auto.py", "ragotel/instrumentation/httpx.py", "ragotel/cli/__init__.py"):
        assert path in where, f"no diagnostic found in {path}"
    assert len(found.places) > 50  # report_internal_error: one message, many places


# --- the page -------------------------------------------------------------------------------------------------


def test_every_diagnostic_ragotel_prints_is_on_the_page(page: str) -> None:
    absent = missing(scan_package().messages, page)
    assert not absent, f"{PAGE.relative_to(ROOT)} lacks these messages:\n" + "\n".join(absent)


def test_every_setting_configure_can_refuse_is_on_the_page(page: str) -> None:
    """Each setting whose value is checked is named with what ragotel does instead of using a bad value."""
    flat = _flat(page)
    accepts_anything = (settings._text, settings._names)
    absent = []
    for row in (*settings.SETTINGS, *settings.ENVIRONMENT_ONLY):
        if (row.parse is None and row.env is None) or row.parse in accepts_anything:
            continue
        for needed in (row.env or f"{row.arg}=", row.when_invalid):
            if needed not in flat:
                absent.append(f"{row.arg}: {needed!r}")
    assert not absent, absent


# --- the diagnostics that matter most, for real -----------------------------------------------------------------


def _printed(stderr: str) -> list[str]:
    """The lines a run printed that are not a traceback's."""
    lines, in_traceback = [], False
    for line in stderr.splitlines():
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and not line.startswith(" "):
            in_traceback = False
            continue  # the exception's own line
        if not in_traceback and line.strip():
            lines.append(line)
    return lines


def _assert_on_page(printed: list[str], expected: tuple[str, ...], page: str) -> None:
    for needle in expected:
        assert any(needle in line for line in printed), (needle, printed)
    absent = [line for line in printed if not quoted_on_page(line, page)]
    assert not absent, "printed, but not on the page:\n" + "\n".join(absent)


_SETTINGS_AND_SECOND_CALLS = """
    import ragotel
    from fastapi import FastAPI
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    metrics.set_meter_provider(MeterProvider())  # the application's own, without a Prometheus reader
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    ragotel.configure(service_name="a", prometheus_port=9464, metric_readers=[InMemoryMetricReader()])
    ragotel.configure(service_name="b")
    app = FastAPI()
    ragotel.instrument_fastapi(app, metrics_path="/metrics")
    ragotel.instrument_httpx()
    ragotel.instrument_httpx(include_usage=False)
    """


def test_settings_it_cannot_use_and_second_calls_print_what_the_page_shows(page: str) -> None:
    proc = run_script(_SETTINGS_AND_SECOND_CALLS, {
        **QUIET, "OTEL_EXPORTER_PROMETHEUS_PORT": "notaport", "RAGOTEL_PRICES_FILE": "/missing/prices.toml",
        "OTEL_TRACES_EXPORTER": "zipkin", "RAGOTEL_CAPTURE_CONTENT": "maybe"})
    assert proc.returncode == 0, proc.stderr
    _assert_on_page(_printed(proc.stderr), (
        "OTEL_EXPORTER_PROMETHEUS_PORT='notaport' cannot be used", "RAGOTEL_PRICES_FILE='/missing/prices.toml'",
        "OTEL_TRACES_EXPORTER='zipkin'", "RAGOTEL_CAPTURE_CONTENT='maybe'", "already called",
        "add the Prometheus or extra metric readers", "without ragotel's metrics", "already instrumented",
    ), page)


def test_no_collector_prints_what_the_page_shows(page: str) -> None:
    proc = run_script("""
        import ragotel
        ragotel.configure(service_name="script")
        with ragotel.retrieval("search"):
            pass
        """, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    assert proc.returncode == 0, proc.stderr
    _assert_on_page(_printed(proc.stderr), ("nothing answers there",), page)


def test_a_collector_refusing_the_credentials_prints_what_the_page_shows(page: str) -> None:
    with OtlpCollectorDouble(status=401) as collector:
        out = run_python(EXPORT_ALL_AND_FLUSH, env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
    _assert_on_page(out["warnings"], ("answered HTTP 401 to traces",), page)


def test_the_cli_prints_what_the_page_shows(page: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ragotel.cli import main

    assert main(["trace", "--dir", str(tmp_path / "none")]) == 1
    (tmp_path / "spans.jsonl").write_text("")
    assert main(["trace", "--dir", str(tmp_path)]) == 1
    assert main(["bench", "compare", str(tmp_path / "absent.json")]) == 1
    printed = capsys.readouterr().err.splitlines()
    _assert_on_page(printed, ("no spans file at", "no spans in", "cannot read results"), page)

