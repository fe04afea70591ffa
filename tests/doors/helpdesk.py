"""A help-desk answer service written with no telemetry at all, the way the doors see an application: FastAPI,
the openai SDK against an OpenAI-compatible server, and one log line per answer."""

import logging
import os

import openai
from fastapi import FastAPI

log = logging.getLogger("helpdesk")
app = FastAPI()
llm = openai.AsyncOpenAI(base_url=os.environ["LLM_URL"], api_key="unused")


@app.get("/answer")
async def answer(topic: str = "hours") -> dict[str, str]:
    reply = await llm.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": f"What about {topic}?"}])
    log.warning("answered a question")
    return {"answer": reply.choices[0].message.content or ""}
