"""A small parser and checker for Grafana Alloy's configuration syntax, enough to test deploy/alloy.

It reads blocks (``name.parts "label" { ... }``), attributes (``name = expr``) and expressions
(literals, lists, objects, references, calls, operators), then checks the wiring: every reference
names a component that is defined, through an export its component family really has.
No Alloy binary is involved; the component tables below are what the checks know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# ---- Syntax -----------------------------------------------------------------------------------------


class AlloySyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, op, eof
    value: Any
    line: int


_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[{}\[\]().,=+\-*/%^<>!?:])
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'"}


def _unquote(text: str, line: int) -> str:
    out, i = [], 1
    while i < len(text) - 1:
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1]
            if nxt not in _ESCAPES:
                raise AlloySyntaxError(f"line {line}: unknown escape \\{nxt}")
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, line = 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise AlloySyntaxError(f"line {line}: unexpected character {text[pos]!r}")
        kind, value = match.lastgroup, match.group()
        if kind == "string":
            tokens.append(Token("string", _unquote(value, line), line))
        elif kind == "raw":
            tokens.append(Token("string", value[1:-1], line))
        elif kind == "number":
            tokens.append(Token("number", float(value) if "." in value or "e" in value.lower() else int(value), line))
        elif kind in ("ident", "op"):
            tokens.append(Token(kind, value, line))
        line += value.count("\n")
        pos = match.end()
    tokens.append(Token("eof", None, line))
    return tokens


# Expressions
@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Ref:
    """A dotted identifier used as a value: a component export, argument.X.value, constants.X."""

    path: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Call:
    func: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class ObjectExpr:
    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Any


@dataclass(frozen=True)
class Index:
    target: Any
    index: Any


@dataclass
class Attribute:
    name: str
    value: Any
    line: int


@dataclass
class Block:
    name: str
    label: str | None
    body: list[Attribute | Block]
    line: int

    def attr(self, name: str) -> Any:
        """The expression of attribute ``name`` (None when absent)."""
        return next((s.value for s in self.body if isinstance(s, Attribute) and s.name == name), None)

    def blocks(self, name: str | None = None) -> list[Block]:
        return [s for s in self.body if isinstance(s, Block) and (name is None or s.name == name)]

    def walk(self) -> Iterator[Block]:
        yield self
        for child in self.blocks():
            yield from child.walk()

    @property
    def key(self) -> str:
        return f'{self.name} "{self.label}"' if self.label is not None else self.name


_PRECEDENCE = {
    "||": 1, "&&": 2,
    "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "^": 6,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str, value: str | None = None) -> Token:
        tok = self.next()
        if tok.kind != kind or (value is not None and tok.value != value):
            want = value or kind
            raise AlloySyntaxError(f"line {tok.line}: expected {want!r}, found {tok.value!r}")
        return tok

    def at(self, kind: str, value: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (value is None or tok.value == value)

    # body := (attribute | block)*
    def body(self, closing: str | None) -> list[Attribute | Block]:
        out: list[Attribute | Block] = []
        while True:
            if closing is None and self.at("eof"):
                return out
            if closing is not None and self.at("op", closing):
                self.next()
                return out
            tok = self.expect("ident")
            if self.at("op", "="):
                self.next()
                out.append(Attribute(tok.value, self.expr(), tok.line))
                continue
            parts = [tok.value]
            while self.at("op", "."):
                self.next()
                parts.append(self.expect("ident").value)
            label = self.next().value if self.at("string") else None
            self.expect("op", "{")
            out.append(Block(".".join(parts), label, self.body("}"), tok.line))

    def expr(self, min_prec: int = 0) -> Any:
        left = self.unary()
        while True:
            tok = self.peek()
            prec = _PRECEDENCE.get(tok.value) if tok.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.next()
            left = BinOp(tok.value, left, self.expr(prec + 1))

    def unary(self) -> Any:
        if self.at("op", "!") or self.at("op", "-"):
            op = self.next().value
            return Unary(op, self.unary())
        return self.postfix(self.primary())

    def postfix(self, node: Any) -> Any:
        while True:
            if self.at("op", "["):
                self.next()
                idx = self.expr()
                self.expect("op", "]")
                node = Index(node, idx)
            elif self.at("op", ".") and isinstance(node, (Index, Call)):
                self.next()
                node = Index(node, Literal(self.expect("ident").value))
            else:
                return node

    def primary(self) -> Any:
        tok = self.next()
        if tok.kind in ("string", "number"):
            return Literal(tok.value)
        if tok.kind == "ident":
            if tok.value in ("true", "false"):
                return Literal(tok.value == "true")
            if tok.value == "null":
                return Literal(None)
            path = [tok.value]
            while self.at("op", ".") and self.peek(1).kind == "ident":
                self.next()
                path.append(self.next().value)
            if self.at("op", "("):
                self.next()
                args = []
                while not self.at("op", ")"):
                    args.append(self.expr())
                    if not self.at("op", ")"):
                        self.expect("op", ",")
                self.next()
                return Call(tuple(path), tuple(args))
            return Ref(tuple(path), tok.line)
        if tok.kind == "op" and tok.value == "(":
            inner = self.expr()
            self.expect("op", ")")
            return inner
        if tok.kind == "op" and tok.value == "[":
            items = []
            while not self.at("op", "]"):
                items.append(self.expr())
                if not self.at("op", "]"):
                    self.expect("op", ",")
            self.next()
            return ListExpr(tuple(items))
        if tok.kind == "op" and tok.value == "{":
            fields = []
            while not self.at("op", "}"):
                key = self.next()
                if key.kind not in ("ident", "string"):
                    raise AlloySyntaxError(f"line {key.line}: object key expected, found {key.value!r}")
                self.expect("op", "=")
                fields.append((key.value, self.expr()))
                if not self.at("op", "}"):
                    self.expect("op", ",")
            self.next()
            return ObjectExpr(tuple(fields))
        raise AlloySyntaxError(f"line {tok.line}: unexpected {tok.value!r}")


def parse(text: str) -> list[Attribute | Block]:
    """The top-level statements of an Alloy file; raises AlloySyntaxError."""
    return _Parser(text).body(None)


def refs(node: Any) -> Iterator[Ref]:
    """Every reference inside an expression, attribute or block."""
    if isinstance(node, Ref):
        yield node
    elif isinstance(node, Attribute):
        yield from refs(node.value)
    elif isinstance(node, Block):
        for stmt in node.body:
            yield from refs(stmt)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from refs(arg)
    elif isinstance(node, ListExpr):
        for item in node.items:
            yield from refs(item)
    elif isinstance(node, ObjectExpr):
        for _, value in node.fields:
            yield from refs(value)
    elif isinstance(node, BinOp):
        yield from refs(node.left)
        yield from refs(node.right)
    elif isinstance(node, Unary):
        yield from refs(node.operand)
    elif isinstance(node, Index):
        yield from refs(node.target)
        yield from refs(node.index)


def evaluate(node: Any, env: Mapping[str, str] | None = None) -> Any:
    """Value of a constant expression (literals, sys.env, coalesce, encoding.from_json, + and comparisons).

    References evaluate to themselves, so ``[x.y.input]`` gives a list of Ref.
    """
    env = env or {}
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        return node
    if isinstance(node, ListExpr):
        return [evaluate(i, env) for i in node.items]
    if isinstance(node, ObjectExpr):
        return {k: evaluate(v, env) for k, v in node.fields}
    if isinstance(node, Call):
        args = [evaluate(a, env) for a in node.args]
        if node.func == ("sys", "env"):
            return env.get(args[0], "")
        if node.func == ("encoding", "from_json"):
            return json.loads(args[0])
        if node.func == ("coalesce",):
            return next((a for a in args if a not in (None, "", [], {})), args[-1] if args else None)
        raise ValueError(f"cannot evaluate call {'.'.join(node.func)}")
    if isinstance(node, BinOp):
        left, right = evaluate(node.left, env), evaluate(node.right, env)
        ops = {
            "+": lambda a, b: a + b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
            "&&": lambda a, b: a and b, "||": lambda a, b: a or b,
        }
        if node.op not in ops:
            raise ValueError(f"cannot evaluate operator {node.op}")
        return ops[node.op](left, right)
    if isinstance(node, Unary) and node.op == "!":
        return not evaluate(node.operand, env)
    raise ValueError(f"cannot evaluate {node!r}")


# ---- Components -------------------------------------------------------------------------------------

# Exports by component family (longest prefix wins), from Alloy's component reference.
EXPORTS: dict[str, frozenset[str]] = {
    "otelcol.receiver.": frozenset(),
    "otelcol.processor.": frozenset({"input"}),
    "otelcol.exporter.": frozenset({"input"}),
    "otelcol.connector.": frozenset({"input"}),
    "otelcol.auth.": frozenset({"handler"}),
    "otelcol.extension.": frozenset(),
    "prometheus.remote_write": frozenset({"receiver"}),
    "prometheus.relabel": frozenset({"receiver", "rules"}),
    "prometheus.scrape": frozenset(),
    "prometheus.exporter.": frozenset({"targets"}),
    "prometheus.operator.": frozenset(),
    "loki.write": frozenset({"receiver"}),
    "loki.process": frozenset({"receiver"}),
    "loki.relabel": frozenset({"receiver", "rules"}),
    "loki.echo": frozenset({"receiver"}),
    "loki.source.": frozenset(),
    "discovery.relabel": frozenset({"output", "rules"}),
    "discovery.": frozenset({"targets"}),
    "local.file_match": frozenset({"targets"}),
    "local.file": frozenset({"content"}),
    "remote.kubernetes.": frozenset({"data"}),
}

# Component names the configs may use; a misspelt one is an error, not a silent new family.
KNOWN_COMPONENTS = frozenset({
    "otelcol.receiver.otlp", "otelcol.receiver.prometheus", "otelcol.receiver.loki",
    "otelcol.processor.memory_limiter", "otelcol.processor.batch", "otelcol.processor.k8sattributes",
    "otelcol.processor.transform", "otelcol.processor.attributes", "otelcol.processor.filter",
    "otelcol.processor.resourcedetection", "otelcol.processor.tail_sampling",
    "otelcol.processor.deltatocumulative",
    "otelcol.exporter.otlp", "otelcol.exporter.otlphttp", "otelcol.exporter.prometheus",
    "otelcol.exporter.loki", "otelcol.exporter.debug", "otelcol.exporter.loadbalancing",
    "otelcol.connector.spanmetrics", "otelcol.connector.servicegraph", "otelcol.connector.host_info",
    "prometheus.remote_write", "prometheus.scrape", "prometheus.relabel", "prometheus.exporter.self",
    "prometheus.exporter.unix",
    "loki.write", "loki.process", "loki.relabel", "loki.echo",
    "loki.source.kubernetes", "loki.source.docker", "loki.source.file", "loki.source.podlogs",
    "discovery.kubernetes", "discovery.docker", "discovery.relabel", "discovery.dns", "discovery.http",
    "local.file", "local.file_match",
})

# Top-level blocks that configure Alloy or modules rather than define components.
CONFIG_BLOCKS = frozenset({
    "logging", "tracing", "http", "livedebugging", "remotecfg", "foreach",
    "import.file", "import.git", "import.http", "import.string", "declare", "argument", "export",
})

# Standard-library namespaces: their members are functions or constants, never components.
STDLIB = frozenset({"sys", "constants", "encoding", "string", "array", "json_path", "convert", "file", "coalesce",
                    "concat", "format", "join", "env", "nonsensitive", "split", "to_lower", "to_upper", "trim"})


def exports_of(name: str) -> frozenset[str] | None:
    best = max((p for p in EXPORTS if name == p or (p.endswith(".") and name.startswith(p))), key=len, default=None)
    return EXPORTS[best] if best is not None else None


@dataclass
class Component:
    name: str
    label: str
    block: Block
    exports: frozenset[str]


@dataclass
class Scope:
    """Components visible to each other: one file's top level, or one declare block's body."""

    where: str
    statements: list[Attribute | Block]
    components: dict[tuple[str, str], Component] = field(default_factory=dict)
    arguments: dict[str, Block] = field(default_factory=dict)


@dataclass
class Module:
    """A parsed file and what it declares (declare name -> declare block)."""

    path: str
    statements: list[Attribute | Block]
    declares: dict[str, Block]


def load_module(path: str, text: str) -> Module:
    statements = parse(text)
    declares = {b.label: b for b in statements if isinstance(b, Block) and b.name == "declare" and b.label}
    return Module(path, statements, declares)


def _declare_exports(declare: Block) -> frozenset[str]:
    return frozenset(b.label for b in declare.blocks("export") if b.label)


def build_scope(
    where: str, statements: list[Attribute | Block], imports: Mapping[str, Module]
) -> tuple[Scope, list[str]]:
    """Collect the components of one scope; ``imports`` maps import labels to the modules they load."""
    scope, problems = Scope(where, statements), []
    for stmt in statements:
        if isinstance(stmt, Attribute):
            problems.append(f"{where}:{stmt.line}: attribute {stmt.name} outside any block")
            continue
        if stmt.name in CONFIG_BLOCKS:
            if stmt.name == "argument" and stmt.label:
                scope.arguments[stmt.label] = stmt
            continue
        if stmt.label is None:
            problems.append(f"{where}:{stmt.line}: component {stmt.name} has no label")
            continue
        head, _, declared = stmt.name.partition(".")
        if head in imports:
            module = imports[head]
            if declared not in module.declares:
                problems.append(f"{where}:{stmt.line}: {stmt.name}: module {module.path} declares no {declared!r}")
                continue
            exports = _declare_exports(module.declares[declared])
        else:
            if stmt.name not in KNOWN_COMPONENTS:
                problems.append(f"{where}:{stmt.line}: unknown component {stmt.name}")
                continue
            exports = exports_of(stmt.name) or frozenset()
        key = (stmt.name, stmt.label)
        if key in scope.components:
            problems.append(f"{where}:{stmt.line}: {stmt.name} {stmt.label!r} defined twice")
        scope.components[key] = Component(stmt.name, stmt.label, stmt, exports)
    return scope, problems


def resolve(ref: Ref, scope: Scope) -> tuple[Component | None, str | None, str | None]:
    """(component, export, problem) for a reference; component None for stdlib and arguments."""
    path = ref.path
    if path[0] in STDLIB:
        return None, None, None
    if path[0] == "argument":
        if len(path) == 3 and path[1] in scope.arguments and path[2] == "value":
            return None, None, None
        return None, None, f"{'.'.join(path)}: no such argument (arguments are read as argument.NAME.value)"
    for k in range(len(path) - 1, 0, -1):
        comp = scope.components.get((".".join(path[:k]), path[k]))
        if comp is None:
            continue
        export = path[k + 1] if k + 1 < len(path) else None
        if export is None:
            return comp, None, f"{'.'.join(path)}: a component is referenced through one of its exports"
        if export not in comp.exports:
            have = ", ".join(sorted(comp.exports)) or "nothing"
            return comp, export, f"{'.'.join(path)}: {comp.name} exports {have}, not {export}"
        return comp, export, None
    return None, None, f"{'.'.join(path)}: no such component in {scope.where}"


def check_scope(scope: Scope) -> list[str]:
    problems = []
    for stmt in scope.statements:
        if not isinstance(stmt, Block) or stmt.name in ("declare", "argument", "import.file"):
            continue
        for ref in refs(stmt):
            _, _, problem = resolve(ref, scope)
            if problem:
                problems.append(f"{scope.where}:{ref.line}: {problem}")
    return problems


def check(files: Mapping[str, str], import_paths: Mapping[str, str] | None = None) -> list[str]:
    """Parse and cross-check Alloy files; returns the problems found (empty when the wiring is sound).

    ``files`` maps a file name to its text; ``import_paths`` maps an ``import.file`` label to the file
    name (in ``files``) it loads, because the real path comes from the environment.
    """
    modules, problems = {}, []
    for path, text in files.items():
        try:
            modules[path] = load_module(path, text)
        except AlloySyntaxError as error:
            problems.append(f"{path}: {error}")
    if problems:
        return problems
    import_paths = import_paths or {}
    for path, module in modules.items():
        imports = {}
        for block in module.statements:
            if isinstance(block, Block) and block.name.startswith("import.") and block.label:
                target = import_paths.get(block.label)
                if target not in modules:
                    problems.append(f"{path}: import {block.label!r} has no module to check against")
                    continue
                imports[block.label] = modules[target]
        scope, found = build_scope(path, module.statements, imports)
        problems += found + check_scope(scope)
        for name, declare in module.declares.items():
            inner, found = build_scope(f"{path}:declare {name}", declare.body, imports)
            problems += found + check_scope(inner)
    return problems
