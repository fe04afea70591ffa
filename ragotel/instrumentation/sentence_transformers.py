"""Embedding spans and metrics for sentence-transformers encoders, with no code change.

::

    import ragotel

    ragotel.instrument_sentence_transformers()   # or, with no code: opentelemetry-instrument
    vectors = model.encode(["When does the shop open?"], normalize_embeddings=True)

Every ``SentenceTransformer.encode`` (and ``encode_query`` / ``encode_document``) is an embedding step:
span ``embeddings {model}`` with ``gen_ai.operation.name=embeddings``, ``gen_ai.request.model``, the
inputs in the batch, the vector dimension, the device, whether the vectors were normalised and, for
``encode_query``/``encode_document``, which one. Text is never recorded. Inside the application's own
embedding step no second span is made: the step gets the inputs and the dimension.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from contextvars import ContextVar
from functools import lru_cache
from pathlib import PurePath
from typing import Any, Final

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.util.types import AttributeValue

from ragotel import semconv as sc
from ragotel._core import runtime
from ragotel._core.safe import report_internal_error
from ragotel._genai import hits
from ragotel._genai.operation import enclosing
from ragotel._steps.spec import Spec
from ragotel._steps.step import Step, StepFacts
from ragotel.instrumentation._base import Instrumentor
from ragotel.semconv import StepKind

__all__ = ["SentenceTransformersInstrumentor", "instrument_sentence_transformers",
           "uninstrument_sentence_transformers"]

_METHODS: Final = {"encode": None, "encode_query": "query", "encode_document": "document"}
# Set while an instrumented encode runs: encode_query calls encode, which must not be a second step.
_encoding: ContextVar[bool] = ContextVar("ragotel_encoding", default=False)
# Last parts of a local model path that name nothing ("…/all-MiniLM-L6-v2/model"): the parent names it.
_GENERIC_DIRS: Final = frozenset({"model", "models", "snapshot", "snapshots", "main"})


class SentenceTransformersInstrumentor(Instrumentor):
    """sentence-transformers encoders as embedding steps, as an OpenTelemetry instrumentor
    (``ragotel_sentence_transformers``); ``uninstrument()`` puts the methods back."""

    label = "instrument_sentence_transformers()"
    modules = ("sentence_transformers",)

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("sentence-transformers >= 3",)

    def _instrument(self, **kwargs: Any) -> None:
        from sentence_transformers import SentenceTransformer

        for name, input_type in _METHODS.items():
            self._patches.apply(SentenceTransformer, name, functools.partial(_encoding_step, input_type=input_type))


def instrument_sentence_transformers() -> None:
    """Instrument every ``SentenceTransformer`` (see this module); a second call does nothing."""
    SentenceTransformersInstrumentor.turn_on()


def uninstrument_sentence_transformers() -> None:
    """Undo ``instrument_sentence_transformers``."""
    SentenceTransformersInstrumentor.turn_off()


def _encoding_step(original: Any, *, input_type: str | None) -> Any:
    @functools.wraps(original)
    def encode(model: Any, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        if runtime.current.disabled or _encoding.get() or not is_instrumentation_enabled():
            return original(model, inputs, *args, **kwargs)
        token = _encoding.set(True)
        try:
            step, parent = _begin(model, inputs, kwargs, input_type)
            if step is None:
                result = original(model, inputs, *args, **kwargs)
            else:
                result = step.run(original, model, inputs, *args, **kwargs)
            _record_result(step or parent, inputs, result)
            if step is not None:
                step.end()
            return result
        finally:
            _encoding.reset(token)

    return encode


def _begin(model: Any, inputs: Any, kwargs: dict[str, Any], input_type: str | None) -> tuple[Step | None, Step | None]:
    """The encode's own step, or (``None``, the application's embedding step it runs in). Never raises."""
    try:
        parent = enclosing()
        if isinstance(parent, Step) and parent.kind is StepKind.EMBEDDING:
            return None, parent
        step = Step.start(_spec(_model_name(model)))
        attrs: dict[str, AttributeValue] = {
            sc.RAG_EMBEDDING_NORMALIZED: bool(kwargs.get("normalize_embeddings", False)),
        }
        device = getattr(model, "device", None)
        if device is not None:
            attrs[sc.RAG_EMBEDDING_DEVICE] = str(device)
        if input_type is not None:
            attrs[sc.RAG_EMBEDDING_INPUT_TYPE] = input_type
        step.span.set_attributes(attrs)
        return step, None
    except Exception as exc:
        report_internal_error("starting a sentence-transformers span", exc)
        return None, None


def _record_result(step: Step | None, inputs: Any, result: Any) -> None:
    if step is None:
        return
    try:
        facts: StepFacts = {}
        if isinstance(inputs, str | Sequence):
            facts["inputs"] = 1 if isinstance(inputs, str) else len(inputs)
        shape = hits.embedding_shape(result) if facts.get("inputs") != 0 else None
        if shape is not None and shape[1]:
            facts["dimension"] = shape[1]
        step.record(**facts)
    except Exception as exc:
        report_internal_error("reading a sentence-transformers result", exc)


@lru_cache(maxsize=64)
def _spec(model: str) -> Spec:
    return Spec(StepKind.EMBEDDING, model, target=model, attributes={sc.GEN_AI_REQUEST_MODEL: model})


def _model_name(model: Any) -> str:
    """The hub id when the model came from the hub, else the folder it was loaded from (kept on the model)."""
    name = getattr(model, "_ragotel_model_name", None)
    if name is None:
        name = model._ragotel_model_name = _find_model_name(model)
    return str(name)


def _find_model_name(model: Any) -> str:
    card = getattr(model, "model_card_data", None)
    name = getattr(card, "base_model", None)
    if isinstance(name, str) and name:
        return name
    try:
        path = model[0].auto_model.config._name_or_path
    except Exception:
        return "sentence-transformers"
    parts = PurePath(str(path)).parts
    while len(parts) > 1 and parts[-1].lower() in _GENERIC_DIRS:
        parts = parts[:-1]
    return parts[-1] if parts else "sentence-transformers"
