"""A test double for the reference retriever: ``POST /search`` returns fixed hits, optionally late."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_double import HttpDouble

HITS: list[dict[str, Any]] = [
    {"doc_id": "faq-parking", "section": "Parking", "source": "faq-parking.md", "score": 0.71,
     "text": "The clinic car park has 40 spaces."},
    {"doc_id": "policy-visitor", "section": "Visitors", "source": "policy-visitor.md", "score": 0.52,
     "text": "Companions may park in the visitor bays."},
]


class RetrieverDouble(HttpDouble):
    def __init__(self, *, delay: float = 0.0, hits: list[dict[str, Any]] | None = None) -> None:
        self.delay, self.hits = delay, HITS if hits is None else hits
        self.requests: list[dict[str, Any]] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(200, {"status": "ready"})

            def do_POST(self) -> None:
                double.requests.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                time.sleep(double.delay)
                self._send(200, {"hits": double.hits})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)
