rule extrapolate:
    input:
        observations="results/tasks/{task}/observations.parquet",
        library=library("extrapolate"),
    output:
        "results/tasks/{task}/extrapolation.csv",
    log:
        "logs/extrapolate/{task}.log",
    benchmark:
        "benchmarks_out/extrapolate/{task}.tsv"
    conda:
        "../envs/fit.yaml"
    params:
        settings=settings_for("extrapolate"),
    script:
        "../workflow_scripts/extrapolate.py"


rule extrapolation_summary:
    input:
        tables=expand("results/tasks/{task}/extrapolation.csv", task=list(TASKS)),
        library=library("extrapolation_summary"),
    output:
        csv=report(
            "results/extrapolation/summary.csv",
            caption="../report/extrapolation.rst",
            category="validation",
            labels={"table": "extrapolation error (CSV)"},
        ),
        markdown="results/extrapolation/summary.md",
        html=report(
            "results/extrapolation/summary.html",
            caption="../report/extrapolation.rst",
            category="validation",
            labels={"table": "extrapolation error"},
        ),
        plot=report(
            "results/extrapolation/predicted_vs_measured.png",
            caption="../report/extrapolation.rst",
            category="validation",
            labels={"figure": "extrapolation: predicted vs measured"},
        ),
    log:
        "logs/extrapolate/summary.log",
    conda:
        "../envs/fit.yaml"
    script:
        "../workflow_scripts/extrapolation_summary.py"
