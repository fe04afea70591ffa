"""pgvector searches as retrieval steps, on a real PostgreSQL with pgvector (pgserver ships both): psycopg 3 (sync
and async, composed statements), psycopg2 (plain, per-call cursor factories), asyncpg (connection, prepared
statement, pool), SQLAlchemy over each driver, opentelemetry-instrumentation-psycopg / -psycopg2 on (their span
enriched, never a second one), searches inside the application's own retrieval step, failing statements, and the
statements that are not searches."""

from __future__ import annotations

import importlib.metadata
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import asyncpg.prepared_stmt
import numpy as np
import pgserver
import psycopg
import psycopg2
import psycopg2.extras
import pytest
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from pgvector.psycopg import register_vector, register_vector_async
from pgvector.psycopg2 import register_vector as register_vector2
from pgvector.sqlalchemy import Vector
from psycopg import sql
from sqlalchemy import BigInteger, Text, create_engine, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import ragotel
from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel.instrumentation.pgvector import PgvectorInstrumentor, instrument_pgvector, recognise, uninstrument_pgvector
from tests.conftest import Recorded
from tests.no_code import run_without_code

ROWS = 10
SEARCH = "SELECT id, content FROM items ORDER BY embedding <=> %s LIMIT %s"
QUERY = np.array([1.0, 0.5, 0.25])
# The DB instrumentations' tracer scopes.
PSYCOPG_SCOPE = "opentelemetry.instrumentation.psycopg"
PSYCOPG2_SCOPE = "opentelemetry.instrumentation.psycopg2"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One PostgreSQL server with pgvector for the session, with a table of ten 3-dimensional vectors. Its data
    directory is directly under the temporary directory: run as root, pgserver runs PostgreSQL as its own user,
    which cannot enter pytest's private temporary directories."""
    started = time.perf_counter()
    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="ragotel-pgvector-")), cleanup_mode="delete")
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    print(f"\npgserver started with pgvector in {time.perf_counter() - started:.2f} s")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        register_vector(conn)
        conn.execute("CREATE TABLE items (id bigserial PRIMARY KEY, content text, embedding vector(3))")
        rng = np.random.default_rng(0)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO items (content, embedding) VALUES (%s, %s)",
                            [(f"chunk {i}", rng.standard_normal(3)) for i in range(ROWS)])
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    instrument_pgvector()
    yield
    uninstrument_pgvector()


@pytest.fixture
def conn(postgres: Any) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres.get_uri(), autocommit=True) as found:
        register_vector(found)
        yield found


@pytest.fixture
async def aconn(postgres: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(postgres.get_uri(), autocommit=True) as found:
        await register_vector_async(found)
        yield found


@pytest.fixture
def conn2(postgres: Any) -> Iterator[Any]:
    found = psycopg2.connect(postgres.get_uri())
    found.autocommit = True
    register_vector2(found)
    yield found
    found.close()


@pytest.fixture
def psycopg_instrumented() -> Iterator[None]:
    PsycopgInstrumentor().instrument()
    yield
    PsycopgInstrumentor().uninstrument()


def pgvector_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if (s.attributes or {}).get(sc.GEN_AI_DATA_SOURCE_ID) == "pgvector"]


def step_points(recorded: Recorded) -> list[Any]:
    return [p for p in recorded.points(sc.RAG_STEP_DURATION) if p.attributes.get(sc.RAG_STEP_NAME) == "pgvector"]


def documents(recorded: Recorded, step: str = "pgvector") -> float:
    return sum(p.value or 0 for p in recorded.points(sc.RAG_RETRIEVAL_DOCUMENTS)
               if p.attributes.get(sc.RAG_STEP_NAME) == step)


def assert_search_span(span: Any, *, top_k: int, returned: int, distance: str, postgres: Any) -> None:
    attrs = span.attributes
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    assert attrs[sc.DB_SYSTEM_NAME] == "postgresql"
    assert attrs[sc.DB_COLLECTION_NAME] == "items"
    assert attrs[sc.DB_OPERATION_NAME] == "SELECT"
    assert attrs[sc.DB_NAMESPACE] == "postgres"
    assert attrs[sc.SERVER_ADDRESS] == str(postgres.pgdata)  # a Unix-socket connection: its directory
    assert attrs[sc.SERVER_PORT] == 5432
    assert attrs[sc.GEN_AI_REQUEST_TOP_K] == top_k
    assert attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == returned
    assert attrs[sc.RAG_RETRIEVAL_DISTANCE] == distance
    assert attrs[sc.RAG_RETRIEVAL_SCORE_KIND] == "distance"
    assert sc.RAG_RETRIEVAL_SCORE_MAX not in attrs  # the scores are in the rows, which stay the application's
    assert "db.statement.parameters" not in attrs


