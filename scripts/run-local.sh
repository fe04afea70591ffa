#!/usr/bin/env bash
# Install everything and run the reference app locally: vLLM (CPU build, tiny model unless
# RAGOTEL_MODEL is set), the FAISS retriever, the chat API, Prometheus, Alertmanager and a node
# exporter; ask sample questions and print the answers, one request's trace as a waterfall, and where
# to look. Ctrl-C stops it all.
#   scripts/run-local.sh --once      # print and exit instead of serving
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh app
scripts/install_vllm.sh
if ! { command -v prometheus && command -v prometheus-alertmanager && command -v prometheus-node-exporter; } >/dev/null \
    && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "run-local: installing Prometheus, Alertmanager and the node exporter (Debian packages)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      prometheus prometheus-alertmanager prometheus-node-exporter; } >/dev/null 2>&1 \
    || echo "run-local: could not install them; continuing without what is missing"
fi
exec .venv/bin/python -m examples.reference_app.run_local "$@"
