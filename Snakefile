from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another experiment (which then replaces it whole rather
# than merging into it: a smaller task set must not inherit the default's tasks).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/fit.smk"
include: "rules/frontier.smk"
include: "rules/plots.smk"
include: "rules/tables.smk"
include: "rules/extrapolate.smk"
include: "rules/lawbench.smk"
include: "rules/posttrain.smk"
include: "rules/validate.smk"


rule all:
    default_target: True
    input:
        all_outputs(),


# After a run: what needs a reader's attention (unconverged fits, extrapolated forecasts), where results are, and
# the report command (t2scaling/summary.py). A summary that cannot be made never fails a finished run.
onsuccess:
    try:
        from t2scaling.summary import run_summary

        print(run_summary("results"))
    except Exception as err:
        print(f"Run summary unavailable ({type(err).__name__}: {err}).")


onerror:
    print(
        "A job failed: its log is printed above (show-failed-logs) and kept under logs/<rule>/ (a training job's "
        f"per-step losses beside it, logs/train/<cell>.jsonl); Snakemake's own log: {log}. After fixing the "
        "cause, rerun the same command: finished outputs are kept, incomplete ones are redone."
    )
