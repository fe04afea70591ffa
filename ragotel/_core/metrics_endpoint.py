"""Whether the application serves prometheus_client's default registry itself (``instrument_fastapi(app,
metrics_path="/metrics")``, ``ragotel.prometheus_app()``), and whether ragotel's metrics reach it.

The SDK's ``MeterProvider`` takes its readers when it is built, and each reader costs every measurement one
more aggregation; so ``configure()`` without ``prometheus_port`` builds no Prometheus reader. An endpoint in the
app asks for one (``serve``): ``configure()`` builds it into the MeterProvider it creates afterwards, or,
having created that already, adds it through the hook it left (``offer``). Where ragotel's metrics cannot
reach the endpoint (the application's own MeterProvider has no Prometheus reader; nothing set a MeterProvider by
the first scrape), one WARNING says what to do.

Kept apart from ``ragotel._core.prometheus``, which imports prometheus_client, so that ``configure()`` costs
no such import when nothing serves ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics

from ragotel._core import runtime
from ragotel._core.compat import is_unset, metric_readers
from ragotel._core.safe import report_internal_error

_log = logging.getLogger("ragotel")


class _State:
    __slots__ = ("attach", "lock", "reader", "scraped", "served", "warned")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.served = False  # an endpoint in the app serves the default registry
        self.scraped = False  # it has answered once
        self.warned = False
        self.reader: Any = None  # ragotel's Prometheus reader, in the default registry
        # configure()'s, while the MeterProvider it built has no Prometheus reader: adds one (None) or says why not
        self.attach: Callable[[], str | None] | None = None


state = _State()


def adopt(reader: Any) -> None:
    """``reader`` is ragotel's reader in the default registry: nothing adds a second (every series twice)."""
    with state.lock:
        state.reader = reader
        state.attach = None


def served() -> bool:
    """Whether an endpoint in the app already serves the default registry."""
    return state.served


def offer(attach: Callable[[], str | None]) -> None:
    """``configure()`` built its MeterProvider without a Prometheus reader: ``attach`` adds one when an endpoint
    asks (returning ``None``), or says why it cannot."""
    with state.lock:
        state.attach = attach
        asked = state.served and state.reader is None
    if asked:  # an endpoint asked while configure() was building the provider
        serve("an endpoint in the app")


def serve(served_by: str) -> None:
    """An endpoint in the app (``served_by``, as warnings name it) serves the default registry from now on: make
    ragotel's metrics reach it, or warn once why they cannot. Never raises."""
    try:
        with state.lock:
            state.served = True
            if state.reader is not None or state.warned:
                return
            attach = state.attach
            if attach is not None:  # under the lock: two endpoints must not add two readers
                problem = attach()
                if problem is not None:
                    _warn(served_by, problem)
                return
        _check(served_by, scraped=False)
    except Exception as exc:
        report_internal_error("serving /metrics", exc)


def first_scrape(served_by: str) -> None:
    """At the first scrape, whatever is set up by now is what will serve: say so if ragotel's metrics are not in it."""
    try:
        state.scraped = True
        if state.reader is None and not state.warned:
            _check(served_by, scraped=True)
    except Exception as exc:
        report_internal_error("serving /metrics", exc)


def _check(served_by: str, *, scraped: bool) -> None:
    provider = metrics.get_meter_provider()
    if is_unset(provider):
        # Before the first scrape, configure() may still come and build the reader in; after it, nothing will.
        if scraped and not runtime.current.disabled:
            _warn(served_by, "no MeterProvider is set; call ragotel.configure() at startup")
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    readers = metric_readers(provider)
    if readers is not None and any(isinstance(reader, PrometheusMetricReader) for reader in readers):
        return  # the application's own provider feeds the default registry itself
    _warn(served_by, (
        f"the application set its own MeterProvider ({type(provider).__name__}) and it has no Prometheus reader "
        "ragotel can see; give it one (opentelemetry.exporter.prometheus.PrometheusMetricReader()), or leave the "
        "MeterProvider to ragotel.configure()"))


def _warn(served_by: str, problem: str) -> None:
    with state.lock:
        if state.warned:
            return
        state.warned = True
    _log.warning("ragotel: %s serves prometheus_client's default registry without ragotel's metrics: %s",
                 served_by, problem)
