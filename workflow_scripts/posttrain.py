import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from pathlib import Path

from t2scaling.posttrain import posttrain

s = snakemake.params.settings
p = s["posttrain"]
meta = posttrain(
    snakemake.input.checkpoint,
    snakemake.input.train,
    snakemake.output[0],
    mode=snakemake.wildcards.mode,
    epochs=p["epochs"],
    batch_size=p["batch_size"],
    lr=p["lr"],
    max_steps=p["max_steps"],
    seed=s["seed"],
    device=s["training"]["device"],
    threads=snakemake.threads,
    log_path=str(Path(snakemake.log[0]).with_suffix(".jsonl")),
    task=snakemake.wildcards.task,
)
info = meta["posttrain"]
log.info("%s of %s on %s: %d steps, loss %.4f -> %.4f", snakemake.wildcards.mode.upper(), snakemake.wildcards.cell,
         snakemake.wildcards.task, info["steps"], info["initial_loss"], info["final_loss"])
