import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.extrapolate import extrapolate_task

extrapolate_task(snakemake.input.observations, snakemake.params.settings, snakemake.output[0],
                 task=snakemake.wildcards.task)
