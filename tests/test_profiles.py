"""The SLURM profile as Snakemake and the executor plugin apply it (issue 17, items 2-6 and 8): static checks on
profiles/slurm and dry runs with it. No cluster is needed; the plugin's own functions turn a dry run's resources
into the sbatch arguments a job would get."""
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PROFILE = REPO / "profiles" / "slurm"
# A partition's time limit a group job must fit within (the 1-day partition of the test cluster; many
# clusters' GPU partitions allow 1-2 days).
PARTITION_LIMIT_MIN = 24 * 60
GPU_RULES = ["train", "evaluate", "posttrain", "posttrain_evaluate", "val_loss"]


def cluster_profile():
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


# The site's names, which the profile reads from the environment.
SITE = {"T2_SLURM_CPU_PARTITION": "short", "T2_SLURM_GPU_PARTITION": "accel", "T2_SLURM_ACCOUNT": "proj1"}


def dry_run(tmp_path, config, site=SITE, check=True):
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2_SLURM_")} | site
    run = subprocess.run([*SNAKEMAKE, "-n", "--profile", str(PROFILE), "--configfile", str(configfile), "-s",
                          str(REPO / "Snakefile"), "--directory", str(workdir)],
                         capture_output=True, text=True, cwd=REPO, env=env)
    if check:
        assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout + run.stderr


def job_resources(text):
    """{rule: [resources of each of its jobs]} from a dry run's job listings."""
    jobs = {}
    # A job's listing runs to a blank line, the next job's timestamp or rule line, or the end.
    end = r"(?=^\s*$|^\[|^\s*(?:local)?rule \w+:$|\Z)"
    for rule, body in re.findall(r"^\s*(?:local)?rule (\w+):\n(.*?)" + end, text, flags=re.M | re.S):
        found = re.search(r"^\s*resources: (.*)$", body, flags=re.M)
        resources = dict(item.split("=", 1) for item in found.group(1).split(", ")) if found else {}
        jobs.setdefault(rule, []).append(resources)
    return jobs


def paper(gpus):
    config = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    config["training"]["gpus"] = gpus
    return config


@pytest.fixture(scope="module")
def paper_4_gpus(tmp_path_factory):
    return job_resources(dry_run(tmp_path_factory.mktemp("gpus4"), paper(4)))


@pytest.fixture(scope="module")
def paper_1_gpu(tmp_path_factory):
    """The paper config's dry run on one GPU (its 109 cells take ~25 s to plan: planned once for the module)."""
    return dry_run(tmp_path_factory.mktemp("gpus1"), paper(1))


def test_the_profile_sets_no_resource_the_config_owns():
    """Items 3-5: no gpu, runtime, memory or thread constant for train (the config's training.* decide), no
    gpu_model (a CPU config's gpu=0 would ask `--gpus=<model>:0`), and no cpus_per_task or cpus_per_gpu anywhere:
    the plugin's cpus_per_task beats cpus_per_gpu and the job's threads."""
    profile = cluster_profile()
    assert not {"cpus_per_task", "cpus_per_gpu", "gpu", "gpu_model"} & set(profile["default-resources"])
    for rule, resources in profile.get("set-resources", {}).items():
        assert not {"cpus_per_task", "cpus_per_gpu", "gpu", "gpu_model", "gres"} & set(resources), rule
    assert not {"runtime", "mem_mb", "tasks"} & set(profile["set-resources"].get("train", {}))
    assert "train" not in profile.get("set-threads", {})


def test_the_profile_merges_no_unrelated_jobs_and_polls_with_squeue():
    """Items 2, 6 and 8: no group-components (16 evaluations of different cells in one job); squeue polling (the
    plugin's sacct default missed a scancel and hangs without slurmdbd), an option this plugin version has."""
    profile = cluster_profile()
    assert "group-components" not in profile
    assert "printshellcmds" not in profile  # every script rule printed "Shell command: None"
    assert profile["slurm-status-command"] == "squeue"
    assert profile["default-resources"]["slurm_account"] == "$T2_SLURM_ACCOUNT"
    help_text = subprocess.run([*SNAKEMAKE, "--help"], capture_output=True, text=True).stdout
    for key in profile:
        if key.startswith("slurm-"):
            assert f"--{key}" in help_text, key


