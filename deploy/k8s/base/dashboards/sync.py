"""Copy dashboards/generated/*.json next to this file and list them in kustomization.yaml.

kustomize reads only files below a kustomization's directory and has no globs, so the Grafana
dashboards ConfigMap is built from copies kept here. Run after the dashboards are regenerated::

    python deploy/k8s/base/dashboards/sync.py           # copy and rewrite the list
    python deploy/k8s/base/dashboards/sync.py --check   # exit 1 if anything is out of date

Copies of dashboards that no longer exist in dashboards/generated/ are removed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
SOURCE = ROOT / "dashboards" / "generated"
KUSTOMIZATION = HERE / "kustomization.yaml"
BEGIN, END = "    # sync.py: begin\n", "    # sync.py: end\n"


def source_files() -> dict[str, bytes]:
    if not SOURCE.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(SOURCE.glob("*.json"))}


def files_block(names: list[str]) -> str:
    if not names:
        return "    files: []\n"
    return "    files:\n" + "".join(f"      - {name}\n" for name in names)


def render_kustomization(names: list[str]) -> str:
    text = KUSTOMIZATION.read_text()
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + files_block(names) + text[stop:]


def problems() -> list[str]:
    """What is out of date, empty when the copies and the list match dashboards/generated/."""
    wanted = source_files()
    found: list[str] = []
    for name, content in wanted.items():
        copy = HERE / name
        if not copy.exists() or copy.read_bytes() != content:
            found.append(f"{name}: copy missing or different from dashboards/generated/{name}")
    found += [f"{p.name}: no longer in dashboards/generated/" for p in HERE.glob("*.json") if p.name not in wanted]
    if render_kustomization(sorted(wanted)) != KUSTOMIZATION.read_text():
        found.append("kustomization.yaml: files list differs from dashboards/generated/*.json")
    return found


def sync() -> None:
    wanted = source_files()
    for stale in HERE.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, content in wanted.items():
        (HERE / name).write_bytes(content)
    KUSTOMIZATION.write_text(render_kustomization(sorted(wanted)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        for line in found:
            print(line, file=sys.stderr)
        return 1 if found else 0
    sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
