"""``opentelemetry-instrument`` support: ragotel's configurator.

``opentelemetry-instrument`` runs the ``opentelemetry_configurator`` entry points before the
application, then every ``opentelemetry_instrumentor``. ragotel registers:

* ``ragotel_httpx`` (:class:`ragotel.instrumentation.httpx.HttpxInstrumentor`): GenAI spans and metrics
  for every httpx / httpx2 client;
* ``ragotel_fastapi`` (:class:`ragotel.instrumentation.asgi.FastApiInstrumentor`): server spans and
  ``http.server.*`` metrics for every Starlette / FastAPI app;
* the ``ragotel`` configurator (:class:`RagotelConfigurator`): :func:`ragotel.configure` from the
  environment (``OTEL_SERVICE_NAME``, ``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...).

With ``opentelemetry-distro`` installed as well there are two configurators and the instrumentation
loads the first it finds; ``OTEL_PYTHON_CONFIGURATOR=ragotel`` (or the distro's name) picks one.
"""

from __future__ import annotations

from typing import Any

from ragotel._core.safe import report_internal_error

__all__ = [
    "RagotelConfigurator",
]

class RagotelConfigurator:
    """Calls :func:`ragotel.configure` with no arguments: every setting comes from the environment.

    ``configure()`` leaves providers the application (or another configurator) already set alone, and
    a later ``configure(...)`` in the application's code is the second call: it warns and names the
    arguments it ignored. Never raises.
    """

    def configure(self, **kwargs: Any) -> None:
        try:
            import ragotel
            from ragotel._config import configure as configuration

            configuration.zero_code = True  # the loader runs every instrumentor, threading's included
            ragotel.configure()
        except Exception as exc:
            report_internal_error("configuring ragotel for opentelemetry-instrument", exc)
