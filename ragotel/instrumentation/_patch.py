"""Replacing methods on classes, and putting them back: the one mechanism every instrumentor uses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Patches:
    """The originals of the methods an instrumentor replaced, so that ``restore`` undoes exactly that.

    ::

        patches = Patches()
        patches.apply(faiss.IndexFlatL2, "search", lambda original: wrapped_search)
        patches.restore()
    """

    __slots__ = ("_lock", "_originals")

    def __init__(self) -> None:
        self._originals: dict[tuple[type, str], Any] = {}
        self._lock = threading.Lock()

    def apply(self, cls: type, name: str, wrap: Callable[[Any], Any]) -> bool:
        """Replace ``cls.name`` (defined on ``cls`` itself) with ``wrap(original)``; False if it is not
        there or already replaced."""
        with self._lock:
            original = cls.__dict__.get(name)
            if original is None or (cls, name) in self._originals:
                return False
            self._originals[cls, name] = original
            setattr(cls, name, wrap(original))
            return True

    def restore(self) -> None:
        with self._lock:
            for (cls, name), original in self._originals.items():
                setattr(cls, name, original)
            self._originals.clear()

    def __bool__(self) -> bool:
        return bool(self._originals)
