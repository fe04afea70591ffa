"""Decorated functions of the four shapes: plain, coroutine, generator and async generator.

All four run the body the same way — ``with step:`` around each run of it, so the step's span is
current exactly while the body runs — and end the step exactly once: on return, on an exception
(recorded, status ERROR, re-raised unchanged), on cancellation, or when a generator is exhausted,
closed early or garbage-collected unfinished. A generator's step starts at its first ``next()``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, cast

from ragotel._core import runtime
from ragotel._core.safe import report_internal_error
from ragotel._genai import hits
from ragotel._steps.spec import Spec
from ragotel._steps.step import LISTING, Step

F = TypeVar("F", bound=Callable[..., Any])


def wrap(spec: Spec, fn: F) -> F:
    if inspect.isasyncgenfunction(fn):
        return cast(F, _async_generator(spec, fn))
    if inspect.iscoroutinefunction(fn):
        return cast(F, _coroutine(spec, fn))
    if inspect.isgeneratorfunction(fn):
        return cast(F, _generator(spec, fn))
    return cast(F, _function(spec, fn))


def _begin(spec: Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Step:
    step = Step.start(spec)
    if spec.probes:
        try:
            step._read_arguments(args, kwargs)
        except Exception as exc:
            report_internal_error("reading arguments", exc)
    return step


def _succeed(step: Step, result: Any) -> None:
    try:
        step._read_result(result)
    except Exception as exc:
        report_internal_error("reading a result", exc)
    step.stop()


def _function(spec: Spec, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if runtime.current.disabled:
            return fn(*args, **kwargs)
        step = _begin(spec, args, kwargs)
        try:  # Step.run, inlined: the arguments are not packed a second time on every call
            with step:
                result = fn(*args, **kwargs)
        except BaseException as exc:
            step.end(exc)
            raise
        _succeed(step, result)
        return result

    return wrapper


def _coroutine(spec: Spec, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if runtime.current.disabled:
            return await fn(*args, **kwargs)
        step = _begin(spec, args, kwargs)
        try:
            with step:
                result = await fn(*args, **kwargs)
        except BaseException as exc:
            step.end(exc)
            raise
        _succeed(step, result)
        return result

    return wrapper


class _Tally:
    """What a listing generator yielded: how many hits, and the scores of the first ones."""

    __slots__ = ("count", "scores")

    def __init__(self) -> None:
        self.count = 0
        self.scores: list[float] = []

    def add(self, item: Any) -> None:
        self.count += 1
        if len(self.scores) < hits.MAX_SCORED_HITS:
            try:
                score = hits.score_of(item)
            except Exception:
                score = None
            if score is not None:
                self.scores.append(score)


def _end_listing(step: Step, tally: _Tally | None) -> None:
    if tally is not None:
        step._record_streamed_hits(tally.count, tally.scores)
    step.end()


def _generator(spec: Spec, fn: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        if runtime.current.disabled:
            return (yield from fn(*args, **kwargs))
        step = _begin(spec, args, kwargs)
        tally = _Tally() if spec.kind in LISTING else None
        sent: Any = None
        thrown: BaseException | None = None
        try:
            inner = fn(*args, **kwargs)  # runs nothing of the body yet
            while True:
                with step:
                    value = inner.send(sent) if thrown is None else inner.throw(thrown)
                if tally is not None:
                    tally.add(value)
                sent, thrown = None, None
                try:
                    sent = yield value
                except GeneratorExit as closing:
                    with step:
                        inner.close()
                    step.end(closing)
                    raise
                except BaseException as exc:  # thrown in by the caller: the body decides
                    thrown = exc
        except StopIteration as stop:
            _end_listing(step, tally)
            return stop.value
        except BaseException as exc:
            step.end(exc)  # does nothing if the step already ended
            raise

    return wrapper


def _async_generator(spec: Spec, fn: Callable[..., AsyncGenerator[Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        if runtime.current.disabled:
            async for item in fn(*args, **kwargs):
                yield item
            return
        step = _begin(spec, args, kwargs)
        tally = _Tally() if spec.kind in LISTING else None
        sent: Any = None
        thrown: BaseException | None = None
        try:
            inner = fn(*args, **kwargs)  # runs nothing of the body yet
            while True:
                with step:
                    value = await (inner.asend(sent) if thrown is None else inner.athrow(thrown))
                if tally is not None:
                    tally.add(value)
                sent, thrown = None, None
                try:
                    sent = yield value
                except GeneratorExit as closing:
                    with step:
                        await inner.aclose()
                    step.end(closing)
                    raise
                except BaseException as exc:  # thrown in by the caller: the body decides
                    thrown = exc
        except StopAsyncIteration:
            _end_listing(step, tally)
        except BaseException as exc:
            step.end(exc)  # does nothing if the step already ended
            raise

    return wrapper
