import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.fit import fit_table

options = dict(snakemake.params.options)
options.pop("law")
result = fit_table("chinchilla", snakemake.input.losses, snakemake.output[0], task="pretrain",
                   seed=snakemake.params.seed, **options)
log.info("pretraining loss law: %s (R^2 %.4f)", result.params, result.r2)
