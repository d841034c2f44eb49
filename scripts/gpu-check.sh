#!/usr/bin/env bash
# The GPU check (issue 13 §3; benchmarks/gpu_check.py): bf16 tokens/s and MFU of a ~25M and a ~150M model,
# resume after SIGKILL, DDP through torchrun/nccl (>= 2 GPUs), evaluation and post-training on CUDA vs CPU, peak
# memory vs the estimate. One markdown table on stdout and in $OUT/gpu-check.md (else results/gpu-check.md);
# exits non-zero when a check fails. At most 8 minutes on one H100/H200.
#   bash scripts/gpu-check.sh                          # on a CUDA machine
#   bash scripts/gpu-check.sh --device cpu --quick     # the same path on CPU with tiny models (~1 min)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if ! PY="$(command -v "$PY")"; then
    echo "gpu-check: no ${PYTHON:-.venv/bin/python}; run scripts/setup.sh (with a CUDA torch) or set PYTHON" >&2
    exit 2
fi
# torchrun (the DDP check) from the same environment, and this checkout importable by the child processes.
PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PATH PYTHONPATH
exec "$PY" benchmarks/gpu_check.py "$@"
