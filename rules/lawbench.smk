rule lawbench:
    input:
        data=lawbench_data(),
        library=library("lawbench"),
    output:
        csv=report(
            "results/lawbench/lawbench.csv",
            caption="../report/lawbench.rst",
            category="law benchmark",
            labels={"table": "law benchmark (CSV)"},
        ),
        markdown="results/lawbench/lawbench.md",
        html=report(
            "results/lawbench/lawbench.html",
            caption="../report/lawbench.rst",
            category="law benchmark",
            labels={"table": "law benchmark"},
        ),
        figures=report(
            directory("results/lawbench/figures"),
            patterns=["lawbench_{dataset}.png"],
            caption="../report/lawbench.rst",
            category="law benchmark",
            labels={"figure": "{dataset}"},
        ),
    log:
        "logs/lawbench/lawbench.log",
    benchmark:
        "benchmarks_out/lawbench/lawbench.tsv"
    conda:
        "../envs/fit.yaml"
    params:
        settings=settings_for("lawbench"),
    script:
        "../workflow_scripts/lawbench.py"
