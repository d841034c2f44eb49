import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.plots import plot_fit_quality

plot_fit_quality(snakemake.input.observations, snakemake.input.fit, snakemake.params.k_grid, snakemake.output[0])
log.info("fit-quality plot of %s on %s", snakemake.wildcards.law, snakemake.wildcards.task)