def test_the_pinned_plugin_is_the_installed_one():
    from importlib.metadata import version
    pyproject = (REPO / "pyproject.toml").read_text()
    pin = re.search(r'"snakemake-executor-plugin-slurm>=([\d.]+),<([\d.]+)"', pyproject)
    assert pin, "pin snakemake-executor-plugin-slurm to a compatible range"
    installed = tuple(map(int, version("snakemake-executor-plugin-slurm").split(".")[:2]))
    assert tuple(map(int, pin.group(1).split(".")[:2])) <= installed < tuple(map(int, pin.group(2).split(".")[:2]))


def test_train_asks_the_configs_gpus_runtime_and_cpus(paper_4_gpus):
    """Item 4/5/3: with training.gpus: 4 every train job asks 4 GPUs, training.runtime_min minutes and
    training.mem_mb, and the plugin turns that into `--gpus=4` and `--cpus-per-task=<training.threads>`."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting

    training = paper(4)["training"]
    trains = paper_4_gpus["train"]
    assert len(trains) == 109
    for resources in trains:
        assert resources["gpu"] == "4" and resources["slurm_partition"] == SITE["T2_SLURM_GPU_PARTITION"]
        assert training["runtime_min"] <= int(resources["runtime"]) <= training["runtime_max_min"]
        assert int(resources["mem_mb"]) >= training["mem_mb"]
    # The sbatch arguments the plugin builds from them (a dry run caps threads at its own cores, so the rule's
    # threads, training.threads, are given here as the slurm executor sees them).
    merged = {**cluster_profile()["default-resources"], **cluster_profile()["set-resources"]["train"],
              "gpu": 4, "runtime": int(trains[0]["runtime"])}
    job = SimpleNamespace(threads=training["threads"], resources=_Resources(merged))
    assert set_gres_string(job).strip() == "--gpus=4"
    assert get_cpu_setting(job, True) == f"--cpus-per-task={training['threads']}"
    # Evaluations stay on one GPU each.
    for rule in ["evaluate", "val_loss", "posttrain", "posttrain_evaluate"]:
        assert {r["gpu"] for r in paper_4_gpus[rule]} == {"1"}, rule


def test_site_names_come_from_the_environment_and_a_missing_one_is_named(tmp_path, paper_1_gpu):
    """Partitions and account are read from T2_SLURM_* (no edit of the profile per site); an unset one stops the
    run before any submission with the variable's name, not an sbatch error about a literal '$T2_...'."""
    resources = job_resources(paper_1_gpu)
    assert {r["slurm_partition"] for r in resources["train"]} == {"accel"}
    assert {r["slurm_partition"] for r in resources["corpus"]} == {"short"}
    assert {r["slurm_account"] for r in resources["evaluate"]} == {"proj1"}
    site = {k: v for k, v in SITE.items() if k != "T2_SLURM_GPU_PARTITION"}
    text = dry_run(tmp_path, paper(1), site=site, check=False)
    assert "T2_SLURM_GPU_PARTITION is unset: export T2_SLURM_GPU_PARTITION=..." in text
    assert "sbatch" not in text


