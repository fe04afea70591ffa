"""The OpenAI-compatible API as ragotel reads it: request bodies, responses, SSE streams.

Pure functions and small state machines with no I/O. The HTTP client instrumentation feeds them JSON
bodies and stream chunks; generation steps feed them what the code returned (a dict, or an ``openai``
SDK object): one reader for both. Nothing here raises on bad input: a body that cannot be read yields
fewer facts, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core.safe import report_internal_error
from ragotel.semconv import Operation, StepKind


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What an API path does: the GenAI operation (``None``: the conventions define none) and the step kind."""

    operation: Operation | None
    kind: StepKind
    verb: str
    """First word of the span name (the operation, or the step kind)."""

    @property
    def inference(self) -> bool:
        """A chat or text completion: what the conventions call inference."""
        return self.operation is not None and self.operation.value in sc.INFERENCE_OPERATIONS


_CHAT = Endpoint(Operation.CHAT, StepKind.GENERATION, Operation.CHAT.value)
_COMPLETION = Endpoint(Operation.TEXT_COMPLETION, StepKind.GENERATION, Operation.TEXT_COMPLETION.value)
_EMBEDDINGS = Endpoint(Operation.EMBEDDINGS, StepKind.EMBEDDING, Operation.EMBEDDINGS.value)
# vLLM's cross-encoder APIs: /rerank (Jina/Cohere shape, also /v1/rerank and /v2/rerank) and /score.
_RERANK = Endpoint(None, StepKind.RERANK, StepKind.RERANK.value)
# Path suffix → endpoint. vLLM serves these under /v1 (rerank and score also at the root); proxies may add a prefix.
ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    "/chat/completions": _CHAT,
    "/completions": _COMPLETION,
    "/embeddings": _EMBEDDINGS,
    "/rerank": _RERANK,
    "/score": _RERANK,
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


def match_endpoint(path: str) -> Endpoint | None:
    """What an API path such as ``/v1/chat/completions`` does, else ``None``."""
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
    candidates = rerank_candidates(body)
    if candidates is not None:
        info.attributes[sc.RAG_RERANK_INPUT_DOCUMENTS] = candidates
        top_n = body.get("top_n")
        if type(top_n) is int and top_n > 0:  # vLLM: 0 keeps every document
            info.attributes[sc.RAG_RERANK_TOP_N] = top_n
    model = body.get("model")
    info.model = model if isinstance(model, str) else None
    info.stream = body.get("stream") is True
    options = body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    if info.stream and add_usage and not asked:
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        info.usage_added = True
    return info


# The pair forms vLLM's /score takes (query side, document side), then /rerank's.
_CANDIDATE_FIELDS: Final = (("text_1", "text_2"), ("queries", "documents"), ("queries", "items"),
                            ("data_1", "data_2"), ("query", "documents"))


