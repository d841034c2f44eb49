import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

call(snakemake, "t2scaling.extrapolate:extrapolate_task", snakemake.input.observations, snakemake.params.settings,
     snakemake.output[0], task=snakemake.wildcards.task)
