"""``ragotel.configure()``: traces, metrics and logs in one call.

::

    import ragotel

    telemetry = ragotel.configure(service_name="chat-api")
    ...
    telemetry.shutdown()   # flushes what is queued; also runs at interpreter exit

What it sets up, for each signal whose global provider the application has *not* already set
(an application's own providers are used as they are, never replaced):

* traces: a ``TracerProvider`` with a batch span processor and an OTLP exporter; the sampler comes
  from ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG``;
* metrics: a ``MeterProvider`` with a periodic OTLP reader and, when asked, a Prometheus reader
  serving ``/metrics`` (``prometheus_port=9464``, or ``OTEL_METRICS_EXPORTER=prometheus``);
* logs: a ``LoggerProvider`` with a batch processor and an OTLP exporter, fed by the root
  ``logging`` logger; every log record also carries ``trace_id``/``span_id``.

OTLP goes over HTTP/protobuf, or gRPC when ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``, to
``OTEL_EXPORTER_OTLP_ENDPOINT`` (default ``http://localhost:4318``, a local Grafana Alloy).
``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` accept ``otlp``, ``console``, ``none`` (and ``prometheus``
for metrics). ``OTEL_SDK_DISABLED=true`` turns everything off and makes the step decorators
plain calls.

Arguments are defaults for the code; ``OTEL_*`` and ``RAGOTEL_*`` environment variables set at
deploy time win over them, so one image serves every environment.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import itertools
import logging
import os
import selectors
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from opentelemetry import _logs, metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from ragotel import semconv as sc
from ragotel._config import export as _export
from ragotel._config import logs
from ragotel._core import metrics_endpoint, runtime, settings
from ragotel._core.compat import is_unset
from ragotel._core.safe import report_internal_error
from ragotel._genai import cost
from ragotel._genai.content import Redactor, redact_query
from ragotel._version import __version__

logger = logging.getLogger("ragotel")
SDK_INTERNAL_METRICS_ENV = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_P = TypeVar("_P")

# Resource attributes from settings: the placement labels (seed 001's cross-provider comparison, also on
# every Prometheus series) and the Kubernetes downward API.
_PLACEMENT: Mapping[str, str] = {
    sc.DEPLOYMENT_ENVIRONMENT: "environment",
    sc.CLOUD_PROVIDER: "provider",
    sc.K8S_CLUSTER_NAME: "cluster",
    sc.CLOUD_REGION: "region",
}
_DOWNWARD_API: Mapping[str, str] = {
    sc.K8S_POD_NAME: "k8s_pod_name",
    sc.K8S_NAMESPACE_NAME: "k8s_namespace_name",
    sc.K8S_NODE_NAME: "k8s_node_name",
}


@dataclass
class Telemetry:
    """What ``configure`` set up. Flush before a short-lived process exits."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    logger_provider: _logs.LoggerProvider
    resource: Resource
    disabled: bool = False
    prometheus_port: int | None = None
    owned: frozenset[str] = frozenset()
    """Signals whose providers ragotel created (``traces``, ``metrics``, ``logs``)."""
    _log_handler: logging.Handler | None = field(default=None, repr=False)
    _reach: _export.Reachability | None = field(default=None, repr=False)

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Export everything queued, in every provider that supports it. True if all succeeded.

        Once ragotel knows that nothing answers at the collector's address (it has warned so), this returns
        False within ``ragotel._config.export.FLUSH_GRACE_S`` instead of waiting for the exporters' retries; the
        exports go on in the background and reach a collector that comes up meanwhile."""
        return self._flush((self.tracer_provider, self.meter_provider, self.logger_provider), timeout_millis)

    def _flush_owned(self, timeout_millis: int) -> bool:
        """``force_flush`` of the providers ragotel created only: the application's own are its to manage."""
        providers = {"traces": self.tracer_provider, "metrics": self.meter_provider, "logs": self.logger_provider}
        return self._flush([providers[name] for name in sorted(self.owned)], timeout_millis)

    def _flush(self, providers: Sequence[object], timeout_millis: int) -> bool:
        flushes = [flush for provider in providers if (flush := getattr(provider, "force_flush", None)) is not None]
        reach = self._reach
        if reach is None or not reach.guards or not flushes:
            return all([bool(flush(timeout_millis)) for flush in flushes])
        results: list[bool] = []
        done = threading.Event()

        def run(flush: Callable[[int], Any]) -> None:
            ok = False
            try:
                ok = bool(flush(timeout_millis))
            except Exception as exc:
                report_internal_error("flushing a provider", exc)
            finally:
                results.append(ok)
                if len(results) == len(flushes):
                    done.set()

        for flush in flushes:
            threading.Thread(target=run, args=(flush,), name="ragotel-flush", daemon=True).start()
        start = time.monotonic()
        while not done.wait(0.02):
            now, since = time.monotonic(), reach.unreachable_since
            if now > start + timeout_millis / 1000 or (
                    since is not None and now > max(since, start) + _export.FLUSH_GRACE_S):
                return False
        return all(results)

    def shutdown(self) -> None:
        """Flush and stop the providers ragotel created; leave the application's own alone.

        The providers stop side by side; when the collector has not answered, what is still queued is given
        a moment (``ragotel._config.export.EXIT_GRACE_S``) and then dropped, so a process without a collector exits
        at once."""
        global _telemetry
        _stop_exit_flush(self)
        with _lock:
            if self._log_handler is not None:
                logs.uninstall(self._log_handler)
                self._log_handler = None
            # The trace_id/span_id record factory stays: format strings that use them must keep working.
            providers = {
                "traces": self.tracer_provider,
                "metrics": self.meter_provider,
                "logs": self.logger_provider,
            }
            stops = [getattr(providers[signal], "shutdown", None) for signal in sorted(self.owned)]
            timer = self._reach.start_exit() if self._reach is not None and self.owned else None
            threads = [threading.Thread(target=_quietly, args=(stop,), daemon=True) for stop in stops if stop]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if timer is not None:
                timer.cancel()
            self.owned = frozenset()
            if _telemetry is self:
                _telemetry = None


