"""Fixed cost of a light workflow job: evaluation jobs run by Snakemake with and without the warm job server.

A grid of small models makes evaluation, validation-loss and post-training jobs short: the work is well under a
second, and a fresh interpreter's torch and transformers imports used to dominate. This runs the workflow's own
`evaluate` wrapper (workflow_scripts/evaluate.py) as `--jobs` Snakemake jobs on one small checkpoint, first with
T2SCALING_JOB_SERVER=off (every job imports torch itself) and then with the server, side by side in one run.
Per job, the fixed cost is the benchmark file's wall time `s` minus the evaluation's own time (load, score, write,
from the job's log) in a warm interpreter; the target is <= 1.5 s. The first jobs with the server also wait for
it to start (the max).
Run: `python benchmarks/bench_job_overhead.py [--jobs 12 --questions 50 --cores 2]`.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_eval import build_task  # noqa: E402  (the same small checkpoint and task as the evaluation benchmark)

from t2scaling.tasks import write_task_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = """
rule all:
    input:
        expand("eval/{{i}}.parquet", i=range({jobs})),


rule evaluate:
    input:
        questions="questions.parquet",
    output:
        "eval/{{i}}.parquet",
    log:
        "logs/{{i}}.log",
    benchmark:
        "bench/{{i}}.tsv"
    params:
        checkpoint="{checkpoint}",
        settings={settings!r},
    script:
        "{script}"
"""
WORK_S = re.compile(r"wrote .* in ([0-9.]+) s")


def run_jobs(workdir, jobs, cores, server):
    """Snakemake wall seconds and, per job, (benchmark wall s, the evaluation's own s)."""
    env = dict(os.environ, T2SCALING_JOB_SERVER="on" if server else "off",
               T2SCALING_JOB_SERVER_DIR=str(workdir / "server"), T2SCALING_JOB_SERVER_IDLE_S="10")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet", "all"], cwd=workdir,
                   env=env, check=True)
    wall = time.perf_counter() - t0
    rows = []
    for i in range(jobs):
        s = float(pd.read_csv(workdir / "bench" / f"{i}.tsv", sep="\t")["s"].iloc[0])
        work = float(WORK_S.search((workdir / "logs" / f"{i}.log").read_text()).group(1))
        rows.append((s, work))
    return wall, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = build_task(args.questions, tmp / "checkpoint")
        write_task_table(table.assign(split="test"), tmp / "questions.parquet")
        settings = {"evaluation": {"mode": "likelihood", "n_samples": 1, "temperature": 1.0, "batch_size": 32},
                    "training": {"device": "cpu"}, "task": {"kind": "knowledge"}}
        results = {}
        for server in (False, True):
            workdir = tmp / ("server" if server else "plain")
            workdir.mkdir()
            (workdir / "questions.parquet").symlink_to(tmp / "questions.parquet")
            (workdir / "Snakefile").write_text(textwrap.dedent(SNAKEFILE.format(
                jobs=args.jobs, checkpoint=tmp / "checkpoint", settings=settings,
                script=REPO / "workflow_scripts" / "evaluate.py")))
            results[server] = run_jobs(workdir, args.jobs, args.cores, server)
    # the evaluation's own time in a warm interpreter: in a fresh one its lazy transformers imports count as work
    warm_work = statistics.median(work for _, work in results[True][1])
    print(f"{args.jobs} evaluation jobs ({args.questions} questions each) on {args.cores} cores; the evaluation "
          f"itself takes {warm_work:.2f} s in a warm interpreter; fixed cost = job wall time - that:")
    for server, label in ((False, "own process (T2SCALING_JOB_SERVER=off)"), (True, "warm job server")):
        wall, rows = results[server]
        fixed = sorted(s - warm_work for s, _ in rows)
        print(f"  {label:40s} workflow {wall:6.1f} s; fixed cost per job: median {statistics.median(fixed):.2f} s, "
              f"max {fixed[-1]:.2f} s" + (" (the jobs that waited for the server to start)" if server else ""))
    median_fixed = statistics.median(s - warm_work for s, _ in results[True][1])
    print(f"  workflow wall time ratio {results[False][0] / results[True][0]:.2f}x; fixed cost target <= 1.5 s: "
          f"{'met' if median_fixed <= 1.5 else 'MISSED'} ({median_fixed:.2f} s)")

if __name__ == "__main__":
    main()