def rerank_candidates(body: Mapping[str, Any]) -> int | None:
    """How many documents a rerank or score request asks to rank, or ``None`` for other requests."""
    for query_key, documents_key in _CANDIDATE_FIELDS:
        if query_key in body and documents_key in body:
            documents = body[documents_key]
            return len(documents) if isinstance(documents, list) else 1
    return None


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping (a JSON body), ``obj.key`` for anything else (an ``openai`` SDK object)."""
    if type(obj) is dict:  # the exact-type check skips the slow ABC one
        return obj.get(key)
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _reader(obj: Any) -> Callable[[str], Any]:
    """``_get`` bound to ``obj``, for reading several fields of one object: a mapping's own ``get`` (for a
    dict, a C call with no Python frame per field: a generation step reads a dozen fields of every answer)."""
    if type(obj) is dict or isinstance(obj, Mapping):
        return obj.get
    return lambda key: getattr(obj, key, None)


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


class Usage(NamedTuple):
    """Token counts of one call as the conventions count them: ``input`` includes the cached tokens and
    ``output`` the reasoning ones. ``None``: not reported. (A tuple: one is built per model call.)"""

    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    """Input tokens served from the prompt cache (vLLM's prefix cache, OpenAI's cached tokens)."""
    cache_write: int | None = None
    """Input tokens written to the prompt cache (providers that report or bill it)."""
    reasoning: int | None = None
    """Output tokens spent reasoning."""

    @property
    def known(self) -> bool:
        return self.input is not None or self.output is not None


NO_USAGE: Final = Usage()


def read_usage(usage: Any) -> Usage:
    """Token counts from a ``usage`` object: Chat Completions (OpenAI, vLLM), Responses, and Anthropic's
    cache counts, which its ``input_tokens`` leaves out (they are added, so ``input`` stays inclusive).

    Only the fields named here are read: parts no convention knows yet (new cache or modality details, of
    any shape) are left out, and a usage object that fails to read gives no usage, never a lost response."""
    if usage is None:
        return NO_USAGE
    if (type(usage) is dict and "prompt_tokens" in usage and "prompt_tokens_details" not in usage
            and "completion_tokens_details" not in usage):  # the plain chat shape, read fast
        return Usage(_count(usage["prompt_tokens"]), _count(usage.get("completion_tokens")))
    try:
        return _read_usage(usage)
    except Exception as exc:  # e.g. an SDK object whose property raises: the rest of the response still counts
        report_internal_error("reading a response's usage", exc)
        return NO_USAGE


def _read_usage(usage: Any) -> Usage:
    prompt = _count(_get(usage, "prompt_tokens"))
    output = _count(_get(usage, "completion_tokens"))
    details = _get(usage, "prompt_tokens_details")
    out_details = _get(usage, "completion_tokens_details")
    if prompt is None:
        prompt = _count(_get(usage, "input_tokens"))
        details = _get(usage, "input_tokens_details")
    if output is None:
        output = _count(_get(usage, "output_tokens"))
        out_details = _get(usage, "output_tokens_details")
    cache_read = cache_write = reasoning = None
    if details is not None:
        cache_read = _count(_get(details, "cached_tokens"))
        # OpenAI says cache_write_tokens, vLLM (--enable-prompt-tokens-details) created_cache_tokens.
        cache_write = _count(_get(details, "cache_write_tokens"))
        if cache_write is None:
            cache_write = _count(_get(details, "created_cache_tokens"))
    elif prompt is not None:
        anthropic_read = _count(_get(usage, "cache_read_input_tokens"))
        anthropic_write = _count(_get(usage, "cache_creation_input_tokens"))
        if anthropic_read is not None or anthropic_write is not None:
            cache_read, cache_write = anthropic_read, anthropic_write
            prompt += (anthropic_read or 0) + (anthropic_write or 0)
    if out_details is not None:
        reasoning = _count(_get(out_details, "reasoning_tokens"))
    if prompt is None and output is None:
        prompt = _count(_get(usage, "total_tokens"))  # rerank answers count only what was read
    return Usage(prompt, output, cache_read, cache_write, reasoning)


@dataclass(slots=True)
class Choice:
    """One choice of a completion, kept only while content is captured: its text, reasoning and tool calls."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    """By index: ``id``, ``name`` and the ``arguments`` text (streamed in pieces)."""
    finish_reason: str | None = None


@dataclass(slots=True)
class ResponseFacts:
    """What a response said, accumulated over a whole body or the chunks of a stream.

    ``absorb`` reads mappings (JSON) and objects (the ``openai`` SDK's models) alike. Characters are
    always counted; the text itself is kept per choice only with ``keep_text`` (content capture).
    """

    response_id: str | None = None
    model: str | None = None
    usage: Usage = NO_USAGE
    finish_reasons: list[str] = field(default_factory=list)
    text_chars: int = 0
    reasoning_chars: int = 0
    choices: dict[int, Choice] = field(default_factory=dict)
    scores: list[float] | None = None
    """Rerank and score answers: the relevance score of each returned document, in answer order."""
    error: str | None = None
    """``error.type`` when the body could not be read as the API promises."""

    @classmethod
    def of(cls, result: Any, *, keep_text: bool) -> ResponseFacts | None:
        """Facts of what a generation returned: a string, or a (chat) completion; ``None`` for anything else."""
        facts = cls()
        if isinstance(result, str):
            facts.text_chars = len(result)
            if keep_text:
                facts.choices[0] = Choice(text=[result])
            return facts
        get = _reader(result)
        if not isinstance(get("choices"), (list, tuple)):
            return None
        facts._absorb(get, keep_text)
        return facts

    @property
    def text(self) -> str | None:
        """The first choice's text (content capture only)."""
        first = self.choices.get(0) or next(iter(self.choices.values()), None)
        return "".join(first.text) if first is not None and first.text else None

    def absorb(self, payload: Any, *, keep_text: bool) -> None:
        """Merge one response: a whole body, or one streamed chunk."""
        self._absorb(_reader(payload), keep_text)

    def _absorb(self, get: Callable[[str], Any], keep_text: bool) -> None:
        """``absorb``, given the response's fields (``_reader``)."""
        value = get("id")
        if isinstance(value, str) and self.response_id is None:
            self.response_id = value
        value = get("model")
        if isinstance(value, str):
            self.model = value
        usage = get("usage")
        if usage is not None:
            found = read_usage(usage)
            if found.known:
                self.usage = found
        choices = get("choices")
        if isinstance(choices, (list, tuple)):
            for position, choice in enumerate(choices):
                if choice is not None and not isinstance(choice, (str, bytes)):
                    self._choice(position, choice, keep_text)
            return
        results = get("results")  # /rerank
        if isinstance(results, list):
            self.scores = _scores(results, "relevance_score")
            return
        data = get("data")  # /score; /embeddings answers a list of embeddings instead
        if isinstance(data, list) and data and _get(data[0], "object") == "score":
            self.scores = _scores(data, "score")

    def _choice(self, position: int, choice: Any, keep_text: bool) -> None:
        get = _reader(choice)
        reason = get("finish_reason")
        if isinstance(reason, str):
            self.finish_reasons.append(reason)
        message = get("delta")
        if message is None:
            message = get("message")
        if message is not None:
            read = _reader(message)
            text = read("content")
            thought = read("reasoning_content")
            if thought is None:
                thought = read("reasoning")
            calls = read("tool_calls") if keep_text else None
        else:
            text, thought, calls = get("text"), None, None
        text = text if isinstance(text, str) else None
        thought = thought if isinstance(thought, str) else None
        if text is not None:
            self.text_chars += len(text)
        if thought is not None:
            self.reasoning_chars += len(thought)
        if not keep_text:
            return
        index = get("index")
        kept = self.choices.setdefault(index if type(index) is int else position, Choice())
        if text:
            kept.text.append(text)
        if thought:
            kept.reasoning.append(thought)
        if isinstance(reason, str):
            kept.finish_reason = reason
        if isinstance(calls, (list, tuple)):
            for number, call in enumerate(calls):
                _tool_call(kept, number, call)

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


def _scores(items: list[Any], key: str) -> list[float]:
    scores = []
    for item in items:
        score = _get(item, key)
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            scores.append(float(score))
    return scores


def _tool_call(choice: Choice, number: int, call: Any) -> None:
    """Merge a tool call, whole or one streamed piece of it (pieces share an ``index``)."""
    index = _get(call, "index")
    entry = choice.tool_calls.setdefault(index if type(index) is int else number, {"arguments": ""})
    call_id = _get(call, "id")
    if isinstance(call_id, str):
        entry["id"] = call_id
    function = _get(call, "function")
    if function is None:
        return
    name = _get(function, "name")
    if isinstance(name, str):
        entry["name"] = name
    arguments = _get(function, "arguments")
    if isinstance(arguments, str):
        entry["arguments"] += arguments


class SseReader:
    """Reads a ``text/event-stream`` as its bytes pass, event by event, without holding the stream.

    ``feed`` returns the bytes to hand to the caller. They are the bytes received, except that
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
