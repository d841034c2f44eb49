import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.extrapolate import extrapolate

s = snakemake.params.settings
e, f = s["extrapolation"], s["fits"]
table, fits = extrapolate(
    snakemake.input.observations,
    e["laws"],
    min_tokens_per_param=e["min_tokens_per_param"],
    checkpoints=e["checkpoints"],
    k_grid=f["k_grid"],
    restarts=f["restarts"],
    approach2_variant=f["approach2_variant"],
    chinchilla_variant=f["chinchilla_variant"],
    allow_unconverged=f["allow_unconverged"],
    seed=s["seed"],
    task=snakemake.wildcards.task,
)
table.to_csv(snakemake.output[0], index=False)
log.info("%s: %d held-out predictions, mean relative error %s", snakemake.wildcards.task, len(table),
         table.groupby(["approach", "metric"])["rel_abs_error"].mean().round(4).to_dict())
