rule train:
    input:
        train="results/data/train.npy",
        val="results/data/val.npy",
        tokenizer="results/data/tokenizer",
    output:
        directory("results/checkpoints/{cell}"),
    log:
        "logs/train/{cell}.log",
    benchmark:
        "benchmarks_out/train/{cell}.tsv"
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/torch.yaml"
    threads: config["training"]["threads"]
    resources:
        gpu=config["training"]["gpus"],
        runtime=train_resource("runtime"),
        mem_mb=train_resource("mem_mb"),
    params:
        cell=cell_params,
        settings=settings_for("train"),
        version=version("train"),
        hints=train_hints,
    script:
        "../workflow_scripts/train.py"


# The validation loss of a trained cell, apart from its training: changing evaluation.val_tokens re-scores the
# checkpoints (and refits the pretraining loss law) without retraining or re-evaluating them.
rule val_loss:
    input:
        checkpoint="results/checkpoints/{cell}",
        val="results/data/val.npy",
    output:
        "results/pretrain/val_loss/{cell}.json",
    log:
        "logs/val_loss/{cell}.log",
    benchmark:
        "benchmarks_out/val_loss/{cell}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: CHECKPOINT_JOB_THREADS
    resources:
        gpu=min(1, config["training"]["gpus"]),
        runtime=30,
        mem_mb=checkpoint_mem_mb(),
    params:
        settings=settings_for("val_loss"),
        version=version("val_loss"),
    script:
        "../workflow_scripts/val_loss.py"
