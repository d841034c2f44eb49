#!/usr/bin/env bash
# Create .venv with everything the workflow, the library and the tests need (CPU torch on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
# Pin torch first: an unpinned requirement may pull a multi-GB CUDA build on a CPU machine.
.venv/bin/pip install --quiet "torch==${T2_TORCH_VERSION:-2.13.0}"
.venv/bin/pip install --quiet -e ".[ml,workflow,dev]"
# Headless Chromium for the report test (tests/test_workflow.py opens the Snakemake report in a real browser):
# from Debian packages when apt-get is there and we are root; skipped when installed, never fatal (the test is
# skipped without a browser). T2_SKIP_CHROMIUM=1 skips it.
if [ -z "${T2_SKIP_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
            >/dev/null; } || echo "t2scaling: could not install chromium; the report browser test will be skipped" >&2
    else
        echo "t2scaling: chromium not found (install it to run the report browser test)" >&2
    fi
fi
echo "t2scaling: environment ready in .venv"
