"""A small parser and checker for Grafana Alloy's configuration syntax, enough to test deploy/alloy.

It reads blocks (``name.parts "label" { ... }``), attributes (``name = expr``) and expressions
(literals, lists, objects, references, calls, operators), then checks what ``alloy validate`` would
and a little more: every reference names a defined component through an export it has; every argument
and block is one the component documents, with a value of the documented type, and required ones are
set (alloy_schema.py, written from Alloy's reference); standard-library names exist; nothing is below
the stability level Alloy runs at (components, configuration blocks, arguments, blocks, values and
standard-library functions with a level of their own); custom components get only the arguments their
``declare`` has; relabel rules, policies and TLS settings are consistent; and each OpenTelemetry signal
only goes where it is accepted and passed on.
No Alloy binary is involved; the tables in alloy_schema.py are what the checks know.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.deploy import alloy_schema as schema

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
    return (n for n in expressions(node) if isinstance(n, Ref))


def expressions(node: Any) -> Iterator[Any]:
    """Every expression node inside an expression, attribute or block (calls and references included)."""
    if isinstance(node, Attribute):
        yield from expressions(node.value)
        return
    if isinstance(node, Block):
        for stmt in node.body:
            yield from expressions(stmt)
        return
    yield node
    children: tuple[Any, ...] = ()
    if isinstance(node, Call):
        children = node.args
    elif isinstance(node, ListExpr):
        children = node.items
    elif isinstance(node, ObjectExpr):
        children = tuple(v for _, v in node.fields)
    elif isinstance(node, BinOp):
        children = (node.left, node.right)
    elif isinstance(node, Unary):
        children = (node.operand,)
    elif isinstance(node, Index):
        children = (node.target, node.index)
    for child in children:
        yield from expressions(child)


def evaluate(node: Any, env: Mapping[str, str] | None = None, ref: Callable[[Ref], Any] | None = None) -> Any:
    """Value of a constant expression (literals, sys.env, coalesce, encoding.from_json, + and comparisons).

    References evaluate to themselves, so ``[x.y.input]`` gives a list of Ref, unless ``ref`` maps them.
    """
    env = env or {}
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        return ref(node) if ref else node
    if isinstance(node, ListExpr):
        return [evaluate(i, env, ref) for i in node.items]
    if isinstance(node, ObjectExpr):
        return {k: evaluate(v, env, ref) for k, v in node.fields}
    if isinstance(node, Call):
        args = [evaluate(a, env, ref) for a in node.args]
        if node.func == ("sys", "env"):
            return env.get(args[0], "")
        if node.func == ("encoding", "from_json"):
            return json.loads(args[0])
        if node.func == ("coalesce",):
            return next((a for a in args if a not in (None, "", [], {})), args[-1] if args else None)
        raise ValueError(f"cannot evaluate call {'.'.join(node.func)}")
    if isinstance(node, BinOp):
        left, right = evaluate(node.left, env, ref), evaluate(node.right, env, ref)
        ops = {
            "+": lambda a, b: a + b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
            "&&": lambda a, b: a and b, "||": lambda a, b: a or b,
        }
        if node.op not in ops:
            raise ValueError(f"cannot evaluate operator {node.op}")
        return ops[node.op](left, right)
    if isinstance(node, Unary) and node.op == "!":
        return not evaluate(node.operand, env, ref)
    raise ValueError(f"cannot evaluate {node!r}")


# ---- Scopes and references ------------------------------------------------------------------------------


@dataclass
class Component:
    name: str
    label: str
    block: Block
    exports: Mapping[str, str]  # export name -> type ("any" for a custom component's)
    module: Module | None = None  # the module declaring a custom component


@dataclass
class Scope:
    """Components visible to each other: one file's top level, or one declare block's body."""

    where: str
    statements: list[Attribute | Block]
    components: dict[tuple[str, str], Component] = field(default_factory=dict)
    arguments: dict[str, Block] = field(default_factory=dict)
    minimum: str = schema.RUN_LEVEL  # the --stability.level Alloy runs at: anything below it is refused


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


def below_minimum(what: str, level: str, minimum: str) -> str | None:
    """Why ``what`` is refused at stability level ``minimum`` (None when its level is allowed)."""
    if not schema.below(level, minimum):
        return None
    return f"{what} is {level}, below the stability level Alloy runs at here ({minimum})"


def build_scope(
    where: str, statements: list[Attribute | Block], imports: Mapping[str, Module],
    minimum: str = schema.RUN_LEVEL,
) -> tuple[Scope, list[str]]:
    """Collect the components of one scope; ``imports`` maps import labels to the modules they load."""
    scope, problems = Scope(where, statements, minimum=minimum), []
    for stmt in statements:
        if isinstance(stmt, Attribute):
            problems.append(f"{where}:{stmt.line}: attribute {stmt.name} outside any block")
            continue
        if stmt.name == "declare" or stmt.name in schema.CONFIG_BLOCKS or stmt.name in schema.UNMODELLED_CONFIG_BLOCKS:
            level = schema.CONFIG_BLOCK_LEVELS.get(stmt.name, schema.GENERALLY_AVAILABLE)
            if refused := below_minimum(f"block {stmt.name}", level, minimum):
                problems.append(f"{where}:{stmt.line}: {refused}")
            if stmt.name == "argument" and stmt.label:
                scope.arguments[stmt.label] = stmt
            continue
        if stmt.label is None:
            problems.append(f"{where}:{stmt.line}: component {stmt.name} has no label")
            continue
        head, _, declared = stmt.name.partition(".")
        module = None
        if head in imports:
            module = imports[head]
            if declared not in module.declares:
                problems.append(f"{where}:{stmt.line}: {stmt.name}: module {module.path} declares no {declared!r}")
                continue
            exports = {b.label: "any" for b in module.declares[declared].blocks("export") if b.label}
        elif stmt.name in schema.COMPONENTS:
            exports = schema.COMPONENTS[stmt.name].exports
            if refused := below_minimum(f"component {stmt.name}", schema.COMPONENTS[stmt.name].stability, minimum):
                problems.append(f"{where}:{stmt.line}: {refused}")
        elif stmt.name in schema.OTHER_COMPONENT_LEVELS:
            level = schema.OTHER_COMPONENT_LEVELS[stmt.name]
            refused = below_minimum(f"component {stmt.name}", level, minimum)
            problems.append(f"{where}:{stmt.line}: {refused or f'unknown component {stmt.name}'} (and it is not "
                            "described in alloy_schema.py)")
            continue
        else:
            problems.append(f"{where}:{stmt.line}: unknown component {stmt.name} (none in alloy_schema.py)")
            continue
        key = (stmt.name, stmt.label)
        if key in scope.components:
            problems.append(f"{where}:{stmt.line}: {stmt.name} {stmt.label!r} defined twice")
        scope.components[key] = Component(stmt.name, stmt.label, stmt, exports, module)
    return scope, problems


def resolve(ref: Ref, scope: Scope) -> tuple[Component | None, str | None, str | None]:
    """(component, export, problem) for a reference; component None for the standard library and arguments."""
    path, dotted = ref.path, ".".join(ref.path)
    if path[0] in schema.STDLIB_NAMESPACES:
        ok = dotted in schema.STDLIB_CONSTANTS
        return None, None, None if ok else f"{dotted}: not a constant of Alloy's standard library"
    if path[0] == "argument":
        if len(path) == 3 and path[1] in scope.arguments and path[2] == "value":
            return None, None, None
        return None, None, f"{dotted}: no such argument (arguments are read as argument.NAME.value)"
    for k in range(len(path) - 1, 0, -1):
        comp = scope.components.get((".".join(path[:k]), path[k]))
        if comp is None:
            continue
        export = path[k + 1] if k + 1 < len(path) else None
        if export is None:
            return comp, None, f"{dotted}: a component is referenced through one of its exports"
        if export not in comp.exports:
            have = ", ".join(sorted(comp.exports)) or "nothing"
            return comp, export, f"{dotted}: {comp.name} exports {have}, not {export}"
        return comp, export, None
    return None, None, f"{dotted}: no such component in {scope.where}"


def check_scope(scope: Scope) -> list[str]:
    """References resolve; called functions are the standard library's."""
    problems = []
    for stmt in scope.statements:
        if not isinstance(stmt, Block) or stmt.name == "declare":
            continue
        for node in expressions(stmt):
            if isinstance(node, Ref):
                _, _, problem = resolve(node, scope)
                if problem:
                    problems.append(f"{scope.where}:{node.line}: {problem}")
            elif isinstance(node, Call):
                name = ".".join(node.func)
                level = schema.STDLIB_FUNCTION_LEVELS.get(name)
                if level is None:
                    problems.append(f"{scope.where}:{stmt.line}: {name}(): no such function in Alloy's standard "
                                    "library")
                elif refused := below_minimum(f"standard-library function {name}()", level, scope.minimum):
                    problems.append(f"{scope.where}:{stmt.line}: {refused}")
    return problems