# -- psycopg 3 -----------------------------------------------------------------------------------------------
def test_psycopg_searches_are_retrieval_steps_and_leave_the_rows_to_the_application(
        recorded: Recorded, conn: psycopg.Connection[Any], postgres: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(SEARCH, (QUERY, 3))
        assert len(cur.fetchall()) == 3  # nothing was fetched before the application
        cur.execute("SELECT id FROM items ORDER BY embedding <-> %(q)s LIMIT 4", {"q": QUERY})
        assert len(cur.fetchall()) == 4
        cur.execute("SELECT id FROM items ORDER BY embedding <#> %(q)s LIMIT %(k)s", {"q": QUERY, "k": 20})
        assert len(cur.fetchall()) == ROWS  # LIMIT past the table: the rows there are
    first, second, third = pgvector_spans(recorded)
    assert first.name == "retrieval pgvector"
    assert_search_span(first, top_k=3, returned=3, distance="cosine", postgres=postgres)
    assert_search_span(second, top_k=4, returned=4, distance="l2", postgres=postgres)
    assert_search_span(third, top_k=20, returned=ROWS, distance="negative_inner_product", postgres=postgres)
    assert "db.query.text" not in first.attributes and "db.statement" not in first.attributes  # the DB
    # instrumentation's to record, when it is on
    (point,) = step_points(recorded)
    assert point.count == 3
    assert point.attributes[sc.RAG_RETRIEVAL_QUALITY] == "ok"
    assert documents(recorded) == 3 + 4 + ROWS


def test_statements_that_are_not_searches_make_no_span_and_no_record(
        recorded: Recorded, conn: psycopg.Connection[Any], conn2: Any) -> None:
    statements = [
        ("SELECT count(*) FROM items", None),
        ("SELECT id FROM items WHERE id < %s ORDER BY id LIMIT 3", (5,)),  # a "<" that is no pgvector operator
        ("SELECT id FROM items ORDER BY embedding <-> %s", (QUERY,)),  # every row: no LIMIT, no top-k search
        ("SELECT embedding <-> %s FROM items WHERE id = 1", (QUERY,)),  # a distance, not a ranking
        ("EXPLAIN SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3", (QUERY,)),  # a plan, not the hits
        ("CREATE TEMP TABLE nearest AS SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3", (QUERY,)),
        ("UPDATE items SET content = content WHERE id = %s", (1,)),
    ]
    for statement, params in statements:
        conn.execute(statement, params)
        with conn2.cursor() as cur:
            cur.execute(statement, params)
    assert recorded.spans() == []
    assert step_points(recorded) == []


def test_psycopg_composed_statements_are_recognised(recorded: Recorded, conn: psycopg.Connection[Any]) -> None:
    query = sql.SQL("SELECT id FROM {} ORDER BY embedding <-> %s LIMIT {}").format(sql.Identifier("items"),
                                                                                  sql.Literal(2))
    assert len(conn.execute(query, (QUERY,)).fetchall()) == 2
    conn.execute(sql.SQL("SELECT {} FROM items").format(sql.Identifier("id")))  # no operator: not rendered, no span
    (span,) = pgvector_spans(recorded)
    assert (span.attributes[sc.DB_COLLECTION_NAME], span.attributes[sc.GEN_AI_REQUEST_TOP_K]) == ('"items"', 2)


async def test_psycopg_async_searches(recorded: Recorded, aconn: psycopg.AsyncConnection[Any], postgres: Any) -> None:
    for k in (1, 2, 5):
        cur = await aconn.execute(SEARCH, (QUERY, k))
        assert len(await cur.fetchall()) == k
    await aconn.execute("SELECT count(*) FROM items")
    spans = pgvector_spans(recorded)
    assert [s.attributes[sc.GEN_AI_REQUEST_TOP_K] for s in spans] == [1, 2, 5]
    for span, k in zip(spans, (1, 2, 5), strict=True):
        assert_search_span(span, top_k=k, returned=k, distance="cosine", postgres=postgres)
    (point,) = step_points(recorded)
    assert point.count == 3
    assert documents(recorded) == 8


async def test_psycopg_async_failing_search_raises_unchanged(recorded: Recorded,
                                                             aconn: psycopg.AsyncConnection[Any]) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable, match="missing"):
        await aconn.execute("SELECT id FROM missing ORDER BY embedding <-> %s LIMIT 3", (QUERY,))
    (span,) = pgvector_spans(recorded)
    assert span.attributes[sc.ERROR_TYPE] == "psycopg.errors.UndefinedTable"
    assert span.status.status_code.name == "ERROR"