def _quietly(stop: Callable[[], Any]) -> None:
    try:
        stop()
    except Exception as exc:
        report_internal_error("stopping a provider", exc)


# --- The flush when the process is told to stop -----------------------------------------------------------------
#
# Servers end a process in ways that skip ``atexit``: uvicorn re-raises SIGTERM with the default action once it
# has shut down, gunicorn kills a worker that outlives its graceful timeout, Kubernetes SIGKILLs a pod after its
# grace period. What the batch processors still hold is lost then. So what ragotel's providers hold is flushed,
# bounded by ``RAGOTEL_SHUTDOWN_TIMEOUT``, when SIGTERM or SIGINT arrives (and SIGQUIT where a server handles
# it: gunicorn's word to a worker for Ctrl-C) and when an app ragotel instruments has run its lifespan shutdown.
# Each handler then does exactly what the one it wraps would have done, so the server's own handling and the
# exit status stay as they were.

_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT") if hasattr(signal, name))
_SERVER_SIGNALS = tuple(getattr(signal, name) for name in ("SIGQUIT",) if hasattr(signal, name))
_DRAIN_S = 30.0
"""How long after a stop signal spans and logs are still flushed as they come: Kubernetes' default grace period
and gunicorn's default graceful timeout, the time a server told to stop may go on finishing requests."""
_DRAIN_INTERVAL_S = 0.2


