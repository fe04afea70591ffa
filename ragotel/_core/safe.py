"""Telemetry must never break the application: ragotel's own failures are swallowed and logged once."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("ragotel")

_seen: set[str] = set()
_seen_lock = threading.Lock()


def report_internal_error(where: str, exc: BaseException) -> None:
    """Log a failure inside ragotel once per place, with its traceback; never raise.

    Called from ``except Exception`` blocks around instrumentation code, so a bug in ragotel (or in
    a user-supplied extractor or redaction hook) costs one log line, not a failed request.
    """
    try:
        with _seen_lock:
            if where in _seen:
                return
            _seen.add(where)
        logger.warning("ragotel: telemetry error in %s (further ones are not logged)", where, exc_info=exc)
    except Exception:
        pass
