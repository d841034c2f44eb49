import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

call(snakemake, "t2scaling.observations:write_loss_table", list(snakemake.input.losses), snakemake.output[0])
