"""The Snakemake workflow: a smoke run end to end, then exact job counts of dry runs for each kind of change
(DESIGN.md §4.2's incremental contract), the paper-scale DAG, the SLURM profile, lint and formatting."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = ["Snakefile", "config.yaml", "rules", "workflow_scripts", "schemas", "envs", "profiles", "report",
            "configs", "t2scaling"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.slow


def snakemake(root, *args, check=True):
    run = subprocess.run([*SNAKEMAKE, *args], cwd=root, capture_output=True, text=True)
    if check and run.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{run.stdout[-4000:]}\n{run.stderr[-6000:]}")
    return run


def job_counts(root, config_path):
    """Jobs per rule that a dry run would execute ({} when nothing is to be done)."""
    run = snakemake(root, "-n", "--configfile", str(config_path))
    text = run.stdout + run.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M))
    counts.pop("total", None)
    counts.pop("job", None)
    return {rule: int(n) for rule, n in counts.items()}


def write_config(root, name, mutate):
    config = yaml.safe_load((root / "configs" / "smoke.yaml").read_text())
    mutate(config)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))  # sorts keys: params must not depend on key order
    return path


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A private copy of the workflow with the smoke experiment run to completion."""
    root = tmp_path_factory.mktemp("workflow")
    for name in WORKFLOW:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
    start = time.time()
    snakemake(root, "--cores", "2", "--configfile", "configs/smoke.yaml")
    print(f"smoke run: {time.time() - start:.0f} s")
    return root


SMOKE_TASKS, SMOKE_LAWS, SMOKE_CELLS = 2, 3, 9
DOWNSTREAM_OF_ONE_TASK = {"collect": 1, "fit": 3, "frontier": 3, "plot_fit": 3, "plot_frontier": 1}
MACRO = {"macro_frontier": 3, "plot_macro_frontier": 1, "all": 1}


def test_smoke_run_produces_every_output(smoke):
    for task in ("knowledge", "arithmetic"):
        obs = pd.read_parquet(smoke / f"results/tasks/{task}/observations.parquet")
        assert obs["checkpoint"].nunique() == SMOKE_CELLS
        for law in ("chinchilla", "approach1", "approach2"):
            assert (smoke / f"results/tasks/{task}/fits/{law}.json").stat().st_size > 0
            frontier = pd.read_csv(smoke / f"results/tasks/{task}/frontier/{law}.csv")
            assert len(frontier) > 0
            assert (smoke / f"results/tasks/{task}/plots/fit_{law}.png").stat().st_size > 0
    assert (smoke / "results/pretrain/chinchilla.json").exists()
    assert (smoke / "results/macro/plots/frontier.png").exists()
    for log in (smoke / "logs").rglob("*.log"):
        assert log.stat().st_size > 0, f"empty log {log}"


def test_nothing_changed_schedules_nothing(smoke):
    assert job_counts(smoke, "configs/smoke.yaml") == {}


def test_adding_a_cell_schedules_its_training_evaluations_and_downstream(smoke):
    config = write_config(smoke, "cell", lambda c: c["grid"].setdefault("extra_cells", []).append(
        {"width": 32, "depth": 1, "tokens": 20000}))
    assert job_counts(smoke, config) == {
        "train": 1, "evaluate": SMOKE_TASKS, "collect": SMOKE_TASKS, "fit": SMOKE_TASKS * SMOKE_LAWS,
        "frontier": SMOKE_TASKS * SMOKE_LAWS, "plot_fit": SMOKE_TASKS * SMOKE_LAWS, "plot_frontier": SMOKE_TASKS,
        "pretrain_losses": 1, "pretrain_fit": 1, **MACRO,
    }


def test_adding_a_task_schedules_only_that_task(smoke):
    config = write_config(smoke, "task", lambda c: c["tasks"].update(spatial={"kind": "spatial"}))
    assert job_counts(smoke, config) == {"task_table": 1, "evaluate": SMOKE_CELLS, **DOWNSTREAM_OF_ONE_TASK, **MACRO}


def test_changing_a_fit_option_refits_only_the_laws_that_read_it(smoke):
    config = write_config(smoke, "restarts", lambda c: c["fits"].update(restarts=11))
    refit = SMOKE_TASKS * 2  # approach1 and approach2 read `restarts`; chinchilla does not
    assert job_counts(smoke, config) == {
        "fit": refit, "frontier": refit, "plot_fit": refit, "plot_frontier": SMOKE_TASKS,
        "macro_frontier": 2, "plot_macro_frontier": 1, "all": 1,
    }


def test_editing_fit_code_refits_without_training_or_evaluating(smoke):
    path = smoke / "t2scaling" / "fit.py"
    original, stat = path.read_text(), path.stat()
    try:
        path.write_text(original + "\n# an edit\n")
        assert job_counts(smoke, "configs/smoke.yaml") == {
            "fit": SMOKE_TASKS * SMOKE_LAWS, "pretrain_fit": 1, "frontier": SMOKE_TASKS * SMOKE_LAWS,
            "plot_fit": SMOKE_TASKS * SMOKE_LAWS, "plot_frontier": SMOKE_TASKS, **MACRO,
        }
    finally:
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_adding_an_imported_checkpoint_enters_at_evaluation(smoke):
    imported = smoke / "imported" / "tiny"
    if not imported.exists():
        shutil.copytree(next((smoke / "results" / "checkpoints").iterdir()), imported)
    config = write_config(smoke, "imported", lambda c: c.update(
        imported_checkpoints=[{"name": "tiny-import", "path": str(imported), "N": 30000, "D": 50000}]))
    assert job_counts(smoke, config) == {
        "evaluate": SMOKE_TASKS, "collect": SMOKE_TASKS, "fit": SMOKE_TASKS * SMOKE_LAWS,
        "frontier": SMOKE_TASKS * SMOKE_LAWS, "plot_fit": SMOKE_TASKS * SMOKE_LAWS, "plot_frontier": SMOKE_TASKS,
        **MACRO,
    }


def test_paper_scale_dry_run_is_fast_and_complete(tmp_path):
    start = time.time()
    run = subprocess.run([*SNAKEMAKE, "-n", "--configfile", str(REPO / "configs/paper.yaml"), "-s",
                          str(REPO / "Snakefile"), "--directory", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO)
    seconds = time.time() - start
    assert run.returncode == 0, run.stderr[-3000:]
    table = (run.stdout + run.stderr).split("Job stats:", 1)[1]
    counts = {r: int(n) for r, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    assert counts["train"] == 109
    assert counts["evaluate"] == 109 * 8
    assert seconds <= 10, f"paper-scale dry run took {seconds:.1f} s"


def test_slurm_profile_gives_train_jobs_a_gpu(tmp_path):
    run = subprocess.run([*SNAKEMAKE, "-n", "--profile", str(REPO / "profiles/slurm"), "--configfile",
                          str(REPO / "configs/paper.yaml"), "-s", str(REPO / "Snakefile"), "--directory",
                          str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout + run.stderr
    train_block = text[text.index("rule train:"):][:1500]
    assert re.search(r"gpu=1", train_block), train_block


def test_lint_is_clean():
    run = snakemake(REPO, "--lint", check=False)
    assert "Congratulations" in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]


def test_snakefmt_is_clean():
    files = ["Snakefile", *map(str, sorted((REPO / "rules").glob("*.smk")))]
    run = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
