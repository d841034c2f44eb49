"""The smoke experiment submitted through profiles/slurm to a real single-node SLURM cluster
(`scripts/slurm-local.sh start`: Debian's slurm-wlm, partitions `short` and `accel`, GRES gpu:h100:4).

One scenario, as a cluster user lives it: the driver is killed while training jobs run (a lost login session)
and restarted after `--unlock`, leaving the first driver's running jobs beside the new one's (its pending ones
are cancelled, as a user would); during the second run one training job is cancelled with `scancel`, which the
profile's retries recover. The run must finish with observations, fits and frontiers equal to the local smoke
run's. To keep CI short the cluster runs the smoke grid for one task and one post-training mode (tasks are
independent: their files equal the local run's of both). Then a config with `training.gpus: 4` shows its
training job asking the cluster for 4 GPUs and `training.threads` CPUs.

Skipped without a cluster; `.ci/run` starts one and sets T2_REQUIRE_SLURM=1, which turns the skip into a failure.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import copy_workflow

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

SITE = {"T2_SLURM_CPU_PARTITION": "short", "T2_SLURM_GPU_PARTITION": "accel", "T2_SLURM_ACCOUNT": ""}
# Poll often: the smoke run's jobs take seconds, the plugin's defaults (40 s before the first check, then every
# 10 s) suit hour-long jobs.
FAST = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "3",
        "--slurm-keep-successful-logs"]
RUN_TIMEOUT_S = 20 * 60


def cluster_up():
    if not shutil.which("sinfo"):
        return False
    run = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True)
    return run.returncode == 0 and bool({"idle", "mix", "alloc"} & set(run.stdout.split()))


@pytest.fixture(scope="module")
def cluster():
    if not cluster_up():
        message = "no SLURM cluster answers (start one: scripts/slurm-local.sh start)"
        if os.environ.get("T2_REQUIRE_SLURM"):
            pytest.fail(message)
        pytest.skip(message)


def jobs():
    """{job id: (state, comment, seconds running)} of every job in the queue (finished ones included, MinJobAge)."""
    run = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T|%k|%M"], capture_output=True,
                         text=True, check=True)
    out = {}
    for line in run.stdout.split():
        job_id, state, comment, used = line.split("|")
        parts = [int(p) for p in re.split("[-:]", used)] if used and used != "INVALID" else [0]
        seconds = sum(p * m for p, m in zip(reversed(parts), (1, 60, 3600, 86400)))
        out[int(job_id)] = (state, comment, seconds)
    return out


def wait_for(predicate, what, timeout_s, driver=None):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        if driver is not None and driver.poll() is not None:
            raise AssertionError(f"the driver ended (status {driver.returncode}) before {what}")
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def running_training(exclude=(), min_seconds=2, other_than=None):
    """The first running training job not in `exclude` and not of the cell of job `other_than`."""
    skip = jobs().get(other_than, (None, None, None))[1] if other_than is not None else None
    return next((job_id for job_id, (state, comment, seconds) in sorted(jobs().items())
                 if state == "RUNNING" and comment.startswith("rule_train_") and seconds >= min_seconds
                 and job_id not in exclude and comment != skip), None)


def driver(root, log_name, *args, config="cluster.yaml"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2_SLURM_")} | SITE
    log = open(root / log_name, "w")
    return subprocess.Popen([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--configfile",
                             config, *FAST, *args], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(process, root, log_name, timeout_s=RUN_TIMEOUT_S):
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"the driver ran past {timeout_s} s:\n{(root / log_name).read_text()[-6000:]}")
    text = (root / log_name).read_text()
    assert process.returncode == 0, text[-8000:]
    return text


def results(root):
    """What the science reads and writes: every task's observations, fits (less their wall time) and frontiers."""
    out = {}
    for path in sorted((root / "results" / "tasks").glob("*/observations.parquet")):
        out[str(path.relative_to(root))] = pd.read_parquet(path).to_csv()
    for path in sorted((root / "results").rglob("fits/*.json")):
        fit = json.loads(path.read_text())
        fit.pop("seconds", None)
        out[str(path.relative_to(root))] = fit
    for path in sorted((root / "results").rglob("frontier/*.csv")):
        out[str(path.relative_to(root))] = path.read_text()
    return out


