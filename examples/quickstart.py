"""A RAG pipeline in thirty lines, instrumented with ragotel, traced to a local OTLP receiver.

Run it with ``python examples/quickstart.py``: it starts ragotel's local receiver (or uses
``OTEL_EXPORTER_OTLP_ENDPOINT`` when set), answers a few questions from a tiny in-memory corpus,
and prints the trace of the last one as a terminal waterfall.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import ragotel
from ragotel.cli import DEFAULT_DIR, SPANS_FILENAME
from ragotel.cli.receiver import OtlpReceiver
from ragotel.cli.waterfall import latest_trace_id, load_spans, render_waterfall

CORPUS = {
    "hours": "The clinic is open Monday to Friday from 8:00 to 18:00 and Saturday from 9:00 to 13:00.",
    "parking": "Free parking for patients is behind the main building, entrance on Linden Street.",
    "cancel": "Appointments can be cancelled free of charge up to 24 hours before the visit.",
}
log = logging.getLogger("quickstart")


@ragotel.retrieval(data_source="keyword")
def search(query: str, k: int = 2) -> list[dict[str, object]]:
    words = set(query.lower().split())
    scored = [
        {"id": doc_id, "text": text, "score": len(words & set(text.lower().split())) / len(words)}
        for doc_id, text in CORPUS.items()
    ]
    return sorted(scored, key=lambda hit: -float(str(hit["score"])))[:k]


@ragotel.generation(model="echo-model", provider="local")
def generate(messages: list[dict[str, str]]) -> dict[str, object]:
    time.sleep(0.02)  # stands in for a model server
    context = messages[0]["content"]
    return {"choices": [{"message": {"content": context.splitlines()[0]}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(context.split()), "completion_tokens": 12}, "model": "echo-model"}


@ragotel.pipeline("chat")
def answer(question: str) -> str:
    hits = search(question)
    with ragotel.prompt(template="rag-v1") as step:
        context = "\n".join(str(hit["text"]) for hit in hits)
        messages = [{"role": "system", "content": context}, {"role": "user", "content": question}]
        step.record(chunks=len(hits), context_chars=len(context), messages=messages)
    reply = generate(messages)
    log.info("answered with %d chunks", len(hits))
    return str(reply["choices"][0]["message"]["content"])  # type: ignore[index]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s trace_id=%(trace_id)s %(message)s")
    external = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    receiver = None if external else OtlpReceiver(port=0, spans_path=DEFAULT_DIR / SPANS_FILENAME).start()
    telemetry = ragotel.configure(
        service_name="quickstart", endpoint=receiver.endpoint if receiver else None, prometheus_port=0
    )
    for question in ("When is the clinic open?", "Where can patients park?", "Can I cancel an appointment?"):
        print(f"Q: {question}\nA: {answer(question)}\n")
    telemetry.shutdown()  # flushes every queued span, metric and log
    if receiver is None:
        print(f"Telemetry went to {external}; open Grafana (Tempo) to see the traces.")
        return
    receiver.stop()
    spans = load_spans(Path(DEFAULT_DIR / SPANS_FILENAME))
    trace_id = latest_trace_id(spans)
    if trace_id:
        print(render_waterfall(spans, trace_id))
    print(f"\nSpans and logs: {DEFAULT_DIR}/ — draw any trace again with `ragotel trace [TRACE_ID]`.")
    print("Send to Grafana Alloy instead: OTEL_EXPORTER_OTLP_ENDPOINT=http://alloy:4318 python examples/quickstart.py")


if __name__ == "__main__":
    main()
