"""Regenerate (or, with ``--check``, verify) every generated part of the documentation.

    python -m docsgen            # write the tables in docs/ and the pictures in docs/assets/
    python -m docsgen --check    # change nothing; exit 1 and list what is out of date

A page's generated sections lie between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` (:mod:`docsgen.sections`);
:data:`PAGES` says which table each holds (:mod:`docsgen.tables`). The pictures are :mod:`docsgen.pictures`'.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from dashboards import alerts, needs, traceql
from docsgen import pictures, sections, tables

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

PAGES: dict[str, dict[str, Callable[[], str]]] = {
    "reference/settings.md": {
        "settings": tables.settings_table,
        "settings-environment": tables.environment_settings,
        "settings-sdk": tables.sdk_settings,
    },
    "reference/names.md": {
        "metrics": tables.metrics,
        "spans": tables.spans,
        "events": tables.events,
        "attributes": tables.attributes,
    },
    "reference/error-types.md": {"error-types": tables.error_types},
    "guide/steps.md": {"steps": tables.steps},
    "dashboards.md": {
        "needs": needs.markdown_table,
        "alerts": alerts.markdown_table,
        "traceql-catalog": partial(traceql.markdown_table, traceql.load()),
        "panels": tables.panels,
    },
    "guide/cli.md": {"cli": tables.cli_reference},
    "benchmarks.md": {"overhead": tables.overhead_figures, "integrations": tables.integration_figures},
}
"""Page under docs/ → its generated sections: marker name → the table's builder."""


def _shown(path: Path, docs: Path) -> str:
    """``path`` as the messages name it: from the repository root (or the docs folder's parent)."""
    for base in (ROOT, docs.parent):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return str(path)


def outputs(docs: Path = DOCS) -> tuple[dict[Path, str], list[str]]:
    """Every generated file with the content it should have, and the pages whose markers are missing."""
    files: dict[Path, str] = {}
    problems: list[str] = []
    for page, built in PAGES.items():
        path = docs / page
        try:
            text = path.read_text(encoding="utf-8")
            generated = {name: sections.relink(build(), page) for name, build in built.items()}
            files[path] = sections.replace(text, generated)
        except FileNotFoundError:
            problems.append(f"{_shown(path, docs)} (missing)")
        except sections.MissingMarker as exc:
            problems.append(f"{_shown(path, docs)} ({exc})")
    files.update(pictures.outputs())
    return files, problems


def stale(docs: Path = DOCS) -> list[str]:
    """What differs from what the code builds; empty when everything is current."""
    files, problems = outputs(docs)
    return [_shown(path, docs) for path, content in files.items()
            if not path.exists() or path.read_text(encoding="utf-8") != content] + problems


def write(docs: Path = DOCS) -> list[str]:
    """Write what is out of date; returns the problems that writing cannot mend (missing pages or markers)."""
    files, problems = outputs(docs)
    for path, content in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            print(f"wrote {_shown(path, docs)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docsgen", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report what is out of date, change nothing")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)  # the tests' copy of docs/
    args = parser.parse_args(argv)
    if args.check:
        found = stale(args.docs)
        for line in found:
            print(f"out of date: {line}", file=sys.stderr)
        if found:
            print("run: python -m docsgen", file=sys.stderr)
        return 1 if found else 0
    problems = write(args.docs)
    for line in problems:
        print(f"cannot write: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
