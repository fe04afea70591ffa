"""Every fenced code block the site shows runs, parses, or says it is a fragment.

The blocks are those of ``docs/**/*.md`` and of the files the pages include with ``pymdownx.snippets``
(``--8<-- "deploy/README.md:3:"``), found the way MkDocs finds them (``tests/docs/blocks.py``):

- a ``python`` block runs as a script, each in its own process (cwd a temporary directory, ``PYTHONPATH`` the
  repository) with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at ragotel's local OTLP receiver, and must exit 0;
- a ``yaml``, ``json`` or ``toml`` block must parse;
- any other block (a shell command, an output sample, a block with no language) must be marked as a fragment:
  ``<!-- fragment -->`` on the line directly before its opening fence. A marked block is not run or parsed.

Each test is named after the block, ``source:line`` of its opening fence (``deploy/README.md:410`` for a block
a page includes).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markdown
import pytest
import yaml
from pymdownx.superfences import highlight_validator

from ragotel.cli.receiver import OtlpReceiver
from tests.docs.blocks import FRAGMENT_MARKER, Block, Line, expand_snippets, find_blocks, scan, scan_page

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
# The README's blocks are held to the site's rule too, except its first: the two commands a fresh clone runs
# (install and run the reference app; install and run the tests), which test_the_readme_opens_with_the_two_commands
# checks against the scripts and CI instead.
BLOCKS = scan(DOCS, ROOT, [*DOCS.rglob("*.md"), README])
COMMANDS = next(b for b in BLOCKS if b.source == "README.md")

PYTHON = {"python", "py", "python3"}
PARSERS: dict[str, Callable[[str], object]] = {
    "yaml": lambda text: list(yaml.safe_load_all(text)),
    "yml": lambda text: list(yaml.safe_load_all(text)),
    "json": json.loads,
    "toml": tomllib.loads,
}
BLOCK_TIMEOUT_S = 60
# The scripts spend their time importing (torch, LangChain, LlamaIndex, the vector databases' clients): one per
# core. With 2 cores the 16 blocks of the site took ~30 s in all, the integration pages' the longest (5-10 s each).
WORKERS = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))

RUNNABLE = [b for b in BLOCKS if b.problem is None and not b.fragment and b.lang in PYTHON]
PARSEABLE = [b for b in BLOCKS if b.problem is None and not b.fragment and b.lang in PARSERS]


# -- the scanner, checked on its own


def _lines(text: str, source: str = "page.md") -> list[Line]:
    return [Line(t, source, n) for n, t in enumerate(textwrap.dedent(text).split("\n"), start=1)]


def test_fences_in_a_list_are_found_dedented_with_their_line() -> None:
    blocks = find_blocks(_lines("""\
        1. Install:

            <!-- fragment -->
            ```bash
            pip install ragotel
            ```

        2. Configure:

            ```python
            import ragotel

            ragotel.configure()
            ```
        """), "page.md")
    assert [(b.line, b.lang, b.fragment, b.problem) for b in blocks] == [
        (4, "bash", True, None), (10, "python", False, None)]
    assert blocks[1].code == "import ragotel\n\nragotel.configure()\n"


@pytest.mark.parametrize(("header", "lang"), [
    ("```python", "python"),
    ('```python title="app.py"', "python"),
    ("``` python", "python"),
    ('```{.python title="app.py"}', "python"),
    ("```{ .yaml #config }", "yaml"),
    ("```Python hl_lines=\"2\"", "python"),
    ("~~~toml", "toml"),
    ("```", ""),
])
def test_the_language_is_read_from_the_header(header: str, lang: str) -> None:
    [block] = find_blocks(_lines(f"{header}\nx = 1\n{header[:3]}\n"), "page.md")
    assert (block.lang, block.problem, block.code) == (lang, None, "x = 1\n")


def test_a_longer_fence_holds_shorter_ones() -> None:
    [block] = find_blocks(_lines("""\
        ````markdown
        ```python
        x = 1
        ```
        ````
        """), "page.md")
    assert (block.lang, block.code) == ("markdown", "```python\nx = 1\n```\n")


@pytest.mark.parametrize(("text", "problem"), [
    ("```python\nx = 1\n", "never closed"),
    ("```python\nx = 1\n````\n", "never closed"),  # superfences closes only with the same fence
    ("- item\n\n    ```python\n    x = 1\n  y = 2\n    ```\n", "indented less than its fence"),
    ("```text some words\nx\n```\n", "fence header"),
])
def test_a_block_superfences_would_not_render_is_a_problem(text: str, problem: str) -> None:
    blocks = find_blocks(_lines(text), "page.md")
    assert blocks and problem in str(blocks[0].problem)


def test_only_the_line_right_before_the_fence_marks_a_fragment() -> None:
    blocks = find_blocks(_lines(f"{FRAGMENT_MARKER}\n\n```bash\nls\n```\n\n  {FRAGMENT_MARKER}\n  ```\n  out\n  ```\n"),
                         "page.md")
    assert [b.fragment for b in blocks] == [False, True]


def test_snippets_are_included_with_their_own_lines(tmp_path: Path) -> None:
    (tmp_path / "inner.md").write_text("```yaml\na: 1\n```\n")
    (tmp_path / "outer.md").write_text(textwrap.dedent("""\
        # Title
        skipped
        <!-- fragment -->
        ```bash
        make
        ```
        --8<-- [start:part]
        ```json
        {"x": 1}
        ```
        --8<-- [end:part]
        --8<-- "inner.md"
        ;--8<-- "escaped.md"
        """))
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(textwrap.dedent("""\
        # Page

        --8<-- "outer.md:3:"

        1. In a list:

            --8<-- "outer.md:part"

        --8<--
        inner.md
        --8<--
        """))
    blocks = scan_page(page, tmp_path)
    assert [(b.id, b.page, b.lang, b.fragment, b.problem) for b in blocks] == [
        ("outer.md:4", "docs/page.md", "bash", True, None),
        ("outer.md:8", "docs/page.md", "json", False, None),
        ("inner.md:1", "docs/page.md", "yaml", False, None),  # outer.md includes it
        ("outer.md:8", "docs/page.md", "json", False, None),  # the section, in the list item
        ("inner.md:1", "docs/page.md", "yaml", False, None),  # the block notation
    ]
    texts = [line.text for line in expand_snippets(_lines(page.read_text(), "docs/page.md"), tmp_path)]
    assert '--8<-- "escaped.md"' in texts and "    {\"x\": 1}" in texts
    assert not any("[start:part]" in text for text in texts)


def test_a_nested_fence_in_a_snippet_is_one_block_of_the_snippet(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(textwrap.dedent("""\
        Write the page like this:

        ````markdown
        <!-- fragment -->
        ```bash
        make docs
        ```
        ````
        """))
    page = tmp_path / "page.md"
    page.write_text('# Page\n\n- A list item:\n\n    --8<-- "guide.md"\n\n```yaml\nk: v\n```\n')
    blocks = scan_page(page, tmp_path)
    assert [(b.id, b.lang, b.fragment, b.problem) for b in blocks] == [
        ("guide.md:3", "markdown", False, None), ("page.md:7", "yaml", False, None)]
    assert blocks[0].code == "<!-- fragment -->\n```bash\nmake docs\n```\n"
    ours = [(b.lang, b.code.strip("\n")) for b in blocks]
    assert ours == superfences_blocks(page.read_text(), base=tmp_path)


def test_a_missing_snippet_is_a_problem(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('--8<-- "nowhere.md"\n')
    [block] = scan_page(page, tmp_path)
    assert block.id == "page.md:0" and "nowhere.md" in str(block.problem)


def superfences_blocks(text: str, base: Path = ROOT) -> list[tuple[str, str]]:
    """The blocks pymdownx.superfences itself finds in a page (snippets included): language and content."""
    found: list[tuple[str, str]] = []

    def keep(src: str, language: str | None, *args: Any, **kwargs: Any) -> str:
        found.append(((language or "").lower(), src.strip("\n")))
        return "<pre></pre>"

    md = markdown.Markdown(
        extensions=["attr_list", "pymdownx.highlight", "pymdownx.superfences", "pymdownx.snippets"],
        extension_configs={
            "pymdownx.superfences": {"custom_fences": [
                {"name": "*", "class": "found", "format": keep, "validator": highlight_validator}]},
            "pymdownx.snippets": {"base_path": [str(base)], "check_paths": True},
        },
    )
    md.convert(text)
    return found


CROSS_CHECK_CASES = [
    "```python\nx = 1\n```\n",
    '```python title="x.py"\nx = 1\n```\n',
    '```{.python title="x"}\nx = 1\n```\n',
    "``` python\nx = 1\n```\n",
    "```text some words\nx = 1\n```\n",
    "```python\nx = 1\n````\n",
    "````markdown\n```python\nx = 1\n```\n````\n",
    "1. step\n\n    ```bash\n    ls\n\n    ls -l\n    ```\n\n2. next\n",
    "1. step\n\n    ```bash\n    ls\n  oops\n    ```\n",
    "```python\nx = 1\n  ```\n```\n",
    "<!-- fragment -->\n```bash\nls\n```\n~~~yaml\na: 1\n~~~\n",
]


@pytest.mark.parametrize("text", CROSS_CHECK_CASES)
def test_the_scanner_finds_what_superfences_finds(text: str) -> None:
    ours = [(b.lang, b.code.strip("\n")) for b in find_blocks(_lines(text), "page.md") if b.problem is None]
    assert ours == superfences_blocks(text)


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_scanner_reads_each_page_as_superfences_does(page: Path) -> None:
    ours = [(b.lang, b.code.strip("\n")) for b in scan_page(page, ROOT) if b.problem is None]
    assert ours == superfences_blocks(page.read_text(encoding="utf-8"))


# -- the blocks of the site


def test_every_fence_renders() -> None:
    problems = [f"{b.where}: {b.problem}" for b in BLOCKS if b.problem]
    assert not problems, "\n".join(problems)


def test_every_other_block_is_a_fragment() -> None:
    unmarked = [f"{b.where}: ```{b.info}" for b in BLOCKS
                if b.problem is None and not b.fragment and b.lang not in PYTHON and b.lang not in PARSERS
                and b is not COMMANDS]
    assert not unmarked, (
        f"blocks that neither run (python) nor parse (yaml, json, toml); put {FRAGMENT_MARKER} on the line right "
        "before each opening fence:\n" + "\n".join(unmarked))


def test_the_readme_opens_with_the_two_commands() -> None:
    """The README's first lines: one command that installs everything and runs the reference app, one that installs
    everything and runs the whole suite, the one CI runs."""
    assert README.read_text().split("\n```", 1)[0].strip() == "# ragotel", "the commands come first"
    commands = [line.split("#", 1)[0].strip() for line in COMMANDS.code.splitlines() if line.strip()]
    assert commands == ["./scripts/run-local.sh", "./scripts/test.sh"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK), f"{command} is not an executable script"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "exec scripts/test.sh" in ci, ".ci/run must run the README's test command"


@pytest.mark.parametrize("block", PARSEABLE, ids=lambda b: b.id)
def test_data_block_parses(block: Block) -> None:
    try:
        PARSERS[block.lang](block.code)
    except Exception as exc:
        pytest.fail(f"{block.where}: the {block.lang} block does not parse: {exc}")


@dataclass(frozen=True)
class Run:
    returncode: int | None  # None: timed out
    stdout: str
    stderr: str
    seconds: float


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(port=0, spans_path=tmp_path_factory.mktemp("otlp") / "spans.jsonl") as running:
        yield running


def _slug(block: Block) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", block.id).strip("-")


def _run(block: Block, workdir: Path, endpoint: str) -> Run:
    script = workdir / f"{_slug(block)}.py"
    script.write_text(block.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RAGOTEL_", "PYTHON"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
               OTEL_SERVICE_NAME=f"docs-{_slug(block)}"[:63])
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, script.name], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Run(None, out, err, BLOCK_TIMEOUT_S)
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def python_runs(request: pytest.FixtureRequest, receiver: OtlpReceiver,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every selected python block, run at once in parallel the first time one test asks."""
    params = [getattr(item, "callspec", None) for item in request.session.items
              if isinstance(item, pytest.Function) and item.originalname == "test_python_block"
              and item.module is request.module]
    selected = [p.params["block"] for p in params if p is not None and isinstance(p.params.get("block"), Block)]
    workdirs = {block.id: tmp_path_factory.mktemp(_slug(block)) for block in selected}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {b.id: pool.submit(_run, b, workdirs[b.id], receiver.endpoint) for b in selected}
        return {block_id: future.result() for block_id, future in futures.items()}


