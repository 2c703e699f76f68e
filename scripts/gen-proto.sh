#!/usr/bin/env bash
# Regenerates the Python stubs for proto/kumo/v1 into OUT (default: proto/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-proto}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out/kumo/v1"
"$py" -m grpc_tools.protoc -Iproto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/kumo/v1/*.proto