def test_a_failing_search_raises_the_drivers_exception_unchanged_and_is_recorded(
        recorded: Recorded, conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable, match='relation "missing" does not exist') as raised:
        conn.execute("SELECT id FROM missing ORDER BY embedding <-> %s LIMIT 3", (QUERY,))
    assert type(raised.value) is psycopg.errors.UndefinedTable
    (span,) = pgvector_spans(recorded)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[sc.ERROR_TYPE] == "psycopg.errors.UndefinedTable"
    assert span.attributes[sc.DB_COLLECTION_NAME] == "missing"
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert (error.attributes[sc.RAG_STEP_NAME], error.value) == ("pgvector", 1)
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection goes on (autocommit)


class RowcountFailingCursor(psycopg.Cursor[Any]):
    """Failure injection: a cursor whose ``rowcount`` raises, as a driver release that changed it might."""

    @property
    def rowcount(self) -> int:
        raise RuntimeError("rowcount is gone")


def test_a_reader_that_raises_leaves_the_applications_result_untouched(
        recorded: Recorded, conn: psycopg.Connection[Any]) -> None:
    conn.cursor_factory = RowcountFailingCursor
    cur = conn.cursor()
    assert cur.execute(SEARCH, (QUERY, 3)) is cur
    assert [row[1] for row in cur.fetchall()] == [row[1] for row in
                                                  psycopg.Cursor(conn).execute(SEARCH, (QUERY, 3)).fetchall()]
    first, second = pgvector_spans(recorded)
    assert sc.RAG_RETRIEVAL_RESULTS_RETURNED not in first.attributes  # not read: nothing made up
    assert second.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 3
    assert first.status.status_code.name == "UNSET"
    # Timed both; only the one whose results were read is judged.
    points = step_points(recorded)
    assert sorted((p.attributes.get(sc.RAG_RETRIEVAL_QUALITY, "unread"), p.count) for p in points) == [
        ("ok", 1), ("unread", 1)]


def test_content_capture_puts_no_statement_or_vector_on_the_span(recorded: Recorded,
                                                                 conn: psycopg.Connection[Any]) -> None:
    runtime.update(content_spans=True)
    conn.execute(SEARCH, (QUERY, 2))
    (span,) = pgvector_spans(recorded)
    values = " ".join(str(v) for v in span.attributes.values())
    assert "ORDER BY" not in values and "0.25" not in values
    assert sc.GEN_AI_RETRIEVAL_DOCUMENTS not in span.attributes  # the rows were not read, so no documents


# -- psycopg2 ------------------------------------------------------------------------------------------------
def test_psycopg2_searches_with_any_cursor_class(recorded: Recorded, conn2: Any, postgres: Any) -> None:
    with conn2.cursor() as cur:
        cur.execute(SEARCH, (QUERY, 3))
        assert len(cur.fetchall()) == 3
    with conn2.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:  # a per-call cursor class
        cur.execute("SELECT id, content FROM items ORDER BY embedding <-> %(q)s LIMIT %(k)s", {"q": QUERY, "k": 2})
        rows = cur.fetchall()
        assert isinstance(cur, psycopg2.extras.RealDictCursor) and [set(r) for r in rows] == [{"id", "content"}] * 2
    # A server-side cursor: the search runs as it is fetched, so it is not recorded.
    with conn2.cursor("named", withhold=True) as cur:
        cur.execute(SEARCH, (QUERY, 3))
        assert len(cur.fetchall()) == 3
    first, second = pgvector_spans(recorded)
    assert_search_span(first, top_k=3, returned=3, distance="cosine", postgres=postgres)
    assert_search_span(second, top_k=2, returned=2, distance="l2", postgres=postgres)
    (point,) = step_points(recorded)
    assert point.count == 2
    assert documents(recorded) == 5


def test_psycopg2_keeps_the_applications_connection_class(recorded: Recorded, postgres: Any) -> None:
    conn = psycopg2.connect(postgres.get_uri(), psycopg2.extras.RealDictConnection)  # connection_factory, by position
    try:
        register_vector2(conn)
        assert isinstance(conn, psycopg2.extras.RealDictConnection)
        with conn.cursor() as cur:  # its own default cursor class, under which the search is recorded
            cur.execute(SEARCH, (QUERY, 2))
            assert isinstance(cur, psycopg2.extras.RealDictCursor)
            assert [set(row) for row in cur.fetchall()] == [{"id", "content"}] * 2
    finally:
        conn.close()
    (span,) = pgvector_spans(recorded)
    assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2


