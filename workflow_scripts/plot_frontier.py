import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

call(snakemake, "t2scaling.plots:plot_frontiers", list(snakemake.input.frontiers), snakemake.output[0],
     c_inf=snakemake.params.c_inf)
