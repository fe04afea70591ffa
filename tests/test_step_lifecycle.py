"""Every function shape × every way out: the span ends exactly once, with the right status and parent,
and the caller's context is restored."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded

tracer = trace.get_tracer("tests")


class Boom(Exception):
    """A user exception; must reach the caller unchanged."""


# --- the four shapes, each with a switch for how it ends -------------------------------------------
@ragotel.retrieval(data_source="faiss")
def sync_fn(mode: str) -> list[dict[str, Any]]:
    if mode == "raise":
        raise Boom("sync")
    return [{"id": "d1", "score": 0.9}]


@ragotel.retrieval(data_source="faiss")
async def coro_fn(mode: str) -> list[dict[str, Any]]:
    await asyncio.sleep(0)
    if mode == "raise":
        raise Boom("coro")
    if mode == "hang":
        await asyncio.sleep(10)
    return [{"id": "d1", "score": 0.9}]


@ragotel.retrieval(data_source="faiss")
def gen_fn(mode: str) -> Iterator[int]:
    for i in range(3):
        if mode == "raise" and i == 1:
            raise Boom("gen")
        yield i


@ragotel.retrieval(data_source="faiss")
async def agen_fn(mode: str) -> AsyncIterator[int]:
    for i in range(3):
        await asyncio.sleep(0)
        if mode == "raise" and i == 1:
            raise Boom("agen")
        if mode == "hang" and i == 1:
            await asyncio.sleep(10)
        yield i


def run_sync(mode: str) -> Any:
    return sync_fn(mode)


def run_coro(mode: str) -> Any:
    async def main() -> Any:
        if mode == "cancel":
            task = asyncio.create_task(coro_fn("hang"))
            await asyncio.sleep(0.01)
            task.cancel()
            return await task
        return await coro_fn(mode)

    return asyncio.run(main())


def run_gen(mode: str) -> Any:
    if mode == "break":
        for i in gen_fn("ok"):
            if i == 1:
                break  # the for loop drops the generator: CPython closes it at once
        return None
    if mode == "close":
        g = gen_fn("ok")
        next(g)
        g.close()
        return None
    if mode == "drop":
        g = gen_fn("ok")
        next(g)
        del g
        gc.collect()
        return None
    if mode == "throw":
        g = gen_fn("ok")
        next(g)
        g.throw(Boom("thrown in"))
    return list(gen_fn(mode))


def run_agen(mode: str) -> Any:
    async def main() -> Any:
        if mode == "aclose":
            g = agen_fn("ok")
            await g.__anext__()
            await g.aclose()
            return None
        if mode == "drop":
            g = agen_fn("ok")
            await g.__anext__()
            del g
            gc.collect()
            await asyncio.sleep(0.01)  # the loop's finalizer closes it in a task
            return None
        if mode == "cancel":
            async def consume() -> None:
                async for _ in agen_fn("hang"):
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.01)
            task.cancel()
            return await task
        return [i async for i in agen_fn(mode)]

    return asyncio.run(main())


CASES: list[tuple[str, Callable[[str], Any], str, StatusCode, type[BaseException] | None, str]] = [
    # (id, runner, mode, status, exception the caller sees, outcome)
    ("sync-return", run_sync, "ok", StatusCode.UNSET, None, "ok"),
    ("sync-raise", run_sync, "raise", StatusCode.ERROR, Boom, "error"),
    ("coro-return", run_coro, "ok", StatusCode.UNSET, None, "ok"),
    ("coro-raise", run_coro, "raise", StatusCode.ERROR, Boom, "error"),
    ("coro-cancelled", run_coro, "cancel", StatusCode.UNSET, asyncio.CancelledError, "cancelled"),
    ("gen-exhausted", run_gen, "ok", StatusCode.UNSET, None, "ok"),
    ("gen-raise", run_gen, "raise", StatusCode.ERROR, Boom, "error"),
    ("gen-break", run_gen, "break", StatusCode.UNSET, None, "cancelled"),
    ("gen-close", run_gen, "close", StatusCode.UNSET, None, "cancelled"),
    ("gen-dropped", run_gen, "drop", StatusCode.UNSET, None, "cancelled"),
    ("gen-throw", run_gen, "throw", StatusCode.ERROR, Boom, "error"),
    ("agen-exhausted", run_agen, "ok", StatusCode.UNSET, None, "ok"),
    ("agen-raise", run_agen, "raise", StatusCode.ERROR, Boom, "error"),
    ("agen-aclose", run_agen, "aclose", StatusCode.UNSET, None, "cancelled"),
    ("agen-dropped", run_agen, "drop", StatusCode.UNSET, None, "cancelled"),
    ("agen-cancelled", run_agen, "cancel", StatusCode.UNSET, asyncio.CancelledError, "cancelled"),
]


@pytest.mark.parametrize(("runner", "mode", "status", "raises", "outcome"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_span_ends_once_with_status_and_parent(
    recorded: Recorded,
    caplog: pytest.LogCaptureFixture,
    runner: Callable[[str], Any],
    mode: str,
    status: StatusCode,
    raises: type[BaseException] | None,
    outcome: str,
) -> None:
    caplog.set_level(logging.WARNING)
    with tracer.start_as_current_span("caller") as caller:
        if raises is None:
            runner(mode)
        else:
            with pytest.raises(raises):
                runner(mode)
        # the caller's context is back, whatever happened inside
        assert trace.get_current_span() is caller

    step = recorded.span("retrieval faiss")
    assert step.end_time is not None
    assert step.parent is not None and step.parent.span_id == caller.get_span_context().span_id
    assert step.status.status_code is status
    attrs = dict(step.attributes or {})
    assert attrs[sc.RAG_STEP_KIND] == "retrieval"
    if status is StatusCode.ERROR:
        assert attrs[sc.ERROR_TYPE].endswith("Boom")
        assert [e.name for e in step.events] == ["exception"]
    else:
        assert sc.ERROR_TYPE not in attrs
    assert not [r for r in caplog.records if "ended span" in r.getMessage()], "a span was ended twice"

    durations = recorded.points(sc.RAG_STEP_DURATION)
    assert [(p.attributes[sc.RAG_OUTCOME], p.count) for p in durations] == [(outcome, 1)]
    errors = recorded.points(sc.RAG_STEP_ERRORS)
    assert [p.value for p in errors] == ([1] if outcome == "error" else [])


def test_user_exception_passes_through_unchanged(recorded: Recorded) -> None:
    original = Boom("the very same")
    with pytest.raises(Boom) as caught, ragotel.rerank("rank"):
        raise original
    assert caught.value is original
    assert caught.value.__traceback__ is not None
    assert recorded.span("rerank rank").status.status_code is StatusCode.ERROR


def test_generator_span_is_current_only_while_its_body_runs(recorded: Recorded) -> None:
    seen: list[str] = []

    @ragotel.retrieval("stream-hits")
    def hits() -> Iterator[int]:
        for i in range(2):
            seen.append(getattr(trace.get_current_span(), "name", "?"))
            yield i

    with tracer.start_as_current_span("caller") as caller:
        for _ in hits():
            # between two next() calls the caller's span is current again
            assert trace.get_current_span() is caller
    assert seen == ["retrieval stream-hits", "retrieval stream-hits"]
    assert recorded.span("retrieval stream-hits").attributes[sc.RAG_RETRIEVAL_RESULTS_RETURNED] == 2


async def test_nesting_survives_await_and_concurrency(recorded: Recorded) -> None:
    @ragotel.embedding(model="minilm")
    async def embed(text: str) -> list[float]:
        await asyncio.sleep(0.001)
        return [0.0] * 384

    @ragotel.pipeline
    async def answer(question: str) -> None:
        async with ragotel.retrieval("search", data_source="faiss"):
            await embed(question)
            await asyncio.sleep(0)

    await asyncio.gather(answer("a"), answer("b"))

    spans = recorded.spans()
    pipelines = [s for s in spans if s.name.startswith("invoke_workflow")]
    assert len(pipelines) == 2
    for pipe in pipelines:
        children = [s for s in spans if s.parent and s.parent.span_id == pipe.context.span_id]
        assert [c.name for c in children] == ["retrieval faiss"]
        grandchildren = [s for s in spans if s.parent and s.parent.span_id == children[0].context.span_id]
        assert [g.name for g in grandchildren] == ["embeddings minilm"]
        assert grandchildren[0].context.trace_id == pipe.context.trace_id
        assert grandchildren[0].attributes[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 384
    assert pipelines[0].context.trace_id != pipelines[1].context.trace_id


def test_same_spec_reused_concurrently_as_context_manager(recorded: Recorded) -> None:
    step_spec = ragotel.prompt(template="rag-v1")

    async def build(n: int) -> None:
        async with step_spec as step:
            await asyncio.sleep(0.001 * n)
            step.record(chunks=n)

    async def main() -> None:
        await asyncio.gather(build(1), build(3), build(2))

    asyncio.run(main())
    spans = [s for s in recorded.spans() if s.name == "prompt rag-v1"]
    assert sorted(s.attributes[sc.RAG_PROMPT_CHUNKS] for s in spans) == [1, 2, 3]
    assert all(s.parent is None for s in spans)
