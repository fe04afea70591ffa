"""``ragotel bench``: a load generator for a RAG chat API, with results that compare across runs.

It drives ``POST /chat`` (or ``/chat/stream``, server-sent events) at a fixed concurrency for a
duration or a number of requests, then reports latency and time to first chunk percentiles,
throughput, errors by status and output tokens per second, labelled with where it ran::

    ragotel bench http://127.0.0.1:8080 --stream -c 8 -d 60 --label provider=aws --out runs/aws.json
    ragotel bench compare runs/local.json runs/aws.json      # side by side, ratios against the first

The request body is ``{"question": ..., "max_tokens": ...}``; answers may carry ``usage`` and
``model`` (the reference app's do). A streamed request that ends with an ``error`` event counts as
failed with the status that event names, although its HTTP status was 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx

DEFAULT_QUESTIONS = (
    "Is there parking at the clinic?",
    "How do I cancel an appointment?",
    "What are the opening hours?",
    "Do you treat children?",
)
PLACEMENT = ("provider", "cluster", "region")
# Transport failures have no HTTP status: they are reported under these names.
TIMEOUT, CONNECTION = "timeout", "connection"


@dataclass(frozen=True)
class BenchConfig:
    url: str
    stream: bool = False
    concurrency: int = 4
    requests: int | None = None
    duration_s: float | None = None
    questions: tuple[str, ...] = DEFAULT_QUESTIONS
    max_tokens: int = 32
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the URL must start with http:// or https:// and name a host (got {self.url!r}); "
                             f"e.g. http://{self.url.split('://')[-1] or '127.0.0.1:8080'}")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if (self.requests is None) == (self.duration_s is None):
            raise ValueError("give either a number of requests or a duration")
        if not self.questions:
            raise ValueError("no questions to ask")

    @property
    def path(self) -> str:
        return "/chat/stream" if self.stream else "/chat"


@dataclass
class Sample:
    """One request: ``status`` is the HTTP status, the one a stream's error event named, or
    ``timeout`` / ``connection``."""

    status: str
    latency_s: float
    ttfc_s: float | None = None
    output_tokens: int = 0
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "200"


@dataclass
class Result:
    labels: dict[str, str]
    config: dict[str, Any]
    started_at: str
    wall_s: float
    figures: dict[str, float | None] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> Result:
        data = json.loads(path.read_text())
        return cls(**{k: data[k] for k in ("labels", "config", "started_at", "wall_s", "figures", "statuses")})


# --------------------------------------------------------------------------- running


async def _one(client: httpx.AsyncClient, config: BenchConfig, question: str) -> Sample:
    body = {"question": question, "max_tokens": config.max_tokens}
    started = time.perf_counter()
    try:
        if not config.stream:
            response = await client.post(config.path, json=body)
            data = _json(response)
            usage = data.get("usage")
            usage = usage if isinstance(usage, dict) else {}
            return Sample(str(response.status_code), time.perf_counter() - started,
                          output_tokens=int(usage.get("completion_tokens", 0)), model=data.get("model"))
        return await _one_stream(client, config, body, started)
    except httpx.TimeoutException:
        return Sample(TIMEOUT, time.perf_counter() - started)
    except httpx.TransportError:
        return Sample(CONNECTION, time.perf_counter() - started)


async def _one_stream(client: httpx.AsyncClient, config: BenchConfig, body: dict[str, Any], started: float) -> Sample:
    first: float | None = None
    status, tokens, event = "", 0, ""
    async with client.stream("POST", config.path, json=body) as response:
        status = str(response.status_code)
        if response.status_code != 200:
            await response.aread()
            return Sample(status, time.perf_counter() - started)
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "delta" and first is None:
                    first = time.perf_counter() - started
                elif event == "done":
                    tokens = int((data.get("usage") or {}).get("completion_tokens", 0))
                elif event == "error":
                    status = str(data.get("status", "error"))
    return Sample(status, time.perf_counter() - started, first, tokens)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def run(config: BenchConfig, progress: Callable[[int, int, float], None] | None = None,
              transport: httpx.AsyncBaseTransport | None = None) -> tuple[list[Sample], float]:
    """Send the load; returns every request's sample and the wall time. ``progress(done, errors,
    elapsed)`` is called after each request."""
    samples: list[Sample] = []
    issued = 0
    deadline = None if config.duration_s is None else time.perf_counter() + config.duration_s
    started = time.perf_counter()

    def next_question() -> str | None:
        nonlocal issued
        if config.requests is not None and issued >= config.requests:
            return None
        if deadline is not None and time.perf_counter() >= deadline:
            return None
        issued += 1
        return config.questions[(issued - 1) % len(config.questions)]

    unreachable = False

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal unreachable
        while not unreachable and (question := next_question()) is not None:
            samples.append(await _one(client, config, question))
            # Nothing answers at all: stop now rather than fail every request until the end.
            first = samples[: config.concurrency]
            unreachable = len(first) == config.concurrency and all(s.status == CONNECTION for s in first)
            if progress is not None:
                progress(len(samples), sum(not s.ok for s in samples), time.perf_counter() - started)

    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    async with httpx.AsyncClient(base_url=config.url, timeout=config.timeout_s, limits=limits,
                                 transport=transport) as client:
        await asyncio.gather(*(worker(client) for _ in range(config.concurrency)))
    return samples, time.perf_counter() - started


# --------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0–100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(samples: list[Sample], wall_s: float, config: BenchConfig, labels: dict[str, str]) -> Result:
    ok = [s for s in samples if s.ok]
    latencies = [s.latency_s for s in ok]
    ttfcs = [s.ttfc_s for s in ok if s.ttfc_s is not None]
    figures: dict[str, float | None] = {
        "requests": float(len(samples)),
        "throughput_rps": len(ok) / wall_s if wall_s > 0 else None,
        "error_rate": (len(samples) - len(ok)) / len(samples) if samples else None,
        "output_tokens_per_s": sum(s.output_tokens for s in ok) / wall_s if wall_s > 0 else None,
    }
    for name, values in (("latency", latencies), ("ttfc", ttfcs)):
        for q in (50, 95, 99):
            figures[f"{name}_p{q}_s"] = percentile(values, q)
    models = {s.model for s in ok if s.model}
    labels = {"model": ", ".join(sorted(models)) or "unknown", **labels}
    settings = asdict(config)
    settings["questions"] = len(config.questions)  # the count, not the text
    return Result(labels, settings, datetime.now(UTC).isoformat(timespec="seconds"), wall_s, figures,
                  dict(sorted(Counter(s.status for s in samples).items())))


def default_labels(extra: dict[str, str]) -> dict[str, str]:
    """Where the run happened: provider/cluster/region from the same env the app uses, the git revision."""
    from ragotel._core import settings

    found = settings.resolve(only=PLACEMENT).values
    labels = {name: found[name] or "unknown" for name in PLACEMENT}
    labels["git_revision"] = _git_revision()
    return {**labels, **extra}


def _git_revision() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        if found.returncode == 0:
            return found.stdout.strip()
    return "unknown"


# --------------------------------------------------------------------------- output

FIGURES = (
    ("throughput_rps", "throughput (req/s)"),
    ("latency_p50_s", "latency p50 (s)"),
    ("latency_p95_s", "latency p95 (s)"),
    ("latency_p99_s", "latency p99 (s)"),
    ("ttfc_p50_s", "first chunk p50 (s)"),
    ("ttfc_p95_s", "first chunk p95 (s)"),
    ("ttfc_p99_s", "first chunk p99 (s)"),
    ("output_tokens_per_s", "output tokens/s"),
    ("error_rate", "error rate"),
    ("requests", "requests"),
)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def render(result: Result) -> str:
    lines = ["  ".join(f"{k}={v}" for k, v in result.labels.items())]
    width = max(len(label) for _, label in FIGURES)
    lines += [f"{label:<{width}}  {_fmt(result.figures.get(key))}" for key, label in FIGURES]
    lines.append(f"{'by status':<{width}}  " + ", ".join(f"{k}: {v}" for k, v in result.statuses.items()))
    return "\n".join(lines)


def compare(results: Sequence[Result], names: Sequence[str]) -> str:
    """Runs side by side; each run after the first also shows its ratio to the first."""
    header = ["figure", *names]
    rows = [header, *([key, *[r.labels.get(key, "-") for r in results]]
                      for key in ("provider", "cluster", "region", "model", "git_revision"))]
    for key, label in FIGURES:
        base = results[0].figures.get(key)
        row = [label, _fmt(base)]
        for other in results[1:]:
            value = other.figures.get(key)
            ratio = f" ({value / base:.2f}×)" if value is not None and base else ""
            row.append(_fmt(value) + ratio)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


class Progress:
    """A one-line progress bar on a terminal; silent when the output is not one."""

    def __init__(self, config: BenchConfig, out: TextIO = sys.stderr) -> None:
        self.config, self.out, self.last = config, out, 0.0
        self.enabled = out.isatty()

    def __call__(self, done: int, errors: int, elapsed: float) -> None:
        if not self.enabled or time.monotonic() - self.last < 0.1:
            return
        self.last = time.monotonic()
        share = (done / self.config.requests if self.config.requests
                 else min(1.0, elapsed / (self.config.duration_s or 1)))
        bar = "█" * int(share * 30)
        self.out.write(f"\r{bar:<30} {done} requests  {done / max(elapsed, 1e-9):.1f}/s  {errors} errors ")
        self.out.flush()

    def close(self) -> None:
        if self.enabled:
            self.out.write("\n")
