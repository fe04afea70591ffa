"""With content capture off (the default), no question, prompt, document or answer text leaves the
process in a span, a log record or a metric, across every step and integration the reference chat
API uses; API keys and Authorization headers never leave it, even with capture on."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import openai
import pytest

import ragotel
from examples.reference_app.chat_api import create_app
from examples.reference_app.config import ChatSettings
from ragotel._core import runtime
from tests.conftest import Recorded
from tests.recorded_openai_server import RecordedOpenAIServer
from tests.retriever_double import HITS, RetrieverDouble

QUESTION = "Where can Ms Quillfeather park her zeppelin?"
DOCUMENT = "Zeppelins moor at the north mast, bay 7."
ANSWER = "The clinic opens at eight."  # what the recorded vLLM answer says
SECRET = "sk-live-4f9a1c0ffee7"


def everything_exported(recorded: Recorded, caplog: pytest.LogCaptureFixture) -> str:
    """All text the SDK would export, and every log line, as one string to search."""
    parts: list[Any] = []
    for span in recorded.spans():
        parts += [span.name, dict(span.attributes or {}), span.status.description]
        parts += [(e.name, dict(e.attributes or {})) for e in span.events]
        parts += [dict(link.attributes or {}) for link in span.links]
    for record in recorded.logs():
        log = record.log_record
        parts += [log.body, dict(log.attributes or {})]
    parts += [(p.name, p.attributes) for p in recorded.points()]
    parts += [caplog.text]
    return repr(parts)


async def test_chat_exports_no_content_by_default(recorded: Recorded, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    runtime.update(content_spans=False)
    hits = [{**HITS[0], "text": DOCUMENT}, HITS[1]]
    with RecordedOpenAIServer() as vllm, RetrieverDouble(hits=hits) as retriever:
        # /dryrun on: it shows the prompt to the caller, and must still export none of it.
        app = create_app(ChatSettings(retriever_url=retriever.url, vllm_url=vllm.base_url, min_score=0.0,
                                      debug_endpoints=True))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as client:
            answer = await client.post("/chat", json={"question": QUESTION, "max_tokens": 8})
            streamed = await client.post("/chat/stream", json={"question": QUESTION, "max_tokens": 8})
            rejected = await client.post("/chat", json={"question": QUESTION, "k": 99})
            dry = await client.post("/dryrun", json={"question": QUESTION})
    # The text went through every stage: it reached the model, the answer came back.
    assert answer.status_code == 200 and ANSWER in answer.json()["answer"]
    assert streamed.status_code == 200 and rejected.status_code == 422 and dry.status_code == 200
    assert any(DOCUMENT in m["content"] for r in vllm.requests for m in r["body"]["messages"])
    exported = everything_exported(recorded, caplog)
    assert len(recorded.spans()) >= 10 and recorded.points()
    for text in (QUESTION, "Quillfeather", DOCUMENT, "north mast", ANSWER):
        assert text not in exported, f"{text!r} leaked"


def test_capture_on_records_content_but_never_credentials(recorded: Recorded,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    runtime.update(content_spans=True)
    with RecordedOpenAIServer() as vllm:
        with httpx.Client(base_url=vllm.base_url, headers={"Authorization": f"Bearer {SECRET}"}) as client:
            ragotel.instrument_httpx(client)
            client.post("/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": QUESTION}]})
            with client.stream("POST", "/chat/completions", json={
                    "model": "m", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}) as stream:
                stream.read()
        sdk = openai.OpenAI(base_url=vllm.base_url, api_key=SECRET)
        ragotel.instrument_httpx(sdk._client)
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTION}])
        with ragotel.retrieval("search", data_source="faiss") as step:
            step.record(documents=[{"id": "d1", "score": 0.9, "text": DOCUMENT}])
    sent = [{k.lower(): v for k, v in r["headers"].items()}.get("authorization") for r in vllm.requests]
    assert sent == [f"Bearer {SECRET}"] * 3  # the key did go to the server
    exported = everything_exported(recorded, caplog)
    assert QUESTION in exported and DOCUMENT in exported  # capture is really on
    assert SECRET not in exported and "Bearer" not in exported
