"""Test-session settings: one BLAS thread per process. The fits' many small L-BFGS-B problems only lose to
thread hand-offs on a shared 2-core machine (measured 2-5x slower with OpenBLAS's default threading).
And the smoke run of the workflow, shared by the workflow tests and the SLURM test (its local reference)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = ["Snakefile", "config.yaml", "rules", "workflow_scripts", "envs", "profiles", "report", "configs",
            "t2scaling", "data"]

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # numpy/scipy only; torch threads are set per test
    os.environ.setdefault(_var, "1")


def copy_workflow(root):
    """A private copy of the workflow (what a user's checkout holds) under root."""
    for name in WORKFLOW:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
    return root


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """A private copy of the workflow with the smoke experiment run to completion on this machine."""
    root = copy_workflow(tmp_path_factory.mktemp("workflow"))
    start = time.time()
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "configs/smoke.yaml"],
                         cwd=root, capture_output=True, text=True)
    if run.returncode != 0:
        raise AssertionError(f"smoke run failed:\n{run.stdout[-4000:]}\n{run.stderr[-6000:]}")
    print(f"smoke run: {time.time() - start:.0f} s")
    return root
