"""The step API's reference: what ``help()`` shows for each of the six steps documents every parameter and
names the span as the step names it, and the table of the six steps in docs/guide/steps.md (generated from them by
``python -m docsgen``) mirrors it."""

from __future__ import annotations

import inspect
import pydoc
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ragotel
from tests.conftest import Recorded

STEPS: list[Callable[..., Any]] = [ragotel.retrieval, ragotel.embedding, ragotel.rerank, ragotel.prompt,
                                   ragotel.generation, ragotel.pipeline]
COMMON = ("attributes", "extractor", "capture_content")
STEPS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "steps.md"
ids = [step.__name__ for step in STEPS]


def documented_args(doc: str) -> dict[str, str]:
    """The Google-style ``Args:`` section: parameter → its description."""
    section = doc.split("\nArgs:\n", 1)[1].split("\n\n", 1)[0]
    entries = re.split(r"^    (\w+): ", section, flags=re.MULTILINE)[1:]
    return {name: " ".join(text.split()) for name, text in zip(entries[::2], entries[1::2], strict=True)}


@pytest.mark.parametrize("step", STEPS, ids=ids)
def test_help_documents_every_parameter(step: Callable[..., Any]) -> None:
    shown = pydoc.render_doc(step, renderer=pydoc.plaintext)  # what help() prints
    params = inspect.signature(step).parameters
    args = documented_args(inspect.getdoc(step) or "")
    assert list(args) == list(params)  # each one, in the signature's order
    assert all(len(text) > 20 for text in args.values()), args
    for name in params:
        assert f"{name}: " in shown, name


@pytest.mark.parametrize("step", STEPS, ids=ids)
def test_the_documented_span_name_is_the_one_a_step_gets(recorded: Recorded, step: Callable[..., Any]) -> None:
    found = re.search(r"The span is ``([^`]+)``", inspect.getdoc(step) or "")
    assert found, step.__name__
    documented = found.group(1)
    target = re.findall(r"\{(\w+)\}", documented)[-1]
    keywords = {target: "idx"} if target != "name" else {}
    with step("my_step", **keywords):
        pass
    expected = documented.format_map({"name": "my_step", "operation": "chat", **keywords})
    (span,) = recorded.spans()
    assert span.name == expected
    assert span.attributes["rag.step.name"] == "my_step"


@pytest.mark.parametrize("step", STEPS, ids=ids)
def test_the_steps_page_table_mirrors_each_step(step: Callable[..., Any]) -> None:
    text = STEPS_PAGE.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| step | span | keywords"))
    assert all(f"`{name}`" in header for name in COMMON)
    (row,) = [line for line in text.splitlines() if line.startswith(f"| `{step.__name__}(name)` |")]
    span = re.search(r"The span is ``([^`]+)``", inspect.getdoc(step) or "")
    assert span and f"`{span.group(1)}`" in row
    for name in inspect.signature(step).parameters:
        if name != "fn_or_name" and name not in COMMON:
            assert f"`{name}`" in row.split(" | ")[2], name
