"""``opentelemetry-instrument`` support: ragotel's configurator.

``opentelemetry-instrument`` runs the ``opentelemetry_configurator`` entry points before the
application, then every ``opentelemetry_instrumentor``. ragotel registers:

* ``ragotel_httpx`` (:class:`ragotel.instrumentation.httpx.HttpxInstrumentor`): GenAI spans and metrics
  for every httpx / httpx2 client;
* ``ragotel_fastapi`` (:class:`ragotel.instrumentation.asgi.FastApiInstrumentor`): server spans and
  ``http.server.*`` metrics for every Starlette / FastAPI app;
* the ``ragotel`` configurator (:class:`RagotelConfigurator`): :func:`ragotel.configure` from the
  environment (``OTEL_SERVICE_NAME``, ``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...).

The configurator also opts the contrib HTTP instrumentations into the stable HTTP conventions
(``http`` in ``OTEL_SEMCONV_STABILITY_OPT_IN``) unless the user chose an HTTP mode: it runs before every
instrumentor, which read the opt-in once, at their first instrumentation. Without it a service mixes two
generations, opentelemetry-instrumentation-httpx's and -requests' ``http.client.duration`` in milliseconds
beside ragotel's ``http.server.request.duration`` in seconds; with it every HTTP metric is the stable one
(``http.client.request.duration``, seconds), which the dashboards read.

With ``opentelemetry-distro`` installed as well there are two configurators and the instrumentation
loads the first it finds; ``OTEL_PYTHON_CONFIGURATOR=ragotel`` (or the distro's name) picks one.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
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
            opt_into_stable_http(os.environ)
        except Exception as exc:
            report_internal_error("opting into the stable HTTP conventions", exc)
        try:
            import ragotel
            from ragotel._config import configure as configuration

            configuration.zero_code = True  # the loader runs every instrumentor, threading's included
            ragotel.configure()
        except Exception as exc:
            report_internal_error("configuring ragotel for opentelemetry-instrument", exc)


def opt_into_stable_http(environ: MutableMapping[str, str]) -> None:
    """Add ``http`` to ``OTEL_SEMCONV_STABILITY_OPT_IN`` unless it already names an HTTP mode (``http`` or
    ``http/dup``, the user's choice); the other entries (``gen_ai_latest_experimental``, ``database``, ...)
    are kept as they are."""
    # The variable and its HTTP values as the contrib instrumentations read them.
    from opentelemetry.instrumentation._semconv import OTEL_SEMCONV_STABILITY_OPT_IN, _StabilityMode

    entries = [entry.strip() for entry in environ.get(OTEL_SEMCONV_STABILITY_OPT_IN, "").split(",") if entry.strip()]
    if {_StabilityMode.HTTP.value, _StabilityMode.HTTP_DUP.value} & set(entries):
        return
    environ[OTEL_SEMCONV_STABILITY_OPT_IN] = ",".join([*entries, _StabilityMode.HTTP.value])