def test_psycopg2_failing_search_raises_unchanged(recorded: Recorded, conn2: Any) -> None:
    with conn2.cursor() as cur, pytest.raises(psycopg2.errors.UndefinedTable, match="missing"):
        cur.execute("SELECT id FROM missing ORDER BY embedding <-> %s LIMIT 3", (QUERY,))
    (span,) = pgvector_spans(recorded)
    assert span.attributes[sc.ERROR_TYPE] == "psycopg2.errors.UndefinedTable"


# -- SQLAlchemy ----------------------------------------------------------------------------------------------
class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector(3))


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_sqlalchemy_searches_go_through_the_driver(recorded: Recorded, postgres: Any, driver: str) -> None:
    engine = create_engine(f"postgresql+{driver}://postgres@/postgres?host={postgres.pgdata}")
    try:
        with Session(engine) as session:
            for k in (2, 3, 4):
                found = session.scalars(select(Item).order_by(Item.embedding.l2_distance(QUERY)).limit(k)).all()
                assert len(found) == k
            nearest = session.scalars(select(Item).order_by(Item.embedding.cosine_distance(QUERY)).limit(1)).one()
            assert isinstance(nearest, Item)
            session.scalars(select(Item).where(Item.id < 3)).all()  # not a search
    finally:
        engine.dispose()
    spans = pgvector_spans(recorded)
    assert [(s.attributes[sc.GEN_AI_REQUEST_TOP_K], s.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED],
             s.attributes[sc.RAG_RETRIEVAL_DISTANCE]) for s in spans] == [
        (2, 2, "l2"), (3, 3, "l2"), (4, 4, "l2"), (1, 1, "cosine")]
    assert {s.attributes[sc.DB_COLLECTION_NAME] for s in spans} == {"items"}
    (point,) = step_points(recorded)
    assert point.count == 4
    assert documents(recorded) == 10



# -- asyncpg -------------------------------------------------------------------------------------------------
ASYNCPG_SEARCH = "SELECT id, content FROM items ORDER BY embedding <=> $1::vector LIMIT $2"
QUERY_TEXT = "[1, 0.5, 0.25]"  # no codec registered: the vector goes as text, cast in the statement


@pytest.fixture
async def apg(postgres: Any) -> AsyncIterator[asyncpg.Connection]:
    found = await asyncpg.connect(postgres.get_uri())
    yield found
    await found.close()


async def test_asyncpg_searches_are_retrieval_steps_one_per_search(recorded: Recorded, apg: asyncpg.Connection,
                                                                   postgres: Any) -> None:
    for k in (1, 2, 5):
        assert len(await apg.fetch(ASYNCPG_SEARCH, QUERY_TEXT, k)) == k
    row = await apg.fetchrow("SELECT id FROM items ORDER BY embedding <-> $1::vector LIMIT 3", QUERY_TEXT)
    assert row is not None
    assert await apg.fetchval("SELECT id FROM items ORDER BY embedding <#> $1::vector LIMIT 4", QUERY_TEXT) is not None
    assert await apg.execute(ASYNCPG_SEARCH, QUERY_TEXT, 6) == "SELECT 6"
    stmt = await apg.prepare(ASYNCPG_SEARCH)  # preparing runs nothing: no span until it is fetched through
    assert len(await stmt.fetch(QUERY_TEXT, 7)) == 7
    spans = pgvector_spans(recorded)
    assert [(s.attributes[sc.GEN_AI_REQUEST_TOP_K], s.attributes.get(sc.RAG_RETRIEVAL_RESULTS_RETURNED),
             s.attributes[sc.RAG_RETRIEVAL_DISTANCE]) for s in spans] == [
        (1, 1, "cosine"), (2, 2, "cosine"), (5, 5, "cosine"), (3, None, "l2"), (4, None, "negative_inner_product"),
        (6, 6, "cosine"), (7, 7, "cosine")]
    for span, k in zip(spans[:3], (1, 2, 5), strict=True):
        assert_search_span(span, top_k=k, returned=k, distance="cosine", postgres=postgres)
    # fetchrow's and fetchval's steps record no results, so no quality: their points are apart
    assert sum(p.count for p in step_points(recorded)) == 7
    assert documents(recorded) == 1 + 2 + 5 + 6 + 7


