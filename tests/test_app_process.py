"""The chat API as users run it: ``python -m examples.reference_app.chat_api`` under uvicorn, its
telemetry going over OTLP to a local receiver. Its dependencies are test doubles (a vLLM replaying
recorded answers, a retriever with fixed hits). Oversized bodies, a client leaving streams, a failing
dependency and where it listens, seen from outside the process (/proc, the receiver, its log)."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from examples.reference_app.processes import ManagedProcess, free_port
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import SpanRecord, load_spans
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.retriever_double import RetrieverDouble

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


@dataclass
class ChatProcess:
    url: str
    port: int
    pid: int
    log: Path
    receiver: OtlpReceiver

    def spans(self, trace_id: str, names: set[str], timeout: float = 15) -> dict[str, SpanRecord]:
        deadline = time.monotonic() + timeout
        found: dict[str, SpanRecord] = {}
        while time.monotonic() < deadline:
            if self.receiver.spans_path.exists():
                found = {s.name: s for s in load_spans(self.receiver.spans_path) if s.trace_id == trace_id}
                if names <= set(found):
                    break
            time.sleep(0.2)
        return found


def proc_status(pid: int, field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


@contextmanager
def chat_api_process(tmp: Path, model: str = "tiny-llama", **settings: str) -> Iterator[ChatProcess]:
    with (
        RecordedOpenAIServer(chunk_delay=0.05) as vllm, RetrieverDouble() as retriever,
        OtlpReceiver(port=0, spans_path=tmp / "spans.jsonl") as receiver,
    ):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAG_"))}
        env |= {"PORT": str(port), "RAG_RETRIEVER_URL": retriever.url, "RAG_VLLM_URL": vllm.base_url,
                "RAG_MODEL": model, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRICS_EXPORTER": "prometheus",
                "OTEL_BSP_SCHEDULE_DELAY": "200", "PYTHONUNBUFFERED": "1", **settings}
        url = f"http://127.0.0.1:{port}"
        with ManagedProcess("chat API", [sys.executable, "-m", "examples.reference_app.chat_api"],
                            ready_url=f"{url}/health", log_path=tmp / "chat.log", cwd=ROOT, env=env,
                            startup_timeout=60) as process:
            assert process.process is not None
            yield ChatProcess(url, port, process.process.pid, tmp / "chat.log", receiver)


@pytest.fixture(scope="module")
def chat_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatProcess]:
    with chat_api_process(tmp_path_factory.mktemp("chat-process")) as chat:
        yield chat


def upload(port: int, size: int, *, chunked: bool) -> bytes:
    """POST ``size`` bytes of body to /chat as fast as the server takes them; returns what it answered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    answer = bytearray()

    def read() -> None:
        try:
            while data := sock.recv(65536):
                answer.extend(data)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    piece = b'{"question": "' + b"x" * (MIB - 14)
    try:
        sock.sendall(f"POST /chat HTTP/1.1\r\nHost: chat\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
                     .encode())
        for _ in range(size // MIB):
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
    except OSError:
        pass  # the server answered and closed: what we came to see
    reader.join(timeout=30)
    sock.close()
    return bytes(answer)


def test_two_100_mb_bodies_are_refused_without_growing_memory(chat_process: ChatProcess) -> None:
    ask = {"question": "Is there parking?", "max_tokens": 8}
    assert httpx.post(f"{chat_process.url}/chat", json=ask, timeout=30).status_code == 200  # warmed up
    idle_peak = proc_status(chat_process.pid, "VmHWM")
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda c=chunked: answers.append(upload(chat_process.port, 100 * MIB,
                                                                                chunked=c)))
               for chunked in (False, True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    peak = proc_status(chat_process.pid, "VmHWM")
    assert len(answers) == 2
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"larger than the limit of 65536 bytes" in answer
    assert peak - idle_peak < 50 * MIB, f"peak RSS grew by {(peak - idle_peak) / MIB:.1f} MiB"
    response = httpx.post(f"{chat_process.url}/chat", json=ask, timeout=30)
    assert response.status_code == 200  # and it goes on serving
    assert "rejected /chat request (413)" in chat_process.log.read_text()


def test_a_body_over_the_limit_is_a_413_naming_the_limit(chat_process: ChatProcess) -> None:
    body = json.dumps({"question": "x" * 70_000}).encode()
    response = httpx.post(f"{chat_process.url}/chat", content=body, timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"] == "body: larger than the limit of 65536 bytes"
    assert response.json()["stage"] == "request"
    metrics = httpx.get(f"{chat_process.url}/metrics", timeout=10).text
    assert any(line.startswith("rag_step_errors_total{") and 'error_type="body_too_large"' in line
               for line in metrics.splitlines()), "413s are counted like other rejections"


def test_it_listens_on_loopback_only_unless_told(chat_process: ChatProcess) -> None:
    listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if line.split()[3] == "0A"]  # state LISTEN
    ours = [address for address in listening if int(address.split(":")[1], 16) == chat_process.port]
    assert ours == [f"0100007F:{chat_process.port:04X}"]  # 127.0.0.1, not 0.0.0.0


def test_a_client_leaving_streams_is_cancelled_everywhere_and_logged_once(chat_process: ChatProcess) -> None:
    log_before = chat_process.log.read_text()
    trace_ids = []
    for _ in range(5):
        with httpx.stream("POST", f"{chat_process.url}/chat/stream", timeout=30,
                          json={"question": "Is there parking?", "max_tokens": 64}) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and "trace_id" in line:
                    trace_ids.append(json.loads(line[6:])["trace_id"])
                if line.startswith("event: delta"):
                    break  # leave after the first chunk
    time.sleep(1.5)  # the remaining chunks would have taken 0.4 s
    new_lines = chat_process.log.read_text()[len(log_before):].splitlines()
    assert len([line for line in new_lines if "client left the stream" in line and " INFO " in line]) == 5, new_lines
    assert [line for line in new_lines if " WARNING " in line or " ERROR " in line or "Traceback" in line] == []
    names = {"POST /chat/stream", "invoke_workflow chat_stream", "chat tiny-llama"}
    spans = chat_process.spans(trace_ids[-1], names)
    assert names <= set(spans), spans.keys()
    for name in names:
        assert spans[name].status_code != "ERROR", (name, spans[name].status_message)
        assert spans[name].attributes.get("rag.outcome") == "cancelled", (name, spans[name].attributes)
        assert "error.type" not in spans[name].attributes, name


def test_a_client_cannot_choose_the_trace_or_turn_tracing_off(chat_process: ChatProcess) -> None:
    client_trace = "0af7651916cd43dd8448eb211c80319c"
    for flags in ("00", "01"):
        response = httpx.post(f"{chat_process.url}/chat", json={"question": "Is there parking?", "max_tokens": 8},
                              headers={"traceparent": f"00-{client_trace}-b7ad6b7169203331-{flags}"}, timeout=30)
        trace_id = response.json()["trace_id"]
        assert trace_id and trace_id != client_trace
        spans = chat_process.spans(trace_id, {"POST /chat", "invoke_workflow chat"})
        assert {"POST /chat", "invoke_workflow chat"} <= set(spans), f"flag {flags}: not traced"
        assert spans["POST /chat"].parent_span_id is None


def test_error_type_is_stable_when_started_with_python_m(tmp_path: Path) -> None:
    with chat_api_process(tmp_path, model="fault-500") as chat:  # the vLLM double answers this model with a 500
        failed = httpx.post(f"{chat.url}/chat", json={"question": "Is there parking?", "max_tokens": 8}, timeout=30)
        streamed = httpx.post(f"{chat.url}/chat/stream", json={"question": "Is there parking?", "max_tokens": 8},
                              timeout=30)
        assert failed.status_code == 502 and failed.json()["stage"] == "generation"
        assert streamed.status_code == 200 and "event: error" in streamed.text
        stream_trace = json.loads(streamed.text.split("data: ", 1)[1].split("\n", 1)[0])["trace_id"]
        plain = chat.spans(failed.json()["trace_id"], {"invoke_workflow chat"})
        stream = chat.spans(stream_trace, {"POST /chat/stream", "invoke_workflow chat_stream"})
    stable = "examples.reference_app.errors.StageError"
    assert plain["invoke_workflow chat"].attributes["error.type"] == stable
    for name in ("POST /chat/stream", "invoke_workflow chat_stream"):
        assert stream[name].status_code == "ERROR", name
        assert stream[name].attributes["error.type"] == stable, name
        assert "generation" in stream[name].status_message, name


def test_run_local_output_with_an_external_endpoint_ignores_old_local_spans(
    chat_process: ChatProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from types import SimpleNamespace

    from examples.reference_app import run_local

    old = tmp_path / "telemetry" / "spans.jsonl"  # what an earlier local run left behind
    old.parent.mkdir()
    span = SpanRecord("ab" * 16, "cd" * 8, None, "POST /chat", "rag-chat-api", 0, 1)
    old.write_text(json.dumps(span.to_json()) + "\n")
    stack = SimpleNamespace(chat_url=chat_process.url, served_model="tiny-llama", local_receiver=False,
                            otlp_endpoint="http://alloy.example:4318", spans_path=old, telemetry_dir=old.parent,
                            retriever_url="http://127.0.0.1:1", vllm_url="http://127.0.0.1:2", prometheus_url=None,
                            alertmanager_url=None, node_exporter_url=None, rules_path=None)
    run_local._show(stack, ("Is there parking?",))  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "went to http://alloy.example:4318" in out and "ragotel trace" not in out
