"""Generation and vLLM: the client's view of each call beside vLLM's own engine metrics."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import panels as p
from dashboards import promql as q

CHAT = q.eq(q.OPERATION, "chat")


def _engine_p95(histogram: str, name: str) -> p.Query:
    """vLLM's own p95 of ``histogram``, per served model."""
    return p.Query(q.quantile(0.95, histogram, q.vllm_sel(), by=q.VLLM_MODEL), f"{name} {q.legend(q.VLLM_MODEL)}",
                   exemplar=True)


def _engine_rate(counter: str) -> str:
    """Per-second rate of one of vLLM's counters, per served model."""
    return f"sum by ({q.VLLM_MODEL}) ({q.rate(counter, q.vllm_sel())})"


def _engine_mean_as_client(histogram: str) -> str:
    """vLLM's mean of ``histogram`` per served model, labelled like the client's (``gen_ai_request_model``)."""
    return (f'label_replace({q.mean(histogram, q.vllm_sel(), by=q.VLLM_MODEL)}, "{q.MODEL}", "$1", '
            f'"{q.VLLM_MODEL}", "(.*)")')


def build() -> Dashboard:
    client, engine = q.sel(model=q.MODEL), q.vllm_sel()
    chat_calls = q.sel(CHAT, model=q.MODEL)
    generation_errors = q.sel(q.eq(q.STEP_KIND, "generation"))
    vllm = q.legend(q.VLLM_MODEL)
    model = q.legend(q.MODEL)
    return (
        p.app_variables(
            p.dashboard("rag-generation", "RAG generation and vLLM",
                        "Time to first chunk, time per chunk and call latency as the client sees them, beside "
                        "vLLM's own TTFT, inter-token latency, queue, KV cache and throughput.",
                        ["generation", "vllm"]),
            q.OPERATION_DURATION + "_count")
        .with_row(p.row("Latency: client vs engine"))
        .with_panel(p.series(
            "Time to first token p95", p.SECONDS,
            p.Query(q.quantile(0.95, q.TIME_TO_FIRST_CHUNK, client, by=q.MODEL), f"client {model}", exemplar=True),
            _engine_p95(q.VLLM_TTFT, "vLLM"),
            description="Streamed calls: request sent → first chunk received (client, includes the network) "
                        "beside vLLM's own time to first token.", width=8))
        .with_panel(p.series(
            "Time per output token p95", p.SECONDS,
            p.Query(q.quantile(0.95, q.TIME_PER_OUTPUT_CHUNK, client, by=q.MODEL), f"client {model}",
                    exemplar=True),
            _engine_p95(q.VLLM_INTER_TOKEN, "vLLM"),
            description="Gap between streamed chunks (client) beside vLLM's inter-token latency.", width=8))
        .with_panel(p.series(
            "Call latency p95", p.SECONDS,
            p.Query(q.quantile(0.95, q.OPERATION_DURATION, chat_calls, by=q.MODEL), f"client {model}",
                    exemplar=True),
            _engine_p95(q.VLLM_E2E, "vLLM"),
            description="Whole chat calls (gen_ai.client.operation.duration; gen_ai.client.inference.duration with "
                        "the latest conventions) beside vLLM's end-to-end latency.",
            width=8))
        .with_panel(p.series(
            "Time to first token outside the engine", p.SECONDS,
            p.Query(q.mean(q.TIME_TO_FIRST_CHUNK, client, by=q.MODEL), f"client {model}"),
            p.Query(_engine_mean_as_client(q.VLLM_TTFT), f"vLLM {model}"),
            p.Query(f"{q.mean(q.TIME_TO_FIRST_CHUNK, client, by=q.MODEL)} - on ({q.MODEL}) "
                    f"{_engine_mean_as_client(q.VLLM_TTFT)}", f"outside the engine {model}"),
            description="Mean time to first chunk as the client sees it, vLLM's own mean time to first token, and "
                        "the difference: the time spent outside the engine (HTTP, the API server, the network)."))
        .with_panel(p.series(
            "Engine phases p95", p.SECONDS,
            _engine_p95(q.VLLM_QUEUE, "queue"),
            _engine_p95(q.VLLM_PREFILL, "prefill"),
            _engine_p95(q.VLLM_DECODE, "decode"),
            _engine_p95(q.VLLM_INFERENCE, "inference"),
            description="Where vLLM spends a request: waiting in the queue, prefill, decode; inference is first "
                        "scheduled to last token (prefill plus decode, preemptions included)."))
        .with_panel(p.series(
            "Requests running / waiting", p.COUNT,
            p.Query(f"sum by ({q.VLLM_MODEL}) ({q.VLLM_RUNNING}{engine})", f"running {vllm}"),
            p.Query(f"sum by ({q.VLLM_MODEL}) ({q.VLLM_WAITING}{engine})", f"waiting {vllm}"),
            description="Requests in the running batch and waiting for a slot: a growing queue means the "
                        "engine is saturated."))
        .with_row(p.row("Engine"))
        .with_panel(p.series(
            "KV-cache usage", p.PERCENT_UNIT,
            p.Query(f"max by ({q.VLLM_MODEL}) ({q.VLLM_KV_CACHE}{engine})", vllm),
            description="Share of KV-cache blocks in use (1 = full: requests get preempted).", width=8))
        .with_panel(p.series(
            "Prefix-cache hit rate", p.PERCENT_UNIT,
            p.Query(f"{_engine_rate(q.VLLM_PREFIX_HITS)} / {_engine_rate(q.VLLM_PREFIX_QUERIES)}", vllm),
            description="Prompt tokens served from the prefix cache: RAG prompts share a system prompt.", width=8))
        .with_panel(p.series(
            "Preemptions/s", p.PER_SECOND,
            p.Query(_engine_rate(q.VLLM_PREEMPTIONS), vllm),
            description="Requests evicted from the batch for lack of KV cache.", width=8))
        .with_panel(p.series(
            "Tokens/s", p.TOKENS_PER_SECOND,
            p.Query(_engine_rate(q.VLLM_PROMPT_TOKENS), f"prompt {vllm}"),
            p.Query(_engine_rate(q.VLLM_GENERATION_TOKENS), f"generation {vllm}"),
            description="Prompt and generated tokens per second processed by vLLM."))
        .with_panel(p.series(
            "Finished requests by reason", p.REQUESTS_PER_SECOND,
            p.Query(f"sum by ({q.VLLM_MODEL}, finished_reason) ({q.rate(q.VLLM_SUCCESS, engine)})",
                    q.legend(q.VLLM_MODEL, "finished_reason")),
            description="stop: the model ended; length: max_tokens cut it; abort: the client went away.",
            stack=True))
        .with_row(p.row("Errors"))
        .with_panel(p.series(
            "Generation errors by type", p.PER_SECOND,
            p.Query(f"sum by (job, {q.ERROR_TYPE}) ({q.rate(q.STEP_ERRORS, generation_errors)})",
                    q.legend("job", q.ERROR_TYPE)),
            description="Failed calls to the model server: timeout, connection, http.4xx/5xx, malformed stream.",
            width=24, stack=True))
    )
