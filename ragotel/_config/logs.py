"""Trace-correlated logging: standard ``logging`` records carry ``trace_id``/``span_id`` and go out
as OpenTelemetry logs (to Loki, through Alloy).

``ragotel.configure`` installs both pieces; nothing here runs at import.

* every ``LogRecord`` gets ``trace_id`` and ``span_id`` (hex, empty outside a span), so a plain
  formatter can print them: ``"%(levelname)s %(name)s trace_id=%(trace_id)s %(message)s"``;
* the SDK's ``LoggingHandler`` on the root logger emits each record through the logger provider, in the
  context of the current span, so the backend links the line to its trace.

The handler does not take the place of console output: ``logging.basicConfig()`` (and ``dictConfig`` /
``fileConfig``) called after ``ragotel.configure`` still configure the console, as they would without
it (the SDK's auto-configuration does the same), and while it is the root logger's only handler, WARNING
and above still reach stderr as Python prints them with no handler at all.
"""

from __future__ import annotations

import functools
import logging
import logging.config
import warnings
from collections.abc import Callable
from typing import Any

from opentelemetry import _logs, trace

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from opentelemetry.sdk._logs import LoggingHandler

# Records from the exporters themselves are not exported: a failing exporter would feed itself.
_SKIPPED_LOGGERS = ("opentelemetry", "ragotel", "urllib3", "grpc")
_CONFIG_FUNCTIONS = ("basicConfig", "config.dictConfig", "config.fileConfig")


class _NotExporter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_SKIPPED_LOGGERS)


class _ConsoleWhenAlone(logging.Filter):
    """Lets a record through to Python's last-resort stderr handler when no other handler would see it:
    adding the OpenTelemetry handler must not silence the warnings a process prints without it."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self._handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        root = logging.getLogger()
        if record.levelno < logging.WARNING or any(h is not self._handler for h in root.handlers):
            return True
        node: logging.Logger | None = logging.getLogger(record.name)
        while node is not None and node is not root:
            if node.handlers:
                return True
            if not node.propagate:
                return True
            node = node.parent
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            last.handle(record)
        return True


class _Handler(LoggingHandler):
    """The SDK's handler; ``trace_id``/``span_id`` stamped for format strings are not repeated as attributes
    (the log record carries the trace context itself)."""

    @staticmethod
    def _get_attributes(record: logging.LogRecord) -> Any:
        attributes = dict(LoggingHandler._get_attributes(record) or {})
        attributes.pop("trace_id", None)
        attributes.pop("span_id", None)
        return attributes


def handler(logger_provider: _logs.LoggerProvider) -> logging.Handler:
    """The SDK's ``LoggingHandler`` for ``logger_provider``, minus the exporters' own records."""
    with warnings.catch_warnings():
        # The SDK marks it deprecated in favour of opentelemetry-instrumentation-logging, which is not a
        # dependency of ragotel; it is the same translation (severity, attributes, trace context).
        warnings.simplefilter("ignore", DeprecationWarning)
        sdk_handler = _Handler(level=logging.NOTSET, logger_provider=logger_provider)
    sdk_handler.addFilter(_ConsoleWhenAlone(sdk_handler))
    sdk_handler.addFilter(_NotExporter())
    return sdk_handler


_installed: list[logging.Handler] = []


def install(log_handler: logging.Handler) -> None:
    """Put ``log_handler`` on the root logger, and keep ``basicConfig``/``dictConfig``/``fileConfig`` working
    as if it were not there: they see the root logger without it and it is put back afterwards."""
    logging.getLogger().addHandler(log_handler)
    _installed.append(log_handler)
    _wrap_config_functions()


def installed() -> tuple[logging.Handler, ...]:
    """The handlers ``install`` put on the root logger."""
    return tuple(_installed)


def uninstall(log_handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(log_handler)
    if log_handler in _installed:
        _installed.remove(log_handler)


def _wrap_config_functions() -> None:
    for dotted in _CONFIG_FUNCTIONS:
        owner: Any = logging
        *path, name = dotted.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)
        if getattr(original, "_ragotel_wrapped", False):
            continue
        setattr(owner, name, _without_our_handlers(original))


def _without_our_handlers(config_fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(config_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        root = logging.getLogger()
        ours = [h for h in root.handlers if h in _installed]
        for h in ours:
            root.removeHandler(h)
        try:
            return config_fn(*args, **kwargs)
        finally:
            for h in ours:
                if h not in root.handlers:
                    root.addHandler(h)

    wrapper._ragotel_wrapped = True  # type: ignore[attr-defined]
    return wrapper


_original_factory: Callable[..., logging.LogRecord] | None = None


def install_trace_ids() -> None:
    """Stamp ``trace_id``/``span_id`` on every log record created from now on (idempotent)."""
    global _original_factory
    if _original_factory is not None:
        return
    previous = logging.getLogRecordFactory()
    _original_factory = previous

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        else:
            record.trace_id = record.span_id = ""
        return record

    logging.setLogRecordFactory(factory)
