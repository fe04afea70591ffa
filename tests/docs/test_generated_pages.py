"""The documentation's generated tables (``python -m docsgen``) are current, and the check would say when not.

Settings, names, ``error.type`` values, the six steps, panels, alerts, needs and the TraceQL catalog are written
between ``<!-- NAME:begin -->`` / ``<!-- NAME:end -->`` markers from the code that defines them (docsgen/tables.py);
``python -m docsgen --check`` names every page (and picture) that differs from what the code builds.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from docsgen import __main__ as docsgen
from docsgen import pictures, sections
from ragotel._core import errors

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def docs_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the pages with generated sections, under ``tmp_path/docs`` (the pictures left out)."""
    monkeypatch.setattr(pictures, "outputs", dict)
    for page in docsgen.PAGES:
        (tmp_path / "docs" / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(docsgen.DOCS / page, tmp_path / "docs" / page)
    return tmp_path / "docs"


def test_every_generated_page_is_current() -> None:
    found = docsgen.stale()
    assert found == [], f"out of date (run: python -m docsgen): {found}"


def test_a_current_copy_is_current(docs_copy: Path) -> None:
    assert docsgen.stale(docs_copy) == []


def test_a_stale_section_is_named(docs_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = docs_copy / "reference" / "settings.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| `service_name=` |", "| `service_nam=` |"),
                    encoding="utf-8")
    assert docsgen.stale(docs_copy) == ["docs/reference/settings.md"]
    assert docsgen.main(["--check", "--docs", str(docs_copy)]) == 1
    assert "out of date: docs/reference/settings.md" in capsys.readouterr().err
    assert docsgen.main(["--docs", str(docs_copy)]) == 0  # writing mends it
    assert docsgen.main(["--check", "--docs", str(docs_copy)]) == 0


def test_a_hand_edit_between_the_markers_is_undone(docs_copy: Path) -> None:
    page = docs_copy / "dashboards.md"
    current = page.read_text(encoding="utf-8")
    page.write_text(current.replace("<!-- alerts:end -->", "| `HandWritten` | x | y | 5m | warning |\n"
                                    "<!-- alerts:end -->"), encoding="utf-8")
    assert docsgen.stale(docs_copy) == ["docs/dashboards.md"]
    docsgen.write(docs_copy)
    assert page.read_text(encoding="utf-8") == current


def test_a_missing_marker_is_named(docs_copy: Path) -> None:
    page = docs_copy / "reference" / "names.md"
    page.write_text(page.read_text(encoding="utf-8").replace("<!-- events:end -->", ""), encoding="utf-8")
    assert docsgen.stale(docs_copy) == ["docs/reference/names.md (no <!-- events:begin --> … <!-- events:end --> pair)"]
    assert docsgen.main(["--docs", str(docs_copy)]) == 1


def test_links_are_made_relative_to_the_page() -> None:
    text = "[Cost](guide/cost.md), [a part](guide/steps.md#what), [site](https://example.org/x.md), [here](#anchor)"
    assert sections.relink(text, "dashboards.md") == text
    assert sections.relink(text, "reference/names.md") == (
        "[Cost](../guide/cost.md), [a part](../guide/steps.md#what), [site](https://example.org/x.md), [here](#anchor)")


_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")


@pytest.mark.parametrize("page", list(docsgen.PAGES))
def test_every_link_in_a_generated_section_resolves_from_its_page(page: str) -> None:
    text = (docsgen.DOCS / page).read_text(encoding="utf-8")
    for name in docsgen.PAGES[page]:
        begin, end = sections.markers(name)
        generated = text.split(begin, 1)[1].split(end, 1)[0]
        for target in _LINK.findall(generated):
            if "://" not in target:
                assert ((docsgen.DOCS / page).parent / target).resolve().is_file(), (page, name, target)


def test_every_error_type_the_code_sets_is_documented() -> None:
    """The values instrumented calls set by hand (a 200 that cannot be read) are rows of the generated table."""
    documented = {value for row in errors.DOCUMENTED for value in row.values}
    set_by_hand = {found for path in (ROOT / "ragotel").rglob("*.py")
                   for found in re.findall(r'\.error = (?:[\w.]+ or )?"([a-z_.]+)"', path.read_text(encoding="utf-8"))}
    assert set_by_hand and set_by_hand <= documented, set_by_hand - documented


def test_docstrings_name_constants_by_what_is_emitted() -> None:
    """A semconv docstring that names another constant (``GEN_AI_WORKFLOW_NAME``) shows the emitted name on the page;
    a Python name there would be one a reader cannot find in any backend."""
    from docsgen import tables
    from ragotel import semconv

    shown = tables.markdown("see ``RAG_STEP_DURATION``", tables._semconv_reference)
    assert shown == f"see `{semconv.RAG_STEP_DURATION}`"
    page = (docsgen.DOCS / "reference" / "names.md").read_text(encoding="utf-8")
    leaked = sorted({name for name in re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`", page) if hasattr(semconv, name)})
    assert not leaked, f"Python names on the names page: {leaked}"
