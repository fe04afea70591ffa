"""``opentelemetry-instrument`` support: ragotel's distro, configurator and loader hooks.

``opentelemetry-instrument`` (and the OpenTelemetry Operator's injected ``sitecustomize``) loads one
``opentelemetry_distro``, then one ``opentelemetry_configurator``, then the ``opentelemetry_pre_instrument``
hooks, every ``opentelemetry_instrumentor`` and the ``opentelemetry_post_instrument`` hooks. Where several
distros or configurators are installed it takes the one named by ``OTEL_PYTHON_DISTRO`` /
``OTEL_PYTHON_CONFIGURATOR``, else the first it finds. ragotel registers:

* the ``ragotel`` distro (``RagotelDistro``): names ragotel's configurator where
  ``OTEL_PYTHON_CONFIGURATOR`` is unset and serves ASGI apps with ``ragotel_fastapi`` instead of
  opentelemetry-instrumentation-fastapi / -starlette (one server span either way; ragotel's marks disconnects
  ``cancelled`` and flushes at the lifespan shutdown). So ``OTEL_PYTHON_DISTRO=ragotel`` is the one switch beside
  opentelemetry-distro and under the Operator, whose distro would otherwise set
  ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` and configure the SDK without ragotel;
* the ``ragotel`` configurator (``RagotelConfigurator``): ``ragotel.configure`` from the environment
  (or, where ragotel cannot run, the SDK's own configurator, as without ragotel),
  after opting the contrib HTTP instrumentations into the stable HTTP conventions (``http`` in
  ``OTEL_SEMCONV_STABILITY_OPT_IN``, unless an HTTP mode is chosen): they read it once, at their first
  instrumentation, and without it a service mixes ``http.client.duration`` in milliseconds with the
  ``http.server.request.duration`` in seconds the dashboards read;
* ``before_instrumentors``: one WARNING when another configurator ran and ragotel's settings are not applied;
* ``after_instrumentors``: log records exported once when opentelemetry-instrumentation-logging added its
  handler beside ragotel's.

Loading is safe: this module imports no more than the loader already has, and every hook checks first that the
OpenTelemetry packages the process imports meet ragotel's floor (the Operator puts its own first on the path).
When one does not, one WARNING names it and where it was found, ragotel's instrumentors are left out and every
other instrumentation runs as it would without ragotel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from ragotel._core.safe import report_internal_error

__all__ = [
    "RagotelConfigurator",
    "RagotelDistro",
    "after_instrumentors",
    "before_instrumentors",
]

_log = logging.getLogger("ragotel")

# The variables the loader reads, as opentelemetry.instrumentation.environment_variables names them.
_CONFIGURATOR = "OTEL_PYTHON_CONFIGURATOR"
_DISABLED = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"

_FLOORED = ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-semantic-conventions",
            "opentelemetry-instrumentation")
"""The OpenTelemetry packages ragotel imports names from; their floors are ragotel's own requirements."""

_REPLACED = frozenset({"fastapi", "starlette"})
"""contrib instrumentors whose work ``ragotel_fastapi`` does under ragotel's distro."""

_problems: list[str] | None = None
_warned_foreign = False


class RagotelDistro(BaseDistro):  # type: ignore[misc]
    """The distro ``OTEL_PYTHON_DISTRO=ragotel`` selects. Never raises into the loader."""

    def _configure(self, **kwargs: Any) -> None:
        try:
            os.environ.setdefault(_CONFIGURATOR, "ragotel")
            if usable():
                opt_into_stable_http(os.environ)
            else:
                _leave_out_instrumentors(os.environ)
        except Exception as exc:
            report_internal_error("preparing opentelemetry-instrument", exc)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        try:
            if entry_point.name in _REPLACED and _serves_asgi():
                _log.debug("ragotel: %s is left out; ragotel_fastapi serves ASGI apps", entry_point.name)
                return
        except Exception as exc:
            report_internal_error("choosing an instrumentor", exc)
        super().load_instrumentor(entry_point, **kwargs)


class RagotelConfigurator:
    """Calls ``ragotel.configure`` with no arguments: every setting comes from the environment.

    ``configure()`` leaves providers the application (or another configurator) already set alone, and
    a later ``configure(...)`` in the application's code is the second call: it warns and names the
    arguments it ignored. Never raises.
    """

    def configure(self, **kwargs: Any) -> None:
        try:
            if not usable():
                _leave_out_instrumentors(os.environ)
                _configure_sdk_alone(**kwargs)
                return
            opt_into_stable_http(os.environ)
        except Exception as exc:
            report_internal_error("preparing opentelemetry-instrument", exc)
            return
        try:
            import ragotel
            from ragotel._config import configure as configuration

            configuration.zero_code = True  # the loader runs every instrumentor, threading's included
            ragotel.configure()
        except Exception as exc:
            report_internal_error("configuring ragotel for opentelemetry-instrument", exc)


def _configure_sdk_alone(**kwargs: Any) -> None:
    """What the loader would have run without ragotel: the SDK's own configurator, from the same ``OTEL_*``
    variables, so that the other instrumentations' telemetry is exported as it would be."""
    try:
        # The class opentelemetry-distro's own configurator is.
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        _OTelSDKConfigurator().configure(**kwargs)  # type: ignore[no-untyped-call]
    except Exception as exc:
        report_internal_error("configuring the OpenTelemetry SDK without ragotel", exc)


