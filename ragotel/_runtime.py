"""Process-wide switches every instrumentation reads on its hot path, and the ``error.type`` rule.

:func:`ragotel.configure` sets the fields once; everything else only reads them, so a step pays one
attribute lookup per setting and no locking.
"""

from __future__ import annotations

import os
import sys
from typing import Final

DETAILED_METRICS_ENV: Final = "RAGOTEL_DETAILED_METRICS"
LOW_SCORE_ENV: Final = "RAGOTEL_RETRIEVAL_LOW_SCORE"
VALUE_LIMIT_ENV: Final = "RAGOTEL_METRIC_VALUE_LIMIT"
DEFAULT_VALUE_LIMIT: Final = 100


def _env_float(name: str) -> float | None:
    try:
        raw = os.environ.get(name, "").strip()
        return float(raw) if raw else None
    except ValueError:
        return None


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


class Runtime:
    """What every step reads: whether telemetry is off and which optional records it makes."""

    __slots__ = ("detailed_metrics", "disabled", "low_score", "value_limit")

    def __init__(self) -> None:
        self.disabled = False
        self.detailed_metrics = os.environ.get(DETAILED_METRICS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
        """Per-document scores and a second, GenAI-named duration for retrieval/embedding/generation steps."""
        self.low_score: float | None = _env_float(LOW_SCORE_ENV)
        """A retrieval whose best score is under this is ``low_score``; ``None``: the step's ``min_score``."""
        self.value_limit = _env_int(VALUE_LIMIT_ENV, DEFAULT_VALUE_LIMIT)
        """Distinct values one metric attribute may take before new ones become ``_other``."""


runtime = Runtime()


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: the class name, qualified unless it is a builtin.

    A class defined in a module run as ``python -m pkg.mod`` lives in ``__main__``; it is named after
    the module it was imported as, so the value does not depend on how the process was started.
    """
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = getattr(spec, "name", None) or module
    return f"{module}.{cls.__qualname__}"