class _ExitFlush:
    """Runs the flush on a thread of its own, started by the first ``configure()``; a signal handler only asks.

    A Python signal handler runs in the main thread between two bytecodes, perhaps while that thread holds a
    lock a flush needs (a batch processor's, a logging handler's, threading's own while it starts a thread), so
    neither the flush nor a new thread can start there without risking a deadlock. Asking is a ticket written
    to a pipe (no lock); waiting is a bounded poll of the last ticket served. A flush stuck behind such a lock
    is waited for no longer than the bound and finishes once the main thread moves on. One per process: a
    later ``configure()`` (after ``shutdown()``) points it at its own providers.

    After a stop signal it also drains, for ``_DRAIN_S``: requests still being answered end their spans
    after that flush, and a server may be killed before it reaches its lifespan shutdown (gunicorn kills a
    worker that outlives its graceful timeout, a pod is killed after its grace period), so spans and logs are
    flushed every ``_DRAIN_INTERVAL_S`` meanwhile (a batch processor with nothing queued exports nothing)."""

    def __init__(self) -> None:
        self.telemetry: Telemetry | None = None
        """Whose providers are flushed; None: nothing is (shut down)."""
        self.timeout_s = 0.0
        self._tickets = itertools.count(1)
        self._served = 0
        self._drain_until = 0.0
        self._wake_r, self._wake_w = -1, -1
        self._open()
        if hasattr(os, "register_at_fork"):
            # A forked child (gunicorn --preload, multiprocessing) gets neither the thread nor a pipe of its own.
            reopen = weakref.WeakMethod(self._reopen_in_child)
            os.register_at_fork(after_in_child=lambda: (method := reopen()) is not None and method())

    def _open(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # a handler never blocks on a full pipe
        threading.Thread(target=self._serve, args=(self._wake_r,), name="ragotel-exit-flush", daemon=True).start()

    def _reopen_in_child(self) -> None:
        for fd in (self._wake_r, self._wake_w):  # the parent's pipe: a ticket written there would wake the parent
            with contextlib.suppress(OSError):
                os.close(fd)
        self._tickets, self._served, self._drain_until = itertools.count(1), 0, 0.0
        self._open()

    def _serve(self, wake_r: int) -> None:
        wake = selectors.DefaultSelector()
        wake.register(wake_r, selectors.EVENT_READ)
        while True:
            left = self._drain_until - time.monotonic()
            if left > 0 and not wake.select(min(left, _DRAIN_INTERVAL_S)):
                self._drain()
                continue
            try:
                data = os.read(wake_r, 4096)  # whole tickets: each is one 8-byte write, and 4096 is a multiple of 8
            except OSError:
                return
            if not data:
                return
            # Every ticket read so far was asked before this flush starts: this flush serves them all.
            served = max(int.from_bytes(data[i:i + 8], "big") for i in range(0, len(data) - 7, 8))
            telemetry = self.telemetry
            if telemetry is not None:
                try:
                    telemetry._flush_owned(int(self.timeout_s * 1000))
                except Exception as exc:
                    report_internal_error("flushing before the process stops", exc)
            self._served = max(self._served, served)

    def _drain(self) -> None:
        """Spans and logs only: a metric reader's flush always exports, its last one comes with the lifespan
        shutdown or the exit."""
        telemetry = self.telemetry
        if telemetry is None:
            return
        for name, provider in (("traces", telemetry.tracer_provider), ("logs", telemetry.logger_provider)):
            flush = getattr(provider, "force_flush", None)
            if name in telemetry.owned and flush is not None:
                try:
                    flush(int(self.timeout_s * 1000))
                except Exception as exc:
                    report_internal_error("flushing before the process stops", exc)

    def request(self, *, drain: bool = False) -> int | None:
        """Ask for a flush of what is queued now, and with ``drain`` for the drain after it: the ticket to
        ``wait`` for, or None when there is nothing to flush. Safe in a signal handler: no lock is taken."""
        if self.telemetry is None:
            return None
        if drain:
            self._drain_until = time.monotonic() + _DRAIN_S
        ticket = next(self._tickets)
        try:
            os.write(self._wake_w, ticket.to_bytes(8, "big"))
        except OSError:
            return None
        return ticket

    def wait(self, ticket: int) -> bool:
        """Whether the flush that serves ``ticket`` ended within the bound."""
        deadline = time.monotonic() + self.timeout_s
        while self._served < ticket:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def flush(self) -> bool:
        ticket = self.request()
        return ticket is not None and self.wait(ticket)


_exit_flush: _ExitFlush | None = None


class _FlushThenChain:
    """A signal handler that asks for the exit flush, then does what the handler it replaced would have done."""

    __slots__ = ("previous",)

    def __init__(self, previous: Callable[[int, FrameType | None], Any] | int) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        ends_process = previous == signal.SIG_DFL
        flusher = _exit_flush
        if flusher is not None:
            try:
                ticket = flusher.request(drain=True)
                # The default action ends the process at once: flush first, within the bound. A server's own
                # handler starts its graceful shutdown instead; the flush runs beside it and the lifespan
                # shutdown flushes again at its end.
                if ends_process and ticket is not None:
                    flusher.wait(ticket)
            except Exception:
                pass  # no logging here: the interrupted code may hold the logging locks
        if callable(previous):
            previous(signum, frame)
        elif ends_process:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


def _wraps(signum: int, current: object) -> bool:
    """Whether the flush goes in front of ``current``, the handler of ``signum`` now."""
    if isinstance(current, _FlushThenChain) or current == signal.SIG_IGN:
        return False  # ours already, or a signal that ends nothing
    if current is signal.default_int_handler:
        # KeyboardInterrupt unwinds to the interpreter's exit, where shutdown() flushes; and asyncio.run() keeps
        # its own Ctrl-C handling only while SIGINT has this handler.
        return False
    if current == signal.SIG_DFL:
        return signum in _STOP_SIGNALS  # SIGQUIT's default is a core dump someone asked for: left alone
    return callable(current)


def _install_signal_flush() -> None:
    """Put the flush in front of each stop signal's handler that is not ours yet. From the main thread only (the
    only one that may set handlers); again at each lifespan startup, since servers install their handlers after
    the application module, and so ``configure()``, was imported."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (*_STOP_SIGNALS, *_SERVER_SIGNALS):
        try:
            current = signal.getsignal(signum)  # None: set outside Python, nothing to chain to
            if current is not None and _wraps(signum, current):
                signal.signal(signum, _FlushThenChain(current))
        except (ValueError, OSError, RuntimeError) as exc:
            report_internal_error("installing the flush at SIGTERM/SIGINT", exc)


def _lifespan_event(event: str) -> None:
    """From the ASGI apps ragotel instruments: ``"startup"`` once the app has started (the server's handlers are
    in place by then), ``"shutdown"`` once it has shut down, before the server hears so and exits."""
    flusher = _exit_flush
    if flusher is None or flusher.telemetry is None:
        return
    if event == "startup":
        _install_signal_flush()
    elif event == "shutdown":
        flusher.flush()


def _start_exit_flush(telemetry: Telemetry, timeout_s: float) -> None:
    global _exit_flush
    if not telemetry.owned or timeout_s <= 0:
        return
    try:
        from ragotel.instrumentation import asgi

        if _exit_flush is None:
            _exit_flush = _ExitFlush()
        _exit_flush.timeout_s = timeout_s
        _exit_flush.telemetry = telemetry
        asgi._set_lifespan_hook(_lifespan_event)
        _install_signal_flush()
    except Exception as exc:
        report_internal_error("setting up the flush at SIGTERM/SIGINT", exc)


def _stop_exit_flush(telemetry: Telemetry) -> None:
    """After ``shutdown()`` nothing is flushed; handlers left in place (a server may have saved one) only chain."""
    flusher = _exit_flush
    if flusher is not None and flusher.telemetry is telemetry:
        flusher.telemetry = None


_lock = threading.RLock()
_telemetry: Telemetry | None = None
_first_args: dict[str, Any] = {}


def configure(
    service_name: str | None = None,
    *,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    provider: str | None = None,
    cluster: str | None = None,
    region: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str | None = None,
    metric_readers: Sequence[MetricReader] = (),
    span_processors: Sequence[SpanProcessor] = (),
    capture_content: bool | None = None,
    max_content_chars: int | None = None,
    redact: Redactor | None = None,
    prices: cost.PriceSource = None,
    export_logs: bool = True,
    detailed_metrics: bool | None = None,
    retrieval_low_score: float | None = None,
    metric_value_limit: int | None = None,
    console: bool | None = None,
    openinference: bool | None = None,
    service_steps: Mapping[str, str] | None = None,
    genai_content: str | None = None,
    genai_latest_experimental: bool | None = None,
    shutdown_timeout: float | None = None,
) -> Telemetry:
    """Set up traces, metrics and logs for this process; returns a ``Telemetry`` handle.

    Never raises: a setting that cannot be used (a bad or busy port, a missing price file, an unknown
    exporter or protocol, a missing extra) gives one WARNING naming it and its value, and only that part
    stays off. Calling it again returns the first handle; arguments that differ from the first call's are
    named in a warning. Every setting is a row of one table (``ragotel/_core/settings.py``, listed on the
    documentation's Settings page). Arguments:

    - ``service_name`` / ``service_version`` / ``environment``: the resource's identity
      (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``RAGOTEL_ENVIRONMENT`` win);
    - ``endpoint`` / ``protocol``: OTLP collector base URL and ``http/protobuf`` or ``grpc``
      (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` win, and the per-signal
      ``OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_{ENDPOINT,PROTOCOL}`` win over those);
    - ``console``: development mode, each finished trace printed as a waterfall and nothing sent over OTLP
      (``OTEL_TRACES_EXPORTER=console`` prints the waterfall too);
    - ``provider`` / ``cluster`` / ``region``: where this runs, for comparing deployments
      (``RAGOTEL_PROVIDER`` / ``RAGOTEL_CLUSTER`` / ``RAGOTEL_REGION`` win);
    - ``prometheus_port``: serve ``/metrics`` on this port (``0`` adds the reader without a
      server; an app serving ``instrument_fastapi(app, metrics_path=...)`` or ``ragotel.prometheus_app``
      gets it without asking);
    - ``metric_readers`` / ``span_processors``: extra ones, e.g. in-memory ones in tests;
    - ``capture_content`` / ``max_content_chars`` / ``redact``: the content policy
      (``RAGOTEL_CAPTURE_CONTENT`` wins); off by default;
    - ``genai_content``: content capture as the GenAI conventions spell it, ``"true"``/``"false"``, or under the
      latest conventions ``"SPAN_ONLY"``, ``"EVENT_ONLY"``, ``"SPAN_AND_EVENT"``, ``"NO_CONTENT"``
      (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` wins; ``capture_content``, when given, decides);
    - ``genai_latest_experimental``: the latest GenAI conventions where they still move (docs/genai-conventions.md)
      (``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` wins);
    - ``prices``: a mapping of model names to ``ragotel.ModelPrice`` or a TOML/JSON file path
      (``RAGOTEL_PRICES_FILE`` wins);
    - ``export_logs``: send ``logging`` records as OpenTelemetry logs;
    - ``detailed_metrics``: also record every document score, each retrieval's best score and a GenAI
      duration per step, one SDK record each (``RAGOTEL_DETAILED_METRICS`` wins);
    - ``retrieval_low_score``: a retrieval whose best score is under this is ``rag.retrieval.quality=low_score``
      (``RAGOTEL_RETRIEVAL_LOW_SCORE`` wins; by default the step's own ``min_score``);
    - ``metric_value_limit``: distinct values per metric attribute before new ones are recorded as
      ``_other`` (``RAGOTEL_METRIC_VALUE_LIMIT`` wins; default 100);
    - ``openinference``: spans also carry OpenInference's keys, for Phoenix and other OpenInference viewers
    - ``service_steps``: HTTP calls to the application's own services that are steps, as
      ``{"http://doc-index:9001/query": "retrieval"}`` (``"kind:name"`` names the step; the host otherwise):
      each such call is a CLIENT span ``retrieval doc-index`` timed in ``rag.step.duration``, its failures
      counted in ``rag.step.errors`` under that kind (``RAGOTEL_SERVICE_STEPS=url=kind[:name],...``)
      (``RAGOTEL_OPENINFERENCE`` wins; off by default).
    - ``shutdown_timeout``: seconds a flush of what is queued may take when the process is told to stop
      (SIGTERM, SIGINT, the lifespan shutdown of an app ``ragotel.instrument_fastapi`` instruments), where
      servers and Kubernetes end it without ``atexit``; ``0`` turns that flush off (``RAGOTEL_SHUTDOWN_TIMEOUT``
      wins; default 5).
    """
    global _telemetry
    args = {key: value for key, value in locals().items() if key in settings.BY_ARG}
    with _lock:
        if _telemetry is not None:
            _warn_ignored(args)
            return _telemetry
        try:
            _telemetry = _configure(args)
        except Exception as exc:  # a defect here must not stop the application from starting
            logger.warning("ragotel: configure() failed (%s: %s); telemetry stays off", type(exc).__name__, exc)
            runtime.update(disabled=True)
            _telemetry = Telemetry(
                trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider(),
                Resource.get_empty(), disabled=True,
            )
        _first_args.update(args)
        return _telemetry


class _Warnings:
    """One WARNING per (setting, value), whatever how many signals it touches."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def problem(self, problem: settings.Problem) -> None:
        self.say(problem.setting, problem.value, problem.message())

    def say(self, setting: str, value: object, message: str) -> None:
        key = (setting, repr(value))
        if key not in self._seen:
            self._seen.add(key)
            logger.warning("%s", message)


def _warn_ignored(args: Mapping[str, Any]) -> None:
    ignored = []
    for key, value in args.items():
        before = _first_args.get(key, settings.BY_ARG[key].default)
        try:
            same = bool(value == before) or (value is None and key not in _first_args)
        except Exception:
            same = value is before
        if not same and value is not None and value != ():
            ignored.append(f"{key}={value!r} (kept {before!r})")
    if ignored:
        logger.warning("ragotel: configure() was already called; ignoring %s", ", ".join(ignored))


def _configure(args: Mapping[str, Any]) -> Telemetry:
    say = _Warnings()
    resolved = settings.resolve(args)
    for problem in resolved.problems:
        say.problem(problem)
    values = resolved.values

    runtime.swap(runtime.Runtime.of(values, disabled=bool(values["sdk_disabled"])))
    _load_prices(resolved, say)
    resource = _resource(values)

    if values["sdk_disabled"]:
        return Telemetry(
            trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider(),
            resource, disabled=True,
        )
    reach = _export.Reachability()
    builder = _Exporters(resolved, reach, say)
    owned: set[str] = set()

    tracer_provider = trace.get_tracer_provider()
    if is_unset(tracer_provider):
        sdk_tracer = TracerProvider(resource=resource)
        sdk_tracer.add_span_processor(QueryRedactor())
        for processor in builder.span_processors():
            sdk_tracer.add_span_processor(processor)
        trace.set_tracer_provider(sdk_tracer)
        tracer_provider = sdk_tracer
        owned.add("traces")
    add_processor = getattr(tracer_provider, "add_span_processor", None)
    if add_processor is not None:
        for processor in values["span_processors"]:
            add_processor(processor)

    port = _prometheus_port(values["prometheus_port"], "prometheus_port" in resolved.explicit
                            and args.get("prometheus_port") is not None, resolved)
    meter_provider = metrics.get_meter_provider()
    if is_unset(meter_provider):
        readers = [*builder.metric_readers(), *values["metric_readers"]]
        if port is None and metrics_endpoint.served():
            port = 0  # the app already serves /metrics itself (metrics_path=): the reader, no server of its own
        if port is not None:
            reader = _prometheus_reader(port, values["prometheus_host"],
                                        resolved.sources.get("prometheus_port", "prometheus_port="), say)
            if reader is None:
                port = None
            else:
                readers.append(reader)
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        metrics.set_meter_provider(meter_provider)
        owned.add("metrics")
        if port is None:  # an endpoint asked for later gets its reader then; until then no scrape, no cost
            metrics_endpoint.offer(functools.partial(_late_prometheus_reader, meter_provider))
    elif port is not None or values["metric_readers"]:
        logger.warning(
            "ragotel: the application set its own MeterProvider; add the Prometheus or extra "
            "metric readers to it yourself"
        )
        port = None

    logger_provider = _logs.get_logger_provider()
    handler: logging.Handler | None = None
    if is_unset(logger_provider):
        sdk_logger = LoggerProvider(resource=resource)
        for processor in builder.log_processors():
            sdk_logger.add_log_record_processor(processor)
        _logs.set_logger_provider(sdk_logger)
        logger_provider = sdk_logger
        owned.add("logs")
        if values["export_logs"]:
            # Only with our own provider: an application that set its own already routes logs.
            handler = logs.handler(sdk_logger)
            logs.install(handler)
    logs.install_trace_ids()
    if not zero_code:
        _follow_threads(values["disabled_instrumentations"])

    telemetry = Telemetry(
        tracer_provider, meter_provider, logger_provider, resource,
        prometheus_port=port, owned=frozenset(owned), _log_handler=handler, _reach=reach,
    )
    atexit.register(telemetry.shutdown)
    _start_exit_flush(telemetry, values["shutdown_timeout"])
    return telemetry


def _load_prices(resolved: settings.Resolved, say: _Warnings) -> None:
    """``prices`` as resolved (``RAGOTEL_PRICES_FILE`` wins over the argument, like every variable)."""
    prices = resolved["prices"]
    setting = resolved.sources.get("prices", "prices=").rstrip("=")
    try:
        cost.set_prices(prices if prices is not None else {})
    except Exception as exc:
        cost.set_prices({})
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        say.say(setting, prices, f"ragotel: {setting}={prices!r} cannot be used ({reason}); cost is not recorded")


zero_code = False
"""Set by the ``opentelemetry-instrument`` configurator: its loader turns the threading instrumentation on."""


def _follow_threads(disabled: frozenset[str]) -> None:
    """Steps run in a thread pool or a thread stay in the request's trace where opentelemetry-instrumentation-threading
    (``ragotel[threading]``) is installed: it carries the context into ``ThreadPoolExecutor.submit``/``map``,
    ``run_in_executor`` and ``Thread``."""
    if "threading" in disabled or "*" in disabled:
        return
    try:
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor
    except ImportError:
        return  # ragotel[threading] is not installed: pools started by the application keep their own context
    try:
        instrumentor = ThreadingInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    except Exception as exc:
        report_internal_error("instrumenting threads", exc)


def get_telemetry() -> Telemetry | None:
    """The handle from ``configure``, if it ran."""
    return _telemetry


def _resource(values: Mapping[str, Any]) -> Resource:
    attrs: dict[str, Any] = {"telemetry.distro.name": "ragotel", "telemetry.distro.version": __version__}
    attrs.update(values["resource_attributes"] or {})
    named = {sc.SERVICE_NAME: "service_name", sc.SERVICE_VERSION: "service_version", **_PLACEMENT, **_DOWNWARD_API}
    attrs.update({key: values[arg] for key, arg in named.items() if values[arg]})
    # Resource.create adds the SDK's own attributes; merging the env detector last lets
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the code's defaults.
    return Resource.create(attrs).merge(OTELResourceDetector().detect())


class QueryRedactor(SpanProcessor):
    """Replaces the values in a server span's ``url.query`` before anything exports it (FastAPI's
    built-in telemetry records the query string), unless content capture is on."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            query = (span.attributes or {}).get(sc.URL_QUERY)
            if isinstance(query, str) and query:
                span.set_attribute(sc.URL_QUERY, redact_query(query))
        except Exception as exc:
            report_internal_error("redacting url.query", exc)


@contextlib.contextmanager
def _export_metrics() -> Iterator[None]:
    """Turn on the SDK's own metrics for the exporters and batch processors built inside: they count
    what is dropped when the collector is down or slow (``otel.sdk.processor.span.processed`` with
    ``error.type=queue_full``) and what fails to export. The SDK reads the switch when each object is
    built; leaving it off for the providers spares every span a counter update. An explicit
    ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`` is left as it is."""
    if SDK_INTERNAL_METRICS_ENV in os.environ:
        yield
        return
    os.environ[SDK_INTERNAL_METRICS_ENV] = "true"
    try:
        yield
    finally:
        os.environ.pop(SDK_INTERNAL_METRICS_ENV, None)


def _batching(processor: Callable[..., _P], exporter: Any) -> _P:
    """A batch processor from the ``OTEL_BSP_*`` / ``OTEL_BLRP_*`` settings, or, when they contradict each
    other (a batch larger than the queue), from the SDK's defaults: a typo in the environment must
    not stop the application from starting."""
    try:
        return processor(exporter)
    except ValueError as exc:
        logger.warning("ragotel: invalid batch processor settings (%s); using the SDK defaults", exc)
        return processor(exporter, max_queue_size=2048, schedule_delay_millis=5000, max_export_batch_size=512)


_OTLP_CLASSES: Mapping[tuple[str, str], tuple[str, str]] = {
    ("traces", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("metrics", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    ("logs", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
    ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("metrics", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
}


class _Exporters:
    """Builds each signal's exporters from the resolved settings; a part that cannot be built stays off."""

    def __init__(self, resolved: settings.Resolved, reach: _export.Reachability, say: _Warnings) -> None:
        self._resolved = resolved
        self._reach = reach
        self._say = say

    def _otlp(self, signal: str) -> Any | None:
        if "otlp" not in self._resolved.exporters[signal]:
            return None
        protocol = self._resolved.protocols[signal]
        if protocol is None:
            return None  # unusable protocol: warned when resolving
        module_name, class_name = _OTLP_CLASSES[(signal, protocol)]
        setting = _protocol_setting(self._resolved, signal)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if protocol != "grpc":
                raise
            # The usual cause is not a choice: opentelemetry-distro sets OTEL_EXPORTER_OTLP_PROTOCOL=grpc where it
            # is unset. Exporting over HTTP, to the same collector's OTLP/HTTP port, beats exporting nothing.
            self._say.say(setting, "grpc fallback", _grpc_fallback_message(setting, exc))
            protocol = "http/protobuf"
            module_name, class_name = _OTLP_CLASSES[(signal, protocol)]
            module = importlib.import_module(module_name)
        endpoint = self._resolved.endpoints[signal]
        if endpoint is not None and protocol == "http/protobuf":
            endpoint = endpoint.rstrip("/") + f"/v1/{signal}"
        try:
            with _export_metrics():
                exporter = getattr(module, class_name)(endpoint=endpoint)
        except Exception as exc:
            self._say.say(f"OTLP {signal} exporter", endpoint, (
                f"ragotel: the OTLP {signal} exporter cannot be built ({type(exc).__name__}: {exc}); "
                f"{signal} are not exported"))
            return None
        shown = settings.display_endpoint(signal, protocol, argument=self._resolved.values.get("endpoint"))
        guard = {"traces": _export.GuardedSpanExporter, "metrics": _export.GuardedMetricExporter,
                 "logs": _export.GuardedLogExporter}[signal]
        return guard(exporter, shown, self._reach)

    def span_processors(self) -> list[SpanProcessor]:
        processors: list[SpanProcessor] = []
        exporter = self._otlp("traces")
        if exporter is not None:
            with _export_metrics():
                processors.append(_batching(BatchSpanProcessor, exporter))
        if "console" in self._resolved.exporters["traces"]:
            processors.append(SimpleSpanProcessor(_export.WaterfallConsoleExporter()))
        return processors

    def metric_readers(self) -> list[MetricReader]:
        readers: list[MetricReader] = []
        exporter = self._otlp("metrics")
        if exporter is not None:
            readers.append(PeriodicExportingMetricReader(exporter))
        if "console" in self._resolved.exporters["metrics"]:
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        return readers

    def log_processors(self) -> list[Any]:
        processors: list[Any] = []
        exporter = self._otlp("logs")
        if exporter is not None:
            with _export_metrics():
                processors.append(_batching(BatchLogRecordProcessor, exporter))
        if "console" in self._resolved.exporters["logs"]:
            processors.append(_batching(BatchLogRecordProcessor, ConsoleLogRecordExporter()))
        return processors


def _grpc_fallback_message(setting: str, exc: ImportError) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        cause = (f" opentelemetry-distro {version('opentelemetry-distro')} is installed: it sets "
                 "OTEL_EXPORTER_OTLP_PROTOCOL=grpc where it is unset (OTEL_PYTHON_DISTRO=ragotel keeps ragotel's "
                 "default, http/protobuf).")
    except PackageNotFoundError:
        cause = ""
    return (f"ragotel: {setting}='grpc', but the gRPC exporter is not installed ({exc}); exporting over "
            f"http/protobuf instead, to OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318.{cause} For gRPC: "
            "pip install 'ragotel[grpc]'; for HTTP: OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf.")


def _protocol_setting(resolved: settings.Resolved, signal: str) -> str:
    """The variable (or argument) the protocol of ``signal`` came from, for messages."""
    return (resolved.sources.get(f"protocol.{signal}") or resolved.sources.get("protocol", "protocol")).rstrip("=")


def _prometheus_port(port: int | None, from_code: bool, resolved: settings.Resolved) -> int | None:
    """Port for /metrics: ``OTEL_METRICS_EXPORTER=prometheus`` or ``prometheus_port=`` asks for it; the
    environment's port wins over the argument; ``-1``: the given port was unusable (warned)."""
    if port == -1:
        return None
    if "prometheus" in resolved.exporters["metrics"]:
        return 9464 if port is None else port
    return port if from_code else None


def _prometheus_reader(port: int, host: str, setting: str, say: _Warnings) -> MetricReader | None:
    from prometheus_client import start_http_server

    if port:
        try:
            start_http_server(port, addr=host)
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            say.say(setting.rstrip("="), port, (
                f"ragotel: {setting.rstrip('=')}={port!r} cannot be used (cannot listen on {host}:{port}: "
                f"{reason}); the Prometheus endpoint stays off"))
            return None
    return _exemplar_reader()


def _exemplar_reader() -> MetricReader:
    """ragotel's one reader in prometheus_client's default registry."""
    from ragotel._core.prometheus import ExemplarPrometheusReader

    # Placement and the environment go on every series, so dashboards can filter and compare by them.
    placement = set(_PLACEMENT)
    reader = ExemplarPrometheusReader(resource_attribute_filter=placement.__contains__)
    metrics_endpoint.adopt(reader)
    return reader


def _late_prometheus_reader(provider: MeterProvider) -> str | None:
    """Give the MeterProvider configure() built without a Prometheus reader the one an endpoint in the app asks
    for now; what it records from here on reaches the endpoint. ``None``, or why it cannot."""
    add = getattr(provider, "add_metric_reader", None)
    if add is None:
        from importlib.metadata import version

        return (f"opentelemetry-sdk {version('opentelemetry-sdk')} cannot add a reader to a MeterProvider it "
                "has built (1.43 can); upgrade it, pass prometheus_port=0 to ragotel.configure(), or set "
                "metrics_path before calling configure()")
    add(_exemplar_reader())
    return None


def prometheus_app() -> Any:
    """An ASGI app serving the Prometheus exposition of ragotel's metrics, to route at ``/metrics``;
    OpenMetrics with exemplars to a scraper that asks for it (see ``ragotel._prometheus``).

    ``configure()`` gives its MeterProvider the Prometheus reader this serves, whichever comes first::

        app.add_route("/metrics", ragotel.prometheus_app())
    """
    from ragotel._core import prometheus as _prometheus

    return _prometheus.prometheus_app()
