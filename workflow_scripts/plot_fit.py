import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

call(snakemake, "t2scaling.plots:plot_fit_quality", snakemake.input.observations, snakemake.input.fit,
     snakemake.params.k_grid, snakemake.output[0])
