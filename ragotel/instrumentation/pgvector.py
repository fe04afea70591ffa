"""Retrieval spans and metrics for pgvector searches on PostgreSQL, through psycopg 3, psycopg2, asyncpg and
anything built on them (SQLAlchemy, pgvector-python, LangChain's PGVector, LlamaIndex's PGVectorStore), with no code
change.

::

    import ragotel

    ragotel.instrument_pgvector()   # or, with no code: opentelemetry-instrument (ragotel_pgvector)
    cur.execute("SELECT id FROM items ORDER BY embedding <=> %s LIMIT 5", (vector,))
    # span "retrieval pgvector", rag.step.duration{rag_step_name="pgvector"}

A statement is a search when it is a ``SELECT`` (or ``WITH``) that uses a pgvector distance operator and
``ORDER BY … LIMIT``: ``<->`` (``l2``), ``<=>`` (``cosine``), ``<#>`` (``negative_inner_product``), ``<+>``
(``l1``), ``<~>`` (``hamming``), ``<%>`` (``jaccard``). Every other statement runs untouched, after one substring
test (no ``<`` in its text) or, for those with a ``<``, one regular-expression search.

A search is a retrieval step: ``gen_ai.operation.name=retrieval``, ``gen_ai.data_source.id=pgvector``,
``db.system.name=postgresql``, ``db.collection.name`` (the table in its ``FROM``, as written),
``db.operation.name=SELECT``, ``db.namespace`` (the database), ``server.address`` / ``server.port`` (from the
connection: a Unix-socket connection's address is its socket directory), ``gen_ai.request.top_k`` (the ``LIMIT``
literal or the parameter bound to it), ``rag.retrieval.distance`` (from the operator) and
``rag.retrieval.score.kind=distance`` (every operator sorts ascending: lower is better). Results returned are the
rows the statement returned, the cursor's ``rowcount`` once ``execute`` returned (asyncpg: the length of the list
``fetch`` returned, the count in ``execute``'s ``SELECT n`` status; none for ``fetchrow`` and ``fetchval``, whose
one row or value does not tell): the rows are neither fetched nor consumed, so no scores are recorded (they are only
in the rows, which the application reads) and no documents are kept, whatever the content settings. Neither the
statement's text nor its parameters (the query vector) go onto the span; the text is there only when
opentelemetry-instrumentation-psycopg(2) puts it there.

With opentelemetry-instrumentation-psycopg or -psycopg2 on, its DB CLIENT span is current while the driver
executes: the retrieval step goes onto that span (its name stays the DB instrumentation's) and makes its
``rag.step.duration`` record, so a search is still one span. A failing statement reaches the application
unchanged, with ``error.type`` on the span.

What is patched:

* psycopg 3: ``Cursor.execute`` and ``AsyncCursor.execute`` (so ``ClientCursor``, ``RawCursor``,
  ``Connection.execute`` and the DB instrumentation's cursor classes, which call them, too). Server-side cursors
  are not: their ``execute`` only declares the cursor, the search runs as the rows are fetched, so it would time
  nothing and know no results. Neither are ``executemany`` and ``stream``.
* psycopg2: its cursor is a C type, so ``psycopg2.connect`` is wrapped to give each connection a subclass of its
  connection class whose ``cursor()`` hands out a subclass of the cursor class asked for (the connection's
  ``cursor_factory``, a per-call one such as ``RealDictCursor``, the DB instrumentation's), with ``execute``
  overridden just above the C type, under every Python-level ``execute`` (the DB instrumentation's span included).
  Connections opened before instrumenting, or by a ``connect`` imported with ``from psycopg2 import connect``
  before it, are not covered; named (server-side) cursors and asynchronous connections are left alone, for the
  reason above.
* asyncpg: ``Connection.fetch``, ``fetchrow``, ``fetchval`` and ``execute`` and ``PreparedStatement.fetch``,
  ``fetchrow`` and ``fetchval``, the public methods that run a statement and return what it gave. None of them calls
  another (each reaches the protocol through its own private path), so a search passes exactly one: a ``Pool``'s
  methods and its connection proxies call the connection's; SQLAlchemy's asyncpg dialect prepares each statement
  and runs it with ``PreparedStatement.fetch``. The ``LIMIT``'s ``$n`` is read from the call's arguments; the
  database, host and port from the address the connection connected to and its parameters (asyncpg has no public
  accessor for them). Not patched: ``cursor()`` (a server-side cursor, as above), ``executemany`` and
  ``fetchmany``. No DB instrumentation's span is adopted: opentelemetry-instrumentation-asyncpg's would be a
  second span around the step.

SQLAlchemy runs through these drivers, so its pgvector queries (``Item.embedding.l2_distance(v)`` ordered and
limited) are covered over any of them (``postgresql+asyncpg`` included), as is any ORM or framework on them.
``uninstrument()`` restores ``Cursor.execute``, ``AsyncCursor.execute``, ``psycopg2.connect`` and asyncpg's
methods; psycopg2 connections opened meanwhile keep their classes, which then run as plain psycopg2 ones.
"""

