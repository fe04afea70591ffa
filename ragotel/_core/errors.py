"""The ``error.type`` rule, and the ``rag.error`` event that notes a failure on a span."""

from __future__ import annotations

import sys

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc


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


def note_error(span: Span, etype: str, *, stage: str | None = None, message: str | None = None) -> None:
    """Set ``error.type`` on ``span`` and add a ``rag.error`` event naming the stage (the status is the caller's)."""
    span.set_attribute(sc.ERROR_TYPE, etype)
    event: dict[str, AttributeValue] = {sc.ERROR_TYPE: etype}
    if stage:
        event[sc.RAG_STEP_KIND] = stage
    if message:
        event[sc.RAG_ERROR_MESSAGE] = message
    span.add_event(sc.RAG_ERROR_EVENT, event)