def before_instrumentors() -> None:
    """The ``opentelemetry_pre_instrument`` hook: when another configurator ran instead of ragotel's, one WARNING
    saying what that leaves out and how to choose ragotel's."""
    global _warned_foreign
    try:
        if _warned_foreign or not usable():
            return
        from ragotel._config.configure import get_telemetry

        if get_telemetry() is None:
            _warned_foreign = True
            chosen = os.environ.get(_CONFIGURATOR) or "the first one installed"
            _log.warning(
                "ragotel: opentelemetry-instrument ran another configurator (%s), so ragotel's settings (RAGOTEL_*, "
                "the Prometheus endpoint, the flush at SIGTERM) are not applied; ragotel's instrumentors record "
                "through the providers it set. Set OTEL_PYTHON_DISTRO=ragotel (it picks ragotel's configurator).",
                chosen,
            )
    except Exception as exc:
        report_internal_error("checking the configurator", exc)


def after_instrumentors() -> None:
    """The ``opentelemetry_post_instrument`` hook: opentelemetry-instrumentation-logging (which
    ``opentelemetry-bootstrap`` installs and the Operator injects) puts its own OpenTelemetry handler on the root
    logger; beside ragotel's, which feeds the same provider, every record would be exported twice. Theirs is
    taken off; ragotel's keeps the exporters' own records out of the export."""
    try:
        if not usable():
            return
        from ragotel._config import logs

        theirs = [h for h in logging.getLogger().handlers if h not in logs.installed() and _is_otel_handler(h)]
        if logs.installed() and theirs:
            for handler in theirs:
                logging.getLogger().removeHandler(handler)
            _log.debug("ragotel: log records are exported by ragotel's handler only (took off %s)", theirs)
    except Exception as exc:
        report_internal_error("checking the log handlers", exc)


def _is_otel_handler(handler: logging.Handler) -> bool:
    return any(cls.__name__ == "LoggingHandler" and cls.__module__.startswith("opentelemetry.")
               for cls in type(handler).__mro__)


def usable() -> bool:
    """Whether the OpenTelemetry packages this process imports meet ragotel's floor. The first call that finds one
    below warns once, naming it, its version and where it was found."""
    global _problems
    if _problems is None:
        try:
            _problems = list(below_floor())
        except Exception as exc:
            _problems = []
            report_internal_error("checking the OpenTelemetry versions", exc)
        if _problems:
            _log.warning(
                "ragotel: %s. ragotel stays off; other instrumentation runs as it would without it. An earlier entry "
                "of the path (PYTHONPATH, such as the OpenTelemetry Operator's) shadows the application's own "
                "packages: upgrade the one named, or give the application's first.", "; ".join(_problems))
    return not _problems


def below_floor() -> Iterable[str]:
    """Each OpenTelemetry package found first on the path at a version under ragotel's requirement, as
    ``opentelemetry-semantic-conventions 0.50b0 at /otel-auto-instrumentation-python (ragotel needs >=0.63b0)``."""
    from importlib.metadata import PackageNotFoundError, distribution, requires

    from packaging.requirements import Requirement

    try:
        needs = {r.name: r for r in map(Requirement, requires("ragotel") or ()) if r.marker is None}
    except PackageNotFoundError:
        return  # running from a source tree: nothing installed to compare with
    for name in _FLOORED:
        need = needs.get(name)
        try:
            found = distribution(name)
        except PackageNotFoundError:
            continue
        if need is not None and not need.specifier.contains(found.version, prereleases=True):
            yield f"{name} {found.version} at {found.locate_file('')} (ragotel needs {need.specifier})"


def _leave_out_instrumentors(environ: MutableMapping[str, str]) -> None:
    """Add ragotel's instrumentors to ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, which the loader reads after the
    distro and the configurator: they would fail to import against packages below the floor."""
    from importlib.metadata import distribution

    ours = [ep.name for ep in distribution("ragotel").entry_points if ep.group == "opentelemetry_instrumentor"]
    listed = _entries(environ, _DISABLED)
    environ[_DISABLED] = ",".join([*listed, *(name for name in ours if name not in listed)])


def _serves_asgi() -> bool:
    disabled = _entries(os.environ, _DISABLED)
    if "ragotel_fastapi" in disabled or "*" in disabled or not usable():
        return False
    import importlib.util

    return importlib.util.find_spec("starlette") is not None


def opt_into_stable_http(environ: MutableMapping[str, str]) -> None:
    """Add ``http`` to ``OTEL_SEMCONV_STABILITY_OPT_IN`` unless it already names an HTTP mode (``http`` or
    ``http/dup``, the user's choice); the other entries (``gen_ai_latest_experimental``, ``database``, ...)
    are kept as they are."""
    # The variable and its HTTP values as the contrib instrumentations read them.
    from opentelemetry.instrumentation._semconv import OTEL_SEMCONV_STABILITY_OPT_IN, _StabilityMode

    entries = _entries(environ, OTEL_SEMCONV_STABILITY_OPT_IN)
    if {_StabilityMode.HTTP.value, _StabilityMode.HTTP_DUP.value} & set(entries):
        return
    environ[OTEL_SEMCONV_STABILITY_OPT_IN] = ",".join([*entries, _StabilityMode.HTTP.value])


def _entries(environ: Mapping[str, str], name: str) -> list[str]:
    """The comma-separated entries of the variable ``name``, in order (the loader's own lists are read so)."""
    return [entry.strip() for entry in environ.get(name, "").split(",") if entry.strip()]
