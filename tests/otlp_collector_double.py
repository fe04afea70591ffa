"""A test double for an OTLP/HTTP collector that misbehaves: answers slowly or with an error."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

from tests.http_double import HttpDouble


class OtlpCollectorDouble(HttpDouble):
    """Accepts OTLP/HTTP posts on 127.0.0.1, waits ``delay`` seconds, answers ``status``."""

    def __init__(self, *, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay, self.requests = status, delay, 0
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                double.requests += 1
                time.sleep(double.delay)
                self.send_response(double.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)

    @property
    def endpoint(self) -> str:
        return self.url