@pytest.fixture(scope="module")
def cluster_run(cluster, smoke, tmp_path_factory):
    root = copy_workflow(tmp_path_factory.mktemp("slurm"))
    config = yaml.safe_load((root / "configs/smoke.yaml").read_text())
    config["tasks"] = {"knowledge": config["tasks"]["knowledge"]}
    config["posttrain"]["modes"] = ["ft"]
    (root / "cluster.yaml").write_text(yaml.safe_dump(config))
    start = time.time()
    first = driver(root, "driver1.log")
    orphan = wait_for(running_training, "a running training job", 600, driver=first)
    os.killpg(first.pid, signal.SIGKILL)  # the login session is lost; its jobs keep running
    first.wait()
    for job_id, (state, _, _) in jobs().items():
        if state == "PENDING":
            subprocess.run(["scancel", str(job_id)], check=True)
    before = set(jobs())
    unlock = subprocess.run([sys.executable, "-m", "snakemake", "--unlock", "--configfile", "cluster.yaml"],
                            cwd=root, capture_output=True, text=True)
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    second = driver(root, "driver2.log")
    # Not the orphan's cell: the second run trains that cell again (its output is incomplete to Snakemake), and
    # a cancelled job's Snakemake deletes its outputs, which would be the checkpoint the orphan just wrote.
    cancelled = wait_for(lambda: running_training(exclude=before, other_than=orphan),
                         "a training job of the second run", 600, driver=second)
    subprocess.run(["scancel", str(cancelled)], check=True)
    text = finish(second, root, "driver2.log")
    print(f"SLURM smoke run with a driver restart and a scancel: {time.time() - start:.0f} s")
    return dict(root=root, log=text, orphan=orphan, cancelled=cancelled, jobs=jobs())


def test_the_cluster_run_completes_with_the_local_results(cluster_run, smoke):
    local, remote = results(smoke), results(cluster_run["root"])
    shared = [key for key in local if "/knowledge/" in key and "/sft/" not in key]
    assert sorted(shared) == sorted(key for key in remote if not key.startswith("results/macro/")) and len(shared) > 8
    for key in shared:
        assert remote[key] == local[key], key
    meta = json.loads(next((cluster_run["root"] / "results/checkpoints").glob("*/t2_meta.json")).read_text())
    assert meta["val_loss"] > 0


def test_a_cancelled_training_job_is_retried_and_an_orphan_keeps_its_checkpoint(cluster_run):
    state, comment, _ = cluster_run["jobs"][cluster_run["cancelled"]]
    assert state == "CANCELLED", (state, comment)
    cell = comment.split("_wildcards_", 1)[1].replace("cell=", "")
    retried = [job_id for job_id, (s, c, _) in cluster_run["jobs"].items()
               if c == comment and job_id > cluster_run["cancelled"] and s == "COMPLETED"]
    assert retried, f"no completed resubmission of {comment}"
    assert (cluster_run["root"] / "results/checkpoints" / cell / "t2_meta.json").exists()
    # The first driver's training job ran to its end beside the second driver's jobs and destroyed nothing.
    state, comment, _ = cluster_run["jobs"][cluster_run["orphan"]]
    assert state == "COMPLETED", (state, comment)
    cell = comment.split("_wildcards_", 1)[1].replace("cell=", "")
    assert (cluster_run["root"] / "results/checkpoints" / cell / "t2_meta.json").exists()


def test_posttraining_and_its_evaluation_ran_as_one_group_job(cluster_run):
    submitted = re.findall(r"submitted with SLURM jobid \d+ \(log: \S*slurm_logs/(\w+)/", cluster_run["log"])
    groups = [name for name in submitted if name.startswith("group_")]
    assert groups and set(groups) == {"group_posttrain_posttrain_posttrain_evaluate"}, set(submitted)
    assert len(groups) == 9  # one per fine-tuned checkpoint: its post-training and its evaluation
    # Cheap rules run on the submit host: only training, evaluation, post-training and data jobs are submitted.
    assert set(submitted) - set(groups) <= {"rule_train", "rule_evaluate", "rule_val_loss", "rule_world",
                                            "rule_corpus"}, set(submitted)


def test_a_four_gpu_config_asks_the_cluster_for_four_gpus(cluster_run):
    root = cluster_run["root"]
    config = yaml.safe_load((root / "configs/smoke.yaml").read_text())
    config["training"].update(gpus=4, threads=2)
    (root / "gpus4.yaml").write_text(yaml.safe_dump(config))
    seen = set(jobs())
    process = driver(root, "driver_gpus4.log", "results/checkpoints/w16-l1-d8192", config="gpus4.yaml")
    try:
        job_id = wait_for(lambda: next((j for j, (_, c, _) in jobs().items() if j not in seen
                                        and c.startswith("rule_train_")), None),
                          "the 4-GPU training job", 300, driver=process)
        shown = subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True,
                               check=True).stdout
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for job_id_left in set(jobs()) - seen:
            subprocess.run(["scancel", str(job_id_left)], capture_output=True)
    assert re.search(r"gpu[:=](h100:)?4\b", shown), shown
    assert re.search(r"NumCPUs=2\b", shown), shown
    assert "Partition=accel" in shown, shown
