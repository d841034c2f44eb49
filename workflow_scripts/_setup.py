"""Shared preamble of the `script:` wrappers: make the library importable, log to the job's log, run one call."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the library: conda envs do not install it


def start(snakemake):
    """Log to the job's log file; return the job's logger."""
    from t2scaling.jobs import open_job_log

    return open_job_log(snakemake.log[0], snakemake.rule, snakemake.wildcards)


def call(snakemake, target, *args, **kwargs):
    """Run the light job `module:function(*args, **kwargs)` (torch or not): in the warm job server when one can
    serve it (t2scaling.jobs), else here. A failure exits non-zero; its traceback is in the job's log."""
    from t2scaling import jobs

    if not jobs.enabled():
        start(snakemake)
        jobs.run_here(target, args, kwargs, threads=snakemake.threads)
        return
    status = jobs.submit(target, args, kwargs, log_path=snakemake.log[0], name=snakemake.rule,
                         wildcards=snakemake.wildcards, threads=snakemake.threads)
    if status:
        sys.exit(f"rule {snakemake.rule}: {target} failed with status {status}; see {snakemake.log[0]}")
