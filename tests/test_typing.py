"""A user's ``mypy --strict`` sees the real signatures of ragotel-decorated functions (``py.typed``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

USER_MODULE = '''
from collections.abc import AsyncIterator, Iterator

import ragotel


@ragotel.retrieval(data_source="faiss")
def search(query: str, k: int = 4) -> list[dict[str, object]]:
    return []


@ragotel.retrieval
async def asearch(query: str) -> list[str]:
    return []


@ragotel.prompt(template="rag-v1")
def build(question: str) -> Iterator[str]:
    yield question


@ragotel.generation(model="tiny")
async def stream(prompt: str) -> AsyncIterator[str]:
    yield prompt


async def use() -> None:
    hits: list[dict[str, object]] = search("q", k=3)
    names: list[str] = await asearch("q")
    parts: list[str] = list(build("q"))
    chunks: list[str] = [c async for c in stream("p")]
    with ragotel.pipeline("chat") as step:
        step.record(chunks=len(hits) + len(names) + len(parts) + len(chunks))
    search(1)  # wrong: an int for a str
    wrong: int = await asearch("q")  # wrong: list[str] is not int
'''


def test_decorated_functions_keep_their_signatures_under_mypy_strict(tmp_path: Path) -> None:
    module = tmp_path / "user_app.py"
    module.write_text(textwrap.dedent(USER_MODULE))
    # Run from outside the repository so ragotel is found as an installed package (PEP 561).
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(module)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    lines = textwrap.dedent(USER_MODULE).splitlines()
    flagged = sorted({int(line.split(":")[1]) for line in errors})
    expected = sorted(n for n, text in enumerate(lines, 1) if "# wrong" in text)
    assert flagged == expected, done.stdout
    assert "missing library stubs or py.typed" not in done.stdout
