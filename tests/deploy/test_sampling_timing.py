"""Tail sampling in time: which policy keeps a RAG trace when its spans arrive in the order they really do.

A span reaches Alloy only after it has ended and its service has exported it, so a request's root span
arrives last, a generation seconds after the retrieval. decide() below models the decision timing that
Alloy's reference documents for otelcol.processor.tail_sampling: the decision comes decision_wait after
the trace's first span arrived, or decision_wait_after_root_received after its root span arrived if that
is sooner; the policies judge the spans in by then, and later spans follow that decision (decision cache).
The timings and policies are read from deploy/alloy/config.alloy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from examples.reference_app.config import ChatSettings
from tests.deploy import alloy_syntax as ax
from tests.deploy.conftest import COMPOSE_FILE, Doc, containers, env_of, find, load_yaml
from tests.deploy.test_alloy import components, only
from tests.deploy.test_tracing import MAIN, policies

# How long after its end a span reaches the sampler.
SDK_EXPORT_DELAY_S = 5.0  # the app's BatchSpanProcessor flushes every 5 s (OTEL_BSP_SCHEDULE_DELAY's default)
VLLM_EXPORT_DELAY_S = 5.0  # vLLM exports its llm_request span 1-5 s after the request
ALLOY_HOPS_S = 0.4  # Alloy's batch (200 ms), twice in Kubernetes: before the trace-id routing and after
# The chat API asks vLLM for its context window (/models) and token counts (/tokenize, up to three times per
# request) with fixed 5 s timeouts (examples/reference_app/chat_api.py, ContextWindow).
WINDOW_CALLS_S = 4 * 5.0

# Memory a trace takes in the sampler: about 12 spans of the reference app at 2 KiB each in the collector's
# in-memory form (attributes and events, content capture off). An assumption, not a measurement.
TRACE_BYTES = 24 * 1024
DECISION_CACHE_ENTRY_BYTES = 100  # a 16-byte trace id in an LRU list and map


@dataclass(frozen=True)
class Sampler:
    decision_wait: float
    after_root: float  # 0: decide on decision_wait only
    num_traces: int
    new_traces_per_s: int
    caches: dict[str, int]


def sampler(text: str, env: dict[str, str] | None = None) -> Sampler:
    block = only(ax.parse(text), "otelcol.processor.tail_sampling")

    def arg(name: str, default: Any) -> Any:
        return ax.evaluate(block.attr(name), env) if block.attr(name) is not None else default

    return Sampler(ax.duration_seconds(arg("decision_wait", "30s")),
                   ax.duration_seconds(arg("decision_wait_after_root_received", "0s")),
                   arg("num_traces", 50000), arg("expected_new_traces_per_sec", 0), arg("decision_cache", {}))


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    start: float
    end: float
    export_delay: float
    root: bool = False
    error: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def arrival(self) -> float:
        return self.end + self.export_delay + ALLOY_HOPS_S


def rag_request(retrieval_s: float, generation_s: float, *, score: float = 0.6, returned: int = 4,
                vllm_traced: bool = True, failed: bool = False, root_delay: float = SDK_EXPORT_DELAY_S,
                vllm_delay: float = VLLM_EXPORT_DELAY_S, first_delay: float = SDK_EXPORT_DELAY_S) -> list[Span]:
    """The spans of one /chat request of the reference app, with the times they end."""
    retrieved = 0.01 + retrieval_s
    generated = retrieved + 0.05 + generation_s
    spans = [
        Span("rag-retriever", "POST /search", 0.02, retrieved - 0.01, first_delay),
        Span("rag-chat-api", "retrieval retrieve", 0.01, retrieved, SDK_EXPORT_DELAY_S,
             attributes={"rag.retrieval.results.returned": returned, "rag.retrieval.score.max": score}),
        Span("rag-chat-api", "chat tiny-llama", retrieved + 0.05, generated, SDK_EXPORT_DELAY_S, error=failed,
             attributes={"gen_ai.operation.name": "chat"}),
        Span("rag-chat-api", "POST /chat", 0.0, generated + 0.01, root_delay, root=True, error=failed),
    ]
    if vllm_traced:
        spans.append(Span("vllm", "llm_request", retrieved + 0.06, generated - 0.01, vllm_delay))
    return spans


_CONDITION = re.compile(r'attributes\["([^"]+)"\] (==|<) (.+)')


def ottl(condition: str, span: Span) -> bool:
    """The OTTL conditions config.alloy uses: comparisons of span attributes, joined by `or`."""
    for part in condition.split(" or "):
        key, op, literal = _CONDITION.fullmatch(part.strip()).groups()
        have, want = span.attributes.get(key), ax.evaluate(ax.parse(f"x {{\n v = {literal}\n}}")[0].attr("v"))
        if have is not None and (have == want if op == "==" else have < want):
            return True
    return False


def keepers(spans: list[Span], config: dict[str, dict[str, Any]]) -> set[str]:
    """The policies that keep these spans as one trace. share-of-the-rest decides by trace id alone, whatever
    the timing; the traces here are taken to fall outside its share."""
    kept = set()
    if any(s.error for s in spans) and "ERROR" in config["errors"]["status_code"]["status_codes"]:
        kept.add("errors")
    # Trace duration: earliest start to latest end of the spans in.
    if max(s.end for s in spans) - min(s.start for s in spans) > config["slow"]["latency"]["threshold_ms"] / 1000:
        kept.add("slow")
    if any(ottl(c, s) for c in config["poor-retrieval"]["ottl_condition"]["span"] for s in spans):
        kept.add("poor-retrieval")
    subs = {p["name"]: p for p in config["generation-without-vllm-span"]["and"]["and_sub_policy"]}
    generation = any(ottl(c, s) for c in subs["has-generation"]["ottl_condition"]["span"] for s in spans)
    vllm = subs["no-vllm-span"]["string_attribute"]  # inverted: no span may carry one of the values
    if generation and not any(s.service in vllm["values"] for s in spans):
        kept.add("generation-without-vllm-span")
    return kept


def decide(spans: list[Span], timing: Sampler, config: dict[str, dict[str, Any]]) -> tuple[set[str], list[Span]]:
    """(policies that keep the trace, spans judged) for the documented decision timing."""
    first = min(s.arrival for s in spans)
    decision = first + timing.decision_wait
    root = next((s for s in spans if s.root), None)
    if root is not None and timing.after_root > 0 and root.arrival <= decision:
        decision = min(decision, root.arrival + timing.after_root)
    judged = [s for s in spans if s.arrival <= decision]
    return keepers(judged, config), judged


@pytest.fixture(scope="module")
def timing() -> Sampler:
    return sampler(MAIN.read_text())


@pytest.fixture(scope="module")
def config() -> dict[str, dict[str, Any]]:
    return policies(MAIN.read_text())


LONGEST = ChatSettings().retriever_timeout + WINDOW_CALLS_S + ChatSettings().vllm_timeout

CASES = {
    # name: (spans, the policies that must keep the trace)
    "a quick ordinary answer": (rag_request(0.3, 1.5), set()),
    "a generation a CPU vLLM takes 40 s for": (rag_request(0.5, 40.0), {"slow"}),
    # Root exported at once, vLLM's span as late as it comes: the sampler still waits for it.
    "vLLM's span exported after the root": (rag_request(0.3, 1.5, root_delay=0.0), set()),
    "vLLM not tracing": (rag_request(0.3, 1.5, vllm_traced=False), {"generation-without-vllm-span"}),
    "nothing retrieved": (rag_request(0.3, 1.5, returned=0, score=0.0), {"poor-retrieval"}),
    "a weak best match": (rag_request(0.3, 1.5, score=0.1), {"poor-retrieval"}),
    # The longest request the app allows, failing at the vLLM timeout; first span out at once, root last.
    "the longest request, timing out": (
        rag_request(ChatSettings().retriever_timeout, LONGEST - ChatSettings().retriever_timeout - 0.1,
                    failed=True, first_delay=0.0),
        {"errors", "slow"},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_trace_is_judged_whole_and_kept_by_its_policy(case: str, timing: Sampler, config: dict) -> None:
    spans, expected = CASES[case]
    kept, judged = decide(spans, timing, config)
    assert judged == spans, f"decided before {[s.name for s in spans if s not in judged]} arrived"
    assert kept == expected


def test_the_old_timing_judged_slow_traces_on_their_retrieval_alone(config: dict) -> None:
    # decision_wait 10 s from the first span, as before: the slow generation, its error and the root
    # arrive after the decision, so neither `slow` nor `errors` sees them.
    old = Sampler(decision_wait=10.0, after_root=0.0, num_traces=50000, new_traces_per_s=100, caches={})
    for spans in (rag_request(0.5, 40.0), rag_request(0.5, 20.0, failed=True)):
        kept, judged = decide(spans, old, config)
        assert kept == set()
        assert {s.name for s in judged} == {"POST /search", "retrieval retrieve"}


def test_the_wait_covers_the_longest_request_and_the_export_delays(timing: Sampler) -> None:
    # The root of the longest request arrives at most its duration plus its export delay after the first span.
    assert timing.decision_wait >= LONGEST + SDK_EXPORT_DELAY_S + ALLOY_HOPS_S
    # After the root, spans that ended before it may still be in their service's export batch.
    assert max(SDK_EXPORT_DELAY_S, VLLM_EXPORT_DELAY_S) + ALLOY_HOPS_S <= timing.after_root < timing.decision_wait


def test_late_spans_follow_the_decision(timing: Sampler) -> None:
    # The reference advises decision caches much larger than num_traces: ids outlive their spans in memory.
    assert timing.caches.keys() == {"sampled_cache_size", "non_sampled_cache_size"}
    assert min(timing.caches.values()) >= 5 * timing.num_traces


def quantity(text: str) -> int:
    number, unit = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]*)", str(text)).groups()
    factor = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 2**10, "m": 2**20, "g": 2**30, "MiB": 2**20,
              "GiB": 2**30}[unit]
    return int(float(number) * factor)


def alloy_memory(rendered: dict[str, list[Doc]]) -> dict[str, tuple[int, int]]:
    """Where Alloy runs -> (its memory limit, GOMEMLIMIT) in bytes."""
    out = {}
    for overlay, docs in rendered.items():
        container = containers(find(docs, "DaemonSet", "alloy", "rag"))[0]
        out[overlay] = (quantity(container["resources"]["limits"]["memory"]),
                        quantity(env_of(container)["GOMEMLIMIT"]["value"]))
    service = load_yaml(COMPOSE_FILE)["services"]["alloy"]
    out["compose"] = (quantity(service["mem_limit"]), quantity(service["environment"]["GOMEMLIMIT"]))
    return out


def test_held_traces_fit_the_alloy_memory_limit(timing: Sampler, rendered: dict[str, list[Doc]]) -> None:
    limiter = components(ax.parse(MAIN.read_text()))[("otelcol.processor.memory_limiter", "default")]
    soft_share = (ax.evaluate(limiter.attr("limit_percentage")) - ax.evaluate(limiter.attr("spike_limit_percentage")))
    for where, (limit, gomemlimit) in alloy_memory(rendered).items():
        assert gomemlimit < limit, where
        soft = limit * soft_share / 100  # where the memory limiter starts refusing
        held = timing.num_traces * TRACE_BYTES + sum(timing.caches.values()) * DECISION_CACHE_ENTRY_BYTES
        assert held <= soft / 2, f"{where}: the sampler may hold {held / 2**20:.0f} MiB of {soft / 2**20:.0f} MiB"
    # A trace is evicted once num_traces newer ones arrived: at the expected rate, after its decision.
    assert timing.num_traces / timing.new_traces_per_s > timing.decision_wait


def test_the_deployed_knobs_are_the_defaults_modelled_here(timing: Sampler, rendered: dict[str, list[Doc]]) -> None:
    envs = {"compose": {k: str(v) for k, v in load_yaml(COMPOSE_FILE)["services"]["alloy"]["environment"].items()}}
    for overlay, docs in rendered.items():
        container = containers(find(docs, "DaemonSet", "alloy", "rag"))[0]
        envs[overlay] = {n: str(e["value"]) for n, e in env_of(container).items() if "value" in e}
    for where, env in envs.items():
        assert {"TRACES_DECISION_WAIT", "TRACES_DECISION_WAIT_AFTER_ROOT"} <= env.keys(), where
        assert sampler(MAIN.read_text(), env) == timing, where