from __future__ import annotations

import functools
import importlib.metadata
import numbers
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core.safe import report_internal_error
from ragotel.instrumentation._base import Instrumentor
from ragotel.instrumentation._vector import Found, Read, VectorStore, server_attributes

__all__ = ["PgvectorInstrumentor", "instrument_pgvector", "uninstrument_pgvector"]

DATA_SOURCE: Final = "pgvector"
SYSTEM: Final = "postgresql"
# The drivers, each with the lowest release this module works with: the first installed is the one the
# opentelemetry-instrument loader checks.
_DISTRIBUTIONS: Final = (("psycopg", "psycopg >= 3.1"), ("psycopg2-binary", "psycopg2-binary >= 2.9"),
                         ("psycopg2", "psycopg2 >= 2.9"), ("asyncpg", "asyncpg >= 0.27"))
# The scopes of the DB instrumentations whose CLIENT span, current during a driver's execute, is the statement's.
_DB_SCOPES: Final = frozenset({"opentelemetry.instrumentation.psycopg", "opentelemetry.instrumentation.psycopg2",
                               "opentelemetry.instrumentation.dbapi"})

_on = False
"""Whether searches are recorded: psycopg2 connections opened while instrumented keep their classes afterwards."""


class PgvectorInstrumentor(Instrumentor):
    """pgvector searches through psycopg 3, psycopg2 and asyncpg as retrieval steps, as an OpenTelemetry
    instrumentor (``ragotel_pgvector``). Patches ``psycopg.Cursor.execute``, ``psycopg.AsyncCursor.execute``,
    ``psycopg2.connect`` and asyncpg's ``Connection`` and ``PreparedStatement`` fetch and execute methods, whichever
    drivers are installed; ``uninstrument()`` puts them back."""

    label = "instrument_pgvector()"
    modules = ("psycopg", "psycopg2", "asyncpg")

    def instrumentation_dependencies(self) -> Collection[str]:
        for name, requirement in _DISTRIBUTIONS:
            try:
                importlib.metadata.version(name)
                return (requirement,)
            except importlib.metadata.PackageNotFoundError:
                continue
        return (_DISTRIBUTIONS[0][1],)

    def _instrument(self, **kwargs: Any) -> None:
        global _on
        missing: ImportError | None = None
        patched = False
        try:
            import psycopg
            from psycopg import sql
        except ImportError as exc:  # not installed, or no libpq it can load: the other driver may still be there
            missing = exc
        else:
            types = (sql.SQL, sql.Composed)
            self._patches.apply(psycopg.Cursor, "execute", _executing(types))
            self._patches.apply(psycopg.AsyncCursor, "execute", _executing_async(types))
            patched = True
        try:
            import psycopg2  # type: ignore[import-untyped]
        except ImportError as exc:
            missing = missing or exc
        else:
            # Patches replaces attributes of anything with a __dict__: here the module's connect function.
            self._patches.apply(cast(type, psycopg2), "connect", _connecting)
            patched = True
        try:
            from asyncpg.connection import Connection  # type: ignore[import-untyped]
            from asyncpg.prepared_stmt import PreparedStatement  # type: ignore[import-untyped]
        except ImportError as exc:
            missing = missing or exc
        else:
            # The public methods that run a statement and return its rows; none calls another (each goes to the
            # protocol through its own private path), so a search passes exactly one of them. A Pool's methods and
            # its connection proxies call the Connection's.
            for name in ("fetch", "fetchrow", "fetchval"):
                self._patches.apply(Connection, name, _asyncpg_running(_CONNECTION, _read_rows))
                self._patches.apply(PreparedStatement, name, _asyncpg_running(_PREPARED, _read_rows))
            self._patches.apply(Connection, "execute", _asyncpg_running(_CONNECTION, _read_status))
            patched = True
        if not patched and missing is not None:
            raise missing
        _on = True

    def _uninstrument(self, **kwargs: Any) -> None:
        global _on
        _on = False
        super()._uninstrument(**kwargs)


