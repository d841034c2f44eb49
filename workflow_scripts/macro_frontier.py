import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

call(snakemake, "t2scaling.frontier:write_frontier", list(snakemake.input.fits), snakemake.params.c_train,
     snakemake.params.c_inf, snakemake.output[0], macro=True)