async def test_asyncpg_statements_that_are_not_searches_make_no_span(recorded: Recorded,
                                                                     apg: asyncpg.Connection) -> None:
    assert await apg.fetchval("SELECT count(*) FROM items") == ROWS
    assert len(await apg.fetch("SELECT id FROM items WHERE id < $1 ORDER BY id LIMIT 3", 100)) == 3
    await apg.execute("SELECT 1")
    assert recorded.spans() == []
    assert step_points(recorded) == []


async def test_asyncpg_failing_search_raises_unchanged(recorded: Recorded, apg: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.exceptions.UndefinedTableError, match='relation "missing" does not exist') as raised:
        await apg.fetch("SELECT id FROM missing ORDER BY embedding <-> $1::vector LIMIT 3", QUERY_TEXT)
    assert type(raised.value) is asyncpg.exceptions.UndefinedTableError
    (span,) = pgvector_spans(recorded)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[sc.ERROR_TYPE] == "asyncpg.exceptions.UndefinedTableError"
    assert span.attributes[sc.DB_COLLECTION_NAME] == "missing"
    assert await apg.fetchval("SELECT 1") == 1


async def test_sqlalchemy_asyncpg_searches_are_one_span_each(recorded: Recorded, postgres: Any) -> None:
    engine = create_async_engine(f"postgresql+asyncpg://postgres@/postgres?host={postgres.pgdata}")
    search = text("SELECT id FROM items ORDER BY embedding <=> CAST(:q AS vector) LIMIT :k")
    try:
        async with engine.connect() as conn:
            for k in (2, 3, 4):
                assert len((await conn.execute(search, {"q": QUERY_TEXT, "k": k})).all()) == k
            assert len((await conn.execute(text("SELECT id FROM items WHERE id < 3"))).all()) == 2  # not a search
        async with AsyncSession(engine) as session:
            found = (await session.scalars(select(Item).order_by(Item.embedding.l2_distance(QUERY)).limit(5))).all()
            assert len(found) == 5
    finally:
        await engine.dispose()
    spans = pgvector_spans(recorded)
    assert [(s.attributes[sc.GEN_AI_REQUEST_TOP_K], s.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED],
             s.attributes[sc.RAG_RETRIEVAL_DISTANCE]) for s in spans] == [
        (2, 2, "cosine"), (3, 3, "cosine"), (4, 4, "cosine"), (5, 5, "l2")]
    assert {s.attributes[sc.DB_COLLECTION_NAME] for s in spans} == {"items"}
    (point,) = step_points(recorded)
    assert point.count == 4


async def test_asyncpg_pool_searches_are_one_span_each(recorded: Recorded, postgres: Any) -> None:
    pool = await asyncpg.create_pool(postgres.get_uri(), min_size=1, max_size=1)
    try:
        assert len(await pool.fetch(ASYNCPG_SEARCH, QUERY_TEXT, 3)) == 3
        async with pool.acquire() as conn:  # a proxy of the pooled connection
            assert len(await conn.fetch(ASYNCPG_SEARCH, QUERY_TEXT, 2)) == 2
    finally:
        await pool.close()
    assert [s.attributes[sc.GEN_AI_REQUEST_TOP_K] for s in pgvector_spans(recorded)] == [3, 2]
    assert len(recorded.spans()) == 2


async def test_uninstrument_restores_asyncpg(recorded: Recorded, apg: asyncpg.Connection) -> None:
    assert hasattr(asyncpg.Connection.fetch, "__wrapped__")
    uninstrument_pgvector()
    for cls, name in [(asyncpg.Connection, "fetch"), (asyncpg.Connection, "fetchrow"),
                      (asyncpg.Connection, "fetchval"), (asyncpg.Connection, "execute"),
                      (asyncpg.prepared_stmt.PreparedStatement, "fetch"),
                      (asyncpg.prepared_stmt.PreparedStatement, "fetchrow"),
                      (asyncpg.prepared_stmt.PreparedStatement, "fetchval")]:
        assert getattr(cls, name).__module__.startswith("asyncpg"), name
    assert len(await apg.fetch(ASYNCPG_SEARCH, QUERY_TEXT, 2)) == 2
    assert recorded.spans() == []
    instrument_pgvector()
    assert hasattr(asyncpg.Connection.fetch, "__wrapped__")

