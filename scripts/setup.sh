#!/usr/bin/env bash
# Create .venv with everything the workflow, the library and the tests need (CPU torch on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
# Pin torch first: an unpinned requirement may pull a multi-GB CUDA build on a CPU machine.
.venv/bin/pip install --quiet "torch==${T2_TORCH_VERSION:-2.13.0}"
.venv/bin/pip install --quiet -e ".[ml,workflow,dev]"
echo "t2scaling: environment ready in .venv"
