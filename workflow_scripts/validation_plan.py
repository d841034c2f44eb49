import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

p = snakemake.params  # settings: the config narrowed to what the plan reads
call(snakemake, "t2scaling.validate:write_validation_plan", list(snakemake.input.fits), p.settings, p.c_train,
     p.c_inf, snakemake.output[0], tasks=p.tasks)