def instrument_pgvector() -> None:
    """Record pgvector searches as retrieval steps (see ``ragotel.instrumentation.pgvector``); a second call
    does nothing."""
    PgvectorInstrumentor.turn_on()


def uninstrument_pgvector() -> None:
    """Undo ``instrument_pgvector``."""
    PgvectorInstrumentor.turn_off()


# -- recognising a search ------------------------------------------------------------------------------
_DISTANCES: Final = {"<->": "l2", "<=>": "cosine", "<#>": "negative_inner_product", "<+>": "l1", "<~>": "hamming",
                     "<%>": "jaccard", "<%%>": "jaccard"}
# ``<%%>``: the Jaccard operator as written in a statement with parameters, where ``%`` is doubled.
_OPERATOR: Final = re.compile(r"<(?:->|=>|#>|\+>|~>|%%?>)")
_OPERATOR_BYTES: Final = re.compile(rb"<(?:->|=>|#>|\+>|~>|%%?>)")
_FIRST_WORD: Final = re.compile(r"(?:\s|\(|/\*.*?\*/|--[^\n]*(?:\n|$))*(\w+)", re.S)
_ORDER_BY: Final = re.compile(r"\border\s+by\b", re.I)
_LIMIT: Final = re.compile(r"\blimit\s+(?:(\d+)\b|%\((\w+)\)[sbt]|(%[sbt])|\$(\d+)\b)", re.I)
_IDENTIFIER: Final = r'(?:"(?:[^"]|"")+"|[^\W\d][\w$]*)'
_FROM: Final = re.compile(rf"\bfrom\s+({_IDENTIFIER}(?:\s*\.\s*{_IDENTIFIER})*)", re.I)
_PLACEHOLDER: Final = re.compile(r"%%|%(?:\(\w+\))?[sbt]")
_PARENS: Final = str.maketrans("", "", "".join(chr(c) for c in range(128) if chr(c) not in "()"))


@dataclass(frozen=True, slots=True)
class Search:
    """What a search statement says about itself (parsed once per statement text)."""

    distance: str
    """``rag.retrieval.distance``: the pgvector operator's distance function."""
    table: str | None
    """``db.collection.name``: the table in the ``FROM`` the ranking reads, as written (schema included)."""
    limit: int | str | None
    """The ``LIMIT``: a literal (``int``); the position of the parameter bound to it (``int``, with ``bound``);
    or that parameter's name (``str``)."""
    bound: bool = False
    """Whether an ``int`` ``limit`` is a parameter's position rather than a literal."""

    def top_k(self, params: Any) -> int | None:
        """The number of results asked for, with ``params`` the statement's parameters."""
        limit = self.limit
        if isinstance(limit, int) and not self.bound:
            return limit
        value: Any = None
        if isinstance(limit, str) and isinstance(params, Mapping):
            value = params.get(limit)
        elif isinstance(limit, int) and isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
            value = params[limit] if 0 <= limit < len(params) else None
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        return None


