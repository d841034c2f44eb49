rule frontier:
    input:
        fit="results/tasks/{task}/fits/{law}.json",
        library=library("frontier"),
    output:
        "results/tasks/{task}/frontier/{law}.csv",
    log:
        "logs/frontier/{task}/{law}.log",
    conda:
        "../envs/fit.yaml"
    params:
        c_train=c_train_grid(),
        c_inf=frontier_c_inf(),
    script:
        "../workflow_scripts/frontier.py"


rule macro_frontier:
    input:
        fits=task_fits,
        library=library("frontier"),
    output:
        "results/macro/frontier/{law}.csv",
    log:
        "logs/frontier/macro/{law}.log",
    conda:
        "../envs/fit.yaml"
    params:
        c_train=c_train_grid(),
        c_inf=frontier_c_inf(),
    script:
        "../workflow_scripts/macro_frontier.py"
