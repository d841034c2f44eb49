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
        c_train=c_train_grid("frontier"),
        c_inf=frontier_c_inf("frontier"),
    script:
        "../workflow_scripts/frontier.py"


rule macro_frontier:
    input:
        fits=task_fits,
        library=library("macro_frontier"),
    output:
        "results/macro/frontier/{law}.csv",
    log:
        "logs/frontier/macro/{law}.log",
    conda:
        "../envs/fit.yaml"
    params:
        c_train=c_train_grid("macro_frontier"),
        c_inf=frontier_c_inf("macro_frontier"),
    script:
        "../workflow_scripts/macro_frontier.py"
