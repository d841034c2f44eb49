import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.evaluate import evaluate_task

s = snakemake.params.settings
e = s["evaluation"]
table = evaluate_task(
    snakemake.params.checkpoint,
    snakemake.input.questions,
    snakemake.output[0],
    mode=e["mode"],
    n_samples=e["n_samples"],
    temperature=e["temperature"],
    batch_size=e["batch_size"],
    device=s["training"]["device"],
    task=s["task"]["kind"],  # picks the verifier (e.g. numeric equality for arithmetic)
)
log.info("evaluated %s on %s: %d questions", snakemake.wildcards.cell, snakemake.wildcards.task, len(table))
