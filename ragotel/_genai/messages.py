"""Captured content in the GenAI conventions' message-parts schema.

With content capture on, prompts and answers are recorded as the conventions shape them
(``gen_ai.input.messages``, ``gen_ai.output.messages``)::

    [{"role": "system", "parts": [{"type": "text", "content": "Answer from the context."}]},
     {"role": "user", "parts": [{"type": "text", "content": "When does the clinic open?"}]}]

    [{"role": "assistant", "parts": [{"type": "text", "content": "At eight."}], "finish_reason": "stop"}]

OpenAI chat messages (strings or content-part lists, tool calls, tool results), completion prompts and
what a generation returned are converted here. Every text passes the content policy (cut to its
length, then the redaction hook) part by part, so the JSON stays valid whatever is cut. Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ragotel._genai.protocol import Choice, ResponseFacts

Clean = Callable[[str], "str | None"]
"""The content policy's text function: the text to record, or ``None`` to drop it."""
Part = dict[str, Any]
Message = dict[str, Any]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _text(clean: Clean, value: str) -> Part | None:
    content = clean(value)
    return None if content is None else {"type": "text", "content": content}


def _arguments(raw: Any, clean: Clean) -> Any:
    """Tool-call arguments as an object when they are JSON, else the cleaned text."""
    if isinstance(raw, str):
        cleaned = clean(raw)
        if cleaned is None:
            return None
        try:
            return json.loads(cleaned)
        except ValueError:
            return cleaned
    return raw


def _content_parts(content: Any, clean: Clean) -> list[Part]:
    if isinstance(content, str):
        part = _text(clean, content)
        return [part] if part is not None else []
    parts: list[Part] = []
    if isinstance(content, Sequence) and not isinstance(content, (bytes, str)):
        for item in content:
            kind = _get(item, "type")
            if kind == "text" and isinstance(_get(item, "text"), str):
                part = _text(clean, _get(item, "text"))
                if part is not None:
                    parts.append(part)
            elif kind == "image_url":
                url = _get(_get(item, "image_url"), "url")
                if isinstance(url, str) and not url.startswith("data:"):
                    parts.append({"type": "uri", "modality": "image", "uri": url})
                elif isinstance(url, str):
                    _append_blob(parts, clean, *_data_url(url), default_modality="image")
            elif kind == "input_audio":
                audio = _get(item, "input_audio")
                data, fmt = _get(audio, "data"), _get(audio, "format")
                if isinstance(data, str):
                    _append_blob(parts, clean, f"audio/{fmt}" if isinstance(fmt, str) else "", data,
                                 default_modality="audio")
            elif kind == "file":
                _append_file(parts, clean, _get(item, "file"))
            elif isinstance(kind, str):  # a part type the conventions do not know: its type only
                parts.append({"type": kind})
    return parts


def _data_url(url: str) -> tuple[str, str]:
    """``data:image/png;base64,AAAA`` → (``image/png``, ``AAAA``)."""
    header, _, data = url.partition(",")
    return header[len("data:"):].split(";")[0], data


def _modality(mime: str, default: str) -> str:
    """The conventions' modality of a MIME type: image, audio, video; other files (PDF, ...) are documents."""
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else default


def _append_blob(parts: list[Part], clean: Clean, mime: str, data: str, *, default_modality: str) -> None:
    # Inline data is a blob; the schema requires its content, which passes the policy like text.
    content = clean(data)
    if content is None:
        return
    blob: Part = {"type": "blob", "modality": _modality(mime, default_modality) if mime else default_modality,
                  "content": content}
    if mime:
        blob["mime_type"] = mime
    parts.append(blob)


def _append_file(parts: list[Part], clean: Clean, file: Any) -> None:
    """An OpenAI ``file`` part: an uploaded file by id, or inline ``file_data`` (a data URL)."""
    file_id, data = _get(file, "file_id"), _get(file, "file_data")
    if isinstance(file_id, str):
        parts.append({"type": "file", "modality": "document", "file_id": file_id})
    elif isinstance(data, str):
        mime, content = _data_url(data) if data.startswith("data:") else ("", data)
        _append_blob(parts, clean, mime, content, default_modality="document")


def input_messages(messages: Any, clean: Clean) -> list[Message] | None:
    """OpenAI chat messages in the parts schema, or ``None`` if ``messages`` is not a list of messages."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        return None
    out: list[Message] = []
    for message in messages:
        role = _get(message, "role")
        if not isinstance(role, str):
            continue
        parts = _content_parts(_get(message, "content"), clean)
        if role == "tool":
            response = parts[0]["content"] if parts and "content" in parts[0] else None
            part: Part = {"type": "tool_call_response", "response": response}
            if isinstance(_get(message, "tool_call_id"), str):
                part["id"] = _get(message, "tool_call_id")
            parts = [part]
        for call in _get(message, "tool_calls") or ():
            function = _get(call, "function")
            entry: Part = {"type": "tool_call", "name": _get(function, "name"),
                           "arguments": _arguments(_get(function, "arguments"), clean)}
            if isinstance(_get(call, "id"), str):
                entry["id"] = _get(call, "id")
            parts.append(entry)
        out.append({"role": role, "parts": parts})
    return out


def prompt_messages(prompt: Any, clean: Clean) -> list[Message] | None:
    """A text-completion ``prompt`` (a string or a list of strings) as user messages."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        return None
    return [{"role": "user", "parts": _content_parts(p, clean)} for p in prompts]


def request_messages(body: Mapping[str, Any], clean: Clean) -> list[Message] | None:
    """The input messages of a chat or text-completion request body."""
    if "messages" in body:
        return input_messages(body["messages"], clean)
    if "prompt" in body:
        return prompt_messages(body["prompt"], clean)
    return None


def _output(choice: Choice, clean: Clean, *, with_finish_reason: bool) -> Message:
    parts: list[Part] = []
    if choice.reasoning:
        content = clean("".join(choice.reasoning))
        if content is not None:
            parts.append({"type": "reasoning", "content": content})
    if choice.text:
        part = _text(clean, "".join(choice.text))
        if part is not None:
            parts.append(part)
    for call in choice.tool_calls.values():
        entry: Part = {"type": "tool_call", "name": call.get("name"), "arguments": _arguments(call["arguments"], clean)}
        if "id" in call:
            entry["id"] = call["id"]
        parts.append(entry)
    message: Message = {"role": "assistant", "parts": parts}
    if with_finish_reason and choice.finish_reason is not None:
        message["finish_reason"] = choice.finish_reason
    return message


def output_messages(facts: ResponseFacts, clean: Clean, *, with_finish_reason: bool = True) -> list[Message] | None:
    """The choices a response returned, in the parts schema (``None`` when no text was kept).

    ``with_finish_reason=False`` leaves ``finish_reason`` out of each message: the newest schema
    deprecates it there in favour of ``gen_ai.response.finish_reasons``.
    """
    if not facts.choices:
        return None
    if len(facts.choices) == 1 and len(facts.finish_reasons) == 1:
        only = next(iter(facts.choices.values()))
        if only.finish_reason is None:
            only.finish_reason = facts.finish_reasons[0]
    return [_output(facts.choices[i], clean, with_finish_reason=with_finish_reason) for i in sorted(facts.choices)]


def dumps(messages: list[Message]) -> str:
    """Compact JSON, the form a span attribute takes (events keep the structure)."""
    return json.dumps(messages, ensure_ascii=False, separators=(",", ":"), default=str)
