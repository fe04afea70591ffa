"""A test double for vLLM's OpenAI-compatible API: replays recorded responses over real HTTP.

Responses are recordings of vLLM 0.32's shapes (``tests/recordings``), served by a real HTTP/1.1
server on 127.0.0.1 so the httpx and openai clients under test use their real transports. The
requested ``model`` picks the behaviour; faults are injected the same way:

=========================  =============================================================
model                      behaviour
=========================  =============================================================
anything else              200: recorded completion / SSE stream (usage chunk only when
                           ``stream_options.include_usage`` is set, as vLLM does)
``fault-404``              404 with vLLM's error body
``fault-500``              500
``fault-malformed``        200 with a truncated JSON body / a broken SSE chunk
``fault-slow``             answers after 2 s (for client timeouts)
``fault-drop``             streams two chunks, then drops the connection
``fault-400-context``      400 with vLLM's context-length error (message under
                           ``error.message``)
=========================  =============================================================

``GET /v1/models`` lists ``served_model`` with ``max_model_len``; ``POST /tokenize`` counts a
message list the way this double's pretend tokenizer would (one token per 4 characters, plus 4 per
message): enough to test context budgeting against, not vLLM's tokenizer.
"""

from __future__ import annotations

import json
import math
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.http_double import HttpDouble

RECORDINGS = Path(__file__).parent / "recordings"


class RecordedOpenAIServer(HttpDouble):
    """Context manager; ``.base_url`` ends in ``/v1``; ``.requests`` holds what was received."""

    def __init__(self, chunk_delay: float = 0.005, *, served_model: str = "tiny-llama",
                 max_model_len: int = 1024) -> None:
        self.chunk_delay = chunk_delay
        self.served_model, self.max_model_len = served_model, max_model_len
        self.tokenize = True  # False: no /tokenize endpoint (404), as on servers other than vLLM
        self.requests: list[dict[str, Any]] = []
        self.sent_usage: list[dict[str, int]] = []
        """The ``usage`` of every answer and usage chunk sent, in order (noted before it is written)."""
        super().__init__(_handler(self))

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def _handler(server: RecordedOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                return self._send(404, b'{"detail":"Not Found"}')
            listing = {"object": "list", "data": [{"id": server.served_model, "object": "model",
                                                   "max_model_len": server.max_model_len}]}
            self._send(200, json.dumps(listing).encode())

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self._send(400, b'{"object":"error","message":"invalid JSON","code":400}')
            server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            model = body.get("model", "")
            stream = body.get("stream") is True
            if self.path == "/tokenize" and not server.tokenize:
                return self._send(404, b'{"detail":"Not Found"}')
            if self.path == "/tokenize":
                count = sum(math.ceil(len(m["content"]) / 4) + 4 for m in body.get("messages", []))
                return self._send(200, json.dumps({"count": count, "max_model_len": server.max_model_len,
                                                   "tokens": []}).encode())
            if model == "fault-400-context":
                message = (f"This model's maximum context length is {server.max_model_len} tokens. However, you "
                           f"requested {server.max_model_len + 100} tokens.")
                return self._send(400, json.dumps({"error": {"message": message, "type": "BadRequestError",
                                                             "param": None, "code": 400}}).encode())
            if model == "fault-slow":
                time.sleep(2)
            if model == "fault-404":
                return self._send(404, (RECORDINGS / "error_404.json").read_bytes())
            if model == "fault-500":
                return self._send(500, b'{"object":"error","message":"engine dead","code":500}')
            if self.path.endswith("/embeddings"):
                return self._send(200, (RECORDINGS / "embeddings.json").read_bytes())
            if self.path.endswith(("/rerank", "/score")):  # vLLM's cross-encoder APIs, recorded on a real vLLM
                if "query" not in body and "text_1" not in body:
                    return self._send(400, (RECORDINGS / "vllm_rerank_error.json").read_bytes())
                name = "vllm_rerank.json" if self.path.endswith("/rerank") else "vllm_score.json"
                return self._send(200, (RECORDINGS / name).read_bytes())
            if model == "usage-details" and not stream:
                # vLLM with --enable-prompt-tokens-details and a reasoning parser reports these parts.
                answer = json.loads((RECORDINGS / "chat_completion.json").read_bytes())
                answer["usage"].update({"prompt_tokens_details": {"cached_tokens": 32, "created_cache_tokens": 9},
                                        "completion_tokens_details": {"reasoning_tokens": 3}})
                return self._send(200, json.dumps(answer).encode())
            if not stream:
                name = "chat_completion_malformed.json" if model == "fault-malformed" else "chat_completion.json"
                return self._send(200, (RECORDINGS / name).read_bytes())
            usage = (body.get("stream_options") or {}).get("include_usage") is True
            name = {
                "fault-malformed": "chat_stream_malformed.sse",
            }.get(model, "chat_stream_with_usage.sse" if usage else "chat_stream_without_usage.sse")
            events = [e + b"\n\n" for e in (RECORDINGS / name).read_bytes().split(b"\n\n") if e]
            self._stream(events, drop_after=2 if model == "fault-drop" else None)

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if status == 200:
                _note_usage(server, payload)
            self.wfile.write(payload)

        def _stream(self, events: list[bytes], drop_after: int | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, event in enumerate(events):
                if drop_after is not None and i == drop_after:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # mid-stream: no terminating chunk
                    return
                _note_usage(server, event.removeprefix(b"data: ").strip())
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
                time.sleep(server.chunk_delay)
            self.wfile.write(b"0\r\n\r\n")

    return Handler


def _note_usage(server: RecordedOpenAIServer, payload: bytes) -> None:
    try:
        usage = json.loads(payload).get("usage")
    except (ValueError, AttributeError):
        return
    if isinstance(usage, dict):
        server.sent_usage.append(usage)
