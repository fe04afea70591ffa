"""The OpenAI-compatible HTTP API as ragotel reads it: request bodies, JSON responses, SSE streams.

Pure functions and small state machines with no I/O, shared by every HTTP client integration.
Nothing here raises on bad input: a body that cannot be read yields fewer facts, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel.semconv import Operation, StepKind

# Path suffix → (operation, step kind). vLLM serves these under /v1; proxies may add a prefix.
ENDPOINTS: Final[Mapping[str, tuple[Operation, StepKind]]] = {
    "/chat/completions": (Operation.CHAT, StepKind.GENERATION),
    "/completions": (Operation.TEXT_COMPLETION, StepKind.GENERATION),
    "/embeddings": (Operation.EMBEDDINGS, StepKind.EMBEDDING),
}
# Request fields → span attributes.
_REQUEST_FIELDS: Final = (
    ("model", sc.GEN_AI_REQUEST_MODEL),
    ("max_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", sc.GEN_AI_REQUEST_TOP_P),
    ("top_k", sc.GEN_AI_REQUEST_TOP_K),
    ("n", sc.GEN_AI_REQUEST_CHOICE_COUNT),
    ("seed", sc.GEN_AI_REQUEST_SEED),
    ("stream", sc.GEN_AI_REQUEST_STREAM),
)
# A JSON body larger than this is passed through unread rather than copied.
MAX_PARSED_BODY: Final = 8 * 1024 * 1024


def match_endpoint(path: str) -> tuple[Operation, StepKind] | None:
    """The GenAI operation of an API path such as ``/v1/chat/completions``, else ``None``."""
    path = path.rstrip("/")
    for suffix, found in ENDPOINTS.items():
        if path.endswith(suffix):
            # "/completions" must not match the tail of "/chat/completions"
            if suffix == "/completions" and path.endswith("/chat/completions"):
                continue
            return found
    return None


@dataclass(slots=True)
class RequestInfo:
    """What a request body says, plus the body rewritten to ask for streamed usage if needed."""

    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    model: str | None = None
    stream: bool = False
    body: dict[str, Any] | None = None
    usage_added: bool = False
    """True when ragotel added ``stream_options.include_usage``; the usage chunk is then hidden."""


def read_request(raw: bytes, *, add_usage: bool) -> RequestInfo:
    """Parse a JSON request body; never raises."""
    info = RequestInfo()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return info
    if not isinstance(body, dict):
        return info
    info.body = body
    for key, attribute in _REQUEST_FIELDS:
        value = body.get(key)
        if isinstance(value, (str, bool, int, float)):
            info.attributes[attribute] = value
    stop = body.get("stop")
    if isinstance(stop, str):
        info.attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        info.attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
    encoding = body.get("encoding_format")
    if isinstance(encoding, str):
        info.attributes[sc.GEN_AI_REQUEST_ENCODING_FORMATS] = [encoding]
    model = body.get("model")
    info.model = model if isinstance(model, str) else None
    info.stream = body.get("stream") is True
    options = body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    if info.stream and add_usage and not asked:
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        info.usage_added = True
    return info


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class ResponseFacts:
    """What a response said, accumulated over a body or a stream."""

    response_id: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: list[str] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    text_chars: int = 0
    error: str | None = None
    """``error.type`` when the body could not be read as the API promises."""

    def absorb(self, payload: Mapping[str, Any], *, keep_text: bool) -> None:
        """Merge one JSON object: a whole response, or one streamed chunk."""
        if isinstance(payload.get("id"), str) and self.response_id is None:
            self.response_id = payload["id"]
        if isinstance(payload.get("model"), str):
            self.model = payload["model"]
        usage = payload.get("usage")
        if isinstance(usage, Mapping):
            for key, attr in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    setattr(self, attr, value)
        choices = payload.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, Mapping):
                continue
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reasons.append(reason)
            message = choice.get("delta") or choice.get("message")
            text = message.get("content") if isinstance(message, Mapping) else choice.get("text")
            if isinstance(text, str):
                self.text_chars += len(text)
                if keep_text:
                    self.text_parts.append(text)

    def read_json(self, raw: bytes, *, keep_text: bool) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            self.error = "malformed_body"
            return
        if not isinstance(payload, Mapping):
            self.error = "malformed_body"
            return
        self.absorb(payload, keep_text=keep_text)


class SseReader:
    """Reads a ``text/event-stream`` as its bytes pass, event by event, without holding the stream.

    :meth:`feed` returns the bytes to hand to the caller. They are the bytes received, except that
    when ``hide_usage_chunk`` is set (ragotel asked for usage, the caller did not) the usage-only
    chunk is left out, so the caller sees the stream it asked for. Bytes of an event are forwarded
    once the event is complete; an event split across network reads waits for its end.
    """

    def __init__(self, facts: ResponseFacts, *, keep_text: bool, hide_usage_chunk: bool) -> None:
        self.facts = facts
        self.keep_text = keep_text
        self.hide_usage_chunk = hide_usage_chunk
        self.chunks = 0
        """Data events carrying a JSON chunk."""
        self.done = False
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        if not self.hide_usage_chunk:
            self._scan(data)
            return data
        self._pending += data
        out: list[bytes] = []
        while True:
            end = _event_end(self._pending)
            if end < 0:
                break
            event, self._pending = self._pending[:end], self._pending[end:]
            if not self._handle_event(event):
                out.append(event)
        return b"".join(out)

    def flush(self) -> bytes:
        """Read an unterminated last event; return what of it the caller has not received yet."""
        rest, self._pending = self._pending, b""
        if not rest:
            return b""
        hidden = self._handle_event(rest)
        # Without filtering, every byte was already forwarded by feed().
        return rest if self.hide_usage_chunk and not hidden else b""

    # Scanning without filtering still needs event boundaries; keep a tail for split events.
    def _scan(self, data: bytes) -> None:
        self._pending += data
        while True:
            end = _event_end(self._pending)
            if end < 0:
                return
            event, self._pending = self._pending[:end], self._pending[end:]
            self._handle_event(event)

    def _handle_event(self, event: bytes) -> bool:
        """Read one event; True if it is the usage-only chunk to hide from the caller."""
        data_lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
        if not data_lines:
            return False
        payload = b"\n".join(data_lines)
        if payload == b"[DONE]":
            self.done = True
            return False
        try:
            chunk = json.loads(payload)
        except ValueError:
            self.facts.error = "malformed_stream"
            return False
        if not isinstance(chunk, Mapping):
            self.facts.error = "malformed_stream"
            return False
        if isinstance(chunk.get("error"), Mapping):
            self.facts.error = "stream_error"
        self.chunks += 1
        self.facts.absorb(chunk, keep_text=self.keep_text)
        usage_only = chunk.get("choices") == [] and isinstance(chunk.get("usage"), Mapping)
        return self.hide_usage_chunk and usage_only


def _event_end(buffer: bytes) -> int:
    """Index just past the first complete SSE event in ``buffer`` (blank-line terminated), or -1."""
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n", b"\r\r") if (i := buffer.find(sep)) >= 0]
    return min(ends) if ends else -1
