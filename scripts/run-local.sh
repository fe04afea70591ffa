#!/usr/bin/env bash
# Install ragotel and run the quickstart RAG pipeline against a local OTLP receiver; prints the
# answers, a terminal waterfall of the last trace and where to look next.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh test
exec .venv/bin/python examples/quickstart.py
