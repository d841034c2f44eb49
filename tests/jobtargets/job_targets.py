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
