"""Test-session settings: one BLAS thread per process. The fits' many small L-BFGS-B problems only lose to
thread hand-offs on a shared 2-core machine (measured 2-5x slower with OpenBLAS's default threading)."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # numpy/scipy only; torch threads are set per test
    os.environ.setdefault(_var, "1")
