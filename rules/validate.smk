# Closing the loop (DESIGN.md §2.7): `snakemake validate` trains the T²-optimal and Chinchilla-optimal cells
# at one budget and compares measured with predicted. Which cells those are depends on the fits, so the stage
# is a Snakemake checkpoint kept out of the default target: base dry runs stay exact.


checkpoint validation_plan:
    input:
        fits=all_fit_files(),
        library=library("validation_plan"),
    output:
        "results/validate/plan.json",
    log:
        "logs/validate/plan.log",
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/fit.yaml"
    params:
        tasks=list(TASKS),
        laws=LAWS,
        settings=settings_for("validation_plan"),
        c_train=validation_c_train(),
        c_inf=validation_c_inf(),
    script:
        "../workflow_scripts/validation_plan.py"


rule validation_table:
    input:
        unpack(validation_evals),
        plan="results/validate/plan.json",
        fits=all_fit_files(),
        library=library("validation_table"),
    output:
        csv=report(
            "results/validate/table.csv",
            caption="../report/validate.rst",
            category="validation",
            labels={"table": "predicted-optimal cells, measured (CSV)"},
        ),
        markdown="results/validate/table.md",
        html=report(
            "results/validate/table.html",
            caption="../report/validate.rst",
            category="validation",
            labels={"table": "predicted-optimal cells, measured"},
        ),
        grid=report(
            "results/validate/checkpoint_grid.png",
            caption="../report/grid.rst",
            category="validation",
            labels={"figure": "checkpoint grid with validation cells"},
        ),
    log:
        "logs/validate/table.log",
    conda:
        "../envs/fit.yaml"
    params:
        tasks=list(TASKS),
        laws=LAWS,
        cells=validation_cells,
        grid=grid_cells_table("validation_table"),
    script:
        "../workflow_scripts/validation_table.py"


rule validate:
    input:
        "results/validate/table.csv",
    localrule: True
