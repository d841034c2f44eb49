rule plot_fit:
    input:
        observations="results/tasks/{task}/observations.parquet",
        fit="results/tasks/{task}/fits/{law}.json",
        library=library("plots"),
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
        k_grid=config["fits"]["k_grid"],
    script:
        "../workflow_scripts/plot_fit.py"


rule plot_frontier:
    input:
        frontiers=expand("results/tasks/{{task}}/frontier/{law}.csv", law=LAWS),
        library=library("plots"),
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
        c_inf=config["frontier"]["c_inf"],
    script:
        "../workflow_scripts/plot_frontier.py"


rule plot_macro_frontier:
    input:
        frontiers=expand("results/macro/frontier/{law}.csv", law=LAWS),
        library=library("plots"),
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
        c_inf=config["frontier"]["c_inf"],
    script:
        "../workflow_scripts/plot_frontier.py"
