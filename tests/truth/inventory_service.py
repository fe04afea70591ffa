"""A small stock-keeping service, served by real ASGI servers in ``test_shutdown.py``.

``INVENTORY_TELEMETRY`` says how it is observed:

* ``code``: ``ragotel.configure()`` and ``ragotel.instrument_fastapi(app)`` at import, as the README shows; every
  stock lookup is a retrieval step (``retrieval shelf``), the count at shutdown one more (``retrieval ledger``);
* ``none``: no ragotel at all (the baseline, and the app ``opentelemetry-instrument`` observes); the lookups are
  plain functions, and the zero-code configurator, when present, gives the server spans.

Each thing it finishes is written as a line to the file ``INVENTORY_LEDGER`` names, apart from any telemetry:
the truth the spans are compared with. ``/restock/{item}`` answers in two parts, 0.3 s apart, so that it is
still being answered when the server is told to stop; ``/stream`` never finishes unless the server ends it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

MODE = os.environ.get("INVENTORY_TELEMETRY", "code")
LEDGER = os.environ.get("INVENTORY_LEDGER")
RESTOCK_S = 0.3
SHELF = {"bolt": 120, "nut": 80, "washer": 0}


def note(event: str) -> None:
    if LEDGER:
        with open(LEDGER, "a", encoding="utf-8") as ledger:
            ledger.write(event + "\n")


def _shelf_lookup(item: str) -> list[dict[str, Any]]:
    return [{"id": item, "score": 1.0, "text": f"{item}: {SHELF.get(item, 0)} in stock"}]


def _ledger_count() -> list[dict[str, Any]]:
    return [{"id": item, "score": 1.0, "text": f"{item}: {count}"} for item, count in SHELF.items()]


lookup: Callable[[str], list[dict[str, Any]]] = _shelf_lookup
count: Callable[[], list[dict[str, Any]]] = _ledger_count


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    count()  # the stock count at closing: recorded in the shutdown, after the last request
    note("stocktake")


app = FastAPI(lifespan=lifespan)

if MODE == "code":
    import ragotel

    ragotel.configure(service_name="inventory")
    ragotel.instrument_fastapi(app)
    lookup = ragotel.retrieval("stock lookup", data_source="shelf")(_shelf_lookup)
    count = ragotel.retrieval("stocktake", data_source="ledger")(_ledger_count)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/stock/{item}")
async def stock(item: str) -> dict[str, Any]:
    hits = lookup(item)
    note("stock")
    return {"item": item, "hits": hits}


@app.get("/restock/{item}")
async def restock(item: str) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        yield b"restocking\n"
        await asyncio.sleep(RESTOCK_S)
        lookup(item)
        note("restock")
        yield b"restocked\n"

    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"counting\n"
            await asyncio.Event().wait()  # never set: open until the server gives up on it
        finally:
            note("stream ended")

    return StreamingResponse(chunks(), media_type="text/plain")
