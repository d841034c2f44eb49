import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.fit import fit_table

# options: law chinchilla and the fit settings it reads (rules/common.smk FIT_OPTIONS)
result = fit_table(table_path=snakemake.input.losses, out_path=snakemake.output[0], task="pretrain",
                   seed=snakemake.params.seed, **snakemake.params.options)
log.info("pretraining loss law: %s (R^2 %.4f)", result.params, result.r2)
