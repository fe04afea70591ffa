"""What every ragotel instrumentor shares: methods replaced on classes and put back (``Patches``), and
an OpenTelemetry ``BaseInstrumentor`` that keeps the settings it was turned on with and never raises into the
application (``Instrumentor``)."""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import wrapt
from opentelemetry.instrumentation.dependencies import DependencyConflictError
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

_log = logging.getLogger("ragotel")
_failed: set[str] = set()  # instrumentors that have warned that they could not instrument their library


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


class Arguments:
    """A patched method's arguments by name, given positionally or by keyword, with the method's own defaults:
    where it takes each is read from its signature once, when it is patched, so that a positional call reads as a
    keyword one and a parameter a later release renamed reads as absent, never as another.

    ::

        arguments = Arguments(Collection.query)
        top_k = arguments.get("n_results", args, kwargs)   # inside the wrapper of query(self, *args, **kwargs)
    """

    __slots__ = ("defaults", "positions")

    def __init__(self, method: Callable[..., Any]) -> None:
        self.positions: dict[str, int] = {}
        self.defaults: dict[str, Any] = {}
        try:
            parameters = list(inspect.signature(method).parameters.values())[1:]  # after self
        except (TypeError, ValueError):  # a native method without a signature: keywords only
            parameters = []
        for index, parameter in enumerate(parameters):
            if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                self.positions[parameter.name] = index
            if parameter.default is not parameter.empty:
                self.defaults[parameter.name] = parameter.default

    def get(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The argument ``name`` of a call (``args`` after ``self``), or its default (``None`` if it has none)."""
        if name in kwargs:
            return kwargs[name]
        index = self.positions.get(name)
        if index is not None and index < len(args):
            return args[index]
        return self.defaults.get(name)


class Instrumentor(BaseInstrumentor):  # type: ignore[misc]
    """A ``BaseInstrumentor`` (a process-wide singleton, as OpenTelemetry's are) whose patches live in its
    ``Patches``. Instrumenting again keeps the first instrumentation, with a WARNING naming what was
    kept when the arguments differ; ``turn_on`` / ``turn_off`` are what ``instrument_*()`` and
    ``uninstrument_*()`` call.

    Instrumenting never raises into the application: a library whose shape ``_instrument`` does not expect (a
    release that moved or renamed what it patches) leaves it uninstrumented, its patches undone, with one
    WARNING naming the library, its version and the error. Only the signals the ``opentelemetry-instrument``
    loader asks for pass through: a dependency conflict, and a library that is not installed.

    An instrumentor that names its library's top-level ``modules`` waits for it: instrumented before any of
    them is imported (as ``opentelemetry-instrument`` instruments, before the application starts), it patches
    when the first is imported (a post-import hook), so a process that has the library installed but never
    imports it does not pay for importing it (sentence-transformers takes seconds: torch)."""

    _patches: ClassVar[Patches]
    _kept: ClassVar[dict[str, Any] | None] = None
    """The keyword arguments of the instrumentation in place."""
    label: ClassVar[str] = "instrument()"
    modules: ClassVar[tuple[str, ...]] = ()
    """Top-level modules of the library: ``_instrument`` runs once the first of them is imported."""
    _pending: ClassVar[bool] = False
    """Instrumented, waiting for one of ``modules`` to be imported."""
    _generation: ClassVar[int] = 0
    """Counts instrumentations, so that a hook registered for an earlier one does nothing."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._patches = Patches()
        cls._kept = None
        cls._pending = False
        cls._generation = 0

    @staticmethod
    def settings_of(kwargs: dict[str, Any]) -> dict[str, Any]:
        """The settings ``kwargs`` ask for, as compared between two instrumentations."""
        return {k: v for k, v in kwargs.items() if k != "skip_dep_check"}

    def instrument(self, **kwargs: Any) -> None:
        if self.is_instrumented_by_opentelemetry:
            kept = type(self)._kept
            if kept is not None:
                warn_if_different(self.label, kept, self.settings_of(kwargs))
            return None
        try:
            waits = self._waits()
            if (kwargs.get("skip_dep_check") or waits) and self._absent_or_conflicting():
                return None
            type(self)._kept = self.settings_of(kwargs)
            if waits:
                self._wait(kwargs)
                return None
            return super().instrument(**kwargs)  # type: ignore[no-any-return]
        except DependencyConflictError:
            raise  # asked for by the loader (raise_exception_on_conflict), which skips the instrumentor
        except ModuleNotFoundError as exc:
            if kwargs.get("raise_exception_on_conflict"):
                self._undo()
                raise  # the loader skips an instrumentor whose library is not installed, quietly
            self._gave_up(exc)
        except Exception as exc:
            self._gave_up(exc)
        return None

    def _patch_each(self, targets: Iterable[tuple[type, str, Callable[[Any], Any]]]) -> None:
        """Patch each ``(class, method, wrap)``; a method a release moved or removed is left out and the others stay
        instrumented, the gap said in one WARNING."""
        missing = [f"{cls.__name__}.{name}" for cls, name, wrap in targets
                   if not self._patches.apply(cls, name, wrap) and name not in vars(cls)]
        if missing:
            _log.warning("ragotel: %s: %s has no %s; left uninstrumented", self.label, self._library(),
                         ", ".join(missing))

    def _waits(self) -> bool:
        """Whether to wait for the library's import: it names its modules and none is imported yet."""
        modules = self.modules
        return bool(modules) and not any(name in sys.modules for name in modules)

    def _wait(self, kwargs: dict[str, Any]) -> None:
        """Instrumented now; ``_instrument`` runs when the first of ``modules`` has been imported, in the
        importing thread, and never raises into that import."""
        cls = type(self)
        cls._generation += 1
        ticket = cls._generation
        cls._pending = True
        self._is_instrumented_by_opentelemetry = True
        arguments = {k: v for k, v in kwargs.items() if k != "raise_exception_on_conflict"}

        def imported(module: Any) -> None:
            if not cls._pending or cls._generation != ticket:
                return  # uninstrumented meanwhile, or already instrumented by another of the modules
            cls._pending = False
            try:
                self._instrument(**arguments)
            except Exception as exc:
                self._gave_up(exc)

        for name in self.modules:
            wrapt.register_post_import_hook(imported, name)

    def uninstrument(self, **kwargs: Any) -> None:
        cls = type(self)
        if cls._pending:  # the library was never imported: nothing is patched, the hooks are disarmed
            cls._pending = False
            cls._generation += 1
            cls._kept = None
            self._is_instrumented_by_opentelemetry = False
            return None
        return super().uninstrument(**kwargs)  # type: ignore[no-any-return]

    def _absent_or_conflicting(self) -> bool:
        """The check ``opentelemetry-instrument``'s loader skips (``skip_dep_check``): it checks the ``instruments``
        requirements of the distribution, which for ragotel are any one of its libraries, not this instrumentor's.
        A library that is not installed is skipped quietly, as the loader skips one; one outside the range warns
        once."""
        conflict = self._check_dependency_conflicts()
        if conflict is None:
            return False
        if conflict.found and self.label not in _failed:
            _failed.add(self.label)
            _log.warning("ragotel: %s", conflict._format_message(self.label))
        else:
            _log.debug("ragotel: %s", conflict._format_message(self.label))
        return True

    def _undo(self) -> None:
        """Back to uninstrumented: ``_instrument`` failed part-way."""
        self._patches.restore()
        type(self)._kept = None
        self._is_instrumented_by_opentelemetry = False

    def _gave_up(self, exc: Exception) -> None:
        """``_instrument`` failed part-way: undo what it patched and say so once."""
        try:
            self._undo()
            if self.label in _failed:
                return
            _failed.add(self.label)
            _log.warning("ragotel: %s cannot instrument %s (%s: %s); it stays uninstrumented",
                         self.label, self._library(), type(exc).__name__, exc)
            _log.debug("ragotel: %s failed", self.label, exc_info=exc)
        except Exception:
            pass  # nothing of this may reach the application

    def _library(self) -> str:
        """The library this instrumentor patches and its installed version, as ``faiss-cpu 1.9.0``."""
        try:
            for requirement in self.instrumentation_dependencies():
                name = re.match(r"[A-Za-z0-9._-]+", requirement)
                if name is not None:
                    try:
                        return f"{name.group()} {importlib.metadata.version(name.group())}"
                    except importlib.metadata.PackageNotFoundError:
                        return name.group()
        except Exception:
            pass
        return "its library"

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.restore()
        type(self)._kept = None

    @classmethod
    def turn_on(cls, **kwargs: Any) -> None:
        cls().instrument(**kwargs)

    @classmethod
    def turn_off(cls) -> None:
        instrumentor = cls()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def warn_if_different(what: str, kept: dict[str, Any], asked: dict[str, Any]) -> None:
    """One WARNING when a second instrumentation asks for other settings than the one kept."""
    names = sorted(set(kept) | set(asked))
    differences = ", ".join(f"{k}={kept.get(k)!r} (ignored: {asked.get(k)!r})" for k in names
                            if kept.get(k) != asked.get(k))
    if differences:
        _log.warning("ragotel: %s: already instrumented; the first instrumentation is kept: %s", what, differences)
