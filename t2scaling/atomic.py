"""Atomic outputs: a workflow never sees a half-written file or checkpoint dir, even after a kill."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temp path beside `path`; on success it is renamed onto `path`, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def replace_dir(tmp_dir, out_dir):
    """Move a fully written `tmp_dir` onto `out_dir` (same filesystem), replacing any earlier version."""
    if os.path.exists(out_dir):
        os.replace(out_dir, tmp_dir + ".old")
    os.replace(tmp_dir, out_dir)
    shutil.rmtree(tmp_dir + ".old", ignore_errors=True)
