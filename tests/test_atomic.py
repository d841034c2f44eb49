"""Atomic outputs (t2scaling.atomic): all or nothing at the final path, no temp left behind, and the permissions a
plain open()/os.makedirs would give (not mkstemp's 0600 / mkdtemp's 0700)."""

import os
import stat

import pytest

from t2scaling import atomic
from t2scaling.atomic import atomic_dir, atomic_file


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_file_success_replaces_an_existing_file(tmp_path):
    path = tmp_path / "sub" / "out.json"
    for text in ("old", "new"):
        with atomic_file(path) as tmp, open(tmp, "w") as f:
            assert os.path.dirname(tmp) == str(path.parent) and tmp.endswith(".tmp")
            f.write(text)
    assert path.read_text() == "new" and os.listdir(path.parent) == ["out.json"]


def test_dir_success_replaces_an_existing_dir(tmp_path):
    out = tmp_path / "ckpt"
    for name in ("old.bin", "new.bin"):
        with atomic_dir(out) as tmp:
            assert os.path.basename(tmp).startswith(".ckpt.") and tmp.endswith(".tmp")
            (out.parent / tmp / name).write_text(name)
    assert os.listdir(tmp_path) == ["ckpt"] and os.listdir(out) == ["new.bin"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failing_body_keeps_the_old_file_and_removes_the_temp(tmp_path, error):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(error):
        with atomic_file(path) as tmp, open(tmp, "w") as f:
            f.write("half")
            raise error
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failing_body_keeps_the_old_dir_and_removes_the_temp(tmp_path, error):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "old.bin").write_text("old")
    with pytest.raises(error):
        with atomic_dir(out) as tmp:
            os.makedirs(os.path.join(tmp, "nested"))
            open(os.path.join(tmp, "nested", "half.bin"), "w").close()
            raise error
    assert os.listdir(tmp_path) == ["ckpt"] and os.listdir(out) == ["old.bin"]


def test_failing_body_with_no_earlier_output_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "out.txt"):
            raise RuntimeError
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "ckpt"):
            raise RuntimeError
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750),
                                                        (0o002, 0o664, 0o775)])
def test_modes_follow_the_umask(tmp_path, monkeypatch, umask, file_mode, dir_mode):
    monkeypatch.setattr(atomic, "_UMASK", umask)  # the module reads the umask once, at import
    with atomic_file(tmp_path / "out.txt"):
        pass
    with atomic_dir(tmp_path / "ckpt"):
        pass
    assert mode(tmp_path / "out.txt") == file_mode and mode(tmp_path / "ckpt") == dir_mode


def test_modes_match_plain_open_and_makedirs(tmp_path):
    with atomic_file(tmp_path / "atomic.txt"):
        pass
    with atomic_dir(tmp_path / "atomic"):
        pass
    open(tmp_path / "plain.txt", "w").close()
    os.makedirs(tmp_path / "plain")
    assert mode(tmp_path / "atomic.txt") == mode(tmp_path / "plain.txt")
    assert mode(tmp_path / "atomic") == mode(tmp_path / "plain")
