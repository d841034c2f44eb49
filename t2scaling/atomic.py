"""Atomic outputs: a workflow never sees a half-written file or checkpoint dir, even after a kill."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

# mkstemp/mkdtemp make 0600/0700 temps; outputs get what open()/os.makedirs would give, so collaborators on a
# shared filesystem can read them. Reading the umask means setting it, which is process-wide and not
# thread-safe: done once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temp path beside `path`; on success it is renamed onto `path`, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(out_dir):
    """Yield a temp dir beside `out_dir`; on success it replaces `out_dir` (`replace_dir`), on failure removed."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.", suffix=".tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a no-op after the rename


def replace_dir(tmp_dir, out_dir):
    """Move a fully written `tmp_dir` onto `out_dir` (same filesystem), replacing any earlier version."""
    if os.path.exists(out_dir):
        os.replace(out_dir, tmp_dir + ".old")
    os.replace(tmp_dir, out_dir)
    shutil.rmtree(tmp_dir + ".old", ignore_errors=True)
