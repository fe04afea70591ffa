"""``ragotel bench``: figures from a chat API test double (in process), JSON round trip, compare."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from ragotel.cli import bench, main


def chat_api_double() -> FastAPI:
    """Answers like the reference chat API; a question containing "fail" fails (502, or an error event)."""
    app = FastAPI()

    @app.post("/chat")
    async def chat(body: dict[str, Any]) -> Any:
        await asyncio.sleep(0.002)
        if "fail" in body["question"]:
            return JSONResponse({"detail": "vLLM answered 500", "stage": "generation"}, status_code=502)
        return {"answer": "ok", "usage": {"completion_tokens": 5}, "model": "double-model"}

    @app.post("/chat/stream")
    async def chat_stream(body: dict[str, Any]) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b'event: meta\ndata: {"citations": []}\n\n'
            if "fail" in body["question"]:
                yield b'event: error\ndata: {"stage": "generation", "status": 504, "detail": "timeout"}\n\n'
                return
            for word in ("a", "b", "c"):
                yield f'event: delta\ndata: {{"content": "{word}"}}\n\n'.encode()
            yield b'event: done\ndata: {"usage": {"completion_tokens": 3}}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def run(config: bench.BenchConfig) -> tuple[list[bench.Sample], float]:
    return asyncio.run(bench.run(config, transport=httpx.ASGITransport(app=chat_api_double())))


def test_fixed_number_of_requests_with_errors_by_status() -> None:
    questions = ("hello", "please fail", "hi", "yo")
    config = bench.BenchConfig("http://chat", concurrency=3, requests=20, questions=questions)
    samples, wall_s = run(config)
    result = bench.summarize(samples, wall_s, config, {"provider": "test"})
    assert len(samples) == 20
    assert result.statuses == {"200": 15, "502": 5}
    assert result.figures["error_rate"] == pytest.approx(0.25)
    assert result.figures["throughput_rps"] == pytest.approx(15 / wall_s)
    assert result.figures["output_tokens_per_s"] == pytest.approx(75 / wall_s)
    assert result.labels["model"] == "double-model" and result.labels["provider"] == "test"
    latency = [result.figures[f"latency_p{q}_s"] for q in (50, 95, 99)]
    assert all(v is not None and v >= 0.002 for v in latency) and latency == sorted(latency)  # type: ignore[type-var]


def test_stream_error_event_counts_as_failure_with_its_status() -> None:
    config = bench.BenchConfig("http://chat", stream=True, concurrency=2, requests=8, questions=("ok", "fail"))
    samples, wall_s = run(config)
    result = bench.summarize(samples, wall_s, config, {})
    assert result.statuses == {"200": 4, "504": 4}
    assert result.figures["ttfc_p50_s"] is not None
    assert result.figures["output_tokens_per_s"] == pytest.approx(12 / wall_s)


def test_duration_bounds_the_run() -> None:
    config = bench.BenchConfig("http://chat", concurrency=2, duration_s=0.3)
    samples, wall_s = run(config)
    assert samples and 0.3 <= wall_s < 1.5


def test_unreachable_server_is_reported_as_connection_errors() -> None:
    config = bench.BenchConfig("http://127.0.0.1:9", requests=3, timeout_s=2)
    samples, _ = asyncio.run(bench.run(config))
    assert [s.status for s in samples] == ["connection"] * 3


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (bench.percentile(values, 50), bench.percentile(values, 99), bench.percentile([], 50)) == (50, 99, None)


@pytest.mark.parametrize("kwargs", [{"requests": 1, "duration_s": 1}, {}, {"requests": 1, "concurrency": 0}])
def test_config_rejects_ambiguous_or_empty_runs(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        bench.BenchConfig("http://chat", **kwargs)


def result(throughput: float, p99: float, provider: str) -> bench.Result:
    return bench.Result({"provider": provider, "model": "m"}, {}, "2026-01-01T00:00:00+00:00", 10.0,
                        {"throughput_rps": throughput, "latency_p99_s": p99}, {"200": 10})


def test_json_round_trip_and_compare_prints_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "local.json", tmp_path / "aws.json"
    a.write_text(result(10.0, 0.5, "local").to_json())
    b.write_text(result(12.0, 0.25, "aws").to_json())
    assert bench.Result.load(a) == result(10.0, 0.5, "local")
    assert main(["bench", "compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    throughput = next(line for line in out.splitlines() if line.startswith("throughput"))
    assert "10" in throughput and "12 (1.20×)" in throughput
    assert "0.25 (0.50×)" in next(line for line in out.splitlines() if line.startswith("latency p99"))
    assert "local" in out and "aws" in out


def test_results_hold_no_question_text() -> None:
    config = bench.BenchConfig("http://chat", requests=2, questions=("secret question 42",))
    samples, wall_s = run(config)
    assert "secret question 42" not in bench.summarize(samples, wall_s, config, {}).to_json()


def test_cli_reports_bad_labels_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "http://127.0.0.1:9", "-n", "1", "--label", "nolabel"]) == 1
    assert main(["bench", "compare", str(tmp_path / "missing.json")]) == 1
    assert "labels are KEY=VALUE" in capsys.readouterr().err


def test_cli_writes_json_and_fails_when_every_request_fails(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    assert main(["bench", "http://127.0.0.1:9", "-n", "2", "--timeout", "2", "--label", "region=eu",
                 "--out", str(out)]) == 1
    data = json.loads(out.read_text())
    assert data["statuses"] == {"connection": 2} and data["labels"]["region"] == "eu"
    assert data["labels"]["git_revision"]


def test_a_dead_port_stops_early_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert main(["bench", "http://127.0.0.1:9", "-d", "60", "-c", "2", "--timeout", "2"]) == 1
    assert time.monotonic() - started < 15  # not the 60 s asked for
    assert "nothing answered at http://127.0.0.1:9" in capsys.readouterr().err


def test_a_url_without_scheme_is_refused_up_front(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "localhost:8768", "-n", "1"]) == 1
    err = capsys.readouterr().err
    assert "http://" in err and "http://localhost:8768" in err