# -- opentelemetry-instrumentation-psycopg / -psycopg2 on ---------------------------------------------------
def test_the_psycopg_instrumentations_span_is_enriched_never_doubled(
        recorded: Recorded, postgres: Any, psycopg_instrumented: None) -> None:
    with psycopg.connect(postgres.get_uri(), autocommit=True) as conn:  # opened once it is instrumented
        register_vector(conn)
        recorded.clear()
        for k in (1, 2, 3):
            assert len(conn.execute(SEARCH, (QUERY, k)).fetchall()) == k
        conn.execute("SELECT count(*) FROM items")
    spans = recorded.spans()
    assert len(spans) == 4  # one DB span per statement, the searches among them enriched
    searches = pgvector_spans(recorded)
    assert len(searches) == 3
    for span, k in zip(searches, (1, 2, 3), strict=True):
        assert span.instrumentation_scope.name == PSYCOPG_SCOPE
        assert span.name == "SELECT"  # its owner's name
        assert_search_span(span, top_k=k, returned=k, distance="cosine", postgres=postgres)
        assert span.attributes[sc.RAG_STEP_NAME] == "pgvector"
    (point,) = step_points(recorded)
    assert point.count == 3
    assert set(point.span_ids) <= {s.context.span_id for s in searches} and point.span_ids
    assert documents(recorded) == 6


async def test_the_psycopg_instrumentations_async_span_is_enriched(
        recorded: Recorded, postgres: Any, psycopg_instrumented: None) -> None:
    async with await psycopg.AsyncConnection.connect(postgres.get_uri(), autocommit=True) as aconn:
        await register_vector_async(aconn)
        recorded.clear()
        for k in (2, 3):
            cur = await aconn.execute(SEARCH, (QUERY, k))
            assert len(await cur.fetchall()) == k
    spans = recorded.spans()
    assert [s.instrumentation_scope.name for s in spans] == [PSYCOPG_SCOPE] * 2
    assert [s.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] for s in spans] == [2, 3]
    (point,) = step_points(recorded)
    assert point.count == 2


def test_a_failing_search_marks_the_db_span(recorded: Recorded, postgres: Any, psycopg_instrumented: None) -> None:
    with psycopg.connect(postgres.get_uri(), autocommit=True) as conn:
        register_vector(conn)
        recorded.clear()
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT id FROM missing ORDER BY embedding <-> %s LIMIT 3", (QUERY,))
    (span,) = recorded.spans()
    assert span.instrumentation_scope.name == PSYCOPG_SCOPE
    assert span.attributes[sc.ERROR_TYPE] == "psycopg.errors.UndefinedTable"
    assert span.status.status_code.name == "ERROR"
    assert [e.name for e in span.events] == ["exception"]  # the span's owner records it; ragotel adds no second
    (error,) = recorded.points(sc.RAG_STEP_ERRORS)
    assert error.attributes[sc.RAG_STEP_NAME] == "pgvector"


@pytest.mark.parametrize("ours_first", [True, False], ids=["pgvector-first", "psycopg2-instrumentation-first"])
def test_the_psycopg2_instrumentations_span_is_enriched_in_either_order(
        recorded: Recorded, postgres: Any, ours_first: bool) -> None:
    if not ours_first:  # instrumented again after the DB instrumentation, whose connect it then wraps
        uninstrument_pgvector()
    Psycopg2Instrumentor().instrument()
    if not ours_first:
        instrument_pgvector()
    try:
        conn = psycopg2.connect(postgres.get_uri())
        conn.autocommit = True
        register_vector2(conn)
        recorded.clear()
        for factory in (None, psycopg2.extras.DictCursor):
            with conn.cursor(cursor_factory=factory) as cur:
                cur.execute(SEARCH, (QUERY, 2))
                assert len(cur.fetchall()) == 2
        conn.close()
    finally:
        if not ours_first:  # undone in the reverse order, so that each puts back what it replaced
            uninstrument_pgvector()
        Psycopg2Instrumentor().uninstrument()
    spans = recorded.spans()
    # One span per search: the DB instrumentation's, enriched; it does not trace a per-call cursor class
    # (DictCursor), whose search then has ragotel's own span.
    assert [s.instrumentation_scope.name for s in spans] == [PSYCOPG2_SCOPE, "ragotel"]
    for span in spans:
        assert span.attributes[sc.GEN_AI_DATA_SOURCE_ID] == "pgvector"
        assert span.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2
    assert spans[0].attributes["db.statement"] == SEARCH  # the DB instrumentation's text, kept
    assert "db.statement" not in spans[1].attributes
    (point,) = step_points(recorded)
    assert point.count == 2


