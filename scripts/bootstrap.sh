#!/usr/bin/env bash
# Create .venv and install ragotel with the given extras (default: test). Idempotent and quick when
# nothing changed. Used by run-local.sh and test.sh; safe to source-free call from anywhere.
#
#   scripts/bootstrap.sh [EXTRAS]       e.g. scripts/bootstrap.sh test,app
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

EXTRAS="${1:-test}"
PYTHON="${RAGOTEL_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
STAMP=".venv/.ragotel-$(echo "$EXTRAS" | tr ',' '-')-$( (cat pyproject.toml; "$PYTHON" --version) | sha1sum | cut -c1-12)"

if [[ -f "$STAMP" ]]; then
  exit 0
fi
echo "bootstrap: installing ragotel[$EXTRAS] into .venv"
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
if [[ ",$EXTRAS," == *",app,"* || ",$EXTRAS," == *",test,"* ]]; then
  # The reference app's embedding model needs torch; the CPU build is enough and far smaller.
  .venv/bin/python -m pip install --quiet "${RAGOTEL_TORCH:-torch==2.13.0}" 2>&1 | grep -v "is ignored: it is neither" || true
fi
.venv/bin/python -m pip install --quiet -e ".[$EXTRAS]" 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import ragotel" # fails loudly if the install did not work
rm -f .venv/.ragotel-"$(echo "$EXTRAS" | tr ',' '-')"-*
touch "$STAMP"