# ---- Values and types -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capsule:
    """A value that only exists at run time (a consumer, a receiver, targets), known by its type."""

    kind: str
    name: str


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()  # a module argument or a call that cannot be evaluated here

_DURATION = re.compile(r"0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+")
_BYTES = re.compile(r"[0-9]+(\.[0-9]+)?\s*([KMGTPE]i?)?B?")
_CAPSULES = frozenset({"consumer", "metrics_receiver", "logs_receiver", "targets", "relabel_rules", "handler"})


def static_value(node: Any, scope: Scope) -> Any:
    """The value an expression has with no environment set (defaults apply); exports become Capsules."""

    def ref(r: Ref) -> Any:
        if r.path[0] in schema.STDLIB_NAMESPACES:
            return "constant"
        comp, export, _ = resolve(r, scope)
        if comp is None or export is None or comp.exports.get(export, "any") == "any":
            return UNKNOWN
        return Capsule(comp.exports[export], ".".join(r.path))

    try:
        return evaluate(node, {}, ref)
    except (ValueError, TypeError, KeyError, IndexError):
        return UNKNOWN


def _describe(value: Any) -> str:
    if isinstance(value, Capsule):
        return f"{value.kind} {value.name}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    return {list: "list", dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def _split_top(text: str) -> list[str]:
    """Split ``a:t,b:list(x,y)`` at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]] if text else parts


def type_problem(value: Any, kind: str) -> str | None:
    """Why a value does not fit a type of alloy_schema's notation (None when it fits or cannot be known)."""
    if value is UNKNOWN or kind == "any":
        return None
    if isinstance(value, list) and any(v is UNKNOWN for v in value) and kind.startswith("list("):
        value = [v for v in value if v is not UNKNOWN]
    if kind in _CAPSULES:
        if isinstance(value, Capsule) and value.kind == kind:
            return None
        if kind == "targets" and isinstance(value, list) and all(isinstance(t, dict) for t in value):
            return None
        return f"expected {kind}, got {_describe(value)}"
    if isinstance(value, Capsule):
        return f"expected {kind}, got {_describe(value)}"
    if kind.startswith("list("):
        if not isinstance(value, list):
            return f"expected {kind}, got {_describe(value)}"
        return next((p for p in (type_problem(v, kind[5:-1]) for v in value) if p), None)
    if kind.startswith("map("):
        if not isinstance(value, dict):
            return f"expected {kind}, got {_describe(value)}"
        return next((p for p in (type_problem(v, kind[4:-1]) for v in value.values()) if p), None)
    if kind.startswith("object("):
        if not isinstance(value, dict):
            return f"expected an object, got {_describe(value)}"
        fields = dict(item.split(":", 1) for item in _split_top(kind[7:-1]))
        for key, item in value.items():
            if key not in fields:
                return f"object has no key {key!r} (known: {', '.join(sorted(fields))})"
            if problem := type_problem(item, fields[key]):
                return f"{key}: {problem}"
        return None
    if kind.startswith("enum:"):
        allowed = schema.ENUMS[kind[5:]]
        if value in allowed:
            return None
        close = difflib.get_close_matches(str(value), allowed, n=1)
        return f"{value!r} is not one of the documented values" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind in ("string", "secret"):
        return None if isinstance(value, str) else f"expected {kind}, got {_describe(value)}"
    if kind == "bytes":
        if isinstance(value, str) and _BYTES.fullmatch(value.strip()):
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return None
        return f"expected a byte size such as \"4MiB\", got {_describe(value)}"
    if kind == "duration":
        if isinstance(value, str) and _DURATION.fullmatch(value):
            return None
        return f"expected a duration string such as \"10s\", got {_describe(value)}"
    if kind == "bool":
        return None if isinstance(value, bool) else f"expected bool, got {_describe(value)}"
    if kind in ("number", "int", "uint"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected {kind}, got {_describe(value)}"
        if kind != "number" and (value != int(value) or (kind == "uint" and value < 0)):
            return f"expected {kind}, got {_describe(value)}"
        return None
    raise ValueError(f"alloy_schema: unknown type {kind}")


def duration_seconds(text: str) -> float:
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", text))


# ---- Arguments and blocks against the reference -------------------------------------------------------------


def body_problems(block: Block, spec: schema.Spec, scope: Scope, where: str) -> list[str]:
    """Unknown, mistyped, repeated or missing arguments and blocks, recursively."""
    if spec.open:
        return []
    problems, seen = [], {}
    for stmt in block.body:
        here = f"{where}:{stmt.line}: {block.key}"
        if isinstance(stmt, Attribute):
            if stmt.name in seen:
                problems.append(f"{here}: {stmt.name} set twice")
            seen[stmt.name] = stmt
            if stmt.name not in spec.attrs:
                hint = " (it is a block)" if stmt.name in spec.blocks else _did_you_mean(stmt.name, spec)
                problems.append(f"{here}: unknown argument {stmt.name}{hint}")
                continue
            value, kind = static_value(stmt.value, scope), spec.attrs[stmt.name]
            if problem := type_problem(value, kind):
                problems.append(f"{here}: {stmt.name}: {problem}")
            level = spec.levels.get(stmt.name, schema.GENERALLY_AVAILABLE)
            if refused := below_minimum(f"argument {stmt.name}", level, scope.minimum):
                problems.append(f"{here}: {refused}")
            for item, level in value_levels(value, kind):
                if refused := below_minimum(f"{stmt.name} = {item!r}", level, scope.minimum):
                    problems.append(f"{here}: {refused}")
            continue
        inner = spec.blocks.get(stmt.name)
        if inner is None:
            hint = " (it is an argument: name = value)" if stmt.name in spec.attrs else _did_you_mean(stmt.name, spec)
            problems.append(f"{here}: unknown block {stmt.name}{hint}")
            continue
        if stmt.name in seen and not inner.repeat:
            problems.append(f"{here}: block {stmt.name} given twice")
        seen[stmt.name] = stmt
        if refused := below_minimum(f"block {stmt.name}", inner.level, scope.minimum):
            problems.append(f"{here}: {refused}")
        problems += body_problems(stmt, inner, scope, where)
    for name in sorted(spec.required - set(seen)):
        kind = "argument" if name in spec.attrs else "block"
        problems.append(f"{where}:{block.line}: {block.key}: missing required {kind} {name}")
    return problems


def value_levels(value: Any, kind: str) -> Iterator[tuple[Any, str]]:
    """The values of an enumeration (or a list of one) that have a stability level of their own."""
    if kind.startswith("list(") and isinstance(value, list):
        for item in value:
            yield from value_levels(item, kind[5:-1])
    elif kind.startswith("enum:") and isinstance(value, str):
        level = schema.ENUM_LEVELS.get(kind[5:], {}).get(value)
        if level is not None:
            yield value, level


def _did_you_mean(name: str, spec: schema.Spec) -> str:
    close = difflib.get_close_matches(name, [*spec.attrs, *spec.blocks], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _truthy(block: Block, attr: str, scope: Scope) -> bool:
    return block.attr(attr) is not None and static_value(block.attr(attr), scope) not in (False, "", UNKNOWN)


def rule_problems(rule: Block, scope: Scope) -> list[str]:
    """What Alloy's relabel validation refuses, per action."""
    values = {a.name: static_value(a.value, scope) for a in rule.body if isinstance(a, Attribute)}
    action = values.get("action", "replace")
    problems = []
    if action in ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal") and not values.get(
            "target_label"):
        problems.append(f"{action} needs target_label")
    if action == "hashmod" and not values.get("modulus"):
        problems.append("hashmod needs a non-zero modulus")
    defaults = {"regex": "(.*)", "modulus": 0, "separator": ";", "replacement": "$1"}
    if action in ("keepequal", "dropequal"):
        extra = sorted(k for k, d in defaults.items() if k in values and values[k] != d)
        if extra:
            problems.append(f"{action} takes only source_labels and target_label, not {', '.join(extra)}")
    if action in ("labeldrop", "labelkeep"):
        extra = sorted(k for k in ("source_labels", "target_label", "modulus", "separator", "replacement")
                       if k in values and values[k] != defaults.get(k))
        if extra:
            problems.append(f"{action} takes only regex, not {', '.join(extra)}")
    if action in ("lowercase", "uppercase") and values.get("replacement", "$1") != "$1":
        problems.append(f"{action} takes no replacement")
    return problems


def policy_problems(policy: Block, scope: Scope) -> list[str]:
    """A policy's settings live in the block named after its type, and only there."""
    kind = static_value(policy.attr("type"), scope) if policy.attr("type") is not None else None
    typed = set(schema.POLICY_BLOCKS) | {"and", "not", "drop", "composite"}
    present = {b.name for b in policy.blocks() if b.name in typed}
    problems = []
    if kind in typed and kind not in present and kind not in ("always_sample", "trace_flags"):
        problems.append(f"policy type {kind} without its {kind} block")
    for other in sorted(present - {kind}):
        problems.append(f"block {other} in a policy of type {kind}: it is ignored")
    for cond in policy.blocks("ottl_condition"):
        if cond.attr("span") is None and cond.attr("spanevent") is None:
            problems.append("ottl_condition needs span or spanevent conditions")
    for sub in (b for name in ("and", "not", "drop", "composite") for b in policy.blocks(name)):
        for inner in sub.blocks():
            if inner.name.endswith("_sub_policy"):
                problems += policy_problems(inner, scope)
    return problems


def semantic_problems(comp: Component, scope: Scope) -> list[str]:
    """Rules the reference states in prose rather than in its argument tables."""
    block, problems = comp.block, []
    if comp.name == "otelcol.processor.memory_limiter":
        absolute, share = block.attr("limit") is not None, block.attr("limit_percentage") is not None
        if absolute == share:
            problems.append("set either limit or limit_percentage (with spike_limit_percentage), exactly one")
    if comp.name == "otelcol.exporter.loadbalancing":
        for resolver in block.blocks("resolver"):
            if not resolver.blocks():
                problems.append("resolver needs one of static, dns, kubernetes or aws_cloud_map")
    if comp.name == "otelcol.processor.tail_sampling":
        wait = static_value(block.attr("decision_wait"), scope) if block.attr("decision_wait") else "30s"
        if isinstance(wait, str) and _DURATION.fullmatch(wait) and duration_seconds(wait) <= 0:
            problems.append("decision_wait must be greater than zero")
        for policy in block.blocks("policy"):
            problems += policy_problems(policy, scope)
    for inner in block.walk():
        if inner.name == "rule" and comp.name.endswith(".relabel"):
            problems += rule_problems(inner, scope)
        if inner.name in ("tls", "tls_config"):
            if inner.attr("ca_file") is not None and inner.attr("ca_pem") is not None:
                problems.append(f"{inner.name}: ca_file and ca_pem exclude each other")
            if _truthy(inner, "insecure_skip_verify", scope) and (
                    inner.attr("ca_file") is not None or inner.attr("ca_pem") is not None):
                problems.append(f"{inner.name}: a CA is set but insecure_skip_verify = true never uses it")
    return [f"{scope.where}:{block.line}: {comp.name} {comp.label!r}: {p}" for p in problems]


def instance_problems(comp: Component, scope: Scope) -> list[str]:
    """A custom component gets exactly the arguments its declare block has, the required ones included."""
    assert comp.module is not None
    declare = comp.module.declares[comp.name.partition(".")[2]]
    arguments = {b.label: b for b in declare.blocks("argument") if b.label}
    where = f"{scope.where}:{comp.block.line}: {comp.name} {comp.label!r}"
    problems = [f"{where}: custom components take arguments only, not block {b.name}" for b in comp.block.blocks()]
    given = {a.name for a in comp.block.body if isinstance(a, Attribute)}
    for name in sorted(given - set(arguments)):
        close = difflib.get_close_matches(name, arguments, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{where}: unknown argument {name}{hint}; {comp.module.path} declares "
                        f"{', '.join(sorted(arguments))}")
    for name, argument in sorted(arguments.items()):
        optional = argument.attr("optional") is not None and static_value(argument.attr("optional"), scope) is True
        if name not in given and not optional:
            problems.append(f"{where}: missing required argument {name}")
    return problems


def schema_problems(scope: Scope) -> list[str]:
    problems = []
    for stmt in scope.statements:
        if not isinstance(stmt, Block) or stmt.name == "declare":
            continue
        spec = schema.CONFIG_BLOCKS.get(stmt.name)
        if spec is not None:
            problems += body_problems(stmt, spec, scope, scope.where)
    for comp in scope.components.values():
        if comp.module is not None:
            problems += instance_problems(comp, scope)
        else:
            problems += body_problems(comp.block, schema.COMPONENTS[comp.name].body, scope, scope.where)
            problems += semantic_problems(comp, scope)
    return problems


# ---- Signals along the wiring ---------------------------------------------------------------------------


@dataclass
class Bound:
    """A scope as one instance sees it: module arguments bound to the expressions the instance passed."""

    scope: Scope
    arguments: Mapping[str, tuple[Any, Bound]] = field(default_factory=dict)


def consumers(ref: Ref, at: Bound, inner: Callable[[Component], Scope]) -> Iterator[tuple[Bound, Component]]:
    """The built-in components a reference finally hands data to, through module arguments and exports."""
    if ref.path[0] == "argument":
        if ref.path[1] in at.arguments:
            expr, outer = at.arguments[ref.path[1]]
            for r in refs(expr):
                yield from consumers(r, outer, inner)
        return
    comp, export, problem = resolve(ref, at.scope)
    if comp is None or problem:
        return
    if comp.module is None:
        yield at, comp
        return
    bound = Bound(inner(comp), {a.name: (a.value, at) for a in comp.block.body if isinstance(a, Attribute)})
    declare = comp.module.declares[comp.name.partition(".")[2]]
    for exported in (b for b in declare.blocks("export") if b.label == export):
        for r in refs(exported.attr("value")):
            yield from consumers(r, bound, inner)


def signal_problems(top: Bound, inner: Callable[[Component], Scope]) -> list[str]:
    """Each signal goes only to components that take it, and every processor passes on what it receives."""
    problems, received = [], {}
    senders: list[tuple[Bound, Component]] = []

    def collect(at: Bound) -> None:
        for comp in at.scope.components.values():
            if comp.module is not None:
                collect(Bound(inner(comp), {a.name: (a.value, at) for a in comp.block.body
                                            if isinstance(a, Attribute)}))
            elif comp.block.blocks("output"):
                senders.append((at, comp))

    collect(top)
    for at, comp in senders:
        [output] = comp.block.blocks("output")
        for signal in ("traces", "metrics", "logs"):
            for ref in refs(output.attr(signal)) if output.attr(signal) is not None else ():
                for there, target in consumers(ref, at, inner):
                    accepts = schema.COMPONENTS[target.name].accepts
                    received.setdefault((id(there.scope), target.name, target.label), set()).add(signal)
                    if signal not in accepts:
                        problems.append(f"{at.scope.where}:{output.line}: {comp.name} {comp.label!r} sends {signal} "
                                        f"to {target.name} {target.label!r}, which takes "
                                        f"{', '.join(sorted(accepts)) or 'nothing'} only")
    for at, comp in senders:
        if not comp.name.startswith("otelcol.processor."):
            continue
        [output] = comp.block.blocks("output")
        for signal in sorted(received.get((id(at.scope), comp.name, comp.label), set())):
            accepted = signal in schema.COMPONENTS[comp.name].accepts
            if accepted and (output.attr(signal) is None or not list(refs(output.attr(signal)))):
                problems.append(f"{at.scope.where}:{output.line}: {comp.name} {comp.label!r} receives {signal} "
                                f"but its output passes no {signal} on: they are dropped")
    return sorted(set(problems))


# ---- All together -------------------------------------------------------------------------------------------


def check(
    files: Mapping[str, str], import_paths: Mapping[str, str] | None = None, minimum: str = schema.RUN_LEVEL
) -> list[str]:
    """Parse and check Alloy files; returns the problems found (empty when the configuration is sound).

    ``files`` maps a file name to its text; ``import_paths`` maps an ``import.file`` label to the file
    name (in ``files``) it loads, because the real path comes from the environment. ``minimum`` is the
    ``--stability.level`` Alloy runs at: components, blocks, arguments, values and standard-library
    functions below it are refused.
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
    inner_scopes: dict[tuple[str, str], Scope] = {}

    def inner(comp: Component) -> Scope:
        assert comp.module is not None
        return inner_scopes[(comp.module.path, comp.name.partition(".")[2])]

    tops = {}
    for path, module in modules.items():
        imports = {}
        for block in module.statements:
            if isinstance(block, Block) and block.name.startswith("import.") and block.label:
                target = import_paths.get(block.label)
                if target not in modules:
                    problems.append(f"{path}: import {block.label!r} has no module to check against")
                    continue
                imports[block.label] = modules[target]
        scope, found = build_scope(path, module.statements, imports, minimum)
        tops[path] = scope
        problems += found + check_scope(scope) + schema_problems(scope)
        for name, declare in module.declares.items():
            body, found = build_scope(f"{path}:declare {name}", declare.body, imports, minimum)
            inner_scopes[(path, name)] = body
            problems += found + check_scope(body) + schema_problems(body)
    if problems:
        return problems
    for scope in tops.values():
        problems += signal_problems(Bound(scope), inner)
    return problems