_PARSED: dict[str, Search | None] = {}
# Statements are few and repeated (an application's, SQLAlchemy's compiled ones); the bound is for those that
# inline their values.
_PARSED_MAX: Final = 512


def recognise(text: str) -> Search | None:
    """The search ``text`` is, or ``None`` for any other statement: one substring test for most, a
    regular-expression search for those with a ``<``, and the parse once per distinct search statement."""
    if "<" not in text or _OPERATOR.search(text) is None:
        return None
    try:
        return _PARSED[text]
    except KeyError:
        pass
    found = _parse(text)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[text] = found
    return found


def _depth(text: str, end: int) -> int:
    """Parentheses open at ``end``."""
    parens = text[:end].translate(_PARENS)
    return parens.count("(") - parens.count(")")


def _parse(text: str) -> Search | None:
    first = _FIRST_WORD.match(text)
    if first is None or first.group(1).lower() not in ("select", "with"):
        return None  # EXPLAIN, CREATE TABLE AS, DECLARE, INSERT … SELECT: not a search the application reads
    orders = list(_ORDER_BY.finditer(text))
    operators = list(_OPERATOR.finditer(text))
    if not orders or not operators:
        return None
    # The LIMIT of the outermost query (the fewest parentheses open, the last of those) after an ORDER BY.
    limits = [(_depth(text, m.start()), -m.start(), m) for m in _LIMIT.finditer(text) if m.start() > orders[0].end()]
    if not limits:
        return None
    limit = min(limits, key=lambda found: found[:2])[2]
    # The ranking operator: the first that follows an ORDER BY, else the first (ORDER BY an alias of its distance).
    ranking = next((op for op in operators if op.start() > orders[0].end()), operators[0])
    return Search(_DISTANCES[ranking.group()], _table(text, ranking.start()), *_limit_of(text, limit))


def _table(text: str, at: int) -> str | None:
    """The table the ranking at ``at`` reads: the last ``FROM`` before it at its depth (a ``FROM`` in a subquery
    of its WHERE is another table's), else the first after it no deeper (a window's ``ORDER BY`` precedes its
    query's ``FROM``)."""
    depth = _depth(text, at)
    before: str | None = None
    for m in _FROM.finditer(text):
        where = _depth(text, m.start())
        if m.start() < at:
            if where == depth:
                before = m.group(1)
        elif before is None and where <= depth:
            return m.group(1)
        elif before is not None:
            break
    return before


def _limit_of(text: str, m: re.Match[str]) -> tuple[int | str | None, bool]:
    literal, name, positional, numbered = m.groups()
    if literal is not None:
        return int(literal), False
    if name is not None:
        return name, False
    if numbered is not None:
        return int(numbered) - 1, True
    if positional is not None:
        return sum(1 for p in _PLACEHOLDER.finditer(text, 0, m.start()) if p.group() != "%%"), True
    return None, False


SqlTypes = tuple[type, type]
"""A driver's ``sql.SQL`` and ``sql.Composed``."""


def _statement(query: Any, context: Any, types: SqlTypes) -> Search | None:
    """The search ``query`` (a string, bytes, or a driver's composed ``sql`` object) is, if it is one."""
    if isinstance(query, str):
        return recognise(query)
    if isinstance(query, bytes):
        if b"<" not in query or _OPERATOR_BYTES.search(query) is None:
            return None
        return recognise(query.decode(errors="replace"))
    if isinstance(query, types) and "<" in _fragments(query, types):
        # Rendered only when its SQL snippets have a "<": identifiers and literals need the connection.
        return recognise(query.as_string(context))  # type: ignore[attr-defined]
    return None


def _search(query: Any, context: Any, types: SqlTypes) -> Search | None:
    """``_statement``, which never raises into the application."""
    try:
        return _statement(query, context, types)
    except Exception as exc:
        report_internal_error("reading a PostgreSQL statement", exc)
        return None