# -- nesting ---------------------------------------------------------------------------------------------------
def test_inside_the_applications_retrieval_it_is_a_sub_step_that_counts_nothing_twice(
        recorded: Recorded, conn: psycopg.Connection[Any]) -> None:
    @ragotel.retrieval("search")
    def search(query: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
        rows = conn.execute("SELECT id, embedding <=> %s AS distance FROM items ORDER BY distance LIMIT %s",
                            (query, k)).fetchall()
        return [{"id": i, "score": 1 - d} for i, d in rows]

    search(QUERY)
    search(QUERY, 2)
    outer = [s for s in recorded.spans() if s.name == "retrieval search"]
    inner = pgvector_spans(recorded)
    assert len(outer) == len(inner) == 2
    assert [s.parent.span_id for s in inner] == [s.context.span_id for s in outer]
    assert [s.attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] for s in inner] == [3, 2]
    assert [s.attributes[sc.GEN_AI_REQUEST_TOP_K] for s in inner] == [3, 2]  # the second %s
    assert documents(recorded, "search") == 5
    assert documents(recorded) == 0  # counted once, by the application's step
    (sub,) = step_points(recorded)
    assert sub.count == 2
    assert sc.RAG_RETRIEVAL_QUALITY not in sub.attributes  # judged once, on the application's step


def test_inside_the_applications_retrieval_the_db_span_is_the_sub_step(
        recorded: Recorded, postgres: Any, psycopg_instrumented: None) -> None:
    with psycopg.connect(postgres.get_uri(), autocommit=True) as conn:
        register_vector(conn)
        recorded.clear()
        with ragotel.retrieval("search") as step:
            rows = conn.execute(SEARCH, (QUERY, 3)).fetchall()
            step.record(documents=[{"id": r[0]} for r in rows])
    outer = recorded.span("retrieval search")
    (db,) = [s for s in recorded.spans() if s is not outer]
    assert db.instrumentation_scope.name == PSYCOPG_SCOPE and db.parent.span_id == outer.context.span_id
    assert db.attributes[sc.RAG_STEP_NAME] == "pgvector"
    assert documents(recorded, "search") == 3 and documents(recorded) == 0
    (sub,) = step_points(recorded)
    assert sub.count == 1


def test_a_step_that_is_the_pgvector_search_gets_its_facts_and_no_second_span(
        recorded: Recorded, conn: psycopg.Connection[Any]) -> None:
    @ragotel.retrieval("pgvector", data_source="pgvector")
    def nearest(query: np.ndarray, k: int) -> list[tuple[int, str]]:
        return [(int(i), str(c)) for i, c in conn.execute(SEARCH, (query, k)).fetchall()]

    assert len(nearest(QUERY, 2)) == 2
    (span,) = recorded.spans()
    assert span.name == "retrieval pgvector"
    assert (span.attributes[sc.DB_COLLECTION_NAME], span.attributes[sc.RAG_RETRIEVAL_DISTANCE]) == ("items", "cosine")
    (point,) = step_points(recorded)
    assert point.count == 1


def test_suppressed_searches_are_plain(recorded: Recorded, conn: psycopg.Connection[Any]) -> None:
    with suppress_instrumentation():
        assert len(conn.execute(SEARCH, (QUERY, 2)).fetchall()) == 2
    assert recorded.spans() == []


# -- instrumenting -------------------------------------------------------------------------------------------
def test_uninstrument_restores_the_drivers(recorded: Recorded, postgres: Any) -> None:
    opened_while_instrumented = psycopg2.connect(postgres.get_uri())
    register_vector2(opened_while_instrumented)
    assert hasattr(psycopg.Cursor.execute, "__wrapped__") and hasattr(psycopg2.connect, "__wrapped__")
    uninstrument_pgvector()
    assert not hasattr(psycopg.Cursor.execute, "__wrapped__")
    assert not hasattr(psycopg.AsyncCursor.execute, "__wrapped__")
    assert psycopg2.connect.__module__ == "psycopg2" and not hasattr(psycopg2.connect, "__wrapped__")
    with psycopg.connect(postgres.get_uri(), autocommit=True) as conn:
        register_vector(conn)
        conn.execute(SEARCH, (QUERY, 2))
    with opened_while_instrumented.cursor() as cur:  # a connection's classes outlive instrumenting: they stand aside
        cur.execute(SEARCH, (QUERY, 2))
        assert len(cur.fetchall()) == 2
    opened_while_instrumented.close()
    assert recorded.spans() == []
    instrument_pgvector()
    assert hasattr(psycopg.Cursor.execute, "__wrapped__")


def test_the_loader_checks_the_installed_driver() -> None:
    assert PgvectorInstrumentor().instrumentation_dependencies() == ("psycopg >= 3.1",)


def test_asyncpg_alone_satisfies_the_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    def version(name: str) -> str:
        if name != "asyncpg":
            raise importlib.metadata.PackageNotFoundError(name)
        return "0.32.0"

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert PgvectorInstrumentor().instrumentation_dependencies() == ("asyncpg >= 0.27",)


