#!/usr/bin/env bash
# Install the peers benchmarks/overhead.py --peers times, each in its own virtualenv under var/peers/
# (their OpenTelemetry pins do not resolve together). Reads the list from pyproject.toml's bench extra.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${RAGOTEL_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
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