def test_a_script_exports_to_the_receiver(receiver: OtlpReceiver, tmp_path: Path) -> None:
    """The harness itself: a block that configures ragotel without arguments sends its spans to the receiver."""
    block = Block("harness.md", 1, "harness.md", "python", "python", textwrap.dedent("""\
        import ragotel

        telemetry = ragotel.configure()
        with ragotel.retrieval("search", data_source="docs"):
            pass
        telemetry.shutdown()
        """), fragment=False)
    run = _run(block, tmp_path, receiver.endpoint)
    assert run.returncode == 0, run.stderr
    spans = [json.loads(line) for line in receiver.spans_path.read_text().splitlines()]
    assert "docs-harness-md-1" in {span.get("service_name") for span in spans}, spans


# The first test waits for all the scripts, in rounds of WORKERS.
@pytest.mark.timeout(BLOCK_TIMEOUT_S * (math.ceil(len(RUNNABLE) / WORKERS) + 1) + 60)
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_python_block(block: Block, python_runs: dict[str, Run]) -> None:
    run = python_runs[block.id]
    if run.returncode is None:
        pytest.fail(f"{block.where}: still running after {BLOCK_TIMEOUT_S} s (mark it {FRAGMENT_MARKER} if it serves "
                    f"forever)\n--- stdout\n{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-6000:]}")
    assert run.returncode == 0, (
        f"{block.where}: exited {run.returncode}\n--- stdout\n{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-6000:]}")
