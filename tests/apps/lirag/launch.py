"""Run the LlamaIndex assistant (``app.py``) unchanged under the real ``opentelemetry-instrument``, on a pgserver
PostgreSQL with pgvector, for a test.

::

    with LiRag(tmp_path, llm_base_url=vllm.base_url + "/v1", model="tiny-llama") as run:
        run.chat("When are you open on Saturdays?")
        spans = run.trace_of("POST /chat", wait_for=("chat tiny-llama",))
        run.scrape()                      # the service's /metrics text

PostgreSQL runs from a fresh data directory under ``var_dir`` (deleted on exit); the service exports spans over
OTLP to one ``ragotel receive`` and serves ``/metrics`` on a port of its own (``OTEL_METRICS_EXPORTER=prometheus``).
"""

from __future__ import annotations

import contextlib

from tests.apps.served import ServedApp

SERVICE = "bike-assistant"


class LiRag(ServedApp):
    name = "lirag"
    service = SERVICE

    def prepare(self, stack: contextlib.ExitStack) -> dict[str, str]:
        """A fresh PostgreSQL with pgvector under ``var_dir`` (deleted on exit), which the app reaches through
        SQLAlchemy over psycopg2."""
        import pgserver

        postgres = pgserver.get_server(self.var_dir / "pgdata", cleanup_mode="delete")
        stack.callback(postgres.cleanup)
        return {"DATABASE_URL": postgres.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)}
