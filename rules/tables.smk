rule table1:
    input:
        unpack(table1_inputs),
        library=library("table1"),
    output:
        csv=report(
            "results/tables/table1.csv",
            caption="../report/table1.rst",
            category="experiment",
            labels={"table": "Table 1: overtrained vs Chinchilla-optimal (CSV)"},
        ),
        markdown="results/tables/table1.md",
        html=report(
            "results/tables/table1.html",
            caption="../report/table1.rst",
            category="experiment",
            labels={"table": "Table 1: overtrained vs Chinchilla-optimal"},
        ),
    log:
        "logs/tables/table1.log",
    conda:
        "../envs/fit.yaml"
    params:
        tasks=list(TASKS),
        laws=LAWS,
        c_train=max(LEVELS) if LEVELS else None,
        checkpoints=LEVELS[max(LEVELS)] if LEVELS else [],
        c_inf=settings_for("table1")["plots"]["c_inf"],
    script:
        "../workflow_scripts/table1.py"


rule parameter_table:
    input:
        fits=all_fit_files(),
        library=library("parameter_table"),
    output:
        csv=report(
            "results/tables/parameters.csv",
            caption="../report/parameters.rst",
            category="experiment",
            labels={"table": "fitted parameters (CSV)"},
        ),
        markdown="results/tables/parameters.md",
        html=report(
            "results/tables/parameters.html",
            caption="../report/parameters.rst",
            category="experiment",
            labels={"table": "fitted parameters"},
        ),
    log:
        "logs/tables/parameters.log",
    conda:
        "../envs/fit.yaml"
    script:
        "../workflow_scripts/parameter_table.py"


rule task_grades:
    input:
        unpack(observations_by_task),
        losses="results/pretrain/losses.csv",
        library=library("task_grades"),
    output:
        csv=report(
            "results/tables/task_grades.csv",
            caption="../report/task_grades.rst",
            category="experiment",
            labels={"table": "pass@1 by isoFLOP level (task grading) (CSV)"},
        ),
        markdown="results/tables/task_grades.md",
        html=report(
            "results/tables/task_grades.html",
            caption="../report/task_grades.rst",
            category="experiment",
            labels={"table": "pass@1 by isoFLOP level (task grading)"},
        ),
    log:
        "logs/tables/task_grades.log",
    conda:
        "../envs/fit.yaml"
    params:
        tasks=list(TASKS),
        levels=level_params(),
    script:
        "../workflow_scripts/task_grades.py"
