"""The fenced code blocks of the documentation site, as MkDocs renders them: where each one is and what it holds.

The site's pages include other files with ``pymdownx.snippets`` (``--8<-- "deploy/README.md:3:"``), so the pages
are read the way that extension reads them first: each snippet line replaced by the lines it names, recursively,
every line keeping the file and line number it came from. The fences are then found the way
``pymdownx.superfences`` finds them: an opening fence of three or more backticks or tildes at any indentation
(inside list items too), with a language (`````python``, ````` python``, `````{.python title="x"}``) and options,
closed by the same fence at the same indentation; a content line indented less than its fence, or a fence never
closed, leaves the block out of the page (superfences abandons it), which :func:`scan` reports as a problem.

A block is a fragment when the line directly before its opening fence is ``<!-- fragment -->`` (an HTML comment:
invisible on the site and on GitHub).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FRAGMENT_MARKER",
    "Block",
    "Line",
    "SnippetError",
    "expand_snippets",
    "find_blocks",
    "scan",
    "scan_page",
]

FRAGMENT_MARKER = "<!-- fragment -->"

# pymdownx.snippets' notation: an inline snippet (`--8<-- "path"`), a block marker (`--8<--` alone, paths on the
# lines up to the next one) and section markers (`--8<-- [start:name]`); a leading `;` escapes any of them.
_INLINE = re.compile(
    r"""^(?P<space>[ \t]*)(?P<escape>;*)-+8<-+[ \t]+(?P<snippet>"(?:\\"|[^"\n\r])+?"|'(?:\\'|[^'\n\r])+?')\r?$"""
)
_BLOCK = re.compile(r"^(?P<space>[ \t]*)(?P<escape>;*)-+8<-+\r?$")
_SECTION = re.compile(
    r"(?i)^(?P<pre>.*?)(?<!;)(?P<escape>;*)(?P<marker>-+8<-+[ \t]+)"
    r"(?P<section>\[[ \t]*(?P<type>start|end)[ \t]*:[ \t]*(?P<name>[a-z][-_0-9a-z]*)[ \t]*\])(?P<post>.*?)$"
)
# A snippet's target: the path, then line ranges (`:3:`, `:1:5,8:9`) or a section (`:name`).
_TARGET = re.compile(
    r"(?i)(.*?)(?:((?::-?[0-9]*){1,2}(?:(?:,(?=[-0-9:])-?[0-9]*)(?::-?[0-9]*)?)*)|(:[a-z][-_0-9a-z]*))?$"
)

# pymdownx.superfences' opening fence, after the indentation.
_FENCE_START = re.compile(
    r"""(?x)
    (?P<fence>~{3,}|`{3,})
    (?:[ \t]*\.?(?P<lang>[\w#.+-]+)(?=[\t ]|$))?
    (?:
        [ \t]*(\{(?P<attrs>[^\n]*)\}) |
        (?P<options>(?:(?:[ \t]*[a-zA-Z][a-zA-Z0-9_]*(?:=(?P<quot>"|').*?(?P=quot))?)(?=[\t ]|$))+) |
        (?P<unrecognized>(?:([ \t]*[^\s]+)(?=[\t ]|$))+)
    )?[ \t]*$
    """
)
_ATTR_CLASS = re.compile(r"(?:^|[ \t])\.([\w#.+-]+)")
_OPTION = re.compile(r"""(?P<key>[a-zA-Z][a-zA-Z0-9_]*)(?:=(?P<quot>"|')(?P<value>.*?)(?P=quot))?""")
# The options pymdownx.highlight takes in a fence's header; any other option (outside `{...}`) makes superfences
# reject the fence, and the block is not rendered as code.
_HIGHLIGHT_OPTIONS = {
    "hl_lines": re.compile(r"^\d+(?:-\d+)?(?:[ \t]+\d+(?:-\d+)?)*$"),
    "linenums": re.compile(r"[\d]+(?:[ \t]+[\d]+)?(?:[ \t]+[\d]+)?"),
    "title": None,
    "title_mode": None,
}


class SnippetError(Exception):
    """A snippet names a file (or a section of one) that is not there: MkDocs fails on it too (check_paths)."""


@dataclass(frozen=True)
class Line:
    """One line of a page as rendered, with the file and 1-based line number it comes from."""

    text: str
    source: str
    number: int


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is written (``source:line``, the opening fence), the page that shows it."""

    source: str
    line: int
    page: str
    lang: str
    info: str
    code: str
    fragment: bool
    problem: str | None = None

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def where(self) -> str:
        return self.id if self.source == self.page else f"{self.id} (included in {self.page})"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _read(path: Path, root: Path) -> list[Line]:
    text = path.read_text(encoding="utf-8")
    source = _relative(path, root)
    return [Line(t, source, n) for n, t in enumerate(text.split("\n") if text else [], start=1)]


def _select(lines: list[Line], spec: str, ranges: str | None, section: str | None) -> list[Line]:
    if ranges:
        total = len(lines)
        chosen: list[Line] = []
        for part in ranges[1:].split(","):
            bounds = part.split(":")
            start = int(bounds[0]) if bounds[0] else None
            end = int(bounds[1]) if len(bounds) > 1 and bounds[1] else None
            if start is not None:
                start = min(max(total + start, 0), total) if start < 0 else max(0, start - 1)
            if end is not None and end < 0:
                end = min(max(total + 1 + end, 0), total)
            chosen.extend(lines[start:end])
        return chosen
    if section:
        return _section(lines, spec, section)
    return lines


def _section(lines: list[Line], spec: str, name: str) -> list[Line]:
    chosen: list[Line] = []
    inside = found = False
    for line in lines:
        m = _SECTION.match(line.text) if "8<-" in line.text else None
        if m and m["escape"]:
            text = m["pre"] + m["escape"].replace(";", "", 1) + m["marker"] + m["section"] + m["post"]
            line = Line(text, line.source, line.number)
        elif m and m["name"] == name:
            if m["type"] == "start":
                inside = found = True
                continue
            break
        elif m:
            continue
        if inside:
            chosen.append(line)
    if not found:
        raise SnippetError(f"snippet {spec!r}: section {name!r} not found")
    return chosen


def _include(spec: str, space: str, root: Path, seen: frozenset[str]) -> list[Line]:
    m = _TARGET.match(spec)
    assert m is not None  # the pattern matches any string
    path_text, ranges, section = m[1].strip(), m[2], m[3] and m[3][1:]
    path = (root / path_text).resolve()
    if not path_text or not path.is_file() or not path.is_relative_to(root.resolve()):
        raise SnippetError(f"snippet {spec!r}: no such file under {root}")
    if str(path) in seen:  # pymdownx.snippets skips a file already being included
        return []
    lines = _select(_read(path, root), spec, ranges, section)
    expanded = expand_snippets(lines, root, seen | {str(path)}, is_section=section is not None)
    return [Line(space + line.text, line.source, line.number) for line in expanded]


def expand_snippets(
    lines: Sequence[Line], root: Path, seen: frozenset[str] = frozenset(), *, is_section: bool = False
) -> list[Line]:
    """Replace each snippet line with the lines it includes, indented like it; drop the section markers."""
    out: list[Line] = []
    in_block = False
    for line in lines:
        text = line.text.rstrip("\r")
        m = _INLINE.match(text) or _BLOCK.match(text)
        if m and m["escape"]:
            out.append(Line(text.replace(";", "", 1), line.source, line.number))
            continue
        if m and m.re is _BLOCK:
            in_block = not in_block
            continue
        if in_block:
            if m:  # inline notation directly in a block is ignored
                continue
            path = text.strip()
            if not path:
                out.append(Line("", line.source, line.number))
            elif not path.startswith(";"):
                space = text[: len(text) - len(text.lstrip())]
                out.extend(_include(path, space, root, seen))
            continue
        if m:
            spec = m["snippet"][1:-1].strip()
            if not spec.startswith(";"):
                out.extend(_include(spec, m["space"], root, seen))
            continue
        if not is_section and "8<-" in text and (s := _SECTION.match(text)):
            if not s["escape"]:
                continue
            text = s["pre"] + s["escape"].replace(";", "", 1) + s["marker"] + s["section"] + s["post"]
        out.append(Line(text, line.source, line.number))
    return out


def _language(m: re.Match[str]) -> str:
    if m["lang"]:
        return m["lang"].lower()
    if m["attrs"] and (cls := _ATTR_CLASS.search(m["attrs"])):
        return cls[1].lower()
    return ""


def _rejected(m: re.Match[str]) -> str | None:
    """Why superfences rejects this opening fence, or ``None`` when it takes it."""
    if m["unrecognized"]:
        return "not a language, options or {attributes}"
    for option in _OPTION.finditer(m["options"] or ""):
        key, value = option["key"], option["value"] if option["value"] is not None else option["key"]
        if key not in _HIGHLIGHT_OPTIONS:
            return f"unknown option {key!r}; attributes go in {{...}}"
        check = _HIGHLIGHT_OPTIONS[key]
        if check is not None and not check.match(value):
            return f"bad value {value!r} for {key!r}"
    return None


def find_blocks(lines: Sequence[Line], page: str) -> list[Block]:
    """The fenced blocks in ``lines`` (snippets already expanded), in order; ``page`` names where they show."""
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        text = lines[i].text.rstrip("\r")
        indent = text[: len(text) - len(text.lstrip(" \t"))]
        m = _FENCE_START.match(text, len(indent))
        if m is None:
            i += 1
            continue
        opening = lines[i]
        fence = m["fence"]
        lang = _language(m)
        info = text[len(indent) + len(fence):].strip()
        previous = lines[i - 1].text.strip() if i > 0 else ""
        fragment = previous == FRAGMENT_MARKER
        if (rejected := _rejected(m)) is not None:
            # superfences leaves the line as text and looks for a fence again on the next one
            blocks.append(Block(opening.source, opening.number, page, lang, info, "", fragment,
                                f"superfences does not take the fence header {info!r} ({rejected}), "
                                "so the block is not rendered as code"))
            i += 1
            continue
        end = re.compile(re.escape(fence) + r"[ \t]*$")
        content: list[str] = []
        problem: str | None = None
        j = i + 1
        while True:
            if j >= len(lines):
                problem = f"the {fence} fence is never closed"
                break
            line = lines[j].text.rstrip("\r")
            if not line.strip():
                content.append("")
            elif not line.startswith(indent):
                problem = (f"line {lines[j].source}:{lines[j].number} is indented less than its fence, "
                           "so the block is not rendered as code")
                break
            elif end.match(line, len(indent)) and not line[len(indent):].startswith((" ", "\t")):
                break
            else:
                content.append(line[len(indent):])
            j += 1
        blocks.append(Block(opening.source, opening.number, page, lang, info, "\n".join(content) + "\n",
                            fragment, problem))
        # superfences goes on after an abandoned fence's opening line; after a closed one, past its closing line
        i = i + 1 if problem else j + 1
    return blocks


def scan_page(page: Path, root: Path) -> list[Block]:
    """The blocks one page shows, its snippets included; a missing snippet is one block with a problem."""
    source = _relative(page, root)
    try:
        lines = expand_snippets(_read(page, root), root, frozenset({str(page.resolve())}))
    except SnippetError as exc:
        return [Block(source, 0, source, "", "", "", False, str(exc))]
    return find_blocks(lines, source)


def scan(docs: Path, root: Path, pages: Iterable[Path] | None = None) -> list[Block]:
    """Every block of every page under ``docs`` (or of ``pages``), each once even when two pages include it."""
    found: dict[str, Block] = {}
    for page in sorted(pages if pages is not None else docs.rglob("*.md")):
        for block in scan_page(page, root):
            found.setdefault(block.id, block)
    return list(found.values())
