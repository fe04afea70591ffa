"""Generated sections of hand-written pages, between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``.

A page keeps its prose by hand; what lies between a pair of markers is replaced by what the code builds. Links
in generated content are written relative to ``docs/`` (``guide/cost.md``) and made relative to the page they
land on (``../guide/cost.md`` from ``reference/names.md``), so one table can go on any page.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

# A Markdown link's target that is a path inside the site: not a URL, an anchor on the same page or absolute.
_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s#]+)(#[^)\s]*)?\)")


class MissingMarker(ValueError):
    """A page lacks the begin or end marker of a section the code generates."""


def markers(name: str) -> tuple[str, str]:
    """The begin and end marker lines of section ``name``."""
    return f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"


def relink(content: str, page: str) -> str:
    """``content``'s links, written relative to ``docs/``, made relative to ``page`` (a path under ``docs/``)."""
    here = posixpath.dirname(page) or "."

    def fix(found: re.Match[str]) -> str:
        return f"]({posixpath.relpath(found.group(1), here)}{found.group(2) or ''})"

    return _LINK.sub(fix, content)


def replace(text: str, sections: Mapping[str, str]) -> str:
    """``text`` with the content between each section's markers replaced; :class:`MissingMarker` if one is absent."""
    for name, content in sections.items():
        begin, end = markers(name)
        start = text.find(begin)
        stop = text.find(end, start + len(begin)) if start >= 0 else -1
        if start < 0 or stop < 0:
            raise MissingMarker(f"no {begin.strip()} … {end} pair")
        text = text[:start + len(begin)] + content + text[stop:]
    return text
