"""The GPU check (scripts/gpu-check.sh, benchmarks/gpu_check.py) end to end in its CPU quick mode: every check's
row in the one table, written to $OUT/gpu-check.md, and a zero exit status. The CUDA-only parts (DDP over nccl,
peak CUDA memory) show as skipped rows."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ["train w32-l2", "train w64-l2", "resume after SIGKILL", "ddp torchrun", "evaluate cpu vs cpu",
        "posttrain cpu", "memory w32-l2", "memory w64-l2"]


@pytest.mark.slow
def test_quick_cpu_mode_runs_every_check(tmp_path):
    done = subprocess.run(["bash", "scripts/gpu-check.sh", "--device", "cpu", "--quick"], cwd=REPO,
                          env=os.environ | {"OUT": str(tmp_path), "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    table = (tmp_path / "gpu-check.md").read_text()
    assert table.strip() in done.stdout  # the same table on stdout
    rows = [line.strip("| ").split(" | ") for line in table.splitlines()[4:]]  # after the caption, header, rule
    assert len(rows) == len(ROWS) and all(row[0].startswith(name) for row, name in zip(rows, ROWS)), table
    for row in rows:  # DDP needs 2 GPUs and nccl, the memory check CUDA's allocator
        assert row[-1] == ("skip" if row[0].startswith(("ddp", "memory")) else "pass"), table
