"""What telemetry costs the reference app, end to end, and what happens when the collector fails.

Five copies of the app (retriever + chat API) share one vLLM (CPU build, tiny model):

* ``off``            — ``OTEL_SDK_DISABLED=true``: the baseline;
* ``on``             — telemetry exported over OTLP to a collector that accepts every batch at once
  (decoding and storing is the collector's work, on another machine in production, not the app's);
* ``on, 10% traces`` — the same, keeping one trace in ten (``parentbased_traceidratio``; metrics and
  logs stay complete): the knob for a CPU-bound service;
* ``collector down`` — OTLP to a port nobody listens on;
* ``collector slow`` — OTLP to a collector that takes 2 s to answer each batch.

Round by round, in rotating order, each copy serves the same ``POST /chat`` load (``ragotel bench``),
so machine noise hits all alike; throughput and latency are reported as ratios to ``off``. Then each
copy with a failing collector serves ``--memory-requests`` requests to ``POST /dryrun`` (retrieval and
prompt steps, no model call, so the run takes minutes, not hours): the chat API's RSS before and
after, and the spans the SDK dropped (counted, not queued) from its ``/metrics``. "app CPU ms/req" is
the CPU time the copy's retriever and chat API spent per request: what telemetry costs wherever the
CPU is the bottleneck.

Run: ``python benchmarks/app_overhead.py [--rounds 5] [--requests 40] [--concurrency 4]
[--memory-requests 10000]``. Targets: throughput ≥ 0.98× and p99 ≤ 1.05× of ``off``; RSS bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from examples.reference_app.processes import free_port
from examples.reference_app.run_local import LocalStack
from examples.reference_app.vllm_server import VllmServer, ensure_tiny_model, ensure_vllm
from ragotel.cli import bench
from tests.otlp_collector_double import OtlpCollectorDouble

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var" / "bench"
MODEL = "tiny-llama"
QUESTIONS = ("Is there parking at the clinic?", "How do I cancel an appointment?", "Do you treat children?",
             "What are the opening hours?")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(stack: LocalStack) -> float:
    """CPU seconds the copy's retriever and chat API have used so far (user + system)."""
    ticks = 0
    for process in stack.processes.values():
        assert process.process is not None
        fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def dropped_spans(chat_url: str) -> float:
    text = httpx.get(f"{chat_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("otel_sdk_processor_span_processed_total{") and 'error_type="queue_full"' in line)


@contextlib.contextmanager
def variants(vllm_url: str) -> Iterator[dict[str, LocalStack]]:
    with contextlib.ExitStack() as stack:
        accepting = stack.enter_context(OtlpCollectorDouble())
        slow = stack.enter_context(OtlpCollectorDouble(delay=2.0))
        endpoints = {"off": accepting.endpoint, "on": accepting.endpoint, "on, 10% traces": accepting.endpoint,
                     "collector down": f"http://127.0.0.1:{free_port()}", "collector slow": slow.endpoint}
        running = {}
        for name, endpoint in endpoints.items():
            # The SDK's default export interval, not the local stack's quick one.
            # /dryrun (the memory run's endpoint) is off unless a deployment turns it on.
            env = {"OTEL_SDK_DISABLED": "true" if name == "off" else "false", "OTEL_BSP_SCHEDULE_DELAY": "5000",
                   "RAG_DEBUG_ENDPOINTS": "true"}
            if name == "on, 10% traces":
                env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
            print(f"starting app: {name}", file=sys.stderr)
            directory = VAR / "".join(c if c.isalnum() else "-" for c in name)
            running[name] = stack.enter_context(LocalStack(
                directory, otlp_endpoint=endpoint, vllm_url=vllm_url, served_model=MODEL,
                prometheus=False, fixed_ports=False, env=env, log=lambda *a: None))
        yield running


def load(url: str, requests: int, concurrency: int, max_tokens: int) -> tuple[list[bench.Sample], float]:
    """``requests`` POST /chat at ``concurrency``: every request's sample and the wall time."""
    config = bench.BenchConfig(url, concurrency=concurrency, requests=requests, questions=QUESTIONS,
                               max_tokens=max_tokens)
    return asyncio.run(bench.run(config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="POST /chat per copy per round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--memory-requests", type=int, default=10_000)
    args = parser.parse_args(argv)

    python = ensure_vllm(ROOT)
    model = ensure_tiny_model(ROOT, ROOT / "var" / "tiny-model", python)
    with VllmServer(python, model, free_port(), served_model_name=MODEL, log_path=VAR / "vllm.log") as vllm, \
            variants(vllm.base_url) as apps:
        names = list(apps)
        for app in apps.values():  # warm up: first requests load lazily imported code
            load(app.chat_url, 8, args.concurrency, args.max_tokens)
        samples: dict[str, list[bench.Sample]] = {name: [] for name in names}
        walls: dict[str, float] = dict.fromkeys(names, 0.0)
        cpu: dict[str, float] = dict.fromkeys(names, 0.0)
        for round_ in range(args.rounds):
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in order:
                before = cpu_s(apps[name])
                got, wall = load(apps[name].chat_url, args.requests, args.concurrency, args.max_tokens)
                cpu[name] += cpu_s(apps[name]) - before
                samples[name] += got
                walls[name] += wall
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

        print(f"\nPOST /chat, {args.rounds} rounds × {args.requests} requests, concurrency {args.concurrency}, "
              f"max_tokens {args.max_tokens}")
        print(f"{'variant':<17}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'thr ×':>8}{'p50 ×':>8}{'p99 ×':>8}"
              f"{'app CPU ms/req':>16}")
        base = _figures(samples["off"], walls["off"])
        for name in names:
            fig = _figures(samples[name], walls[name])
            print(f"{name:<17}{fig[0]:>8.2f}{fig[1] * 1e3:>9.1f}{fig[2] * 1e3:>9.1f}{fig[3]:>8}"
                  f"{fig[0] / base[0]:>8.3f}{fig[1] / base[1]:>8.3f}{fig[2] / base[2]:>8.3f}"
                  f"{cpu[name] / len(samples[name]) * 1e3:>16.2f}")

        print(f"\nPOST /dryrun × {args.memory_requests} with the collector failing: chat API memory")
        print(f"{'variant':<16}{'RSS before MiB':>15}{'RSS after MiB':>15}{'dropped spans':>15}{'errors':>8}")
        for name in ("collector down", "collector slow"):
            app = apps[name]
            pid = app.processes["chat API"].process.pid  # type: ignore[union-attr]
            before = rss_mib(pid)
            got = asyncio.run(_dryrun_load(app.chat_url, args.memory_requests, args.concurrency * 2))
            print(f"{name:<16}{before:>15.1f}{rss_mib(pid):>15.1f}{dropped_spans(app.chat_url):>15.0f}{got:>8}")
    return 0


def _figures(samples: list[bench.Sample], wall: float) -> tuple[float, float, float, int]:
    ok = [s.latency_s for s in samples if s.ok]
    return (len(ok) / wall, statistics.median(ok), bench.percentile(ok, 99) or 0.0,
            sum(not s.ok for s in samples))


async def _dryrun_load(url: str, total: int, concurrency: int) -> int:
    """Send ``total`` dry runs; returns how many failed."""
    failed, issued = 0, 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed, issued
        while issued < total:
            issued += 1
            response = await client.post("/dryrun", json={"question": QUESTIONS[issued % len(QUESTIONS)]})
            failed += response.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return failed


if __name__ == "__main__":
    sys.exit(main())
