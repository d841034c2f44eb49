import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

call(snakemake, "t2scaling.plots:plot_checkpoint_grid", snakemake.params.cells, snakemake.output[0])
