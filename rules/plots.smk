rule plot_fit:
    input:
        observations="results/tasks/{task}/observations.parquet",
        fit="results/tasks/{task}/fits/{law}.json",
        library=library("plot_fit"),
    output:
        report(
            "results/tasks/{task}/plots/fit_{law}.png",
            caption="../report/fit.rst",
            category="{task}",
            subcategory="fit quality",
            labels={"task": "{task}", "law": "{law}"},
        ),
    log:
        "logs/plots/{task}/fit_{law}.log",
    conda:
        "../envs/fit.yaml"
    params:
        k_grid=settings_for("plot_fit")["fits"]["k_grid"],
    script:
        "../workflow_scripts/plot_fit.py"


rule plot_frontier:
    input:
        frontiers=expand("results/tasks/{{task}}/frontier/{law}.csv", law=LAWS),
        library=library("plot_frontier"),
    output:
        report(
            "results/tasks/{task}/plots/frontier.png",
            caption="../report/frontier.rst",
            category="{task}",
            subcategory="frontiers",
            labels={"task": "{task}", "figure": "frontier"},
        ),
    log:
        "logs/plots/{task}/frontier.log",
    conda:
        "../envs/fit.yaml"
    params:
        c_inf=settings_for("plot_frontier")["frontier"]["c_inf"],
    script:
        "../workflow_scripts/plot_frontier.py"


rule plot_macro_frontier:
    input:
        frontiers=expand("results/macro/frontier/{law}.csv", law=LAWS),
        library=library("plot_frontier"),
    output:
        report(
            "results/macro/plots/frontier.png",
            caption="../report/frontier.rst",
            category="macro",
            subcategory="frontiers",
            labels={"task": "macro", "figure": "frontier"},
        ),
    log:
        "logs/plots/macro/frontier.log",
    conda:
        "../envs/fit.yaml"
    params:
        c_inf=settings_for("plot_macro_frontier")["frontier"]["c_inf"],
    script:
        "../workflow_scripts/plot_frontier.py"


rule plot_isoflops:
    input:
        unpack(observations_by_task),
        fits=expand("results/tasks/{{task}}/fits/{law}.json", law=LAWS),
        library=library("plot_isoflops"),
    output:
        report(
            "results/tasks/{task}/plots/isoflops.png",
            caption="../report/isoflops.rst",
            category="{task}",
            subcategory="isoFLOP profiles",
            labels={"task": "{task}", "figure": "isoFLOP profiles"},
        ),
    log:
        "logs/plots/{task}/isoflops.log",
    conda:
        "../envs/fit.yaml"
    params:
        tasks=lambda wildcards: [wildcards.task],
        levels=level_params(),
        c_inf=settings_for("plot_isoflops")["plots"]["c_inf"],
    script:
        "../workflow_scripts/plot_isoflops.py"


rule plot_macro_isoflops:
    input:
        unpack(observations_by_task),
        fits=all_fit_files(),
        library=library("plot_isoflops"),
    output:
        report(
            "results/macro/plots/isoflops.png",
            caption="../report/isoflops.rst",
            category="macro",
            subcategory="isoFLOP profiles",
            labels={"task": "macro", "figure": "isoFLOP profiles"},
        ),
    log:
        "logs/plots/macro/isoflops.log",
    conda:
        "../envs/fit.yaml"
    params:
        tasks=list(TASKS),
        levels=level_params(),
        c_inf=settings_for("plot_macro_isoflops")["plots"]["c_inf"],
    script:
        "../workflow_scripts/plot_isoflops.py"


rule plot_grid:
    input:
        library=library("plot_grid"),
    output:
        report(
            "results/plots/checkpoint_grid.png",
            caption="../report/grid.rst",
            category="experiment",
            labels={"figure": "checkpoint grid"},
        ),
    log:
        "logs/plots/checkpoint_grid.log",
    conda:
        "../envs/fit.yaml"
    params:
        cells=grid_cells_table("plot_grid"),
    script:
        "../workflow_scripts/plot_grid.py"
