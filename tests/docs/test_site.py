"""The documentation site builds with ``mkdocs build --strict``, and its navigation and pages agree.

Strict mode (``strict: true`` in mkdocs.yml, with every validation set to warn) turns each warning into a
failure: a broken link or anchor, a page missing from the navigation, a nav entry with no page, a snippet that
is not there, an object mkdocstrings cannot find or a docstring griffe cannot parse. The test shows MkDocs'
warnings in its message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

import ragotel

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BUILD_TIMEOUT_S = 120
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _AnyTagLoader(yaml.SafeLoader):
    """Reads mkdocs.yml without importing what its ``!!python/name:`` and ``!ENV`` tags name."""


def _ignore_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> None:
    return None


_AnyTagLoader.add_multi_constructor("", _ignore_tag)


def _config() -> dict[str, Any]:
    with (ROOT / "mkdocs.yml").open(encoding="utf-8") as fh:
        config = yaml.load(fh, Loader=_AnyTagLoader)  # a SafeLoader that drops unknown tags
    assert isinstance(config, dict)
    return config


def _nav_paths(entries: Any) -> Iterator[str]:
    """Every page path in the nav (``- Title: page.md``, ``- page.md``, sections), external links left out."""
    if isinstance(entries, str):
        if not re.match(r"^[a-z][a-z0-9+.-]*://", entries):
            yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from _nav_paths(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from _nav_paths(value)


def test_the_site_builds_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )
    output = _ANSI.sub("", done.stdout + done.stderr)
    warnings = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0 and not warnings, (
        f"mkdocs build --strict exited {done.returncode} with {len(warnings)} warnings:\n" + "\n".join(warnings)
        + ("" if warnings else f"\n{output[-4000:]}"))
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    nav = set(_nav_paths(_config()["nav"]))
    pages = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert not pages - nav, f"pages under docs/ that the nav in mkdocs.yml leaves out: {sorted(pages - nav)}"


def test_every_nav_entry_is_a_page() -> None:
    nav = list(_nav_paths(_config()["nav"]))
    missing = [path for path in nav if not (DOCS / path).is_file()]
    assert not missing, f"nav entries in mkdocs.yml with no page under docs/: {missing}"
    assert len(nav) == len(set(nav)), f"pages listed twice in the nav: {sorted({p for p in nav if nav.count(p) > 1})}"


def test_the_api_reference_documents_every_export() -> None:
    text = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    documented = re.findall(r"^::: ragotel\.(\S+)\s*$", text, flags=re.MULTILINE)
    assert sorted(documented) == sorted(set(documented)), "an object documented twice in docs/reference/api.md"
    assert set(documented) == set(ragotel.__all__), (
        f"ragotel.__all__ not in docs/reference/api.md: {sorted(set(ragotel.__all__) - set(documented))}; "
        f"documented but not exported: {sorted(set(documented) - set(ragotel.__all__))}")
