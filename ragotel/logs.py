"""Trace-correlated logging: standard ``logging`` records carry ``trace_id``/``span_id`` and go out
as OpenTelemetry logs (to Loki, through Alloy).

:func:`ragotel.configure` installs both pieces; nothing here runs at import.

* every ``LogRecord`` gets ``trace_id`` and ``span_id`` (hex, empty outside a span), so a plain
  formatter can print them: ``"%(levelname)s %(name)s trace_id=%(trace_id)s %(message)s"``;
* :class:`OtelLogHandler` on the root logger emits each record through the logger provider, in the
  context of the current span, so the backend links the line to its trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry import context as otel_context
from opentelemetry._logs import LogRecord, SeverityNumber

# Attributes every LogRecord has; anything else on a record was passed by the caller via ``extra``.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# Records from the exporters themselves are not exported: a failing exporter would feed itself.
_SKIPPED_LOGGERS = ("opentelemetry", "ragotel", "urllib3", "grpc")


def _severity(levelno: int) -> SeverityNumber:
    if levelno >= logging.CRITICAL:
        return SeverityNumber.FATAL
    if levelno >= logging.ERROR:
        return SeverityNumber.ERROR
    if levelno >= logging.WARNING:
        return SeverityNumber.WARN
    if levelno >= logging.INFO:
        return SeverityNumber.INFO
    return SeverityNumber.DEBUG


class OtelLogHandler(logging.Handler):
    """Send ``logging`` records to an OpenTelemetry logger provider."""

    def __init__(self, logger_provider: _logs.LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = logger_provider

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SKIPPED_LOGGERS):
            return
        try:
            attributes: dict[str, Any] = {
                key: value if isinstance(value, (str, bool, int, float)) else str(value)
                for key, value in vars(record).items()
                if key not in _RESERVED and key not in ("trace_id", "span_id")
            }
            attributes["code.function.name"] = record.funcName
            attributes["code.line.number"] = record.lineno
            attributes["code.file.path"] = record.pathname
            exception = record.exc_info[1] if record.exc_info else None
            if exception is not None:
                attributes["exception.type"] = type(exception).__qualname__
            self._provider.get_logger(record.name).emit(
                LogRecord(
                    timestamp=int(record.created * 1e9),
                    observed_timestamp=time.time_ns(),
                    context=otel_context.get_current(),
                    severity_text=record.levelname,
                    severity_number=_severity(record.levelno),
                    body=self.format(record) if self.formatter else record.getMessage(),
                    attributes=attributes,
                    exception=exception,
                )
            )
        except Exception:
            self.handleError(record)


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
