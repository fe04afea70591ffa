#!/usr/bin/env bash
# Arize Phoenix (PyPI `arize-phoenix`, pinned), the OpenInference viewer tests/stack/test_phoenix.py sends
# the reference app's spans to, in a virtualenv of its own (its dependency tree is not the project's).
# After the install it runs offline: PHOENIX_HOST=127.0.0.1 var/tools/phoenix-venv/bin/phoenix serve
# (UI, OTLP/HTTP /v1/traces and REST /v1/projects/.../spans on :6006). Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PHOENIX_VERSION="20.26.1"
PHOENIX_VENV="var/tools/phoenix-venv"
installed() {
  "$PHOENIX_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("arize-phoenix"))' 2>/dev/null
}
if [[ "$(installed)" == "$PHOENIX_VERSION" ]]; then
  exit 0
fi
echo "install_phoenix: installing arize-phoenix $PHOENIX_VERSION (PyPI) into $PHOENIX_VENV"
PYTHON="${RAGOTEL_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
started=$SECONDS
rm -rf "$PHOENIX_VENV"
"$PYTHON" -m venv "$PHOENIX_VENV"
"$PHOENIX_VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
"$PHOENIX_VENV/bin/python" -m pip install --quiet "arize-phoenix==$PHOENIX_VERSION" 2>&1 \
  | grep -v "is ignored: it is neither" || true
[[ "$(installed)" == "$PHOENIX_VERSION" ]]   # fails loudly if the install did not work
echo "install_phoenix: done in $((SECONDS - started)) s"
