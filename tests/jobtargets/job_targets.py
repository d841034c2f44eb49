"""Calls the job-server tests send (imported by the server through PYTHONPATH)."""

import json
import logging
import os
import time


def report(path, marker):
    """Write what the child sees: its pid and parent, working directory, environment and torch threads."""
    import torch

    logging.getLogger("job_targets").info("reporting to %s", path)
    with open(path, "w") as fh:
        json.dump(dict(pid=os.getpid(), ppid=os.getppid(), cwd=os.getcwd(), marker=os.environ.get(marker),
                       threads=torch.get_num_threads()), fh)


def fail(message):
    raise ValueError(message)


def sleep(path, seconds):
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(seconds)


def numerics(path):
    """Write the OpenBLAS thread counts this process runs with and a small fit's result, bit for bit."""
    import ctypes

    import numpy as np
    from scipy.optimize import least_squares

    counts = {}
    for line in open("/proc/self/maps"):
        lib = line.split()[-1]
        for symbol in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                       "openblas_get_num_threads"):
            if "openblas" in lib.rsplit("/", 1)[-1] and hasattr(ctypes.CDLL(lib), symbol):
                counts[lib.rsplit("/", 1)[-1]] = getattr(ctypes.CDLL(lib), symbol)()
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 10, 400)
    y = 3.0 * x ** -0.7 + 0.2 + rng.normal(0, 0.01, x.size)
    fit = least_squares(lambda p: p[0] * x ** -p[1] + p[2] - y, [1.0, 1.0, 0.0])
    a = rng.normal(size=(300, 300))
    with open(path, "w") as fh:
        json.dump(dict(blas_threads=counts, fit=[v.hex() for v in fit.x], product=float((a @ a).sum()).hex()), fh)