# -- recognising searches ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("statement", "distance", "table", "top_k", "params"), [
    ("SELECT id FROM items ORDER BY embedding <-> %s LIMIT 5", "l2", "items", 5, None),
    ("SELECT id FROM items ORDER BY embedding <=> %s LIMIT %s", "cosine", "items", 7, ("v", 7)),
    ("SELECT id FROM items ORDER BY embedding <#> %(q)s LIMIT %(k)s", "negative_inner_product", "items", 4,
     {"q": "v", "k": 4}),
    ("SELECT id FROM items ORDER BY embedding <+> $1 LIMIT $2", "l1", "items", 6, ["v", 6]),
    ("SELECT id FROM items ORDER BY bits <~> '101' LIMIT 3", "hamming", "items", 3, None),
    ("SELECT id FROM items ORDER BY bits <%> '101' LIMIT 3", "jaccard", "items", 3, None),
    ("SELECT id FROM items ORDER BY bits <%%> %s LIMIT 3", "jaccard", "items", 3, ("101",)),  # % doubled
    ('select id from public."My Items" order by embedding <-> %s limit 2', "l2", 'public."My Items"', 2, None),
    ("SELECT id FROM items WHERE tag IN (SELECT tag FROM allowed) ORDER BY embedding <-> %s LIMIT 3", "l2",
     "items", 3, None),
    ("/* app */ WITH s AS (SELECT id, RANK() OVER (ORDER BY embedding <=> %(e)s) AS r FROM docs "
     "ORDER BY embedding <=> %(e)s LIMIT 20) SELECT id FROM s ORDER BY r LIMIT %(k)s", "cosine", "docs", 5,
     {"e": "v", "k": 5}),
])
def test_searches_are_recognised(statement: str, distance: str, table: str, top_k: int, params: Any) -> None:
    found = recognise(statement)
    assert found is not None
    assert (found.distance, found.table, found.top_k(params)) == (distance, table, top_k)


@pytest.mark.parametrize("statement", [
    "SELECT 1",
    "SELECT id FROM items WHERE a < 3 AND b <> 4 ORDER BY id LIMIT 3",
    "SELECT id FROM items ORDER BY embedding <-> %s",
    "SELECT id FROM items ORDER BY embedding <-> %s LIMIT ALL",
    "EXPLAIN ANALYZE SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3",
    "INSERT INTO nearest SELECT id FROM items ORDER BY embedding <-> %s LIMIT 3",
    "CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)",
])
def test_other_statements_are_not_searches(statement: str) -> None:
    assert recognise(statement) is None


NO_CODE_APP = '''
"""A script with no telemetry code: two nearest-neighbour searches and one other statement."""
import sys

import psycopg

with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for _ in range(2):
        rows = conn.execute("SELECT id FROM items ORDER BY embedding <=> %s::vector LIMIT 3", ("[1, 0, 0]",)).fetchall()
    total = conn.execute("SELECT count(*) FROM items").fetchone()
print("FOUND", len(rows), total[0])
'''


@pytest.mark.parametrize("with_psycopg", [False, True], ids=["alone", "with-opentelemetry-instrumentation-psycopg"])
def test_opentelemetry_instrument_gives_one_retrieval_span_per_search_with_no_code(
        tmp_path: Path, postgres: Any, with_psycopg: bool) -> None:
    instrumentors = {"ragotel_pgvector", "psycopg"} if with_psycopg else {"ragotel_pgvector"}
    proc, spans = run_without_code(tmp_path, NO_CODE_APP, instrumentors, postgres.get_uri())
    assert proc.returncode == 0, proc.stderr
    assert f"FOUND 3 {ROWS}" in proc.stdout
    searches = [s for s in spans if s["attributes"].get(sc.GEN_AI_DATA_SOURCE_ID) == "pgvector"]
    assert len(searches) == 2
    for span in searches:
        attrs = span["attributes"]
        assert (attrs[sc.DB_SYSTEM_NAME], attrs[sc.DB_COLLECTION_NAME], attrs[sc.RAG_RETRIEVAL_DISTANCE]) == (
            "postgresql", "items", "cosine")
        assert (attrs[sc.GEN_AI_REQUEST_TOP_K], attrs[sc.RAG_RETRIEVAL_RESULTS_RETURNED]) == (3, 3)
    # with the contrib instrumentation each search is its DB span, enriched; the count(*) is its span alone
    assert len(spans) == (3 if with_psycopg else 2)
