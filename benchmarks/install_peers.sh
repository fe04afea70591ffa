#!/usr/bin/env bash
# Install the peers benchmarks/overhead.py --peers times.
#
#   benchmarks/install_peers.sh            one virtualenv, var/peers/one-sdk: ragotel and every peer on ONE
#                                          OpenTelemetry SDK (the pins below resolve together), so the figures
#                                          compare libraries, not SDK versions
#   benchmarks/install_peers.sh --each     each peer in its own virtualenv under var/peers/<lib> with whatever
#                                          SDK it resolves to (the bench extra's ranges)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${RAGOTEL_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [[ "${1:-}" != "--each" ]]; then
  # The newest releases that all accept opentelemetry-sdk 1.45.1, the SDK ragotel's own pins resolve to.
  SET=(opentelemetry-sdk==1.45.1 opentelemetry-api==1.45.1 traceloop-sdk==0.62.4 openlit==1.45.0
       openinference-instrumentation==0.1.72 logfire==5.4.0)
  if [[ ! -x var/peers/one-sdk/bin/python ]]; then
    echo "install_peers: ragotel and ${SET[*]} into var/peers/one-sdk"
    "$PYTHON" -m venv var/peers/one-sdk </dev/null
    var/peers/one-sdk/bin/pip install --quiet "${SET[@]}" -e . </dev/null 2>&1 | grep -v "is ignored: it is neither" || true
  fi
  var/peers/one-sdk/bin/python -c "import importlib.metadata as m; print('install_peers: opentelemetry-sdk', m.version('opentelemetry-sdk'))"
  exit 0
fi

"$PYTHON" - <<'PY' | while read -r lib requirement; do
import tomllib
names = {"traceloop-sdk": "traceloop", "openlit": "openlit", "openinference-instrumentation": "openinference",
         "logfire": "logfire"}
for requirement in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]:
    package = requirement.split(">")[0].split("=")[0].split("<")[0]
    print(names[package], requirement)
PY
  if [[ -x "var/peers/$lib/bin/python" ]]; then
    echo "install_peers: $lib already in var/peers/$lib"
    continue
  fi
  echo "install_peers: $requirement into var/peers/$lib"
  "$PYTHON" -m venv "var/peers/$lib" </dev/null
  "var/peers/$lib/bin/pip" install --quiet "$requirement" </dev/null
done