def _fragments(query: Any, types: SqlTypes) -> str:
    """The SQL snippets of a composed statement, where its operators and keywords are."""
    sql, composed = types
    if isinstance(query, sql):
        return str(query.as_string(None))  # type: ignore[attr-defined]
    if isinstance(query, composed):
        return " ".join(_fragments(part, types) for part in query)  # type: ignore[attr-defined]
    return " "


# -- the retrieval step ----------------------------------------------------------------------------------
_STORE: Final = VectorStore(DATA_SOURCE, SYSTEM)


def _their_span() -> Span | None:
    """The DB instrumentation's CLIENT span for this very statement, if one is current."""
    span = trace.get_current_span()
    scope = getattr(span, "instrumentation_scope", None)
    if (span.is_recording() and getattr(span, "kind", None) is SpanKind.CLIENT
            and getattr(scope, "name", None) in _DB_SCOPES):
        return span
    return None


def _describer(types: SqlTypes, params_name: str) -> Callable[[Any, tuple[Any, ...], dict[str, Any]],
                                                              dict[str, AttributeValue]]:
    def describe(cursor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        """The span attributes of ``cursor.execute(query, params)``, known before it runs."""
        query = args[0] if args else kwargs.get("query")
        search = _statement(query, cursor, types)
        attrs: dict[str, AttributeValue] = {sc.DB_OPERATION_NAME: "SELECT", sc.RAG_RETRIEVAL_SCORE_KIND: "distance"}
        if search is None:
            return attrs
        attrs[sc.RAG_RETRIEVAL_DISTANCE] = search.distance
        if search.table is not None:
            attrs[sc.DB_COLLECTION_NAME] = search.table
        top_k = search.top_k(args[1] if len(args) > 1 else kwargs.get(params_name))
        if top_k is not None:
            attrs[sc.GEN_AI_REQUEST_TOP_K] = top_k
        attrs.update(_server(cursor.connection))
        return attrs

    return describe


def _server(connection: Any) -> dict[str, AttributeValue]:
    """Database, host and port of a psycopg or psycopg2 connection (``connection.info`` in both)."""
    info = connection.info
    attrs = server_attributes(info.host, info.port)
    if isinstance(info.dbname, str) and info.dbname:
        attrs[sc.DB_NAMESPACE] = info.dbname
    return attrs


def _read(result: Any, cursor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found | None:
    """The rows the statement returned, as the cursor counts them once ``execute`` returned (the rows stay the
    application's to fetch); ``None`` where it cannot tell (-1: a pipeline, an asynchronous connection)."""
    count = cursor.rowcount
    if not isinstance(count, int) or count < 0:
        return None
    return Found(count, None, distances=True)


# -- psycopg 3 -------------------------------------------------------------------------------------------
def _executing(types: SqlTypes) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The wrapper factory of ``psycopg.Cursor.execute``: a search is a step, anything else runs untouched."""
    describe = _describer(types, "params")

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        searching = _STORE.searching(describe, _read, _their_span)(original)

        @functools.wraps(original)
        def execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            # Most statements have no "<": they cost one substring test, not even a call.
            if (type(query) is str and "<" not in query) or _search(query, cursor, types) is None:
                return original(cursor, query, *args, **kwargs)
            return searching(cursor, query, *args, **kwargs)

        return execute

    return wrap


def _executing_async(types: SqlTypes) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """The wrapper factory of ``psycopg.AsyncCursor.execute``."""
    describe = _describer(types, "params")

    def wrap(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        searching = _STORE.searching_async(describe, _read, _their_span)(original)

        @functools.wraps(original)
        async def execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if (type(query) is str and "<" not in query) or _search(query, cursor, types) is None:
                return await original(cursor, query, *args, **kwargs)
            return await searching(cursor, query, *args, **kwargs)

        return execute

    return wrap


# -- psycopg2 --------------------------------------------------------------------------------------------
_CURSORS: dict[type, type] = {}
"""The searching subclass of each cursor class asked for."""
_CONNECTIONS: dict[type, type] = {}


@functools.cache
def _psycopg2_classes() -> tuple[type, type]:
    """psycopg2's connection and cursor C types, each with a subclass that records searches: built once, on the
    first ``connect``, so that importing this module imports no driver."""
    from psycopg2 import extensions, sql

    types = (sql.SQL, sql.Composed)
    describe = _describer(types, "vars")
    searching = _STORE.searching(describe, _read, _their_span)(extensions.cursor.execute)

    class SearchingCursor(extensions.cursor):  # type: ignore[misc]
        """The C cursor with ``execute`` recording searches: the last class before the C type in every searching
        cursor class, so that it runs inside every Python-level ``execute`` (the DB instrumentation's span)."""

        __slots__ = ()  # no instance layout of its own: it combines with any cursor subclass

        def execute(self, query: Any, vars: Any = None) -> Any:
            if (_on and not (type(query) is str and "<" not in query) and self.name is None
                    and not self.connection.async_ and _search(query, self, types) is not None):
                return searching(self, query, vars)
            return super().execute(query, vars)

    class SearchingConnection(extensions.connection):  # type: ignore[misc]
        """The C connection whose ``cursor()`` hands out the searching subclass of the cursor class asked for."""

        __slots__ = ()

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            if _on:
                try:
                    if len(args) > 1:  # cursor(name, cursor_factory, ...)
                        args = (args[0], _searching_cursor(args[1] or self.cursor_factory or extensions.cursor),
                                *args[2:])
                    else:
                        kwargs["cursor_factory"] = _searching_cursor(
                            kwargs.get("cursor_factory") or self.cursor_factory or extensions.cursor)
                except Exception as exc:
                    report_internal_error("choosing a psycopg2 cursor class", exc)
            return super().cursor(*args, **kwargs)

    return SearchingConnection, SearchingCursor


def _subclass(cls: Any, searching: type, base: type, made: dict[type, type]) -> Any:
    """``cls`` (a subclass of the C type ``base``) with ``searching`` between it and ``base``: its own methods run
    first, as they would, and ``searching``'s just before the C type's. Anything else (a factory function) is
    returned as it is."""
    if not isinstance(cls, type) or not issubclass(cls, base) or issubclass(cls, searching):
        return cls
    if cls is base:
        return searching
    found = made.get(cls)
    if found is None:
        try:
            found = type(cls.__name__, (cls, searching), {"__slots__": (), "__qualname__": cls.__qualname__})
        except Exception as exc:  # a layout or an MRO that cannot take the subclass: left as it is
            report_internal_error(f"subclassing {cls.__qualname__}", exc)
            return cls
        found = made.setdefault(cls, found)
    return found


def _searching_cursor(cls: Any) -> Any:
    from psycopg2 import extensions

    return _subclass(cls, _psycopg2_classes()[1], extensions.cursor, _CURSORS)


def _connecting(original: Callable[..., Any]) -> Callable[..., Any]:
    """The wrapper of ``psycopg2.connect``: the connection class asked for (``connection_factory``) becomes its
    searching subclass."""

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        try:
            from psycopg2 import extensions

            connection = _psycopg2_classes()[0]
            if len(args) > 1:  # connect(dsn, connection_factory, ...)
                args = (args[0], _subclass(args[1] or extensions.connection, connection, extensions.connection,
                                           _CONNECTIONS), *args[2:])
            else:
                kwargs["connection_factory"] = _subclass(kwargs.get("connection_factory") or extensions.connection,
                                                         connection, extensions.connection, _CONNECTIONS)
        except Exception as exc:
            report_internal_error("wrapping psycopg2.connect", exc)
        return original(*args, **kwargs)

    return connect



# -- asyncpg ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Caller:
    """Where an asyncpg method's statement, parameters and connection are."""

    query: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]
    params: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    connection: Callable[[Any], Any]


# ``Connection.fetch(query, *args)``: the statement and its ``$n`` parameters are the call's arguments.
_CONNECTION: Final = _Caller(lambda conn, args, kwargs: args[0] if args else kwargs.get("query"),
                             lambda args: args[1:], lambda conn: conn)


def _prepared_query(stmt: Any) -> Any:
    """A prepared statement's text: its attribute, read without ``get_query()``'s check that the connection is
    still usable (that failure is the call's own to raise, not a reader's to report)."""
    query = getattr(stmt, "_query", None)
    return query if query is not None else stmt.get_query()


# ``PreparedStatement.fetch(*args)``: the statement is the prepared one's (SQLAlchemy's asyncpg dialect prepares
# each statement, then fetches through it).
_PREPARED: Final = _Caller(lambda stmt, args, kwargs: _prepared_query(stmt), lambda args: args,
                           lambda stmt: getattr(stmt, "_connection", None))
_STATUS: Final = re.compile(r"SELECT (\d+)")


def _asyncpg_search(caller: _Caller, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Search | None:
    """The search an asyncpg call runs, if it runs one; never raises into the application."""
    try:
        query = caller.query(instance, args, kwargs)
        return recognise(query) if type(query) is str else None
    except Exception as exc:
        report_internal_error("reading a PostgreSQL statement", exc)
        return None


def _asyncpg_describer(caller: _Caller) -> Callable[[Any, tuple[Any, ...], dict[str, Any]],
                                                     dict[str, AttributeValue]]:
    def describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        """The span attributes of an asyncpg search, known before it runs."""
        attrs: dict[str, AttributeValue] = {sc.DB_OPERATION_NAME: "SELECT", sc.RAG_RETRIEVAL_SCORE_KIND: "distance"}
        search = _asyncpg_search(caller, instance, args, kwargs)
        if search is None:
            return attrs
        attrs[sc.RAG_RETRIEVAL_DISTANCE] = search.distance
        if search.table is not None:
            attrs[sc.DB_COLLECTION_NAME] = search.table
        top_k = search.top_k(caller.params(args))
        if top_k is not None:
            attrs[sc.GEN_AI_REQUEST_TOP_K] = top_k
        attrs.update(_asyncpg_server(caller.connection(instance)))
        return attrs

    return describe


def _asyncpg_server(connection: Any) -> dict[str, AttributeValue]:
    """Database, host and port of an asyncpg connection. asyncpg has no public accessor for them: they are read
    from the address it connected to (``(host, port)``, or a Unix socket's path) and its connection parameters,
    and left out where those are not there."""
    attrs: dict[str, AttributeValue] = {}
    database = getattr(getattr(connection, "_params", None), "database", None)
    if isinstance(database, str) and database:
        attrs[sc.DB_NAMESPACE] = database
    addr = getattr(connection, "_addr", None)
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
    elif isinstance(addr, str):  # a Unix socket, ``<directory>/.s.PGSQL.<port>``: libpq's host is the directory
        host, _, name = addr.rpartition("/")
        port = name.rpartition(".")[2]
    else:
        return attrs
    attrs.update(server_attributes(host, port))
    return attrs


def _read_rows(result: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found | None:
    """``fetch``'s rows, a list already in memory; ``None`` for ``fetchrow`` and ``fetchval``, whose one row or
    value does not say how many the search found."""
    if isinstance(result, list):
        return Found(len(result), None, distances=True)
    return None


def _read_status(result: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Found | None:
    """``execute``'s status, ``SELECT <rows>``: the rows the server sent, which ``execute`` discarded."""
    found = _STATUS.fullmatch(result) if isinstance(result, str) else None
    return Found(int(found.group(1)), None, distances=True) if found is not None else None


def _asyncpg_running(caller: _Caller, read: Read
                     ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """The wrapper factory of an asyncpg coroutine method that runs a statement: a search is a step, anything else
    runs untouched."""
    describe = _asyncpg_describer(caller)

    def wrap(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        searching = _STORE.searching_async(describe, read)(original)

        @functools.wraps(original)
        async def run(instance: Any, *args: Any, **kwargs: Any) -> Any:
            if _asyncpg_search(caller, instance, args, kwargs) is None:
                return await original(instance, *args, **kwargs)
            return await searching(instance, *args, **kwargs)

        return run

    return wrap
