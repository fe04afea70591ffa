"""The reference app's own exceptions, in a module that is never run as ``__main__``: their
``error.type`` (``examples.reference_app.errors.StageError``) is the same however a service was
started (``python -m examples.reference_app.chat_api``, uvicorn, tests)."""

from __future__ import annotations


class StageError(Exception):
    """A dependency failed; ``status`` is the HTTP answer, ``stage`` the step that failed."""

    def __init__(self, stage: str, status: int, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage, self.status, self.detail = stage, status, detail


class Rejected(Exception):
    """The caller's request is refused with a 4xx: ``detail`` says why, ``error_type`` is what
    ``rag.step.errors{rag.step.kind="request"}`` counts it as."""

    def __init__(self, status: int, detail: str, error_type: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.error_type = status, detail, error_type
