import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.fitresult import load_fit
from t2scaling.plots import plot_fit_quality

fit = load_fit(snakemake.input.fit)
plot_fit_quality(snakemake.input.observations, fit, snakemake.params.k_grid, snakemake.output[0])
log.info("fit-quality plot of %s on %s", fit.law, fit.task)
