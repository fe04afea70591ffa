"""Checks captured content against what the GenAI conventions' JSON schemas require.

Written from the facts of semantic-conventions-genai's schemas:

- ``gen-ai-input-messages.json`` / ``gen-ai-output-messages.json``: a message is an object with a ``role``
  string and a ``parts`` list; every part has a string ``type``; the typed parts need their own keys (below);
  ``modality`` is a string (known: image, video, audio, document); an output message's ``finish_reason``,
  when present, is a string.
- ``gen-ai-system-instructions.json``: a list of parts; a ``text`` part needs a string ``content``; any other
  part needs only its string ``type``.
- ``gen-ai-retrieval-documents.json``: a list of objects; ``id``, when present, is a string; ``score``, when
  present, a number or null; other keys are allowed.

Each function returns the problems found, empty when the content conforms.
"""

from __future__ import annotations

from typing import Any

# The keys each typed part requires besides ``type``.
REQUIRED = {
    "text": ("content",),
    "tool_call": ("name",),
    "tool_call_response": ("response",),
    "blob": ("modality", "content"),
    "file": ("modality", "file_id"),
    "uri": ("modality", "uri"),
    "reasoning": ("content",),
    "server_tool_call": ("name", "server_tool_call"),
}
STRINGS = {"text": "content", "reasoning": "content", "blob": "content", "uri": "uri", "file": "file_id"}
MODALITIES = {"image", "video", "audio", "document"}


def problems(messages: Any, *, output: bool = False) -> list[str]:
    found: list[str] = []
    if not isinstance(messages, list):
        return ["messages are not a list"]
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            found.append(f"{i}: not an object")
            continue
        if not isinstance(message.get("role"), str):
            found.append(f"{i}: role missing or not a string")
        if not isinstance(message.get("parts"), list):
            found.append(f"{i}: parts missing or not a list")
            continue
        if output and message.get("finish_reason") is not None and not isinstance(message["finish_reason"], str):
            found.append(f"{i}: finish_reason not a string")
        for j, part in enumerate(message["parts"]):
            where = f"{i}.{j}"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                found.append(f"{where}: part without a string type")
                continue
            kind = part["type"]
            found += [f"{where}: {kind} lacks {key}" for key in REQUIRED.get(kind, ()) if key not in part]
            key = STRINGS.get(kind)
            if key in part and not isinstance(part[key], str):
                found.append(f"{where}: {kind}.{key} not a string")
            if "modality" in part and not isinstance(part["modality"], str):
                found.append(f"{where}: modality not a string")
    return found


def system_instruction_problems(parts: Any) -> list[str]:
    if not isinstance(parts, list):
        return ["system instructions are not a list"]
    found: list[str] = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            found.append(f"{i}: part without a string type")
        elif part["type"] == "text" and not isinstance(part.get("content"), str):
            found.append(f"{i}: text lacks a string content")
    return found


def retrieval_document_problems(documents: Any) -> list[str]:
    if not isinstance(documents, list):
        return ["documents are not a list"]
    found: list[str] = []
    for i, document in enumerate(documents):
        if not isinstance(document, dict):
            found.append(f"{i}: not an object")
            continue
        if "id" in document and not isinstance(document["id"], str):
            found.append(f"{i}: id not a string")
        score = document.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            found.append(f"{i}: score not a number")
    return found