def test_each_cell_asks_the_memory_and_time_its_size_needs(paper_1_gpu):
    """Issue 13: a paper cell's job asks host memory and minutes from t2scaling.memory (twice 6ND at
    training.sustained_tflops, within [runtime_min, runtime_max_min]), so both grow with N and D instead of one
    constant for all 109 cells; evaluations ask what scoring their checkpoint needs."""
    from t2scaling.config import with_defaults
    from t2scaling.grid import parse_cell
    from t2scaling.memory import train_job

    config = with_defaults(paper(1))
    text = paper_1_gpu
    train = re.findall(r"rule train:\n.*?wildcards: cell=(\S+)\n.*?resources: (.*?)\n", text, flags=re.S)
    assert len(train) == 109
    asked = {}
    for cell, listed in train:
        resources = dict(item.split("=", 1) for item in listed.split(", "))
        width, depth, tokens = parse_cell(cell)
        expected = train_job(width, depth, tokens, config=config)
        assert (int(resources["mem_mb"]), int(resources["runtime"])) == (expected["mem_mb"], expected["runtime"])
        asked[cell] = expected
    by_size = sorted(asked, key=lambda c: parse_cell(c)[0])
    smallest, largest = by_size[0], by_size[-1]
    assert asked[largest]["mem_mb"] > asked[smallest]["mem_mb"] >= config["training"]["mem_mb"]
    runtimes = sorted(a["runtime"] for a in asked.values())
    assert runtimes[0] == config["training"]["runtime_min"] and runtimes[-1] > 10 * runtimes[0]
    assert asked[largest]["micro_batch_size"] == 8 and asked[smallest]["micro_batch_size"] > 8
    evaluations = {int(r["mem_mb"]) for r in job_resources(text)["evaluate"]}
    assert len(evaluations) > 10 and max(evaluations) < asked[largest]["mem_mb"]


class _Resources(dict):
    __getattr__ = dict.__getitem__


def test_a_cpu_config_asks_no_gpu(tmp_path):
    config = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())  # a CPU config: training.gpus = 0
    assert config["training"].get("gpus", 0) == 0
    resources = job_resources(dry_run(tmp_path, config))
    for rule in GPU_RULES:
        assert {r.get("gpu", "0") for r in resources[rule]} == {"0"}, rule


def test_a_group_job_fits_one_node_and_a_partition(paper_4_gpus):
    """Items 2 and 6: the only group is one fine-tuned checkpoint's posttrain and its evaluation, a chain that
    runs in series: it asks one GPU and the sum of the two runtimes, which must fit the partition; train fits on
    its own."""
    groups = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text()
        for match in re.finditer(r"^(?:rule (\w+)|use rule \w+ as (\w+)).*?(?=^\S|\Z)", text, flags=re.M | re.S):
            found = re.search(r'^    group:\n\s+"(\w+)"', match.group(0), flags=re.M)
            if found:
                groups.setdefault(found.group(1), []).append(match.group(1) or match.group(2))
    assert groups == {"posttrain": ["posttrain", "posttrain_evaluate"]}
    runtime = sum(max(int(r["runtime"]) for r in paper_4_gpus[rule]) for rule in groups["posttrain"])
    assert runtime <= PARTITION_LIMIT_MIN
    assert {r["gpu"] for rule in groups["posttrain"] for r in paper_4_gpus[rule]} == {"1"}
    assert max(int(r["runtime"]) for r in paper_4_gpus["train"]) <= PARTITION_LIMIT_MIN


def test_only_gpu_and_data_rules_are_submitted():
    """Item 8: every rule but the cluster rules runs on the submit host (`localrules`)."""
    common = (REPO / "rules" / "common.smk").read_text()
    cluster = set(re.findall(r'"(\w+)"', re.search(r"CLUSTER_RULES = \[(.*?)\]", common, re.S).group(1)))
    local = set(re.findall(r"(\w+),", re.search(r"^localrules:\n((?:    \w+,\n)+)", common, re.M).group(1)))
    listed = subprocess.run([*SNAKEMAKE, "--list-rules", "-s", str(REPO / "Snakefile")], capture_output=True,
                            text=True, cwd=REPO)
    assert listed.returncode == 0, listed.stderr[-3000:]
    rules = set(listed.stdout.split())
    assert cluster == {*GPU_RULES, "corpus", "world"}
    assert not cluster & local
    assert cluster | local == rules
