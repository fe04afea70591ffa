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
from typing import Any

from tests.apps.served import ServedApp

SERVICE = "bike-assistant"


class LiRag(ServedApp):
    name = "lirag"
    service = SERVICE
    postgres: Any
    """pgserver's handle on the app's PostgreSQL, once started."""

    def prepare(self, stack: contextlib.ExitStack) -> dict[str, str]:
        """A fresh PostgreSQL with pgvector under ``var_dir`` (deleted on exit), which the app reaches through
        SQLAlchemy over psycopg2."""
        import pgserver

        postgres = pgserver.get_server(self.var_dir / "pgdata", cleanup_mode="delete")
        stack.callback(postgres.cleanup)
        self.postgres = postgres
        return {"DATABASE_URL": postgres.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)}

    def stop_database(self) -> None:
        """PostgreSQL stopped (fast shutdown: the app's connections are closed), as in an outage of the vector
        store; :meth:`start_database` starts it again, on the same socket."""
        import pgserver

        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.postgres.pgdata, user=self.postgres.system_user)

    def start_database(self) -> None:
        self.postgres.ensure_postgres_running()
